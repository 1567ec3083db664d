"""GGUF files and LoRA adapters turned into ordinary safetensors model folders, once.

A ``.gguf`` file is dequantized to float32 by transformers' GGUF reader (the ``gguf`` package)
and saved with ``save_pretrained``; a peft adapter is merged into its base
(``merge_and_unload``) and saved the same way. Either result lands in quotegen's cache, keyed
by content (the GGUF file's sha256; the adapter's files and the base folder), and is written
whole into a staging folder that is renamed into place: an interrupted conversion leaves
nothing that a later load would use. Every later load is that of a plain safetensors folder.
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

#: Bumped when the folders written here change shape, so old conversions are redone.
FORMAT = 1
#: The causal-LM architectures transformers reads from GGUF (``gguf`` metadata names).
_GGUF_LOADABLE = ("llama", "mistral", "qwen2", "qwen3", "gpt2", "phi3", "gemma", "gemma2", "gemma3")

Notify = Callable[[str], None]


# -- GGUF ---------------------------------------------------------------------------------------


def inspect_gguf(path: Path) -> tuple[str, list[str]]:
    """The architecture a GGUF file declares and the quantization types of its tensors, or a
    one-line error naming the file when it is not a readable GGUF file."""
    try:
        from gguf import GGUFReader
    except ImportError as exc:
        raise InvalidModelError(
            f"Reading '{path.name}' needs the gguf package: pip install gguf"
        ) from exc
    try:
        reader = GGUFReader(path)
        field = reader.fields["general.architecture"]
        architecture = bytes(field.parts[field.data[0]]).decode("utf-8")
        kinds = sorted({tensor.tensor_type.name for tensor in reader.tensors})
    except KeyError as exc:
        raise InvalidModelError(
            f"'{path}' is not a usable GGUF model: it declares no general.architecture."
        ) from exc
    except Exception as exc:  # numpy's memmap and gguf's parser raise many kinds
        raise InvalidModelError(
            f"'{path}' is not a readable GGUF file ({brief(exc)}): it is truncated or "
            "corrupt. Download it again."
        ) from exc
    return architecture, kinds


def check_gguf(path: Path) -> None:
    """Refuse, before any work, what transformers cannot turn into a model."""
    from gguf import GGMLQuantizationType
    from gguf.quants import _type_traits  # the types gguf can dequantize

    architecture, kinds = inspect_gguf(path)
    if architecture not in _GGUF_LOADABLE:
        raise InvalidModelError(
            f"'{path.name}' holds a '{architecture}' model, which quotegen cannot load from "
            f"GGUF (it reads {', '.join(_GGUF_LOADABLE)}). Use the model's safetensors release "
            "instead."
        )
    plain = {"F32", "F16", "BF16"}
    known = {kind.name for kind in _type_traits} | plain
    unsupported = [
        kind for kind in kinds if kind not in known or kind not in GGMLQuantizationType.__members__
    ]
    if unsupported:
        raise InvalidModelError(
            f"'{path.name}' uses the quantization {', '.join(unsupported)}, which the gguf "
            "package cannot dequantize. Use another quantization of the model (Q8_0, Q4_K_M, "
            "F16, ...)."
        )


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


def merged_folder(adapter: Path, identity: str) -> Path:
    """Where the merge of ``adapter`` into the base ``identity`` names is cached."""
    digest = hashlib.sha256(f"v{FORMAT}|{identity}".encode())
    for item in sorted(adapter.iterdir()):
        if item.is_file() and not item.name.startswith("."):
            digest.update(item.name.encode())
            digest.update(remembered_sha256(item).encode())
    return cache_root() / "merged" / digest.hexdigest()[:40]


def merged_adapter(
    adapter: Path,
    base: Path,
    notify: Notify | None = None,
    *,
    prepare: bool = True,
    identity: str | None = None,
) -> Path:
    """The safetensors folder of ``base`` with the LoRA adapter merged in, made on first use
    and cached under the adapter's files and ``identity`` (default: the base folder's).

    The adapter folder's own tokenizer and ``generation_config.json``, where it has them,
    replace the base's: an adapter trained with its own framing stops where it learned to.
    """
    out = merged_folder(adapter, identity or base_identity(base))
    if (out / "config.json").is_file():
        return out
    if not prepare:
        raise ModelNotCachedError(
            f"The adapter '{adapter.name}' is not merged yet. Run: quotegen download"
        )
    if notify is not None:
        notify(f"Merging the adapter {adapter.name} into its base, once")
    quiet_transformers()
    try:
        with staged_folder(out) as staging:
            _merge(adapter, base, staging)
    except InvalidModelError:
        raise
    except Exception as exc:
        raise InvalidModelError(
            f"Could not apply the adapter in '{adapter}' to its base '{base}' "
            f"({brief(exc)}). Check that adapter_config.json names the base it was trained on."
        ) from exc
    return out


def _merge(adapter: Path, base: Path, out: Path) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    merged = PeftModel.from_pretrained(model, adapter).merge_and_unload()
    has_tokenizer = (adapter / "tokenizer_config.json").is_file()
    tokenizer = AutoTokenizer.from_pretrained(adapter if has_tokenizer else base)
    merged.save_pretrained(out)
    tokenizer.save_pretrained(out)
    for name in ("generation_config.json", "README.md", "quotegen-scorer.json"):
        if (adapter / name).is_file():
            shutil.copyfile(adapter / name, out / name)
    _write_provenance(out, {"adapter": str(adapter.resolve()), "base": str(base.resolve())})


def _write_provenance(out: Path, data: dict[str, Any]) -> None:
    (out / "quotegen-source.json").write_text(json.dumps({"format": FORMAT, **data}, indent=2))
