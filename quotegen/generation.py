"""The generation engine: one loaded model, rows in, tokens out, one decode loop for all.

``Engine`` works on *rows* (one prompt, one sample) that each carry their own settings, seed
and callbacks, so a batch can mix requests with different temperatures, lengths or stop
strings. Rows may join the running batch at any token step (continuous batching: their
prompts are run and their KV caches merged in) and leave it as soon as they finish or are
cancelled, so a departed client stops costing compute. Scheduling lives in
``quotegen.batching``, token choice in ``quotegen.sampling``, string work in
``quotegen.text``.

``TextEngine`` is the public interface the scheduler, the server and the CLI use: a subclass
gives ``info``, ``encode`` and ``steps``, the rest is shared; the tests' fake engine is one.
"""

from __future__ import annotations

import inspect
import random
import secrets
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from quotegen.errors import PromptTooLongError
from quotegen.sampling import choose_tokens
from quotegen.schemas import GenerationResult, ModelInfo
from quotegen.settings import MAX_SEED, FinishReason, GenerationSettings
from quotegen.text import choose_prompt, clean_text, find_stop, holdback

if TYPE_CHECKING:
    import torch

    from quotegen.model import LoadedModel

#: Called before every token step with the number of rows running; returns rows to add.
Admit = Callable[[int], "list[Row]"]


@dataclass
class Row:
    """One prompt and one sample travelling through the decode loop."""

    index: int
    sample: int
    prompt: str
    settings: GenerationSettings
    seed: int
    prompt_ids: list[int]
    max_new_tokens: int
    on_text: Callable[[str], None] | None = None
    on_finish: Callable[[Row], None] | None = None
    is_cancelled: Callable[[], bool] | None = None
    token_ids: list[int] = field(default_factory=list)
    completion: str = ""
    emitted: int = 0
    finish_reason: FinishReason | None = None
    error: BaseException | None = None
    seconds: float = 0.0
    started: float = 0.0
    rng: Any = None  # the row's seeded torch.Generator, made when its prompt runs

    @property
    def done(self) -> bool:
        return self.finish_reason is not None

    def add_token(
        self, token: int, *, is_eos: bool, decode: Callable[[Sequence[int]], str]
    ) -> None:
        """Add one generated token (or end-of-text) and decide whether the row is finished.

        The text is decoded every step only to look for stop strings or to stream it;
        otherwise once, when the row finishes. Streamed text holds back whatever might still
        become a stop string or complete a multi-byte character.
        """
        tracking = bool(self.settings.stop) or self.on_text is not None
        if self.is_cancelled is not None and self.is_cancelled():
            self.finish_reason = "cancelled"
            if not tracking:
                self.completion = decode(self.token_ids)
            return
        if is_eos:
            self.finish_reason = "stop"
            if not tracking:
                self.completion = decode(self.token_ids)
        else:
            self.token_ids.append(token)
            if len(self.token_ids) >= self.max_new_tokens:
                self.finish_reason = "length"
            if tracking or self.done:
                text = decode(self.token_ids)
                cut = find_stop(text, self.settings.stop)
                if cut is not None:
                    text = text[:cut]
                    self.finish_reason = "stop"
                self.completion = text
        if self.on_text is not None:
            visible = len(self.completion)
            if not self.done:
                visible -= holdback(self.completion, self.settings.stop)
            if visible > self.emitted:
                self.on_text(self.completion[self.emitted : visible])
                self.emitted = visible

    def finish(self, reason: FinishReason) -> None:
        """End the row from outside the decode loop (cancelled in a queue, failed batch)."""
        if self.finish_reason is None:
            self.finish_reason = reason

    def to_result(self, model: str) -> GenerationResult:
        full = self.prompt + self.completion
        return GenerationResult(
            index=self.index,
            sample=self.sample,
            prompt=self.prompt,
            text=clean_text(full) if self.settings.clean else full,
            completion=self.completion,
            model=model,
            settings=self.settings,
            seed=self.seed,
            prompt_tokens=len(self.prompt_ids),
            completion_tokens=len(self.token_ids),
            finish_reason=self.finish_reason or "length",
            seconds=round(self.seconds, 4),
        )


