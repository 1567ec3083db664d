"""`quotegen batch` in real processes with the tiny model: formats in and out, per-line
settings, OpenAI batch lines, resuming after SIGKILL with nothing lost or doubled, and the
refusal to mix settings in one output."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers.cli import run_cli
from tests.helpers.jobs import prompts_file, rows


def test_txt_to_jsonl_is_generate_json_with_per_line_seeds(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    source = prompts_file(tmp_path, 9)
    out = tmp_path / "out.jsonl"
    common = ["--seed", "5", "-t", "6", "-n", "2", "--model", str(tiny_model_dir)]
    proc = run_cli("batch", str(source), "-o", str(out), "-b", "4", *common)
    assert proc.returncode == 0, proc.stderr
    got = rows(out)
    assert [(r["index"], r["sample"]) for r in got] == [(i, s) for i in range(9) for s in (0, 1)]
    # The same rows as `generate --json` would give, seed by seed: base + index * n + sample.
    assert [r["seed"] for r in got] == [5 + i * 2 + s for i in range(9) for s in (0, 1)]
    assert got[4]["prompt"] != ""  # an empty line takes a default prompt, as generate does
    manifest = json.loads((tmp_path / "out.jsonl.batch.json").read_text())
    assert manifest["settings"]["seed"] == 5
    assert manifest["batch_size"] == 4


def test_jsonl_lines_with_settings_and_custom_ids(tiny_model_dir: Path, tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    lines = [
        {"prompt": "life is", "custom_id": "a"},
        {"prompt": "love", "settings": {"max_new_tokens": 3, "temperature": 0}, "custom_id": "b"},
        {"prompt": "never"},
    ]
    source.write_text("".join(json.dumps(x) + "\n" for x in lines))
    out = tmp_path / "out.jsonl"
    proc = run_cli("batch", str(source), "-o", str(out), "--seed", "1", "-m", str(tiny_model_dir))
    assert proc.returncode == 0, proc.stderr
    got = rows(out)
    assert [r.get("custom_id") for r in got] == ["a", "b", None]
    assert got[1]["settings"]["max_new_tokens"] == 3
    assert got[1]["completion_tokens"] <= 3
    assert got[1]["settings"]["temperature"] == 0


def test_openai_batch_requests_get_openai_batch_lines(tiny_model_dir: Path, tmp_path: Path) -> None:
    source = tmp_path / "requests.jsonl"
    requests = [
        {
            "custom_id": f"req-{i}",
            "method": "POST",
            "url": "/v1/completions",
            "body": {"model": "tiny", "prompt": p, "max_tokens": 5, "n": 2, "logprobs": 1},
        }
        for i, p in enumerate(["life is", "love is", "x"])
    ]
    source.write_text("".join(json.dumps(r) + "\n" for r in requests))
    out = tmp_path / "answers.jsonl"
    proc = run_cli("batch", str(source), "-o", str(out), "--seed", "3", "-m", str(tiny_model_dir))
    assert proc.returncode == 0, proc.stderr
    got = rows(out)
    assert [g["custom_id"] for g in got] == ["req-0", "req-1", "req-2"]
    for line in got:
        assert line["error"] is None
        assert line["response"]["status_code"] == 200
        body = line["response"]["body"]
        assert body["object"] == "text_completion"
        assert len(body["choices"]) == 2
        assert body["usage"]["completion_tokens"] <= 10
        assert body["choices"][0]["logprobs"]["tokens"]


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ('{"prompt": 3}\n', 'line 1: needs a "prompt" string'),
        ('{"prompt": "x", "settings": {"temperature": 99}}\n', "line 1: temperature"),
        ("not json\n", "line 1 is not JSON"),
        ('{"custom_id": "a", "url": "/v1/embeddings", "body": {}}\n', "only /v1/completions"),
        (
            '{"prompt": "x", "custom_id": "a"}\n{"prompt": "y", "custom_id": "a"}\n',
            "more than once",
        ),
    ],
)
def test_bad_input_lines_are_named(
    tiny_model_dir: Path, tmp_path: Path, content: str, needle: str
) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text(content)
    out = tmp_path / "out.jsonl"
    proc = run_cli("batch", str(source), "-o", str(out), "-m", str(tiny_model_dir))
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("Error: ")
    assert needle in proc.stderr
    assert not out.exists()


def test_parquet_in_and_out(tiny_model_dir: Path, tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    source = tmp_path / "in.parquet"
    pq.write_table(
        pa.table({"prompt": ["life is", "love", "hope"], "custom_id": ["x", "y", "z"]}), source
    )
    out = tmp_path / "out.parquet"
    args = ["--seed", "2", "-t", "5", "-m", str(tiny_model_dir)]
    proc = run_cli("batch", str(source), "-o", str(out), *args)
    assert proc.returncode == 0, proc.stderr
    table = pq.read_table(out).to_pylist()
    assert [r["custom_id"] for r in table] == ["x", "y", "z"]
    assert [r["index"] for r in table] == [0, 1, 2]
    assert not (tmp_path / "out.parquet.partial.jsonl").exists()
    # The same job into JSON Lines gives the same rows.
    again = tmp_path / "out.jsonl"
    assert run_cli("batch", str(source), "-o", str(again), *args).returncode == 0
    for row in table:
        row.pop("seconds")
    assert table == rows(again)


def test_sigkill_then_resume_loses_and_doubles_nothing(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    source = prompts_file(tmp_path, 60)
    args = ["--seed", "9", "-t", "24", "--min-new-tokens", "24", "-b", "4"]
    args += ["--model", str(tiny_model_dir), "-q"]
    whole = tmp_path / "whole.jsonl"
    assert run_cli("batch", str(source), "-o", str(whole), *args).returncode == 0

    out = tmp_path / "killed.jsonl"
    command = [sys.executable, "-m", "quotegen", "batch", str(source), "-o", str(out), *args]
    process = subprocess.Popen(command, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # kill it mid-job, with some lines written
        if out.exists() and len(out.read_bytes().splitlines()) >= 10:
            break
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    written = out.read_bytes().splitlines()
    assert 10 <= len(written) < 60, "the run was not killed mid-job"
    # A torn last line, as a kill in the middle of a write would leave.
    with out.open("ab") as handle:
        handle.write(b'{"index": 999, "sam')

    resumed = run_cli("batch", str(source), "-o", str(out), *args[:-1])
    assert resumed.returncode == 0, resumed.stderr
    assert "Resuming" in resumed.stderr
    assert rows(out) == rows(whole)


def test_changed_settings_are_refused(tiny_model_dir: Path, tmp_path: Path) -> None:
    source = prompts_file(tmp_path, 3)
    out = tmp_path / "out.jsonl"
    base = ["batch", str(source), "-o", str(out), "-m", str(tiny_model_dir), "-t", "4"]
    assert run_cli(*base, "--seed", "1").returncode == 0
    before = out.read_bytes()
    for change, needle in (
        (["--seed", "2"], "seed (1 before, 2 now)"),
        (["--seed", "1", "--temperature", "0.5"], "temperature"),
        (["--seed", "1", "-b", "8"], "--batch-size"),
    ):
        proc = run_cli(*base, *change)
        assert proc.returncode == 1
        assert needle in proc.stderr
        assert out.read_bytes() == before
    # Without --seed, a run resumes with the output's own seed: nothing to do here.
    done = run_cli(*base)
    assert done.returncode == 0
    assert "all 3 lines are done" in done.stderr
    assert out.read_bytes() == before


def test_unseeded_run_resumes_with_its_own_seed(tiny_model_dir: Path, tmp_path: Path) -> None:
    source = prompts_file(tmp_path, 3)
    out = tmp_path / "out.jsonl"
    args = ["batch", str(source), "-o", str(out), "-m", str(tiny_model_dir), "-t", "4"]
    assert run_cli(*args).returncode == 0
    assert run_cli(*args).returncode == 0  # the same job: its seed came from the manifest


def test_foreign_output_is_not_touched(tiny_model_dir: Path, tmp_path: Path) -> None:
    source = prompts_file(tmp_path, 2)
    out = tmp_path / "mine.jsonl"
    out.write_text('{"precious": true}\n')
    proc = run_cli("batch", str(source), "-o", str(out), "-m", str(tiny_model_dir))
    assert proc.returncode == 1
    assert "was not written by quotegen batch" in proc.stderr
    assert out.read_text() == '{"precious": true}\n'


def test_ray_flags_need_ray(tiny_model_dir: Path, tmp_path: Path) -> None:
    source = prompts_file(tmp_path, 2)
    proc = run_cli("batch", str(source), "-o", str(tmp_path / "o.jsonl"), "--replicas", "2")
    assert proc.returncode == 2
    assert "need --ray" in proc.stderr
