"""Generation: cleaning, prompts, stop strings, settings, and the decode loop on a real model."""

from __future__ import annotations

import random

import pytest
from pydantic import ValidationError

from quotegen.config import DEFAULT_PROMPTS
from quotegen.engine.generation import Engine
from quotegen.errors import PromptTooLongError
from quotegen.settings import GenerationSettings
from quotegen.text import CleanStream, choose_prompt, clean_text, find_stop


@pytest.mark.parametrize(
    ("raw", "cleaned"),
    [
        # The seed's bug 1: " ," became U+0001 and the comma vanished.
        ("life is hard , but good", "Life is hard, but good"),
        ("wait . what ; really ! yes ?", "Wait. what; really! yes?"),
        # The seed's bug 2: str.capitalize() lower-cased the rest.
        ("i met NASA and I smiled", "I met NASA and I smiled"),
        ("  padded   with\t\twhite\n\nspace  ", "Padded with white space"),
        ("a~b`c^d*e&f%g$h@i#j|k", "A b c d e f g h i j k"),
        ("trailing junk ###", "Trailing junk"),
        ("spaces before comma   ,", "Spaces before comma,"),
        ('"quoted" start', '"Quoted" start'),
        ("123 go", "123 Go"),
        ("élan vital", "Élan vital"),
        ("", ""),
        ("   ", ""),
        ("!!!", "!!!"),
        ("already Clean.", "Already Clean."),
    ],
)
def test_clean_text_intended_behaviour(raw: str, cleaned: str) -> None:
    assert clean_text(raw) == cleaned
    assert "\x01" not in clean_text(raw)


@pytest.mark.parametrize(
    ("prompt", "is_default"),
    [("", True), ("   ", True), ("\t", True), ("life is", False), (" x ", False)],
)
def test_choose_prompt_uses_seed_defaults_for_empty(prompt: str, is_default: bool) -> None:
    chosen = choose_prompt(prompt, random.Random(0))
    assert (chosen in DEFAULT_PROMPTS) is is_default
    if not is_default:
        assert chosen == prompt


@pytest.mark.parametrize(
    ("text", "stops", "cut"),
    [
        ("hello\nworld", ["\n"], 5),
        ("\nhello\nworld", ["\n"], 6),  # a leading newline does not end an empty quote
        ("\n\n", ["\n"], None),
        ("no stop here", ["\n"], None),
        ("a END b", ["END", "b"], 2),
        ("abc", [], None),
    ],
)
def test_find_stop(text: str, stops: list[str], cut: int | None) -> None:
    assert find_stop(text, stops) == cut


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("temperature", -0.1, "greater than or equal to 0"),
        ("temperature", 9, "less than or equal to 5"),
        ("temperature", float("nan"), "finite number"),
        ("top_p", 0, "greater than 0"),
        ("top_p", 1.5, "less than or equal to 1"),
        ("top_k", -1, "greater than or equal to 0"),
        ("max_new_tokens", 0, "greater than or equal to 1"),
        ("n", 100, "less than or equal to 16"),
        ("seed", -5, "greater than or equal to 0"),
        ("repetition_penalty", float("inf"), "finite number"),
        ("stop", [""], "at least 1 character"),
        ("stop", ["x" * 65], "at most 64 characters"),
        ("stop", ["a"] * 9, "at most 8"),
        ("unknown", 1, "Extra inputs are not permitted"),
    ],
)
def test_settings_reject_out_of_range(field: str, value: object, message: str) -> None:
    with pytest.raises(ValidationError) as info:
        GenerationSettings(**{field: value})
    error = info.value.errors()[0]
    assert error["loc"][0] == field
    assert message in str(info.value)


def test_settings_min_above_max_rejected() -> None:
    with pytest.raises(ValidationError, match=r"min_new_tokens \(5\) must not exceed"):
        GenerationSettings(min_new_tokens=5, max_new_tokens=3)


def test_settings_greedy_when_temperature_zero() -> None:
    assert GenerationSettings(temperature=0).greedy
    assert GenerationSettings(do_sample=False).greedy
    assert not GenerationSettings().greedy


def test_clean_stream_prints_exactly_the_final_text() -> None:
    stream = CleanStream()
    pieces = ["life", " is", " hard", " ,", " and", "  *", " good", " !"]
    printed = "".join(stream.feed(p) for p in pieces)
    final = clean_text("".join(pieces))
    printed += stream.finish(final)
    assert printed == final == "Life is hard, and good!"


# -- the decode loop on a real tiny model ------------------------------------------------------


def test_generate_same_seed_same_output(engine: Engine) -> None:
    settings = GenerationSettings(seed=123, max_new_tokens=12)
    prompts = ["life is", "", "love is"]
    first = engine.generate(prompts, settings, batch_size=2)
    second = engine.generate(prompts, settings, batch_size=2)
    assert [r.text for r in first] == [r.text for r in second]
    assert [r.seed for r in first] == [r.seed for r in second]
    other = engine.generate(prompts, settings.model_copy(update={"seed": 124}), batch_size=2)
    assert [r.completion for r in other] != [r.completion for r in first]


