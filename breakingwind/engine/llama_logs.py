"""Route llama.cpp's log output into Python logging, and stop llama-cpp-python from silencing
the whole process while a model loads.

With `verbose=False`, llama-cpp-python wraps model loading in `suppress_stdout_stderr`, which points
file descriptors 1 and 2 at /dev/null. That is process-wide: every other thread's output (progress
printed by `breakingwind run`, the daemon's own log lines) vanished for the length of the load.
Its logs come through llama.cpp's log callback instead, so the redirection is not needed.
"""

from __future__ import annotations

import ctypes
import logging
from typing import Any

import llama_cpp
import llama_cpp._internals
import llama_cpp.llama

log = logging.getLogger("llama.cpp")
_LEVELS = {2: logging.WARNING, 3: logging.ERROR}  # ggml: 1 info, 2 warn, 3 error, 4 debug


class _NoRedirect:
    """Stands in for `suppress_stdout_stderr`: leaves the file descriptors alone."""

    def __init__(self, disable: bool = True) -> None:
        pass

    def __enter__(self) -> _NoRedirect:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        return None


@llama_cpp.llama_log_callback
def _forward(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
    message = text.decode("utf-8", errors="replace").rstrip()
    if message:
        log.log(_LEVELS.get(level, logging.DEBUG), "%s", message)


def install() -> None:
    """Idempotent; called once when the engine is imported."""
    llama_cpp.llama.suppress_stdout_stderr = _NoRedirect  # type: ignore[assignment,misc]
    llama_cpp._internals.suppress_stdout_stderr = _NoRedirect  # type: ignore[assignment,misc]
    llama_cpp.llama_log_set(_forward, ctypes.c_void_p(0))
