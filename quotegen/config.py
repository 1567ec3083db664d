"""Defaults and environment variables, in one place.

Every tunable default is declared here once, as a plain value: the pydantic models of
``quotegen.settings`` take their defaults from these tables (and add the allowed ranges), and
the CLI's ``--help`` shows them without importing pydantic, so ``quotegen --help`` stays fast.

Precedence everywhere is: CLI flag > ``QUOTEGEN_*`` environment variable > the default here.
Hugging Face's own variables (``HF_HOME``, ``HF_HUB_CACHE``, ``HF_TOKEN``, ``HF_HUB_OFFLINE``,
``HF_ENDPOINT``) are honoured through ``huggingface_hub`` itself; we never invent our own.
"""

import os
from typing import Annotated

#: The default model: a LoRA quote adapter shipped in the package, on the SmolLM2-135M-Instruct
#: base that quotegen fetches (pinned) on first use; see ``quotegen.loading.pinned``.
DEFAULT_MODEL_NAME = "quotegen-135m"

#: Name of the small model shipped inside the package (see
#: ``quotegen.loading.references.bundled_model_dir``).
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
MAX_NEW_TOKENS = 2048
MAX_SAMPLES = 16
#: The longest topic ``about`` takes, in characters.
MAX_TOPIC_LENGTH = 60
MAX_STOP_STRINGS = 8
MAX_STOP_LENGTH = 64
MAX_LOGPROBS = 5
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
ENV_CACHE = "QUOTEGEN_CACHE"
ENV_THREADS = "QUOTEGEN_THREADS"

DEFAULT_BATCH_SIZE = 32  # rows decoded together; CPU GEMMs stop gaining beyond ~32
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000


class Setting:
    """One generation setting, declared once: its default, allowed range, help text, CLI flags,
    OpenAI request field (and OpenAI's own default), and its ``generation_config.json`` key.

    Everything else is derived from these declarations (``Generation`` below): the pydantic
    ``GenerationSettings`` and the request models (``quotegen.settings``), the CLI flags
    (``quotegen.cli.options``), OpenAI's names and defaults, the model defaults read from a
    model's ``generation_config.json``. Plain Python, so ``quotegen --help`` needs no pydantic.
    """

    __slots__ = (
        "bounds",
        "default",
        "flags",
        "help",
        "item_length",
        "kind",
        "model_key",
        "name",
        "openai",
        "openai_default",
        "override",
        "switch",
    )

    def __init__(
        self,
        default: object,
        help: str,
        *,
        ge: float | None = None,
        gt: float | None = None,
        le: float | None = None,
        max_items: int | None = None,
        item_length: tuple[int, int] | None = None,
        flags: tuple[str, ...] = (),
        switch: tuple[str, object, str] | None = None,
        openai: str | None = None,
        openai_default: object = ...,
        model_key: str | None = None,
        override: bool = True,
    ) -> None:
        self.name = ""  # set from the declaring attribute
        self.kind: object = object
        self.default = default
        self.help = help
        bounds = {"ge": ge, "gt": gt, "le": le, "max_length": max_items}
        self.bounds = {key: value for key, value in bounds.items() if value is not None}
        #: (min, max) length of each item of a list setting.
        self.item_length = item_length
        #: The CLI flags that set it (none: not a CLI flag); a bool's "--on/--off" pair.
        self.flags = flags
        #: (flag, value, help): a CLI switch that sets it to ``value`` (``--greedy``, ``--raw``).
        self.switch = switch
        #: The OpenAI request field (vLLM's extras included), and OpenAI's own default for it
        #: (``...``: none, the model's or quotegen's default applies).
        self.openai = openai
        self.openai_default = openai_default
        #: Its key in a model's ``generation_config.json`` (a model may set its own default).
        self.model_key = model_key
        #: Whether the native and seed routes let a client override it.
        self.override = override


