"""A faithful replica of seed 2's server, for the benchmarks only.

As in the tutorial: the model and a ``text-generation`` pipeline are built at import time, the
route is a plain ``def`` (FastAPI runs it in its thread pool, so concurrent requests run the
pipeline side by side), one uvicorn worker. Two changes so the comparison measures speed, not
luck: the model comes from ``SEED_MODEL`` and every answer has exactly ``SEED_NEW_TOKENS`` new
tokens (random weights never stop by themselves).

    SEED_MODEL=bench/.cache/gpt2-124m-random .venv/bin/python -m uvicorn \\
        --app-dir bench seed_server:app --port 8001 --workers 1
"""

from __future__ import annotations

import logging
import os
import random
from pathlib import Path

from common import seed_generate, seed_pipeline
from fastapi import FastAPI

logging.basicConfig(level=logging.INFO)
log = logging.getLogger("seed")

NEW_TOKENS = int(os.environ.get("SEED_NEW_TOKENS", "32"))
generator = seed_pipeline(Path(os.environ["SEED_MODEL"]))
app = FastAPI()


@app.get("/")
def index() -> dict[str, str]:
    return {"message": "This is Quote Generation API test"}


@app.post("/generate_quote")
def generate_quote(prompt: str) -> str:
    if not prompt:
        prompt = random.choice(
            ["life is not fair", "she is a warrior", "friendship is like", "you cannot find light"]
        )
    log.info("Prompt selected: %s", prompt)
    text = seed_generate(generator, prompt, NEW_TOKENS)
    log.info("Quote generated")
    return text
