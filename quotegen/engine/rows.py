"""A row: one prompt and one sample travelling through the decode loop, with its own
settings, seed and callbacks, and the rules that finish it (end-of-text, length, a stop
string, cancellation); it records its token scores (``quotegen.engine.scoring``) on the way.

Rows know nothing of models: ``add_token`` is given a ``decode`` function, so the engine and
the tests' fake engine advance them the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from quotegen.engine.scoring import (
    Decode,
    ScoredToken,
    Scores,
    TokenBytes,
    scored_token,
    token_logprobs,
)
from quotegen.engine.wholewords import FirstToken
from quotegen.schemas import GenerationResult
from quotegen.settings import FinishReason, GenerationSettings
from quotegen.text import clean_text, find_stop, holdback

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
    first_token: FirstToken = "any"
    #: The part of ``prompt`` the quote shows (a topic request: the quote's start, maybe
    #: empty); None: all of it.
    shown_prompt: str | None = None
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
        model's to generate when the prompt ended in whitespace); of a topic request, only
        the quote's start."""
        prompt = self.prompt if self.shown_prompt is None else self.shown_prompt
        return prompt.rstrip() if self.first_token == "after_space" else prompt

    def add_token(
        self,
        token: int,
        *,
        is_eos: bool,
        decode: Decode,
        scores: Scores | None = None,
        raw: TokenBytes | None = None,
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
                    self.scored.append(scored_token(piece, scores, token, context, decode, raw))
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
            prompt=self.prompt if self.shown_prompt is None else self.shown_prompt,
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
