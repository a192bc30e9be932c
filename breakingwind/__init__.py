"""BreakingWind: a local, private, multi-agent coding daemon."""

from breakingwind.cxx_runtime import preload_libstdcxx

# before any llama_cpp import anywhere in the process: see cxx_runtime.py
preload_libstdcxx()

__version__ = "0.1.0"
