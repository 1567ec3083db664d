"""A full fine-tune shipped as a delta that fits: its change to every linear layer of the
base, cut to rank R by SVD (what a LoRA adapter of rank R could hold), measured on the same
validation split as the runs of scripts/compare-training.sh.

    python scripts/extract-delta.py FULL_DIR BASE_DIR DATA.jsonl [RANK]

Prints the validation perplexity of the full fine-tune, of its rank-R extraction (norms and
embeddings left at the base's, as an adapter leaves them), and the extraction's size in
float16.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main() -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from quotegen.inputs import read_examples
    from quotegen.settings import TrainConfig
    from quotegen.training.evaluation import perplexity
    from quotegen.training.fit import frame_quotes, split_quotes

    full_dir, base_dir, data = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    rank = int(sys.argv[4]) if len(sys.argv) > 4 else 16
    torch.set_num_threads(1)
    examples = read_examples(data)
    defaults = TrainConfig(out=Path("unused"), base="x")
    _, validation = split_quotes(examples, 0.03, defaults.seed)
    tokenizer = AutoTokenizer.from_pretrained(full_dir)
    frame_quotes(tokenizer, "<|endoftext|>", keep_chat_template=True)
    tokenizer.padding_side = "right"
    full = AutoModelForCausalLM.from_pretrained(full_dir, dtype=torch.float32).eval()
    base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32).eval()
    report: dict[str, object] = {
        "full": perplexity(full, tokenizer, validation, batch_size=16, max_length=96)
    }
    size = 0
    with torch.no_grad():
        mine = dict(base.named_modules())
        for name, module in full.named_modules():
            if isinstance(module, torch.nn.Linear) and name != "lm_head":
                target = mine[name]
                delta = module.weight - target.weight
                u, s, vh = torch.linalg.svd(delta, full_matrices=False)
                target.weight += (u[:, :rank] * s[:rank]) @ vh[:rank]
                size += rank * (delta.shape[0] + delta.shape[1]) * 2
    report[f"rank_{rank}_extraction"] = perplexity(
        base, tokenizer, validation, batch_size=16, max_length=96
    )
    report["extraction_mb_float16"] = round(size / 1e6, 1)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
