"""`quotegen train` and `quotegen eval` on real (tiny) models."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from quotegen.loading.model import load_model, place
from quotegen.loading.references import parse_model_ref
from quotegen.schemas import EpochReport, TrainReport
from quotegen.training.evaluation import perplexity
from quotegen.training.fit import TrainConfig, train
from quotegen.training.saving import save_model
from tests.helpers.cli import run_cli
from tests.helpers.modelfactory import CORPUS, build_tiny_gpt2

QUOTES = [f"{q} ({i})" if i else q for i in range(6) for q in CORPUS]
TINY_SHAPE = [
    "--vocab-size",
    "300",
    "--n-layer",
    "1",
    "--n-head",
    "2",
    "--n-embd",
    "32",
    "--context",
    "64",
]


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "quotes.txt"
    path.write_text("\n".join(QUOTES) + "\n")
    return path


def _tiny(out: Path, **overrides: object) -> TrainConfig:
    settings: dict[str, object] = {
        "out": out,
        "from_scratch": True,
        "epochs": 3,
        "batch_size": 16,
        "vocab_size": 300,
        "n_layer": 1,
        "n_head": 2,
        "n_embd": 32,
        "context": 64,
        "learning_rate": 5e-3,
        "val_split": 0.1,
        "seed": 0,
        "device": "cpu",
    }
    settings.update(overrides)
    return TrainConfig(**settings)  # type: ignore[arg-type]


def test_train_from_scratch_gives_a_loadable_better_model(tmp_path: Path) -> None:
    report = train(_tiny(tmp_path / "m"), QUOTES)
    best = report.best_val_perplexity
    assert best is not None
    assert math.isfinite(best)
    assert best < report.initial_val_perplexity
    loaded = load_model(parse_model_ref(str(tmp_path / "m")), place("cpu"))
    assert loaded.context_length == 64
    assert (tmp_path / "m" / "model.safetensors").is_file()
    card = (tmp_path / "m" / "README.md").read_text()
    assert card.startswith('---\nlibrary_name: "transformers"')
    assert f"**{best:.2f}**" in card
    assert '"n_layer": ' in card
    assert '"vocab_size": ' in card  # a BPE tokenizer's settings, not the word tokenizer's
    assert '"max_words"' not in card
    generation = json.loads((tmp_path / "m" / "generation_config.json").read_text())
    assert generation["do_sample"] is True
    assert generation["max_new_tokens"] == 40
    assert "added_tokens_decoder" in json.loads(
        (tmp_path / "m" / "tokenizer_config.json").read_text()
    )


def test_saved_tokenizer_files_load_quickly_and_unchanged(tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    from quotegen.training.saving import quick_tokenizer_files

    out = build_tiny_gpt2(tmp_path / "m", tokenizer_kind="words")
    before = AutoTokenizer.from_pretrained(out)
    quick_tokenizer_files(out)
    config = json.loads((out / "tokenizer_config.json").read_text())
    added = json.loads((out / "tokenizer.json").read_text())["added_tokens"]
    assert config["added_tokens_decoder"] == {
        str(token.pop("id")): token for token in added
    }  # so transformers skips parsing tokenizer.json in Python for them
    assert "is_local" not in config
    assert "\n" not in (out / "tokenizer.json").read_text()
    after = AutoTokenizer.from_pretrained(out)
    text = "Life is a zqxj thing, isn't it? <|endoftext|> 42"
    assert after(text).input_ids == before(text).input_ids
    assert after.added_tokens_decoder == before.added_tokens_decoder
    assert after.all_special_tokens == before.all_special_tokens
    assert after.decode(after(text).input_ids) == before.decode(before(text).input_ids)


def test_batches_hold_every_example_once_and_pad_little() -> None:
    import random

    from quotegen.training.fit import _batches

    rng = random.Random(0)
    examples = [([7] * rng.randint(1, 90), 0) for _ in range(3000)]
    batches = _batches(examples, 32, 0, random.Random(1))
    lengths = sorted(int(n) for _, mask, _ in batches for n in mask.sum(dim=1))
    assert lengths == sorted(len(e) for e, _ in examples)
    padded = sum(ids.numel() for ids, _, _ in batches)
    assert padded < 1.2 * sum(lengths)  # random batches of these pad to about 2x
    # Labels: the tokens, padding ignored.
    _, mask, labels = batches[0]
    assert (labels[mask == 0] == -100).all()
    assert (labels[mask == 1] == 7).all()
    # Shuffled: not shortest first.
    widths = [ids.shape[1] for ids, _, _ in batches]
    assert widths != sorted(widths)
    # A conversation's context is held back: only its reply is learned.
    ((_ids, mask, labels),) = _batches([([5, 6, 7, 8, 9], 3)], 32, 0, random.Random(1))
    assert labels.tolist() == [[-100, -100, -100, 8, 9]]


def test_train_is_reproducible_with_a_seed(tmp_path: Path) -> None:
    a = train(_tiny(tmp_path / "a", epochs=1), QUOTES)
    b = train(_tiny(tmp_path / "b", epochs=1), QUOTES)
    assert a.best_val_perplexity == b.best_val_perplexity


def test_train_with_bf16_mixed_precision_learns_and_keeps_float32_weights(
    tmp_path: Path,
) -> None:
    from safetensors import safe_open

    mixed = train(_tiny(tmp_path / "bf16", epochs=2, mixed_precision="bf16"), QUOTES)
    plain = train(_tiny(tmp_path / "fp32", epochs=2), QUOTES)
    assert mixed.best_val_perplexity is not None
    assert mixed.best_val_perplexity < mixed.initial_val_perplexity
    # Autocast really ran: the same seed and data learn slightly different weights.
    assert mixed.best_val_perplexity != plain.best_val_perplexity
    with safe_open(str(tmp_path / "bf16" / "model.safetensors"), "pt") as weights:
        names = list(weights.keys())  # a safe_open handle is not iterable
        assert {weights.get_slice(name).get_dtype() for name in names} == {"F32"}
    assert '"mixed_precision": "bf16"' in (tmp_path / "bf16" / "README.md").read_text()


def test_train_bf16_where_the_device_lacks_it_is_a_device_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    from quotegen.errors import DeviceError

    def unsupported(*args: object, **kwargs: object) -> None:
        raise RuntimeError("Current CUDA Device does not support bfloat16.")

    monkeypatch.setattr(torch, "autocast", unsupported)  # as on a GPU without bfloat16
    with pytest.raises(DeviceError, match="--mixed-precision bf16 is not available on cpu"):
        train(_tiny(tmp_path / "m", epochs=1, mixed_precision="bf16"), QUOTES)
    assert not (tmp_path / "m").exists()


def test_fine_tune_a_base_model(tmp_path: Path, tiny_model_dir: Path) -> None:
    config = TrainConfig(
        out=tmp_path / "ft",
        base=str(tiny_model_dir),
        epochs=2,
        batch_size=16,
        learning_rate=5e-3,
        val_split=0.1,
        device="cpu",
    )
    report = train(config, QUOTES)
    assert report.best_val_perplexity is not None
    assert report.best_val_perplexity < report.initial_val_perplexity
    card = (tmp_path / "ft" / "README.md").read_text()
    # A local base is named in the card's text; the Hub's base_model metadata takes repo ids.
    assert f"**Base:** {tiny_model_dir}" in card
    assert "base_model: " not in card
    # The card's settings are those fine-tuning used, not train's from-scratch defaults.
    assert '"learning_rate": 0.005' in card
    assert '"tokenizer"' not in card
    assert '"n_layer"' not in card
    load_model(parse_model_ref(str(tmp_path / "ft")), place("cpu"))


def test_eval_matches_a_hand_computed_perplexity(tmp_path: Path, tiny_model_dir: Path) -> None:
    """With the (tied) embedding zeroed, every next-token distribution is uniform, so the
    perplexity of any text is exactly the vocabulary size (float32: the output head still
    shares the embedding's weight)."""
    loaded = load_model(parse_model_ref(str(tiny_model_dir)), place("cpu", "float32"))
    loaded.model.transformer.wte.weight.data.zero_()
    vocab = loaded.model.config.vocab_size
    value = perplexity(loaded.model, loaded.tokenizer, ["life is good", "a"], batch_size=2)
    assert value == pytest.approx(vocab, rel=1e-5)


def test_eval_cli_json(tiny_model_dir: Path, corpus_file: Path) -> None:
    proc = run_cli("eval", str(corpus_file), "--model", str(tiny_model_dir), "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["quotes"] == len(QUOTES)
    assert result["perplexity"] == pytest.approx(math.exp(result["nll_per_token"]))
    plain = run_cli("eval", str(corpus_file), "--model", str(tiny_model_dir))
    assert float(plain.stdout) == pytest.approx(result["perplexity"], rel=1e-3)


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["train", "missing.txt", "--out", "x", "--from-scratch"], 1, "does not exist"),
        (["train", "{corpus}", "--out", "x"], 2, "Choose one: --base MODEL"),
        (["train", "{corpus}", "--out", "x", "--from-scratch", "--base", "gpt2"], 2, "Choose one"),
        (
            [
                "train",
                "{corpus}",
                "--out",
                "x",
                "--from-scratch",
                "--n-embd",
                "30",
                "--n-head",
                "4",
            ],
            2,
            "--n-embd (30) must be a multiple of --n-head (4)",
        ),
        (
            ["train", "{corpus}", "--out", "x", "--from-scratch", "--epochs", "0"],
            2,
            "--epochs: Input should be greater than or equal to 1",
        ),
        (
            ["train", "{corpus}", "--out", "x", "--from-scratch", "--learning-rate", "2"],
            2,
            "--learning-rate: Input should be less than 1",
        ),
        (
            ["train", "{corpus}", "--out", "x", "--from-scratch", "--mixed-precision", "fp8"],
            2,
            "--mixed-precision: Input should be 'no' or 'bf16'",
        ),
        (["eval", "missing.txt"], 1, "does not exist"),
    ],
)
def test_train_eval_errors(corpus_file: Path, args: list[str], code: int, message: str) -> None:
    proc = run_cli(*[a.replace("{corpus}", str(corpus_file)) for a in args])
    assert proc.returncode == code
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def _train_args(corpus_file: Path, out: Path, epochs: int) -> list[str]:
    """``quotegen train`` from scratch on the tiny shape, as the CLI tests run it."""
    return [
        "train", str(corpus_file), "--out", str(out), "--from-scratch",
        "--epochs", str(epochs), *TINY_SHAPE, "--json",
    ]  # fmt: skip


