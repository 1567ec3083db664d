"""Topic-following: does the model answer "a quote about X" with a quote about X?

    python bench/topics.py [--model M] [--out FILE]

- **Chat, through the openai SDK** against ``quotegen serve`` on loopback: 10 topics x 5
  phrasings, none of either ever trained on (``modelbuild.framing.EVAL_TOPICS`` and
  ``EVAL_PHRASINGS``), one reply each, plus one multi-turn conversation and one with a
  system message per topic.
- **``--about``**: 10 other held-out topics x 8 quotes (``quotegen generate --about X``), and
  each topic again with a prompt ("never"), which the quote must start with.

A reply is *about X* when one of its words starts with the topic's stem (its first letters,
all but the last three, at least four: "courage" -> "cour", so "courageous" counts; a quote
about money that only says "wealth" does not, so the measure is strict, and a reader's
judgement, from the report's replies, is the one to quote). It *echoes* when it
repeats the request's words (four in a row), is *empty* when blank, and carries an
*attribution* when it names a speaker ("-- Name", "(Name Surname)"). The report gives each
share and every reply, unselected.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common
from modelbuild.framing import EVAL_PHRASINGS, EVAL_TOPICS

CHAT_TOPICS = EVAL_TOPICS[:10]
ABOUT_TOPICS = EVAL_TOPICS[10:20]
ABOUT_SAMPLES = 8
ATTRIBUTION = re.compile(r"(--|—|~)\s*[A-Z]|\(\s*[A-Z][a-z]+ [A-Z][a-z]+\s*\)\s*$|^\s*[A-Z]\w+:")


def stem(topic: str) -> str:
    return topic.lower()[: max(4, len(topic) - 3)]


def about(text: str, topic: str) -> bool:
    key = stem(topic)
    return any(word.startswith(key) for word in re.findall(r"[a-z]+", text.lower()))


def echoes(text: str, request: str) -> bool:
    words = re.findall(r"[a-z']+", request.lower())
    said = " ".join(re.findall(r"[a-z']+", text.lower()))
    return any(" ".join(words[i : i + 4]) in said for i in range(max(1, len(words) - 3)))


def judge(text: str, topic: str, request: str) -> dict[str, Any]:
    return {
        "topic": topic,
        "request": request,
        "reply": text,
        "about": about(text, topic),
        "echo": echoes(text, request),
        "empty": not text.strip(),
        "attribution": bool(ATTRIBUTION.search(text)),
    }


def shares(rows: list[dict[str, Any]]) -> dict[str, Any]:
    count = len(rows)
    return {
        "replies": count,
        **{
            f"{key}_share": round(sum(r[key] for r in rows) / count, 3)
            for key in ("about", "echo", "empty", "attribution")
        },
    }


def chat_rows(model: str | None) -> list[dict[str, Any]]:
    from openai import OpenAI

    port = common.free_port()
    command = [common.PYTHON, "-m", "quotegen", "serve", "--port", str(port)]
    command += ["--log-level", "error"]
    if model:
        command += ["--model", model]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    server = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
    try:
        client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none", max_retries=0)
        deadline = time.monotonic() + 180
        while True:
            try:
                served = client.models.list().data[0].id
                break
            except Exception:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(1)
        rows = []
        for k, topic in enumerate(CHAT_TOPICS):
            conversations = [
                [{"role": "user", "content": phrasing.format(t=topic)}]
                for phrasing in EVAL_PHRASINGS
            ]
            other = CHAT_TOPICS[(k + 1) % len(CHAT_TOPICS)]
            conversations.append(
                [
                    {"role": "user", "content": EVAL_PHRASINGS[0].format(t=other)},
                    {"role": "assistant", "content": "Every day is a new beginning."},
                    {"role": "user", "content": EVAL_PHRASINGS[1].format(t=topic)},
                ]
            )
            conversations.append(
                [
                    {"role": "system", "content": "You are a calendar that prints one quote."},
                    {"role": "user", "content": EVAL_PHRASINGS[2].format(t=topic)},
                ]
            )
            for j, messages in enumerate(conversations):
                reply = client.chat.completions.create(
                    model=served,
                    messages=messages,
                    seed=100 * k + j,  # type: ignore[arg-type]
                )
                text = reply.choices[0].message.content or ""
                kind = "single" if j < len(EVAL_PHRASINGS) else ("multi-turn", "system")[j - 5]
                rows.append({**judge(text, topic, messages[-1]["content"]), "kind": kind})
        return rows
    finally:
        server.terminate()
        server.wait(timeout=30)


def about_rows(model: str | None) -> list[dict[str, Any]]:
    import quotegen

    engine = quotegen.get_model(model)
    rows = []
    for k, topic in enumerate(ABOUT_TOPICS):
        settings = engine.settings({"about": topic, "n": ABOUT_SAMPLES, "seed": 10 * k})
        request = f"Write a quote about {topic}."  # what --about asks the model
        for result in engine.generate([""], settings):
            rows.append({**judge(result.text, topic, request), "kind": "about"})
        started = engine.settings({"about": topic, "seed": 10 * k + 1})
        (result,) = engine.generate(["never"], started)
        rows.append(
            {
                **judge(result.text, topic, f"Write a quote about {topic}."),
                "kind": "about+prompt",
                "starts": result.text.startswith("Never"),
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--out", type=Path, default=common.RESULTS / "topics.json")
    args = parser.parse_args()
    chat = chat_rows(args.model)
    flags = about_rows(args.model)
    single = [r for r in chat if r["kind"] == "single"]
    report = {
        "chat_single": shares(single),
        "chat_multi_turn": shares([r for r in chat if r["kind"] == "multi-turn"]),
        "chat_system": shares([r for r in chat if r["kind"] == "system"]),
        "about": shares([r for r in flags if r["kind"] == "about"]),
        "about_with_prompt": {
            **shares([r for r in flags if r["kind"] == "about+prompt"]),
            "starts_with_prompt": sum(r.get("starts", False) for r in flags) / len(ABOUT_TOPICS),
        },
        "chat": chat,
        "flags": flags,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n", "utf-8")
    print(json.dumps({k: v for k, v in report.items() if k not in ("chat", "flags")}, indent=1))


if __name__ == "__main__":
    main()
