"""Fine-tune a causal LM on quotes, or train a small GPT-2 from scratch, with a plain torch loop.

Each quote is one training example ending in end-of-text, so the model learns where quotes
stop. AdamW with linear warmup and cosine decay, gradient clipping, validation perplexity each
epoch; the best epoch is saved as soon as it is known, so an interrupted run (Ctrl-C) still
leaves a loadable model behind.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from quotegen import __version__
from quotegen.console import quiet_transformers
from quotegen.errors import DeviceError, InputError
from quotegen.evaluation import perplexity, quote_examples, right_padded
from quotegen.model import context_length, load_model
from quotegen.schemas import EpochReport, TrainReport
from quotegen.settings import TrainConfig

EOS = "<|endoftext|>"


Progress = Callable[[str, int, int, dict[str, float]], None]


def train_tokenizer(
    texts: Iterable[str], vocab_size: int, context: int, *, min_frequency: int = 2
) -> Any:
    """A byte-level BPE tokenizer (GPT-2's kind) trained on ``texts``, end-of-text as its
    one special token (also used for padding and unknowns)."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        texts, vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=[EOS]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe._tokenizer,
        bos_token=EOS,
        eos_token=EOS,
        unk_token=EOS,
        pad_token=EOS,
        model_max_length=context,
    )


