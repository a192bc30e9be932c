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
# enum ggml_log_level in the vendored ggml.h: 1 debug, 2 info, 3 warn, 4 error, 5 continues the
# previous message (llama_cpp/_logger.py's comment has an older order: trusting it made every
# load's info lines show as warnings in `run` and in the daemon's log).
_LEVELS = {1: logging.DEBUG, 2: logging.INFO, 3: logging.WARNING, 4: logging.ERROR}
_CONTINUE = 5
_last_level = [logging.DEBUG]


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
    if level != _CONTINUE:
        _last_level[0] = _LEVELS.get(level, logging.DEBUG)
    if message:
        log.log(_last_level[0], "%s", message)


def install() -> None:
    """Idempotent; called once when the engine is imported."""
    llama_cpp.llama.suppress_stdout_stderr = _NoRedirect  # type: ignore[assignment,misc]
    llama_cpp._internals.suppress_stdout_stderr = _NoRedirect  # type: ignore[assignment,misc]
    llama_cpp.llama_log_set(_forward, ctypes.c_void_p(0))
