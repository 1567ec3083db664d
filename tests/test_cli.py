"""The CLI: in-process for options and output, real subprocesses for the pipeline contract."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from quotegen import __version__
from quotegen.cli import app
from quotegen.schemas import GenerationResult
from quotegen.text import one_line
from tests.helpers.cli import run_cli, run_on_terminal

runner = CliRunner()


def _invoke(*args: str, input: str | None = None):  # type: ignore[no-untyped-def]
    return runner.invoke(app, list(args), input=input, catch_exceptions=False)


def test_generate_one_prompt_prints_one_line(tiny_model_dir: Path) -> None:
    result = _invoke("generate", "--model", str(tiny_model_dir), "--seed", "1", "life is")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("Life is")


def test_generate_json_uses_the_shared_schema(tiny_model_dir: Path) -> None:
    result = _invoke(
        "generate", "-m", str(tiny_model_dir), "--json", "--seed", "7", "-n", "2", "a", "b"
    )
    assert result.exit_code == 0
    records = [GenerationResult.model_validate_json(line) for line in result.stdout.splitlines()]
    assert [(r.index, r.sample, r.prompt) for r in records] == [
        (0, 0, "a"),
        (0, 1, "a"),
        (1, 0, "b"),
        (1, 1, "b"),
    ]
    assert all(r.settings.seed == 7 for r in records)
    assert all(r.model == str(tiny_model_dir) for r in records)
    assert len({r.seed for r in records}) == 4


def test_generate_seed_is_reproducible(tiny_model_dir: Path) -> None:
    args = ("generate", "-m", str(tiny_model_dir), "--seed", "42", "life is", "love is")
    first, second = _invoke(*args), _invoke(*args)
    assert first.exit_code == second.exit_code == 0
    assert len(first.stdout.splitlines()) == 2
    assert first.stdout == second.stdout


def test_generate_without_seed_reports_one_to_replay(tiny_model_dir: Path) -> None:
    first = json.loads(_invoke("generate", "-m", str(tiny_model_dir), "--json", "x").stdout)
    replay = json.loads(
        _invoke(
            "generate", "-m", str(tiny_model_dir), "--json", "--seed", str(first["seed"]), "x"
        ).stdout
    )
    assert replay["text"] == first["text"]


def test_generate_flags_reach_settings(tiny_model_dir: Path) -> None:
    result = _invoke(
        "generate",
        "-m",
        str(tiny_model_dir),
        "--json",
        "--greedy",
        "--raw",
        "--no-stop",
        "--max-new-tokens",
        "5",
        "--top-k",
        "0",
        "--top-p",
        "0.5",
        "--repetition-penalty",
        "1",
        "--temperature",
        "0.3",
        "--min-new-tokens",
        "5",
        "hi",
    )
    record = GenerationResult.model_validate_json(result.stdout)
    s = record.settings
    assert (s.do_sample, s.clean, s.stop, s.max_new_tokens, s.top_k, s.top_p) == (
        False,
        False,
        [],
        5,
        0,
        0.5,
    )
    assert record.completion_tokens == 5
    assert record.text == record.prompt + record.completion


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--temperature", "-1"], "--temperature: Input should be greater than or equal to 0"),
        (["--top-p", "2"], "--top-p: Input should be less than or equal to 1"),
        (["-n", "0"], "-n: Input should be greater than or equal to 1"),
        (["--max-new-tokens", "0"], "--max-new-tokens: Input should be greater than or equal to 1"),
        (["--min-new-tokens", "9", "-t", "3"], "min_new_tokens (9) must not exceed"),
        (["--stop", "x", "--no-stop"], "--stop and --no-stop cannot be used together"),
        (["--batch-size", "0"], "--batch-size"),
        (["--temperature", "hot"], "Invalid value for '--temperature'"),
        (["--bogus"], "No such option: --bogus"),
    ],
)
def test_usage_errors_exit_2_with_one_line(args: list[str], message: str) -> None:
    proc = run_cli("generate", *args, "life is")
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1
    assert proc.stderr.startswith("Error: ")
    assert message in proc.stderr


@pytest.mark.parametrize(
    ("model", "code", "message"),
    [
        ("/definitely/not/here", 2, "does not exist"),
        ("someone/not-cached", 1, "Run: quotegen download someone/not-cached"),
        ("bad name!", 2, "neither a local directory nor a Hub repo id"),
    ],
)
def test_model_errors_are_one_line(model: str, code: int, message: str) -> None:
    proc = run_cli("generate", "--model", model, "life is")
    assert (proc.returncode, proc.stdout) == (code, "")
    assert proc.stderr.count("\n") == 1
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_not_a_model_directory_exit_1(tmp_path: Path) -> None:
    proc = run_cli("generate", "--model", str(tmp_path), "x")
    assert proc.returncode == 1
    assert f"Error: '{tmp_path}' is not a model directory" in proc.stderr


def test_no_model_anywhere_names_download(
    hf_cache: Path,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import quotegen.loading.references as references
    from quotegen.cli import main

    monkeypatch.setattr(references, "bundled_model_dir", lambda name="": tmp_path / "absent" / name)
    monkeypatch.setattr(sys, "argv", ["quotegen", "generate", "life is"])
    with pytest.raises(SystemExit) as info:
        main()
    assert info.value.code == 1
    assert "Pass --model" in capsys.readouterr().err


def test_device_error_exit_2(tiny_model_dir: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    proc = run_cli("generate", "-m", str(tiny_model_dir), "--device", "cuda", "x")
    assert proc.returncode == 2
    assert "Use --device cpu" in proc.stderr


def test_debug_switch_shows_traceback(tmp_path: Path) -> None:
    proc = run_cli("generate", "-m", str(tmp_path), "x", env={"QUOTEGEN_DEBUG": "1"})
    assert proc.returncode == 1
    assert "Traceback" in proc.stderr
    assert "InvalidModelError" in proc.stderr


def test_model_from_environment(tiny_model_dir: Path) -> None:
    proc = run_cli("generate", "--json", "x", env={"QUOTEGEN_MODEL": str(tiny_model_dir)})
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["model"] == str(tiny_model_dir)


# -- the pipeline contract, as real subprocesses -----------------------------------------------


def test_stdin_lines_give_one_output_line_each_in_order(tiny_model_dir: Path) -> None:
    prompts = ["life is", "", "love is", "   ", "a\tb", "work is"] * 3
    proc = run_cli(
        "generate",
        "-m",
        str(tiny_model_dir),
        "--json",
        "--seed",
        "5",
        "-b",
        "4",
        input="\n".join(prompts) + "\n",
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    records = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["index"] for r in records] == list(range(len(prompts)))
    for prompt, record in zip(prompts, records, strict=True):
        if prompt.strip():
            assert record["prompt"] == prompt
        else:
            assert record["prompt"] in {
                "life is not fair",
                "she is a warrior",
                "friendship is like",
                "you cannot find light",
            }


def test_text_mode_one_line_per_result_even_without_stops(tiny_model_dir: Path) -> None:
    proc = run_cli(
        "generate",
        "-m",
        str(tiny_model_dir),
        "--no-stop",
        "--raw",
        "-n",
        "3",
        "-t",
        "60",
        "--seed",
        "11",
        "-",
        input="one\ntwo\r\nthree",
    )
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.split("\n")) == 3 * 3 + 1
    assert proc.stdout.endswith("\n")


def test_text_and_json_agree(tiny_model_dir: Path) -> None:
    base = ("generate", "-m", str(tiny_model_dir), "--seed", "3", "-")
    text_run = run_cli(*base, input="life is\nlove is\n")
    json_run = run_cli(*base, "--json", input="life is\nlove is\n")
    assert (text_run.returncode, json_run.returncode) == (0, 0), text_run.stderr + json_run.stderr
    records = json_run.stdout.splitlines()
    assert len(records) == 2
    assert text_run.stdout.splitlines() == [one_line(json.loads(r)["text"]) for r in records]


def test_same_seed_same_output_across_runs(tiny_model_dir: Path) -> None:
    args = ("generate", "-m", str(tiny_model_dir), "--seed", "99", "-b", "3")
    stdin = "a\nb\nc\nd\ne\n"
    first, second = run_cli(*args, input=stdin), run_cli(*args, input=stdin)
    assert first.returncode == second.returncode == 0, first.stderr + second.stderr
    assert len(first.stdout.splitlines()) == 5
    assert first.stdout == second.stdout


def test_invalid_utf8_on_stdin(tiny_model_dir: Path) -> None:
    proc = run_cli("generate", "-m", str(tiny_model_dir), input=b"fine\n\xff\xfe bad\n")
    assert proc.returncode == 1
    assert "Line 2 of stdin is not valid UTF-8" in proc.stderr
    assert proc.stderr.count("\n") == 1


def test_head_closes_pipe_quietly(tiny_model_dir: Path) -> None:
    script = (
        f"yes 'life is' | head -n 200 | {sys.executable} -m quotegen generate "
        f'-m {tiny_model_dir} -t 4 -b 16 | head -n 1; echo "status=${{PIPESTATUS[2]}}" >&2'
    )
    proc = subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert len(proc.stdout.splitlines()) == 1
    assert proc.stderr.strip() == "status=0"


def test_ctrl_c_exits_130(tiny_model_dir: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "quotegen", "generate", "-m", str(tiny_model_dir), "-b", "1"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=_interactive_sigint,
    )
    assert proc.stdin is not None
    assert proc.stdout is not None
    proc.stdin.write(b"life is\n")
    proc.stdin.flush()
    assert proc.stdout.readline()  # the model is loaded and working; now it waits on stdin
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert b"Traceback" not in err


def test_no_prompt_on_a_terminal_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True, raising=False)
    monkeypatch.setattr(sys, "argv", ["quotegen", "generate"])
    from quotegen.cli import main

    with pytest.raises(SystemExit) as info:
        main()
    assert info.value.code == 2


# -- fast paths --------------------------------------------------------------------------------

_HEAVY_PROBE = """
import atexit, sys
atexit.register(lambda: sys.stderr.write(
    "HEAVY=" + ",".join(m for m in ("torch", "transformers", "markdown_it")
                        if m in sys.modules) + "\\n"))
