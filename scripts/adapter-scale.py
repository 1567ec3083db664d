"""Weight interpolation for a LoRA adapter, chosen by measurement (WiSE-FT's idea: part of
the fine-tuned change on top of the base). Scaling the adapter's update by w is exactly
``(1 - w) x base + w x fine-tuned`` in weight space, so it costs nothing to try:

    python scripts/adapter-scale.py TRAIN_TEXT ADAPTER_DIR REPORT_JSON

Bits per byte (each quote between two ``<|endoftext|>``) on the training run's own
validation split (3 %, seed 0: what ``quotegen train`` held out, never bench/quality.py's
sets), for w in 0.6, 0.8 and 1.0; the best w is written into the adapter (its
``lora_alpha`` scaled), and the measurements to REPORT_JSON.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from quotegen.loading.locating import locate_model
from quotegen.loading.references import parse_model_ref
from quotegen.training.evaluation import bits_per_byte
from quotegen.training.fit import split_quotes

WEIGHTS = (0.6, 0.8, 1.0)


def main() -> None:
    import torch
    from peft import PeftModel
    from peft.tuners.lora import LoraLayer
    from transformers import AutoModelForCausalLM, AutoTokenizer

    data, adapter, report = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    config_path = adapter / "adapter_config.json"
    config = json.loads(config_path.read_text())
    _, validation = split_quotes(data.read_text("utf-8").splitlines(), 0.03, 0)
    base = locate_model(parse_model_ref(config["base_model_name_or_path"]))
    model = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32), adapter
    ).eval()
    tokenizer = AutoTokenizer.from_pretrained(adapter)
    layers = [m for m in model.modules() if isinstance(m, LoraLayer)]
    original = [dict(layer.scaling) for layer in layers]
    found: dict[str, float] = {}
    for weight in WEIGHTS:
        for layer, scaling in zip(layers, original, strict=True):
            layer.scaling = {name: value * weight for name, value in scaling.items()}
        bpb, _ = bits_per_byte(model, tokenizer, validation, frame_token="<|endoftext|>")
        found[str(weight)] = round(bpb, 4)
        print(f"w {weight}: bits per byte {bpb:.4f}", file=sys.stderr)
    best = min(WEIGHTS, key=lambda w: found[str(w)])
    if best != 1.0:
        config["lora_alpha"] = config["lora_alpha"] * best
        config_path.write_text(json.dumps(config, indent=2) + "\n")
    report.write_text(
        json.dumps({"validation_quotes": len(validation), "bits_per_byte": found, "weight": best})
        + "\n"
    )


if __name__ == "__main__":
    main()
