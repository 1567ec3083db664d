"""The shared model module: references, default resolution, loading and its errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from quotegen.config import DEFAULT_MODEL_NAME
from quotegen.errors import (
    DeviceError,
    InvalidModelError,
    InvalidModelReferenceError,
    ModelNotCachedError,
    NoModelAvailableError,
    UnsafeWeightsError,
)
from quotegen.loading.locating import locate_model
from quotegen.loading.model import choose_device, choose_dtype, load_model, place
from quotegen.loading.references import ModelRef, parse_model_ref, resolve_model

#: The second tutorial's fine-tuned GPT-2 quote model, and the Hub revision with its
#: safetensors weights (its main branch only has pickle weights): a real repository's shape.
DEFAULT_HUB_MODEL = "nandinib1999/quote-generator"
DEFAULT_HUB_REVISION = "refs/pr/1"


@pytest.mark.parametrize(
    ("text", "repo_id", "revision"),
    [
        ("gpt2", "gpt2", None),
        ("nandinib1999/quote-generator", "nandinib1999/quote-generator", None),
        ("org/name@refs/pr/1", "org/name", "refs/pr/1"),
        ("org/name@v1.0", "org/name", "v1.0"),
        (
            "org/name@0123456789abcdef0123456789abcdef01234567",
            "org/name",
            "0123456789abcdef0123456789abcdef01234567",
        ),
    ],
)
def test_parse_hub_refs(text: str, repo_id: str, revision: str | None) -> None:
    ref = parse_model_ref(text)
    assert (ref.repo_id, ref.revision, ref.path) == (repo_id, revision, None)


@pytest.mark.parametrize(
    "text", ["", "  ", "a/b/c", "org/na me", "org/name@", "-bad/x", "a/../b", "~nosuchuser/x"]
)
def test_parse_rejects_bad_refs(text: str) -> None:
    with pytest.raises(InvalidModelReferenceError):
        parse_model_ref(text)


def test_parse_local_paths(tmp_path: Path) -> None:
    assert parse_model_ref(str(tmp_path)).path == tmp_path
    assert parse_model_ref("./relative/dir").path == Path("./relative/dir")
    assert parse_model_ref("quotegen-mini").bundled


def test_default_resolution_with_empty_cache_names_download(
    hf_cache: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import quotegen.loading.references as references

    monkeypatch.setattr(references, "bundled_model_dir", lambda name="": tmp_path / "absent" / name)
    with pytest.raises(NoModelAvailableError, match="ships neither the default model nor"):
        resolve_model(None)


def _fake_cached_snapshot(cache: Path, source: Path, repo: str, revision: str) -> Path:
    """Lay out a model in the HF cache exactly as huggingface_hub stores it."""
    commit = "a" * 40
    folder = cache / f"models--{repo.replace('/', '--')}"
    snapshot = folder / "snapshots" / commit
    shutil.copytree(source, snapshot)
    (folder / "refs" / revision).parent.mkdir(parents=True, exist_ok=True)
    (folder / "refs" / revision).write_text(commit)
    return snapshot


def test_cached_hub_model_loads_with_its_commit(hf_cache: Path, tiny_model_dir: Path) -> None:
    _fake_cached_snapshot(hf_cache, tiny_model_dir, DEFAULT_HUB_MODEL, DEFAULT_HUB_REVISION)
    ref = parse_model_ref(f"{DEFAULT_HUB_MODEL}@{DEFAULT_HUB_REVISION}")
    loaded = load_model(ref, place("cpu"))
    assert loaded.commit == "a" * 40
    assert loaded.name == f"{DEFAULT_HUB_MODEL}@{DEFAULT_HUB_REVISION}"
    assert resolve_model(None).name == DEFAULT_MODEL_NAME  # a cached model is not the default


def test_explicit_model_wins_over_default(tiny_model_dir: Path) -> None:
    assert resolve_model(str(tiny_model_dir)).path == tiny_model_dir


def test_hub_model_not_cached_offline_says_download(hf_cache: Path) -> None:
    with pytest.raises(ModelNotCachedError) as info:
        locate_model(parse_model_ref("someone/missing@main"))
    assert "Run: quotegen download someone/missing@main" in info.value.message
    assert "HF_HUB_OFFLINE=1" in info.value.message


def test_load_tiny_model(loaded_tiny) -> None:  # type: ignore[no-untyped-def]
    assert loaded_tiny.context_length == 128
    assert loaded_tiny.tokenizer.padding_side == "left"
    assert loaded_tiny.pad_token_id == loaded_tiny.eos_token_ids[0]
    assert str(loaded_tiny.device) == "cpu"


def test_not_a_model_directory(tmp_path: Path) -> None:
    with pytest.raises(InvalidModelError, match=r"has no config\.json"):
        load_model(ModelRef(name=str(tmp_path), path=tmp_path), place("cpu"))


def test_missing_directory_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(InvalidModelReferenceError, match="does not exist"):
        load_model(parse_model_ref(str(tmp_path / "nope")), place("cpu"))


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_directory_without_weights(tmp_path: Path, tiny_model_dir: Path) -> None:
    model = _copy(tiny_model_dir, tmp_path / "m")
    (model / "model.safetensors").unlink()
    with pytest.raises(InvalidModelError, match="incomplete"):
        load_model(parse_model_ref(str(model)), place("cpu"))


def test_truncated_weights_are_reported_as_corrupted(tmp_path: Path, tiny_model_dir: Path) -> None:
    model = _copy(tiny_model_dir, tmp_path / "m")
    weights = model / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(InvalidModelError, match="incomplete or corrupted"):
        load_model(parse_model_ref(str(model)), place("cpu"))


def test_broken_tokenizer_is_reported(tmp_path: Path, tiny_model_dir: Path) -> None:
    model = _copy(tiny_model_dir, tmp_path / "m")
    (model / "tokenizer.json").write_text("{not json")
    with pytest.raises(InvalidModelError, match="tokenizer"):
        load_model(parse_model_ref(str(model)), place("cpu"))


def test_directory_without_tokenizer_files(tmp_path: Path, tiny_model_dir: Path) -> None:
    model = _copy(tiny_model_dir, tmp_path / "m")
    for path in model.glob("tokenizer*"):
        path.unlink()
    with pytest.raises(InvalidModelError, match="has no tokenizer"):
        load_model(parse_model_ref(str(model)), place("cpu"))


def test_pickle_weights_need_opt_in(tmp_path: Path, tiny_model_dir: Path) -> None:
    import torch
    from safetensors.torch import load_file

    model_dir = _copy(tiny_model_dir, tmp_path / "m")
    torch.save(load_file(model_dir / "model.safetensors"), model_dir / "pytorch_model.bin")
    (model_dir / "model.safetensors").unlink()
    with pytest.raises(UnsafeWeightsError, match="--allow-pickle"):
        load_model(parse_model_ref(str(model_dir)), place("cpu"))
    loaded = load_model(parse_model_ref(str(model_dir)), place("cpu"), allow_pickle=True)
    assert loaded.context_length == 128


def test_bundled_model_missing_names_download(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import quotegen.loading.references as references

    monkeypatch.setattr(references, "bundled_model_dir", lambda name="": tmp_path / "absent")
    with pytest.raises(NoModelAvailableError, match="not part of this installation"):
        locate_model(parse_model_ref("quotegen-mini"))


@pytest.mark.parametrize("device", ["cuda", "cuda:3", "mps", "tpu", "banana"])
def test_unavailable_devices_are_clear_errors(device: str) -> None:
    import torch

    if torch.cuda.is_available() or torch.backends.mps.is_available():
        pytest.skip("this machine has an accelerator")
    with pytest.raises(DeviceError):
        choose_device(device)


def test_auto_device_and_dtype_on_cpu() -> None:
    import torch

    from quotegen.loading.hardware import cpu_has_bf16

    device = choose_device("auto")
    if device.type == "cpu":
        # bf16 only where the CPU multiplies it natively; never for training.
        expected = torch.bfloat16 if cpu_has_bf16() else torch.float32
        assert choose_dtype("auto", device) == expected
        assert choose_dtype("auto", device, inference=False) == torch.float32
    assert choose_dtype("bfloat16", device) == torch.bfloat16
    with pytest.raises(DeviceError, match="Unknown dtype"):
        choose_dtype("float8", device)


@pytest.mark.parametrize("broken", [False, True])
def test_generation_config_passed_lean_and_suppressed_ids_kept_aside(
    tmp_path: Path, tiny_model_dir: Path, broken: bool
) -> None:
    import json

    model_dir = tmp_path / "m"
    shutil.copytree(tiny_model_dir, model_dir)
    declared = {"eos_token_id": 0, "max_new_tokens": 17, "suppress_tokens": [5, 6, 7]}
    if broken:  # not a generation config transformers accepts: it is left to transformers
        declared["num_beams"] = "many"
    (model_dir / "generation_config.json").write_text(json.dumps(declared))
    loaded = load_model(parse_model_ref(str(model_dir)), place("cpu"))
    assert loaded.suppress_token_ids == [5, 6, 7]
    assert loaded.eos_token_ids == [0]
    if not broken:
        assert loaded.model.generation_config.max_new_tokens == 17
        # quotegen applies them itself; transformers need not carry (and re-serialise) them.
        assert not loaded.model.generation_config.suppress_tokens


def test_get_model_is_the_public_entry_point(tiny_model_dir: Path) -> None:
    import quotegen

    model = quotegen.get_model(str(tiny_model_dir), place("cpu"))
    results = model.generate(["life is", "love"], model.settings({"n": 2, "seed": 7}))
    assert [r.prompt for r in results] == ["life is", "life is", "love", "love"]
    assert all(r.text.lower().startswith(r.prompt) for r in results)
    again = quotegen.get_model(str(tiny_model_dir), place("cpu"))
    assert [r.text for r in again.generate(["life is"], again.settings({"seed": 7}))] == [
        results[0].text
    ]
