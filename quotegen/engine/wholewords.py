"""Whole-word prompts: a prompt that ends in a letter ends in a whole word.

Which first tokens a prompt allows (``first_token_rule``), and which tokens of a vocabulary
would extend a word (``first_token_bans``), worked out by decoding every token after a word:
the same for byte-level BPE (``Ġ``), SentencePiece-style (``▁``) and marker-less tokenizers.
"""

from __future__ import annotations

from typing import Any, Literal

#: What a row's first generated token may be: anything; not a continuation of the prompt's
#: last word ("new_word": the prompt ends in a letter); or text that begins with whitespace
#: ("after_space": the prompt ended in whitespace, which the model does not see).
FirstToken = Literal["any", "new_word", "after_space"]


def first_token_rule(prompt: str, whole_words: bool) -> FirstToken:
    """Which first tokens a prompt allows (see ``FirstToken``)."""
    if not whole_words or not prompt.strip():
        return "any"
    if prompt[-1].isspace():
        return "after_space"
    return "new_word" if prompt[-1].isalpha() else "any"


def word_ids(tokenizer: Any) -> list[int]:
    """Token ids that read as a plain word: the context that stands for "after a word"."""
    candidates = [
        tokenizer(text, add_special_tokens=False)["input_ids"] for text in ("word", "the", "a")
    ] + [[token] for token in range(min(len(tokenizer), 5000))]
    return next(
        (ids for ids in candidates if tokenizer.decode(ids).strip().isalpha()), candidates[0]
    )


def first_token_bans(tokenizer: Any, word: list[int]) -> dict[str, list[bool]]:
    """Per rule, which token ids may not come first: "new_word" bans tokens that would add a
    letter or digit (or half a character) to the word before them, "after_space" bans tokens
    that do not begin with whitespace. Special tokens (end-of-text) stay allowed. A tokenizer
    whose every token would be banned gets no ban at all (nothing could start a new word)."""
    base = tokenizer.decode(word, clean_up_tokenization_spaces=False)
    sequences = [[*word, token] for token in range(len(tokenizer))]
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        # The Rust tokenizer decodes the whole vocabulary in one call, about 3x faster than
        # transformers' per-sequence Python loop (a 49k vocabulary: 0.3 s instead of 0.8 s of
        # the first whole-word prompt), with the same texts.
        texts = backend.decode_batch(sequences, skip_special_tokens=True)
    else:
        texts = tokenizer.batch_decode(
            sequences, skip_special_tokens=True, clean_up_tokenization_spaces=False
        )
    firsts = [t[len(base) :][:1] if t.startswith(base) else "\ufffd" for t in texts]
    rules = {
        "new_word": [c.isalnum() or c == "\ufffd" for c in firsts],
        "after_space": [c != "" and not c.isspace() for c in firsts],
    }
    return {
        name: banned if not all(banned) else [False] * len(banned) for name, banned in rules.items()
    }
