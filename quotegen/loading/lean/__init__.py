"""The lean inference forward passes: one module per model family, registered by
``config.json``'s ``model_type``.

transformers' forward passes are written for every use (training, many devices, many
options); on a CPU, a small model's decode step spends more time in their thousands of small
operations than in its matrix products. A lean family computes the same function for
inference with fewer, larger operations, straight from the checkpoint's tensors, its linear
layers built by ``quotegen.loading.quantization.linear_maker`` in the chosen precision.
Models of a family not registered here, or a config its module does not reproduce exactly,
keep transformers' forward.

Adding an architecture (docs/architecture.md says the same):

1. a module here, importing torch at its top (this registry imports it only when a model of
   its type loads), with module-level classes and:
   - ``MODEL_TYPE``, the ``model_type`` it computes;
   - ``supports_config(config: Mapping) -> bool``: the configs it reproduces exactly;
   - ``supports(model) -> bool``: the same for a loaded transformers model;
   - ``from_tensors(config, tensors, make_linear)``: the model from the checkpoint's tensors
     (a ``Mapping`` name -> tensor; ``config`` an object with the config's keys as
     attributes, ``LeanConfig``-like), each linear layer made by ``make_linear(names,
     weight)`` (``names``: the modules whose weights it stacks; the output head is
     ``("lm_head",)``);
   - ``lean(model, make_linear)``: the same from a loaded transformers model;
   - ``config_class``: how ``config.json`` becomes that ``config`` object;
   - ``tensor_names(config)``: the checkpoint's tensor names (a GGUF of the family is
     merged by them without building a transformers model);
   - a forward taking ``input_ids``, ``attention_mask``, ``position_ids``, ``cache``,
     ``use_cache``, ``logits_to_keep`` and returning ``.logits`` and ``.cache`` (a
     transformers ``DynamicCache``, which ``quotegen.engine.kvcache`` batches), and
     ``final_states`` for the quote scorer;
2. its name in ``FAMILIES``;
3. a test beside ``tests/test_quantization.py``'s Llama ones: its logits match transformers'
   forward on a tiny model of the family, and generation matches step for step.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from types import ModuleType
from typing import Any

#: model_type -> the module computing it.
FAMILIES = {"llama": "quotegen.loading.lean.llama"}


def family(model_type: object) -> ModuleType | None:
    """The lean module for a ``model_type`` (imported now), or None."""
    name = FAMILIES.get(str(model_type))
    return None if name is None else importlib.import_module(name)


def supports_config(config: Mapping[str, Any]) -> bool:
    """Whether a ``config.json`` (as a dict) loads straight into a lean family."""
    if str(config.get("model_type")) not in FAMILIES:  # no torch import for the others
        return False
    found = family(config.get("model_type"))
    return found is not None and bool(found.supports_config(config))


def tensor_names(config: Mapping[str, Any]) -> list[str] | None:
    """A supported config's checkpoint tensor names, by transformers' names (None: build
    transformers' model to learn them)."""
    if not supports_config(config):
        return None
    found = family(config.get("model_type"))
    return None if found is None else list(found.tensor_names(config))


def supports(model: Any) -> bool:
    """Whether a loaded transformers model has a lean form that reproduces it exactly."""
    found = family(getattr(getattr(model, "config", None), "model_type", None))
    return found is not None and bool(found.supports(model))


def from_tensors(config: Mapping[str, Any], tensors: Mapping[str, Any], make_linear: Any) -> Any:
    """The lean model of a ``config.json`` (``supports_config``) from its tensors."""
    found = family(config.get("model_type"))
    assert found is not None, config.get("model_type")
    return found.from_tensors(found.config_class(config), tensors, make_linear)


def lean(model: Any, make_linear: Any) -> Any:
    """The lean form of a loaded transformers model (``supports``)."""
    found = family(model.config.model_type)
    assert found is not None
    return found.lean(model, make_linear)
