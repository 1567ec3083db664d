"""Defaults and environment variables, in one place.

Every tunable default is declared here once, as a plain value: the pydantic models of
``quotegen.settings`` take their defaults from these tables (and add the allowed ranges), and
the CLI's ``--help`` shows them without importing pydantic, so ``quotegen --help`` stays fast.

Precedence everywhere is: CLI flag > ``QUOTEGEN_*`` environment variable > the default here.
Hugging Face's own variables (``HF_HOME``, ``HF_HUB_CACHE``, ``HF_TOKEN``, ``HF_HUB_OFFLINE``,
``HF_ENDPOINT``) are honoured through ``huggingface_hub`` itself; we never invent our own.
"""

from __future__ import annotations

import os

#: The fine-tuned GPT-2 quote model of the second tutorial, and the Hub revision where its
#: safetensors weights live (the main branch only has pickle weights).
DEFAULT_HUB_MODEL = "nandinib1999/quote-generator"
DEFAULT_HUB_REVISION = "refs/pr/1"

#: The default model: a LoRA quote adapter shipped in the package, on the SmolLM2-135M-Instruct
#: base that quotegen fetches (pinned) on first use; see ``quotegen.pinned``.
DEFAULT_MODEL_NAME = "quotegen-135m"

#: Name of the small model shipped inside the package (see ``quotegen.model.bundled_model_dir``).
BUNDLED_MODEL_NAME = "quotegen-mini"

#: Seed 2's default prompts, used whenever a prompt is empty.
DEFAULT_PROMPTS: tuple[str, ...] = (
    "life is not fair",
    "she is a warrior",
    "friendship is like",
    "you cannot find light",
)

#: Seeds go up to the largest integer every JSON client reads exactly.
MAX_SEED = 2**53 - 1
#: Prompts in one request at most.
MAX_PROMPTS = 64
#: Name of the daemon thread that reads prompts from stdin (local and client mode); the CLI
#: skips interpreter shutdown while one is alive (see ``quotegen.cli._exit``).
PROMPT_READER = "quotegen-prompts"

ENV_MODEL = "QUOTEGEN_MODEL"
ENV_DEVICE = "QUOTEGEN_DEVICE"
ENV_DTYPE = "QUOTEGEN_DTYPE"
ENV_QUANTIZE = "QUOTEGEN_QUANTIZE"
ENV_DEBUG = "QUOTEGEN_DEBUG"
ENV_API_KEY = "QUOTEGEN_API_KEY"
ENV_SERVER = "QUOTEGEN_SERVER"
ENV_HOST = "QUOTEGEN_HOST"
ENV_PORT = "QUOTEGEN_PORT"

DEFAULT_BATCH_SIZE = 32  # rows decoded together; CPU GEMMs stop gaining beyond ~32
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000


class GenerationDefaults:
    """quotegen's generation settings where the user leaves one unset."""

    max_new_tokens: int = 40
    min_new_tokens: int = 0
    do_sample: bool = True
    temperature: float = 0.9
    top_k: int = 50
    top_p: float = 0.9
    repetition_penalty: float = 1.1
    n: int = 1
    stop: tuple[str, ...] = ("\n",)
    clean: bool = True
    whole_words: bool = True


class ServeDefaults:
    """``quotegen serve``'s batching and request limits."""

    max_batch_size: int = DEFAULT_BATCH_SIZE
    max_wait_ms: float = 10.0
    max_queue: int = 256
    request_timeout_s: float = 60.0
    max_body_bytes: int = 1_048_576
    max_prompt_bytes: int = 16_384
    drain_timeout_s: float = 30.0


class TrainDefaults:
    """``quotegen train``'s optimisation settings and from-scratch model shape."""

    epochs: int = 3
    batch_size: int = 16
    max_length: int = 64
    learning_rate: float = 5e-4
    warmup_ratio: float = 0.05
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    val_split: float = 0.05
    seed: int = 0
    vocab_size: int = 4096
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 256
    context: int = 128
    dropout: float = 0.1
    tokenizer: str = "bpe"
    min_count: int = 2
    max_words: int | None = None
    spelling_pieces: int = 0
    save_dtype: str = "float32"
    mixed_precision: str = "no"
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_targets: str = "auto"
    checkpoint_every: int = 200


# Plain classes as namespaces, not dataclasses: creating a dataclass costs about a
# millisecond, and `quotegen --help` imports this module.
GENERATION = GenerationDefaults
SERVE = ServeDefaults
TRAIN = TrainDefaults


def debug_enabled() -> bool:
    """True when ``QUOTEGEN_DEBUG`` asks for tracebacks instead of one-line errors."""
    return os.environ.get(ENV_DEBUG, "").strip().lower() in {"1", "true", "yes", "on"}
