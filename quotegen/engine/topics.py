"""Quotes about a topic: ``about`` turned into the prompt that asks the model for one.

The request goes through the model's own chat template (``Write a quote about X.``, one of
the phrasings the default model learned), and the assistant's reply is begun with the
prompt, capitalised, so ``--about money "never"`` is a quote about money that starts with
"Never". A model without a chat template cannot take a topic. When several candidates are
scored, one that names the topic asked for (``asked_topic``, ``mentions``) counts for more.
"""

from __future__ import annotations

import re
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


#: A request's topic in a prompt: "about X", "on X", "on the topic of X" (the last one wins:
#: in a rendered chat the last user turn comes last).
_ASKED = re.compile(
    r"\b(?:about|on(?: the (?:topic|subject) of)?|regarding)\s+([A-Za-z][A-Za-z'-]*"
    r"(?: [A-Za-z][A-Za-z'-]*)?)\s*(?:[.?!,\n<]|please|$)",
)
_WORD = re.compile(r"[a-z]+")


def asked_topic(prompt: str) -> str | None:
    """The topic a prompt asks a quote about (``Write a quote about courage.``), if any."""
    found = _ASKED.findall(prompt)
    return found[-1].lower() if found else None


def mentions(text: str, topic: str) -> bool:
    """Whether ``text`` names the topic: each of its words (or, for two words, its noun, the
    last) shares a start with a word of the text as long as the topic word less four letters,
    and at least four ("courageous" for courage, "leader" for leadership)."""
    key = topic.lower().split()[-1]
    stem = key[: max(4, len(key) - 4)]
    return any(word.startswith(stem) for word in _WORD.findall(text.lower()))
