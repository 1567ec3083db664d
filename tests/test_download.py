"""`quotegen download` and `quotegen models` against a local stand-in for the Hub."""

from __future__ import annotations

import errno
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from quotegen.cli import app
from quotegen.config import DEFAULT_MODEL_NAME
from quotegen.errors import DownloadError
from quotegen.loading.hub import hub_errors
from quotegen.loading.references import bundled_model_dir
from tests.helpers.cli import run_cli
from tests.helpers.hubserver import HubStandIn

runner = CliRunner()

#: The second tutorial's fine-tuned GPT-2 quote model, and the Hub revision with its
#: safetensors weights (its main branch only has pickle weights): a real repository's shape.
DEFAULT_HUB_MODEL = "nandinib1999/quote-generator"
DEFAULT_HUB_REVISION = "refs/pr/1"


@pytest.fixture(scope="module")
def hub(
    tiny_model_dir: Path, quote_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[HubStandIn]:
    import torch
    from safetensors.torch import load_file

    stand_in = HubStandIn().start()
    stand_in.add_repo("org/tiny", tiny_model_dir)
    stand_in.add_repo("org/tiny", quote_model_dir, revisions={"v1": ""})
    stand_in.add_repo("org/private", tiny_model_dir, private=True)
    stand_in.add_repo("org/gated", tiny_model_dir, gated=True)
    pickled = tmp_path_factory.mktemp("pickled")
    for f in tiny_model_dir.iterdir():
        if f.name != "model.safetensors":
            shutil.copy(f, pickled / f.name)
    torch.save(load_file(tiny_model_dir / "model.safetensors"), pickled / "pytorch_model.bin")
    stand_in.add_repo("org/pickled", pickled)
    # Seed 2's layout: pickle weights on main, safetensors on refs/pr/1.
    stand_in.add_repo(DEFAULT_HUB_MODEL, pickled)
    stand_in.add_repo(DEFAULT_HUB_MODEL, quote_model_dir, revisions={"refs/pr/1": ""})
    yield stand_in
    stand_in.stop()


@pytest.fixture
def online(hub: HubStandIn, hf_cache: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Network allowed, but only to the stand-in; an empty cache."""
    from huggingface_hub import constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    # Real models arrive in 10 MB chunks; the tiny one needs small chunks for a partial
    # transfer to leave bytes on disk to resume from.
    monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", 4096)
    hub.requests.clear()
    return hf_cache


def _download(*args: str):  # type: ignore[no-untyped-def]
    return runner.invoke(app, ["download", *args])


def _error(result) -> str:  # type: ignore[no-untyped-def]
    """The message the CLI's entry point would print for the raised error."""
    assert result.exception is not None
    return str(getattr(result.exception, "message", result.exception))


def test_download_success_prints_path_last(online: Path) -> None:
    result = _download("org/tiny")
    assert result.exit_code == 0, result.output
    path = Path(result.stdout.splitlines()[-1])
    assert path.parent.parent == online / "models--org--tiny"
    assert {p.name for p in path.iterdir()} >= {
        "config.json",
        "model.safetensors",
        "tokenizer.json",
    }
    assert "OK: GPT2LMHeadModel" in result.stderr


def test_download_revision(online: Path, hub: HubStandIn) -> None:
    result = _download("org/tiny", "--revision", "v1")
    assert result.exit_code == 0, result.output
    path = Path(result.stdout.splitlines()[-1])
    assert path.name == hub.repos["org/tiny"].revisions["v1"]
    assert "<PAD>" in (path / "tokenizer.json").read_text()
    assert (online / "models--org--tiny" / "refs" / "v1").read_text() == path.name


def test_download_include_exclude(online: Path) -> None:
    only_json = _download("org/tiny", "--include", "*.json", "--local-dir", str(online / "a"))
    assert only_json.exit_code == 0, only_json.output
    assert sorted(p.name for p in (online / "a").iterdir() if p.is_file()) == [
        "config.json",
        "generation_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
    ]
    no_tok = _download("org/tiny", "--exclude", "tokenizer*", "--local-dir", str(online / "b"))
    assert no_tok.exit_code == 0, no_tok.output
    names = {p.name for p in (online / "b").iterdir() if p.is_file()}
    assert "model.safetensors" in names
    assert not any(n.startswith("tokenizer") for n in names)


def test_download_local_dir(online: Path) -> None:
    target = online / "plain"
    result = _download("org/tiny", "--local-dir", str(target))
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1] == str(target)
    assert (target / "model.safetensors").is_file()


def test_download_resumes_a_dropped_transfer(online: Path, hub: HubStandIn) -> None:
    hub.cut_next["model.safetensors"] = 1
    result = _download("org/tiny")
    assert result.exit_code == 0, result.output
    ranges = [r for _, path, r in hub.requests if path.endswith("model.safetensors") and r]
    assert ranges, "the retry did not resume with a Range request"


def test_download_interrupted_for_good_leaves_a_usable_cache(online: Path, hub: HubStandIn) -> None:
    hub.cut_next["model.safetensors"] = 1000
    first = _download("org/tiny")
    hub.cut_next.clear()
    assert isinstance(first.exception, DownloadError), first.output
    assert "Run the same command again: files already complete are kept" in _error(first)
    # huggingface_hub drops the partial blob; the completed files stay cached.
    blobs = online / "models--org--tiny" / "blobs"
    assert not list(blobs.glob("*.incomplete"))
    assert len(list(blobs.iterdir())) >= 3
    hub.requests.clear()
    second = _download("org/tiny")
    assert second.exit_code == 0, second.output
    fetched = {path.rsplit("/", 1)[-1] for method, path, _ in hub.requests if method == "GET"}
    assert "model.safetensors" in fetched
    assert "config.json" not in fetched  # already complete: not downloaded again


@pytest.mark.parametrize(
    ("model", "args", "needle"),
    [
        ("org/nope", [], "was not found on the Hub"),
        ("org/tiny@nope", [], "Revision not found"),
        ("org/private", [], "set HF_TOKEN"),
        ("org/private", ["--token", "hf_wrong"], "set HF_TOKEN"),
        ("org/gated", [], "is gated"),
        ("org/pickled", [], "--allow-pickle"),
    ],
)
def test_download_errors(online: Path, model: str, args: list[str], needle: str) -> None:
    result = _download(model, *args)
    assert result.exit_code != 0
    assert needle in _error(result)


@pytest.mark.parametrize("model", ["org/private", "org/gated"])
def test_download_with_token(online: Path, hub: HubStandIn, model: str) -> None:
    result = _download(model, "--token", hub.token)
    assert result.exit_code == 0, result.output


def test_download_pickle_with_opt_in(online: Path) -> None:
    result = _download("org/pickled", "--allow-pickle")
    assert result.exit_code == 0, result.output
    assert (Path(result.stdout.splitlines()[-1]) / "pytorch_model.bin").is_file()


def test_download_offline_is_a_clear_error(online: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = _download("org/tiny")
    assert "HF_HUB_OFFLINE=1 forbids network access" in _error(result)


def test_download_unreachable_hub(online: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    result = _download("org/tiny")
    assert "Could not reach the Hub" in _error(result)


def test_disk_full_during_download_then_retry(hub: HubStandIn, tmp_path: Path) -> None:
    """A real write failure mid-download (a file-size limit stands in for a full disk)."""
    import resource
    import signal
    import subprocess
    import sys

    def small_disk() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG instead of being killed
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))

    env = {
        **os.environ,
        "HF_HOME": str(tmp_path / "hf"),
        "HF_ENDPOINT": hub.url,
        "HF_HUB_OFFLINE": "0",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    args = [sys.executable, "-m", "quotegen", "download", "org/tiny", "--no-check"]
    full = subprocess.run(
        args,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=small_disk,
        check=False,
    )
    assert full.returncode == 1, full.stderr
    assert "disk is full" in full.stderr
    assert full.stderr.count("Error:") == 1
    assert "Traceback" not in full.stderr
    retry = run_cli("download", "org/tiny", env={**env, "HF_HOME": str(tmp_path / "hf")})
    assert retry.returncode == 0, retry.stderr
    assert Path(retry.stdout.splitlines()[-1], "model.safetensors").stat().st_size > 64 * 1024


def test_disk_full_is_a_clear_error() -> None:
    with pytest.raises(DownloadError, match="disk is full"), hub_errors("org/x"):
        raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["org/tiny", "--cache-dir", "a", "--local-dir", "b"], "cannot be used together"),
        (["./local/path"], "does not exist"),
        (["org/tiny@v1", "--revision", "main"], "already names revision"),
    ],
)
def test_download_usage_errors(args: list[str], needle: str) -> None:
    proc = run_cli("download", *args)
    assert proc.returncode == 2
    assert needle in proc.stderr


