"""Check that a file is a well-formed GGUF before llama.cpp sees it, and read what loading needs.

Some malformed files abort the whole process inside llama.cpp, so every model goes through
`inspect_gguf()` first. The reader is the `gguf` package from the llama.cpp project: it memory-maps
the file, parses every key and tensor descriptor, and fails when a tensor would run past the end of
the file (a truncated download).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from breakingwind.errors import InvalidModelFile

T = TypeVar("T")

GGUF_MAGIC = b"GGUF"
KV_CACHE_BYTES_PER_VALUE = 2  # llama.cpp's default KV cache type is f16


@dataclass(frozen=True)
class GGUFInfo:
    """What BreakingWind needs to know about a model file before loading it."""

    path: Path
    file_bytes: int
    architecture: str
    name: str
    n_layers: int
    n_ctx_train: int
    n_embd: int
    n_head: int
    n_head_kv: int
    key_length: int
    value_length: int
    has_chat_template: bool

    def kv_cache_bytes(self, n_ctx: int) -> int:
        """Bytes of an f16 KV cache of `n_ctx` tokens (an upper bound for sliding-window models)."""
        per_token = self.n_layers * self.n_head_kv * (self.key_length + self.value_length)
        return n_ctx * per_token * KV_CACHE_BYTES_PER_VALUE

    def estimated_bytes(self, n_ctx: int) -> int:
        """Weights plus KV cache: what loading this model with `n_ctx` will take, roughly."""
        return self.file_bytes + self.kv_cache_bytes(n_ctx)


def inspect_gguf(path: Path) -> GGUFInfo:
    """Validate `path` as a GGUF model and return its shape; raise `InvalidModelFile` otherwise."""
    if not path.exists():
        raise InvalidModelFile(f"{path}: file does not exist")
    if not path.is_file():
        raise InvalidModelFile(f"{path}: not a regular file")
    size = path.stat().st_size
    with path.open("rb") as handle:
        head = handle.read(8)
    if len(head) < 8:
        raise InvalidModelFile(f"{path}: {size} bytes, too short to be a GGUF file")
    if head[:4] != GGUF_MAGIC:
        raise InvalidModelFile(
            f"{path}: not a GGUF file (starts with {head[:4]!r}, expected {GGUF_MAGIC!r};"
            " an interrupted or HTML download?)"
        )
    fields = _read_fields(path)
    arch = _field(fields, "general.architecture", str, default="")
    if not arch:
        raise InvalidModelFile(f"{path}: GGUF has no general.architecture key")
    if _field(fields, "split.count", int, default=1) > 1:
        raise InvalidModelFile(f"{path}: split GGUF files are not supported; merge the parts first")
    n_embd = _field(fields, f"{arch}.embedding_length", int, default=0)
    n_head = _field(fields, f"{arch}.attention.head_count", int, default=0) or 1
    head_dim = n_embd // n_head if n_embd else 0
    return GGUFInfo(
        path=path,
        file_bytes=size,
        architecture=arch,
        name=_field(fields, "general.name", str, default=path.stem),
        n_layers=_field(fields, f"{arch}.block_count", int, default=0),
        n_ctx_train=_field(fields, f"{arch}.context_length", int, default=0),
        n_embd=n_embd,
        n_head=n_head,
        n_head_kv=_field(fields, f"{arch}.attention.head_count_kv", int, default=n_head),
        key_length=_field(fields, f"{arch}.attention.key_length", int, default=head_dim),
        value_length=_field(fields, f"{arch}.attention.value_length", int, default=head_dim),
        has_chat_template="tokenizer.chat_template" in fields,
    )


def _read_fields(path: Path) -> dict[str, object]:
    # Imported here: the gguf package pulls in numpy, which only model loading needs.
    from gguf import GGUFReader

    try:
        reader = GGUFReader(os.fspath(path), "r")
    except (ValueError, IndexError, KeyError, TypeError, OverflowError, UnicodeDecodeError) as exc:
        raise InvalidModelFile(f"{path}: malformed GGUF ({type(exc).__name__}: {exc})") from None
    fields: dict[str, object] = {}
    for key, field in reader.fields.items():
        if key.startswith("tokenizer.ggml."):
            continue  # vocabularies: large and not needed here
        try:
            fields[key] = field.contents()
        except (ValueError, IndexError, UnicodeDecodeError):
            fields[key] = None
    return fields


def _field(fields: dict[str, object], key: str, kind: type[T], default: T) -> T:
    value = fields.get(key)
    if value is None:
        return default
    if kind is int and isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)  # type: ignore[return-value]
    if isinstance(value, kind):
        return value
    raise InvalidModelFile(f"GGUF key {key} has an unexpected type {type(value).__name__}")
