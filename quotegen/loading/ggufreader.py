"""Reading GGUF files: what a file declares (its architecture and quantizations), whether
transformers can turn it into a model, its metadata parsed once, and its tensors dequantized
one at a time under transformers' names. torch, transformers and gguf are imported inside the
functions."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from quotegen.errors import InvalidModelError, brief

#: The causal-LM architectures transformers reads from GGUF (``gguf`` metadata names).
_GGUF_LOADABLE = ("llama", "mistral", "qwen2", "qwen3", "gpt2", "phi3", "gemma", "gemma2", "gemma3")


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


@contextlib.contextmanager
def gguf_metadata(path: Path) -> Iterator[tuple[Any, Any]]:
    """(reader, transformers config) of a GGUF file, its metadata parsed once.

    Parsing a GGUF's metadata (a tokenizer's 49,152 tokens and merges, element by element)
    takes seconds, and transformers' config reader makes a reader of its own: it is handed
    this one instead, for the length of the call."""
    import gguf
    from transformers import AutoConfig

    reader = gguf.GGUFReader(path)
    made = gguf.GGUFReader
    gguf.GGUFReader = lambda *_, **__: reader  # what transformers imports when it reads
    try:
        config = AutoConfig.from_pretrained(path.parent, gguf_file=path.name)
    finally:
        gguf.GGUFReader = made
    yield reader, config


def gguf_tensors(reader: Any, config: Any) -> Iterator[tuple[str, Any]]:
    """Each tensor of a GGUF file (its ``GGUFReader``), dequantized to float32 under
    transformers' name for it, one at a time: transformers' own reader (its
    per-architecture processors and name map), its loop written out so that no whole
    float32 copy of the model is ever held."""
    import numpy as np
    import torch
    from transformers.modeling_gguf_pytorch_utils import TENSOR_PROCESSORS, TensorProcessor

    field = reader.fields["general.architecture"]
    architecture = bytes(field.parts[field.data[0]]).decode("utf-8")
    processor = TENSOR_PROCESSORS.get(architecture, TensorProcessor)(config=config.to_dict())
    mapping = _gguf_names(config, processor, {tensor.name for tensor in reader.tensors})
    parsed: dict[str, Any] = {"config": config.to_dict(), "tensors": {}}
    for tensor in reader.tensors:
        result = processor.process(
            weights=_dequantized(tensor),
            name=tensor.name,
            tensor_key_mapping=mapping,
            parsed_parameters=parsed,
        )
        if result.name in mapping:
            # No copy unless the array is read-only (an unquantized tensor maps the file).
            weights = np.require(result.weights, np.float32, ["W"])
            yield mapping[result.name], torch.from_numpy(weights)


def _gguf_names(config: Any, processor: Any, present: set[str]) -> dict[str, str]:
    """GGUF tensor name -> transformers' name: gguf's name map over the checkpoint's names (a
    lean family's list, ``quotegen.loading.lean``, else a model skeleton on the meta device:
    importing transformers' model code costs about 90 MB); transformers' fuller search
    (submodules, its fallbacks, several seconds) only when that leaves a tensor unnamed."""
    import torch
    from gguf import MODEL_ARCH_NAMES, get_tensor_name_map
    from transformers import AutoModelForCausalLM
    from transformers.modeling_gguf_pytorch_utils import get_gguf_hf_weights_map

    from quotegen.loading import lean

    keys = lean.tensor_names(config.to_dict())
    arch = next((k for k, v in MODEL_ARCH_NAMES.items() if v == config.model_type), None)
    mapping: dict[str, str] = {}
    for attempt in range(2):
        if keys is None:
            with torch.device("meta"):
                skeleton = AutoModelForCausalLM.from_config(config)
            keys = list(skeleton.state_dict())
        if arch is not None:
            names = get_tensor_name_map(arch, config.num_hidden_layers)
            for key in keys:
                hf_name = processor.preprocess_name(key)
                stem, _, suffix = hf_name.rpartition(".")
                found = names.get_name(stem) if suffix in ("weight", "bias") else None
                if found is not None:
                    mapping[f"{found}.{suffix}"] = hf_name
        if not present - mapping.keys():
            return mapping
        keys, mapping = None, {}  # the family's list missed a tensor: ask the model itself
        if attempt == 1:
            return dict(get_gguf_hf_weights_map(skeleton, processor))
    return mapping


#: Tensors whose data is larger than this are dequantized a block of rows at a time.
_ROWS_AT_ONCE_BYTES = 8 << 20


def _dequantized(tensor: Any) -> Any:
    """A GGUF tensor as float32: gguf's ``dequantize``, a block of rows at a time for a large
    one, into one array (whole, its intermediates were several times the embedding's size:
    the peak of a first use)."""
    import numpy as np
    from gguf import dequantize

    data, kind = tensor.data, tensor.tensor_type
    if data.ndim < 2 or data.nbytes <= _ROWS_AT_ONCE_BYTES:
        return dequantize(data, kind)
    step = max(1, _ROWS_AT_ONCE_BYTES // max(1, data.nbytes // data.shape[0]))
    first = np.asarray(dequantize(data[:step], kind), np.float32)
    out = np.empty((data.shape[0], *first.shape[1:]), np.float32)
    out[:step] = first
    for start in range(step, data.shape[0], step):
        out[start : start + step] = dequantize(data[start : start + step], kind)
    return out
