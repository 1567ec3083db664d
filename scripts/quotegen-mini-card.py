"""Write quotegen-mini's model card from what its build measured.

    python scripts/quotegen-mini-card.py WORK_DIR QUALITY_JSON MODEL_DIR

WORK_DIR holds the corpus manifest, the two training reports, pre-training and fine-tuning,
and the weight interpolation's weight and evaluations (scripts/build-quotegen-mini.sh);
QUALITY_JSON is bench/quality.py's output for the model. The card lists every source with its
package, version, licence and count, the cleaning steps, the held-out metrics, the training
settings and time, and ten unselected samples (the first sample of the first ten prompts).
"""

from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path
from typing import Any

from quotegen.training.saving import used_settings

CLEANING = """\
- Entries split from each source's own format (fortune files' `%` lines, tfortunes' tag lines,
  the Devil's Dictionary's headwords as `Word: definition.`, Dhammapada verses without their
  numbers, Bible verses (read as OSIS, so no word loses its space) joined while a verse ends
  in a comma).
- Attribution lines (`-- Name`) and trailing ` -- Name` attributions removed; whitespace
  collapsed; typographic quotes and dashes made ASCII.
- Dropped: entries over 200 characters or under 3 words, non-ASCII text, pictures and tables
  (under 60 % letters), code and markup, numbered lists.
- Exact duplicates removed across sources (case and punctuation ignored), in the order the
  sources are listed; then near-duplicates: sayings sharing their first 30 letters.
- Pre-training text: WordNet's example sentences (the quoted parts of its glosses), first
  letter capitalized and a full stop added, the World English Bible's verses (every book but
  Proverbs and Ecclesiastes, which are sayings above), the sentences of the Jargon File's
  entries (cross-reference braces, leading etymologies and sense numbers dropped) and of the
  State of the Union addresses (1790-2021; titles such as "Mr." and initials are not sentence
  ends), cleaned and de-duplicated the same way (after the held-out quotes, so none of those
  is in it), mixed with the sayings' training split (never the validation split or the
  held-out quotes).
- The vocabulary's words are the most frequent in all of that but the addresses, so that
  their political words do not displace the sayings' words.
- Never used: offensive sets (`fortunes-off`, `-o` files), quotes from copyrighted scripts,
  novels or songs (startrek, pratchett, songs-poems, zippy), limericks."""


WORDNET_NOTICE = """\
WordNet 3.0 Copyright 2006 by Princeton University. All rights reserved.

THIS SOFTWARE AND DATABASE IS PROVIDED "AS IS" AND PRINCETON UNIVERSITY MAKES NO
REPRESENTATIONS OR WARRANTIES, EXPRESS OR IMPLIED. BY WAY OF EXAMPLE, BUT NOT LIMITATION,
PRINCETON UNIVERSITY MAKES NO REPRESENTATIONS OR WARRANTIES OF MERCHANTABILITY OR FITNESS FOR
ANY PARTICULAR PURPOSE OR THAT THE USE OF THE LICENSED SOFTWARE, DATABASE OR DOCUMENTATION WILL
NOT INFRINGE ANY THIRD PARTY PATENTS, COPYRIGHTS, TRADEMARKS OR OTHER RIGHTS.

The name of Princeton University or Princeton may not be used in advertising or publicity
pertaining to distribution of the software and/or database. Title to copyright in this
software, database and any associated documentation shall at all times remain with Princeton
University and LICENSEE agrees to preserve same."""


def epoch_table(report: dict[str, Any]) -> str:
    return "\n".join(
        f"| {e['epoch']} | {e['train_loss']:.3f} | {e['val_perplexity']:.2f} | {e['seconds']:.0f} |"
        for e in report["epochs"]
    )


def weights_summary(model: Path) -> str:
    """The model's shape and weights, read from its files (for the card's first line)."""
    config = json.loads((model / "config.json").read_text())
    from safetensors import safe_open

    weights = model / "model.safetensors"
    with safe_open(weights, framework="pt") as f:  # reads the header only
        slices = [f.get_slice(name) for name in f.keys()]  # noqa: SIM118 (safe_open is not iterable)
    params = sum(math.prod(s.get_shape()) for s in slices)
    dtype = {"F16": "float16", "BF16": "bfloat16", "F32": "float32"}.get(
        slices[0].get_dtype(), slices[0].get_dtype()
    )
    return (
        f"{config['n_layer']}-layer, {config['n_embd']}-wide GPT-2 of {params / 1e6:.1f}M "
        f"parameters, {dtype} weights ({weights.stat().st_size / 1e6:.0f} MB)"
    )


