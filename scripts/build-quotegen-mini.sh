#!/usr/bin/env bash
# Rebuild the bundled model quotegen-mini from Debian's fortune cookies.
#
#   sudo apt-get install fortunes fortunes-min     # the corpus (never fortunes-off)
#   scripts/build-quotegen-mini.sh                 # about 45 min on 2 CPU cores
#
# The corpus is made on the spot and not committed; the model lands in
# quotegen/models/quotegen-mini (package data), with its model card.
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-.venv/bin/python}"
corpus="$(mktemp --suffix=.txt)"
trap 'rm -f "$corpus"' EXIT

"$python" -m quotegen.corpus > "$corpus"
echo "corpus: $(wc -l < "$corpus") quotes" >&2
rm -rf quotegen/models/quotegen-mini
"$python" -m quotegen train "$corpus" --from-scratch --out quotegen/models/quotegen-mini \
  --vocab-size 4096 --n-layer 4 --n-head 4 --n-embd 256 --context 128 --dropout 0.1 \
  --epochs 16 --batch-size 32 --learning-rate 1e-3 --max-length 64 --val-split 0.05 --seed 0 \
  --device "${DEVICE:-auto}" --json
