"""The HTTP API with the app factory and a fake generator: shapes, validation, auth, limits."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from quotegen.config import DEFAULT_PROMPTS
from quotegen.server import create_app
from quotegen.settings import ServeConfig
from tests.helpers.fakes import FakeEngine


@pytest.fixture
def client(fake_engine) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    with TestClient(create_app(fake_engine)) as test_client:
        yield test_client


def _app_client(**config: object) -> TestClient:
    engine = FakeEngine(delay=float(config.pop("delay", 0.0)))  # type: ignore[arg-type]
    return TestClient(create_app(engine, config=ServeConfig(**config)))  # type: ignore[arg-type]


# -- seed 1 ------------------------------------------------------------------------------------


def test_seed1_generate_shape(client: TestClient) -> None:
    response = client.post("/generate", json={"text": "life is"})
    assert response.status_code == 200
    body = response.json()
    assert list(body) == ["generated_text"]
    assert body["generated_text"].startswith("life is w0 w1")


def test_seed1_defaults_max_length_35_including_prompt(client: TestClient, fake_engine) -> None:  # type: ignore[no-untyped-def]
    client.post("/generate", json={"text": "one two three"})
    (row,) = fake_engine.seen[-1]
    s = row.settings
    assert (row.max_new_tokens, s.top_k, s.top_p, s.temperature, s.do_sample, s.stop) == (
        32,
        50,
        1.0,
        1.0,
        True,
        [],
    )
    assert len(row.prompt_ids) + len(row.token_ids) == 35


@pytest.mark.parametrize(
    ("kwargs", "loc"),
    [
        ({"json": {}}, ["body", "text"]),
        ({"json": {"prompt": "x"}}, ["body", "text"]),
        ({"content": b"", "headers": {"content-type": "application/json"}}, ["body"]),
        ({"json": {"text": 5}}, ["body", "text"]),
        ({"json": {"text": "x", "temperature": -1}}, ["body", "temperature"]),
    ],
)
def test_seed1_bad_bodies_422(client: TestClient, kwargs: dict, loc: list[str]) -> None:  # type: ignore[type-arg]
    response = client.post("/generate", **kwargs)
    assert response.status_code == 422
    body = response.json()
    assert body["detail"][0]["loc"] == loc
    assert body["error"]["code"] == "invalid_request"


def test_seed1_optional_settings(client: TestClient, fake_engine) -> None:  # type: ignore[no-untyped-def]
    response = client.post("/generate", json={"text": "x", "seed": 3, "max_new_tokens": 2})
    assert response.json() == {"generated_text": "x w0 w1"}
    assert fake_engine.seen[-1][0].seed == 3


# -- seed 2 ------------------------------------------------------------------------------------


def test_seed2_generate_quote_is_a_bare_string(client: TestClient) -> None:
    response = client.post("/generate_quote", params={"prompt": "life is"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert isinstance(body, str)
    assert body.startswith("Life is w0")


def test_seed2_defaults(client: TestClient, fake_engine) -> None:  # type: ignore[no-untyped-def]
    client.post("/generate_quote", params={"prompt": "a b"})
    (row,) = fake_engine.seen[-1]
    s = row.settings
    assert (s.top_p, s.top_k, s.temperature, s.min_new_tokens, s.clean) == (0.9, 0, 1.0, 1, True)
    assert row.max_new_tokens == 23  # max_length 25 including the 2 prompt tokens


def test_seed2_empty_prompt_uses_a_default(client: TestClient) -> None:
    body = client.post("/generate_quote?prompt=").json()
    assert any(body.startswith(p.capitalize()) for p in DEFAULT_PROMPTS)


@pytest.mark.parametrize(
    "kwargs",
    [{"json": {"prompt": "life is"}}, {}, {"params": {"prompt": "x", "top_p": 0}}],
)
def test_seed2_bad_requests_422(client: TestClient, kwargs: dict) -> None:  # type: ignore[type-arg]
    response = client.post("/generate_quote", **kwargs)
    assert response.status_code == 422
    assert "error" in response.json()


def test_seed2_settings_via_query(client: TestClient, fake_engine) -> None:  # type: ignore[no-untyped-def]
    first = client.post("/generate_quote", params={"prompt": "", "seed": 11}).json()
    second = client.post("/generate_quote", params={"prompt": "", "seed": 11}).json()
    assert first == second
    assert fake_engine.seen[-1][0].seed == 11


# -- the page ----------------------------------------------------------------------------------


def test_index_html_works_offline(client: TestClient) -> None:
    """The page and its assets come from the package: nothing from another host."""
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    assert "<h1>quotegen" in page
    assert "<form" in page
    assert 'id="model">fake-model<' in page  # named before any script runs
    assets = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert set(assets) >= {"/static/app.js", "/static/style.css", "/static/favicon.svg"}
    for asset in assets:
        assert asset.startswith("/"), asset
        assert client.get(asset).status_code == 200, asset
    script = client.get("/static/app.js").text
    assert "/v1/generate/stream" in script
    assert client.get("/favicon.ico").headers["content-type"].startswith("image/svg")
    for text in (page, script, client.get("/static/style.css").text):
        assert "http://" not in text
        assert "https://" not in text


def test_index_json_for_seed2_clients(client: TestClient) -> None:
    response = client.get("/", headers={"Accept": "application/json"})
    assert response.json() == {"message": "This is Quote Generation API test"}


# -- OpenAI-compatible and native --------------------------------------------------------------


def test_completions_shape(client: TestClient) -> None:
    response = client.post(
        "/v1/completions", json={"prompt": ["a", "b c"], "max_tokens": 3, "n": 2, "seed": 1}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "text_completion"
    assert body["id"].startswith("cmpl-")
    assert [c["index"] for c in body["choices"]] == [0, 1, 2, 3]
    assert all(c["text"] == " w0 w1 w2" for c in body["choices"])
    assert all(c["finish_reason"] == "length" for c in body["choices"])
    assert body["usage"] == {"prompt_tokens": 3, "completion_tokens": 12, "total_tokens": 15}


def test_completions_echo_and_stop(client: TestClient) -> None:
    body = client.post(
        "/v1/completions", json={"prompt": "hi", "max_tokens": 5, "stop": "w2", "echo": True}
    ).json()
    assert body["choices"][0]["text"] == "hi w0 w1 "
    assert body["choices"][0]["finish_reason"] == "stop"


@pytest.mark.parametrize(
    ("payload", "status", "needle"),
    [
        ({"prompt": "x", "model": "../../etc/passwd"}, 404, "not served here"),
        ({"prompt": "x", "logprobs": 9}, 422, "logprobs"),
        ({"prompt": "x", "max_tokens": 100000}, 422, "max_tokens"),
        ({"prompt": "x", "n": 1000}, 422, "n: Input should be less than or equal to 16"),
        ({"prompt": "x", "temperature": "hot"}, 422, "temperature"),
        ({"prompt": []}, 422, "1 to 64 prompts"),
        ({"prompt": "x", "stop": [""]}, 422, "at least 1 character"),
        ({"prompt": "x", "bogus": 1}, 422, "bogus"),
        ({"prompt": "x", "max_tokens": 64}, 422, "model's context is 64 tokens"),
    ],
)
def test_completions_bad_requests(
    client: TestClient,
    payload: dict,
    status: int,
    needle: str,  # type: ignore[type-arg]
) -> None:
    response = client.post("/v1/completions", json=payload)
    assert response.status_code == status
    assert needle in response.json()["error"]["message"]


def _sse_events(text: str) -> list[tuple[str | None, str]]:
    events = []
    for block in text.strip().split("\n\n"):
        event = None
        data = ""
        for line in block.splitlines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                data = line[6:]
        events.append((event, data))
    return events


def test_completions_stream(client: TestClient) -> None:
    with client.stream(
        "POST",
        "/v1/completions",
        json={
            "prompt": "x",
            "max_tokens": 3,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = _sse_events(response.read().decode())
    assert events[-1] == (None, "[DONE]")
    chunks = [json.loads(data) for _, data in events[:-1]]
    text = "".join(c["choices"][0]["text"] for c in chunks if c["choices"])
    assert text == " w0 w1 w2"
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"
    assert chunks[-1]["usage"]["completion_tokens"] == 3


def test_models_list(client: TestClient) -> None:
    body = client.get("/v1/models").json()
    assert body["object"] == "list"
    assert body["data"][0]["id"] == "fake-model"


def test_native_generate_uses_the_cli_schema(client: TestClient) -> None:
    from quotegen.schemas import GenerateResponse

    response = client.post(
        "/v1/generate", json={"prompts": ["a", ""], "settings": {"seed": 4, "max_new_tokens": 2}}
    )
    results = GenerateResponse.model_validate(response.json()).results
    assert [r.index for r in results] == [0, 1]
    assert results[0].text == "A w0 w1"
    assert results[1].prompt in DEFAULT_PROMPTS


def test_native_stream(client: TestClient) -> None:
    response = client.post(
        "/v1/generate/stream", json={"prompt": "a", "settings": {"max_new_tokens": 3}}
    )
    events = _sse_events(response.text)
    assert [e for e, _ in events] == ["prompt"] + ["token"] * 3 + ["result"]
    assert json.loads(events[0][1]) == {"prompt": "a"}
    assert json.loads(events[-1][1])["completion"] == " w0 w1 w2"


# -- health, info, metrics ---------------------------------------------------------------------


def test_health_503_while_loading_then_200(fake_engine) -> None:  # type: ignore[no-untyped-def]
    release = threading.Event()

    def loader():  # type: ignore[no-untyped-def]
        release.wait(10)
        return fake_engine

    with TestClient(create_app(loader=loader)) as client:
        loading = client.get("/health")
        assert loading.status_code == 503
        assert loading.json()["status"] == "loading"
        busy = client.post("/generate", json={"text": "x"})
        assert busy.status_code == 503
        assert busy.headers["retry-after"] == "1"
        release.set()
        for _ in range(100):
            if client.get("/health").status_code == 200:
                break
            time.sleep(0.02)
        assert client.get("/health").json() == {"status": "ok", "detail": None}


def test_info(client: TestClient) -> None:
    body = client.get("/info").json()
    assert body["model"] == "fake-model"
    assert body["limits"]["context_length"] == 64
    assert body["limits"]["max_batch_size"] == 32
    assert body["quantize"] == "none"


def test_metrics_prometheus(client: TestClient) -> None:
    client.post("/generate", json={"text": "x"})
    text = client.get("/metrics").text
    assert 'quotegen_requests_total{route="/generate",status="200"} 1.0' in text
    assert "quotegen_generated_tokens_total" in text
    assert "quotegen_batch_size_count 1.0" in text
    assert "quotegen_queue_depth" in text


# -- auth, CORS, limits ------------------------------------------------------------------------

PROTECTED = [
    ("POST", "/generate", {"json": {"text": "x"}}),
    ("POST", "/generate_quote?prompt=x", {}),
    ("POST", "/v1/completions", {"json": {"prompt": "x"}}),
    ("POST", "/v1/chat/completions", {"json": {"messages": [{"role": "user", "content": "x"}]}}),
    ("GET", "/v1/models", {}),
    ("POST", "/v1/generate", {"json": {"prompts": ["x"]}}),
    ("POST", "/v1/generate/stream", {"json": {"prompt": "x"}}),
    ("GET", "/info", {}),
    ("GET", "/metrics", {}),
]


@pytest.mark.parametrize(("method", "path", "kwargs"), PROTECTED)
@pytest.mark.parametrize(
    "header",
    [None, "Bearer wrong", "Bearer", "Basic czNjcmV0", "bearer s3cret-not", "s3cret", "Bearer  "],
)
def test_api_key_required(method: str, path: str, kwargs: dict, header: str | None) -> None:  # type: ignore[type-arg]
    with _app_client(api_key="s3cret") as client:
        headers = {"Authorization": header} if header is not None else {}
        response = client.request(method, path, headers=headers, **kwargs)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "unauthorized"
        assert response.headers["www-authenticate"] == "Bearer"
        ok = client.request(method, path, headers={"Authorization": "Bearer s3cret"}, **kwargs)
        assert ok.status_code == 200


def test_health_and_page_stay_open_with_api_key() -> None:
    with _app_client(api_key="s3cret") as client:
        assert client.get("/health").status_code == 200
        assert client.get("/").status_code == 200
        assert client.get("/openapi.json").status_code == 200


def test_cors_off_by_default(client: TestClient) -> None:
    response = client.options(
        "/generate",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in response.headers


def test_cors_when_asked() -> None:
    with _app_client(cors_origins=["https://ok.example"]) as client:
        preflight = client.options(
            "/generate",
            headers={"Origin": "https://ok.example", "Access-Control-Request-Method": "POST"},
        )
        assert preflight.headers["access-control-allow-origin"] == "https://ok.example"
        other = client.options(
            "/generate",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
        )
        assert "access-control-allow-origin" not in other.headers


def test_body_too_large_413() -> None:
    with _app_client(max_body_bytes=2048) as client:
        response = client.post("/generate", json={"text": "x" * 5000})
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "request_too_large"
        assert client.post("/generate", json={"text": "fine"}).status_code == 200


def test_prompt_bytes_limit_422() -> None:
    with _app_client(max_prompt_bytes=10) as client:
        response = client.post("/generate", json={"text": "é" * 6})
        assert response.status_code == 422
        assert "12 bytes; the limit is 10" in response.json()["error"]["message"]


def test_nul_in_prompt_422(client: TestClient) -> None:
    response = client.post("/generate", json={"text": "a\u0000b"})
    assert response.status_code == 422


def test_unknown_route_json_404(client: TestClient) -> None:
    response = client.get("/nope")
    assert response.status_code == 404
    assert response.json()["error"]["message"] == "Not Found"


def test_queue_full_answers_503_at_once() -> None:
    with _app_client(max_batch_size=1, max_queue=1, max_wait_ms=0, delay=0.05) as client:
        statuses: list[int] = []
        retry_after: list[str | None] = []

        def call() -> None:
            r = client.post("/generate", json={"text": "x", "max_new_tokens": 5})
            statuses.append(r.status_code)
            retry_after.append(r.headers.get("retry-after"))

        threads = [threading.Thread(target=call) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    assert set(statuses) <= {200, 503}
    assert 503 in statuses
    assert 200 in statuses
    assert all(ra == "1" for s, ra in zip(statuses, retry_after, strict=True) if s == 503)


def test_request_timeout_504() -> None:
    with _app_client(request_timeout_s=0.2, delay=0.1) as client:
        response = client.post("/generate", json={"text": "x", "max_new_tokens": 30})
        assert response.status_code == 504
        assert response.json()["error"]["code"] == "timeout"


def test_openapi_documents_every_route(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    for path in [
        "/",
        "/generate",
        "/generate_quote",
        "/v1/completions",
        "/v1/chat/completions",
        "/v1/models",
        "/v1/generate",
        "/v1/generate/stream",
        "/health",
        "/info",
        "/metrics",
    ]:
        assert path in spec["paths"], path
    assert spec["components"]["schemas"]["Seed1Request"]["examples"]
    assert client.get("/docs").status_code == 200
