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
- `scripts/quote-training-text.py` (`modelbuild/framing.py`): the validation split (5 %,
  seed 0) left out, so it stays unseen; sayings of more than two sentences left out;
  fortune-file definitions ("Manual, n.: A unit of documentation.") read as sayings or left
  out. Each saying is weighted by kind: 2 for aphorisms and proverbs (short general
  statements, Proverbs, the Dhammapada), 0.25 for jokes and asides (quoted dialogue,
  brackets, digits, first-person anecdotes, over 32 words), 1 otherwise; the build draws
  4,000 plain sayings by weight (a third start in lower case, as users type prompts) and
  5,000 chat requests answered by a saying of weight 1 or more.
- A chat request names a topic of the saying: one of its nouns (WordNet's noun index, not
  mostly a verb, shared by 5 to 3,000 sayings, the most shared first), or an adjective and its
  noun as they stand ("constructive criticism"), in one of 15 phrasings ("Write a quote about
  {t}.", "quote about {t}", a bare "{t}", ...); a fifth carry a system message, an eighth
  follow an earlier request and its answer. The 20 topics and 5 phrasings that measure
  topic-following are never a request's."""


def epoch_table(report: dict[str, Any]) -> str:
    return "\n".join(
        f"| {e['epoch']} | {e['train_loss']:.3f} | {e['val_perplexity']:.2f} | "
        f"{e['seconds'] / 60:.0f} |"
        for e in report["epochs"]
    )


def bare(package: str) -> str:  # "pypi:name==1.0", "npm:@scope/name@1.0" -> the name
    name = package.split(":", 1)[1].split("==")[0]
    return name.rpartition("@")[0] if name.rfind("@") > 0 else name


def _load(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.is_file() else None


def measurements(work: Path) -> dict[str, str]:
    """The card's measured sections, from what the build and the readings wrote."""
    out = {"choices": "", "weighting": "", "scorer": "", "topics": "", "reading": ""}
    compare = _load(work / "compare.json")
    if compare is not None:
        rows = "\n".join(f"| {k} | {v} |" for k, v in compare["rows"].items())
        out["choices"] = (
            "Training choices, measured (`scripts/compare-training.sh`, "
            "`scripts/extract-delta.py`): "
            f"{compare['setup']}\n\n| run | result |\n|---|---|\n{rows}\n\n"
            f"{compare['verdict']}"
        )
    weighting = _load(work / "weighting.json")
    if weighting is not None:
        kinds = list(weighting["quotes"])
        names = {
            "build/weighting/stage1": "start (stage 1)",
            "build/weighting/weighted": "100 steps, weighted",
            "build/weighting/uniform": "100 steps, uniform",
        }
        rows = "\n".join(
            f"| {names.get(model, model)} | " + " | ".join(str(bpb[k]) for k in kinds) + " |"
            for model, bpb in weighting["models"].items()
        )
        head = " | ".join(f"{k} ({weighting['quotes'][k]})" for k in kinds)
        out["weighting"] = (
            "Source weighting, measured in isolation (`scripts/compare-weighting.sh`): the same "
            "100 LoRA steps from stage 1 on 1,700 examples of the default build's mix (800 "
            "plain, 900 chat), drawn by weight (aphorisms and proverbs 2, jokes and asides "
            "0.25) or uniformly; bits per byte of held-out sayings by kind (the validation "
            "split, unseen, and the modern held-out set), each quote framed as trained:\n\n"
            f"| model | {head} |\n|---|" + "---|" * len(kinds) + f"\n{rows}\n\n"
            "Weighting moves what the model learns the way it was meant to, and only a "
            "little: the weighted run fits aphorisms 0.4 % better than the uniform one and "
            "jokes 1.1 % worse (plain sayings 0.6 %, the modern set 0.6 % worse). Neither "
            "100-step run improves on its start (the weighted one holds aphorisms level): the "
            "chat requests pull the plain continuation's fit down at first. The weighting "
            "stays."
        )
    scorer = _load(work / "scorer.json")
    if scorer is not None:
        aucs = "\n".join(f"| {k} | {v} |" for k, v in scorer["auc_5_fold"].items())
        out["scorer"] = (
            "## The scorer (best_of)\n\n`quotegen-scorer.json`: a logistic regression over "
            "the model's mean final hidden state (L2 "
            f"{scorer['l2']}), trained on {scorer['trained_on']} "
            "(`scripts/train-scorer.py`). How well each candidate scorer tells the two apart "
            "(area under the ROC curve, 5-fold cross-validated; 0.5 is chance):\n\n"
            f"| scorer | AUC |\n|---|---|\n{aucs}"
        )
    topics = _load(work / "topics.json")
    if topics is not None:
        keys = ("chat_single", "chat_multi_turn", "chat_system", "about", "about_with_prompt")
        rows = "\n".join(
            f"| {k.replace('_', ' ')} | {topics[k]['replies']} | {topics[k]['about_share']:.0%}"
            f" | {topics[k]['echo_share']:.0%} | {topics[k]['empty_share']:.0%} | "
            f"{topics[k]['attribution_share']:.0%} |"
            for k in keys
        )
        out["topics"] = (
            "## Topics\n\n`bench/topics.py`, on 20 topics and 5 phrasings never trained on, "
            "chat through the openai SDK against `quotegen serve`, `--about` through the "
            "library (a reply is about X when a word of it starts with X's stem):\n\n"
            "| interface | replies | about X | echo | empty | attribution |\n"
            f"|---|---|---|---|---|---|\n{rows}"
        )
    readings = [(n, _load(Path("docs/readings") / n / "report.json")) for n in ("before", "after")]
    if all(r is not None for _, r in readings):
        rows = "\n".join(
            f"| {name} | {r['model_kept']} ({r['model_share']:.0%}) | {r['real_kept']} "
            f"({r['real_share']:.0%}) | {r['scorer_auc_model_lines']:.2f} |"
            for name, r in readings
            if r is not None
        )
        out["reading"] = (
            "## The blind reading\n\n`bench/reading.py`: 50 quotes of the model (2 for each "
            "of 25 openings of held-out modern sayings) shuffled with 50 real held-out sayings, "
            "read blind by a second reader with a quote-calendar editor's standard (sheets, "
            "keys and marks in `docs/readings/`):\n\n| model | model quotes kept | real "
            "sayings kept | scorer AUC on the model's lines |\n|---|---|---|---|\n"
            + rows
            + "\n\nThe scorer's AUC against the reader's marks is over the model's lines only "
            "(a handful kept, so it says little); it separates real sayings from the model's "
            "own well (above), but that it picks the lines a reader keeps is not shown: "
            "best_of earns its place by topic-following and no repeats, measured above."
        )
    sayings = [_load(Path("docs/readings/sayings") / f"report-{r}.json") for r in "AB"]
    if out["reading"] and all(r is not None for r in sayings):
        order = ("best_of_1", "default", "best_of_8", "temp_0.5", "temp_1.0")
        rows = "\n".join(
            f"| {name} | T {sayings[0]['variants'][name]['settings']['temperature']}, best_of "  # type: ignore[index]
            f"{sayings[0]['variants'][name]['settings']['best_of']} | "  # type: ignore[index]
            + " | ".join(r["variants"][name]["kept"] for r in sayings if r is not None)
            + " |"
            for name in order
        )
        real = " | ".join(r["real_kept"] for r in sayings if r is not None)
        out["reading"] += (
            "\n\nThe decoding settings, read the same way but in the sayings the model was "
            "trained to write (`bench/reading.py --set sayings`: the validation split's "
            "aphorisms and plain sayings the scorer never saw), 50 lines for each setting on "
            "the same 25 openings and seed, 300 lines in all, marked by two blind readers "
            "independently (`docs/readings/sayings/`):\n\n| setting | decoding | kept, "
            f"reader A | kept, reader B |\n|---|---|---|---|\n{rows}\n| real sayings | | "
            f"{real} |\n\nNo setting writes quotes these readers keep: 1 model line kept of "
            "500 marks. Lower or higher temperature and 1 to 8 candidates do not move it, so "
            "the reading cannot rank decoding settings, and the defaults stay what the "
            "topic and repeat measurements chose."
        )
    return out


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
    } | {k: generation[k] for k in ("max_new_tokens", "best_of") if k in generation}
    pin = SMOLLM2_135M
    extra = measurements(work)
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

The adapter was trained on the GGUF file's Q4_1 weights dequantized to float32, and is
merged into exactly those, tensor by tensor, once; the merge is stored in the precision the
CPU computes in (bf16 where it has bf16 units, else float32).

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

Two stages of LoRA (peft) on every linear layer of the base (rank {settings.get("lora_r")},
alpha {settings.get("lora_alpha")}, dropout {settings.get("lora_dropout")}), each trained
with `quotegen train --lora`, each quote framed as `<|endoftext|>` + text + `<|endoftext|>`:

1. **Plain sayings** (the previous release, 12,814 sayings, 2 epochs, validation perplexity
   166.10 -> 35.42): the model writes a quote after `<|endoftext|>` and ends it there.
2. **Plain sayings and chat requests together** (`--lora-init` from stage 1): the base's chat
   template is kept, a request's turns are context and only the answer is learned, and the
   template's end of turn (`<|im_end|>`) stops generation beside `<|endoftext|>`. AdamW,
   learning rate {settings.get("learning_rate")}, warmup then cosine decay, batches of
   {settings.get("batch_size")}, up to {settings.get("max_length")} tokens, matrix products
   in bfloat16, one CPU thread of the 2-core build machine; {train["train_quotes"]:,}
   training and {train["val_quotes"]:,} validation examples. Best epoch {train["best_epoch"]}
   of {len(train["epochs"])}, {train["seconds"] / 60:.0f} minutes (initial validation
   perplexity {train["initial_val_perplexity"]:.2f}).

| epoch | train loss | val perplexity (token level, learned tokens) | minutes |
|---|---|---|---|
{epoch_table(train)}

{extra["choices"]}

{extra["weighting"]}

The adapter's weights are saved in float16 (cast back to float32 when merged).

```json
{json.dumps(settings, indent=2)}
```

Generation defaults (`generation_config.json`):

```json
{json.dumps(shown, indent=2)}
```

{extra["scorer"]}

{extra["topics"]}

{extra["reading"]}

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
