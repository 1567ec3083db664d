"""From a model reference to a loaded model: what a name means (``references``), finding or
fetching its files (``locating``, ``hub``, ``pinned``), GGUF files and LoRA adapters turned
into folders (``conversion``), loading and placing it (``model``), and its CPU inference form
(``speedups``, ``quantization``, ``lean``)."""
