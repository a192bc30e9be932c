"""In-process inference: one worker thread per loaded GGUF model, async streaming on top.

Names are loaded on first use: `breakingwind.engine.types` and `.stream` (the shared types every
backend imports) must stay importable without loading llama_cpp, which `Engine` needs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from breakingwind.engine.engine import AgentStatus, Engine
    from breakingwind.engine.stream import GenerationStream
    from breakingwind.engine.structured import generate_structured
    from breakingwind.engine.types import GenerationRequest, GenerationResult, Timings, Usage
    from breakingwind.engine.worker import compiled_backend

_HOMES = {
    "AgentStatus": "engine",
    "Engine": "engine",
    "GenerationRequest": "types",
    "GenerationResult": "types",
    "GenerationStream": "stream",
    "Timings": "types",
    "Usage": "types",
    "compiled_backend": "worker",
    "generate_structured": "structured",
}
__all__ = [
    "AgentStatus",
    "Engine",
    "GenerationRequest",
    "GenerationResult",
    "GenerationStream",
    "Timings",
    "Usage",
    "compiled_backend",
    "generate_structured",
]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
