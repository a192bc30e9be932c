#!/usr/bin/env bash
# The GPU measurement on the device machine (docs/gpu-run.md): install the wheels carried in .gpu/,
# build llama-cpp-python with CUDA while the four full-shape GGUFs are written, then run
# scripts/gpu_bench.py. A step already done (a warm machine) is skipped, so a second call resumes.
# Logs and the JSON of all figures go to $OUT (the folder the device tool sends back).
#
#   bash scripts/gpu_run.sh          # everything: wheels, build + GGUFs, bench
#   bash scripts/gpu_run.sh build    # only the wheels and the build
#
# Environment: OUT (default ./gpu-out), SITE (default /tmp/site), GGUF (default: a RAM tmpfs
# mounted at /mnt/gguf, else /tmp/gguf), BUDGET_S (default 580: the tool stops a command at 600),
# SCALE (full, or tiny to try this script on a CPU machine whose SITE holds a llama_cpp) and
# WHEELS (default .gpu/wheels: the cp312 wheels of scripts/gpu_wheels.sh).
set -uo pipefail
cd "$(dirname "$0")/.."

STAGE=${1:-all}
SCALE=${SCALE:-full}
OUT=${OUT:-$PWD/gpu-out}
SITE=${SITE:-/tmp/site}
WHEELS=${WHEELS:-.gpu/wheels}
BUDGET_S=${BUDGET_S:-580}
GGUF_BYTES=56000000000  # the four full files are 53.2 GB
export PYTHONUNBUFFERED=1
mkdir -p "$OUT"
exec > >(tee -a "$OUT/gpu_run.log") 2>&1

log() { echo "[$SECONDS s] $*"; }
fail() { log "FAILED: $*"; exit 1; }

describe_machine() {
    nvidia-smi --query-gpu=name,memory.total,memory.used,driver_version --format=csv
    echo "$(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB RAM, $(python3 --version)"
    df -h /tmp /dev/shm
    if ! command -v nvcc >/dev/null; then
        for dir in /usr/local/cuda/bin /usr/local/cuda-*/bin; do
            [ -x "$dir/nvcc" ] && export PATH="$dir:$PATH" && break
        done
    fi
    nvcc --version | tail -2
}

install_wheels() {
    log "installing the carried wheels into $SITE"
    python3 -m pip install -q --root-user-action=ignore --no-index --no-deps --no-compile \
        --no-cache-dir --upgrade --target "$SITE" "$WHEELS"/*.whl .gpu/gguf-*.whl \
        .gpu/diskcache-*.whl || fail "wheel install (did gpu_wheels.sh run? is .gpu carried?)"
}

gguf_folder() {
    # A RAM tmpfs when it can be mounted: the 64 GB disk may not hold 53 GB, and RAM is faster.
    if [ -n "${GGUF:-}" ]; then
        echo "$GGUF"
    elif mountpoint -q /mnt/gguf || { mkdir -p /mnt/gguf \
        && mount -t tmpfs -o size=$((GGUF_BYTES / 1000000000 + 2))g tmpfs /mnt/gguf; }; then
        echo /mnt/gguf
    else
        echo /tmp/gguf
    fi
}

build_llama_cpp() {
    if [ -e "$SITE/llama_cpp/lib/libggml-cuda.so" ]; then
        log "llama-cpp-python with CUDA is already in $SITE"
        return
    fi
    log "building llama-cpp-python with CUDA for sm_90 (about 5 minutes; log in build.log)"
    CMAKE_ARGS="-DGGML_CUDA=on -DCMAKE_CUDA_ARCHITECTURES=90" \
        CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) \
        python3 -m pip install --root-user-action=ignore --no-build-isolation --no-deps \
        --no-index --no-cache-dir --upgrade --target "$SITE" .gpu/llama_cpp_python-*.tar.gz \
        >"$OUT/build.log" 2>&1 \
        || { tail -40 "$OUT/build.log"; fail "llama-cpp-python build"; }
    log "built"
    PYTHONPATH="$SITE" python3 -c \
        "import llama_cpp; print(llama_cpp.llama_print_system_info().decode())" \
        || { ldd "$SITE"/llama_cpp/lib/libggml-cuda.so | grep -i "not found"; fail "import"; }
}

write_gguf_files() {
    log "writing the four $SCALE-shape GGUFs to $1"
    PYTHONPATH="$SITE" python3 scripts/random_gguf.py --vocab-dir .gpu --out "$1" \
        --scale "$SCALE" >"$OUT/random_gguf.log" 2>&1
}

run_bench() {
    local left=$((BUDGET_S - SECONDS))
    log "gpu_bench with $left s left"
    local tiny=()
    [ "$SCALE" = tiny ] && tiny=(--tiny)
    PYTHONPATH="$SITE:$PWD" timeout "$left" python3 scripts/gpu_bench.py --models "$1" \
        "${tiny[@]}" --out "$OUT/gpu_bench.json" 2>&1 \
        | grep -v "^llama_kv_cache_iswa" | tee "$OUT/gpu_bench.log"
}

describe_machine
install_wheels
case "$STAGE" in
build)
    build_llama_cpp
    ;;
all)
    folder=$(gguf_folder)
    write_gguf_files "$folder" &
    writer=$!
    build_llama_cpp
    wait "$writer"
    writer_status=$?
    cat "$OUT/random_gguf.log"
    df -h "$folder"
    [ "$writer_status" = 0 ] || fail "writing the GGUFs"
    run_bench "$folder" || fail "gpu_bench"
    ;;
*)
    fail "unknown stage $STAGE (all or build)"
    ;;
esac
log "done; figures in $OUT/gpu_bench.json"
