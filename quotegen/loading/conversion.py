"""GGUF files and LoRA adapters turned into ordinary safetensors model folders, once.

A ``.gguf`` file asked for by name is dequantized to float32 by transformers' GGUF reader
(the ``gguf`` package) and saved with ``save_pretrained``. A peft adapter is merged into its
base: on a GGUF base (the default model's), tensor by tensor straight from the file, each
dequantized, given its LoRA update in float32 and stored in the precision this machine
computes in (``hardware.storage_dtype``: bf16 where the CPU has bf16 units), so neither a
float32 copy of the base nor a whole float32 model ever exists; on a folder base, through
peft's ``merge_and_unload``, stored the same way. The adapter's LoRA parts are kept beside the
merge (``quotegen-lora/``) for int4, which quantizes the base and runs the update beside it.

Every result lands in quotegen's cache, keyed by content (the GGUF file's sha256; the
adapter's files, the base and the stored precision), and is written whole into a staging
folder that is renamed into place: an interrupted conversion leaves nothing that a later load
would use. A merge of an older format is removed once its replacement is made. Every later
load is that of a plain safetensors folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from quotegen.config import debug_enabled
from quotegen.console import quiet_transformers
from quotegen.errors import InvalidModelError, ModelNotCachedError, brief
from quotegen.loading.cache import cache_root, remembered_sha256, staged_folder
from quotegen.loading.ggufreader import check_gguf, gguf_metadata, gguf_tensors
from quotegen.progress import report

#: Bumped when the folders written here change shape, so old conversions are redone.
FORMAT = 1
#: Merges: 2 stores them in the machine's compute precision with their LoRA parts beside.
MERGE_FORMAT = 2
#: Where a merge keeps the LoRA parts it was made with (for int4's update beside the base).
LORA_FOLDER = "quotegen-lora"
#: A merge's weights are written in files of about this size (transformers' shards).
SHARD_BYTES = 96 << 20
Notify = Callable[[str], None]


# -- GGUF ---------------------------------------------------------------------------------------


def converted_gguf(path: Path, notify: Notify | None = None, *, prepare: bool = True) -> Path:
    """The safetensors folder of a GGUF file, converted on first use (``prepare`` False: an
    error instead of the work)."""
    if not path.is_file():
        raise InvalidModelError(f"GGUF file '{path}' does not exist.")
    digest = remembered_sha256(path)
    out = cache_root() / "gguf" / f"{digest[:40]}-v{FORMAT}"
    if (out / "config.json").is_file():
        return out
    if not prepare:
        raise ModelNotCachedError(f"'{path.name}' is not converted yet. Run: quotegen download")
    check_gguf(path)
    if notify is not None:
        size = path.stat().st_size / 1e6
        notify(f"Converting {path.name} ({size:.0f} MB) to safetensors, once")
    quiet_transformers()
    try:
        with staged_folder(out) as staging:
            _convert_gguf(path, staging)
    except InvalidModelError:
        raise
    except Exception as exc:
        raise InvalidModelError(
            f"Could not convert '{path}' ({brief(exc)}): the file is truncated, corrupt, or "
            "of a layout transformers does not read. Download it again, or use another "
            "quantization of the model."
        ) from exc
    return out


def _convert_gguf(path: Path, out: Path) -> None:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    folder, name = path.parent, path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    config = AutoConfig.from_pretrained(folder, gguf_file=name)
    if config.model_type == "gpt2" and getattr(config, "n_ctx", None):
        # transformers maps GGUF's context_length to n_ctx only; the position table is n_ctx.
        config.n_positions = config.n_ctx
    # transformers draws a tqdm bar of its own per tensor (not one its switches turn off);
    # quotegen's callers say what happens, so the bar goes nowhere unless debugging.
    quiet = (
        contextlib.nullcontext() if debug_enabled() else contextlib.redirect_stderr(io.StringIO())
    )
    with quiet:
        source = AutoModelForCausalLM.from_pretrained(
            folder, gguf_file=name, config=config, dtype=torch.float32
        )
    # A plain model of the same config: nothing of the GGUF quantizer is saved with it.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.dtype = torch.float32
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(source.state_dict(), strict=False)
    missing = [key for key in missing if "lm_head" not in key]
    if missing or unexpected:
        raise InvalidModelError(
            f"'{name}' does not map onto a {type(model).__name__}: "
            f"{len(missing)} tensors missing, {len(unexpected)} unexpected."
        )
    if getattr(config, "tie_word_embeddings", False):
        model.tie_weights()
    model.generation_config = source.generation_config
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    _write_provenance(out, {"gguf": name, "sha256": remembered_sha256(path)})


# -- LoRA adapters ------------------------------------------------------------------------------


def is_adapter(path: Path) -> bool:
    """A peft adapter folder (``adapter_config.json``, no ``config.json`` of a whole model)."""
    return (path / "adapter_config.json").is_file() and not (path / "config.json").is_file()


def adapter_base(path: Path) -> str:
    """The base model an adapter names (``base_model_name_or_path``)."""
    try:
        config = json.loads((path / "adapter_config.json").read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidModelError(
            f"'{path}/adapter_config.json' is not valid JSON ({brief(exc)})."
        ) from exc
    base = config.get("base_model_name_or_path") if isinstance(config, dict) else None
    if not isinstance(base, str) or not base.strip():
        raise InvalidModelError(
            f"The adapter in '{path}' does not name its base (base_model_name_or_path in "
            "adapter_config.json). Add it, or load the base with --model and merge by hand."
        )
    if config.get("peft_type") not in (None, "LORA"):
        raise InvalidModelError(
            f"The adapter in '{path}' is a {config.get('peft_type')} adapter; quotegen loads "
            "LoRA adapters."
        )
    return base.strip()


def base_identity(base: Path) -> str:
    """What a merge depends on of a base folder: where it is and its weights' sizes and times."""
    parts = [str(base.resolve())]
    for weights in sorted(base.glob("*.safetensors")):
        stat = weights.stat()
        parts.append(f"{weights.name}|{stat.st_size}|{stat.st_mtime_ns}")
    return "|".join(parts)


