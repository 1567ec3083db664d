"""Topics, the best of several candidates, no repeats: on a tiny real model with a chat
template and a real scorer file, through the library, the CLI and the native API."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from quotegen.engine.choosing import candidate_seed, candidates, choose, near_key
from quotegen.engine.scorer import SCORER_FILE, Scorer, fit_logistic, penalty
from quotegen.loading.model import place
from quotegen.schemas import GenerationResult
from quotegen.settings import GenerationSettings
from tests.helpers.cli import run_cli
from tests.helpers.modelfactory import build_tiny_gpt2

TEMPLATE = (
    "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def _result(completion: str, sample: int, score: float | None = None, **extra: Any) -> Any:
    return GenerationResult(
        index=0,
        sample=sample,
        prompt="p",
        text="p" + completion,
        completion=completion,
        model="m",
        settings=GenerationSettings(),
        seed=sample,
        prompt_tokens=1,
        completion_tokens=1,
        finish_reason=extra.get("finish_reason", "stop"),
        seconds=0.0,
        score=score,
    )


def test_near_key_is_the_first_thirty_letters() -> None:
    long = "Money is the root of all evil, and then some more words"
    assert near_key(long) == near_key("MONEY -- is the root of all evil; and then: other words")
    assert near_key(long) != near_key("Money is the root of all good, and then some")
    # Short quotes compare whole, so two different short lines are not one.
    assert near_key(" a b") != near_key(" a c")
    assert near_key("Hi  there") == near_key("hi there")


def test_candidates_and_their_seeds() -> None:
    assert candidates(GenerationSettings()) == 1
    assert candidates(GenerationSettings(best_of=4)) == 4
    assert candidates(GenerationSettings(n=10)) == 15  # half again, to replace repeats
    assert candidates(GenerationSettings(n=2, best_of=3)) == 8
    # The first n keep a plain n's seeds; the others never meet another prompt's first n, nor
    # each other, in the low 32 bits torch's CPU generator keeps.
    assert [candidate_seed(5, 3, k, 2, 4) for k in range(2)] == [11, 12]
    seeds = [candidate_seed(2**40 + 5, i, k, 2, 4) for i in range(50) for k in range(40)]
    assert len({s % 2**32 for s in seeds}) == len(seeds)


def test_choose_replaces_repeats_and_ranks_by_score() -> None:
    same = " is the root of all evil and of all the rest"
    results = [
        _result(same, 0, 1.0),
        _result(same + " too", 1, 3.0),  # a near repeat of 0
        _result(" is a good servant but a bad master.", 2, 2.0),
        _result(" talks.", 3, 0.5),
    ]
    ranked = choose(results, 2)
    assert [r.completion for r in ranked] == [same + " too", " is a good servant but a bad master."]
    assert [r.sample for r in ranked] == [0, 1]
    # Without ranking (best_of 1): the first n distinct, a repeat replaced by a spare.
    plain = choose(results, 3, rank=False)
    assert [r.completion for r in plain] == [same, results[2].completion, " talks."]
    # Too few distinct ones: the repeats fill in, so n asked is n returned.
    assert len(choose([_result(same, k) for k in range(4)], 3)) == 3
    # A quote cut at the length limit ranks after finished ones, whatever its score.
    cut = _result(" and then", 0, 9.0, finish_reason="length")
    assert choose([cut, _result(" ends.", 1, -1.0)], 1)[0].completion == " ends."
    # One that adds nothing to its prompt ("Beware!" ending at once) ranks after both.
    empty = _result("", 0, 9.0)
    assert choose([empty, cut], 1)[0].completion == " and then"
    assert [r.completion for r in choose([empty, _result(" ends.", 1, -1.0)], 2)] == [" ends.", ""]


def test_penalties_catch_what_readers_drop() -> None:
    assert penalty("Money is the money that money does not buy.") < penalty(
        "Money is a good servant but a bad master."
    )
    assert penalty("One. Two. Three. Four.") < penalty("One. Two.")
    assert penalty("Hope is the thing with feathers and") < penalty("Hope is a waking dream.")


def test_logistic_scorer_learns_and_round_trips(tmp_path: Path) -> None:
    import torch

    torch.manual_seed(0)
    good, bad = torch.randn(40, 6) + 1.5, torch.randn(40, 6) - 1.5
    scorer = fit_logistic(torch.cat([good, bad]), [1] * 40 + [0] * 40)
    scores = scorer.logits(torch.cat([good, bad]))
    assert sum(s > 0 for s in scores[:40]) >= 38
    assert sum(s < 0 for s in scores[40:]) >= 38
    scorer.save(tmp_path, trained_on="test")
    assert Scorer.load(tmp_path) == scorer
    assert json.loads((tmp_path / SCORER_FILE).read_text())["trained_on"] == "test"
    assert Scorer.load(tmp_path / "nowhere") is None


@pytest.fixture(scope="module")
def chat_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny GPT-2 with a chat template and a scorer over its own hidden states."""
    import torch

    import quotegen

    out = build_tiny_gpt2(tmp_path_factory.mktemp("models") / "chatty", chat_template=TEMPLATE)
    engine = quotegen.get_model(str(out), place("cpu"))
    width = engine.loaded.model.config.n_embd
    torch.manual_seed(1)
    features = torch.randn(20, width)
    Scorer(*_weights(fit_logistic(features, [1, 0] * 10))).save(out)
    return out


