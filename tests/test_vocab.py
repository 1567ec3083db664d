"""The whole-word tokenizer: exact round trips, known words as one piece, rare words spelled,
and a model that lists the spelling pieces in suppress_tokens writes only known words."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from quotegen.engine.generation import Engine
from quotegen.loading.model import load_model, place
from quotegen.loading.references import parse_model_ref
from quotegen.settings import GenerationSettings
from quotegen.training.vocab import SPACE, build_tokenizer
from tests.helpers.modelfactory import CORPUS, build_tiny_gpt2

WORDS = {w.strip(".,;!?\"'").lower() for t in CORPUS for w in t.split()} | {"I"}


@pytest.fixture(scope="module")
def built():  # type: ignore[no-untyped-def]
    return build_tokenizer(CORPUS * 2, WORDS, min_count=2)


@pytest.mark.parametrize(
    "text",
    [
        "Life is not fair, but it is still good.",
        'He said: "Hello, Zaphod!" (1999)',
        "don't  stop   me\tnow",
        "Naïve café owners say: «déjà vu» — 日本語 and emoji 🙂 too.",
        "",
    ],
)
def test_round_trip_is_exact(built, text: str) -> None:  # type: ignore[no-untyped-def]
    tokenizer, _ = built
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(ids) == text
    assert tokenizer.unk_token_id not in ids


def test_known_words_are_one_piece_rare_ones_spelled(built) -> None:  # type: ignore[no-untyped-def]
    tokenizer, suppressed = built
    ids = tokenizer("Life is Zaphod", add_special_tokens=False)["input_ids"]
    pieces = tokenizer.convert_ids_to_tokens(ids)
    assert pieces[:2] == [f"{SPACE}Life", f"{SPACE}is"]
    assert len(pieces) >= 2 + len("Zaphod")  # spelled: a character (or byte) a piece
    assert tokenizer.decode(ids) == "Life is Zaphod"
    spelled = set(tokenizer.convert_ids_to_tokens(suppressed))
    assert {"o", "e", f"{SPACE}o", "a", "<0x5A>"} <= spelled
    assert f"{SPACE}a" not in spelled  # a word on its own
    assert f"{SPACE}Life" not in spelled


def test_frequent_numbers_are_pieces_digits_only_spell() -> None:
    texts = ["the year 1999 came", "the year 1999 went", "in 42 BC or 7 AD"]
    tokenizer, suppressed = build_tokenizer(texts, {"the", "year", "came", "went", "in", "or"})
    spelled = set(tokenizer.convert_ids_to_tokens(suppressed))
    assert {"1", "9", "4", "2", "7"} <= spelled  # a number never written digit by digit
    assert f"{SPACE}1999" not in spelled
    ids = tokenizer("the year 1999", add_special_tokens=False)["input_ids"]
    assert tokenizer.convert_ids_to_tokens(ids)[-1] == f"{SPACE}1999"


def test_every_kept_word_is_one_piece_however_rare() -> None:
    # The Unigram model this replaced glued unknown words from known pieces ("▁dog" + "s"), and
    # on a big corpus spelled rare words whose letters are frequent (five frequent pieces
    # outscored one rare one): 3 % more pieces on quotegen-mini's corpus.
    texts = ["the shed is here", "the shed is there"] + ["the dog is here"] * 50
    tokenizer, _ = build_tokenizer(texts, {"the", "shed", "is", "here", "there", "dog"})
    ids = tokenizer("the shed", add_special_tokens=False)["input_ids"]
    assert tokenizer.convert_ids_to_tokens(ids) == [f"{SPACE}the", f"{SPACE}shed"]
    ids = tokenizer("the dogs", add_special_tokens=False)["input_ids"]
    assert tokenizer.convert_ids_to_tokens(ids) == [f"{SPACE}the", SPACE, *"dogs"]


def test_max_words_keeps_the_most_frequent_words() -> None:
    texts = ["the dog is here"] * 5 + ["the shed is there"] * 2
    words = {"the", "shed", "is", "here", "there", "dog"}
    tokenizer, _ = build_tokenizer(texts, words, max_words=4)
    kept = {p for p in tokenizer.get_vocab() if p.startswith(SPACE) and len(p) > 2}
    assert kept == {f"{SPACE}the", f"{SPACE}is", f"{SPACE}dog", f"{SPACE}here"}
    ids = tokenizer("the shed", add_special_tokens=False)["input_ids"]
    assert tokenizer.convert_ids_to_tokens(ids) == [f"{SPACE}the", SPACE, *"shed"]
    assert tokenizer.decode(ids) == "the shed"


def test_texts_start_after_end_of_text(built) -> None:  # type: ignore[no-untyped-def]
    tokenizer, _ = built
    ids = tokenizer("life is")["input_ids"]
    assert ids[0] == tokenizer.eos_token_id


@pytest.mark.parametrize("spelling_pieces", [0, 40])
def test_model_writes_only_known_words(tmp_path: Path, spelling_pieces: int) -> None:
    # With spelling pieces, the long words are not in the dictionary: spelled, never written.
    known = {w.strip(".,;!?\"'") for t in CORPUS for w in t.split()}
    if spelling_pieces:
        known = {w for w in known if len(w) < 6}
    path = build_tiny_gpt2(
        tmp_path / "w",
        tokenizer_kind="words",
        dictionary=known,
        spelling_pieces=spelling_pieces,
        generation={"do_sample": True, "suppress_tokens": "spelling"},
    )
    engine = Engine(load_model(parse_model_ref(str(path)), place("cpu")))
    settings = GenerationSettings(seed=1, n=16, max_new_tokens=12, stop=[], top_k=0, top_p=1.0)
    vocabulary = {w.lower() for w in known} | {"a", "i"}
    assert len(vocabulary) > 20
    for result in engine.generate(["life is", "love"], settings):
        for word in re.findall(r"[A-Za-z']+", result.completion):
            assert word.lower() in vocabulary, (word, result.completion)


def test_suppressed_tokens_are_never_generated(tmp_path: Path) -> None:
    path = build_tiny_gpt2(
        tmp_path / "s", generation={"do_sample": True, "suppress_tokens": list(range(2, 300))}
    )
    engine = Engine(load_model(parse_model_ref(str(path)), place("cpu")))
    rows = engine.prepare(["life is", "love"], GenerationSettings(seed=2, n=8, stop=[]))
    engine.run(rows)
    assert all(not 2 <= t < 300 for row in rows for t in row.token_ids)
    assert any(row.token_ids for row in rows)


SPELLING_TEXTS = ["the walker is walking here"] * 3 + [
    "quixotic zephyrs and quixotically zany zebras",
    "walkable zones and walkways",
] * 4
SPELLING_WORDS = {"the", "walker", "is", "walking", "walk", "here", "and", "zones"}


def test_spelling_pieces_spell_rare_words_in_fewer_pieces(tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    from quotegen.training.vocab import spelling_ids

    plain, _ = build_tokenizer(SPELLING_TEXTS, SPELLING_WORDS, min_count=2)
    tokenizer, suppressed = build_tokenizer(
        SPELLING_TEXTS, SPELLING_WORDS, min_count=2, spelling_pieces=30
    )
    text = "the walker is quixotically walking past zany zebras"

    def pieces(t):  # type: ignore[no-untyped-def]
        return t.convert_ids_to_tokens(t(text, add_special_tokens=False)["input_ids"])

    assert len(pieces(tokenizer)) < len(pieces(plain))
    assert tokenizer.decode(tokenizer(text, add_special_tokens=False)["input_ids"]) == text
    spelled = set(tokenizer.convert_ids_to_tokens(suppressed))
    # Known words stay one piece that the model may write; every other piece only spells.
    assert pieces(tokenizer)[:3] == [f"{SPACE}the", f"{SPACE}walker", f"{SPACE}is"]
    # ("walk" is a dictionary word but never seen alone: not kept, so "▁walk" may spell.)
    kept = SPELLING_WORDS - {"walk"}
    words = {f"{SPACE}{w}" for w in kept} | {f"{SPACE}a", f"{SPACE}I"}
    assert not spelled & words
    assert any(len(p.lstrip(SPACE)) > 1 for p in spelled)  # sub-word pieces, not only letters
    for piece in pieces(tokenizer)[3:]:
        assert piece in words | spelled | {SPACE}, piece
    # Saved and loaded again, the same pieces are found to spell (set_generation_defaults).
    tokenizer.save_pretrained(tmp_path)
    assert spelling_ids(AutoTokenizer.from_pretrained(tmp_path)) == suppressed


def test_spelling_pieces_are_reproducible() -> None:
    first, _ = build_tokenizer(SPELLING_TEXTS, SPELLING_WORDS, spelling_pieces=30)
    again, _ = build_tokenizer(list(SPELLING_TEXTS), SPELLING_WORDS, spelling_pieces=30)
    assert first.backend_tokenizer.to_str() == again.backend_tokenizer.to_str()