def merged_folder(adapter: Path, identity: str, *, version: int = MERGE_FORMAT) -> Path:
    """Where the merge of ``adapter`` into the base ``identity`` names is cached (format 1,
    the float32 merges of earlier releases, had no stored precision in its key)."""
    stored = f"v{version}" if version == 1 else f"v{version}|{_storage_name()}"
    digest = hashlib.sha256(f"{stored}|{identity}".encode())
    for item in sorted(adapter.iterdir()):
        if item.is_file() and not item.name.startswith("."):
            digest.update(item.name.encode())
            digest.update(remembered_sha256(item).encode())
    return cache_root() / "merged" / digest.hexdigest()[:40]


def _storage_name() -> str:
    from quotegen.loading.hardware import storage_dtype

    return str(storage_dtype()).removeprefix("torch.")


def merged_adapter(
    adapter: Path,
    base: Path,
    notify: Notify | None = None,
    *,
    prepare: bool = True,
    identity: str | None = None,
) -> Path:
    """The safetensors folder of ``base`` (a model folder, or a GGUF file) with the LoRA
    adapter merged in, made on first use and cached under the adapter's files, the stored
    precision and ``identity`` (default: the base folder's, or the GGUF file's sha256).

    The adapter folder's own tokenizer and ``generation_config.json``, where it has them,
    replace the base's: an adapter trained with its own framing stops where it learned to.
    """
    if identity is None:
        identity = f"gguf:{remembered_sha256(base)}" if base.is_file() else base_identity(base)
    out = merged_folder(adapter, identity)
    if (out / "config.json").is_file():
        return out
    if not prepare:
        raise ModelNotCachedError(
            f"The adapter '{adapter.name}' is not merged yet. Run: quotegen download"
        )
    parts = lora_parts(adapter)
    if base.is_file() and parts is None:  # a LoRA variant merged by peft, on the converted base
        base = converted_gguf(base, notify)
    if notify is not None:
        notify(f"Merging the adapter {adapter.name} into its base, once")
    quiet_transformers()
    try:
        with staged_folder(out) as staging:
            if base.is_file():
                assert parts is not None
                _merge_gguf(adapter, base, parts, staging)
            else:
                _merge(adapter, base, staging)
    except InvalidModelError:
        raise
    except Exception as exc:
        raise InvalidModelError(
            f"Could not apply the adapter in '{adapter}' to its base '{base}' "
            f"({brief(exc)}). Check that adapter_config.json names the base it was trained on."
        ) from exc
    _retire(merged_folder(adapter, identity, version=1))
    return out


