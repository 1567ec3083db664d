"""The generation settings, each declared once."""

from typing import Annotated

from quotegen.config.constants import (
    GENERATION_PANEL,
    MAX_LOGPROBS,
    MAX_NEW_TOKENS,
    MAX_SAMPLES,
    MAX_SEED,
    MAX_STOP_LENGTH,
    MAX_STOP_STRINGS,
)
from quotegen.config.setting import Setting, declared


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


#: Every generation setting by name, in declaration order.
GENERATION_SETTINGS: dict[str, Setting] = declared(Generation, GENERATION_PANEL)