def _weights(scorer: Scorer) -> tuple[Any, ...]:
    return scorer.weights, scorer.bias, scorer.mean, scorer.scale


def test_about_asks_the_chat_template_and_shows_the_quote_only(chat_model: Path) -> None:
    import quotegen

    engine = quotegen.get_model(str(chat_model), place("cpu"))
    settings = engine.settings({"about": "hard  work", "seed": 3, "max_new_tokens": 5})
    (row,) = engine.prepare(["never"], settings)
    assert row.prompt == "<|user|>Write a quote about hard work.\n<|assistant|>Never"
    (result,) = engine.generate(["never"], settings)
    assert result.prompt == "Never"
    assert result.text.startswith("Never")
    (alone,) = engine.generate([""], settings)
    assert "<|" not in alone.text
    assert "Write a quote" not in alone.text
    with pytest.raises(quotegen.errors.InvalidRequestError, match="about: give a topic"):
        engine.prepare([""], engine.settings({"about": "x" * 61}))


def test_about_needs_a_chat_template(engine: Any) -> None:
    from quotegen.errors import InvalidRequestError

    with pytest.raises(InvalidRequestError, match="no chat template"):
        engine.prepare(["x"], engine.settings({"about": "courage"}))


def test_best_of_scores_candidates_and_n_returns_distinct_quotes(chat_model: Path) -> None:
    import quotegen

    engine = quotegen.get_model(str(chat_model), place("cpu"))
    settings = engine.settings({"n": 3, "best_of": 4, "seed": 1, "max_new_tokens": 8})
    results = engine.generate(["life is", "love"], settings)
    assert [(r.index, r.sample) for r in results] == [(i, k) for i in range(2) for k in range(3)]
    assert all(r.score is not None for r in results)
    for index in range(2):
        mine = [r for r in results if r.index == index]
        assert len({near_key(r.completion) for r in mine}) == 3
        order = [(r.finish_reason == "length", -(r.score or 0)) for r in mine]
        assert order == sorted(order)  # finished quotes first, the best first
    # The scorer's number is the penalties plus the regression over the hidden states.
    texts = [r.text for r in results]
    assert engine.score(texts) != [penalty(t) for t in texts]
    assert engine.score([]) == []