def lora_parts(adapter: Path, *, shapes_only: bool = False) -> dict[str, tuple[Any, Any]] | None:
    """A plain LoRA adapter's update per module name: (A [rank, in], B [out, rank] with the
    adapter's scale folded in), read from its safetensors; None for what only peft merges
    (DoRA, per-module ranks, embeddings, modules saved whole) or an unreadable adapter.
    ``shapes_only``: empty meta tensors of their shapes, nothing read but the file's header
    (what builds a model's skeleton)."""
    try:
        config = json.loads((adapter / "adapter_config.json").read_text("utf-8"))
    except (OSError, ValueError):
        return None
    weights = adapter / "adapter_model.safetensors"
    if (
        not isinstance(config, dict)
        or not weights.is_file()
        or config.get("use_dora")
        or config.get("rank_pattern")
        or config.get("alpha_pattern")
        or config.get("modules_to_save")
        or config.get("fan_in_fan_out")
    ):
        return None
    import torch
    from safetensors import safe_open
    from safetensors.torch import load_file

    rank = int(config.get("r", 8))
    alpha = float(config.get("lora_alpha", rank))
    scale = alpha / rank**0.5 if config.get("use_rslora") else alpha / rank
    if shapes_only:
        with safe_open(str(weights), "pt") as handle:
            tensors = {
                key: torch.empty(handle.get_slice(key).get_shape(), device="meta")
                for key in handle.keys()  # noqa: SIM118 (a safetensors handle, not a dict)
            }
    else:
        tensors = load_file(str(weights))
    parts: dict[str, tuple[Any, Any]] = {}
    for key, a in tensors.items():
        if ".lora_A." not in key and ".lora_B." not in key:
            return None  # embedding updates, saved modules: peft's to merge
        if not key.endswith(".lora_A.weight"):
            continue
        name = key.removeprefix("base_model.model.").removesuffix(".lora_A.weight")
        b = tensors.get(key.replace(".lora_A.", ".lora_B."))
        if b is None:
            return None
        parts[name] = (a.float(), b.float() * scale)
    return parts


