"""Check that a file is a well-formed GGUF before llama.cpp sees it, and read what loading needs.

Some malformed files abort the whole process inside llama.cpp, so every model goes through
`inspect_gguf()` first. `read_gguf_header()` walks the header with buffered reads: the key/value
pairs, then every tensor descriptor, each count and length checked against the bytes left in the
file before anything is read, and each tensor's data checked to lie inside the file (a truncated
download). Array values — the tokenizer's 128k-256k token strings and merges — are stepped over,
never decoded: `gguf.GGUFReader` decodes them all, which took seconds per model under the GIL.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO, TypeVar

from breakingwind.errors import InvalidModelFile

T = TypeVar("T")

GGUF_MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)  # llama.cpp dropped version 1 (32-bit counts)
DEFAULT_ALIGNMENT = 32
KV_CACHE_BYTES_PER_VALUE = 2  # llama.cpp's default KV cache type is f16

# GGUF value types (gguf.constants.GGUFValueType): those holding one fixed-size number, then the two
# of variable size. Little-endian only, as llama.cpp reads them.
_NUMBERS = {
    code: struct.Struct(fmt)
    for code, fmt in {
        0: "<B",  # UINT8
        1: "<b",  # INT8
        2: "<H",  # UINT16
        3: "<h",  # INT16
        4: "<I",  # UINT32
        5: "<i",  # INT32
        6: "<f",  # FLOAT32
        7: "<?",  # BOOL
        10: "<Q",  # UINT64
        11: "<q",  # INT64
        12: "<d",  # FLOAT64
    }.items()
}
_UINT32, _STRING, _ARRAY = 4, 8, 9
_U32, _U64 = _NUMBERS[4], _NUMBERS[10]

# The fewest bytes a key/value pair (1-byte key, 1-byte value) and a tensor descriptor (empty name,
# no dimensions) take: a count the rest of the file cannot hold is refused before any loop runs.
_MIN_KV_BYTES = 8 + 1 + 4 + 1
_MIN_TENSOR_BYTES = 8 + 4 + 4 + 8
# llama.cpp's own limits (ggml.h, gguf.cpp).
_MAX_DIMS = 4
_MAX_TENSOR_NAME = 63
_MAX_ARRAY_ITEMS = 1 << 30
_MAX_ELEMENTS = (1 << 63) - 1
# Real keys are under 100 bytes and string values (chat templates, licences) a few KB: longer keys
# are refused and longer values are skipped, so a corrupt length cannot make us allocate gigabytes.
_MAX_KEY_BYTES = 1 << 16
_MAX_KEPT_STRING = 1 << 20
_CHUNK = 1 << 20


@dataclass(frozen=True)
class GGUFArray:
    """An array value, stepped over rather than read: its item type (GGUF value type) and length."""

    item_type: int
    count: int


# A key's value; None where a string value is not UTF-8 or longer than 1 MiB (it is not kept).
GGUFValue = int | float | bool | str | GGUFArray | None


@dataclass(frozen=True)
class GGUFTensor:
    """A tensor descriptor: `shape` in GGUF order (row length first), `data_offset` in the file."""

    name: str
    ggml_type: int
    shape: tuple[int, ...]
    data_offset: int
    n_bytes: int


@dataclass(frozen=True)
class GGUFHeader:
    """Everything in a GGUF file but the tensor data."""

    version: int
    fields: dict[str, GGUFValue]
    tensors: tuple[GGUFTensor, ...]
    alignment: int
    data_offset: int


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
    header = read_gguf_header(path)
    fields = header.fields
    arch = _field(path, fields, "general.architecture", str, default="")
    if not arch:
        raise InvalidModelFile(f"{path}: GGUF has no general.architecture key")
    if _field(path, fields, "split.count", int, default=1) > 1:
        raise InvalidModelFile(f"{path}: split GGUF files are not supported; merge the parts first")
    n_embd = _field(path, fields, f"{arch}.embedding_length", int, default=0)
    n_head = _field(path, fields, f"{arch}.attention.head_count", int, default=0) or 1
    head_dim = n_embd // n_head if n_embd else 0
    return GGUFInfo(
        path=path,
        file_bytes=path.stat().st_size,
        architecture=arch,
        name=_field(path, fields, "general.name", str, default=path.stem),
        n_layers=_field(path, fields, f"{arch}.block_count", int, default=0),
        n_ctx_train=_field(path, fields, f"{arch}.context_length", int, default=0),
        n_embd=n_embd,
        n_head=n_head,
        n_head_kv=_field(path, fields, f"{arch}.attention.head_count_kv", int, default=n_head),
        key_length=_field(path, fields, f"{arch}.attention.key_length", int, default=head_dim),
        value_length=_field(path, fields, f"{arch}.attention.value_length", int, default=head_dim),
        has_chat_template="tokenizer.chat_template" in fields,
    )


def read_gguf_header(path: Path) -> GGUFHeader:
    """Parse and check the header of the GGUF file at `path`; raise `InvalidModelFile` if malformed.

    Refuses what llama.cpp would refuse or choke on: a bad magic or version, a big-endian file, a
    count or length the file cannot hold, a duplicate or non-UTF-8 key or tensor name, an unknown
    value or tensor type, a bad alignment, tensors out of order or running past the end of the file.
    """
    if not path.exists():
        raise InvalidModelFile(f"{path}: file does not exist")
    if not path.is_file():
        raise InvalidModelFile(f"{path}: not a regular file")
    file_bytes = path.stat().st_size
    with path.open("rb") as handle:
        reader = _Reader(handle, path, file_bytes)
        version, n_tensors, n_kv = _read_preamble(reader)
        fields = _read_fields(reader, n_kv)
        alignment = _alignment(reader, fields)
        tensors = [_read_tensor(reader, index) for index in range(n_tensors)]
    data_offset = _padded(reader.offset, alignment)
    return GGUFHeader(
        version=version,
        fields=fields,
        tensors=_place_tensors(reader, tensors, data_offset, alignment),
        alignment=alignment,
        data_offset=data_offset,
    )


class _Reader:
    """Buffered little-endian reads from the front of a file, never past its size when opened.

    Each read checks the bytes it needs against the bytes left first, so a corrupt length or count
    fails at once rather than allocating or looping for it.
    """

    def __init__(self, handle: BinaryIO, path: Path, file_bytes: int) -> None:
        self.path = path
        self.file_bytes = file_bytes
        self._handle = handle
        self._buf = b""
        self._buf_at = 0  # file offset of _buf[0]
        self._pos = 0  # next unread byte in _buf

    @property
    def offset(self) -> int:
        return self._buf_at + self._pos

    @property
    def left(self) -> int:
        return self.file_bytes - self.offset

    def malformed(self, problem: str) -> InvalidModelFile:
        return InvalidModelFile(f"{self.path}: malformed GGUF: {problem}")

    def number(self, fmt: struct.Struct, what: str) -> int | float | bool:
        self._buffer(fmt.size, what)
        (value,) = fmt.unpack_from(self._buf, self._pos)
        self._pos += fmt.size
        return value

    def count(self, what: str) -> int:
        return int(self.number(_U64, what))

    def string_length(self, what: str) -> int:
        length = self.count(what)
        if length > self.left:
            raise self.malformed(
                f"{what} is {length} bytes long, but only {self.left} bytes of the file follow"
            )
        return length

    def take(self, n: int, what: str) -> bytes:
        self._buffer(n, what)
        data = self._buf[self._pos : self._pos + n]
        self._pos += n
        return data

    def skip(self, n: int, what: str) -> None:
        if n > self.left:
            raise self.malformed(f"{what} needs {n} bytes, but only {self.left} are left")
        if self._pos + n <= len(self._buf):
            self._pos += n
            return
        target = self.offset + n
        self._handle.seek(target)
        self._buf, self._buf_at, self._pos = b"", target, 0

    def skip_strings(self, count: int, what: str) -> None:
        """Step over `count` length-prefixed strings (a tokenizer's vocabulary) without decoding."""
        if count * 8 > self.left:
            raise self.malformed(
                f"{what} has {count} strings, more than the {self.left} bytes left can hold"
            )
        # The loop runs once per token (up to 256k), so it works on locals while the string stays
        # inside the buffer and falls back to the checked reads only across the buffer's end.
        buf, pos, unpack = self._buf, self._pos, _U64.unpack_from
        for _ in range(count):
            end = pos + 8
            if end <= len(buf):
                end += unpack(buf, pos)[0]
                if end <= len(buf):
                    pos = end
                    continue
            self._pos = pos
            self.skip(self.string_length(what), what)
            buf, pos = self._buf, self._pos
        self._pos = pos

    def _buffer(self, n: int, what: str) -> None:
        """Make the next `n` bytes readable from the buffer, or raise if the file ends first."""
        if self._pos + n <= len(self._buf):
            return
        if n > self.left:
            raise self.malformed(
                f"the file ends at byte {self.file_bytes}, inside {what} (a truncated file?)"
            )
        rest = self._buf[self._pos :]
        self._buf = rest + self._handle.read(max(n - len(rest), _CHUNK))
        self._buf_at, self._pos = self._buf_at + self._pos, 0
        if len(self._buf) < n:
            raise self.malformed(f"the file shrank while {what} was being read")


def _read_preamble(reader: _Reader) -> tuple[int, int, int]:
    """Magic, version and the two counts, checked; returns (version, n_tensors, n_kv)."""
    path = reader.path
    if reader.file_bytes < 8:
        raise InvalidModelFile(f"{path}: {reader.file_bytes} bytes, too short to be a GGUF file")
    magic = reader.take(4, "the magic number")
    if magic != GGUF_MAGIC:
        raise InvalidModelFile(
            f"{path}: not a GGUF file (starts with {magic!r}, expected {GGUF_MAGIC!r};"
            " an interrupted or HTML download?)"
        )
    version = int(reader.number(_U32, "the version"))
    if version & 0xFFFF == 0 and version:
        raise InvalidModelFile(
            f"{path}: GGUF version field reads {version:#x}: a big-endian file, which llama.cpp"
            " cannot load on this machine"
        )
    if version not in SUPPORTED_VERSIONS:
        raise InvalidModelFile(
            f"{path}: unsupported GGUF version {version} (llama.cpp reads versions 2 and 3)"
        )
    n_tensors = reader.count("the tensor count")
    n_kv = reader.count("the key/value count")
    if n_tensors * _MIN_TENSOR_BYTES + n_kv * _MIN_KV_BYTES > reader.left:
        raise reader.malformed(
            f"the header announces {n_kv} key/value pairs and {n_tensors} tensors, more than the"
            f" {reader.left} bytes after it can hold"
        )
    return version, n_tensors, n_kv


def _read_fields(reader: _Reader, n_kv: int) -> dict[str, GGUFValue]:
    fields: dict[str, GGUFValue] = {}
    for index in range(n_kv):
        key = _read_name(reader, f"key #{index}", _MAX_KEY_BYTES)
        label = _shown(key)
        if not key:
            raise reader.malformed(f"key #{index} is empty")
        if key in fields:
            raise reader.malformed(f"key {label} appears twice")
        value_type = int(reader.number(_U32, f"the type of {label}"))
        if key == "general.alignment" and value_type != _UINT32:
            raise reader.malformed(f"general.alignment has value type {value_type}, not UINT32")
        fields[key] = _read_value(reader, label, value_type)
    return fields


def _read_name(reader: _Reader, what: str, limit: int) -> str:
    """A key or tensor name: UTF-8 of at most `limit` bytes."""
    length = reader.string_length(what)
    if length > limit:
        raise reader.malformed(f"{what} is {length} bytes long (at most {limit} allowed)")
    raw = reader.take(length, what)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise reader.malformed(f"{what} is not UTF-8: {raw[:64]!r}") from None


def _read_value(reader: _Reader, label: str, value_type: int) -> GGUFValue:
    what = f"the value of {label}"
    if value_type in _NUMBERS:
        return reader.number(_NUMBERS[value_type], what)
    if value_type == _STRING:
        length = reader.string_length(what)
        if length > _MAX_KEPT_STRING:
            reader.skip(length, what)
            return None
        try:
            return reader.take(length, what).decode("utf-8")
        except UnicodeDecodeError:
            return None
    if value_type == _ARRAY:
        return _skip_array(reader, label)
    raise reader.malformed(f"key {label} has unknown value type {value_type}")


def _skip_array(reader: _Reader, label: str) -> GGUFArray:
    what = f"the array {label}"
    item_type = int(reader.number(_U32, f"the item type of {label}"))
    count = reader.count(f"the length of {label}")
    if count > _MAX_ARRAY_ITEMS:
        raise reader.malformed(f"{what} claims {count} items (llama.cpp allows {_MAX_ARRAY_ITEMS})")
    if item_type == _STRING:
        reader.skip_strings(count, what)
    elif item_type in _NUMBERS:
        reader.skip(count * _NUMBERS[item_type].size, what)
    elif item_type == _ARRAY:
        raise reader.malformed(f"{what} holds arrays, which llama.cpp does not read")
    else:
        raise reader.malformed(f"{what} has unknown item type {item_type}")
    return GGUFArray(item_type, count)


def _alignment(reader: _Reader, fields: dict[str, GGUFValue]) -> int:
    value = fields.get("general.alignment", DEFAULT_ALIGNMENT)
    assert isinstance(value, int)  # _read_fields refused any type but UINT32
    if value == 0 or value & (value - 1):
        raise reader.malformed(f"general.alignment is {value}, not a power of two")
    return value


def _read_tensor(reader: _Reader, index: int) -> GGUFTensor:
    """A tensor descriptor and its size in bytes; `data_offset` counts from the data section."""
    # Imported here: the gguf package pulls in numpy, which only model loading needs.
    from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

    name = _read_name(reader, f"the name of tensor #{index}", _MAX_TENSOR_NAME)
    label = _shown(name)
    n_dims = int(reader.number(_U32, f"the dimension count of tensor {label}"))
    if n_dims > _MAX_DIMS:
        raise reader.malformed(f"tensor {label} has {n_dims} dimensions (at most {_MAX_DIMS})")
    shape = tuple(reader.count(f"the shape of tensor {label}") for _ in range(n_dims))
    n_elements = math.prod(shape)
    if n_elements > _MAX_ELEMENTS or any(dim > _MAX_ELEMENTS for dim in shape):
        raise reader.malformed(f"tensor {label} has an impossible shape {list(shape)}")
    ggml_type = int(reader.number(_U32, f"the type of tensor {label}"))
    if ggml_type not in GGML_QUANT_SIZES:
        raise reader.malformed(f"tensor {label} has unknown ggml type {ggml_type}")
    block_size, type_size = GGML_QUANT_SIZES[GGMLQuantizationType(ggml_type)]
    row = shape[0] if shape else 1
    if row % block_size:
        raise reader.malformed(
            f"tensor {label} has rows of {row} values, not a multiple of the"
            f" {GGMLQuantizationType(ggml_type).name} block size {block_size}"
        )
    offset = reader.count(f"the data offset of tensor {label}")
    return GGUFTensor(name, ggml_type, shape, offset, n_elements // block_size * type_size)


def _place_tensors(
    reader: _Reader, tensors: list[GGUFTensor], data_offset: int, alignment: int
) -> tuple[GGUFTensor, ...]:
    """The tensors with file offsets, checked to follow each other (as llama.cpp requires) and to
    end inside the file."""
    placed = []
    names: set[str] = set()
    expected = 0
    for tensor in tensors:
        label = _shown(tensor.name)
        if tensor.name in names:
            raise reader.malformed(f"tensor {label} appears twice")
        names.add(tensor.name)
        if tensor.data_offset != expected:
            raise reader.malformed(
                f"tensor {label} starts at data offset {tensor.data_offset}, expected"
                f" {expected} (tensors follow each other, each padded to {alignment} bytes)"
            )
        start = data_offset + tensor.data_offset
        if start + tensor.n_bytes > reader.file_bytes:
            raise reader.malformed(
                f"tensor {label} ends at byte {start + tensor.n_bytes}, past the end of the"
                f" file ({reader.file_bytes} bytes): a truncated download?"
            )
        placed.append(replace(tensor, data_offset=start))
        expected += _padded(tensor.n_bytes, alignment)
    return tuple(placed)


def _padded(n: int, alignment: int) -> int:
    return -(-n // alignment) * alignment


def _shown(name: str) -> str:
    """A key or tensor name for a message: as it is if short and printable, else escaped and cut."""
    if len(name) <= 80 and name.isprintable():
        return name
    return repr(name[:80]) + ("..." if len(name) > 80 else "")


def _field(path: Path, fields: dict[str, GGUFValue], key: str, kind: type[T], default: T) -> T:
    value = fields.get(key)
    if value is None:
        return default
    if kind is int and isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)  # type: ignore[return-value]
    if isinstance(value, kind):
        return value
    found = f"an array of {value.count}" if isinstance(value, GGUFArray) else type(value).__name__
    raise InvalidModelFile(f"{path}: GGUF key {_shown(key)} is {found}, expected {kind.__name__}")
