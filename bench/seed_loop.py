"""Seed 2's approach for a batch of prompts: build the pipeline, call it once per prompt.

    .venv/bin/python bench/seed_loop.py MODEL_DIR [NEW_TOKENS] < prompts.txt

One generated text per stdin line on stdout (as a JSON string, so it stays on one line), like
`quotegen generate` reading stdin.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from common import NEW_TOKENS, seed_generate, seed_pipeline


def main() -> None:
    pipe = seed_pipeline(Path(sys.argv[1]))
    new_tokens = int(sys.argv[2]) if len(sys.argv) > 2 else NEW_TOKENS
    for line in sys.stdin:
        text = seed_generate(pipe, line.rstrip("\n"), new_tokens)
        print(json.dumps(text), flush=True)


if __name__ == "__main__":
    main()
