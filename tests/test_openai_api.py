"""OpenAI's API through the real openai SDK against a real server: chat completions,
logprobs and error bodies. Logprobs are also checked against the model itself."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers.live import LiveServer, serving
from tests.helpers.modelfactory import build_tiny_gpt2

openai = pytest.importorskip("openai")

TEMPLATE = (
    "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


@pytest.fixture(scope="module")
def live(tiny_model_dir: Path) -> Iterator[LiveServer]:
    with serving(tiny_model_dir, "--max-wait-ms", "20") as server:
        yield server


@pytest.fixture(scope="module")
def client(live: LiveServer):  # type: ignore[no-untyped-def]
    return openai.OpenAI(base_url=f"{live.url}/v1", api_key="unused", max_retries=0)


def test_chat_base_model_continues_the_last_message_as_a_quote(client) -> None:  # type: ignore[no-untyped-def]
    messages = [
        {"role": "system", "content": "You write quotes."},
        {"role": "user", "content": "life is"},
    ]
    chat = client.chat.completions.create(
        model=client.models.list().data[0].id,
        messages=messages,
        max_tokens=6,
        seed=7,
        n=2,
    )
    assert chat.object == "chat.completion"
    assert [c.index for c in chat.choices] == [0, 1]
    for choice in chat.choices:
        assert choice.message.role == "assistant"
        assert choice.message.content.startswith("life is")
        assert choice.finish_reason in ("stop", "length")
    assert chat.usage.completion_tokens <= 12
    assert chat.usage.total_tokens == chat.usage.prompt_tokens + chat.usage.completion_tokens
    again = client.chat.completions.create(messages=messages, max_tokens=6, seed=7, n=2, model="")
    assert [c.message.content for c in again.choices] == [c.message.content for c in chat.choices]


def test_chat_streams_deltas_that_add_up_to_the_reply(client) -> None:  # type: ignore[no-untyped-def]
    args = {
        "model": "",
        "messages": [{"role": "user", "content": "love is"}],
        "max_tokens": 8,
        "seed": 3,
    }
    whole = client.chat.completions.create(**args).choices[0].message.content
    chunks = list(
        client.chat.completions.create(**args, stream=True, stream_options={"include_usage": True})
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] in ("stop", "length")
    assert all(f is None for f in finishes[:-1])
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens >= 1


def test_chat_max_completion_tokens_and_stop(client) -> None:  # type: ignore[no-untyped-def]
    chat = client.chat.completions.create(
        model="", messages=[{"role": "user", "content": "life is"}], max_completion_tokens=2, seed=1
    )
    assert chat.usage.completion_tokens <= 2
    stopped = client.chat.completions.create(
        model="",
        messages=[{"role": "user", "content": "life is"}],
        max_tokens=30,
        stop=["e"],
        seed=1,
    )
    assert "e" not in stopped.choices[0].message.content[len("life is") :]


def test_chat_logprobs(client) -> None:  # type: ignore[no-untyped-def]
    chat = client.chat.completions.create(
        model="",
        messages=[{"role": "user", "content": "life is"}],
        max_tokens=5,
        temperature=0,
        logprobs=True,
        top_logprobs=2,
    )
    choice = chat.choices[0]
    content = choice.logprobs.content
    assert content
    assert "".join(t.token for t in content) == choice.message.content[len("life is") :]
    for entry in content:
        assert entry.logprob <= 0
        assert bytes(entry.bytes).decode() == entry.token
        assert 1 <= len(entry.top_logprobs) <= 2
        # Greedy: the chosen token is the likeliest.
        assert entry.logprob == pytest.approx(entry.top_logprobs[0].logprob, abs=1e-5)


def test_completions_logprobs_shape(client) -> None:  # type: ignore[no-untyped-def]
    completion = client.completions.create(
        model="", prompt="life is", max_tokens=6, temperature=0, logprobs=3, seed=1
    )
    choice = completion.choices[0]
    scored = choice.logprobs
    assert "".join(scored.tokens) == choice.text
    assert len(scored.tokens) == len(scored.token_logprobs) == len(scored.top_logprobs)
    assert scored.text_offset == [
        sum(len(t) for t in scored.tokens[:i]) for i in range(len(scored.tokens))
    ]
    for value, top in zip(scored.token_logprobs, scored.top_logprobs, strict=True):
        assert len(top) <= 4
        assert max(top.values()) == pytest.approx(value, abs=1e-5)  # greedy


@pytest.mark.parametrize("whole_words", [False, True])
def test_logprobs_are_the_models_own(engine, whole_words: bool) -> None:  # type: ignore[no-untyped-def]
    """Scores recorded while generating equal the model's log-softmax over the same tokens
    (the first token of a whole-word prompt is scored among the tokens it may be: higher)."""
    import torch

    settings = engine.settings(
        {"logprobs": 2, "seed": 5, "max_new_tokens": 8, "stop": [], "whole_words": whole_words}
    )
    (row,) = engine.run(engine.prepare(["life is"], settings))
    ids = [*row.prompt_ids, *row.token_ids]
    with torch.inference_mode():
        logits = engine._loaded.model(torch.tensor([ids])).logits[0].float()
    logprobs = torch.log_softmax(logits, dim=-1)
    start = len(row.prompt_ids)
    expected = [float(logprobs[i - 1, ids[i]]) for i in range(start, len(ids))]
    recorded = [value for _, value, _ in row.scored]
    assert len(recorded) == len(row.token_ids)
    assert recorded[1:] == pytest.approx(expected[1:], abs=1e-4)
    if whole_words:
        assert recorded[0] >= expected[0] - 1e-4
    else:
        assert recorded[0] == pytest.approx(expected[0], abs=1e-4)
    result = engine.result(row)
    assert result.logprobs is not None
    assert "".join(result.logprobs.tokens) == result.completion


def test_completions_echo_with_logprobs_scores_the_prompt(client) -> None:  # type: ignore[no-untyped-def]
    completion = client.completions.create(
        model="", prompt="life is", max_tokens=4, logprobs=1, echo=True, seed=2
    )
    choice = completion.choices[0]
    assert choice.text.startswith("life is")
    assert "".join(choice.logprobs.tokens) == choice.text
    assert choice.logprobs.token_logprobs[0] is None
    assert all(v <= 0 for v in choice.logprobs.token_logprobs[1:])
    assert choice.logprobs.text_offset[0] == 0


def test_completions_logprobs_stream_with_the_last_chunk(client) -> None:  # type: ignore[no-untyped-def]
    chunks = [
        c
        for c in client.completions.create(
            model="", prompt="life is", max_tokens=5, logprobs=2, stream=True, seed=4
        )
        if c.choices
    ]
    text = "".join(c.choices[0].text for c in chunks)
    assert chunks[-1].choices[0].logprobs is not None
    assert "".join(chunks[-1].choices[0].logprobs.tokens) == text


def test_errors_reach_the_sdk_with_their_message(client, live: LiveServer) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="gpt-9", messages=[{"role": "user", "content": "x"}])
    assert "not served here" in missing.value.message
    assert missing.value.body["param"] == "model"
    assert missing.value.body["code"] == "model_not_found"
    assert missing.value.body["type"] == "not_found_error"
    with pytest.raises(openai.UnprocessableEntityError) as invalid:
        client.completions.create(model="", prompt="x", temperature=9)
    assert "temperature" in invalid.value.message
    assert invalid.value.body["param"] == "temperature"
    reply = httpx.post(f"{live.url}/v1/completions", content=b"x" * 5_000_000, timeout=30)
    assert reply.status_code == 413
    assert set(reply.json()["error"]) == {"message", "type", "param", "code"}


def test_errors_auth_is_openai_shaped(tiny_model_dir: Path) -> None:
    with serving(tiny_model_dir, "--api-key", "sesame") as server:
        wrong = openai.OpenAI(base_url=f"{server.url}/v1", api_key="nope", max_retries=0)
        with pytest.raises(openai.AuthenticationError) as denied:
            wrong.chat.completions.create(messages=[{"role": "user", "content": "x"}], model="")
        assert denied.value.body["type"] == "authentication_error"
        right = openai.OpenAI(base_url=f"{server.url}/v1", api_key="sesame", max_retries=0)
        assert right.chat.completions.create(
            messages=[{"role": "user", "content": "x"}], model="", max_tokens=2
        ).choices


def test_chat_template_model_uses_its_template(tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    model = build_tiny_gpt2(tmp_path / "chatty", chat_template=TEMPLATE)
    messages = [
        {"role": "system", "content": "Be wise."},
        {"role": "user", "content": "life is"},
    ]
    tokenizer = AutoTokenizer.from_pretrained(model)
    expected = tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, tokenize=True, return_dict=True
    )["input_ids"]
    with serving(model) as server:
        info = httpx.get(f"{server.url}/info").json()
        assert info["chat_template"] is True
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
        chat = client.chat.completions.create(model="", messages=messages, max_tokens=4, seed=1)
    # The prompt was the rendered template, and the reply is the assistant's text alone.
    assert chat.usage.prompt_tokens == len(expected)
    assert not chat.choices[0].message.content.startswith("life is")
