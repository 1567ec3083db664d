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
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from quotegen.config import MAX_SEED
from quotegen.errors import InvalidRequestError, PromptTooLongError
from quotegen.kvcache import (
    cache_argument,
    can_merge,
    left_padded,
    merge_caches,
    returned_cache,
    trim_padding,
)
from quotegen.sampling import choose_tokens
from quotegen.schemas import GenerationResult, ModelInfo, TokenLogprobs
from quotegen.settings import FinishReason, GenerationSettings, resolve_settings
from quotegen.text import choose_prompt, clean_text, find_stop, holdback
from quotegen.wholewords import FirstToken, first_token_bans, first_token_rule, word_ids

if TYPE_CHECKING:
    import torch

    from quotegen.model import LoadedModel

#: Called before every token step with the number of rows running; returns rows to add.
Admit = Callable[[int], "list[Row]"]
#: Decodes ``ids`` as they read after ``context`` (the tokens before them).
Decode = Callable[[Sequence[int], Sequence[int]], str]
#: One step's scores for one row: the chosen token's log-probability, and the likeliest
#: alternatives as (token id, log-probability).
Scores = tuple[float, list[tuple[int, float]]]
#: A scored token: its text, its log-probability (None: nothing to score it against), and the
#: alternatives (with itself) by text.
ScoredToken = tuple[str, float | None, dict[str, float] | None]


def scored_token(
    text: str, scores: Scores, chosen: int, context: Sequence[int], decode: Decode
) -> ScoredToken:
    """A token with its scores, the alternatives named by their text after ``context``."""
    value, alternatives = scores
    top: dict[str, float] = {}
    for token, logprob in [*alternatives, (chosen, value)]:
        top.setdefault(decode(context, [token]), round(logprob, 6))
    return text, round(value, 6), top