def main() -> None:
    work, quality_path, model = (Path(a) for a in sys.argv[1:4])
    manifest = json.loads((work / "manifest.json").read_text())
    pretrain = json.loads((work / "pretrain-report.json").read_text())
    train = json.loads((work / "train-report.json").read_text())
    weight = json.loads((work / "interpolation.json").read_text())["weight"]
    tuned_ppl = json.loads((work / "eval-fine-tuned.json").read_text())["perplexity"]
    mixed_ppl = json.loads((work / "eval-interpolated.json").read_text())["perplexity"]
    quality = json.loads(quality_path.read_text())
    old_card = (model / "README.md").read_text()
    # The fine-tuning settings: the last block of train's own card (or of this card, re-run),
    # only those that applied.
    blocks = re.findall(r"```json\n(.*?)\n```", old_card, re.S)
    tuned = used_settings(json.loads(blocks[-1]) if blocks else {})
    pretrained_card = (work / "pretrained" / "README.md").read_text()
    pre_block = re.search(r"```json\n(.*?)\n```", pretrained_card, re.S)
    pre_settings = used_settings(json.loads(pre_block.group(1)) if pre_block else {})
    rows = {r["measure"]: r for r in quality["rows"]}
    extra = quality

    def bare(package: str) -> str:  # "pypi:name==1.0", "npm:@scope/name@1.0" -> the name
        name = package.split(":", 1)[1].split("==")[0]
        return name.rpartition("@")[0] if name.rfind("@") > 0 else name

    sources = "\n".join(
        f"| {s['name']} | `{bare(s['package'])}` "
        f"({s['package'].split(':')[0]}) | {s['version']} | {s['licence']} | {s['sayings']:,}"
        f"{' (' + s['role'] + ')' if s['role'] != 'train' else ''} |"
        for s in manifest["sources"]
    )
    metrics = "\n".join(
        f"| {name.replace('_', ' ')} | {row['value']} | {row['target']} |"
        for name, row in rows.items()
    )
    prompts = list(extra["samples"])[:10]
    samples = "\n".join(f"- {extra['samples'][p][0]}" for p in prompts)
    pre_near = manifest.get("near_duplicates_removed_pre_train", 0)
    total = sum(s["sayings"] for s in manifest["sources"] if s["role"] == "train")
    stopped = (
        "; stopped early by hand, so the learning rate had not finished decaying"
        if train.get("interrupted")
        else ""
    )
    card = f"""---
library_name: transformers
pipeline_tag: text-generation
tags: ["quotegen", "quotes", "gpt2", "text-generation"]
language: ["en"]
license: gpl-3.0
---

# quotegen-mini

The small offline quote model that ships inside
[quotegen](https://pypi.org/project/quotegen/): a {weights_summary(model)},
pre-trained from scratch on {total:,} short English sayings, WordNet's example sentences, the
World English Bible's verses, the Jargon File's sentences and the State of the Union
addresses, then fine-tuned on the sayings, with a whole-word vocabulary: every piece it
writes is a dictionary word; rarer words (in a prompt, say) are read in sub-word pieces and
letters that it never writes. Built by
`scripts/build-quotegen-mini.sh` from a fresh machine.

## Data

| source | package | version | licence | sayings (sentences) |
|---|---|---|---|---|
{sources}

Held out whole (never trained on): the modern quotes of the sources marked "held-out". Of the
rest, 5 % (seed 0) is the validation split. {manifest["near_duplicates_removed"]:,}
near-duplicate sayings were removed (and {pre_near:,} pre-training sentences). The
weights are trained on one GPL-2.0-or-later collection
(fortune-anarchism), hence GPL-3.0; every other training source is BSD or public domain, and
WordNet's examples are used under the WordNet 3.0 licence, whose notice follows.

```text
{WORDNET_NOTICE}
```

## Cleaning

{CLEANING}

## Held-out quality

Measured by `bench/quality.py` ({extra["outputs"]} samples of 25 prompts, seed 2026, this
model's default settings):

| measure | value | target |
|---|---|---|
{metrics}

Bits per byte: validation split {extra["bits_per_byte_validation"]}, modern held-out quotes
{extra["bits_per_byte_modern"]}; unknown-token rate {extra["unknown_token_rate"]} (the
tokenizer spells rare words instead of hiding them).

## Training

{train["train_quotes"]:,} training and {train["val_quotes"]:,} validation sayings.

1. Pre-training, from random weights: {pretrain["train_quotes"]:,} lines (the sayings'
   training split, WordNet's example sentences, the Bible's verses, the Jargon File's
   sentences and the addresses' sentences, shuffled;
   {pretrain["val_quotes"]:,} of them for validation), {pretrain["seconds"] / 60:.0f} minutes
   on the build machine (2 CPU cores).

| epoch | train loss | val perplexity (token level) | seconds |
|---|---|---|---|
{epoch_table(pretrain)}

```json
{json.dumps(pre_settings, indent=2)}
```

2. Fine-tuning on the sayings alone: best epoch {train["best_epoch"]} of the
   {len(train["epochs"])} trained, {train["seconds"] / 60:.0f} minutes{stopped}.

| epoch | train loss | val perplexity (token level) | seconds |
|---|---|---|---|
{epoch_table(train)}

```json
{json.dumps(tuned, indent=2)}
```

3. Weight interpolation (WiSE-FT, Wortsman et al. 2022): the weights are
   {1 - weight:.1f} x the pre-trained model's + {weight:.1f} x the fine-tuned model's, a
   weight fixed beforehand (the best of a grid on an earlier build). Validation perplexity
   {mixed_ppl:.2f}, against {tuned_ppl:.2f} for the fine-tuned model alone (`quotegen eval`
   on the validation split).

## Ten unselected samples

The first sample for each of the first ten prompts of the quality run:

{samples}

## Use

```bash
quotegen generate "life is"                 # offline, with no --model: this model
quotegen generate --model quotegen-mini --json --seed 1 "love"
```
"""
    (model / "README.md").write_text(card)


if __name__ == "__main__":
    main()