from quotegen.cli import main
sys.argv = ["quotegen", *sys.argv[1:]]
main()
"""


@pytest.mark.parametrize(
    "args",
    [["--help"], ["generate", "--help"], ["--version"], ["generate", "--temperature", "-1", "x"]],
)
def test_fast_paths_do_not_import_torch(args: list[str]) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _HEAVY_PROBE, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert proc.stderr.strip().endswith("HEAVY="), proc.stderr


def test_help_markdown_stand_in_still_gives_the_real_module() -> None:
    """The help-only stand-in for rich.markdown hands over the real thing when used."""
    code = (
        "import sys; from quotegen.cli import _defer_rich_markdown; _defer_rich_markdown()\n"
        "from rich.markdown import Markdown\n"
        "assert 'markdown_it' not in sys.modules\n"
        "from rich.console import Console\n"
        "Console(file=sys.stdout, width=40).print(Markdown('# Hello *there*'))\n"
        "import rich.markdown\n"
        "print(rich.markdown.Heading.__name__)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert "Hello there" in proc.stdout
    assert "Heading" in proc.stdout


def test_help_shows_examples() -> None:
    proc = run_cli("generate", "--help", env={"COLUMNS": "200"})
    assert proc.returncode == 0
    assert 'quotegen generate "life is"' in proc.stdout
    assert "--json" in proc.stdout


def test_version() -> None:
    proc = run_cli("--version")
    assert (proc.returncode, proc.stdout) == (0, f"quotegen {__version__}\n")


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("a\nb", "a b"),
        ("a\r\nb\rc", "a b c"),
        ("x\x1b[31my\x00", "x[31my"),
        ("tab\there", "tab here"),
    ],
)
def test_one_line(text: str, line: str) -> None:
    assert one_line(text) == line


def test_terminal_output_streams_and_ends_as_the_batch_path(tiny_model_dir: Path) -> None:
    """On a terminal a single prompt is streamed; the line printed equals the piped result."""
    args = ["generate", "-m", str(tiny_model_dir), "--seed", "8", "life is"]
    code, on_terminal = run_on_terminal(*args)
    piped = run_cli(*args).stdout
    assert code == 0
    assert on_terminal == piped


def _interactive_sigint() -> None:
    """Give the child the SIGINT a terminal would: a runner started in the background
    (nohup, `&`) passes SIGINT on ignored, and Ctrl-C could not be tested at all."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_help_says_the_models_own_defaults_apply() -> None:
    """The default model runs at its own temperature and length: --help must not claim
    quotegen's defaults are the ones used."""
    import re

    proc = run_cli("generate", "--help", env={"COLUMNS": "200"})
    text = re.sub(r"[\s│]+", " ", proc.stdout)
    assert "[default: the model's own, else 0.9]" in text
    assert "[default: the model's own, else 1]" in text  # --best-of


@pytest.mark.parametrize(
    "command", [[], ["generate"], ["serve"], ["download"], ["train"], ["batch"]]
)
def test_help_shows_value_types_not_markers(command: list[str]) -> None:
    result = run_cli(*command, "--help", env={"COLUMNS": "120", "NO_COLOR": "1"})
    assert result.returncode == 0, result.stderr
    assert "<bool>" not in result.stdout  # a flag takes no value
    assert "<list[" not in result.stdout  # a repeatable value shows its element's type
