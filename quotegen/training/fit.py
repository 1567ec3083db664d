"""Fine-tune a causal LM on quotes, or train a small GPT-2 from scratch, with a plain torch loop.

Each quote is one training example ending in end-of-text, so the model learns where quotes
stop. AdamW with linear warmup and cosine decay, gradient clipping, validation perplexity each
epoch; the best epoch is saved as soon as it is known, so an interrupted run (Ctrl-C) still
leaves a loadable model behind.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from quotegen.console import quiet_transformers
from quotegen.errors import DeviceError, InputError
from quotegen.inputs import Conversation, Example
from quotegen.loading.model import context_length, place
from quotegen.schemas import EpochReport, TrainReport
from quotegen.settings import TrainConfig
from quotegen.training.evaluation import encode_examples, learned_mask, perplexity, right_padded
from quotegen.training.saving import save_model

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


_T = TypeVar("_T", str, Example)


def split_quotes(quotes: Sequence[_T], val_fraction: float, seed: int) -> tuple[list[_T], list[_T]]:
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
    examples: Sequence[tuple[list[int], int]], batch_size: int, pad_id: int, rng: random.Random
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
        ranked = sorted(order[start : start + pool], key=lambda i: len(examples[i][0]))
        groups += [ranked[i : i + batch_size] for i in range(0, len(ranked), batch_size)]
    rng.shuffle(groups)
    batches = []
    for group in groups:
        ids, mask = right_padded([examples[i][0] for i in group], pad_id)
        learned = learned_mask(mask, [examples[i][1] for i in group])
        batches.append((ids, mask, ids.masked_fill(learned == 0, -100)))
    return batches


def train(
    config: TrainConfig,
    quotes: Sequence[Example],
    *,
    progress: Progress | None = None,
    data_name: str = "quotes",
    notify: Callable[[str], None] | None = None,
) -> TrainReport:
    """Train on ``quotes``; the best epoch ends up in ``config.out`` (also when interrupted).

    With ``checkpoint_every``, a resumable checkpoint is written to ``config.out`` every so
    many steps; a later run with the same settings and data resumes from it."""
    import torch

    from quotegen import get_model
    from quotegen.loading.model import choose_device
    from quotegen.loading.references import parse_model_ref
    from quotegen.training.checkpoint import Checkpoint

    started = time.perf_counter()
    quiet_transformers()
    chats = any(isinstance(q, Conversation) for q in quotes)
    if chats and config.from_scratch:
        raise InputError("Conversations fine-tune a --base model with a chat template.")
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
        texts = [q for q in train_quotes if isinstance(q, str)]  # no conversations here
        if config.tokenizer == "words":
            from quotegen.inputs import read_quotes
            from quotegen.training.vocab import build_tokenizer, read_dictionary

            counted = texts if config.vocab_from is None else read_quotes(config.vocab_from)
            tokenizer, suppress = build_tokenizer(
                counted,
                read_dictionary(),
                min_count=config.min_count,
                max_words=config.max_words,
                spelling_pieces=config.spelling_pieces,
                context=config.context,
            )
        else:
            tokenizer = train_tokenizer(texts, config.vocab_size, config.context)
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
        loaded = get_model(
            parse_model_ref(config.base),
            place(config.device, "float32", inference=False),
            allow_pickle=config.allow_pickle,
            trust_remote_code=config.trust_remote_code,
            optimize=False,
            notify=notify,
        ).loaded
        model, tokenizer = loaded.model, loaded.tokenizer
        suppress = loaded.suppress_token_ids  # a whole-word base's spelling pieces stay unwritten
        if config.frame_token is not None:
            frame_quotes(tokenizer, config.frame_token, keep_chat_template=chats)
        if chats and not getattr(tokenizer, "chat_template", None):
            raise InputError(f"{config.base} has no chat template to train conversations on.")
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        base_name = loaded.name
        if config.lora:
            model = with_lora(model, config)
    tokenizer.padding_side = "right"
    max_length = min(config.max_length, context_length(model.config))
    train_examples = encode_examples(tokenizer, train_quotes, max_length)
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


def frame_quotes(tokenizer: Any, token: str, *, keep_chat_template: bool = False) -> None:
    """Make ``token`` the start and the end of every quote: the tokenizer adds it in front of
    each text and generation stops at it, so training and generation agree. A chat template
    no longer applies to a model that learns bare quotes, so it is dropped, unless the model
    learns conversations too."""
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
    if not keep_chat_template:
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
        if config.lora_init is not None:
            from peft import PeftModel

            wrapped = PeftModel.from_pretrained(model, str(config.lora_init), is_trainable=True)
        else:
            wrapped = get_peft_model(model, lora)
    except ValueError as exc:
        raise InputError(f"--lora-targets {config.lora_targets}: {exc}") from exc
    wrapped.peft_config["default"].base_model_name_or_path = config.base
    return wrapped
