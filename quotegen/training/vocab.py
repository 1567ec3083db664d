"""A whole-word tokenizer for small models trained on little text.

Sub-word pieces learned from a few hundred thousand words compose into non-words ("pourawn").
This tokenizer's pieces are whole words instead: every word of the corpus seen at least
``min_count`` times that a dictionary knows, as one piece, plus numbers, punctuation and single
characters. Any other word (a name, a typo, a word from a user's prompt) is spelled with
characters, and anything else falls back to bytes, so nothing is ever unknown: prompts keep
every word, and bits per byte hide nothing. The characters that only spell words are listed
in the model's ``generation_config.json`` as ``suppress_tokens``: the model reads them but
never writes them, so everything it writes is a dictionary word.

It is a ``tokenizers`` BPE model with no merges that takes a whole pre-token from its vocabulary
when it can (``ignore_merges``, as Llama 3's does): every known word is exactly one piece, any
other is spelled. Saved as a standard ``tokenizer.json`` that any transformers install loads;
it loads in a fraction of the time a Unigram model of the same vocabulary takes.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from quotegen.errors import InputError

EOS = "<|endoftext|>"
UNK = "<unk>"
SPACE = "\u2581"  # "▁": a word that follows a space starts with it
DICTIONARY = Path("/usr/share/dict/american-english-large")
#: Words of one letter that the model may write.
ONE_LETTER_WORDS = {"a", "A", "I", "O"}

# A word (letters and digits, with inner apostrophes: don't, Solomon's), a lone space marker,
# or any other single character.
_PIECE = r"\u2581?[A-Za-z0-9]+(?:'[A-Za-z]+)*|\u2581|[^A-Za-z0-9\u2581]"


def _pre_tokenizer() -> Any:
    from tokenizers import Regex, pre_tokenizers

    return pre_tokenizers.Sequence(
        [
            pre_tokenizers.Metaspace(replacement=SPACE, prepend_scheme="always", split=True),
            pre_tokenizers.Split(Regex(_PIECE), behavior="isolated"),
        ]
    )


def read_dictionary(path: Path = DICTIONARY) -> set[str]:
    """The words of a plain word list (Debian's ``wamerican-large``), one per line."""
    if not path.is_file():
        raise InputError(f"No word list at {path}. Install it: apt-get install wamerican-large")
    return set(path.read_text("utf-8", "replace").split())


def is_word(piece: str, dictionary: set[str]) -> bool:
    """A piece (without its space marker) that is an English word or a number."""
    if piece.isdigit():
        return True
    return any(form in dictionary for form in (piece, piece.lower(), piece.capitalize()))


def build_tokenizer(
    texts: Iterable[str],
    dictionary: set[str],
    *,
    min_count: int = 2,
    max_words: int | None = None,
    spelling_pieces: int = 0,
    context: int = 128,
) -> tuple[Any, list[int]]:
    """A whole-word tokenizer for ``texts`` (wrapped for transformers) and the ids of the
    pieces that only spell words (the model's ``suppress_tokens``): the words seen at least
    ``min_count`` times, at most the ``max_words`` most frequent of them (a smaller vocabulary
    loads faster and trains faster; the others are spelled). With ``spelling_pieces`` the
    other words are spelled with up to that many sub-word pieces (BPE merges learned on them)
    as well as characters: fewer, better-predicted tokens a rare word, still never written."""
    from tokenizers import Tokenizer, decoders, models, processors
    from transformers import PreTrainedTokenizerFast

    pre = _pre_tokenizer()
    words: Counter[str] = Counter()
    chars: Counter[str] = Counter()
    for text in texts:
        for piece, _ in pre.pre_tokenize_str(text):
            words[piece] += 1
            chars.update(piece)
    kept = {
        piece: count
        for piece, count in words.items()
        if count >= min_count
        and len(piece.lstrip(SPACE)) > 1
        and is_word(piece.lstrip(SPACE), dictionary)
    }
    # Ids: end-of-text, unknown, the 256 bytes, the characters (and "▁" + a letter: the
    # one-letter words), then the words, most frequent first.
    pieces = [EOS, UNK, *(f"<0x{b:02X}>" for b in range(256))]
    pieces += sorted(set(chars) | {SPACE + char for char in chars if char.isalpha()})
    ranked = [piece for piece, _ in sorted(kept.items(), key=lambda kv: (-kv[1], kv[0]))]
    pieces += ranked[:max_words]
    word_pieces = set(ranked[:max_words]) | {SPACE + word for word in ONE_LETTER_WORDS}
    spelled = Counter({w: n for w, n in words.items() if w not in word_pieces})
    merges = _spelling_merges(spelled, spelling_pieces, word_pieces)
    pieces += [left + right for left, right in merges]
    vocab = {piece: index for index, piece in enumerate(dict.fromkeys(pieces))}
    # A word-level model: a pre-token in the vocabulary is one piece (ignore_merges), any
    # other is split into its characters and merged into spelling pieces, and a character
    # outside the vocabulary into its UTF-8 bytes.
    model = models.BPE(
        vocab=vocab, merges=merges, unk_token=UNK, byte_fallback=True, ignore_merges=True
    )
    tokenizer = Tokenizer(model)
    tokenizer.pre_tokenizer = pre
    # Llama's decoder: markers back to spaces, bytes back to characters, the first space off.
    tokenizer.decoder = decoders.Sequence(
        [
            decoders.Replace(SPACE, " "),
            decoders.ByteFallback(),
            decoders.Fuse(),
            decoders.Strip(" ", 1, 0),
        ]
    )
    # Every text starts after an end-of-text, as every quote did in training: the first word
    # is predicted too.
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{EOS} $A", pair=f"{EOS} $A {EOS} $B", special_tokens=[(EOS, 0)]
    )
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=EOS,
        eos_token=EOS,
        unk_token=UNK,
        pad_token=EOS,
        model_max_length=context,
    )
    return wrapped, spelling_ids(wrapped)