class Generation:
    """quotegen's generation settings, each declared once (``Setting``); the annotation is
    the value's type. Adding a setting: one entry here, and its use in ``quotegen.engine.sampling``
    (see docs/architecture.md, "Adding a setting")."""

    max_new_tokens: Annotated[
        int,
        Setting(
            40,
            "Most tokens to generate after the prompt.",
            ge=1,
            le=MAX_NEW_TOKENS,
            flags=("--max-new-tokens", "-t"),
            openai="max_tokens",
            openai_default=16,
            model_key="max_new_tokens",
        ),
    ]
    min_new_tokens: Annotated[
        int,
        Setting(
            0,
            "End-of-text is suppressed until this many tokens have been generated.",
            ge=0,
            le=MAX_NEW_TOKENS,
            flags=("--min-new-tokens",),
            openai="min_tokens",
            openai_default=0,
            model_key="min_new_tokens",
        ),
    ]
    do_sample: Annotated[
        bool,
        Setting(
            True,
            "Sample (true) or take the likeliest token (false).",
            switch=("--greedy", False, "Always pick the likeliest token."),
            openai_default=True,
            model_key="do_sample",
        ),
    ]
    temperature: Annotated[
        float,
        Setting(
            0.9,
            "0 means greedy decoding.",
            ge=0.0,
            le=5.0,
            flags=("--temperature",),
            openai="temperature",
            openai_default=1.0,
            model_key="temperature",
        ),
    ]
    top_k: Annotated[
        int,
        Setting(
            50,
            "Keep the k likeliest tokens; 0 = off.",
            ge=0,
            le=100_000,
            flags=("--top-k",),
            openai="top_k",
            openai_default=0,
            model_key="top_k",
        ),
    ]
    top_p: Annotated[
        float,
        Setting(
            0.9,
            "Nucleus sampling; 1 = off.",
            gt=0.0,
            le=1.0,
            flags=("--top-p",),
            openai="top_p",
            openai_default=1.0,
            model_key="top_p",
        ),
    ]
    min_p: Annotated[
        float,
        Setting(
            0.0,
            "Drop tokens less likely than this fraction of the likeliest one; 0 = off.",
            ge=0.0,
            le=1.0,
            flags=("--min-p",),
            openai="min_p",
            openai_default=0.0,
            model_key="min_p",
        ),
    ]
    repetition_penalty: Annotated[
        float,
        Setting(
            1.1,
            "1 = no penalty.",
            ge=0.5,
            le=3.0,
            flags=("--repetition-penalty",),
            openai="repetition_penalty",
            openai_default=1.0,
            model_key="repetition_penalty",
        ),
    ]
    n: Annotated[
        int,
        Setting(
            1,
            "Samples per prompt.",
            ge=1,
            le=MAX_SAMPLES,
            flags=("-n", "--num-samples"),
            openai="n",
            override=False,
        ),
    ]
    best_of: Annotated[
        int,
        Setting(
            1,
            "Candidates written for each quote returned; the best by the model's scorer is "
            "kept (a model may set its own default).",
            ge=1,
            le=MAX_SAMPLES,
            flags=("--best-of",),
            model_key="best_of",
        ),
    ]
    seed: Annotated[
        int | None,
        Setting(
            None,
            "Same seed + input + settings = same output.",
            ge=0,
            le=MAX_SEED,
            flags=("--seed",),
            openai="seed",
        ),
    ]
    stop: Annotated[
        list[str],
        Setting(
            ["\n"],
            "Stop when the continuation (after some text) contains one of these.",
            max_items=MAX_STOP_STRINGS,
            item_length=(1, MAX_STOP_LENGTH),
            flags=("--stop",),
            switch=("--no-stop", [], "No stop strings: run to max tokens."),
            openai="stop",
            openai_default=[],
            model_key="stop_strings",
        ),
    ]
    clean: Annotated[
        bool,
        Setting(
            True,
            "Tidy the text like seed 2's clean_text.",
            switch=("--raw", False, "Keep the text as generated, not cleaned."),
            openai_default=False,
            override=False,
        ),
    ]
    whole_words: Annotated[
        bool,
        Setting(
            True,
            "A prompt that ends in a letter ends in a whole word: the continuation never "
            "adds letters to it (false, --mid-word: it may complete the word).",
            flags=("--whole-words/--mid-word",),
            openai="whole_words",
        ),
    ]
    about: Annotated[
        str | None,
        Setting(
            None,
            "A topic (a word or two): the quote is about it, and starts with the prompt if "
            "one is given. Needs a model with a chat template (the default has one).",
            flags=("--about",),
        ),
    ]
    logprobs: Annotated[
        int | None,
        Setting(
            None,
            "Report each generated token's log-probability and those of its this many "
            "likeliest alternatives (0-5); null: none.",
            ge=0,
            le=MAX_LOGPROBS,
            override=False,
        ),
    ]
    prompt_logprobs: Annotated[
        bool,
        Setting(
            False,
            "Score the prompt's tokens too (with logprobs set; OpenAI's echo).",
            override=False,
        ),
    ]


def _declared(spec: type) -> dict[str, Setting]:
    found = {}
    for name, annotation in spec.__annotations__.items():
        kind, setting = annotation.__origin__, annotation.__metadata__[0]
        setting.name, setting.kind = name, kind
        found[name] = setting
    return found


#: Every generation setting by name, in declaration order.
GENERATION_SETTINGS: dict[str, Setting] = _declared(Generation)


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
SERVE = ServeDefaults
TRAIN = TrainDefaults


def env(name: str) -> str | None:
    """An environment variable, read now: its value stripped, None when unset or blank. Every
    variable quotegen reads goes through here (or ``env_flag``)."""
    value = os.environ.get(name, "").strip()
    return value or None


def env_flag(name: str) -> bool:
    """An on/off environment variable (1, true, yes, on)."""
    return (env(name) or "").lower() in {"1", "true", "yes", "on"}


def fixed_threads() -> int | None:
    """The CPU thread count a user fixed: ``QUOTEGEN_THREADS``, else ``OMP_NUM_THREADS`` (a
    value torch cannot read is torch's to ignore); None: quotegen chooses. Raises ValueError
    for a ``QUOTEGEN_THREADS`` that is not a whole number of 1 or more."""
    ours = env(ENV_THREADS)
    if ours is not None:
        if not ours.isdigit() or int(ours) < 1:
            raise ValueError(
                f"{ENV_THREADS}={ours!r} is not a thread count: set a whole number of 1 or "
                "more, or unset it to let quotegen use the cores other work leaves free."
            )
        return int(ours)
    omp = env("OMP_NUM_THREADS")
    return int(omp) if omp is not None and omp.isdigit() and int(omp) > 0 else None


def debug_enabled() -> bool:
    """True when ``QUOTEGEN_DEBUG`` asks for tracebacks instead of one-line errors."""
    return env_flag(ENV_DEBUG)


def hub_offline() -> bool:
    """``HF_HUB_OFFLINE``, read now (huggingface_hub reads it once, at import)."""
    return env_flag("HF_HUB_OFFLINE")


def hub_endpoint() -> str | None:
    """``HF_ENDPOINT``: another Hub (a mirror, or a test's stand-in)."""
    return env("HF_ENDPOINT")
