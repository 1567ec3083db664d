"""The one place that turns a model reference into a loaded model.

``generate``, ``serve``, ``download``, ``train`` and ``eval`` all go through ``load_model``,
so device and dtype choice, offline handling, the safetensors preference, GGUF files,
adapters and the default's fallback cannot drift apart between commands (the files are found
and prepared by ``locating``). torch and transformers are imported lazily: importing this
module is cheap.
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from quotegen.config import fixed_threads
from quotegen.console import quiet_transformers
from quotegen.errors import DeviceError, InvalidModelError, UnsafeWeightsError, brief
from quotegen.loading.conversion import Notify
from quotegen.loading.hub import weight_files
from quotegen.loading.locating import declared_defaults, locate_or_fall_back
from quotegen.loading.references import ModelRef
from quotegen.schemas import ModelInfo

if TYPE_CHECKING:
    import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")
DTYPE_CHOICES = ("auto", "float32", "float16", "bfloat16")
QUANTIZE_CHOICES = ("none", "int8", "int4")


@dataclass
class LoadedModel:
    """A tokenizer and causal LM ready to generate, plus what the interfaces report about it."""

    ref: ModelRef
    model: Any
    tokenizer: Any
    path: Path
    device: torch.device
    dtype: torch.dtype
    context_length: int
    eos_token_ids: list[int]
    pad_token_id: int
    commit: str | None = None
    quantize: str = "none"
    #: The generation settings its generation_config.json declares (its defaults here).
    generation_config: dict[str, Any] = field(default_factory=dict)
    #: Token ids the model reads but never writes (generation_config.json's suppress_tokens).
    suppress_token_ids: list[int] = field(default_factory=list)

    @property
    def name(self) -> str:
        return str(self.ref)

    def info(self) -> ModelInfo:
        """What the interfaces report about it (``/info``, ``--json``, status lines)."""
        return ModelInfo(
            name=self.name,
            revision=self.commit or self.ref.revision,
            device=str(self.device),
            dtype=dtype_name(self.dtype),
            quantize=self.quantize,
            context_length=self.context_length,
            chat_template=bool(getattr(self.tokenizer, "chat_template", None)),
            generation_config=self.generation_config,
        )


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def choose_device(device: str = "auto") -> torch.device:
    """``auto`` picks cuda > mps > cpu; an explicit device must exist here."""
    import torch

    wanted = device.strip().lower()
    if wanted == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        chosen = torch.device(wanted)
    except (RuntimeError, ValueError) as exc:
        raise DeviceError(
            f"Unknown device '{device}'. Use one of: {', '.join(DEVICE_CHOICES)} (or cuda:N)."
        ) from exc
    if chosen.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(
                f"Device '{device}' is not available: this torch has no usable CUDA GPU. "
                "Use --device cpu."
            )
        if chosen.index is not None and chosen.index >= torch.cuda.device_count():
            raise DeviceError(
                f"Device '{device}' does not exist: {torch.cuda.device_count()} GPU(s) here."
            )
    elif chosen.type == "mps" and not torch.backends.mps.is_available():
        raise DeviceError(f"Device '{device}' is not available here. Use --device cpu.")
    elif chosen.type not in ("cpu", "cuda", "mps"):
        raise DeviceError(f"Device '{device}' is not supported. Use cpu, cuda or mps.")
    return chosen


def choose_dtype(dtype: str, device: torch.device, *, inference: bool = True) -> torch.dtype:
    """``auto``: for inference, bf16 on CPUs that multiply bf16 natively (its cost is within
    1 % bits per byte, docs/performance.md), else float32; bf16/fp16 on GPUs. Training
    (``inference`` False) gets float32 on the CPU."""
    import torch

    wanted = dtype.strip().lower()
    if wanted == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        if device.type == "mps":
            return torch.float16
        from quotegen.loading.hardware import cpu_has_bf16

        return torch.bfloat16 if inference and cpu_has_bf16() else torch.float32
    table = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
    if wanted not in table:
        raise DeviceError(f"Unknown dtype '{dtype}'. Use one of: {', '.join(DTYPE_CHOICES)}.")
    return table[wanted]


def check_quantize(quantize: str, device: torch.device, dtype: str = "auto") -> str:
    """Validate ``--quantize``: ``int8``/``int4`` are weight-only, for the CPU, and set the
    weights' precision themselves (so no explicit ``--dtype`` beside them)."""
    wanted = quantize.strip().lower()
    if wanted not in QUANTIZE_CHOICES:
        raise DeviceError(
            f"Unknown quantization '{quantize}'. Use one of: {', '.join(QUANTIZE_CHOICES)}."
        )
    if wanted == "none":
        return wanted
    if device.type != "cpu":
        raise DeviceError(
            f"--quantize {wanted} runs on the CPU only, not on {device.type}. Add --device cpu, "
            "or use --dtype float16/bfloat16 on a GPU instead."
        )
    if dtype.strip().lower() != "auto":
        raise DeviceError(f"--quantize {wanted} sets the weights' precision: drop --dtype.")
    from quotegen.loading.quantization import supported

    if not supported(wanted):
        raise DeviceError(f"This torch build has no {wanted} CPU kernels: use --quantize none.")
    return wanted