def token_logprobs(tokens: Sequence[ScoredToken], length: int) -> TokenLogprobs:
    """OpenAI's logprobs object for ``tokens``, cut where their text passes ``length``
    characters (a stop string ended the text inside them)."""
    offsets: list[int] = []
    kept: list[ScoredToken] = []
    at = 0
    for token in tokens:
        if at >= length and kept:
            break
        offsets.append(at)
        kept.append(token)
        at += len(token[0])
    return TokenLogprobs(
        tokens=[t[0] for t in kept],
        token_logprobs=[t[1] for t in kept],
        top_logprobs=[t[2] for t in kept],
        text_offset=offsets,
    )


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
    first_token: FirstToken = "any"
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
    scored: list[ScoredToken] = field(default_factory=list)  # with settings.logprobs
    prompt_scored: list[ScoredToken] = field(default_factory=list)  # with prompt_logprobs
    decoded: str = ""  # the completion's text before any stop string cut it

    @property
    def done(self) -> bool:
        return self.finish_reason is not None

    @property
    def text_prefix(self) -> str:
        """The prompt as it stands before the completion (its trailing whitespace is the
        model's to generate when the prompt ended in whitespace)."""
        return self.prompt.rstrip() if self.first_token == "after_space" else self.prompt

    def add_token(
        self, token: int, *, is_eos: bool, decode: Decode, scores: Scores | None = None
    ) -> None:
        """Add one generated token (or end-of-text) and decide whether the row is finished.

        ``decode(prompt_ids, token_ids)`` gives the completion's text (as it reads after the
        prompt). The text is decoded every step only to look for stop strings, to stream it
        or to score its tokens (``scores``, with settings.logprobs); otherwise once, when the
        row finishes. Streamed text holds back whatever might still become a stop string or
        complete a multi-byte character.
        """
        scoring = self.settings.logprobs is not None and scores is not None
        tracking = bool(self.settings.stop) or self.on_text is not None or scoring
        if self.is_cancelled is not None and self.is_cancelled():
            self.finish_reason = "cancelled"
            if not tracking:
                self.completion = decode(self.prompt_ids, self.token_ids)
            return
        if is_eos:
            self.finish_reason = "stop"
            if not tracking:
                self.completion = decode(self.prompt_ids, self.token_ids)
        else:
            self.token_ids.append(token)
            if len(self.token_ids) >= self.max_new_tokens:
                self.finish_reason = "length"
            if tracking or self.done:
                text = decode(self.prompt_ids, self.token_ids)
                if scoring and scores is not None:
                    piece = text[len(self.decoded) :] if text.startswith(self.decoded) else ""
                    context = [*self.prompt_ids, *self.token_ids[:-1]]
                    self.scored.append(scored_token(piece, scores, token, context, decode))
                self.decoded = text
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
        full = self.text_prefix + self.completion
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
            logprobs=(
                token_logprobs(self.scored, len(self.completion))
                if self.settings.logprobs is not None
                else None
            ),
            prompt_logprobs=(
                token_logprobs(self.prompt_scored, len(self.text_prefix))
                if self.settings.prompt_logprobs and self.settings.logprobs is not None
                else None
            ),
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

    def render_chat(self, messages: Sequence[Mapping[str, str]]) -> str | None:
        """The model's chat template applied to ``messages``, the assistant's turn opened: the
        prompt to continue. None for a model without a chat template (``info.chat_template``)."""
        return None

    def prepare(
        self,
        prompts: Sequence[str],
        settings: GenerationSettings,
        *,
        start_index: int = 0,
        strict_context: bool = False,
    ) -> list[Row]:
        """Rows for ``prompts`` x ``settings.n``, each with its own derived seed.

        Row ``k`` of prompt ``i`` gets seed ``base + i * n + k``: a row's seed, settings and
        cache never depend on how the input was batched, so the same batch composition gives
        the same results; across batch sizes its logits differ by float rounding (about 1e-6),
        which can flip a sample drawn at a near-tie (a real model rarely; a random test model
        with flat distributions more often). ``strict_context`` rejects prompt +
        max_new_tokens beyond the context (the HTTP API's contract); otherwise max_new_tokens
        is trimmed to fit and only a prompt that cannot fit at all is an error.
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
                rule = first_token_rule(prompt, settings.whole_words)
                ids = self.encode(prompt.rstrip() if rule == "after_space" else prompt)
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
                        first_token=rule,
                    )
                )
        return rows

    def result(self, row: Row) -> GenerationResult:
        return row.to_result(self.info.name)

    def settings(
        self, given: Mapping[str, Any], fallback: Mapping[str, Any] | None = None
    ) -> GenerationSettings:
        """The settings a request gets: what it set, over this model's generation_config
        defaults, over ``fallback`` (an API's own defaults), over quotegen's."""
        return resolve_settings(given, self.info.generation_config, fallback)

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
        self._first_token_masks: dict[str, torch.Tensor] | None = None
        self._suppressed: torch.Tensor | None = None
        self._word: list[int] | None = None
        # Fast tokenizers are not safe to share between threads mid-call ("Already borrowed").
        self._tokenizer_lock = threading.Lock()

    @property
    def info(self) -> ModelInfo:
        return self._info

    def encode(self, text: str) -> list[int]:
        tokenizer = self._loaded.tokenizer
        # A text that already starts with the begin-of-text token (a rendered chat template)
        # must not get a second one.
        bos = getattr(tokenizer, "bos_token", None)
        special = not (bos and self.info.chat_template and text.startswith(bos))
        with self._tokenizer_lock:
            ids: list[int] = tokenizer(text, add_special_tokens=special)["input_ids"]
        return ids

    def render_chat(self, messages: Sequence[Mapping[str, str]]) -> str | None:
        if not self.info.chat_template:
            return None
        try:
            with self._tokenizer_lock:
                text = self._loaded.tokenizer.apply_chat_template(
                    list(messages), add_generation_prompt=True, tokenize=False
                )
        except Exception as exc:  # the template's own checks (jinja raise_exception)
            raise InvalidRequestError(
                f"messages: the model's chat template refuses them: {exc}", param="messages"
            ) from exc
        return str(text)

    def steps(self, rows: Sequence[Row], admit: Admit | None = None) -> Iterator[None]:
        if not rows:
            return
        with self._lock:
            yield from self._decode_loop(list(rows), admit)

    def _decode(self, context: Sequence[int], ids: Sequence[int]) -> str:
        """The text of ``ids`` as it reads after ``context`` (the prompt's last tokens).

        Decoded alone, a continuation can lose what joins it to the prompt: SentencePiece-style
        decoders drop the space of a first "▁word", byte tokens need their neighbours. So the
        last few prompt tokens are decoded with it, and their own text cut off.
        """
        tokenizer = self._loaded.tokenizer
        options = {"skip_special_tokens": True, "clean_up_tokenization_spaces": False}
        tail = list(context[-4:])
        with self._tokenizer_lock:
            both, before = tokenizer.batch_decode([tail + list(ids), tail], **options)
        if not before:  # nothing readable (an unknown word): any word stands in for it
            tail = self._word_ids()
            with self._tokenizer_lock:
                both, before = tokenizer.batch_decode([tail + list(ids), tail], **options)
        if both.startswith(before) and not before.endswith("\ufffd"):
            return str(both[len(before) :])
        with self._tokenizer_lock:
            alone: str = tokenizer.decode(list(ids), **options)
        return alone

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
        cache_kwarg = cache_argument(model)
        with torch.inference_mode():
            while True:
                if admit is not None and (not active or can_merge(past)):
                    incoming = incoming + admit(len(active) + len(incoming))
                if not active and not incoming:
                    return
                logits = []
                if active:
                    out = model(
                        input_ids=ids,
                        attention_mask=mask,
                        position_ids=pos,
                        **{cache_kwarg: past},
                        use_cache=True,
                        **extras,
                    )
                    past = returned_cache(out)
                    logits.append(out.logits[:, -1, :].float())
                if incoming:
                    new_logits, new_past, new_mask, new_pos = self._prefill(incoming, extras)
                    logits.append(new_logits)
                    if active:
                        past, mask = merge_caches(past, mask, new_past, new_mask)
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
                step_logits = torch.cat(logits)
                if loaded.suppress_token_ids:
                    step_logits.index_fill_(1, self._suppressed_ids(), float("-inf"))
                scores = _scores(step_logits, active)
                chosen = choose_tokens(step_logits, active, presence, eos)
                keep: list[int] = []
                now = time.perf_counter()
                for j, (row, token) in enumerate(zip(active, chosen.tolist(), strict=True)):
                    row.add_token(
                        token, is_eos=token in eos, decode=self._decode, scores=scores(j, token)
                    )
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
                    past, mask = trim_padding(past, mask)
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
        input_ids, mask = left_padded([r.prompt_ids for r in rows], loaded.pad_token_id, device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        scoring = [
            r for r in rows if r.settings.prompt_logprobs and r.settings.logprobs is not None
        ]
        out = loaded.model(
            input_ids=input_ids,
            attention_mask=mask,
            position_ids=positions,
            use_cache=True,
            **({} if scoring else extras),  # scoring a prompt needs the logits of every token
        )
        if scoring:
            self._score_prompts(rows, out.logits)
        logits = out.logits[:, -1, :].float()
        for j, row in enumerate(rows):
            if row.first_token != "any":
                banned = self._banned_first(row.first_token, logits.shape[-1])
                logits[j].masked_fill_(banned, float("-inf"))
        return logits, returned_cache(out), mask, positions[:, -1:]

    def _score_prompts(self, rows: Sequence[Row], logits: torch.Tensor) -> None:
        """Each prompt token's log-probability given the tokens before it (rows that ask)."""
        import torch

        width = logits.shape[1]
        for j, row in enumerate(rows):
            if not (row.settings.prompt_logprobs and row.settings.logprobs is not None):
                continue
            ids = row.prompt_ids
            # Left-padded: the prompt is the row's last len(ids) positions.
            mine = torch.log_softmax(logits[j, width - len(ids) : -1].float(), dim=-1)
            k = row.settings.logprobs
            top_values, top_ids = mine.topk(k, dim=-1) if k else (None, None)
            texts = self._pieces(ids)
            row.prompt_scored = [(texts[0], None, None)]
            for i, token in enumerate(ids[1:]):
                alternatives = (
                    list(zip(top_ids[i].tolist(), top_values[i].tolist(), strict=True))
                    if top_ids is not None and top_values is not None
                    else []
                )
                value = float(mine[i, token])
                row.prompt_scored.append(
                    scored_token(
                        texts[i + 1], (value, alternatives), token, ids[: i + 1], self._decode
                    )
                )

    def _pieces(self, ids: Sequence[int]) -> list[str]:
        """The text each of ``ids`` adds (together, the text of all of them)."""
        options = {"skip_special_tokens": True, "clean_up_tokenization_spaces": False}
        with self._tokenizer_lock:
            texts = self._loaded.tokenizer.batch_decode(
                [list(ids[: i + 1]) for i in range(len(ids))], **options
            )
        pieces, before = [], ""
        for text in texts:
            pieces.append(text[len(before) :] if text.startswith(before) else "")
            before = text
        return pieces

    def _suppressed_ids(self) -> torch.Tensor:
        """The model's suppress_tokens, as an index tensor on its device (made once)."""
        import torch

        if self._suppressed is None:
            ids = self._loaded.suppress_token_ids
            self._suppressed = torch.tensor(ids, dtype=torch.long, device=self._loaded.device)
        return self._suppressed

    def _word_ids(self) -> list[int]:
        """Token ids that read as a plain word (see ``wholewords.word_ids``), found once."""
        if self._word is None:
            with self._tokenizer_lock:
                self._word = word_ids(self._loaded.tokenizer)
        return self._word

    def _banned_first(self, rule: str, width: int) -> torch.Tensor:
        """The tokens a row's first token may not be under ``rule`` (whole-word prompts), as
        a mask over the logits, worked out once per tokenizer."""
        import torch

        if self._first_token_masks is None:
            word = self._word_ids()
            with self._tokenizer_lock:
                bans = first_token_bans(self._loaded.tokenizer, word)
            masks = {}
            for name, banned in bans.items():
                mask = torch.zeros(width, dtype=torch.bool)
                known = min(len(banned), width)
                mask[:known] = torch.tensor(banned[:known], dtype=torch.bool)
                masks[name] = mask.to(self._loaded.device)
            self._first_token_masks = masks
        return self._first_token_masks[rule]

    def _presence(self, rows: Sequence[Row], vocab: int) -> torch.Tensor:
        """Which tokens each row has seen so far (prompt and output), for the penalty."""
        import torch

        presence = torch.zeros((len(rows), vocab), dtype=torch.bool, device=self._loaded.device)
        for j, row in enumerate(rows):
            seen = [i for i in (*row.prompt_ids, *row.token_ids) if 0 <= i < vocab]
            presence[j, seen] = True
        return presence


def _scores(logits: torch.Tensor, rows: Sequence[Row]) -> Callable[[int, int], Scores | None]:
    """``scores(j, token)``: row j's scores for ``token`` where the row asks for logprobs (the
    log-softmax of ``logits`` as they stand: before the sampling settings reshape them)."""
    import torch

    wanted = [r.settings.logprobs or 0 for r in rows if r.settings.logprobs is not None]
    if not wanted:
        return lambda j, token: None
    logprobs = torch.log_softmax(logits, dim=-1)
    k = max(wanted)
    top_values, top_ids = logprobs.topk(k, dim=-1) if k else (None, None)

    def scores(j: int, token: int) -> Scores | None:
        k = rows[j].settings.logprobs
        if k is None:
            return None
        alternatives = []
        if k and top_ids is not None and top_values is not None:
            alternatives = list(
                zip(top_ids[j, :k].tolist(), top_values[j, :k].tolist(), strict=True)
            )
        return float(logprobs[j, token]), alternatives

    return scores


class TextStream:
    """One prompt's continuation as it is generated: iterate for text pieces; once the
    iteration ends, ``result`` holds the full result. ``prompt`` is the prompt actually used
    (a default one when it was empty)."""

    def __init__(self, engine: TextEngine, prompt: str, settings: GenerationSettings) -> None:
        self._engine = engine
        (self._row,) = engine.prepare([prompt], settings.model_copy(update={"n": 1}))
        self.prompt = self._row.text_prefix
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
