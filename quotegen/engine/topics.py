"""Quotes about a topic: ``about`` turned into the prompt that asks the model for one.

The request goes through the model's own chat template (``Write a quote about X.``, one of
the phrasings the default model learned), and the assistant's reply is begun with the
prompt, capitalised, so ``--about money "never"`` is a quote about money that starts with
"Never". A model without a chat template cannot take a topic.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from quotegen.config import MAX_TOPIC_LENGTH
from quotegen.errors import InvalidRequestError

Render = Callable[[Sequence[Mapping[str, str]]], "str | None"]


def topic_prompt(render_chat: Render, model: str, about: str, start: str) -> tuple[str, str]:
    """The prompt that asks for a quote about ``about`` starting with ``start``, and the part
    of it the quote shows (``start``, capitalised)."""
    topic = " ".join(about.split())
    if not topic or len(topic) > MAX_TOPIC_LENGTH:
        raise InvalidRequestError(
            f"about: give a topic of 1 to {MAX_TOPIC_LENGTH} characters, e.g. 'courage'.",
            param="about",
        )
    rendered = render_chat([{"role": "user", "content": f"Write a quote about {topic}."}])
    if rendered is None:
        raise InvalidRequestError(
            f"about: {model} has no chat template, so it cannot take a topic; start the "
            "prompt with the topic's words instead.",
            param="about",
        )
    start = " ".join(start.split())
    if start:
        start = start[0].upper() + start[1:]
    return rendered + start, start