def _spelling_merges(spelled: Counter[str], count: int, words: set[str]) -> list[tuple[str, str]]:
    """Up to ``count`` BPE merges learned on the words that are spelled (with their counts),
    none of whose results is a word piece: so every merge result only spells, and a kept
    word ("▁walk") is never mistaken for a spelling piece of a longer one."""
    if count <= 0 or not spelled:
        return []
    from tokenizers import Tokenizer, models, trainers

    alphabet = sorted({char for word in spelled for char in word})
    learner = Tokenizer(models.BPE())
    trainer = trainers.BpeTrainer(
        vocab_size=len(alphabet) + count,
        min_frequency=2,
        show_progress=False,
        initial_alphabet=alphabet,
        limit_alphabet=len(alphabet),
    )
    learner.train_from_iterator(
        (word for word, n in sorted(spelled.items()) for _ in range(n)), trainer=trainer
    )
    learned = json.loads(learner.to_str())["model"]["merges"]
    pairs = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in learned]
    return [(left, right) for left, right in pairs if left + right not in words]


def spelling_ids(tokenizer: Any) -> list[int]:
    """Ids of a whole-word tokenizer's pieces that spell rather than are words: bytes, the
    unknown token, single letters (but for the one-letter words after a space: "▁a", "▁I")
    and digits (numbers it has seen often are pieces of their own; others, glued to words or
    run on for a line, are junk), and the results of its merges (the sub-word spelling
    pieces). They go in the model's ``suppress_tokens``."""
    state = json.loads(tokenizer.backend_tokenizer.to_str())["model"]
    merged = {
        "".join(m.split(" ", 1)) if isinstance(m, str) else "".join(m)
        for m in state.get("merges") or []
    }
    banned = []
    for piece, index in sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1]):
        bare = piece.lstrip(SPACE)
        is_byte = re.fullmatch(r"<0x[0-9A-F]{2}>", piece) is not None
        is_letter = len(bare) == 1 and bare.isalnum()
        is_letter = is_letter and not (piece.startswith(SPACE) and bare in ONE_LETTER_WORDS)
        if piece == UNK or is_byte or is_letter or piece in merged:
            banned.append(index)
    return banned
