"""Token scores (logprobs): what the decode loop records for the rows that ask, in quotegen's
own shape (``TokenLogprobs``; OpenAI's shapes are built from it in ``quotegen.openai.format``).

The scores are the model's log-softmax after the hard constraints (suppressed tokens,
whole-word first tokens) and before the sampling settings reshape the logits.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, NamedTuple

from quotegen.schemas import TokenLogprobs

if TYPE_CHECKING:
    import torch

#: Decodes ``ids`` as they read after ``context`` (the tokens before them).
Decode = Callable[[Sequence[int], Sequence[int]], str]
#: A token's own bytes (None where the tokenizer cannot say).
TokenBytes = Callable[[int], "bytes | None"]
#: One step's scores for one row: the chosen token's log-probability, and the likeliest
#: alternatives as (token id, log-probability).
Scores = tuple[float, list[tuple[int, float]]]


class ScoredToken(NamedTuple):
    """A token as generated (or in the prompt), scored."""

    text: str
    #: Its log-probability (None: nothing to score it against, a text's first token).
    logprob: float | None
    #: The likeliest alternatives, itself among them, by their text.
    top: dict[str, float] | None


def scored_token(
    text: str,
    scores: Scores,
    chosen: int,
    context: Sequence[int],
    decode: Decode,
    raw: TokenBytes | None = None,
) -> ScoredToken:
    """A token with its scores, the alternatives named by their text after ``context``; one
    that is no text alone (a piece of a multi-byte character) by its bytes, as OpenAI names
    it (``bytes:\\xe2\\x80``), or else by its id (``token_id:N``), so no two share a name."""
    value, alternatives = scores
    top: dict[str, float] = {}
    for token, logprob in [*alternatives, (chosen, value)]:
        top.setdefault(token_name(token, decode(context, [token]), raw), round(logprob, 6))
    return ScoredToken(text, round(value, 6), top)


def token_name(token: int, text: str, raw: TokenBytes | None) -> str:
    """``text``, or for a token that is no whole text alone its bytes or its id."""
    if text and "\ufffd" not in text:
        return text
    data = raw(token) if raw is not None else None
    if data:
        return "bytes:" + "".join(f"\\x{b:02x}" for b in data)
    return f"token_id:{token}"


def _byte_decoder() -> dict[str, int]:
    """GPT-2's byte-level alphabet (a printable character per byte), reversed."""
    printable = [*range(33, 127), *range(161, 173), *range(174, 256)]
    chars = list(printable)
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(printable, chars, strict=True)}


_BYTES = _byte_decoder()


def piece_bytes(piece: object) -> bytes | None:
    """A vocabulary piece's bytes: byte-level BPE (GPT-2, Llama 3, SmolLM) or a
    SentencePiece byte token (``<0xE2>``); None for anything else."""
    if not isinstance(piece, str):
        return None
    if len(piece) == 6 and piece.startswith("<0x") and piece.endswith(">"):
        return bytes([int(piece[3:5], 16)])
    if piece and all(c in _BYTES for c in piece):
        return bytes(_BYTES[c] for c in piece)
    return None


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
        at += len(token.text)
    return TokenLogprobs(
        tokens=[t.text for t in kept],
        token_logprobs=[t.logprob for t in kept],
        top_logprobs=[t.top for t in kept],
        text_offset=offsets,
    )


def step_scores(
    logits: torch.Tensor, asked: Sequence[int | None]
) -> Callable[[int, int], Scores | None]:
    """``scores(j, token)``: row j's scores for ``token`` where the row asks for logprobs
    (``asked[j]``: its ``settings.logprobs``, how many alternatives, or None) from the
    log-softmax of ``logits`` as they stand: before the sampling settings reshape them."""
    import torch

    wanted = [k for k in asked if k is not None]
    if not wanted:
        return lambda j, token: None
    logprobs = torch.log_softmax(logits, dim=-1)
    most = max(wanted)
    top_values, top_ids = logprobs.topk(most, dim=-1) if most else (None, None)

    def scores(j: int, token: int) -> Scores | None:
        k = asked[j]
        if k is None:
            return None
        alternatives = []
        if k and top_ids is not None and top_values is not None:
            alternatives = list(
                zip(top_ids[j, :k].tolist(), top_values[j, :k].tolist(), strict=True)
            )
        return float(logprobs[j, token]), alternatives

    return scores