def _merge_gguf(adapter: Path, gguf: Path, parts: dict[str, tuple[Any, Any]], out: Path) -> None:
    """The merge straight from a GGUF base: each tensor plus its LoRA update, in float32,
    then stored in ``storage_dtype``; the adapter's tokenizer (else the GGUF's)."""
    from safetensors.torch import save_file
    from transformers import AutoTokenizer, GenerationConfig

    from quotegen.loading.hardware import storage_dtype

    dtype = storage_dtype()
    shard: dict[str, Any] = {}
    shards: list[dict[str, Any]] = []

    def flush() -> None:
        # Saved shard by shard: safetensors copies what it writes, so a shard's size, not
        # the model's, is what writing costs in memory.
        shards.append(
            {name: (tuple(t.shape), t.numel() * t.element_size()) for name, t in shard.items()}
        )
        save_file(shard, str(out / f"part-{len(shards)}"), metadata={"format": "pt"})
        shard.clear()

    step = f"Merging {adapter.name}"
    with gguf_metadata(gguf) as (reader, config):
        total = len(reader.tensors)
        for done, (name, weight) in enumerate(gguf_tensors(reader, config), 1):
            report(step, done, total)
            update = parts.pop(name.removesuffix(".weight"), None)
            if update is not None:
                a, b = update
                weight += b @ a
            shard[name] = weight.to(dtype).contiguous()
            del weight
            if sum(t.numel() * t.element_size() for t in shard.values()) >= SHARD_BYTES:
                flush()
    if shard:
        flush()
    if parts:
        raise InvalidModelError(
            f"The adapter in '{adapter}' updates {len(parts)} modules its base '{gguf.name}' "
            f"does not have (e.g. {next(iter(parts))}): it was trained on another model."
        )
    _name_shards(out, shards)
    config.dtype = dtype
    config.save_pretrained(out)
    has_tokenizer = (adapter / "tokenizer_config.json").is_file()
    if has_tokenizer:
        AutoTokenizer.from_pretrained(adapter).save_pretrained(out)
    else:
        AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name).save_pretrained(out)
        GenerationConfig.from_model_config(config).save_pretrained(out)
    _finish_merge(adapter, out, {"adapter": str(adapter.resolve()), "gguf": str(gguf)})


def _name_shards(out: Path, shards: list[dict[str, Any]]) -> None:
    """The written parts renamed as transformers names shards, with their index (one part:
    ``model.safetensors``, no index)."""
    if len(shards) == 1:
        (out / "part-1").rename(out / "model.safetensors")
        return
    weight_map, total = {}, 0
    for number, shard in enumerate(shards, 1):
        name = f"model-{number:05d}-of-{len(shards):05d}.safetensors"
        (out / f"part-{number}").rename(out / name)
        for tensor, (_, size) in shard.items():
            weight_map[tensor] = name
            total += size
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (out / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))


def _merge(adapter: Path, base: Path, out: Path) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from quotegen.loading.hardware import storage_dtype

    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    merged = PeftModel.from_pretrained(model, adapter).merge_and_unload()
    merged.to(storage_dtype())
    has_tokenizer = (adapter / "tokenizer_config.json").is_file()
    tokenizer = AutoTokenizer.from_pretrained(adapter if has_tokenizer else base)
    merged.save_pretrained(out)
    tokenizer.save_pretrained(out)
    _finish_merge(adapter, out, {"adapter": str(adapter.resolve()), "base": str(base.resolve())})


def _finish_merge(adapter: Path, out: Path, provenance: dict[str, Any]) -> None:
    """What every merge keeps beside its weights: the adapter's generation defaults, card and
    scorer, its LoRA parts (``LORA_FOLDER``) and where it came from."""
    for name in ("generation_config.json", "README.md", "quotegen-scorer.json"):
        if (adapter / name).is_file():
            shutil.copyfile(adapter / name, out / name)
    if lora_parts(adapter) is not None:
        (out / LORA_FOLDER).mkdir()
        for name in ("adapter_config.json", "adapter_model.safetensors"):
            shutil.copyfile(adapter / name, out / LORA_FOLDER / name)
    _write_provenance(out, {"merge_format": MERGE_FORMAT, **provenance})


def _retire(old: Path) -> None:
    """Remove a merge of an older format now replaced, and the float32 conversion of its GGUF
    base that only it needed (the base stays as its file: one asked for by name is made
    again on use)."""
    if not (old / "config.json").is_file():
        return
    try:
        base = Path(json.loads((old / "quotegen-source.json").read_text("utf-8"))["base"])
    except (OSError, ValueError, KeyError, TypeError):
        base = None
    shutil.rmtree(old, ignore_errors=True)
    if base is not None and base.parent == cache_root() / "gguf":
        shutil.rmtree(base, ignore_errors=True)


def _write_provenance(out: Path, data: dict[str, Any]) -> None:
    (out / "quotegen-source.json").write_text(json.dumps({"format": FORMAT, **data}, indent=2))
