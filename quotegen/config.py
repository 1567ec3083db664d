"""Defaults and environment variables, in one place.

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

#: Name of the small model shipped inside the package (see ``quotegen.model.bundled_model_dir``).
BUNDLED_MODEL_NAME = "quotegen-mini"

#: Seed 2's default prompts, used whenever a prompt is empty.
DEFAULT_PROMPTS: tuple[str, ...] = (
    "life is not fair",
    "she is a warrior",
    "friendship is like",
    "you cannot find light",
)

ENV_MODEL = "QUOTEGEN_MODEL"
ENV_DEVICE = "QUOTEGEN_DEVICE"
ENV_DTYPE = "QUOTEGEN_DTYPE"
ENV_QUANTIZE = "QUOTEGEN_QUANTIZE"
ENV_DEBUG = "QUOTEGEN_DEBUG"
ENV_API_KEY = "QUOTEGEN_API_KEY"
ENV_HOST = "QUOTEGEN_HOST"
ENV_PORT = "QUOTEGEN_PORT"

DEFAULT_BATCH_SIZE = 32  # rows decoded together; CPU GEMMs stop gaining beyond ~32
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000


def debug_enabled() -> bool:
    """True when ``QUOTEGEN_DEBUG`` asks for tracebacks instead of one-line errors."""
    return os.environ.get(ENV_DEBUG, "").strip().lower() in {"1", "true", "yes", "on"}
