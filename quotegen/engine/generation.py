"""The generation engine: one loaded model, rows in, tokens out, one decode loop for all.

``Engine`` works on *rows* (one prompt, one sample) that each carry their own settings, seed
and callbacks, so a batch can mix requests with different temperatures, lengths or stop
strings. Rows may join the running batch at any token step (continuous batching: their
prompts are run and their KV caches merged in) and leave it as soon as they finish or are
cancelled, so a departed client stops costing compute. ``TextEngine`` is the public
interface the scheduler, the server and the CLI use: a subclass gives ``info``, ``encode`` and
``steps``, the rest is shared; the tests' fake engine is one.
"""

from __future__ import annotations

import inspect
import itertools
import random
import secrets
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from quotegen.config import MAX_SEED
from quotegen.engine.choosing import candidate_seed, candidates, choose, with_redraws
from quotegen.engine.kvcache import (
    DecodeBatch,
    left_padded,
    returned_cache,
)
from quotegen.engine.rows import Admit, Row
from quotegen.engine.sampling import choose_tokens
from quotegen.engine.scorer import Scorer, penalty
from quotegen.engine.scoring import ScoredToken, piece_bytes, scored_token, step_scores
from quotegen.engine.threads import Threads
from quotegen.engine.topics import asked_topic, topic_prompt
from quotegen.engine.wholewords import first_token_bans, first_token_rule, word_ids
from quotegen.errors import InvalidRequestError, PromptTooLongError, as_user_error
from quotegen.schemas import GenerationResult, ModelInfo
from quotegen.settings import GenerationSettings, resolve_settings
from quotegen.text import choose_prompt

if TYPE_CHECKING:
    import torch

    from quotegen.loading.model import LoadedModel


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
        chat: bool = False,
    ) -> list[Row]:
        """Rows for ``prompts`` x ``candidates(settings)`` (``settings.n`` quotes, each the
        best of ``settings.best_of``, spares to replace repeats: ``quotegen.engine.choosing``),
        each with its own derived seed; with ``settings.about`` each prompt is the start of a
        quote about that topic (``quotegen.engine.topics``).

        Row ``k < n`` of prompt ``i`` gets seed ``base + i * n + k`` (further candidates
        seeds of their own, ``choosing.candidate_seed``): a row's seed,
        settings and cache never depend on how the input was batched, so the same batch
        composition gives the same results; across batch sizes its logits differ by float
        rounding (about 1e-6), which can flip a sample drawn at a near-tie (a real model
        rarely; a random test model with flat distributions more often). ``strict_context``
        rejects prompt + max_new_tokens beyond the context (the HTTP API's contract); else
        max_new_tokens is trimmed to fit, and only a prompt that cannot fit is an error.
        ``chat``: each prompt is a rendered conversation, the quote its reply alone."""
        context_length = self.info.context_length
        base_seed = settings.seed if settings.seed is not None else secrets.randbelow(MAX_SEED)
        kept = settings.model_copy(update={"seed": base_seed})
        width = candidates(settings)
        rows: list[Row] = []
        for offset, raw_prompt in enumerate(prompts):
            index = start_index + offset
            for sample in range(width):
                seed = candidate_seed(base_seed, index, sample, settings.n, width)
                shown: str | None = "" if chat else None  # a rendered chat: the reply alone
                if settings.about is not None:
                    about, name = settings.about, self.info.name
                    prompt, shown = topic_prompt(self.render_chat, name, about, raw_prompt)
                else:
                    prompt = choose_prompt(raw_prompt, random.Random(seed))
                # No tokenizer packs 32 characters a token: refused before tokenizing.
                if len(prompt) > context_length * 32:
                    raise PromptTooLongError(
                        f"The prompt is {len(prompt)} characters, more than the model's "
                        f"context of {context_length} tokens can hold. Shorten it."
                    )
                rule = first_token_rule(prompt if shown is None else shown, settings.whole_words)
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
                        shown_prompt=shown,
                    )
                )
        return rows

    def result(self, row: Row) -> GenerationResult:
        return row.to_result(self.info.name)

    def score(self, quotes: Sequence[str], topics: Sequence[str | None] = ()) -> list[float]:
        """How likely a reader keeps each quote, as log-odds (``quotegen.engine.scorer``):
        the penalties and the topic asked for here; an engine with a model adds its scorer."""
        return [penalty(q, t) for q, t in itertools.zip_longest(quotes, topics[: len(quotes)])]

    def scored_result(self, row: Row) -> GenerationResult:
        """``result(row)``, scored when the best of several candidates is wanted."""
        result = self.result(row)
        if row.settings.best_of <= 1 or row.error is not None:
            return result
        (score,) = self.score([result.text], [asked_topic(row.prompt)])
        return result.model_copy(update={"score": round(score, 4)})

    def chosen(self, rows: Sequence[Row]) -> list[GenerationResult]:
        """One prompt's quotes from its finished candidate rows: scored, repeats dropped, the
        ``n`` best (``quotegen.engine.choosing``)."""
        if failed := next((r.error for r in rows if r.error is not None), None):
            raise as_user_error(failed)
        ordered = sorted(rows, key=lambda r: r.sample)
        if len(ordered) <= 1:
            return [self.result(r) for r in ordered]
        results, first = [self.scored_result(r) for r in ordered], ordered[0].settings
        return choose(results, first.n, rank=first.best_of > 1)

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
        """Generate ``settings.n`` results for each prompt, in input order: up to
        ``batch_size`` rows at a time, each finished row's place taken by the next at once
        (the CLI and the server feed rows through ``quotegen.engine.scheduler`` instead)."""
        rows = self.prepare(list(prompts), settings)
        pending = deque(rows[batch_size:])

        def admit(running: int) -> list[Row]:
            joining: list[Row] = []
            while pending and running + len(joining) < batch_size:
                joining.append(pending.popleft())
            return joining

        self.run(rows[:batch_size], admit=admit)
        by_prompt: dict[int, list[Row]] = {}
        for row in rows:
            by_prompt.setdefault(row.index, []).append(row)
        return [result for group in by_prompt.values() for result in self.chosen(group)]

    def stream(self, prompt: str, settings: GenerationSettings) -> TextStream:
        """One prompt's continuation piece by piece (see ``TextStream``)."""
        return TextStream(self, prompt, settings)