def test_train_cli_then_generate(tmp_path: Path, corpus_file: Path) -> None:
    out = tmp_path / "cli-model"
    proc = run_cli(*_train_args(corpus_file, out, 1))
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["best_val_perplexity"] < report["initial_val_perplexity"]
    generated = run_cli("generate", "--model", str(out), "--seed", "1", "life is")
    assert generated.returncode == 0
    assert generated.stdout.startswith("Life is")


def test_ctrl_c_leaves_the_best_checkpoint(tmp_path: Path, corpus_file: Path) -> None:
    out = tmp_path / "interrupted"
    proc = subprocess.Popen(
        [sys.executable, "-m", "quotegen", *_train_args(corpus_file, out, 1000)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=_interactive_sigint,
    )
    deadline = time.monotonic() + 120
    while not (out / "model.safetensors").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    report = json.loads(stdout)
    assert report["interrupted"] is True
    assert report["best_epoch"] >= 1
    load_model(parse_model_ref(str(out)), place("cpu"))


def test_ctrl_c_during_a_save_completes_the_checkpoint_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = build_tiny_gpt2(tmp_path / "base")
    loaded = load_model(parse_model_ref(str(base)), place("cpu", inference=False), optimize=False)
    tokenizer = loaded.tokenizer
    save_tokenizer = tokenizer.save_pretrained

    def interrupted_save(*args: object, **kwargs: object) -> object:
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C between the weights and the tokenizer
        return save_tokenizer(*args, **kwargs)

    monkeypatch.setattr(tokenizer, "save_pretrained", interrupted_save)
    out = tmp_path / "checkpoint"
    report = TrainReport(
        out=out,
        train_quotes=1,
        val_quotes=1,
        initial_val_perplexity=9.0,
        epochs=[EpochReport(epoch=1, train_loss=2.0, val_perplexity=8.0, seconds=1.0)],
        best_epoch=1,
        seconds=1.0,
    )
    with pytest.raises(KeyboardInterrupt):
        save_model(loaded.model, tokenizer, TrainConfig(out=out, base=str(base)), report, "b", "q")
    assert load_model(parse_model_ref(str(out)), place("cpu")).tokenizer is not None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["base", "checkpoint"]


def _interactive_sigint() -> None:
    """Give the child the SIGINT a terminal would: a runner started in the background
    (nohup, `&`) passes SIGINT on ignored, and Ctrl-C could not be tested at all."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_fine_tuning_a_whole_word_model_keeps_its_spelling_pieces_unwritten(
    tmp_path: Path,
) -> None:
    base = build_tiny_gpt2(
        tmp_path / "words",
        tokenizer_kind="words",
        generation={"do_sample": True, "suppress_tokens": "spelling"},
    )
    spelling = json.loads((base / "generation_config.json").read_text())["suppress_tokens"]
    assert spelling
    config = TrainConfig(out=tmp_path / "ft", base=str(base), epochs=1, val_split=0.1)
    train(config, QUOTES)
    saved = json.loads((tmp_path / "ft" / "generation_config.json").read_text())
    assert saved["suppress_tokens"] == spelling
    assert load_model(parse_model_ref(str(tmp_path / "ft")), place("cpu")).suppress_token_ids


def test_words_vocabulary_counted_on_another_text(tmp_path: Path) -> None:
    """--vocab-from: the words are chosen on that text; the training text is still trained
    on, its other words spelled (and never written)."""
    counted = tmp_path / "counted.txt"
    counted.write_text("The zebra runs.\nThe zebra sleeps.\nA zebra runs.\n")
    train(_tiny(tmp_path / "m", tokenizer="words", vocab_from=counted, epochs=1), QUOTES)
    loaded = load_model(parse_model_ref(str(tmp_path / "m")), place("cpu"))
    vocab = loaded.tokenizer.get_vocab()
    assert {"\u2581zebra", "\u2581runs"} <= set(vocab)
    trained_words = {w.strip(".,;!?\"'()") for q in QUOTES for w in q.split()} - {"zebra", "runs"}
    assert not any(f"\u2581{w}" in vocab for w in trained_words if len(w) > 1 and w != "The")
    card = (tmp_path / "m" / "README.md").read_text()
    assert f'"vocab_from": "{counted}"' in card


def test_vocab_from_needs_a_words_tokenizer_trained_from_scratch(
    corpus_file: Path, tmp_path: Path
) -> None:
    for extra in (["--from-scratch"], ["--base", "gpt2", "--tokenizer", "words"]):
        proc = run_cli(
            "train",
            str(corpus_file),
            "--out",
            str(tmp_path / "x"),
            "--vocab-from",
            str(corpus_file),
            *extra,
        )
        assert proc.returncode == 2, proc.stderr
        assert "--vocab-from needs --from-scratch --tokenizer words" in proc.stderr
    proc = run_cli(
        "train",
        str(corpus_file),
        "--out",
        str(tmp_path / "x"),
        "--from-scratch",
        "--tokenizer",
        "words",
        "--vocab-from",
        str(tmp_path / "missing.txt"),
    )
    assert proc.returncode == 1
    assert "missing.txt' does not exist" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_interpolate_weights_mixes_a_fine_tuned_model_with_its_base(tmp_path: Path) -> None:
    from safetensors.torch import load_file

    from modelbuild.weights import interpolate_weights
    from quotegen.errors import InputError

    base = build_tiny_gpt2(tmp_path / "base", seed=0)
    tuned = build_tiny_gpt2(tmp_path / "tuned", seed=1)
    before = load_file(tuned / "model.safetensors")
    start = load_file(base / "model.safetensors")
    interpolate_weights(base, tuned, 0.7)
    after = load_file(tuned / "model.safetensors")
    assert after.keys() == before.keys()
    for name, tensor in after.items():
        expected = 0.3 * start[name] + 0.7 * before[name]
        assert tensor.dtype == before[name].dtype
        assert (tensor - expected).abs().max() < 1e-5, name
    assert not (tmp_path / ".tuned.saving").exists()
    generated = load_model(parse_model_ref(str(tuned)), place("cpu"))
    assert generated.model.transformer.wte.weight.shape == before["transformer.wte.weight"].shape
    other = build_tiny_gpt2(tmp_path / "wider", n_embd=64)
    with pytest.raises(InputError, match="do not have the same weights"):
        interpolate_weights(other, tuned, 0.5)
    with pytest.raises(InputError, match=r"between 0 and 1, not 1\.5"):
        interpolate_weights(base, tuned, 1.5)


def test_card_names_a_hub_base_in_its_metadata(tmp_path: Path) -> None:
    from quotegen.training.saving import hub_base_model

    assert hub_base_model("org/name@v1") == "org/name"
    assert hub_base_model("smollm2-135m-instruct") == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert hub_base_model(str(tmp_path)) is None
