"""Writing a trained model: weights (or a LoRA adapter), tokenizer, generation defaults and
model card, whole or not at all (a staging folder, Ctrl-C held until it is complete)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from quotegen import __version__
from quotegen.schemas import TrainReport
from quotegen.settings import TrainConfig


def save_model(
    model: Any,
    tokenizer: Any,
    config: TrainConfig,
    report: TrainReport,
    base_name: str,
    data_name: str,
    suppress: Sequence[int] = (),
) -> None:
    """Write weights (safetensors; a LoRA adapter's own), tokenizer, quote generation
    defaults and a model card, whole (see ``staged_files``)."""
    with staged_files(config.out) as out:
        import torch
        from transformers import GenerationConfig

        from quotegen.config import GENERATION_SETTINGS

        # quotegen's defaults as the model's own (stop strings left out: transformers'
        # generate() would then need a tokenizer passed to it).
        defaults = {
            s.model_key: s.default
            for s in GENERATION_SETTINGS.values()
            if s.model_key and not isinstance(s.default, list)
        }
        model.generation_config = GenerationConfig(
            **defaults,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=_end_ids(tokenizer),
            pad_token_id=tokenizer.pad_token_id,
            suppress_tokens=list(suppress) or None,
        )
        if config.lora:
            # The adapter only (adapter_config.json, its weights); the base is named, not copied.
            model.save_pretrained(out, save_embedding_layers=False)
            model.generation_config.save_pretrained(out)
            if config.save_dtype != "float32":
                cast_weights(out / "adapter_model.safetensors", config.save_dtype)
        elif config.save_dtype == "float32":
            model.save_pretrained(out)
        else:
            # A copy in the saved precision: the one being trained stays float32.
            import copy

            copy.deepcopy(model).to(getattr(torch, config.save_dtype)).save_pretrained(out)
        tokenizer.padding_side = "left"
        tokenizer.save_pretrained(out)
        tokenizer.padding_side = "right"
        quick_tokenizer_files(out)
        (out / "README.md").write_text(model_card(config, report, base_name, data_name))
        for path in out.iterdir():
            # safetensors files are written private (0600); a model is meant to be shared.
            path.chmod(0o644)


def _end_ids(tokenizer: Any) -> int | list[int]:
    """End-of-text, and with a chat template also its end of turn (what a reply ends with)."""
    eos = int(tokenizer.eos_token_id)
    if not getattr(tokenizer, "chat_template", None):
        return eos
    rendered = tokenizer.apply_chat_template(
        [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}], tokenize=False
    )
    tail = tokenizer(rendered.rstrip().rpartition("y")[2], add_special_tokens=False)["input_ids"]
    return [eos, int(tail[0])] if tail and tail[0] != eos else eos


@contextlib.contextmanager
def staged_files(out: Path) -> Iterator[Path]:
    """A staging folder whose files are moved into ``out`` at the end, with Ctrl-C held until
    then: an interrupt never leaves a half-written model."""
    out.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f".{out.name}.saving"
    with _interrupts_held():
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        yield staging
        for path in staging.iterdir():
            os.replace(path, out / path.name)
        staging.rmdir()


@contextlib.contextmanager
def _interrupts_held() -> Iterator[None]:
    """Hold SIGINT for the duration; one that arrived is raised (KeyboardInterrupt) after."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread can handle signals
        return
    arrived: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, _frame: arrived.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if arrived:
        raise KeyboardInterrupt


def quick_tokenizer_files(folder: Path) -> None:
    """Rewrite a saved tokenizer's files so that they load quickly, with the same tokenizer.

    ``tokenizer_config.json`` gets the ``added_tokens_decoder`` that transformers 4 wrote (and
    Hub models carry): without it transformers 5 parses all of ``tokenizer.json`` in Python
    on every load, only to find the added tokens (2.5 ms of quotegen-mini's 40 ms).
    ``tokenizer.json`` is written compact, and the saving machine's ``is_local`` /
    ``local_files_only`` are dropped.
    """
    tokenizer_file = folder / "tokenizer.json"
    config_file = folder / "tokenizer_config.json"
    if not (tokenizer_file.is_file() and config_file.is_file()):
        return
    spec = json.loads(tokenizer_file.read_text(encoding="utf-8"))
    config = json.loads(config_file.read_text(encoding="utf-8"))
    config.setdefault(
        "added_tokens_decoder",
        {
            str(token["id"]): {key: value for key, value in token.items() if key != "id"}
            for token in spec.get("added_tokens", [])
        },
    )
    for key in ("is_local", "local_files_only"):
        config.pop(key, None)
    config_file.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", "utf-8")
    tokenizer_file.write_text(json.dumps(spec, ensure_ascii=False, separators=(",", ":")), "utf-8")


#: The training settings that only shape a model trained from scratch.
FROM_SCRATCH_ONLY = {
    "vocab_size",
    "n_layer",
    "n_head",
    "n_embd",
    "context",
    "dropout",
    "tokenizer",
    "min_count",
    "max_words",
    "spelling_pieces",
    "vocab_from",
}


def used_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """The training settings that applied, for a model card: fine-tuning keeps its base's
    tokenizer and shape, a word tokenizer has no ``vocab_size``, a BPE one no word settings."""
    if not settings.get("from_scratch"):
        unused = FROM_SCRATCH_ONLY
    elif settings.get("tokenizer") == "words":
        unused = {"vocab_size"}
    else:
        unused = {"min_count", "max_words", "spelling_pieces", "vocab_from"}
    return {key: value for key, value in settings.items() if key not in unused}


def hub_base_model(base: str | None) -> str | None:
    """The Hub repo id a base stands for, for a card's ``base_model``: a Hub reference's repo,
    a pinned base's origin; None for a local folder or file."""
    if base is None:
        return None
    from quotegen.loading.pinned import PINNED
    from quotegen.loading.references import parse_model_ref

    ref = parse_model_ref(base)
    if ref.pinned is not None:
        return PINNED[ref.pinned].origin.split(",")[0]
    return ref.repo_id


def model_card(config: TrainConfig, report: TrainReport, base_name: str, data_name: str) -> str:
    """A Hugging Face model card: YAML metadata, then what was trained on what, and how well."""
    best = report.best_val_perplexity
    metadata = {
        "library_name": "transformers",
        "pipeline_tag": "text-generation",
        "tags": ["quotegen", "quotes", "gpt2", "text-generation"],
        "language": ["en"],
        "license": "apache-2.0",
        "model-index": [
            {
                "name": config.out.name,
                "results": [
                    {
                        "task": {"type": "text-generation", "name": "Quote generation"},
                        "dataset": {"type": "text", "name": data_name},
                        "metrics": [
                            {"type": "perplexity", "value": round(best, 2) if best else None}
                        ],
                    }
                ],
            }
        ],
    }
    hub_base = hub_base_model(config.base)
    if hub_base:
        metadata["base_model"] = hub_base
    if config.lora:
        metadata["library_name"] = "peft"
        metadata["tags"] = ["quotegen", "quotes", "lora", "text-generation"]
    settings = used_settings(
        config.model_dump(
            mode="json", exclude={"out", "allow_pickle", "trust_remote_code", "device"}
        )
    )
    epochs = "\n".join(
        f"| {e.epoch} | {e.train_loss:.3f} | {e.val_perplexity:.2f} | {e.seconds:.0f} |"
        for e in report.epochs
    )
    front = "\n".join(f"{k}: {json.dumps(v)}" for k, v in metadata.items())
    stopped = " — run interrupted" if report.interrupted else ""
    return f"""---
{front}
---

# {config.out.name}

Short-quote generator made with `quotegen train` (quotegen {__version__}).

- **Base:** {base_name}
- **Data:** {data_name}: {report.train_quotes} training quotes, {report.val_quotes} held out
  (validation split {config.val_split}, seed {config.seed})
- **Validation perplexity** (token level): {report.initial_val_perplexity:.2f} before training,
  **{best:.2f}** after (epoch {report.best_epoch}){stopped}
- **Training time:** {report.seconds:.0f} s

| epoch | train loss | val perplexity | seconds |
|---|---|---|---|
{epochs}

## Use

```bash
quotegen generate --model {config.out} "life is"
```

## Training settings

```json
{json.dumps(settings, indent=2)}
```
"""


def cast_weights(path: Path, dtype: str) -> None:
    """Rewrite a safetensors file's floating-point tensors in ``dtype`` (an adapter's weights
    in float16 are half the size; they are cast back when merged into a float32 base)."""
    import torch
    from safetensors.torch import load_file, save_file

    target = getattr(torch, dtype)
    tensors = {
        name: tensor.to(target) if tensor.is_floating_point() else tensor
        for name, tensor in load_file(path).items()
    }
    save_file(tensors, path, metadata={"format": "pt"})
    path.chmod(0o644)  # safetensors writes files private; a model is meant to be shared