def new_gpt2(
    tokenizer: Any,
    *,
    n_positions: int,
    n_embd: int,
    n_layer: int,
    n_head: int,
    dropout: float = 0.1,
    seed: int | None = None,
) -> Any:
    """A GPT-2 with random weights sized for ``tokenizer`` (training from scratch, and the
    small models tests and benchmarks build)."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    if seed is not None:
        torch.manual_seed(seed)
    return GPT2LMHeadModel(
        GPT2Config(
            vocab_size=len(tokenizer),
            n_positions=n_positions,
            n_embd=n_embd,
            n_layer=n_layer,
            n_head=n_head,
            resid_pdrop=dropout,
            embd_pdrop=dropout,
            attn_pdrop=dropout,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
    )


def split_quotes(
    quotes: Sequence[str], val_fraction: float, seed: int
) -> tuple[list[str], list[str]]:
    """A seeded shuffle, then ``val_fraction`` held out (at least one of each when possible)."""
    if not 0.0 < val_fraction < 1.0:
        raise InputError(f"--val-split must be between 0 and 1, not {val_fraction}.")
    if len(quotes) < 2:
        raise InputError("At least two quotes are needed: one to train on, one to validate.")
    order = list(quotes)
    random.Random(seed).shuffle(order)
    n_val = min(len(order) - 1, max(1, round(len(order) * val_fraction)))
    return order[n_val:], order[:n_val]


def _batches(
    examples: Sequence[list[int]], batch_size: int, pad_id: int, rng: random.Random
) -> list[tuple[Any, Any, Any]]:
    """Shuffled batches of examples of about the same length ("sortish"): each pool of 50
    batches' worth of shuffled examples is sorted by length before it is cut, so a batch pads
    little (random batches of one-line sentences and 200-character sayings spent most of
    their compute on padding), and the batches are shuffled again."""
    order = list(range(len(examples)))
    rng.shuffle(order)
    pool = batch_size * 50
    groups = []
    for start in range(0, len(order), pool):
        ranked = sorted(order[start : start + pool], key=lambda i: len(examples[i]))
        groups += [ranked[i : i + batch_size] for i in range(0, len(ranked), batch_size)]
    rng.shuffle(groups)
    batches = []
    for group in groups:
        ids, mask = right_padded([examples[i] for i in group], pad_id)
        batches.append((ids, mask, ids.masked_fill(mask == 0, -100)))
    return batches


def train(
    config: TrainConfig,
    quotes: Sequence[str],
    *,
    progress: Progress | None = None,
    data_name: str = "quotes",
    notify: Callable[[str], None] | None = None,
) -> TrainReport:
    """Train on ``quotes``; the best epoch ends up in ``config.out`` (also when interrupted).

    With ``checkpoint_every``, a resumable checkpoint is written to ``config.out`` every so
    many steps; a later run with the same settings and data resumes from it."""
    import torch

    from quotegen.checkpoint import Checkpoint
    from quotegen.model import choose_device
    from quotegen.references import parse_model_ref

    started = time.perf_counter()
    quiet_transformers()
    train_quotes, val_quotes = split_quotes(quotes, config.val_split, config.seed)
    torch.manual_seed(config.seed)
    device = choose_device(config.device)
    # Only the training steps: validation (and so the best epoch) is measured in float32.
    try:
        autocast = torch.autocast(
            device.type, dtype=torch.bfloat16, enabled=config.mixed_precision == "bf16"
        )
    except RuntimeError as exc:  # e.g. a GPU without bfloat16
        raise DeviceError(
            f"--mixed-precision bf16 is not available on {device}: {exc} Use --mixed-precision no."
        ) from exc
    checkpoint = Checkpoint(config, train_quotes)
    resumed = checkpoint.load()  # checks it belongs to this run before any model is loaded

    suppress: list[int] = []
    if config.from_scratch:
        if config.tokenizer == "words":
            from quotegen.inputs import read_quotes
            from quotegen.vocab import build_tokenizer, read_dictionary

            counted = train_quotes if config.vocab_from is None else read_quotes(config.vocab_from)
            tokenizer, suppress = build_tokenizer(
                counted,
                read_dictionary(),
                min_count=config.min_count,
                max_words=config.max_words,
                spelling_pieces=config.spelling_pieces,
                context=config.context,
            )
        else:
            tokenizer = train_tokenizer(train_quotes, config.vocab_size, config.context)
        model = new_gpt2(
            tokenizer,
            n_positions=config.context,
            n_embd=config.n_embd,
            n_layer=config.n_layer,
            n_head=config.n_head,
            dropout=config.dropout,
        ).to(device)
        base_name = "GPT-2 architecture, trained from scratch"
    else:
        assert config.base is not None
        loaded = load_model(
            parse_model_ref(config.base),
            device=config.device,
            dtype="float32",
            allow_pickle=config.allow_pickle,
            trust_remote_code=config.trust_remote_code,
            optimize=False,
            notify=notify,
        )
        model, tokenizer = loaded.model, loaded.tokenizer
        suppress = loaded.suppress_token_ids  # a whole-word base's spelling pieces stay unwritten
        if config.frame_token is not None:
            frame_quotes(tokenizer, config.frame_token)
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        base_name = loaded.name
        if config.lora:
            model = with_lora(model, config)
    tokenizer.padding_side = "right"
    max_length = min(config.max_length, context_length(model.config))
    train_examples = quote_examples(tokenizer, train_quotes, max_length)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    trainable = [p for p in model.parameters() if p.requires_grad]

    def validate() -> float:
        return perplexity(
            model, tokenizer, val_quotes, batch_size=config.batch_size * 2, max_length=max_length
        )

    steps_per_epoch = math.ceil(len(train_examples) / config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    if config.max_steps is not None:
        total_steps = min(total_steps, config.max_steps)
    warmup = max(1, int(total_steps * config.warmup_ratio))
    optimizer = torch.optim.AdamW(
        trainable, lr=config.learning_rate, weight_decay=config.weight_decay
    )

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        done = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, done)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    if resumed is not None:
        report, step = resumed.restore(model, optimizer, scheduler)
        if notify is not None:
            notify(f"Resuming from the checkpoint at step {step} of {total_steps}")
    else:
        report = TrainReport(
            out=config.out,
            train_quotes=len(train_quotes),
            val_quotes=len(val_quotes),
            initial_val_perplexity=validate(),
        )
        step = 0
    best = min(
        (e.val_perplexity for e in report.epochs if e.epoch == report.best_epoch), default=math.inf
    )

    def save() -> None:
        report.seconds = time.perf_counter() - started + checkpoint.seconds_before
        save_model(model, tokenizer, config, report, base_name, data_name, suppress)

    try:
        for epoch in range(1, config.epochs + 1):
            first = (epoch - 1) * steps_per_epoch
            if step >= min(first + steps_per_epoch, total_steps):
                continue  # done before a resume
            epoch_started = time.perf_counter()
            model.train()
            losses: list[float] = []
            rng = random.Random(f"{config.seed}-{epoch}")
            for index, (ids, mask, labels) in enumerate(
                _batches(train_examples, config.batch_size, pad_id, rng)
            ):
                if first + index < step:
                    continue  # done before a resume
                if step >= total_steps:
                    break
                with autocast:
                    out = model(
                        input_ids=ids.to(device),
                        attention_mask=mask.to(device),
                        labels=labels.to(device),
                    )
                optimizer.zero_grad(set_to_none=True)
                out.loss.backward()
                torch.nn.utils.clip_grad_norm_(trainable, config.grad_clip)
                optimizer.step()
                scheduler.step()
                step += 1
                losses.append(out.loss.item())
                if progress is not None:
                    recent = losses[-50:]
                    progress(
                        "train",
                        step,
                        total_steps,
                        {"epoch": epoch, "loss": sum(recent) / len(recent)},
                    )
                if config.checkpoint_every and step % config.checkpoint_every == 0:
                    checkpoint.save(model, optimizer, scheduler, report, step, started)
            model.eval()
            val = validate()
            report.epochs.append(
                EpochReport(
                    epoch=epoch,
                    train_loss=sum(losses) / len(losses) if losses else math.nan,
                    val_perplexity=val,
                    seconds=time.perf_counter() - epoch_started,
                )
            )
            if progress is not None:
                progress("epoch", epoch, config.epochs, {"val_perplexity": val})
            if val < best:
                best = val
                report.best_epoch = epoch
                save()
            if config.checkpoint_every:
                checkpoint.save(model, optimizer, scheduler, report, step, started)
            if step >= total_steps:
                break
    except KeyboardInterrupt:
        model.eval()
        if config.checkpoint_every and step:
            checkpoint.save(model, optimizer, scheduler, report, step, started)
        report.interrupted = True
        if report.best_epoch is None:
            # Nothing saved yet: keep what we have rather than nothing.
            val = validate()
            report.epochs.append(
                EpochReport(
                    epoch=0,
                    train_loss=math.nan,
                    val_perplexity=val,
                    seconds=time.perf_counter() - started,
                )
            )
            report.best_epoch = 0
            save()
    else:
        checkpoint.remove()
    report.seconds = time.perf_counter() - started + checkpoint.seconds_before
    return report


def frame_quotes(tokenizer: Any, token: str) -> None:
    """Make ``token`` the start and the end of every quote: the tokenizer adds it in front of
    each text and generation stops at it, so training and generation agree. A chat template
    no longer applies to a model that learns bare quotes, so it is dropped."""
    token_id = tokenizer.convert_tokens_to_ids(token)
    if not isinstance(token_id, int) or (
        token_id == tokenizer.unk_token_id and token != (tokenizer.unk_token)
    ):
        raise InputError(f"--frame-token {token!r} is not a token of the base's vocabulary.")
    tokenizer.bos_token = token
    tokenizer.eos_token = token
    try:
        tokenizer.add_bos_token = True
    except (AttributeError, ValueError) as exc:
        raise InputError(
            f"The base's tokenizer cannot add {token!r} in front of a text: {exc}"
        ) from exc
    if tokenizer(["x"])["input_ids"][0][0] != token_id:
        raise InputError(f"The base's tokenizer does not put {token!r} in front of a text.")
    tokenizer.chat_template = None


def with_lora(model: Any, config: TrainConfig) -> Any:
    """The model with LoRA adapters on ``config.lora_targets`` (peft); only they train."""
    from peft import LoraConfig, get_peft_model

    targets: str | list[str] | None
    if config.lora_targets == "auto":
        targets = None
    elif config.lora_targets == "all-linear":
        targets = "all-linear"
    else:
        targets = config.lora_targets.split(",")
    try:
        lora = LoraConfig(
            r=config.lora_r,
            lora_alpha=config.lora_alpha,
            lora_dropout=config.lora_dropout,
            target_modules=targets,
            task_type="CAUSAL_LM",
        )
        wrapped = get_peft_model(model, lora)
    except ValueError as exc:
        raise InputError(f"--lora-targets {config.lora_targets}: {exc}") from exc
    wrapped.peft_config["default"].base_model_name_or_path = config.base
    return wrapped


def save_model(
    model: Any,
    tokenizer: Any,
    config: TrainConfig,
    report: TrainReport,
    base_name: str,
    data_name: str,
    suppress: Sequence[int] = (),
) -> None:
    """Write weights (safetensors), tokenizer, quote generation defaults and a model card."""
    with staged_files(config.out) as out:
        _write_model(model, tokenizer, config, report, base_name, data_name, suppress, out)


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


def _write_model(
    model: Any,
    tokenizer: Any,
    config: TrainConfig,
    report: TrainReport,
    base_name: str,
    data_name: str,
    suppress: Sequence[int],
    out: Path,
) -> None:
    import torch
    from transformers import GenerationConfig

    from quotegen.config import GENERATION

    model.generation_config = GenerationConfig(
        do_sample=GENERATION.do_sample,
        temperature=GENERATION.temperature,
        top_k=GENERATION.top_k,
        top_p=GENERATION.top_p,
        repetition_penalty=GENERATION.repetition_penalty,
        max_new_tokens=GENERATION.max_new_tokens,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        suppress_tokens=list(suppress) or None,
    )
    if config.lora:
        # The adapter only (adapter_config.json, its weights); the base is named, not copied.
        model.save_pretrained(out, save_embedding_layers=False)
        model.generation_config.save_pretrained(out)
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
    from quotegen.pinned import PINNED
    from quotegen.references import parse_model_ref

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
