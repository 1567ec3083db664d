"""Build steps on saved weights: weight interpolation (WiSE-FT) and a model's generation
defaults. Used by the build scripts only, so they are not part of the installed package."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from quotegen.errors import InputError
from quotegen.training.saving import staged_files


def interpolate_weights(base: Path, tuned: Path, weight: float) -> None:
    """Weight-space ensembling of a fine-tuned model with the model it was tuned from
    (WiSE-FT, Wortsman et al. 2022): ``tuned``'s weights become ``(1 - weight) * base +
    weight * tuned``, computed in float32 and saved in ``tuned``'s own precision. It keeps
    some of the base's broader English at no cost in size or speed; 1 leaves ``tuned`` as it
    is, 0 makes it ``base``."""
    import torch
    from safetensors.torch import load_file, save_file

    if not 0.0 <= weight <= 1.0:
        raise InputError(f"The interpolation weight must be between 0 and 1, not {weight}.")
    base_weights = load_file(base / "model.safetensors")
    tuned_file = tuned / "model.safetensors"
    tuned_weights = load_file(tuned_file)
    shapes = {name: tensor.shape for name, tensor in tuned_weights.items()}
    if shapes != {name: tensor.shape for name, tensor in base_weights.items()}:
        raise InputError(f"{tuned} and {base} do not have the same weights to interpolate.")
    mixed = {
        name: torch.lerp(base_weights[name].float(), tensor.float(), weight).to(tensor.dtype)
        for name, tensor in tuned_weights.items()
    }
    with staged_files(tuned) as out:
        save_file(mixed, out / tuned_file.name, metadata={"format": "pt"})
        (out / tuned_file.name).chmod(0o644)


def set_generation_defaults(model_dir: Path, values: dict[str, Any]) -> None:
    """Set a saved model's generation defaults (``generation_config.json``): the settings
    quotegen uses for it wherever a user leaves them unset. For a whole-word tokenizer the
    spelling pieces are listed as ``suppress_tokens`` again, from the saved tokenizer."""
    from transformers import AutoTokenizer, GenerationConfig

    from quotegen.settings import MODEL_DEFAULT_KEYS, model_defaults
    from quotegen.training.vocab import SPACE, spelling_ids

    names = {name: key for key, name in MODEL_DEFAULT_KEYS.items()}
    unknown = set(values) - set(names)
    checked = model_defaults({names[k]: v for k, v in values.items() if k in names})
    if unknown or len(checked) != len(values):
        raise ValueError(f"not valid generation defaults: {sorted(set(values) - set(checked))}")
    config = GenerationConfig.from_pretrained(model_dir)
    for name, value in checked.items():
        setattr(config, names[name], value)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if any(piece.startswith(SPACE) for piece in tokenizer.get_vocab()):
        config.suppress_tokens = spelling_ids(tokenizer)
    config.save_pretrained(model_dir)
