"""Defaults, settings and environment variables, in one place.

Every setting (generation, model loading, the server's limits, training) is declared once, as
a ``Setting`` in ``generation`` or ``commands``: its default, range, help and flags. The
pydantic models of ``quotegen.settings``, the CLI's flags (``quotegen.cli.options``) and
``/info``'s limits are derived from these declarations. ``Setting`` is plain Python rather than
pydantic's ``Field`` on purpose: ``quotegen --help`` reads every declaration, and importing
pydantic's models costs 110-220 ms, about half of ``--help``'s whole time (260-310 ms) on the
reference machine.

Precedence everywhere is: CLI flag > ``QUOTEGEN_*`` environment variable > the default here.
Hugging Face's own variables (``HF_HOME``, ``HF_HUB_CACHE``, ``HF_TOKEN``, ``HF_HUB_OFFLINE``,
``HF_ENDPOINT``) are honoured through ``huggingface_hub`` itself; we never invent our own.
Every variable is read through ``environment.env``.

This package's modules: ``constants`` (names, limits, defaults), ``environment``, ``setting``
(how a setting is declared), ``generation`` and ``commands`` (the declarations).
"""

from quotegen.config.commands import (
    LOADING_SETTINGS,
    SERVE,
    SERVE_LIMITS,
    SERVE_SETTINGS,
    TRAIN,
    TRAIN_SETTINGS,
    Loading,
    Serve,
    Train,
)
from quotegen.config.constants import (
    BUNDLED_MODEL_NAME,
    DEFAULT_BATCH_SIZE,
    DEFAULT_HOST,
    DEFAULT_MODEL_NAME,
    DEFAULT_PORT,
    DEFAULT_PROMPTS,
    ENV_API_KEY,
    ENV_CACHE,
    ENV_DEBUG,
    ENV_DEVICE,
    ENV_DTYPE,
    ENV_HOST,
    ENV_MODEL,
    ENV_PORT,
    ENV_QUANTIZE,
    ENV_SERVER,
    ENV_THREADS,
    GENERATION_PANEL,
    LIMITS_PANEL,
    LOADING_PANEL,
    LORA_PANEL,
    MAX_BATCH_SIZE,
    MAX_LOGPROBS,
    MAX_NEW_TOKENS,
    MAX_PROMPTS,
    MAX_SAMPLES,
    MAX_SEED,
    MAX_STOP_LENGTH,
    MAX_STOP_STRINGS,
    MAX_TOPIC_LENGTH,
    PROMPT_READER,
    SCRATCH_PANEL,
)
from quotegen.config.environment import (
    debug_enabled,
    env,
    env_flag,
    fixed_threads,
    hub_endpoint,
    hub_offline,
)
from quotegen.config.generation import (
    GENERATION_SETTINGS,
    Generation,
)
from quotegen.config.setting import (
    Setting,
    declared,
    defaults,
)

__all__ = [
    "BUNDLED_MODEL_NAME",
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_HOST",
    "DEFAULT_MODEL_NAME",
    "DEFAULT_PORT",
    "DEFAULT_PROMPTS",
    "ENV_API_KEY",
    "ENV_CACHE",
    "ENV_DEBUG",
    "ENV_DEVICE",
    "ENV_DTYPE",
    "ENV_HOST",
    "ENV_MODEL",
    "ENV_PORT",
    "ENV_QUANTIZE",
    "ENV_SERVER",
    "ENV_THREADS",
    "GENERATION_PANEL",
    "GENERATION_SETTINGS",
    "LIMITS_PANEL",
    "LOADING_PANEL",
    "LOADING_SETTINGS",
    "LORA_PANEL",
    "MAX_BATCH_SIZE",
    "MAX_LOGPROBS",
    "MAX_NEW_TOKENS",
    "MAX_PROMPTS",
    "MAX_SAMPLES",
    "MAX_SEED",
    "MAX_STOP_LENGTH",
    "MAX_STOP_STRINGS",
    "MAX_TOPIC_LENGTH",
    "PROMPT_READER",
    "SCRATCH_PANEL",
    "SERVE",
    "SERVE_LIMITS",
    "SERVE_SETTINGS",
    "TRAIN",
    "TRAIN_SETTINGS",
    "Generation",
    "Loading",
    "Serve",
    "Setting",
    "Train",
    "debug_enabled",
    "declared",
    "defaults",
    "env",
    "env_flag",
    "fixed_threads",
    "hub_endpoint",
    "hub_offline",
]
