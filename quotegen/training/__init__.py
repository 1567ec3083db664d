"""Training: fine-tuning, LoRA adapters and small models from scratch (``fit``), resumable
checkpoints (``checkpoint``), writing a trained model whole (``saving``), perplexity
(``evaluation``), and the whole-word tokenizer for small models (``vocab``)."""