@dataclass(frozen=True)
class Placement:
    """Where and in what precision a model runs: checked once (``place``)."""

    device: torch.device
    dtype: torch.dtype
    quantize: str


def place(
    device: str = "auto", dtype: str = "auto", quantize: str = "none", *, inference: bool = True
) -> Placement:
    """Check ``--device``, ``--dtype`` and ``--quantize`` together: the one validation of
    the loading flags (the CLI calls it before fetching anything; ``load_model`` otherwise)."""
    torch_device = choose_device(device)
    torch_dtype = choose_dtype(dtype, torch_device, inference=inference)
    chosen = check_quantize(quantize, torch_device, dtype)
    try:
        fixed_threads()  # the engine reads it; a bad value is said before anything loads
    except ValueError as exc:
        raise DeviceError(str(exc)) from None
    return Placement(torch_device, torch_dtype, chosen)


def placement_of(flags: Mapping[str, Any]) -> tuple[Placement, dict[str, Any]]:
    """A replica's loading flags (``device``, ``dtype``, ``quantize`` as given, and the rest)
    as its ``Placement``, checked on the machine it runs on, and the other options."""
    options = dict(flags)
    names = ("device", "dtype", "quantize")
    chosen = place(
        *(str(options.pop(name, "none" if name == "quantize" else "auto")) for name in names)
    )
    return chosen, options


def check_model_dir(path: Path, *, allow_pickle: bool, name: str) -> None:
    """Fail early, with a useful message, on directories that cannot be a model."""
    if not (path / "config.json").is_file():
        raise InvalidModelError(
            f"'{path}' is not a model directory: it has no config.json. Point --model at a "
            "folder made by save_pretrained (config.json, tokenizer files, *.safetensors)."
        )
    weights = weight_files(path)
    if not weights:
        raise InvalidModelError(
            f"Model '{name}' in '{path}' has no weights (*.safetensors): the directory is "
            "incomplete. Re-save it, or re-download it with quotegen download."
        )
    if "safetensors" not in weights and not allow_pickle:
        raise UnsafeWeightsError(
            f"Model '{name}' has only pickle (.bin) weights, which can run code when loaded. "
            "Pass --allow-pickle if you trust it."
        )


