#!/usr/bin/env bash
# Source weighting, measured in isolation: the same build twice from the previous release's
# adapter (STAGE1), 100 LoRA steps each on 1,700 examples (800 plain, 900 chat, the default
# build's proportions) drawn the default build's way, once by weight (aphorisms and proverbs
# 2, jokes and asides 0.25) and once uniformly; then bits per byte of the held-out sayings by
# kind for both (scripts/weighting-eval.py). Resumable: finished steps are skipped.
#
#   scripts/compare-weighting.sh        # about 30 min on one core of the 2-core build machine
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-.venv/bin/python}"
work="${WORK:-build/weighting}"
corpus="${CORPUS:-build/corpus}"
stage1="${STAGE1:-48cfdbb}"
steps="${STEPS:-100}"
mkdir -p "$work/stage1"
for f in adapter_config.json adapter_model.safetensors; do
  [ -f "$work/stage1/$f" ] || git show "$stage1:quotegen/models/quotegen-135m/$f" > "$work/stage1/$f"
done
[ -f "$work/weighted.jsonl" ] || PYTHONPATH=. "$python" scripts/quote-training-text.py \
  "$corpus" "$work/weighted.jsonl" 800 900
[ -f "$work/uniform.jsonl" ] || PYTHONPATH=. "$python" scripts/quote-training-text.py \
  "$corpus" "$work/uniform.jsonl" 800 900 --uniform
for mix in weighted uniform; do
  [ -f "$work/$mix.json" ] || OMP_NUM_THREADS=1 "$python" -m quotegen train "$work/$mix.jsonl" \
    --base smollm2-135m-instruct --lora --lora-init "$work/stage1" --lora-targets all-linear \
    --lora-r 16 --lora-alpha 32 --frame-token "<|endoftext|>" --epochs 1 --max-steps "$steps" \
    --batch-size 16 --max-length 96 --learning-rate 2e-4 --warmup 0.03 --weight-decay 0 \
    --val-split 0.03 --seed 0 --mixed-precision bf16 --checkpoint-every 25 --json \
    --out "$work/$mix" > "$work/$mix.json"
done
[ -f "$work/eval.json" ] || OMP_NUM_THREADS=1 PYTHONPATH=. "$python" scripts/weighting-eval.py \
  "$corpus" "$work/eval.json" "$work/stage1" "$work/weighted" "$work/uniform"
cat "$work/eval.json"