def test_cli_about_alone_on_stdin_and_in_batch(chat_model: Path, tmp_path: Path) -> None:
    common = ["--model", str(chat_model), "--about", "money", "--seed", "2", "-t", "6"]
    proc = run_cli("generate", *common, "--json", "-n", "2", "never")
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(rows) == 2
    assert all(r["text"].startswith("Never") for r in rows)
    assert rows[0]["settings"]["about"] == "money"
    piped = run_cli("generate", *common, "--json", input="the best\nnever\n")
    assert [json.loads(x)["prompt"] for x in piped.stdout.splitlines()] == ["The best", "Never"]
    source = tmp_path / "in.txt"
    source.write_text("never\n\n")
    out = tmp_path / "out.jsonl"
    done = run_cli("batch", str(source), "-o", str(out), *common)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert lines[0]["text"].startswith("Never")
    assert "<|" not in lines[1]["text"]


def test_cli_about_on_a_model_without_a_template(tiny_model_dir: Path) -> None:
    proc = run_cli("generate", "--model", str(tiny_model_dir), "--about", "money", "x")
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1
    assert "no chat template" in proc.stderr


def test_native_api_takes_a_topic_and_best_of(chat_model: Path) -> None:
    import httpx

    from tests.helpers.live import serving

    with serving(chat_model) as server:
        body = {"prompts": ["never"], "settings": {"about": "money", "best_of": 2, "n": 2}}
        reply = httpx.post(f"{server.url}/v1/generate", json=body, timeout=60)
        assert reply.status_code == 200, reply.text
        results = reply.json()["results"]
        assert len(results) == 2
        assert all(r["text"].startswith("Never") for r in results)
        assert all(r["score"] is not None for r in results)
        bad = {"prompts": ["x"], "settings": {"about": "y" * 80}}
        refused = httpx.post(f"{server.url}/v1/generate", json=bad, timeout=60)
        assert refused.status_code == 422
        assert "about" in refused.json()["error"]["message"]
        done = httpx.post(
            f"{server.url}/v1/completions",
            json={"prompt": "life", "n": 2, "best_of": 6, "max_tokens": 5},
            timeout=60,
        )
        assert done.status_code == 200
        assert len(done.json()["choices"]) == 2


def test_top_logprobs_name_partial_characters_by_their_bytes(engine: Any) -> None:
    """Tokens that are a piece of a multi-byte character decode to nothing alone: they are
    named by their bytes (OpenAI's ``bytes:\\x..``), never by an empty or colliding key."""
    from quotegen.engine.scoring import piece_bytes, token_name

    assert piece_bytes("Ġthe") == b" the"
    assert piece_bytes("<0xE2>") == b"\xe2"
    assert token_name(7, "", lambda t: b"\xe2\x80") == "bytes:\\xe2\\x80"
    assert token_name(7, "\ufffd", lambda t: None) == "token_id:7"
    settings = engine.settings(
        {"logprobs": 5, "max_new_tokens": 24, "seed": 4, "stop": [], "temperature": 1.5}
    )
    results = engine.generate(["naïve café — “quoted” ☃ 日本"] * 4, settings)
    keys = [k for r in results for top in r.logprobs.top_logprobs for k in (top or {})]
    assert all(k and "\ufffd" not in k for k in keys)
    assert any(k.startswith("bytes:\\x") for k in keys)  # the random model writes byte pieces
    tokenizer = engine.loaded.tokenizer
    partial = [i for i in range(len(tokenizer)) if "\ufffd" in tokenizer.decode([i])]
    assert partial, "the tiny tokenizer has byte pieces of multi-byte characters"
    named = token_name(partial[0], tokenizer.decode([partial[0]]), engine._token_bytes)
    assert named.startswith("bytes:\\x")