def context_length(config: Any, tokenizer: Any = None) -> int:
    """How many tokens the model attends to: its config's positions, else the tokenizer's
    limit, else 1024. The one place every command and the trainer read it from."""
    for attr in ("n_positions", "max_position_embeddings", "n_ctx", "seq_length"):
        value = getattr(config, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(limit, int) and 0 < limit < 1_000_000:
        return limit
    return 1024


def _eos_ids(model: Any, tokenizer: Any, generation: dict[str, Any]) -> list[int]:
    ids: list[int] = []
    gen_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    for value in (
        gen_eos,
        generation.get("eos_token_id"),
        model.config.eos_token_id,
        tokenizer.eos_token_id,
    ):
        if isinstance(value, int):
            ids.append(value)
        elif isinstance(value, list):
            ids.extend(v for v in value if isinstance(v, int))
    return sorted(set(ids))


def _token_ids(value: Any, vocab: int) -> list[int]:
    """A list of token ids from a config file, keeping only valid ones."""
    if not isinstance(value, list):
        return []
    return sorted({v for v in value if isinstance(v, int) and 0 <= v < vocab})


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _model_class(path: Path, trust_remote_code: bool) -> Any:
    """The causal-LM class named in ``config.json``, imported from its own module.

    Resolving it through ``AutoModelForCausalLM`` builds transformers' whole auto mapping and
    imports what it triggers (about a second of the cold start); the named class needs only
    its module. Custom code, or a name transformers does not have, goes the auto way.
    """
    config = _read_json(path / "config.json")
    names = config.get("architectures") or []
    model_type = str(config.get("model_type") or "").replace("-", "_")
    if (
        not trust_remote_code
        and "auto_map" not in config
        and len(names) == 1
        and str(names[0]).endswith(("ForCausalLM", "LMHeadModel"))
        and re.fullmatch(r"[a-z0-9_]+", model_type)
    ):
        try:
            module = importlib.import_module(
                f"transformers.models.{model_type}.modeling_{model_type}"
            )
        except ImportError:
            module = None
        found = getattr(module, str(names[0]), None)
        if found is not None:
            return found
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM


def _tokenizer_class(path: Path, trust_remote_code: bool) -> Any:
    """The tokenizer class named in ``tokenizer_config.json`` (a fast one), else the auto way."""
    name = _read_json(path / "tokenizer_config.json").get("tokenizer_class")
    if not trust_remote_code and isinstance(name, str) and (path / "tokenizer.json").is_file():
        import transformers

        for candidate in (name, name.removesuffix("Fast") + "Fast"):
            found = getattr(transformers, candidate, None) if candidate.isidentifier() else None
            if found is not None and hasattr(found, "from_pretrained"):
                return found
    from transformers import AutoTokenizer

    return AutoTokenizer


def load_model(
    ref: ModelRef,
    placement: Placement | None = None,
    *,
    allow_pickle: bool = False,
    trust_remote_code: bool = False,
    optimize: bool = True,
    notify: Notify | None = None,
) -> LoadedModel:
    """Locate (download if needed and allowed), check and load a tokenizer + causal LM: the
    loading behind ``quotegen.get_model``, the one entry every command and replica uses.

    ``placement`` (from ``place``; None: ``auto`` everything) is where and in what precision.
    ``optimize`` applies the inference-only CPU speed-ups (frozen weights): training passes
    False to get the model exactly as saved.
    """
    if placement is None:
        placement = place(inference=optimize)
    torch_device, torch_dtype, quantize = placement.device, placement.dtype, placement.quantize
    # On the CPU the inference form is made from float32 weights (quotegen.loading.speedups): only
    # the linear layers take the chosen precision, norms and the residual stay float32.
    cpu_inference = optimize and torch_device.type == "cpu"
    ref, path = locate_or_fall_back(ref, allow_pickle=allow_pickle, notify=notify)
    check_model_dir(path, allow_pickle=allow_pickle, name=str(ref))

    quiet_transformers()
    try:
        tokenizer = _tokenizer_class(path, trust_remote_code).from_pretrained(
            path, trust_remote_code=trust_remote_code
        )
    except Exception as exc:
        raise InvalidModelError(
            f"Could not load the tokenizer of '{ref}' from '{path}' ({brief(exc)}). The "
            "tokenizer files are missing or corrupted; re-save or re-download the model."
        ) from exc
    if not getattr(tokenizer, "vocab_size", 1):
        # transformers builds an empty tokenizer when a folder has no tokenizer files.
        raise InvalidModelError(
            f"Model '{ref}' in '{path}' has no tokenizer (its vocabulary is empty): the "
            "directory is incomplete. Re-save it, or re-download it with quotegen download."
        )
    generation = _read_json(path / "generation_config.json")
    precision = quantize if quantize != "none" else dtype_name(torch_dtype)
    if cpu_inference and _lean_checkpoint(path, trust_remote_code):
        model = _load_lean(ref, path, precision)
    else:
        import torch

        # The CPU's inference form is made from float32 weights and takes the precision itself.
        load_dtype = torch.float32 if cpu_inference else torch_dtype
        model = _load_transformers(ref, path, load_dtype, trust_remote_code, generation)
        model.to(torch_device)
        model.eval()
        if cpu_inference:
            from quotegen.loading.speedups import optimize_for_inference

            model = optimize_for_inference(model, precision, path)

    eos_ids = _eos_ids(model, tokenizer, generation)
    if tokenizer.pad_token_id is None:
        # GPT-2 has no pad token; left-padded positions are masked out, so any id will do.
        tokenizer.pad_token = tokenizer.eos_token if tokenizer.eos_token else None
    pad_id = tokenizer.pad_token_id
    if pad_id is None:
        pad_id = eos_ids[0] if eos_ids else 0
    tokenizer.padding_side = "left"
    commit = (
        path.name if ref.repo_id is not None and re.fullmatch(r"[0-9a-f]{40}", path.name) else None
    )
    return LoadedModel(
        ref=ref,
        model=model,
        tokenizer=tokenizer,
        path=path,
        device=torch_device,
        dtype=torch_dtype,
        context_length=context_length(model.config, tokenizer),
        eos_token_ids=eos_ids,
        pad_token_id=int(pad_id),
        commit=commit,
        quantize=quantize,
        generation_config=declared_defaults(path),
        suppress_token_ids=_token_ids(generation.get("suppress_tokens"), len(tokenizer)),
    )


def _lean_checkpoint(path: Path, trust_remote_code: bool) -> bool:
    """Whether ``path`` holds a plain Llama in safetensors, which loads straight into its
    lean inference form (``quotegen.loading.lean``) without transformers' model classes."""
    from quotegen.loading.lean import supports_config

    return (
        not trust_remote_code
        and "safetensors" in weight_files(path)
        and supports_config(_read_json(path / "config.json"))
    )


def _unreadable_weights(ref: ModelRef, path: Path, exc: BaseException) -> InvalidModelError:
    return InvalidModelError(
        f"Could not load the weights of '{ref}' from '{path}' ({brief(exc)}). The files "
        "are incomplete or corrupted; re-save or re-download the model."
    )


def _load_lean(ref: ModelRef, path: Path, precision: str) -> Any:
    from quotegen.loading.speedups import load_lean

    try:
        return load_lean(path, _read_json(path / "config.json"), precision)
    except KeyError as exc:
        raise InvalidModelError(
            f"The weights of '{ref}' in '{path}' are incomplete: {exc} is missing. Re-save or "
            "re-download the model."
        ) from exc
    except Exception as exc:
        raise _unreadable_weights(ref, path, exc) from exc


def _load_transformers(
    ref: ModelRef,
    path: Path,
    dtype: torch.dtype,
    trust_remote_code: bool,
    generation: dict[str, Any],
) -> Any:
    """The model through transformers' own classes, its weights in ``dtype``."""
    try:
        model, info = _model_class(path, trust_remote_code).from_pretrained(
            path,
            dtype=dtype,
            use_safetensors=True if "safetensors" in weight_files(path) else None,
            trust_remote_code=trust_remote_code,
            output_loading_info=True,
            **_lean_generation_config(generation),
        )
    except ValueError as exc:
        if "trust_remote_code" in str(exc):
            raise InvalidModelError(
                f"Model '{ref}' needs custom code from its repository. Pass --trust-remote-code "
                "only if you trust its author."
            ) from exc
        raise InvalidModelError(
            f"Could not load the weights of '{ref}' from '{path}' ({brief(exc)})."
        ) from exc
    except Exception as exc:
        raise _unreadable_weights(ref, path, exc) from exc
    missing = [k for k in info.get("missing_keys", []) if "lm_head" not in k]
    if missing:
        raise InvalidModelError(
            f"The weights of '{ref}' in '{path}' are incomplete: {len(missing)} tensors are "
            f"missing (e.g. {missing[0]}). Re-save or re-download the model."
        )
    return model


def _lean_generation_config(generation: dict[str, Any]) -> dict[str, Any]:
    """``from_pretrained``'s ``generation_config``: the model's own, less its
    ``suppress_tokens``, which quotegen applies itself. transformers serialises the config to
    JSON several times while loading, and a whole-word model's thousand suppressed ids made
    that a tenth of quotegen-mini's load time. Empty (transformers reads the file) when
    there is no file or it does not parse as a generation config."""
    if not generation:
        return {}
    from transformers import GenerationConfig

    try:
        lean = GenerationConfig.from_dict(
            {key: value for key, value in generation.items() if key != "suppress_tokens"}
        )
    except Exception:  # transformers reads (and reports on) it as usual
        return {}
    return {"generation_config": lean}
