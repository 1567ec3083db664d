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
    # AVX-512 (with VNNI and BF16) but not llama.cpp's AMX kernels: a native build on this
    # machine's Xeon turns them on, and they segfault on the first decode (0.3.36, measured
    # 2026-12-07). Its other repacked kernels run.
    CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=ON -DGGML_AVX512_VNNI=ON -DGGML_AVX512_BF16=ON -DGGML_AVX512_VBMI=ON -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF}" \
    CMAKE_BUILD_PARALLEL_LEVEL="${LLAMACPP_JOBS:-$(nproc)}" \
        "$PYTHON" -m pip wheel --no-deps --no-cache-dir --no-binary llama-cpp-python \
            --wheel-dir "$WHEELS" "llama-cpp-python==$VERSION"
fi
"$PYTHON" -m pip install --find-links "$WHEELS" "llama-cpp-python==$VERSION"
echo "llama-cpp-python $VERSION installed from $WHEELS" >&2
