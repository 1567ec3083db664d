"""quotegen: short texts (quotes, one-liners) from Hugging Face causal language models.

The library in two calls, as the CLI and the server use it::

    import quotegen

    model = quotegen.get_model()  # the default model; or "org/name", a folder, a .gguf file
    for result in model.generate(["life is", "love"], model.settings({"n": 2, "seed": 7})):
        print(result.text)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"

if TYPE_CHECKING:
    from quotegen.generation import Engine


def get_model(
    name: str | None = None,
    *,
    device: str = "auto",
    dtype: str = "auto",
    quantize: str = "none",
) -> Engine:
    """A model ready to generate: ``name`` is any ``--model`` reference (a Hub repo id, a
    local folder, a ``.gguf`` file, a LoRA adapter folder), or None for the default model.
    It is loaded through the same path as every command (first use fetches, converts and
    merges what it needs). ``Engine.settings`` lays a request's settings over the model's
    defaults; ``generate`` returns ``GenerationResult``s in input order, ``stream`` one
    prompt's text piece by piece."""
    from quotegen.generation import Engine
    from quotegen.model import load_model
    from quotegen.references import resolve_model

    loaded = load_model(resolve_model(name), device=device, dtype=dtype, quantize=quantize)
    return Engine(loaded)
