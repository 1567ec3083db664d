"""Generation independent of any interface: prompts, cleaning, batched and streamed decoding.

One decode loop serves every caller. It works on *rows* (one prompt, one sample) that each
carry their own settings, seed and callbacks, so a batch can mix requests with different
temperatures, lengths or stop strings: the CLI batches stdin lines through it, the server's
batcher feeds it concurrent requests. Rows leave the batch (and the KV cache) as soon as they
finish or are cancelled, so a departed client stops costing compute.
"""

from __future__ import annotations

import inspect
import queue
import random
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from quotegen.config import DEFAULT_PROMPTS
from quotegen.errors import PromptTooLongError, QuotegenError
from quotegen.schemas import MAX_SEED, FinishReason, GenerationResult, GenerationSettings

if TYPE_CHECKING:
    import torch

    from quotegen.model import LoadedModel

_ODD_CHARS = re.compile(r"[~`^*&%$@#|]")
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([.,;!?])")
_WHITESPACE = re.compile(r"\s+")


def clean_text(text: str) -> str:
    """Seed 2's ``clean_text`` as it was meant to work.

    Strip; replace any of ``~`^*&%$@#|`` with a space; collapse whitespace; remove the space
    before ``. , ; ! ?``; capitalise the first letter *only* (so "I" and "NASA" survive). The
    seed's version turned " ," into U+0001 and lower-cased the rest of the text.
    """
    text = _ODD_CHARS.sub(" ", text)
    text = _WHITESPACE.sub(" ", text).strip()
    text = _SPACE_BEFORE_PUNCT.sub(r"\1", text)
    for i, char in enumerate(text):
        if char.isalpha():
            return text[:i] + char.upper() + text[i + 1 :]
    return text


def choose_prompt(prompt: str, rng: random.Random) -> str:
    """The prompt itself, or one of seed 2's default prompts when it is empty or blank."""
    return prompt if prompt.strip() else rng.choice(DEFAULT_PROMPTS)


def find_stop(text: str, stops: Sequence[str]) -> int | None:
    """Index where ``text`` must be cut, or None.

    A stop string only counts once the continuation has some non-blank text before it, so a
    quote that begins with a newline is not cut to nothing.
    """
    start = len(text) - len(text.lstrip())
    if start == len(text):
        return None
    hits = [i for i in (text.find(s, start) for s in stops) if i != -1]
    return min(hits) if hits else None


def _holdback(text: str, stops: Sequence[str]) -> int:
    """How many trailing characters might still turn into a stop string or a whole character."""
    keep = 0
    for stop in stops:
        for k in range(min(len(stop) - 1, len(text)), 0, -1):
            if text.endswith(stop[:k]):
                keep = max(keep, k)
                break
    stripped = text.rstrip("\ufffd")
    return max(keep, len(text) - len(stripped))


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
    is_cancelled: Callable[[], bool] | None = None
    token_ids: list[int] = field(default_factory=list)
    completion: str = ""
    emitted: int = 0
    finish_reason: FinishReason | None = None
    seconds: float = 0.0
    started: float = 0.0
    generator: Any = None
    on_finish: Callable[[Row], None] | None = None

    @property
    def done(self) -> bool:
        return self.finish_reason is not None


