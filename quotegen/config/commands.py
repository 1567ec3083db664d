"""The settings of the commands that load a model, serve it or train one: loading, the
server's access and limits, a training run. Each declared once."""

from pathlib import Path
from typing import Annotated

from quotegen.config.constants import (
    DEFAULT_BATCH_SIZE,
    ENV_API_KEY,
    ENV_DEVICE,
    ENV_DTYPE,
    ENV_QUANTIZE,
    LIMITS_PANEL,
    LOADING_PANEL,
    LORA_PANEL,
    MAX_BATCH_SIZE,
    SCRATCH_PANEL,
)
from quotegen.config.setting import Setting, declared, defaults


class Loading:
    """How a model is loaded: the flags every command that loads one takes (checked by
    ``quotegen.loading.model.place``)."""

    device: Annotated[
        str,
        Setting(
            "auto",
            "auto (cuda > mps > cpu), cpu, cuda[:N] or mps.",
            flags=("--device",),
            envvar=ENV_DEVICE,
        ),
    ]
    dtype: Annotated[
        str,
        Setting(
            "auto",
            "auto (bfloat16 on CPUs with bf16 units, else float32), float32, float16 or bfloat16.",
            flags=("--dtype",),
            envvar=ENV_DTYPE,
        ),
    ]
    quantize: Annotated[
        str,
        Setting(
            "none",
            "none, or weight-only int8 / int4 linear layers (CPU; faster, within 1 % bits per "
            "byte).",
            flags=("--quantize",),
            envvar=ENV_QUANTIZE,
        ),
    ]
    allow_pickle: Annotated[
        bool,
        Setting(
            False,
            "Allow pickle (.bin) weights, which can run code. Trusted models only.",
            flags=("--allow-pickle",),
        ),
    ]
    trust_remote_code: Annotated[
        bool,
        Setting(
            False,
            "Run custom model code from the repo. Trusted models only.",
            flags=("--trust-remote-code",),
        ),
    ]


class Serve:
    """``quotegen serve``'s access, batching and request limits (the ``Batching and limits``
    panel is what ``/info`` reports)."""

    api_key: Annotated[
        str | None,
        Setting(
            None,
            "Require 'Authorization: Bearer KEY' on every generation route.",
            flags=("--api-key",),
            envvar=ENV_API_KEY,
        ),
    ]
    cors_origins: Annotated[
        list[str],
        Setting([], "Allowed CORS origins; none by default.", flags=("--cors-origin",)),
    ]
    max_batch_size: Annotated[
        int,
        Setting(
            DEFAULT_BATCH_SIZE,
            "Rows decoded together.",
            ge=1,
            le=MAX_BATCH_SIZE,
            flags=("--max-batch-size",),
            panel=LIMITS_PANEL,
        ),
    ]
    max_wait_ms: Annotated[
        float,
        Setting(
            10.0,
            "How long a new batch waits for company, in milliseconds.",
            ge=0,
            le=1000,
            flags=("--max-wait-ms",),
            panel=LIMITS_PANEL,
        ),
    ]
    max_queue: Annotated[
        int,
        Setting(
            256,
            "Queued rows before 503 + Retry-After.",
            ge=1,
            le=100_000,
            flags=("--max-queue",),
            panel=LIMITS_PANEL,
        ),
    ]
    request_timeout_s: Annotated[
        float,
        Setting(
            60.0,
            "Per-request time limit in seconds.",
            ge=0.1,
            le=3600,
            flags=("--timeout",),
            panel=LIMITS_PANEL,
        ),
    ]
    max_body_bytes: Annotated[
        int,
        Setting(
            1_048_576,
            "Largest request body accepted, in bytes.",
            ge=1024,
            flags=("--max-body-bytes",),
            panel=LIMITS_PANEL,
        ),
    ]
    max_prompt_bytes: Annotated[
        int,
        Setting(
            16_384,
            "Largest prompt accepted, in UTF-8 bytes.",
            ge=1,
            flags=("--max-prompt-bytes",),
            panel=LIMITS_PANEL,
        ),
    ]
    drain_timeout_s: Annotated[
        float,
        Setting(
            30.0,
            "On SIGTERM or SIGINT, seconds to finish the work under way.",
            ge=0,
            le=3600,
            flags=("--drain-timeout",),
            panel=LIMITS_PANEL,
        ),
    ]