class TextEngine(ABC):
    """What the scheduler, the server and the CLI use of a model.

    A subclass provides ``info``, ``encode`` and ``steps`` (the decode loop); rows, seeds,
    context checks and results are the same for every engine. ``Engine`` runs a real model;
    the tests' fake engine implements the same three.
    """

    @property
    @abstractmethod
    def info(self) -> ModelInfo:
        """What the model is and where it runs."""

    @abstractmethod
    def encode(self, text: str) -> list[int]:
        """A prompt's token ids (with the model's own special tokens)."""

    @abstractmethod
    def steps(self, rows: Sequence[Row], admit: Admit | None = None) -> Iterator[None]:
        """The decode loop as an iterator: it yields after every token step.

        ``admit(running)`` is asked before every step for rows to add to the running batch
        (continuous batching). The loop ends when no row is left and ``admit`` has nothing
        more. Each row's ``on_finish`` is called the moment it is done.
        """

    def count_tokens(self, text: str) -> int:
        return len(self.encode(text))

    def prepare(
        self,
        prompts: Sequence[str],
        settings: GenerationSettings,
        *,
        start_index: int = 0,
        strict_context: bool = False,
    ) -> list[Row]:
        """Rows for ``prompts`` x ``settings.n``, each with its own derived seed.

        Row ``k`` of prompt ``i`` gets seed ``base + i * n + k``: results never depend on how
        the input was batched. ``strict_context`` rejects prompt + max_new_tokens beyond the
        context (the HTTP API's contract); otherwise max_new_tokens is trimmed to fit and only
        a prompt that cannot fit at all is an error.
        """
        context_length = self.info.context_length
        base_seed = settings.seed if settings.seed is not None else secrets.randbelow(MAX_SEED)
        kept = settings.model_copy(update={"seed": base_seed})
        rows: list[Row] = []
        for offset, raw_prompt in enumerate(prompts):
            index = start_index + offset
            for sample in range(settings.n):
                seed = (base_seed + index * settings.n + sample) % MAX_SEED
                prompt = choose_prompt(raw_prompt, random.Random(seed))
                # No tokenizer packs 32 characters into a token on average; refusing longer
                # prompts before tokenizing keeps a megabyte of input from tying up the CPU.
                if len(prompt) > context_length * 32:
                    raise PromptTooLongError(
                        f"The prompt is {len(prompt)} characters, more than the model's "
                        f"context of {context_length} tokens can hold. Shorten it."
                    )
                ids = self.encode(prompt)
                max_new = settings.max_new_tokens
                if len(ids) >= context_length or (
                    strict_context and len(ids) + max_new > context_length
                ):
                    raise PromptTooLongError(
                        f"The prompt is {len(ids)} tokens and max_new_tokens is {max_new}, but "
                        f"the model's context is {context_length} tokens. Shorten the prompt "
                        "or ask for fewer tokens."
                    )
                rows.append(
                    Row(
                        index=index,
                        sample=sample,
                        prompt=prompt,
                        settings=kept,
                        seed=seed,
                        prompt_ids=ids,
                        max_new_tokens=min(max_new, context_length - len(ids)),
                    )
                )
        return rows

    def result(self, row: Row) -> GenerationResult:
        return row.to_result(self.info.name)

    def run(self, rows: Sequence[Row], admit: Admit | None = None) -> list[Row]:
        """Generate every row to completion as one batch (plus any rows ``admit`` adds)."""
        for _ in self.steps(rows, admit):
            pass
        return list(rows)

    def generate(
        self, prompts: Sequence[str], settings: GenerationSettings, *, batch_size: int = 32
    ) -> list[GenerationResult]:
        """Generate ``settings.n`` results for each prompt, in input order."""
        from quotegen.batching import generate_ordered

        return list(generate_ordered(self, prompts, settings, batch_size=batch_size))

    def stream(self, prompt: str, settings: GenerationSettings) -> TextStream:
        """One prompt's continuation piece by piece (see ``TextStream``)."""
        return TextStream(self, prompt, settings)


