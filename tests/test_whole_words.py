"""Whole-word prompts on real tiny models: a prompt that ends in a letter ends in a whole word,
with and without leading-space markers in the tokenizer; ``whole_words=False`` turns it off."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from quotegen.engine.generation import Engine
from quotegen.engine.wholewords import first_token_rule
from quotegen.loading.model import load_model, place
from quotegen.loading.references import parse_model_ref
from quotegen.settings import GenerationSettings
from tests.helpers.modelfactory import build_tiny_gpt2

# Prompts ending mid-word for which these tokenizers have many continuation pieces.
PROMPTS = ["Lif", "lov", "frien", "hap", "wor", "never", "fear"]


@pytest.fixture(scope="module", params=["bpe", "words", "wordlevel"])
def kind_engine(request, tmp_path_factory) -> tuple[str, Engine]:  # type: ignore[no-untyped-def]
    path = build_tiny_gpt2(
        tmp_path_factory.mktemp("ww") / request.param, tokenizer_kind=request.param
    )
    return request.param, Engine(load_model(parse_model_ref(str(path)), place("cpu")))


def _glued(engine: Engine, whole_words: bool) -> int:
    settings = GenerationSettings(
        seed=3, n=16, max_new_tokens=3, stop=[], top_k=0, top_p=1.0, whole_words=whole_words
    )
    results = engine.generate(PROMPTS, settings)
    return sum(r.completion[:1].isalnum() for r in results)


def test_prompts_ending_in_a_letter_are_never_extended(kind_engine) -> None:  # type: ignore[no-untyped-def]
    kind, engine = kind_engine
    assert _glued(engine, whole_words=True) == 0
    if kind != "wordlevel":  # no space markers: nothing could glue in the first place
        assert _glued(engine, whole_words=False) > 0, "this tokenizer should glue when allowed"


def test_greedy_also_respects_whole_words(kind_engine) -> None:  # type: ignore[no-untyped-def]
    _, engine = kind_engine
    settings = GenerationSettings(do_sample=False, max_new_tokens=3, stop=[])
    for result in engine.generate(PROMPTS, settings):
        assert not result.completion[:1].isalnum(), result.text


def test_prompt_ending_in_a_space_starts_a_new_word(kind_engine) -> None:  # type: ignore[no-untyped-def]
    _, engine = kind_engine
    settings = GenerationSettings(seed=5, n=8, max_new_tokens=4, stop=[], clean=False)
    for result in engine.generate(["life is "], settings):
        # A random model may follow a space byte with bytes that make no character: the
        # decoder then shows the whole run, space included, as U+FFFD.
        first = result.completion[:1]
        assert first == "" or first.isspace() or first == "\ufffd", repr(result.completion)
        assert result.text == "life is" + result.completion
        assert result.prompt == "life is "


def test_prompts_ending_in_punctuation_are_free(kind_engine) -> None:  # type: ignore[no-untyped-def]
    _, engine = kind_engine
    (row,) = engine.prepare(["Life is,"], GenerationSettings())
    assert row.first_token == "any"


@pytest.mark.parametrize(
    ("prompt", "whole_words", "rule"),
    [
        ("life is", True, "new_word"),
        ("love", True, "new_word"),
        ("life is ", True, "after_space"),
        ("life\n", True, "after_space"),
        ("love,", True, "any"),
        ("year 19", True, "any"),
        ("", True, "any"),
        ("love", False, "any"),
        ("life is ", False, "any"),
    ],
)
def test_first_token_rule(prompt: str, whole_words: bool, rule: str) -> None:
    assert first_token_rule(prompt, whole_words) == rule


def test_streaming_prints_the_same_text(tiny_model_dir: Path) -> None:
    engine = Engine(load_model(parse_model_ref(str(tiny_model_dir)), place("cpu")))
    settings = GenerationSettings(seed=8, max_new_tokens=6, stop=[], clean=False)
    stream = engine.stream("life is ", settings)
    pieces = list(stream)
    assert stream.result is not None
    assert stream.prompt + "".join(pieces) == stream.result.text


# -- every interface -----------------------------------------------------------------------------


def test_cli_whole_words_and_mid_word(tiny_model_dir: Path) -> None:
    from tests.helpers.cli import run_cli

    base = ("generate", "-m", str(tiny_model_dir), "--json", "--seed", "3", "-n", "16", "-t", "2")
    whole = [json.loads(line) for line in run_cli(*base, "frien").stdout.splitlines()]
    assert len(whole) == 16
    assert not any(r["completion"][:1].isalnum() for r in whole)
    assert whole[0]["settings"]["whole_words"] is True
    mid = [json.loads(line) for line in run_cli(*base, "--mid-word", "frien").stdout.splitlines()]
    assert mid[0]["settings"]["whole_words"] is False
    assert any(r["completion"][:1].isalnum() for r in mid)


def test_http_routes_keep_whole_words(tiny_model_dir: Path) -> None:
    from fastapi.testclient import TestClient

    from quotegen.server import create_app

    engine = Engine(load_model(parse_model_ref(str(tiny_model_dir)), place("cpu")))
    glued = 0
    with TestClient(create_app(engine)) as client:
        for seed in range(6):
            native = client.post(
                "/v1/generate",
                json={"prompts": ["frien", "hap"], "settings": {"seed": seed, "n": 4}},
            ).json()["results"]
            assert not any(r["completion"][:1].isalnum() for r in native)
            choices = client.post(
                "/v1/completions", json={"prompt": ["frien", "hap"], "n": 4, "seed": seed}
            ).json()["choices"]
            assert not any(c["text"][:1].isalnum() for c in choices)
            seed1 = client.post("/generate", json={"text": "frien", "seed": seed}).json()
            assert not seed1["generated_text"][5:6].isalnum()
            quote = client.post("/generate_quote", params={"prompt": "frien", "seed": seed})
            assert not quote.json()[5:6].isalnum()
            off = client.post(
                "/v1/completions",
                json={"prompt": "frien", "n": 4, "seed": seed, "whole_words": False},
            ).json()["choices"]
            glued += sum(c["text"][:1].isalnum() for c in off)
    assert glued > 0  # turned off, this tokenizer does glue
