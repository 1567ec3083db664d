#!/usr/bin/env bash
# Bench-only set-up: build llama-cpp-python from source (PyPI has no binary wheel for this
# machine) and install it into the project's .venv. quotegen never imports it; CI never runs it.
#
#   bash bench/setup-llamacpp.sh        # about 13 minutes on 2 cores the first time
#
# The wheel is cached in bench/.cache/wheels, so later runs (and fresh venvs) install in seconds.
# LLAMACPP_JOBS sets the compiler's parallelism (default: every core).
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION="${LLAMACPP_VERSION:-0.3.36}"
PYTHON="${PYTHON:-.venv/bin/python}"
WHEELS=bench/.cache/wheels
mkdir -p "$WHEELS"
if "$PYTHON" -c "import llama_cpp, sys; sys.exit(llama_cpp.__version__ != '$VERSION')" 2>/dev/null; then
    echo "llama-cpp-python $VERSION is installed" >&2
    exit 0
fi
if ! ls "$WHEELS"/llama_cpp_python-"$VERSION"-*.whl >/dev/null 2>&1; then
    echo "building llama-cpp-python $VERSION from source (about 13 minutes on 2 cores)" >&2
    CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=ON}" \
    CMAKE_BUILD_PARALLEL_LEVEL="${LLAMACPP_JOBS:-$(nproc)}" \
        "$PYTHON" -m pip wheel --no-deps --wheel-dir "$WHEELS" "llama-cpp-python==$VERSION"
fi
"$PYTHON" -m pip install --find-links "$WHEELS" "llama-cpp-python==$VERSION"
echo "llama-cpp-python $VERSION installed from $WHEELS" >&2
