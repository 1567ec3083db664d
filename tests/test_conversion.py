"""GGUF files and LoRA adapters through the one loading path, on real files: GGUF written by
the ``gguf`` package's writer, adapters trained by ``quotegen train --lora``."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import pytest

from quotegen.errors import InputError, InvalidModelError, ModelNotCachedError
from quotegen.loading.cache import cache_root
from quotegen.loading.locating import is_prepared
from quotegen.loading.model import load_model, place
from quotegen.loading.references import parse_model_ref
from tests.helpers.cli import run_cli
from tests.helpers.ggufwriter import build_tiny_llama, write_gguf
from tests.helpers.modelfactory import CORPUS, build_tiny_gpt2

PROMPT = "Life is what happens"
#: Largest logit difference allowed against the source model, by tensor type.
TOLERANCE = {"F32": 1e-4, "F16": 5e-3, "Q8_0": 5e-2}


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("sources")
    return {"llama": build_tiny_llama(root / "llama"), "gpt2": build_tiny_gpt2(root / "gpt2")}


@pytest.fixture(scope="module")
def gguf_files(sources: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("gguf")
    return {
        (arch, kind): write_gguf(folder, root / f"{arch}-{kind}.gguf", kind)
        for arch, folder in sources.items()
        for kind in TOLERANCE
    }


@pytest.fixture
def fresh_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("QUOTEGEN_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _logits(model, tokenizer):  # type: ignore[no-untyped-def]
    import torch

    ids = torch.tensor([tokenizer(PROMPT)["input_ids"]])
    with torch.no_grad():
        return model(input_ids=ids).logits.float()


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
@pytest.mark.parametrize("kind", list(TOLERANCE))
def test_gguf_converts_to_the_source_model(
    arch: str, kind: str, sources: dict[str, Path], gguf_files: dict
) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source_dir = sources[arch]
    source = AutoModelForCausalLM.from_pretrained(source_dir)
    source_tokenizer = AutoTokenizer.from_pretrained(source_dir)
    loaded = load_model(
        parse_model_ref(str(gguf_files[arch, kind])), place("cpu", inference=False), optimize=False
    )
    for text in CORPUS:  # the tokenizer round-trips
        assert loaded.tokenizer(text)["input_ids"] == source_tokenizer(text)["input_ids"]
    difference = (_logits(loaded.model, loaded.tokenizer) - _logits(source, source_tokenizer)).abs()
    assert float(difference.max()) <= TOLERANCE[kind]
    assert loaded.path.parent == cache_root() / "gguf"
    assert not (loaded.path / "quantization_config").exists()
    assert "quantization_config" not in json.loads((loaded.path / "config.json").read_text())


def test_gguf_is_converted_once(gguf_files: dict, fresh_cache: Path) -> None:
    path = gguf_files["llama", "F16"]
    ref = parse_model_ref(str(path))
    assert is_prepared(ref) is None
    notes: list[str] = []
    first = load_model(ref, place("cpu"), notify=notes.append).path
    assert len(notes) == 1
    assert "Converting llama-F16.gguf" in notes[0]
    weights = first / "model.safetensors"
    stamp = weights.stat().st_mtime_ns
    second = load_model(ref, place("cpu"), notify=notes.append).path
    assert second == first == is_prepared(ref)
    assert len(notes) == 1
    assert weights.stat().st_mtime_ns == stamp
    assert [p.name for p in (fresh_cache / "gguf").iterdir() if p.name.startswith(".")] == []


def test_gguf_generate_end_to_end(gguf_files: dict) -> None:
    proc = run_cli("generate", "-m", str(gguf_files["llama", "Q8_0"]), "--seed", "1", "life is")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.lower().startswith("life is")
    assert len(proc.stdout.splitlines()) == 1


def test_gguf_interrupted_conversion_leaves_nothing(
    gguf_files: dict, fresh_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import quotegen.loading.conversion as conversion

    def fails(path: Path, out: Path) -> None:
        (out / "config.json").write_text("{}")  # half written
        raise KeyboardInterrupt

    monkeypatch.setattr(conversion, "_convert_gguf", fails)
    with pytest.raises(KeyboardInterrupt):
        conversion.converted_gguf(gguf_files["gpt2", "F32"])
    assert [p for p in (fresh_cache / "gguf").iterdir() if p.is_dir()] == []
    monkeypatch.undo()
    monkeypatch.setenv("QUOTEGEN_CACHE", str(fresh_cache))
    assert (conversion.converted_gguf(gguf_files["gpt2", "F32"]) / "config.json").is_file()


def _truncated(source: Path, out: Path) -> Path:
    out.write_bytes(source.read_bytes()[: source.stat().st_size // 2])
    return out


def _one_tensor_gguf(out: Path, architecture: str, kind: str) -> Path:
    """A GGUF file of one 8-row tensor: float32 zeros, or raw bytes of quantization ``kind``."""
    import gguf
    import numpy as np

    writer = gguf.GGUFWriter(str(out), architecture)
    if kind == "F32":
        writer.add_tensor("token_embd.weight", np.zeros((8, 32), dtype=np.float32))
    else:
        quant = gguf.GGMLQuantizationType[kind]
        raw = np.zeros((8, gguf.GGML_QUANT_SIZES[quant][1]), dtype=np.uint8)  # one block a row
        writer.add_tensor("token_embd.weight", raw, raw_shape=raw.shape, raw_dtype=quant)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out


def _other_architecture(source: Path, out: Path) -> Path:
    return _one_tensor_gguf(out, "mamba", "F32")


def _unsupported_quantization(source: Path, out: Path) -> Path:
    return _one_tensor_gguf(out, "llama", "Q8_1")


def _not_gguf(source: Path, out: Path) -> Path:
    out.write_bytes(b"GGUF" + struct.pack("<I", 3) + b"\xff" * 40)
    return out


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (_truncated, "truncated or corrupt"),
        (_not_gguf, "truncated or corrupt"),
        (_other_architecture, "holds a 'mamba' model"),
        (_unsupported_quantization, "uses the quantization Q8_1"),
    ],
)
def test_bad_gguf_is_one_line_naming_the_file(
    make, needle: str, gguf_files: dict, tmp_path: Path, fresh_cache: Path
) -> None:  # type: ignore[no-untyped-def]
    bad = make(gguf_files["llama", "F32"], tmp_path / "bad.gguf")
    with pytest.raises(InvalidModelError, match=needle):
        load_model(parse_model_ref(str(bad)), place("cpu"))
    proc = run_cli("generate", "-m", str(bad), "x", env={"QUOTEGEN_CACHE": str(fresh_cache)})
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1
    assert proc.stderr.startswith("Error: ")
    assert "bad.gguf" in proc.stderr
    assert needle in proc.stderr
    assert not (fresh_cache / "gguf").exists() or not [
        p for p in (fresh_cache / "gguf").iterdir() if p.is_dir()
    ]


def test_gguf_reference_syntax() -> None:
    ref = parse_model_ref("org/name@v2:model.Q8_0.gguf")
    assert (ref.repo_id, ref.revision, ref.gguf) == ("org/name", "v2", "model.Q8_0.gguf")
    assert str(ref) == "org/name@v2:model.Q8_0.gguf"
    assert parse_model_ref("org/name:Q4_K_M").gguf == "Q4_K_M"


def test_gguf_not_prepared_offline(gguf_files: dict) -> None:
    with pytest.raises(ModelNotCachedError, match="HF_HUB_OFFLINE"):
        load_model(parse_model_ref("org/absent:Q8_0"), place("cpu"))
    assert os.environ["HF_HUB_OFFLINE"] == "1"


def test_train_frame_token_must_exist(sources: dict[str, Path], tmp_path: Path) -> None:
    from quotegen.settings import TrainConfig
    from quotegen.training.fit import train

    config = TrainConfig(
        out=tmp_path / "x", base=str(sources["llama"]), lora=True, frame_token="<|nope|>"
    )
    with pytest.raises(InputError, match="not a token"):
        train(config, CORPUS)


def test_hub_gguf_downloads_only_the_named_file(gguf_files: dict, tmp_path: Path) -> None:
    from tests.helpers.hubserver import HubStandIn

    repo = tmp_path / "repo"
    repo.mkdir()
    for kind in ("F16", "Q8_0"):
        (repo / f"tiny-llama.{kind}.gguf").write_bytes(gguf_files["llama", kind].read_bytes())
    hub = HubStandIn().start()
    try:
        hub.add_repo("org/tiny-gguf", repo)
        env = {"HF_ENDPOINT": hub.url, "HF_HUB_OFFLINE": "0", "HF_HOME": str(tmp_path / "hf")}
        fetched = run_cli("download", "org/tiny-gguf:Q8_0", env=env)
        assert fetched.returncode == 0, fetched.stderr
        got = {path.rsplit("/", 1)[-1] for method, path, _ in hub.requests if method == "GET"}
        assert "tiny-llama.Q8_0.gguf" in got
        assert "tiny-llama.F16.gguf" not in got
        assert Path(fetched.stdout.strip(), "config.json").is_file()
        offline = {**env, "HF_HUB_OFFLINE": "1"}
        for name in ("org/tiny-gguf:Q8_0", "org/tiny-gguf:tiny-llama.Q8_0.gguf"):
            proc = run_cli("generate", "-m", name, "--seed", "1", "life is", env=offline)
            assert proc.returncode == 0, proc.stderr
        missing = run_cli("download", "org/tiny-gguf:Q4_K_M", env=env)
        assert missing.returncode == 1
        assert "no GGUF file 'Q4_K_M'" in missing.stderr
        assert "tiny-llama.F16.gguf" in missing.stderr
    finally:
        hub.stop()


def test_gguf_works_for_eval_batch_and_as_a_training_base(gguf_files: dict, tmp_path: Path) -> None:
    gguf = str(gguf_files["llama", "F16"])
    data = tmp_path / "quotes.txt"
    data.write_text("".join(q + "\n" for q in CORPUS * 2))
    evaluated = run_cli("eval", str(data), "-m", gguf, "--json", "-q")
    assert evaluated.returncode == 0, evaluated.stderr
    assert json.loads(evaluated.stdout)["perplexity"] > 1
    out = tmp_path / "results.jsonl"
    batch = run_cli("batch", str(data), "-o", str(out), "-m", gguf, "--seed", "1", "-t", "4", "-q")
    assert batch.returncode == 0, batch.stderr
    assert len(out.read_text().splitlines()) == len(CORPUS) * 2
    trained = run_cli(
        "train", str(data), "--base", gguf, "--lora", "--lora-targets", "q_proj,v_proj",
        "--epochs", "1", "--out", str(tmp_path / "lora"), "-q",
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    config = json.loads((tmp_path / "lora" / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == gguf
    generated = run_cli("generate", "-m", str(tmp_path / "lora"), "--seed", "2", "life is")
    assert generated.returncode == 0, generated.stderr


def test_file_hashes_are_remembered_and_an_unwritable_cache_is_fine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hashlib

    from quotegen.loading import cache as conversion

    data = tmp_path / "weights.bin"
    data.write_bytes(b"quotegen" * 1000)
    expected = hashlib.sha256(data.read_bytes()).hexdigest()
    calls: list[Path] = []
    real = conversion.file_sha256

    def counted(path: Path) -> str:
        calls.append(path)
        return real(path)

    monkeypatch.setattr(conversion, "file_sha256", counted)
    monkeypatch.setenv("QUOTEGEN_CACHE", str(tmp_path / "cache"))
    assert conversion.remembered_sha256(data) == expected
    assert conversion.remembered_sha256(data) == expected
    assert len(calls) == 1  # the second load reads the memo
    # A cache that cannot be written (here a file where the folder should be) still answers.
    blocked = tmp_path / "blocked"
    blocked.write_text("not a folder")
    monkeypatch.setenv("QUOTEGEN_CACHE", str(blocked))
    assert conversion.remembered_sha256(data) == expected


def test_staging_left_by_a_killed_process_is_swept(tmp_path: Path) -> None:
    """A `quotegen download` killed mid-conversion leaves `.NAME.PID.partial` behind; the next
    writer in that folder removes it once its process is gone, and never a live one's."""
    import subprocess
    import sys

    from quotegen.loading.cache import staged_file, staged_folder, sweep_stale

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    gone = int(dead.stdout)
    (tmp_path / f".abc.{gone}.partial").mkdir()
    (tmp_path / f".hashes.json.{gone}.partial").write_text("{")
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        (tmp_path / f".other.{live.pid}.partial").mkdir()
        with staged_folder(tmp_path / "model") as staging:
            (staging / "config.json").write_text("{}")
        assert sorted(p.name for p in tmp_path.iterdir()) == [f".other.{live.pid}.partial", "model"]
    finally:
        live.kill()
        live.wait()
    assert sweep_stale(tmp_path) == [tmp_path / f".other.{live.pid}.partial"]
    # A file written whole or not at all: a failure leaves the old one as it was.
    target = tmp_path / "data.json"
    target.write_text("old")

    def half_written() -> None:
        with staged_file(target) as staging:
            staging.write_text("half")
            raise RuntimeError

    with pytest.raises(RuntimeError):
        half_written()
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".partial")] == []