class Engine(TextEngine):
    """Generates text with one loaded model; safe to share between threads (one batch at a time)."""

    def __init__(self, loaded: LoadedModel) -> None:
        self._loaded = loaded
        self._info = loaded.info()
        self._lock = threading.RLock()  # a prompt's redraws run inside its batch's callback
        self._extras: dict[str, Any] | None = None
        self._first_token_masks: dict[str, torch.Tensor] | None = None
        self._suppressed: torch.Tensor | None = None
        self._word: list[int] | None = None
        # Fast tokenizers are not safe to share between threads mid-call ("Already borrowed").
        self._tokenizer_lock = threading.Lock()
        self._scorer = Scorer.load(loaded.path)  # the best of several candidates
        self._threads = Threads(enabled=loaded.device.type == "cpu")  # the free cores

    @property
    def info(self) -> ModelInfo:
        return self._info

    @property
    def loaded(self) -> LoadedModel:
        """The model, its tokenizer and where it runs (for evaluation and training)."""
        return self._loaded

    def encode(self, text: str) -> list[int]:
        tokenizer = self._loaded.tokenizer
        # A rendered chat template starts with the begin-of-text token: it gets no second one.
        bos = getattr(tokenizer, "bos_token", None)
        special = not (bos and self.info.chat_template and text.startswith(bos))
        with self._tokenizer_lock:
            ids: list[int] = tokenizer(text, add_special_tokens=special)["input_ids"]
        return ids

    def chosen(self, rows: Sequence[Row]) -> list[GenerationResult]:  # redraws repeats
        return with_redraws(rows, super().chosen, self.run)  # (its lock is re-entrant)

    def score(self, quotes: Sequence[str], topics: Sequence[str | None] = ()) -> list[float]:
        if not (scores := super().score(quotes, topics)) or self._scorer is None:
            return scores
        with self._tokenizer_lock:  # held for the tokenizer only, not the forward pass
            encoded, frame = self._scorer.encode(self._loaded.tokenizer, quotes)
        rated = self._scorer.rate(self._loaded.model, encoded, frame)
        return [a + b for a, b in zip(scores, rated, strict=True)]

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

    def _token_bytes(self, token: int) -> bytes | None:
        with self._tokenizer_lock:  # a token's own bytes, where its vocabulary piece spells them
            return piece_bytes(self._loaded.tokenizer.convert_ids_to_tokens(token))

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
        eos = loaded.eos_token_ids
        extras = self._forward_extras()
        batch = DecodeBatch(loaded.model, loaded.device, extras)
        incoming = rows
        with torch.inference_mode():
            while True:
                self._threads.adjust()
                if admit is not None and batch.can_join():
                    incoming = incoming + admit(len(batch.rows) + len(incoming))
                if not batch.rows and not incoming:
                    return
                logits = [batch.step()] if batch.rows else []
                if incoming:
                    new_logits, past, mask, pos = self._prefill(incoming, extras)
                    logits.append(new_logits)
                    batch.join(incoming, past, mask, pos)
                    incoming = []
                step_logits = torch.cat(logits)
                if loaded.suppress_token_ids:
                    step_logits.index_fill_(1, self._suppressed_ids(), float("-inf"))
                scores = step_scores(step_logits, [r.settings.logprobs for r in batch.rows])
                chosen = choose_tokens(step_logits, batch.rows, batch.presence, eos)
                keep: list[int] = []
                now = time.perf_counter()
                for j, (row, token) in enumerate(zip(batch.rows, chosen.tolist(), strict=True)):
                    row.add_token(
                        token,
                        is_eos=token in eos,
                        decode=self._decode,
                        scores=scores(j, token),  # alternatives named by text or bytes
                        raw=self._token_bytes,
                    )
                    if not row.done:
                        keep.append(j)
                        continue
                    row.seconds = now - row.started
                    if row.on_finish is not None:
                        row.on_finish(row)
                yield
                batch.advance(chosen, keep)

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
            row.prompt_scored = [ScoredToken(texts[0], None, None)]
            for i, token in enumerate(ids[1:]):
                alternatives = (
                    list(zip(top_ids[i].tolist(), top_values[i].tolist(), strict=True))
                    if top_ids is not None and top_values is not None
                    else []
                )
                value = float(mine[i, token])
                row.prompt_scored.append(
                    scored_token(
                        texts[i + 1],
                        (value, alternatives),
                        token,
                        ids[: i + 1],
                        self._decode,
                        self._token_bytes,
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


class TextStream:
    """One prompt's continuation as it is generated: iterate for text pieces, then ``result``
    holds the full result; ``prompt`` is the prompt used (a default one for an empty one)."""

    def __init__(self, engine: TextEngine, prompt: str, settings: GenerationSettings) -> None:
        self._engine = engine
        one = settings.model_copy(update={"n": 1, "best_of": 1})
        (self._row,) = engine.prepare([prompt], one)
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
