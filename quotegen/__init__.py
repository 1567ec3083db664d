"""quotegen: short texts (quotes, one-liners) from Hugging Face causal language models.

The library in two calls, as the CLI and the server use it::

    import quotegen

    model = quotegen.get_model()  # the default model; or "org/name", a folder, a .gguf file
    for result in model.generate(["life is", "love"], model.settings({"n": 2, "seed": 7})):
        print(result.text)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"

if TYPE_CHECKING:
    from quotegen.engine.generation import Engine
    from quotegen.loading.conversion import Notify
    from quotegen.loading.model import Placement
    from quotegen.loading.references import ModelRef


def get_model(
    name: str | ModelRef | None = None,
    placement: Placement | None = None,
    *,
    allow_pickle: bool = False,
    trust_remote_code: bool = False,
    notify: Notify | None = None,
    optimize: bool = True,
) -> Engine:
    """A model ready to generate: ``name`` is any ``--model`` reference (a Hub repo id, a
    local folder, a ``.gguf`` file, a LoRA adapter folder), or None for the default model;
    ``placement`` is where and in what precision (``quotegen.loading.model.place("cpu",
    quantize="int4")``; None: ``auto`` everything). The one loading path every command, the
    server and its replicas use: first use fetches, converts and merges what it needs, said
    through ``notify``. ``Engine.settings`` lays a request's settings over the model's
    defaults; ``generate`` returns ``GenerationResult``s in input order, ``stream`` one
    prompt's text piece by piece; ``loaded`` is the model itself (training and evaluation
    pass ``optimize=False`` for its weights exactly as saved)."""
    from quotegen.engine.generation import Engine
    from quotegen.loading.model import load_model
    from quotegen.loading.references import ModelRef, resolve_model

    ref = name if isinstance(name, ModelRef) else resolve_model(name)
    loaded = load_model(
        ref,
        placement,
        allow_pickle=allow_pickle,
        trust_remote_code=trust_remote_code,
        optimize=optimize,
        notify=notify,
    )
    return Engine(loaded)
