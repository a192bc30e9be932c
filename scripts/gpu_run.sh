#!/usr/bin/env bash
# The GPU measurement on the device machine (docs/gpu-run.md): install the wheels carried in .gpu/,
# build llama-cpp-python with CUDA (and llama.cpp's llama-server from the same sources, the peer)
# while the four full-shape GGUFs are written, then run scripts/gpu_bench.py once per model, each
# in its own process (a crash loses one model's figures, not all), and once with all four loaded.
# A step already done (a warm machine) is skipped, so a second call resumes.
# Logs and the JSON of all figures go to $OUT (the folder the device tool sends back).
#
#   bash scripts/gpu_run.sh          # everything: wheels, build + GGUFs, bench
#   bash scripts/gpu_run.sh build    # only the wheels and the build
#   bash scripts/gpu_run.sh bench    # only the benches (files and build already there)
#
# Environment: RUNS (default "coder/off coder/on planner/on+peer task/on task/off reviewer/on
# preprocessor/on"): one gpu_bench process each, in order, while time is left. AGENT/FA measures
# that model alone with flash attention FA (auto, on or off); +peer adds llama-server on the same
# file; task/FA loads all four and times one task's stages with forced token counts (--task),
# OUT (default ./gpu-out), SITE (default /tmp/site), GGUF (default: a RAM tmpfs
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
BUILD_DIR=${BUILD_DIR:-/tmp/llama-build}
RESULTS=/tmp/gpu-results
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
    # The llama.cpp tools (llama-server among them) are built in the same tree, which is kept in
    # $BUILD_DIR; mtmd comes with the tools, so llama-cpp-python's own copy of it is left out.
    CMAKE_ARGS="-DGGML_CUDA=on -DCMAKE_CUDA_ARCHITECTURES=90 -DLLAMA_BUILD_TOOLS=ON \
-DLLAMA_BUILD_SERVER=ON -DLLAVA_BUILD=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_UI=OFF" \
        CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) \
        python3 -m pip install --root-user-action=ignore --no-build-isolation --no-deps \
        --no-index --no-cache-dir --upgrade --target "$SITE" \
        --config-settings=build-dir="$BUILD_DIR" .gpu/llama_cpp_python-*.tar.gz \
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

llama_server_binary() {
    { find "$BUILD_DIR" "$SITE" -name llama-server -type f -perm -u+x 2>/dev/null; command -v llama-server; } | head -1
}

# One gpu_bench process: $1 the GGUF folder, $2 a name for its JSON, $3 its time limit, the rest
# gpu_bench's own arguments. A crash (segfault: 139) is reported and the run goes on.
bench_once() {
    local folder=$1 name=$2 limit=$3
    shift 3
    local tiny=()
    [ "$SCALE" = tiny ] && tiny=(--tiny)
    log "gpu_bench $name ($limit s at most)"
    PYTHONPATH="$SITE:$PWD" timeout "$limit" python3 scripts/gpu_bench.py --models "$folder" \
        "${tiny[@]}" --bandwidth "$RESULTS/bandwidth.json" --out "$RESULTS/$name.json" "$@" 2>&1 \
        | grep -v -E "^(llama_model_loader: - kv|llama_kv_cache_iswa|print_info: )"
    local status=${PIPESTATUS[0]}
    [ "$status" = 0 ] || log "gpu_bench $name ended with status $status"
    return "$status"
}

run_benches() {
    local folder=$1 server
    mkdir -p "$RESULTS"
    server=$(llama_server_binary)
    log "llama-server: ${server:-not built}"
    log "measuring the device memory bandwidth"
    if [ "$SCALE" = tiny ]; then  # a CPU check: the host's memory
        PYTHONPATH=scripts python3 -c "import json, bandwidth; print(json.dumps(bandwidth.host_bandwidth()))"
    else
        python3 scripts/bandwidth.py
    fi >"$RESULTS/bandwidth.json" || fail "bandwidth"
    cat "$RESULTS/bandwidth.json"
    # RUNS: which processes, in order (see the top of this file)
    local runs=${RUNS:-coder/off coder/on planner/on+peer task/on task/off reviewer/on preprocessor/on}
    for run in $runs; do
        local name=${run%%/*} rest=auto peer=() args=() limit=90
        [ "$run" != "$name" ] && rest=${run#*/}
        local fa=${rest%%+*}
        if [ "$rest" != "$fa" ] && [ -n "$server" ]; then
            peer=(--llama-server "$server")
            limit=200
        fi
        if [ "$name" = task ]; then
            args=(--task) limit=200
        else
            args=(--agent "$name")
        fi
        local left=$((BUDGET_S - SECONDS - 5))
        [ "$left" -lt "$limit" ] && limit=$left
        if [ "$limit" -lt 30 ]; then
            log "no time left for $run"
            continue
        fi
        bench_once "$folder" "$name-fa-$fa${peer:++peer}" "$limit" "${args[@]}" \
            --flash-attn "$fa" "${peer[@]}"
        [ -f /tmp/llama-server.log ] && mv /tmp/llama-server.log "$OUT/llama-server-$name-$fa.log"
    done
    # one JSON of everything that came back
    python3 - "$RESULTS" "$OUT/gpu_bench.json" <<'PY'
import json, pathlib, sys
results = {p.stem: json.loads(p.read_text()) for p in sorted(pathlib.Path(sys.argv[1]).glob("*.json"))}
pathlib.Path(sys.argv[2]).write_text(json.dumps(results, indent=2))
PY
}

describe_machine
log "checkout: $(git log -1 --format='%h %s' 2>/dev/null || echo 'not a git checkout'); RUNS=${RUNS:-default}"
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
    run_benches "$folder"
    ;;
bench)  # the files and the build are there already (a warm machine, or a CPU check)
    run_benches "$(gguf_folder)"
    ;;
*)
    fail "unknown stage $STAGE (all, build or bench)"
    ;;
esac
log "done; figures in $OUT/gpu_bench.json"