def test_generate_results_in_input_order(engine: Engine) -> None:
    prompts = [f"prompt number {i}" for i in range(7)]
    settings = GenerationSettings(seed=1, n=2, max_new_tokens=6, stop=[])
    results = engine.generate(prompts, settings, batch_size=3)
    assert [(r.index, r.sample) for r in results] == [(i, s) for i in range(7) for s in range(2)]
    assert [r.prompt for r in results] == [p for p in prompts for _ in range(2)]


def test_generate_respects_token_limits(engine: Engine) -> None:
    settings = GenerationSettings(seed=5, max_new_tokens=7, min_new_tokens=7, stop=[])
    for result in engine.generate(["life is", "a"], settings):
        assert result.completion_tokens == 7
        assert result.finish_reason == "length"
        assert result.prompt_tokens == engine.count_tokens(result.prompt)


def test_generate_stop_strings_cut_the_completion(engine: Engine) -> None:
    free = engine.generate(["life is"], GenerationSettings(seed=9, stop=[], max_new_tokens=30))
    completion = free[0].completion
    stop = completion.strip()[3:5] if len(completion.strip()) > 5 else completion.strip()[:1]
    cut = engine.generate(["life is"], GenerationSettings(seed=9, stop=[stop], max_new_tokens=30))[
        0
    ]
    assert stop not in cut.completion
    assert completion.startswith(cut.completion)
    assert cut.finish_reason == "stop"


def test_greedy_ignores_seed(engine: Engine) -> None:
    a = engine.generate(["life is"], GenerationSettings(do_sample=False, seed=1, stop=[]))
    b = engine.generate(["life is"], GenerationSettings(do_sample=False, seed=2, stop=[]))
    assert a[0].completion == b[0].completion


def test_batched_greedy_matches_single(engine: Engine) -> None:
    """Left padding must not change what a prompt generates."""
    settings = GenerationSettings(do_sample=False, max_new_tokens=10, stop=[], repetition_penalty=1)
    prompts = ["a", "life is what happens when you are busy", "love is"]
    batched = engine.generate(prompts, settings, batch_size=3)
    single = [engine.generate([p], settings)[0] for p in prompts]
    assert [r.completion for r in batched] == [r.completion for r in single]


def test_stream_pieces_join_to_the_result(engine: Engine) -> None:
    settings = GenerationSettings(seed=77, max_new_tokens=20, stop=[])
    pieces = list(engine.stream("life is", settings))
    (result,) = engine.generate(["life is"], settings)
    assert len(pieces) > 1
    assert "".join(pieces) == result.completion


def test_raw_keeps_text_clean_tidies_it(engine: Engine) -> None:
    raw = engine.generate(["life  is ,"], GenerationSettings(seed=3, clean=False))[0]
    assert raw.text == raw.prompt + raw.completion
    cleaned = engine.generate(["life  is ,"], GenerationSettings(seed=3))[0]
    assert cleaned.text == clean_text(cleaned.prompt + cleaned.completion)
    assert cleaned.text.startswith("Life is,")


def test_cancelled_rows_stop_early(engine: Engine) -> None:
    settings = GenerationSettings(seed=1, max_new_tokens=50, stop=[])
    rows = engine.prepare(["life is", "love is"], settings)
    steps = {"n": 0}

    def cancel_after_two() -> bool:
        steps["n"] += 1
        return steps["n"] > 2

    rows[0].is_cancelled = cancel_after_two
    engine.run(rows)
    assert rows[0].finish_reason == "cancelled"
    assert len(rows[0].token_ids) == 2
    assert rows[1].finish_reason == "length"
    assert len(rows[1].token_ids) == 50


def test_prompt_longer_than_context_is_a_clear_error(engine: Engine) -> None:
    long_prompt = "word " * 400
    with pytest.raises(PromptTooLongError, match="model's context is 128 tokens"):
        engine.generate([long_prompt], GenerationSettings())


def test_max_new_tokens_trimmed_to_context_unless_strict(engine: Engine) -> None:
    prompt = ("life is " * 30).rstrip()
    tokens = engine.count_tokens(prompt)
    settings = GenerationSettings(seed=1, max_new_tokens=200, stop=[], min_new_tokens=200)
    (result,) = engine.generate([prompt], settings)
    assert result.completion_tokens == 128 - tokens
    with pytest.raises(PromptTooLongError):
        engine.prepare([prompt], settings, strict_context=True)


def test_model_with_added_special_tokens_generates(quote_model_dir) -> None:  # type: ignore[no-untyped-def]
    from quotegen.loading.model import load_model, place
    from quotegen.loading.references import parse_model_ref

    loaded = load_model(parse_model_ref(str(quote_model_dir)), place("cpu"))
    assert loaded.tokenizer.pad_token == "<PAD>"
    assert loaded.tokenizer.convert_ids_to_tokens(loaded.eos_token_ids) == ["<EOS>"]
    results = Engine(loaded).generate(
        ["life is", "a much longer prompt than the first"],
        GenerationSettings(seed=4, max_new_tokens=8),
        batch_size=2,
    )
    assert all(r.text for r in results)
    assert "<PAD>" not in results[0].text