class Train:
    """``quotegen train``'s run: what to train, the optimisation, a from-scratch model's shape
    and tokenizer, and LoRA (all recorded in the model card)."""

    out: Annotated[Path, Setting(..., "Directory to save the model in.", flags=("--out", "-o"))]
    base: Annotated[
        str | None,
        Setting(None, "Model to fine-tune (any --model reference).", flags=("--base",)),
    ]
    from_scratch: Annotated[
        bool,
        Setting(False, "Train a small GPT-2 and its tokenizer on DATA.", flags=("--from-scratch",)),
    ]
    epochs: Annotated[int, Setting(3, "Passes over the data.", ge=1, le=1000, flags=("--epochs",))]
    batch_size: Annotated[
        int,
        Setting(16, "Examples per optimiser step.", ge=1, le=1024, flags=("--batch-size", "-b")),
    ]
    max_length: Annotated[
        int, Setting(64, "Tokens per quote.", ge=8, le=4096, flags=("--max-length",))
    ]
    learning_rate: Annotated[
        float,
        Setting(5e-4, "Peak learning rate.", gt=0, lt=1, flags=("--learning-rate", "--lr")),
    ]
    warmup_ratio: Annotated[
        float,
        Setting(
            0.05, "Share of the steps that warm the rate up.", ge=0.0, le=0.5, flags=("--warmup",)
        ),
    ]
    weight_decay: Annotated[
        float, Setting(0.01, "AdamW weight decay.", ge=0.0, le=1.0, flags=("--weight-decay",))
    ]
    grad_clip: Annotated[
        float,
        Setting(1.0, "Largest gradient norm.", ge=0.01, le=100.0, flags=("--grad-clip",)),
    ]
    val_split: Annotated[
        float,
        Setting(
            0.05, "Share of DATA held out for validation.", ge=0.001, le=0.5, flags=("--val-split",)
        ),
    ]
    seed: Annotated[int, Setting(0, "Seed of the split, the order and the weights.", ge=0,
                                 flags=("--seed",))]  # fmt: skip
    max_steps: Annotated[
        int | None,
        Setting(
            None,
            "Stop after this many optimiser steps (the schedule fits them); default: all.",
            ge=1,
            flags=("--max-steps",),
        ),
    ]
    checkpoint_every: Annotated[
        int,
        Setting(
            200,
            "Steps between resumable checkpoints in OUT (0: none); the same command resumes "
            "from the last one.",
            ge=0,
            flags=("--checkpoint-every",),
        ),
    ]
    save_dtype: Annotated[
        str,
        Setting(
            "float32",
            "Precision of the saved weights (they load as float32 on a CPU).",
            choices=("float32", "float16", "bfloat16"),
            flags=("--save-dtype",),
        ),
    ]
    mixed_precision: Annotated[
        str,
        Setting(
            "no",
            "no, or bf16: matrix products in bfloat16 (torch autocast), weights and optimiser "
            "in float32; faster where the processor has bfloat16 units (AMX, or a recent GPU).",
            choices=("no", "bf16"),
            flags=("--mixed-precision",),
        ),
    ]
    vocab_size: Annotated[
        int,
        Setting(4096, "BPE vocabulary size.", ge=300, le=100_000, flags=("--vocab-size",),
                panel=SCRATCH_PANEL),
    ]  # fmt: skip
    n_layer: Annotated[
        int, Setting(4, "Layers.", ge=1, le=48, flags=("--n-layer",), panel=SCRATCH_PANEL)
    ]
    n_head: Annotated[
        int, Setting(4, "Attention heads.", ge=1, le=64, flags=("--n-head",), panel=SCRATCH_PANEL)
    ]
    n_embd: Annotated[
        int,
        Setting(256, "Width (a multiple of --n-head).", ge=8, le=4096, flags=("--n-embd",),
                panel=SCRATCH_PANEL),
    ]  # fmt: skip
    context: Annotated[
        int,
        Setting(128, "Context length in tokens.", ge=16, le=8192, flags=("--context",),
                panel=SCRATCH_PANEL),
    ]  # fmt: skip
    dropout: Annotated[
        float,
        Setting(0.1, "Dropout.", ge=0.0, le=0.9, flags=("--dropout",), panel=SCRATCH_PANEL),
    ]
    tokenizer: Annotated[
        str,
        Setting(
            "bpe",
            "bpe (byte-level BPE, --vocab-size) or words (whole dictionary words from "
            "/usr/share/dict, rare words spelled; quotegen.training.vocab).",
            choices=("bpe", "words"),
            flags=("--tokenizer",),
            panel=SCRATCH_PANEL,
        ),
    ]
    min_count: Annotated[
        int,
        Setting(2, "--tokenizer words: fewest sightings of a word to be a piece.", ge=1,
                le=1000, flags=("--min-count",), panel=SCRATCH_PANEL),
    ]  # fmt: skip
    max_words: Annotated[
        int | None,
        Setting(
            None,
            "--tokenizer words: keep only the N most frequent words; default: all.",
            ge=1,
            le=1_000_000,
            flags=("--max-words",),
            panel=SCRATCH_PANEL,
        ),
    ]
    spelling_pieces: Annotated[
        int,
        Setting(
            0,
            "--tokenizer words: spell the other words with up to N sub-word pieces (BPE merges "
            "learned on them) besides characters; the model never writes them.",
            ge=0,
            le=100_000,
            flags=("--spelling-pieces",),
            panel=SCRATCH_PANEL,
        ),
    ]
    vocab_from: Annotated[
        Path | None,
        Setting(
            None,
            "--tokenizer words: choose the words by their counts in this file (one text a "
            "line), so a large pre-training source does not displace the sayings' words; "
            "default: DATA's training split.",
            flags=("--vocab-from",),
            panel=SCRATCH_PANEL,
        ),
    ]
    lora: Annotated[
        bool,
        Setting(
            False,
            "Train a LoRA adapter (peft) on --base instead of every weight; OUT is an adapter "
            "folder.",
            flags=("--lora",),
            panel=LORA_PANEL,
        ),
    ]
    lora_r: Annotated[
        int, Setting(16, "LoRA rank.", ge=1, le=1024, flags=("--lora-r",), panel=LORA_PANEL)
    ]
    lora_alpha: Annotated[
        int,
        Setting(32, "LoRA scale numerator.", ge=1, le=4096, flags=("--lora-alpha",),
                panel=LORA_PANEL),
    ]  # fmt: skip
    lora_dropout: Annotated[
        float,
        Setting(0.05, "LoRA dropout.", ge=0.0, le=0.9, flags=("--lora-dropout",),
                panel=LORA_PANEL),
    ]  # fmt: skip
    lora_targets: Annotated[
        str,
        Setting(
            "auto",
            "Modules to adapt: auto (peft's choice for the architecture), all-linear, or names "
            "(q_proj,k_proj,v_proj,o_proj).",
            pattern=r"^[A-Za-z0-9_.\-]+(,[A-Za-z0-9_.\-]+)*$",
            flags=("--lora-targets",),
            panel=LORA_PANEL,
        ),
    ]
    lora_init: Annotated[
        Path | None,
        Setting(
            None,
            "Start the LoRA adapter from this adapter folder's weights (train it further).",
            flags=("--lora-init",),
            panel=LORA_PANEL,
        ),
    ]
    frame_token: Annotated[
        str | None,
        Setting(
            None,
            "Token before and after every quote, where generation stops (e.g. "
            "'<|endoftext|>'); the saved tokenizer adds it and drops the base's chat template.",
            min_length=1,
            flags=("--frame-token",),
        ),
    ]


#: Every setting of each group by name, in declaration order.
LOADING_SETTINGS: dict[str, Setting] = declared(Loading, LOADING_PANEL)
SERVE_SETTINGS: dict[str, Setting] = declared(Serve)
TRAIN_SETTINGS: dict[str, Setting] = declared(Train)
#: The server's limits, as ``/info`` reports them.
SERVE_LIMITS = tuple(name for name, s in SERVE_SETTINGS.items() if s.panel == LIMITS_PANEL)
#: Each group's declared defaults as attributes (``TRAIN.val_split``).
SERVE = defaults(SERVE_SETTINGS)
TRAIN = defaults(TRAIN_SETTINGS)
