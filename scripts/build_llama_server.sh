#!/usr/bin/env bash
# Build llama.cpp's llama-server (a peer for `breakingwind bench --peers`) from the llama.cpp
# sources inside the llama-cpp-python sdist on PyPI: the same llama.cpp commit as our engine.
#
#   scripts/build_llama_server.sh                       # CPU build into .peers/llama-server
#   CMAKE_ARGS="-DGGML_CUDA=ON" scripts/build_llama_server.sh   # CUDA
#   SDIST=path/to/llama_cpp_python-0.3.36.tar.gz scripts/build_llama_server.sh  # no download
#
# ~8 minutes on 2 cores. No web UI is built (nothing is fetched besides the sdist).
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=$(sed -n 's/.*"llama-cpp-python==\([0-9.]*\)".*/\1/p' pyproject.toml)
OUT=${OUT:-.peers}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$OUT"

if [ -z "${SDIST:-}" ]; then
    python3 -m pip download --quiet --no-deps --no-binary :all: --dest "$WORK" \
        "llama-cpp-python==$VERSION"
    SDIST=$(ls "$WORK"/llama_cpp_python-*.tar.gz)
fi
tar -xzf "$SDIST" -C "$WORK"
SOURCE=$(ls -d "$WORK"/llama_cpp_python-*/vendor/llama.cpp)

# shellcheck disable=SC2086  # CMAKE_ARGS is a list of flags
cmake -S "$SOURCE" -B "$WORK/build" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
    -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_TESTS=OFF \
    -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_CURL=OFF \
    ${CMAKE_ARGS:-} >"$WORK/configure.log"
cmake --build "$WORK/build" --target llama-server -j "$(nproc)" >"$WORK/build.log" \
    || { tail -30 "$WORK/build.log"; exit 1; }
cp "$WORK/build/bin/llama-server" "$OUT/llama-server"
echo "built $OUT/llama-server (llama.cpp of llama-cpp-python $VERSION)"