class Engine(TextEngine):
    """Generates text with one loaded model; safe to share between threads (one batch at a time)."""

    def __init__(self, loaded: LoadedModel) -> None:
        self._loaded = loaded
        self._info = loaded.info()
        self._lock = threading.Lock()
        self._extras: dict[str, Any] | None = None
        # Fast tokenizers are not safe to share between threads mid-call ("Already borrowed").
        self._tokenizer_lock = threading.Lock()

    @property
    def info(self) -> ModelInfo:
        return self._info

    def encode(self, text: str) -> list[int]:
        with self._tokenizer_lock:
            ids: list[int] = self._loaded.tokenizer(text, add_special_tokens=True)["input_ids"]
        return ids

    def steps(self, rows: Sequence[Row], admit: Admit | None = None) -> Iterator[None]:
        if not rows:
            return
        with self._lock:
            yield from self._decode_loop(list(rows), admit)

    def _decode(self, ids: Sequence[int]) -> str:
        with self._tokenizer_lock:
            text: str = self._loaded.tokenizer.decode(
                list(ids), skip_special_tokens=True, clean_up_tokenization_spaces=False
            )
        return text

    # -- the decode loop ----------------------------------------------------------------------

    def _forward_extras(self) -> dict[str, Any]:
        # Only the last position's logits are needed: skip the output head for the rest of
        # the prompt (a 50k-wide product per prompt token) where the model allows it.
        if self._extras is None:
            forward = inspect.signature(self._loaded.model.forward).parameters
            self._extras = {"logits_to_keep": 1} if "logits_to_keep" in forward else {}
        return self._extras

    def _decode_loop(self, rows: list[Row], admit: Admit | None = None) -> Iterator[None]:
        import torch

        loaded = self._loaded
        model, device = loaded.model, loaded.device
        vocab = model.config.vocab_size
        eos = loaded.eos_token_ids
        extras = self._forward_extras()
        active: list[Row] = []
        incoming = rows
        past: Any = None
        # mask: [rows, cache length] (+1 column for the input while stepping); ids/pos: the
        # next input token of each row and its position. All None while no row runs.
        mask: Any = None
        ids: Any = None
        pos: Any = None
        presence: Any = None
        with torch.inference_mode():
            while True:
                if admit is not None and (not active or _can_merge(past)):
                    incoming = incoming + admit(len(active) + len(incoming))
                if not active and not incoming:
                    return
                logits = []
                if active:
                    out = model(
                        input_ids=ids,
                        attention_mask=mask,
                        position_ids=pos,
                        past_key_values=past,
                        use_cache=True,
                        **extras,
                    )
                    past = out.past_key_values
                    logits.append(out.logits[:, -1, :].float())
                if incoming:
                    new_logits, new_past, new_mask, new_pos = self._prefill(incoming, extras)
                    logits.append(new_logits)
                    if active:
                        past, mask = _merge_caches(past, mask, new_past, new_mask)
                        pos = torch.cat([pos, new_pos])
                    else:
                        past, mask, pos = new_past, new_mask, new_pos
                    active = active + incoming
                    incoming = []
                    presence = (
                        self._presence(active, vocab)
                        if any(r.settings.repetition_penalty != 1.0 for r in active)
                        else None
                    )
                chosen = choose_tokens(torch.cat(logits), active, presence, eos)
                keep: list[int] = []
                now = time.perf_counter()
                for j, (row, token) in enumerate(zip(active, chosen.tolist(), strict=True)):
                    row.add_token(token, is_eos=token in eos, decode=self._decode)
                    if row.done:
                        row.seconds = now - row.started
                        if row.on_finish is not None:
                            row.on_finish(row)
                    else:
                        keep.append(j)
                yield
                if len(keep) < len(active):
                    if not keep:
                        active, past, mask, ids, pos, presence = [], None, None, None, None, None
                        continue
                    index = torch.tensor(keep, device=device)
                    past.batch_select_indices(index)
                    chosen, mask, pos = chosen[index], mask[index], pos[index]
                    if presence is not None:
                        presence = presence[index]
                    active = [active[j] for j in keep]
                    past, mask = _trim_padding(past, mask)
                if presence is not None:
                    presence[torch.arange(len(active), device=device), chosen] = True
                ids = chosen[:, None]
                mask = torch.cat([mask, mask.new_ones((len(active), 1))], dim=1)
                pos = pos + 1

    def _prefill(
        self, rows: Sequence[Row], extras: dict[str, Any]
    ) -> tuple[torch.Tensor, Any, torch.Tensor, torch.Tensor]:
        """Run new rows' prompts (left-padded together): last logits, cache, mask, positions."""
        import torch

        loaded = self._loaded
        device = loaded.device
        started = time.perf_counter()
        for row in rows:
            row.rng = torch.Generator(device=device).manual_seed(row.seed)
            row.started = started
        input_ids, mask = _left_padded([r.prompt_ids for r in rows], loaded.pad_token_id, device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        out = loaded.model(
            input_ids=input_ids,
            attention_mask=mask,
            position_ids=positions,
            use_cache=True,
            **extras,
        )
        return out.logits[:, -1, :].float(), out.past_key_values, mask, positions[:, -1:]

    def _presence(self, rows: Sequence[Row], vocab: int) -> torch.Tensor:
        """Which tokens each row has seen so far (prompt and output), for the penalty."""
        import torch

        presence = torch.zeros((len(rows), vocab), dtype=torch.bool, device=self._loaded.device)
        for j, row in enumerate(rows):
            seen = [i for i in (*row.prompt_ids, *row.token_ids) if 0 <= i < vocab]
            presence[j, seen] = True
        return presence


class TextStream:
    """One prompt's continuation as it is generated: iterate for text pieces; once the
    iteration ends, ``result`` holds the full result. ``prompt`` is the prompt actually used
    (a default one when it was empty)."""

    def __init__(self, engine: TextEngine, prompt: str, settings: GenerationSettings) -> None:
        self._engine = engine
        (self._row,) = engine.prepare([prompt], settings.model_copy(update={"n": 1}))
        self.prompt = self._row.prompt
        self.result: GenerationResult | None = None

    def __iter__(self) -> Iterator[str]:
        pieces: list[str] = []
        self._row.on_text = pieces.append
        for _ in self._engine.steps([self._row]):
            if pieces:
                yield "".join(pieces)
                pieces.clear()
        if pieces:
            yield "".join(pieces)
        self.result = self._engine.result(self._row)


def _left_padded(
    sequences: Sequence[Sequence[int]], pad: int, device: Any
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids left-padded to one width, and the attention mask that hides the padding."""
    import torch

    width = max(len(s) for s in sequences)
    ids = torch.tensor([[pad] * (width - len(s)) + list(s) for s in sequences], device=device)
    mask = torch.tensor([[0] * (width - len(s)) + [1] * len(s) for s in sequences], device=device)
    return ids, mask


def _can_merge(past: Any) -> bool:
    """Whether new rows can join this KV cache: a plain ``DynamicCache`` of full-attention
    layers, whose tensors can be left-padded and concatenated (sliding-window, quantized or
    other caches only take new rows between batches)."""
    from transformers.cache_utils import DynamicCache, DynamicLayer

    return type(past) is DynamicCache and all(type(layer) is DynamicLayer for layer in past.layers)


def _left_pad(tensor: torch.Tensor, width: int, dim: int) -> torch.Tensor:
    import torch

    missing = width - tensor.shape[dim]
    if missing == 0:
        return tensor
    shape = list(tensor.shape)
    shape[dim] = missing
    return torch.cat([tensor.new_zeros(shape), tensor], dim=dim)


def _merge_caches(
    past: Any, mask: torch.Tensor, new_past: Any, new_mask: torch.Tensor
) -> tuple[Any, torch.Tensor]:
    """Stack two batches' KV caches row-wise, left-padding the shorter one (masked out)."""
    import torch

    width = max(mask.shape[1], new_mask.shape[1])
    for layer, new_layer in zip(past.layers, new_past.layers, strict=True):
        layer.keys = torch.cat(
            [_left_pad(layer.keys, width, -2), _left_pad(new_layer.keys, width, -2)]
        )
        layer.values = torch.cat(
            [_left_pad(layer.values, width, -2), _left_pad(new_layer.values, width, -2)]
        )
    return past, torch.cat([_left_pad(mask, width, 1), _left_pad(new_mask, width, 1)])


def _trim_padding(past: Any, mask: torch.Tensor) -> tuple[Any, torch.Tensor]:
    """Drop leading cache columns that no remaining row attends to (left by departed rows)."""
    first = int(mask.any(dim=0).int().argmax())
    if first == 0 or not _can_merge(past):
        return past, mask
    for layer in past.layers:
        layer.keys = layer.keys[..., first:, :]
        layer.values = layer.values[..., first:, :]
    return past, mask[:, first:]
