"""Put the C++ runtime in the process's global symbol scope before llama.cpp's libraries load.

Measured on an H100 (docs/benchmarks.md, "The H100 run"): llama-cpp-python 0.3.36 built with CUDA
13 crashed (SIGSEGV) in `llama_model::print_info()` while loading any model. cuda-gdb showed
`std::ostream::operator<<(long)` running a copy of that libstdc++ template inside
libggml-cuda.so: nvcc's host compilation instantiates it there, and since Python itself does not
link libstdc++, the first library in the global scope that defines the symbol was libggml-cuda.so,
whose copy uses its own, never initialised, `std::locale::id`. With libstdc++ loaded first and
globally (what `LD_PRELOAD=libstdc++.so.6` did on that machine) every library binds to the real
one. A C++ program such as llama-server links libstdc++ itself, which is why it never crashes.
"""

from __future__ import annotations

import ctypes
import os
import sys


def preload_libstdcxx() -> None:
    """Idempotent and harmless where it is not needed; Linux only (macOS has libc++ and two-level
    namespaces, so symbols do not bind across libraries there)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL("libstdc++.so.6", mode=os.RTLD_GLOBAL)  # the soname since GCC 3.4
    except OSError:
        pass  # no shared libstdc++ (a static build): nothing can bind to a stray copy then
