"""In-process inference: one worker thread per loaded GGUF model, async streaming on top."""

from breakingwind.engine.engine import AgentStatus, Engine
from breakingwind.engine.structured import generate_structured
from breakingwind.engine.types import GenerationRequest, GenerationResult, Timings, Usage
from breakingwind.engine.worker import GenerationStream, compiled_backend

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