def test_models_lists_cached_causal_lms(online: Path) -> None:
    assert _download("org/tiny").exit_code == 0
    assert _download(f"{DEFAULT_HUB_MODEL}@refs/pr/1").exit_code == 0  # seed 2's model
    records = [
        json.loads(line) for line in runner.invoke(app, ["models", "--json"]).stdout.splitlines()
    ]
    by_name = {(r["name"], r["revision"]): r for r in records}
    assert by_name[(DEFAULT_HUB_MODEL, "refs/pr/1")]["default"] is False
    assert by_name[("org/tiny", "main")]["prepared"] is True
    assert by_name[(DEFAULT_MODEL_NAME, None)]["default"] is True
    # Each model's own generation defaults, the ones a run gets where it sets nothing.
    shipped = json.loads(
        (bundled_model_dir(DEFAULT_MODEL_NAME) / "generation_config.json").read_text()
    )
    assert by_name[(DEFAULT_MODEL_NAME, None)]["defaults"]["temperature"] == shipped["temperature"]
    assert by_name[("quotegen-mini", None)]["defaults"]["repetition_penalty"] == 1.3
    table = runner.invoke(app, ["models"]).stdout.splitlines()
    assert table[0].split() == ["NAME", "REVISION", "SIZE", "DEFAULT", "PREPARED", "PATH"]
    assert any(line.startswith(f"{DEFAULT_MODEL_NAME} ") and " * " in line for line in table)