class Generator:
    """Generates text with one loaded model; safe to share between threads (one batch at a time)."""

    def __init__(self, loaded: LoadedModel) -> None:
        self.loaded = loaded
        self._lock = threading.Lock()
        self._extras: dict[str, Any] | None = None
        # Fast tokenizers are not safe to share between threads mid-call ("Already borrowed").
        self._tokenizer_lock = threading.Lock()

    @property
    def model_name(self) -> str:
        return self.loaded.name

    @property
    def context_length(self) -> int:
        return self.loaded.context_length

    def count_tokens(self, text: str) -> int:
        return len(self._encode(text))

    def _encode(self, text: str) -> list[int]:
        with self._tokenizer_lock:
            ids: list[int] = self.loaded.tokenizer(text, add_special_tokens=True)["input_ids"]
        return ids

    def _decode(self, ids: Sequence[int]) -> str:
        with self._tokenizer_lock:
            text: str = self.loaded.tokenizer.decode(
                list(ids), skip_special_tokens=True, clean_up_tokenization_spaces=False
            )
        return text

    # -- preparing rows -----------------------------------------------------------------------

    def prepare(
        self,
        prompts: Sequence[str],
        settings: GenerationSettings,
        *,
        start_index: int = 0,
        strict_context: bool = False,
    ) -> list[Row]:
        """Rows for ``prompts`` x ``settings.n``, each with its own derived seed.

        ``strict_context`` rejects prompt + max_new_tokens beyond the context (the HTTP API's
        contract); otherwise max_new_tokens is trimmed to fit and only a prompt that cannot
        fit at all is an error.
        """
        base_seed = settings.seed if settings.seed is not None else secrets.randbelow(MAX_SEED)
        rows: list[Row] = []
        for offset, raw_prompt in enumerate(prompts):
            index = start_index + offset
            for sample in range(settings.n):
                seed = (base_seed + index * settings.n + sample) % MAX_SEED
                prompt = choose_prompt(raw_prompt, random.Random(seed))
                self._check_characters(prompt)
                ids = self._encode(prompt)
                max_new = self._fit_context(len(ids), settings.max_new_tokens, strict_context)
                rows.append(
                    Row(
                        index=index,
                        sample=sample,
                        prompt=prompt,
                        settings=settings.model_copy(update={"seed": base_seed}),
                        seed=seed,
                        prompt_ids=ids,
                        max_new_tokens=max_new,
                    )
                )
        return rows

    def _check_characters(self, prompt: str) -> None:
        # No tokenizer packs 32 characters into a token on average; refusing longer prompts
        # before tokenizing keeps a megabyte of input from tying up the CPU.
        if len(prompt) > self.context_length * 32:
            raise PromptTooLongError(
                f"The prompt is {len(prompt)} characters, more than the model's context of "
                f"{self.context_length} tokens can hold. Shorten it."
            )

    def _fit_context(self, prompt_tokens: int, max_new: int, strict: bool) -> int:
        context = self.context_length
        if prompt_tokens >= context or (strict and prompt_tokens + max_new > context):
            raise PromptTooLongError(
                f"The prompt is {prompt_tokens} tokens and max_new_tokens is {max_new}, but the "
                f"model's context is {context} tokens. Shorten the prompt or ask for fewer tokens."
            )
        return min(max_new, context - prompt_tokens)

    # -- running rows -------------------------------------------------------------------------

    def run(self, rows: Sequence[Row], admit: Admit | None = None) -> list[Row]:
        """Generate every row to completion as one batch (plus any rows ``admit`` adds)."""
        for _ in self.steps(rows, admit):
            pass
        return list(rows)

    def steps(self, rows: Sequence[Row], admit: Admit | None = None) -> Iterator[None]:
        """The decode loop as an iterator: it yields after every token step (for streaming).

        ``admit(active)`` is asked before every step for rows to add to the running batch
        (continuous batching): it gets how many rows are running and returns new ones, or
        none. The loop ends when no row is left and ``admit`` has nothing more.
        """
        if not rows:
            return
        with self._lock:
            yield from self._decode_loop(list(rows), admit)

    def _forward_extras(self) -> dict[str, Any]:
        # Only the last position's logits are needed: skip the output head for the rest of
        # the prompt (a 50k-wide product per prompt token) where the model allows it.
        if self._extras is None:
            forward = inspect.signature(self.loaded.model.forward).parameters
            self._extras = {"logits_to_keep": 1} if "logits_to_keep" in forward else {}
        return self._extras

    def _decode_loop(self, rows: list[Row], admit: Admit | None = None) -> Iterator[None]:
        import torch

        loaded = self.loaded
        model, device = loaded.model, loaded.device
        vocab = model.config.vocab_size
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
                chosen = self._choose(torch.cat(logits), active, presence)
                keep: list[int] = []
                now = time.perf_counter()
                for j, (row, token) in enumerate(zip(active, chosen.tolist(), strict=True)):
                    self._advance(row, token)
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

        loaded = self.loaded
        device = loaded.device
        started = time.perf_counter()
        for row in rows:
            row.generator = torch.Generator(device=device).manual_seed(row.seed)
            row.started = started
        width = max(len(r.prompt_ids) for r in rows)
        pad = loaded.pad_token_id
        input_ids = torch.tensor(
            [[pad] * (width - len(r.prompt_ids)) + r.prompt_ids for r in rows], device=device
        )
        mask = torch.tensor(
            [[0] * (width - len(r.prompt_ids)) + [1] * len(r.prompt_ids) for r in rows],
            device=device,
        )
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

        presence = torch.zeros((len(rows), vocab), dtype=torch.bool, device=self.loaded.device)
        for j, row in enumerate(rows):
            ids = [i for i in (*row.prompt_ids, *row.token_ids) if 0 <= i < vocab]
            presence[j, ids] = True
        return presence

    def _advance(self, row: Row, token: int) -> None:
        """Add one token to a row and decide whether it is finished."""
        # The text is needed every step only to look for stop strings or to stream it;
        # otherwise it is decoded once, when the row finishes.
        tracking = bool(row.settings.stop) or row.on_text is not None
        if row.is_cancelled is not None and row.is_cancelled():
            row.finish_reason = "cancelled"
            if not tracking:
                row.completion = self._decode(row.token_ids)
            return
        if token in self.loaded.eos_token_ids:
            row.finish_reason = "stop"
            if not tracking:
                row.completion = self._decode(row.token_ids)
        else:
            row.token_ids.append(token)
            if len(row.token_ids) >= row.max_new_tokens:
                row.finish_reason = "length"
            if tracking or row.done:
                text = self._decode(row.token_ids)
                cut = find_stop(text, row.settings.stop)
                if cut is not None:
                    text = text[:cut]
                    row.finish_reason = "stop"
                row.completion = text
        if row.on_text is not None:
            visible = (
                len(row.completion)
                if row.done
                else (len(row.completion) - _holdback(row.completion, row.settings.stop))
            )
            if visible > row.emitted:
                row.on_text(row.completion[row.emitted : visible])
                row.emitted = visible

    def _choose(
        self, logits: torch.Tensor, rows: Sequence[Row], presence: torch.Tensor | None
    ) -> torch.Tensor:
        """Pick the next token of every row, each with its own settings and random generator."""
        import torch

        device = logits.device
        if presence is not None:
            penalty = torch.tensor([r.settings.repetition_penalty for r in rows], device=device)[
                :, None
            ]
            penalized = torch.where(logits > 0, logits / penalty, logits * penalty)
            logits = torch.where(presence, penalized, logits)
        eos = self.loaded.eos_token_ids
        early = [j for j, r in enumerate(rows) if len(r.token_ids) < r.settings.min_new_tokens]
        if eos and early:
            logits[
                torch.tensor(early, device=device)[:, None], torch.tensor(eos, device=device)
            ] = float("-inf")
        return _by_group(
            rows,
            lambda row: row.settings.greedy,
            lambda ids, _: logits[ids].argmax(dim=-1),
            lambda ids, subset: self._sample(logits[ids], subset),
        )

    def _sample(self, logits: torch.Tensor, rows: Sequence[Row]) -> torch.Tensor:
        """Sample one token per row: temperature, then top-k, then top-p, then a draw.

        Rows with a top-k work on their k best candidates only. Rows without one (seed 2's
        ``top_k=0``) keep the whole vocabulary: their nucleus is found by
        ``nucleus_threshold`` in linear time instead of sorting 50k logits every step.
        """
        import torch

        vocab = logits.shape[-1]
        temps = [r.settings.temperature for r in rows]
        if any(t != 1.0 for t in temps):
            logits = logits / torch.tensor(temps, device=logits.device)[:, None]
        return _by_group(
            rows,
            lambda row: 0 < row.settings.top_k < vocab,
            lambda ids, subset: self._sample_top_k(logits[ids], subset),
            lambda ids, subset: self._sample_top_p(logits[ids], subset),
        )

    def _sample_top_p(self, logits: torch.Tensor, rows: Sequence[Row]) -> torch.Tensor:
        import torch

        probs = torch.softmax(logits, dim=-1)
        top_ps = torch.tensor([r.settings.top_p for r in rows], dtype=torch.float64)
        if bool((top_ps < 1.0).any()):
            outside = probs < nucleus_threshold(probs, top_ps).to(probs.device)[:, None]
            probs = probs.masked_fill_(outside, 0.0)
        return _draw(probs, rows)

    def _sample_top_k(self, logits: torch.Tensor, rows: Sequence[Row]) -> torch.Tensor:
        import torch

        device = logits.device
        top_ks = torch.tensor([r.settings.top_k for r in rows], device=device)[:, None]
        top_ps = torch.tensor([r.settings.top_p for r in rows], device=device)[:, None]
        values, candidates = torch.topk(logits, max(r.settings.top_k for r in rows), dim=-1)
        ranks = torch.arange(values.shape[-1], device=device)[None, :]
        probs = torch.softmax(values.masked_fill(ranks >= top_ks, -torch.inf), dim=-1)
        # Nucleus: keep a token while the mass before it is below top_p (the first always stays).
        before = probs.cumsum(dim=-1) - probs
        drop = (before >= top_ps) & (top_ps < 1.0) & (ranks > 0)
        slots = _draw(probs.masked_fill(drop, 0.0), rows)
        return candidates.gather(1, slots[:, None])[:, 0]

    # -- results ------------------------------------------------------------------------------

    def result(self, row: Row) -> GenerationResult:
        full = row.prompt + row.completion
        return GenerationResult(
            index=row.index,
            sample=row.sample,
            prompt=row.prompt,
            text=clean_text(full) if row.settings.clean else full,
            completion=row.completion,
            model=self.model_name,
            settings=row.settings,
            seed=row.seed,
            prompt_tokens=len(row.prompt_ids),
            completion_tokens=len(row.token_ids),
            finish_reason=row.finish_reason or "length",
            seconds=round(row.seconds, 4),
        )

    def generate(
        self,
        prompts: Sequence[str],
        settings: GenerationSettings,
        *,
        batch_size: int = 32,
    ) -> list[GenerationResult]:
        """Generate ``settings.n`` results for each prompt, in input order."""
        return list(self.generate_iter(prompts, settings, batch_size=batch_size))

    def generate_iter(
        self,
        prompts: Iterable[str],
        settings: GenerationSettings,
        *,
        batch_size: int = 32,
    ) -> Iterator[GenerationResult]:
        """Results in input order, each as soon as it and every result before it is done.

        Prompts are read lazily on a background thread, so a slow producer (a pipe) never
        waits for a full batch, and prompts that arrive while a batch runs join it at the next
        token step (continuous batching, at most ``batch_size`` rows). Seeds are those of
        ``generate``: results do not depend on how the input was batched. A bad prompt, or an
        error reading the input, is raised after every result before it has been yielded.
        """
        if batch_size < 1:
            raise QuotegenError("batch_size must be at least 1.")
        feed = _PromptFeed(prompts)
        finished: dict[int, list[Row]] = {}
        state = {"next": 0, "emit": 0}
        failure: list[BaseException] = []

        def take(room: int, block: bool) -> list[Row]:
            rows: list[Row] = []
            # A prompt brings n rows; one prompt always fits into an empty batch.
            while not failure and (len(rows) + settings.n <= room or (not rows and block)):
                try:
                    item = feed.get(block=block and not rows)
                except QuotegenError as exc:
                    failure.append(exc)
                    break
                if item is None:
                    break
                try:
                    new = self.prepare([item], settings, start_index=state["next"])
                except QuotegenError as exc:
                    failure.append(exc)
                    break
                state["next"] += 1
                for row in new:
                    row.on_finish = lambda done: finished.setdefault(done.index, []).append(done)
                rows.extend(new)
            return rows

        def ready() -> Iterator[GenerationResult]:
            while len(finished.get(state["emit"], ())) == settings.n:
                for row in sorted(finished.pop(state["emit"]), key=lambda r: r.sample):
                    yield self.result(row)
                state["emit"] += 1

        while rows := take(batch_size, block=True):
            for _ in self.steps(rows, admit=lambda running: take(batch_size - running, False)):
                yield from ready()
            yield from ready()
        if failure:
            raise failure[0]

    def stream(self, prompt: str, settings: GenerationSettings) -> Iterator[str]:
        """Yield the continuation of one prompt piece by piece as it is generated."""
        pieces: list[str] = []
        (row,) = self.prepare([prompt], settings.model_copy(update={"n": 1}))
        row.on_text = pieces.append
        for _ in self.steps([row]):
            if pieces:
                yield "".join(pieces)
                pieces.clear()
        if pieces:
            yield "".join(pieces)


