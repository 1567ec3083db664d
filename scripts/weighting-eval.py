"""Bits per byte of held-out sayings by kind, for each model given: how the source weighting
of ``modelbuild/framing.py`` moves what a model learns (``scripts/compare-weighting.sh``).

    python scripts/weighting-eval.py CORPUS_DIR OUT.json MODEL [MODEL ...]

The corpus's validation split (never trained on), split by ``framing.weight``: aphorisms and
proverbs (2), the rest (1), jokes and asides (0.25); and the modern held-out set. Every quote
is framed by ``<|endoftext|>``, as the models were trained.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main() -> None:
    import torch

    import quotegen
    from modelbuild.framing import weight
    from quotegen.training.evaluation import bits_per_byte

    torch.set_num_threads(1)
    corpus, out = Path(sys.argv[1]), Path(sys.argv[2])
    validation = (corpus / "validation.txt").read_text("utf-8").splitlines()
    modern = (corpus / "held-out-modern.txt").read_text("utf-8").splitlines()
    groups: dict[str, list[str]] = {"aphorisms (2)": [], "plain (1)": [], "jokes (0.25)": []}
    for text in validation:
        kind = {2.0: "aphorisms (2)", 1.0: "plain (1)"}.get(weight(text, ""), "jokes (0.25)")
        groups[kind].append(text)
    groups["modern held-out"] = modern
    result: dict[str, object] = {"quotes": {k: len(v) for k, v in groups.items()}, "models": {}}
    for name in sys.argv[3:]:
        loaded = quotegen.get_model(name).loaded
        row = {}
        for kind, quotes in groups.items():
            bpb, _ = bits_per_byte(
                loaded.model, loaded.tokenizer, quotes, frame_token="<|endoftext|>"
            )
            row[kind] = round(bpb, 4)
        result["models"][name] = row  # type: ignore[index]
        print(name, row, file=sys.stderr)
    out.write_text(json.dumps(result, indent=1) + "\n", "utf-8")


if __name__ == "__main__":
    main()
