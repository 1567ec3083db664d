"""Hostile and malformed input, HTTP and CLI: always a clear 4xx / exit 1-2, never a
traceback, and the server keeps serving."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers.cli import run_cli
from tests.helpers.live import LiveServer, serving

KEY = "k3y-for-tests"
AUTH = {"Authorization": f"Bearer {KEY}"}
JSON = {"Content-Type": "application/json", **AUTH}
MB = 1024 * 1024


@pytest.fixture(scope="module")
def server(tiny_model_dir: Path) -> Iterator[LiveServer]:
    with serving(tiny_model_dir, "--api-key", KEY, "--max-body-bytes", str(MB)) as live:
        yield live


def body(data: Any) -> dict[str, Any]:
    return {"content": json.dumps(data).encode(), "headers": JSON}


def raw(data: bytes, content_type: str = "application/json") -> dict[str, Any]:
    return {"content": data, "headers": {"Content-Type": content_type, **AUTH}}


HTTP_CASES: list[tuple[str, str, str, dict[str, Any], int]] = [
    # (id, method, path, request kwargs, expected status)
    ("seed1-empty-object", "POST", "/generate", body({}), 422),
    ("seed1-text-null", "POST", "/generate", body({"text": None}), 422),
    ("seed1-text-number", "POST", "/generate", body({"text": 42}), 422),
    ("seed1-text-list", "POST", "/generate", body({"text": ["a"]}), 422),
    ("seed1-text-object", "POST", "/generate", body({"text": {"a": 1}}), 422),
    ("seed1-unknown-field", "POST", "/generate", body({"text": "x", "evil": 1}), 422),
    ("seed1-body-is-list", "POST", "/generate", body(["text"]), 422),
    ("seed1-body-is-string", "POST", "/generate", body("text"), 422),
    ("seed1-not-json", "POST", "/generate", raw(b"{text: x}"), 422),
    ("seed1-invalid-utf8", "POST", "/generate", raw(b'{"text": "\xff\xfe"}'), 400),
    ("seed1-nul-byte", "POST", "/generate", body({"text": "a\u0000b"}), 422),
    ("seed1-1mb-prompt", "POST", "/generate", body({"text": "x" * MB}), 413),
    ("seed1-100kb-prompt", "POST", "/generate", body({"text": "x" * 100_000}), 422),
    ("seed1-temperature-nan", "POST", "/generate", raw(b'{"text": "x", "temperature": NaN}'), 422),
    (
        "seed1-temperature-inf",
        "POST",
        "/generate",
        raw(b'{"text": "x", "temperature": Infinity}'),
        422,
    ),
    (
        "seed1-temperature-negative",
        "POST",
        "/generate",
        body({"text": "x", "temperature": -1}),
        422,
    ),
    ("seed1-temperature-string", "POST", "/generate", body({"text": "x", "temperature": "1"}), 422),
    ("seed1-seed-bool", "POST", "/generate", body({"text": "x", "seed": True}), 422),
    ("seed1-seed-negative", "POST", "/generate", body({"text": "x", "seed": -1}), 422),
    ("seed1-seed-huge", "POST", "/generate", body({"text": "x", "seed": 10**30}), 422),
    ("seed1-top-p-zero", "POST", "/generate", body({"text": "x", "top_p": 0}), 422),
    (
        "seed1-max-tokens-huge",
        "POST",
        "/generate",
        body({"text": "x", "max_new_tokens": 10**9}),
        422,
    ),
    (
        "seed1-max-tokens-over-context",
        "POST",
        "/generate",
        body({"text": "x", "max_new_tokens": 2000}),
        422,
    ),
    (
        "seed1-min-over-max",
        "POST",
        "/generate",
        body({"text": "x", "min_new_tokens": 9, "max_new_tokens": 2}),
        422,
    ),
    ("seed1-stop-empty", "POST", "/generate", body({"text": "x", "stop": [""]}), 422),
    ("seed1-stop-too-many", "POST", "/generate", body({"text": "x", "stop": ["a"] * 50}), 422),
    ("seed1-wrong-content-type", "POST", "/generate", raw(b'{"text": "x"}', "text/plain"), 422),
    (
        "seed1-form-encoded",
        "POST",
        "/generate",
        raw(b"text=x", "application/x-www-form-urlencoded"),
        422,
    ),
    ("seed2-json-body", "POST", "/generate_quote", body({"prompt": "x"}), 422),
    ("seed2-no-prompt", "POST", "/generate_quote", {"headers": AUTH}, 422),
    ("seed2-top-k-text", "POST", "/generate_quote?prompt=x&top_k=many", {"headers": AUTH}, 422),
    (
        "seed2-temperature-nan",
        "POST",
        "/generate_quote?prompt=x&temperature=nan",
        {"headers": AUTH},
        422,
    ),
    ("seed2-huge-prompt", "POST", "/generate_quote?prompt=" + "x" * 20_000, {"headers": AUTH}, 422),
    ("seed2-get", "GET", "/generate_quote?prompt=x", {"headers": AUTH}, 405),
    ("openai-n-huge", "POST", "/v1/completions", body({"prompt": "x", "n": 10**6}), 422),
    ("chat-no-messages", "POST", "/v1/chat/completions", body({"messages": []}), 422),
    ("chat-messages-string", "POST", "/v1/chat/completions", body({"messages": "hi"}), 422),
    (
        "chat-bad-role",
        "POST",
        "/v1/chat/completions",
        body({"messages": [{"role": "wizard", "content": "x"}]}),
        422,
    ),
    (
        "chat-image-part",
        "POST",
        "/v1/chat/completions",
        body({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]}),
        422,
    ),
    (
        "chat-ends-with-system",
        "POST",
        "/v1/chat/completions",
        body({"messages": [{"role": "system", "content": "be brief"}]}),
        422,
    ),
    (
        "chat-top-logprobs-alone",
        "POST",
        "/v1/chat/completions",
        body({"messages": [{"role": "user", "content": "x"}], "top_logprobs": 2}),
        422,
    ),
    (
        "chat-unknown-model",
        "POST",
        "/v1/chat/completions",
        body({"model": "gpt-9", "messages": [{"role": "user", "content": "x"}]}),
        404,
    ),
    (
        "chat-huge-prompt",
        "POST",
        "/v1/chat/completions",
        body({"messages": [{"role": "user", "content": "x" * 20_000}]}),
        422,
    ),
    (
        "openai-max-tokens-huge",
        "POST",
        "/v1/completions",
        body({"prompt": "x", "max_tokens": 10**6}),
        422,
    ),
    (
        "openai-max-tokens-negative",
        "POST",
        "/v1/completions",
        body({"prompt": "x", "max_tokens": -5}),
        422,
    ),
    ("openai-prompt-tokens", "POST", "/v1/completions", body({"prompt": [1, 2, 3]}), 422),
    ("openai-prompt-empty-list", "POST", "/v1/completions", body({"prompt": []}), 422),
    ("openai-prompt-too-many", "POST", "/v1/completions", body({"prompt": ["x"] * 100}), 422),
    ("openai-logprobs", "POST", "/v1/completions", body({"prompt": "x", "logprobs": 6}), 422),
    (
        "openai-penalty",
        "POST",
        "/v1/completions",
        body({"prompt": "x", "presence_penalty": 1}),
        422,
    ),
    ("openai-best-of", "POST", "/v1/completions", body({"prompt": "x", "n": 2, "best_of": 1}), 422),
    (
        "openai-best-of-stream",
        "POST",
        "/v1/completions",
        body({"prompt": "x", "best_of": 2, "stream": True}),
        422,
    ),
    (
        "openai-path-model",
        "POST",
        "/v1/completions",
        body({"prompt": "x", "model": "/etc/passwd"}),
        404,
    ),
    (
        "openai-dotdot-model",
        "POST",
        "/v1/completions",
        body({"prompt": "x", "model": "../../secret"}),
        404,
    ),
    ("openai-hub-model", "POST", "/v1/completions", body({"prompt": "x", "model": "gpt2"}), 404),
    (
        "native-settings-string",
        "POST",
        "/v1/generate",
        body({"prompts": ["x"], "settings": "hot"}),
        422,
    ),
    ("native-prompts-null", "POST", "/v1/generate", body({"prompts": None}), 422),
    (
        "native-unknown-setting",
        "POST",
        "/v1/generate",
        body({"prompts": ["x"], "settings": {"model": "gpt2"}}),
        422,
    ),
    ("stream-n-ignored-bad-type", "POST", "/v1/generate/stream", body({"prompt": 5}), 422),
    (
        "auth-missing",
        "POST",
        "/generate",
        {"content": b'{"text": "x"}', "headers": {"Content-Type": "application/json"}},
        401,
    ),
    (
        "auth-wrong",
        "POST",
        "/generate",
        {
            "content": b'{"text": "x"}',
            "headers": {"Content-Type": "application/json", "Authorization": "Bearer nope"},
        },
        401,
    ),
    (
        "auth-basic",
        "POST",
        "/generate",
        {
            "content": b'{"text": "x"}',
            "headers": {"Content-Type": "application/json", "Authorization": "Basic azN5"},
        },
        401,
    ),
    (
        "auth-garbage",
        "POST",
        "/generate",
        {
            "content": b'{"text": "x"}',
            "headers": {
                "Content-Type": "application/json",
                "Authorization": b"Bearer \xc3\xa9\xff",
            },
        },
        401,
    ),
    (
        "auth-key-as-prefix",
        "POST",
        "/generate",
        {
            "content": b'{"text": "x"}',
            "headers": {"Content-Type": "application/json", "Authorization": f"Bearer {KEY}extra"},
        },
        401,
    ),
    ("auth-metrics", "GET", "/metrics", {}, 401),
    ("unknown-route", "GET", "/admin", {}, 404),
    ("path-traversal", "GET", "/../../etc/passwd", {}, 404),
    ("method-not-allowed", "DELETE", "/generate", {"headers": AUTH}, 405),
]


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status"),
    [pytest.param(m, p, k, s, id=i) for i, m, p, k, s in HTTP_CASES],
)
def test_http_bad_input(
    server: LiveServer, method: str, path: str, kwargs: dict[str, Any], status: int
) -> None:
    try:
        response = httpx.request(method, f"{server.url}{path}", timeout=30, **kwargs)
    except httpx.RemoteProtocolError:
        pytest.fail("the server dropped the connection instead of answering")
    assert response.status_code == status, response.text[:500]
    payload = response.json()
    assert payload["error"]["message"]
    # OpenAI's shape on every route, so SDKs show the message.
    assert set(payload["error"]) == {"message", "type", "param", "code"}
    assert payload["error"]["type"].endswith("_error")
    assert "Traceback" not in response.text


def test_http_oversized_content_length_refused_before_reading(server: LiveServer) -> None:
    """A client announcing a huge body is answered 413 at once, without sending it."""
    import socket
    from urllib.parse import urlsplit

    url = urlsplit(server.url)
    assert url.hostname is not None
    assert url.port is not None
    with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
        sock.sendall(
            b"POST /generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Authorization: Bearer {KEY}\r\nContent-Length: 999999999\r\n\r\n".encode()
        )
        reply = b""
        while b"request_too_large" not in reply:
            chunk = sock.recv(65536)
            if not chunk:
                break
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 413")
    assert b"request_too_large" in reply


def test_http_server_still_serves_after_the_abuse(server: LiveServer) -> None:
    assert httpx.get(f"{server.url}/health").status_code == 200
    ok = httpx.post(f"{server.url}/generate", json={"text": "life is"}, headers=AUTH, timeout=30)
    assert ok.status_code == 200
    assert ok.json()["generated_text"].startswith("life is")


CLI_CASES: list[tuple[str, list[str], bytes | None, int, str]] = [
    ("temperature-nan", ["generate", "--temperature", "nan", "x"], None, 2, "--temperature"),
    ("temperature-inf", ["generate", "--temperature", "inf", "x"], None, 2, "--temperature"),
    ("top-p-negative", ["generate", "--top-p", "-0.5", "x"], None, 2, "--top-p"),
    ("n-huge", ["generate", "-n", "1000000", "x"], None, 2, "-n"),
    ("max-tokens-huge", ["generate", "-t", "99999999", "x"], None, 2, "--max-new-tokens"),
    ("seed-negative", ["generate", "--seed", "-1", "x"], None, 2, "--seed"),
    ("seed-text", ["generate", "--seed", "abc", "x"], None, 2, "--seed"),
    ("stop-empty", ["generate", "--stop", "", "x"], None, 2, "--stop"),
    ("model-path-missing", ["generate", "-m", "/nope/../nope", "x"], None, 2, "does not exist"),
    ("model-bad-name", ["generate", "-m", "a b c", "x"], None, 2, "neither a local directory"),
    ("model-system-dir", ["generate", "-m", "/etc", "x"], None, 1, "not a model directory"),
    ("device-bad", ["generate", "--device", "gpu9", "x"], None, 2, "device"),
    ("dtype-bad", ["generate", "--dtype", "int3", "x"], None, 2, "dtype"),
    ("port-bad", ["serve", "--port", "99999"], None, 2, "--port"),
    ("download-local-path", ["download", "./x"], None, 2, "does not exist"),
    ("eval-missing-file", ["eval", "/nope.txt"], None, 1, "does not exist"),
]


@pytest.mark.parametrize(
    ("args", "stdin", "code", "needle"),
    [pytest.param(a, s, c, n, id=i) for i, a, s, c, n in CLI_CASES],
)
def test_cli_bad_input(args: list[str], stdin: bytes | None, code: int, needle: str) -> None:
    proc = run_cli(*args, input=stdin)
    assert proc.returncode == code, proc.stderr
    assert proc.stderr.startswith("Error: ")
    assert proc.stderr.count("\n") == 1
    assert needle in proc.stderr
    assert proc.stdout == ""


@pytest.mark.parametrize(
    ("stdin", "code", "expect_lines"),
    [
        pytest.param(b"ok\n\xff\xfe\n", 1, 1, id="invalid-utf8-line-2"),
        pytest.param(b"a\x00b\n", 0, 1, id="nul-byte-prompt"),
        pytest.param(b"\n \n\t\n", 0, 3, id="blank-lines-get-defaults"),
        pytest.param(b"x" * MB + b"\n", 1, 0, id="1mb-prompt-too-long"),
    ],
)
def test_cli_hostile_stdin(
    tiny_model_dir: Path, stdin: bytes, code: int, expect_lines: int
) -> None:
    proc = run_cli("generate", "-m", str(tiny_model_dir), "-t", "4", input=stdin)
    assert proc.returncode == code, proc.stderr
    assert len(proc.stdout.splitlines()) == expect_lines
    assert "Traceback" not in proc.stderr
    if code:
        assert proc.stderr.startswith("Error: ")