def test_download_then_generate_offline(hub: HubStandIn, tmp_path: Path) -> None:
    """The whole story as a user runs it: download (online), then generate with no network."""
    env = {"HF_HOME": str(tmp_path / "hf"), "HF_ENDPOINT": hub.url, "HF_HUB_OFFLINE": "0"}
    seed2 = f"{DEFAULT_HUB_MODEL}@refs/pr/1"
    fetched = run_cli("download", "-q", seed2, env=env)
    assert fetched.returncode == 0, fetched.stderr
    assert fetched.stdout.strip().endswith(hub.repos[DEFAULT_HUB_MODEL].revisions["refs/pr/1"])
    offline = {**env, "HF_HUB_OFFLINE": "1", "HF_ENDPOINT": "http://127.0.0.1:9"}
    generated = run_cli("generate", "--json", "--seed", "1", "-m", seed2, "life is", env=offline)
    assert generated.returncode == 0, generated.stderr
    assert json.loads(generated.stdout)["model"] == f"{DEFAULT_HUB_MODEL}@refs/pr/1"
    explicit = run_cli("generate", "-m", "org/tiny", "x", env=offline)
    assert explicit.returncode == 1
    assert "Run: quotegen download org/tiny" in explicit.stderr
    assert os.path.isdir(tmp_path / "hf" / "hub")