def test_repeats_are_redrawn_until_n_differ(chat_model: Path) -> None:
    """One-token quotes from the 6 likeliest tokens: the first candidates often repeat; more
    are drawn until 3 differ. Greedy decoding cannot differ: the repeats fill in."""
    import quotegen

    engine = quotegen.get_model(str(chat_model), place("cpu"))
    from quotegen.config import MAX_SEED
    from quotegen.engine.choosing import REDRAW_OFFSET

    given = {"n": 3, "top_k": 6, "max_new_tokens": 1, "stop": [], "seed": 5, "clean": False}
    prompts = [f"life {i}" for i in range(12)]
    results = engine.generate(prompts, engine.settings(given))
    for index in range(len(prompts)):
        assert len({near_key(r.completion) for r in results if r.index == index}) == 3
    assert [r.sample for r in results] == [0, 1, 2] * len(prompts)
    # Some prompt needed a redraw: a chosen quote's seed comes from the redraw range.
    assert any((r.seed - 5) % MAX_SEED >= REDRAW_OFFSET for r in results)
    greedy = engine.generate(prompts[:2], engine.settings({**given, "do_sample": False}))
    assert len({r.completion for r in greedy if r.index == 0}) == 1


def test_a_quote_that_another_begins_with_is_a_repeat() -> None:
    from quotegen.engine.choosing import repeats

    assert repeats(" is the root of all evil.", " is the root of all evil, but it grows.")
    assert not repeats(" is the root.", " is the root of all evil, but it grows.")  # < 15 letters
    results = [
        _result(" is the root of all evil.", 0),
        _result(" is the root of all evil, and so.", 1),
    ]
    results.append(_result(" talks.", 2))
    assert [r.completion for r in choose(results, 2, rank=False)] == [
        " is the root of all evil.",
        " talks.",
    ]


def test_candidates_that_name_the_topic_asked_for_score_higher() -> None:
    from quotegen.engine.topics import asked_topic, mentions

    rendered = "<|user|>Write a quote about courage.\n<|assistant|>"
    assert asked_topic(rendered) == "courage"
    assert asked_topic("<|user|>Quote on hard work, please\n<|assistant|>") == "hard work"
    assert asked_topic("What's a good quote on friendship?") == "friendship"
    assert asked_topic("life is") is None
    assert mentions("The courageous never ask.", "courage")
    assert mentions("The best leaders listen.", "leadership")
    assert not mentions("Money talks.", "courage")
    on, off = "Courage is fear that has said its prayers.", "Money talks."
    assert penalty(on, "courage") > penalty(off, "courage")
    assert penalty(off, None) == penalty(off)


def test_off_topic_candidates_draw_more_until_one_names_the_topic() -> None:
    from quotegen.engine.choosing import with_redraws
    from quotegen.engine.rows import Row

    settings = GenerationSettings(best_of=2, seed=3)
    prompt = "<|user|>Write a quote about courage.\n<|assistant|>"
    rows = [Row(0, k, prompt, settings, k, [1], 5) for k in range(2)]
    ran: list[int] = []

    def chosen(candidates: Any) -> list[Any]:  # candidate 3 (a redraw) names the topic
        texts = [" Courage is grace." if r.sample == 3 else " Money talks." for r in candidates]
        return [_result(min(texts), 0)]

    def run(extra: list[Any]) -> None:
        ran.extend(r.sample for r in extra)

    assert with_redraws(rows, chosen, run)[0].completion == " Courage is grace."
    assert ran == [2, 3, 4, 5]  # one round: 2 x missing (1) x best_of (2) more
    greedy = [Row(0, 0, prompt, GenerationSettings(do_sample=False), 0, [1], 5)]
    before = len(ran)
    with_redraws(greedy, chosen, run)
    assert len(ran) == before  # greedy decoding cannot draw anything else


def test_a_chat_reply_is_scored_alone(chat_model: Path) -> None:
    """A rendered conversation's quote is its reply: the request in the prompt must not count
    as the quote naming its topic, nor be read by the scorer."""
    import quotegen

    engine = quotegen.get_model(str(chat_model), place("cpu"))
    rendered = engine.render_chat([{"role": "user", "content": "Write a quote about life."}])
    settings = engine.settings({"seed": 2, "max_new_tokens": 6, "clean": False})
    (row,) = engine.prepare([rendered], settings, chat=True)
    engine.run([row])
    result = engine.result(row)
    assert result.text == result.completion
    assert result.prompt == ""
