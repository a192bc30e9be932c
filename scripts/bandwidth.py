"""Memory bandwidth: a big device-to-device copy through torch or cupy, or a host copy.

    python3 scripts/bandwidth.py     # prints {"bytes_per_s": ..., "method": ...}

`device_bandwidth()` runs this file as a child process, so that torch or cupy never share a
process (or a CUDA runtime) with llama.cpp and their GPU memory is freed before models load.
Bytes are counted read + write, as the ceiling of a memory-bound decode counts them.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

import numpy as np

H100_SXM_BANDWIDTH = 3.35e12  # bytes/s, NVIDIA's datasheet figure for H100 SXM5 HBM3
COPY_BYTES = 4 << 30
REPEATS = 10


def _torch_copy_bandwidth() -> float:
    import torch

    if not torch.cuda.is_available():
        raise RuntimeError("torch sees no CUDA device")
    src = torch.empty(COPY_BYTES, dtype=torch.uint8, device="cuda")
    dst = torch.empty_like(src)
    for _ in range(3):
        dst.copy_(src)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(REPEATS):
        dst.copy_(src)
    end.record()
    torch.cuda.synchronize()
    return 2 * COPY_BYTES * REPEATS / (start.elapsed_time(end) / 1e3)  # read + write


def _cupy_copy_bandwidth() -> float:
    import cupy

    src = cupy.empty(COPY_BYTES, dtype=cupy.uint8)
    dst = cupy.empty_like(src)
    for _ in range(3):
        dst[...] = src
    start, end = cupy.cuda.Event(), cupy.cuda.Event()
    start.record()
    for _ in range(REPEATS):
        dst[...] = src
    end.record()
    end.synchronize()
    return 2 * COPY_BYTES * REPEATS / (cupy.cuda.get_elapsed_time(start, end) / 1e3)


DEVICE_PROBES = {
    "torch device-to-device copy": _torch_copy_bandwidth,
    "cupy device-to-device copy": _cupy_copy_bandwidth,
}


def device_bandwidth() -> dict[str, Any]:
    """The GPU's, measured in a child process; the H100 datasheet figure when nothing can."""
    out = subprocess.run([sys.executable, __file__], capture_output=True, text=True)
    lines = out.stdout.strip().splitlines()
    if out.returncode == 0 and lines:
        return json.loads(lines[-1])
    return {
        "bytes_per_s": H100_SXM_BANDWIDTH,
        "method": "H100 SXM datasheet figure (no torch or cupy could measure it)",
        "errors": out.stderr.strip()[-2000:],
    }


def main() -> int:
    """The child process of `device_bandwidth`: print the first probe that works as JSON."""
    errors = []
    for method, probe in DEVICE_PROBES.items():
        try:
            figure = probe()
        except Exception as exc:  # ImportError, no device, out of memory: try the next one
            errors.append(f"{method}: {type(exc).__name__}: {exc}")
            continue
        print(json.dumps({"bytes_per_s": figure, "method": f"{method} (read + write)"}))
        return 0
    print("\n".join(errors), file=sys.stderr)
    return 1


def host_bandwidth() -> dict[str, Any]:
    """The host's, for CPU builds: a numpy copy."""
    src = np.ones(COPY_BYTES // 4, dtype=np.uint8)
    dst = np.empty_like(src)
    np.copyto(dst, src)
    started = time.perf_counter()
    for _ in range(3):
        np.copyto(dst, src)
    elapsed = time.perf_counter() - started
    return {"bytes_per_s": 2 * src.nbytes * 3 / elapsed, "method": "numpy host copy (read + write)"}


if __name__ == "__main__":
    sys.exit(main())
