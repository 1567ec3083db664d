"""The scorer that picks the best of several candidates: how likely a reader keeps a quote.

A logistic regression over the model's own final hidden state, averaged over the quote's
tokens (the quote framed by end-of-text, as the model reads a plain quote), trained on real
held-out sayings (kept) against the model's own samples (scripts/train-scorer.py), plus the
penalties a reader applies that no hidden state sees for sure: a content word said three
times ("Money is the money that money does not buy"), more than two sentences, a quote that
does not end.

A model folder carries it as ``quotegen-scorer.json``; a model without one ranks by the
penalties alone. Scores are log-odds: higher is better, 0 is a coin toss.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from quotegen.engine.topics import mentions

SCORER_FILE = "quotegen-scorer.json"

_WORD = re.compile(r"[a-z']+")
_SENTENCE_END = re.compile(r"[.!?](?:[\"')\]]*)(?:\s+|$)")
_SMALL = frozenset(
    {
        *("the", "a", "an", "and", "or", "but", "of", "to", "in", "on", "at", "by", "for"),
        *("with", "is", "are", "was", "be", "it", "its", "that", "this", "not", "no", "as"),
        *("if", "so", "than", "then", "you", "your", "he", "she", "they", "we", "i", "my"),
    }
)


#: Log-odds a quote loses for not naming the topic it was asked about: more than the
#: regression's usual spread, so a quote on topic wins whenever a candidate is.
ON_TOPIC = 5.0


def penalty(text: str, topic: str | None = None) -> float:
    """What a strict reader holds against a quote before reading it for sense, and for it
    when it names the topic asked for (log-odds)."""
    words = [w for w in _WORD.findall(text.lower()) if w not in _SMALL and len(w) > 2]
    repeated = sum(count - 2 for count in Counter(words).values() if count > 2)
    sentences = len(_SENTENCE_END.findall(text.strip()))
    cost = 1.0 * repeated
    if sentences > 2:
        cost += 1.0 * (sentences - 2)
    if not re.search(r"[.!?][\"')\]]*$", text.strip()):
        cost += 2.0  # an unfinished quote
    if topic is not None and not mentions(text, topic):
        cost += ON_TOPIC
    return -cost


@dataclass(frozen=True)
class Scorer:
    """Logistic regression weights over standardised pooled hidden states."""

    weights: tuple[float, ...]
    bias: float
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    frame_token: str = "<|endoftext|>"

    @classmethod
    def load(cls, folder: Path) -> Scorer | None:
        path = folder / SCORER_FILE
        if not path.is_file():
            return None
        data = json.loads(path.read_text("utf-8"))
        return cls(
            tuple(data["weights"]),
            float(data["bias"]),
            tuple(data["mean"]),
            tuple(data["scale"]),
            str(data.get("frame_token", "<|endoftext|>")),
        )

    def save(self, folder: Path, **about: Any) -> None:
        data = {
            "kind": "logistic regression over the mean final hidden state",
            **about,
            "frame_token": self.frame_token,
            "bias": self.bias,
            "weights": list(self.weights),
            "mean": list(self.mean),
            "scale": list(self.scale),
        }
        (folder / SCORER_FILE).write_text(json.dumps(data) + "\n", "utf-8")

    def encode(self, tokenizer: Any, quotes: Sequence[str]) -> tuple[list[list[int]], int]:
        """The quotes' token ids and the frame token's id (the tokenizer's part of ``rate``)."""
        frame = tokenizer.convert_tokens_to_ids(self.frame_token)
        encoded = tokenizer(list(quotes), add_special_tokens=False)["input_ids"]
        return encoded, frame if isinstance(frame, int) else 0

    def rate(self, model: Any, encoded: Sequence[Sequence[int]], frame: int) -> list[float]:
        """The regression's log-odds for each encoded quote, from ``model``'s hidden states."""
        return self.logits(pooled_states(model, encoded, frame))

    def logits(self, features: Any) -> list[float]:
        """Log-odds of being kept, one per row of ``features`` ([rows, width] tensor)."""
        import torch

        mean = torch.tensor(self.mean, dtype=torch.float32)
        scale = torch.tensor(self.scale, dtype=torch.float32)
        weights = torch.tensor(self.weights, dtype=torch.float32)
        standard = (features.float().cpu() - mean) / scale
        return [float(v) for v in standard @ weights + self.bias]


def pooled_states(model: Any, encoded: Sequence[Sequence[int]], frame_id: int) -> Any:
    """The model's final hidden state averaged over each text's tokens (``encoded``), the
    text framed by ``frame_id`` before and after: a [texts, width] float32 tensor."""
    import torch

    rows = [[frame_id, *ids[:126], frame_id] for ids in encoded]
    width = max(len(r) for r in rows)
    device = model.device
    ids = torch.tensor([r + [frame_id] * (width - len(r)) for r in rows], device=device)
    mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows], device=device)
    with torch.inference_mode():
        if hasattr(model, "final_states"):
            states = model.final_states(ids, mask)
        else:
            out = model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
            states = out.hidden_states[-1]
        states = states.float()
        weights = mask[..., None].float()
        return (states * weights).sum(1) / weights.sum(1)


def fit_logistic(
    features: Any, labels: Sequence[int], *, l2: float = 1.0, steps: int = 500
) -> Scorer:
    """A logistic regression (L2-regularised, full-batch L-BFGS) on standardised features."""
    import torch

    x = features.float()
    mean = x.mean(0)
    scale = x.std(0).clamp(min=1e-6)
    x = (x - mean) / scale
    y = torch.tensor(list(labels), dtype=torch.float32)
    w = torch.zeros(x.shape[1], requires_grad=True)
    b = torch.zeros((), requires_grad=True)
    optimizer = torch.optim.LBFGS([w, b], max_iter=steps, line_search_fn="strong_wolfe")

    def closure() -> Any:
        optimizer.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(x @ w + b, y)
        loss = loss + l2 * (w * w).sum() / len(y)
        loss.backward()  # type: ignore[no-untyped-call]
        return loss

    optimizer.step(closure)  # type: ignore[no-untyped-call]
    return Scorer(
        tuple(float(v) for v in w.detach()),
        float(b.detach()),
        tuple(float(v) for v in mean),
        tuple(float(v) for v in scale),
    )


def sigmoid(value: float) -> float:
    return 1.0 / (1.0 + math.exp(-value))