def _by_group(
    rows: Sequence[Row],
    test: Callable[[Row], bool],
    if_true: Callable[[Any, list[Row]], torch.Tensor],
    if_false: Callable[[Any, list[Row]], torch.Tensor],
) -> torch.Tensor:
    """Apply ``if_true`` to the rows passing ``test`` and ``if_false`` to the others, each as
    one batch, and put the results back in row order. ``ids`` is ``slice(None)`` (no copy)
    when every row is in the same group."""
    import torch

    flags = [test(row) for row in rows]
    if all(flags):
        return if_true(slice(None), list(rows))
    if not any(flags):
        return if_false(slice(None), list(rows))
    groups = [[j for j, flag in enumerate(flags) if flag is wanted] for wanted in (True, False)]
    picked = [
        apply(ids, [rows[j] for j in ids])
        for ids, apply in zip(groups, (if_true, if_false), strict=True)
    ]
    out = torch.empty(len(rows), dtype=torch.long, device=picked[0].device)
    for ids, values in zip(groups, picked, strict=True):
        out[ids] = values
    return out


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


def _draw(probs: torch.Tensor, rows: Sequence[Row]) -> torch.Tensor:
    """One index per row, drawn in proportion to ``probs`` (unnormalised) with the row's RNG.

    Inverse-CDF sampling: one uniform number per row from the row's own seeded generator, so a
    row's draw never depends on which other rows share its batch.
    """
    import torch

    cdf = probs.double().cumsum(dim=-1)
    u = torch.cat(
        [
            torch.rand(1, generator=row.generator, dtype=torch.float64, device=cdf.device)
            for row in rows
        ]
    )
    targets = (u * cdf[:, -1])[:, None]
    # cdf[i - 1] <= target < cdf[i], so probs[i] > 0: a zero-probability slot is never drawn.
    picks = torch.searchsorted(cdf, targets, right=True)[:, 0]
    return picks.clamp(max=cdf.shape[-1] - 1).to(probs.device)


