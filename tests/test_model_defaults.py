"""A model's generation_config.json gives the defaults wherever a user or request leaves a
setting unset; quotegen's defaults stay the fallback; the seeds' routes keep their own."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from quotegen.engine.generation import Engine
from quotegen.loading.model import load_model, place
from quotegen.loading.references import parse_model_ref
from quotegen.server import create_app
from quotegen.settings import GenerationSettings, model_defaults
from tests.helpers.cli import run_cli
from tests.helpers.modelfactory import build_tiny_gpt2

OWN = {
    "do_sample": True,
    "temperature": 0.5,
    "top_k": 7,
    "top_p": 0.8,
    "repetition_penalty": 1.3,
    "max_new_tokens": 9,
    "stop_strings": ["."],
}


@pytest.fixture(scope="module")
def own_defaults_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_gpt2(tmp_path_factory.mktemp("defaults") / "m", generation=OWN)


@pytest.fixture(scope="module")
def own_engine(own_defaults_dir: Path) -> Engine:
    return Engine(load_model(parse_model_ref(str(own_defaults_dir)), place("cpu")))


# The same settings under quotegen's names (stop_strings is "stop").
EXPECTED = {("stop" if k == "stop_strings" else k): v for k, v in OWN.items()}


def test_model_defaults_read_from_generation_config(own_engine: Engine) -> None:
    assert own_engine.info.generation_config == EXPECTED
    settings = own_engine.settings({})
    for name, value in EXPECTED.items():
        assert getattr(settings, name) == value, name
    assert settings.n == 1  # not in the file: quotegen's default


def test_what_the_user_sets_wins(own_engine: Engine) -> None:
    settings = own_engine.settings({"temperature": 0.9, "stop": []})
    assert (settings.temperature, settings.stop, settings.top_k) == (0.9, [], 7)


def test_without_generation_config_quotegen_defaults_apply(engine: Engine) -> None:
    # The session's tiny model declares do_sample and top_k only.
    assert engine.settings({}).model_dump(exclude={"do_sample", "top_k"}) == (
        GenerationSettings().model_dump(exclude={"do_sample", "top_k"})
    )


@pytest.mark.parametrize(
    ("config", "kept"),
    [
        ({"temperature": 7.0, "top_k": 3}, {"top_k": 3}),  # out of range: left to quotegen
        ({"max_new_tokens": 10_000}, {}),
        ({"stop_strings": "!"}, {"stop": ["!"]}),
        ({"num_beams": 4, "top_p": 0.5}, {"top_p": 0.5}),
    ],
)
def test_model_defaults_keep_only_valid_settings(config: dict, kept: dict) -> None:  # type: ignore[type-arg]
    assert model_defaults(config) == kept


def test_cli_uses_and_reports_the_model_defaults(own_defaults_dir: Path) -> None:
    proc = run_cli("generate", "-m", str(own_defaults_dir), "--json", "--seed", "1", "life is")
    assert proc.returncode == 0, proc.stderr
    used = json.loads(proc.stdout)["settings"]
    assert {k: used[k] for k in EXPECTED} == EXPECTED
    proc = run_cli(
        "generate", "-m", str(own_defaults_dir), "--json", "-t", "4", "--top-k", "0", "x"
    )
    used = json.loads(proc.stdout)["settings"]
    assert (used["max_new_tokens"], used["top_k"], used["temperature"]) == (4, 0, 0.5)


def test_http_routes_use_the_model_defaults(own_engine: Engine) -> None:
    with TestClient(create_app(own_engine)) as client:
        info = client.get("/info").json()
        assert {k: info["defaults"][k] for k in EXPECTED} == EXPECTED
        native = client.post("/v1/generate", json={"prompts": ["a"], "settings": {"seed": 2}})
        used = native.json()["results"][0]["settings"]
        assert {k: used[k] for k in EXPECTED} == EXPECTED
        native = client.post("/v1/generate", json={"prompts": ["a"], "settings": {"top_k": 2}})
        assert native.json()["results"][0]["settings"]["top_k"] == 2
        # OpenAI: unset fields take the model's defaults before OpenAI's own (16 tokens, ...).
        body = client.post("/v1/completions", json={"prompt": "a", "seed": 1}).json()
        assert body["usage"]["completion_tokens"] <= 9
        with client.stream(
            "POST", "/v1/generate/stream", json={"prompt": "a", "settings": {"seed": 3}}
        ) as response:
            text = "".join(response.iter_text())
        assert '"top_k": 7' in text or '"top_k":7' in text


def test_seed_routes_keep_their_own_settings(
    own_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[GenerationSettings] = []
    prepare = own_engine.prepare

    def spy(prompts, settings, **options):  # type: ignore[no-untyped-def]
        seen.append(settings)
        return prepare(prompts, settings, **options)

    monkeypatch.setattr(own_engine, "prepare", spy)
    with TestClient(create_app(own_engine)) as client:
        assert client.post("/generate", json={"text": "life is"}).status_code == 200
        assert client.post("/generate_quote", params={"prompt": "life is"}).status_code == 200
    seed1, seed2 = seen
    tokens = own_engine.count_tokens("life is")
    assert (seed1.max_new_tokens, seed1.top_k, seed1.temperature, seed1.stop) == (
        35 - tokens,
        50,
        1.0,
        [],
    )
    assert (seed2.max_new_tokens, seed2.top_k, seed2.top_p) == (25 - tokens, 0, 0.9)
