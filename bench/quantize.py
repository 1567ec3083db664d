"""The quality cost of `--quantize int8`: perplexity on held-out text, int8 vs fp32.

    .venv/bin/python bench/quantize.py

Two models, each evaluated in fp32 and in int8 through quotegen's own loading code:
- the benchmarks' 124M GPT-2 (random weights) on Python's test-suite sources, which its
  tokenizer never saw (random weights make the perplexity itself meaningless; the int8/fp32
  ratio still shows how much the quantization moves the model's predictions);
- the bundled quotegen-mini (trained) on its own held-out 5 % of the fortunes corpus, when the
  Debian fortunes are installed (`apt-get install fortunes fortunes-min`).
JSON in bench/results/quantize.json.
"""

from __future__ import annotations

import argparse
import sys
import sysconfig
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import common

from quotegen.evaluation import perplexity
from quotegen.model import load_model
from quotegen.references import parse_model_ref


def stdlib_test_lines(limit: int) -> list[str]:
    """Non-trivial lines from CPython's test suite (held out from the tokenizer's corpus)."""
    lines: list[str] = []
    for path in sorted((Path(sysconfig.get_paths()["stdlib"]) / "test").glob("test_*.py")):
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            line = line.strip()
            if 40 <= len(line) <= 200:
                lines.append(line)
                if len(lines) >= limit:
                    return lines
    return lines


def corpus_held_out() -> list[str] | None:
    """The bundled model's validation quotes, from the corpus bench/quality.py builds."""
    from quotegen.training import split_quotes

    corpus = common.CACHE / "corpus" / "corpus.txt"
    if not corpus.exists():
        common.log(f"skipping quotegen-mini: no {corpus} (bench/quality.py builds it)")
        return None
    return split_quotes(corpus.read_text("utf-8").splitlines(), 0.05, seed=0)[1]


def compare(name: str, model: str, texts: list[str]) -> dict[str, Any]:
    ref = parse_model_ref(model)
    row: dict[str, Any] = {"model": name, "texts": len(texts)}
    for precision in ("none", "int8"):
        loaded = load_model(ref, device="cpu", quantize=precision)
        started = time.perf_counter()
        ppl = perplexity(loaded.model, loaded.tokenizer, texts, batch_size=16, max_length=128)
        label = "fp32" if precision == "none" else precision
        row[f"{label}_ppl"] = ppl
        row[f"{label}_eval_s"] = time.perf_counter() - started
    row["int8_vs_fp32"] = row["int8_ppl"] / row["fp32_ppl"]
    row["change_pct"] = round(100 * (row["int8_vs_fp32"] - 1), 2)
    row["within_3pct"] = abs(row["int8_vs_fp32"] - 1) <= 0.03
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--texts", type=int, default=400, help="held-out lines for the 124M model")
    args = parser.parse_args()
    rows = [compare("gpt2-124m-random", str(common.gpt2_small()), stdlib_test_lines(args.texts))]
    held_out = corpus_held_out()
    if held_out is not None:
        rows.append(compare("quotegen-mini", "quotegen-mini", held_out))
    common.report("quantize", rows)


if __name__ == "__main__":
    main()