def nucleus_threshold(probs: torch.Tensor, top_p: torch.Tensor) -> torch.Tensor:
    """Per row, the smallest probability inside the top-p nucleus; 0 where top_p >= 1.

    The nucleus is the smallest set of likeliest tokens whose mass reaches top_p, which is
    every token with ``probs >= threshold`` (ties at the edge all stay). Found without
    sorting (a radix select): float32 bit patterns of non-negative numbers sort like the
    numbers, so a mass-weighted histogram of the top 12 bits over the whole vocabulary finds
    the bucket where the cumulative mass (from the top) reaches top_p; histograms of the next
    10 and the last 10 bits of that bucket's few members then give the exact value.
    """
    import torch

    flat = probs.detach().float().contiguous()
    device = flat.device
    rows = flat.shape[0]
    p = top_p.to(device=device, dtype=torch.float64)[:, None]

    def crossing(
        mass: torch.Tensor, need: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        # The highest digit d whose members plus everything above them reach `need` is the
        # one where the mass below d stays within total - need.
        cum = mass.cumsum(-1)
        total = cum[:, -1:]
        d = torch.searchsorted(cum, total - need, right=True).clamp(max=mass.shape[1] - 1)
        return d, need - (total - cum.gather(1, d)), total

    def histogram(row_ids: torch.Tensor, digits: torch.Tensor, weights: torch.Tensor) -> Any:
        mass = torch.zeros(rows * 1024, dtype=torch.float64, device=device)
        return mass.index_add_(0, row_ids * 1024 + digits, weights).view(rows, 1024)

    # Level 1, every token: the top 12 bits (the sign bit is 0, so 11 of them vary).
    bits = flat.view(torch.int32)
    high = torch.bitwise_right_shift(bits, 20).long()
    mass = torch.zeros((rows, 2048), dtype=torch.float64, device=device)
    d1, need, total = crossing(mass.scatter_add_(1, high, flat.double()), p)
    # Levels 2 and 3, only the few members of the buckets found so far.
    row_ids, cols = (high == d1).nonzero(as_tuple=True)
    member_bits = bits[row_ids, cols].long()
    member_weights = flat[row_ids, cols].double()
    mid = torch.bitwise_and(torch.bitwise_right_shift(member_bits, 10), 1023)
    d2, need, _ = crossing(histogram(row_ids, mid, member_weights), need)
    last = mid == d2[row_ids, 0]
    low = torch.bitwise_and(member_bits[last], 1023)
    d3, _, _ = crossing(histogram(row_ids[last], low, member_weights[last]), need)

    found = torch.bitwise_left_shift(d1, 20) | torch.bitwise_left_shift(d2, 10) | d3
    threshold = found.int().view(torch.float32)[:, 0]
    # top_p >= 1, or rounding left the total mass just below top_p: keep everything.
    everything = (p >= 1.0) | (total < p)
    return torch.where(everything[:, 0], torch.zeros_like(threshold), threshold)


class _PromptFeed:
    """Reads an iterable of prompts on a daemon thread; ``get`` takes them in order."""

    _END = object()

    def __init__(self, prompts: Iterable[str], buffer: int = 1024) -> None:
        self._queue: queue.Queue[object] = queue.Queue(maxsize=buffer)
        self._ended = False
        self._thread = threading.Thread(
            target=self._read, args=(prompts,), name="quotegen-prompts", daemon=True
        )
        self._thread.start()

    def _read(self, prompts: Iterable[str]) -> None:
        try:
            for prompt in prompts:
                self._queue.put(prompt)
        except BaseException as exc:  # handed to the consumer, in order
            self._queue.put(exc)
        self._queue.put(self._END)

    def get(self, *, block: bool) -> str | None:
        """The next prompt; None at the end, or (not blocking) when none has arrived yet."""
        if self._ended:
            return None
        try:
            item = self._queue.get(block=block)
        except queue.Empty:
            return None
        if item is self._END:
            self._ended = True
            return None
        if isinstance(item, BaseException):
            self._ended = True
            raise item
        assert isinstance(item, str)
        return item


class CleanStream:
    """Turns a growing raw text into printable increments of its rendered (cleaned) form.

    Used to stream to a terminal while still printing exactly ``render`` of the final text: an
    increment is released only while the rendered text keeps what was printed as its prefix,
    and ``finish`` prints whatever remains.
    """

    def __init__(self, render: Callable[[str], str] = clean_text) -> None:
        self.render = render
        self.raw = ""
        self.printed = ""

    def feed(self, piece: str) -> str:
        self.raw += piece
        current = self.render(self.raw)
        if current.startswith(self.printed) and len(current) > len(self.printed):
            delta = current[len(self.printed) :]
            self.printed = current
            return delta
        return ""

    def finish(self, final: str) -> str:
        """What to print so the line ends as ``final``; a newline first if the two diverged."""
        if final.startswith(self.printed):
            return final[len(self.printed) :]
        return "\n" + final
