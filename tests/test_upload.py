"""`quotegen upload` against the local stand-in Hub (tests/hubserver.py), in real processes:
publish, download back, generate; and every refusal as one clear line."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.cli import run_cli
from tests.helpers.hubserver import HubStandIn
from tests.helpers.live import free_port

CARD = "---\nlicense: mit\nlibrary_name: transformers\n---\n# tiny\n\nA test model.\n"


@pytest.fixture(scope="module")
def hub() -> Iterator[HubStandIn]:
    stand_in = HubStandIn().start()
    yield stand_in
    stand_in.stop()


@pytest.fixture(scope="module")
def model_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    import shutil

    out = tmp_path_factory.mktemp("publish") / "tiny"
    shutil.copytree(tiny_model_dir, out)
    (out / "README.md").write_text(CARD)
    (out / ".cache").mkdir()
    (out / ".cache" / "junk").write_text("not published")
    return out


def _env(hub: HubStandIn, tmp_path: Path, token: str | None = "hf_good_token") -> dict[str, str]:
    env = {
        "HF_ENDPOINT": hub.url,
        "HF_HUB_OFFLINE": "0",
        "HF_HOME": str(tmp_path / "hf-home"),  # no stored login
        "HF_HUB_CACHE": str(tmp_path / "hf-cache"),
        "HF_TOKEN": token or "",
    }
    return env


def test_upload_then_download_and_generate(
    hub: HubStandIn, model_dir: Path, tmp_path: Path
) -> None:
    env = _env(hub, tmp_path)
    proc = run_cli("upload", str(model_dir), "tester/tiny-quotes", "-m", "First model", env=env)
    assert proc.returncode == 0, proc.stderr
    url = proc.stdout.strip()
    repo = hub.repos["tester/tiny-quotes"]
    assert url == f"{hub.url}/tester/tiny-quotes/commit/{repo.revisions['main']}"
    files = repo.commits[repo.revisions["main"]]
    assert files["README.md"].decode() == CARD
    assert files["model.safetensors"] == (model_dir / "model.safetensors").read_bytes()
    assert not any(name.startswith(".cache") for name in files)
    assert hub.commit_messages[-1] == "First model"
    assert "OK: GPT2LMHeadModel" in proc.stderr

    # Back down through the real download path, then generate with it.
    fetched = run_cli("download", "tester/tiny-quotes", env=env)
    assert fetched.returncode == 0, fetched.stderr
    args = ["generate", "--seed", "3", "-t", "8", "life is"]
    remote = run_cli(*args, "-m", "tester/tiny-quotes", env={**env, "HF_HUB_OFFLINE": "1"})
    local = run_cli(*args, "-m", str(model_dir))
    assert remote.returncode == 0, remote.stderr
    assert remote.stdout == local.stdout
    assert remote.stdout.startswith("Life is")


def test_upload_private_to_a_branch(hub: HubStandIn, model_dir: Path, tmp_path: Path) -> None:
    env = _env(hub, tmp_path)
    proc = run_cli(
        "upload", str(model_dir), "quotegen-org/secret", "--private", "--revision", "v2", env=env
    )
    assert proc.returncode == 0, proc.stderr
    repo = hub.repos["quotegen-org/secret"]
    assert repo.private
    assert "config.json" in repo.commits[repo.revisions["v2"]]
    assert repo.commits[repo.revisions["main"]] == {}
    # A second upload to the same branch is a new commit on it (the repo and branch exist).
    again = run_cli("upload", str(model_dir), "quotegen-org/secret", "--revision", "v2", env=env)
    assert again.returncode == 0, again.stderr
    assert hub.commit_messages[-1] == "Upload tiny with quotegen"


@pytest.mark.parametrize(
    ("repo_id", "extra", "token", "needle"),
    [
        ("tester/missing", ["--no-create"], "hf_good_token", "does not exist on the Hub"),
        ("tester/x", [], None, "No Hugging Face token"),
        ("tester/x", [], "hf_bad", "refused your token (HTTP 401)"),
        ("someone-else/x", [], "hf_good_token", "may not write to 'someone-else/x' (HTTP 403)"),
    ],
)
def test_upload_refusals_are_one_line(
    hub: HubStandIn,
    model_dir: Path,
    tmp_path: Path,
    repo_id: str,
    extra: list[str],
    token: str | None,
    needle: str,
) -> None:
    proc = run_cli("upload", str(model_dir), repo_id, *extra, env=_env(hub, tmp_path, token))
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.splitlines()[-1].startswith("Error: ")
    assert needle in proc.stderr.splitlines()[-1]
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""


def test_upload_without_network(model_dir: Path, tmp_path: Path) -> None:
    env = {
        "HF_ENDPOINT": f"http://127.0.0.1:{free_port()}",
        "HF_HUB_OFFLINE": "0",
        "HF_TOKEN": "hf_good_token",
        "HF_HOME": str(tmp_path),
    }
    proc = run_cli("upload", str(model_dir), "tester/x", env=env)
    assert proc.returncode == 1
    assert "Could not reach the Hub" in proc.stderr.splitlines()[-1]


def test_upload_refuses_a_directory_that_is_not_a_model(hub: HubStandIn, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "gpt2"}')
    before = len(hub.requests)
    proc = run_cli("upload", str(broken), "tester/broken", env=_env(hub, tmp_path))
    assert proc.returncode == 1
    assert proc.stderr.splitlines()[-1].startswith("Error: ")
    assert len(hub.requests) == before  # nothing was sent
    assert "tester/broken" not in hub.repos


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["{dir}", "no namespace!"], "is not a Hub repo id"),
        (["{dir}", "justname"], "needs its namespace"),
        (["/nonexistent/dir", "tester/x"], "is not a directory"),
    ],
)
def test_upload_usage_errors(model_dir: Path, args: list[str], needle: str) -> None:
    proc = run_cli("upload", *(a.replace("{dir}", str(model_dir)) for a in args))
    assert proc.returncode == 2
    assert needle in proc.stderr
