"""Generation independent of any interface: prompts, cleaning, batched and streamed decoding.

One decode loop serves every caller. It works on *rows* (one prompt, one sample) that each
carry their own settings, seed and callbacks, so a batch can mix requests with different
temperatures, lengths or stop strings: the CLI batches stdin lines through it, the server's
batcher feeds it concurrent requests. Rows leave the batch (and the KV cache) as soon as they
finish or are cancelled, so a departed client stops costing compute.
"""

from __future__ import annotations

import random
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Sequence
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
    generator: Any = None

    @property
    def done(self) -> bool:
        return self.finish_reason is not None


class Generator:
    """Generates text with one loaded model; safe to share between threads (one batch at a time)."""

    def __init__(self, loaded: LoadedModel) -> None:
        self.loaded = loaded
        self._lock = threading.Lock()
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

    def run(self, rows: Sequence[Row]) -> list[Row]:
        """Generate every row to completion as one batch."""
        for _ in self.steps(rows):
            pass
        return list(rows)

    def steps(self, rows: Sequence[Row]) -> Iterator[None]:
        """The decode loop as an iterator: it yields after every token step (for streaming)."""
        if not rows:
            return
        with self._lock:
            yield from self._decode_loop(list(rows))

    def _decode_loop(self, rows: list[Row]) -> Iterator[None]:
        import torch

        loaded = self.loaded
        device = loaded.device
        started = time.perf_counter()
        for row in rows:
            row.generator = torch.Generator(device=device).manual_seed(row.seed)

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
        vocab = loaded.model.config.vocab_size
        presence = (
            self._presence(rows, vocab)
            if any(r.settings.repetition_penalty != 1.0 for r in rows)
            else None
        )

        active = list(rows)
        past: Any = None
        step_ids, step_mask, step_pos = input_ids, mask, positions
        with torch.inference_mode():
            while active:
                out = loaded.model(
                    input_ids=step_ids,
                    attention_mask=step_mask,
                    position_ids=step_pos,
                    past_key_values=past,
                    use_cache=True,
                )
                past = out.past_key_values
                logits = out.logits[:, -1, :].float()
                chosen = self._choose(logits, active, presence)
                tokens = chosen.tolist()
                keep: list[int] = []
                for j, (row, token) in enumerate(zip(active, tokens, strict=True)):
                    self._advance(row, token)
                    if row.done:
                        row.seconds = time.perf_counter() - started
                    else:
                        keep.append(j)
                yield
                if len(keep) < len(active):
                    if not keep:
                        break
                    index = torch.tensor(keep, device=device)
                    past.batch_select_indices(index)
                    chosen = chosen[index]
                    step_mask = step_mask[index]
                    step_pos = step_pos[index]
                    if presence is not None:
                        presence = presence[index]
                    active = [active[j] for j in keep]
                if presence is not None:
                    presence[torch.arange(len(active), device=device), chosen] = True
                step_ids = chosen[:, None]
                step_mask = torch.cat([step_mask, step_mask.new_ones((len(active), 1))], dim=1)
                step_pos = step_pos[:, -1:] + 1

    def _presence(self, rows: Sequence[Row], vocab: int) -> torch.Tensor:
        import torch

        presence = torch.zeros((len(rows), vocab), dtype=torch.bool, device=self.loaded.device)
        for j, row in enumerate(rows):
            ids = [i for i in row.prompt_ids if 0 <= i < vocab]
            presence[j, ids] = True
        return presence

    def _advance(self, row: Row, token: int) -> None:
        """Add one token to a row and decide whether it is finished."""
        if row.is_cancelled is not None and row.is_cancelled():
            row.finish_reason = "cancelled"
            return
        if token in self.loaded.eos_token_ids:
            row.finish_reason = "stop"
        else:
            row.token_ids.append(token)
            text = self._decode(row.token_ids)
            cut = find_stop(text, row.settings.stop)
            if cut is not None:
                text = text[:cut]
                row.finish_reason = "stop"
            elif len(row.token_ids) >= row.max_new_tokens:
                row.finish_reason = "length"
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
        for j, row in enumerate(rows):
            if eos and len(row.token_ids) < row.settings.min_new_tokens:
                logits[j, eos] = float("-inf")

        chosen = torch.empty(len(rows), dtype=torch.long, device=device)
        greedy = [j for j, r in enumerate(rows) if r.settings.greedy]
        if greedy:
            chosen[greedy] = logits[greedy].argmax(dim=-1)
        sampled = [j for j, r in enumerate(rows) if not r.settings.greedy]
        if sampled:
            picked = self._sample(logits[sampled], [rows[j] for j in sampled])
            chosen[sampled] = picked
        return chosen

    def _sample(self, logits: torch.Tensor, rows: Sequence[Row]) -> torch.Tensor:
        import torch

        device = logits.device
        vocab = logits.shape[-1]
        temps = torch.tensor([r.settings.temperature for r in rows], device=device)[:, None]
        logits = logits / temps
        top_ks = [r.settings.top_k if 0 < r.settings.top_k < vocab else vocab for r in rows]
        top_ps = torch.tensor([r.settings.top_p for r in rows], device=device)[:, None]
        limit = max(top_ks)
        # Candidates sorted best first: the top-k when every row has one (cheap), else all.
        if limit < vocab:
            values, candidates = torch.topk(logits, limit, dim=-1)
        else:
            values, candidates = torch.sort(logits, dim=-1, descending=True)
        ranks = torch.arange(values.shape[-1], device=device)[None, :]
        values = values.masked_fill(
            ranks >= torch.tensor(top_ks, device=device)[:, None], -torch.inf
        )
        probs = torch.softmax(values, dim=-1)
        # Nucleus: keep a token while the mass before it is below top_p (the first always stays).
        before = probs.cumsum(dim=-1) - probs
        drop = (before >= top_ps) & (top_ps < 1.0) & (ranks > 0)
        probs = probs.masked_fill(drop, 0.0)
        picked = torch.empty(len(rows), dtype=torch.long, device=device)
        for j, row in enumerate(rows):
            slot = torch.multinomial(probs[j], 1, generator=row.generator)
            picked[j] = candidates[j, slot[0]]
        return picked

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
        batch_size: int = 8,
        start_index: int = 0,
    ) -> list[GenerationResult]:
        """Generate ``settings.n`` results for each prompt, in input order."""
        if batch_size < 1:
            raise QuotegenError("batch_size must be at least 1.")
        rows = self.prepare(prompts, settings, start_index=start_index)
        results: list[GenerationResult] = []
        for begin in range(0, len(rows), batch_size):
            batch = self.run(rows[begin : begin + batch_size])
            results.extend(self.result(row) for row in batch)
        return results

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
