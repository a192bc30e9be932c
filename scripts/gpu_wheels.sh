#!/usr/bin/env bash
# Download the wheels that `import breakingwind.engine` needs on the GPU machine and that its
# image lacks (it has no package registry; see docs/gpu-run.md), into .gpu/wheels.
# The GPU machine runs CPython 3.12 on x86-64 Linux; its image already holds numpy, pyyaml,
# requests, tqdm (for gguf), scikit-build-core, cmake and ninja (for the llama-cpp-python build).
# The kit in .gpu/ brings gguf and diskcache. Versions are those `make install` resolves here.
#
#   scripts/gpu_wheels.sh [PYTHON_VERSION]      # default 3.12
set -euo pipefail
cd "$(dirname "$0")/.."

PY_VERSION=${1:-3.12}
DEST=.gpu/wheels
WHEELS=(
    pydantic==2.14.3
    pydantic-core==2.50.4
    annotated-types==0.8.0
    typing-extensions==4.16.0
    typing-inspection==0.4.5
    psutil==7.2.2
    jinja2==3.1.6
    markupsafe==3.0.4
    jsonschema==4.26.0  # the engine checks structured output against the schema
    jsonschema-specifications==2025.9.1
    referencing==0.37.0
    rpds-py==2026.9.1
)
MAX_BYTES=$((40 * 1024 * 1024))

PLATFORMS=()
for platform in manylinux_2_28 manylinux_2_27 manylinux_2_17 manylinux2014 manylinux_2_12 \
    manylinux2010 manylinux_2_5 manylinux1; do
    PLATFORMS+=(--platform "${platform}_x86_64")
done

mkdir -p "$DEST"
rm -f "$DEST"/*.whl
python3 -m pip download --quiet --no-deps --only-binary=:all: --implementation cp \
    --python-version "$PY_VERSION" "${PLATFORMS[@]}" --dest "$DEST" "${WHEELS[@]}"

ls -l "$DEST"
total=$(du -cb "$DEST"/*.whl | tail -1 | cut -f1)
echo "$(ls "$DEST"/*.whl | wc -l) wheels, $total bytes in $DEST"
if [ "$total" -gt "$MAX_BYTES" ]; then
    echo "more than $MAX_BYTES bytes: too large to carry to the GPU machine" >&2
    exit 1
fi
