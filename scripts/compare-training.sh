#!/usr/bin/env bash
# Full fine-tuning against LoRA, measured on the same data, steps and starting point: the
# default model of the previous release (the quote adapter merged into its base), trained
# further for STEPS steps on the first 1,700 examples of the new training mix (plain and
# chat), each run's validation perplexity on the same held-out 3 % of them.
#
#   scripts/compare-training.sh        # about 40 min on one core of the 2-core build machine
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-.venv/bin/python}"
work="${WORK:-build/compare}"
steps="${STEPS:-100}"
mkdir -p "$work"
[ -f "$work/subset.jsonl" ] || head -1700 build/default37/train.jsonl > "$work/subset.jsonl"
merged=$("$python" -m quotegen download quotegen-135m --quiet)
base=$("$python" -m quotegen download smollm2-135m-instruct --quiet)
# The previous default as a full model, with its base's chat template back (its adapter's
# tokenizer dropped it), so both runs start from the same weights and template.
start="$work/start"
if [ ! -f "$start/config.json" ]; then
  mkdir -p "$start"
  for f in "$merged"/*; do ln -sf "$(realpath "$f")" "$start/"; done
  rm -f "$start/tokenizer_config.json" "$start/tokenizer.json"
  cp "$base"/{tokenizer.json,tokenizer_config.json,chat_template.jinja} "$start/"
  "$python" -c 'import sys; from transformers import AutoTokenizer
t = AutoTokenizer.from_pretrained(sys.argv[1]); assert t.chat_template' "$start"
fi
common=(--frame-token "<|endoftext|>" --epochs 1 --max-steps "$steps" --batch-size 16
  --max-length 96 --warmup 0.03 --weight-decay 0 --val-split 0.03 --seed 0
  --mixed-precision bf16 --checkpoint-every 25 --json)
[ -f "$work/lora.json" ] || OMP_NUM_THREADS=1 "$python" -m quotegen train "$work/subset.jsonl" \
  --base smollm2-135m-instruct --lora --lora-init quotegen/models/quotegen-135m \
  --lora-targets all-linear --learning-rate 2e-4 "${common[@]}" --out "$work/lora" \
  > "$work/lora.json"
[ -f "$work/full.json" ] || OMP_NUM_THREADS=1 "$python" -m quotegen train "$work/subset.jsonl" \
  --base "$start" --learning-rate 3e-5 "${common[@]}" --out "$work/full" > "$work/full.json"
cat "$work/lora.json" "$work/full.json"
