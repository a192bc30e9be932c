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
# ggml.h's `enum ggml_log_level` (llama-cpp-python's `_logger.py` copies an older numbering):
# llama.cpp's information lines (163 per model load) are our DEBUG; CONT continues the last line.
GGML_LEVELS = {
    0: logging.DEBUG,  # NONE
    1: logging.DEBUG,  # DEBUG
    2: logging.DEBUG,  # INFO
    3: logging.WARNING,  # WARN
    4: logging.ERROR,  # ERROR
}
GGML_CONT = 5
_last_level = [logging.DEBUG]  # the level a CONT line inherits; llama.cpp's logger is global too


def python_level(ggml_level: int) -> int:
    """The logging level for a line llama.cpp logged at `ggml_level`."""
    if ggml_level != GGML_CONT:
        _last_level[0] = GGML_LEVELS.get(ggml_level, logging.DEBUG)
    return _last_level[0]


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
    python = python_level(level)
    if message and log.isEnabledFor(python):
        log.log(python, "%s", message)


def install() -> None:
    """Idempotent; called once when the engine is imported."""
    llama_cpp.llama.suppress_stdout_stderr = _NoRedirect  # type: ignore[assignment,misc]
    llama_cpp._internals.suppress_stdout_stderr = _NoRedirect  # type: ignore[assignment,misc]
    llama_cpp.llama_log_set(_forward, ctypes.c_void_p(0))
