from __future__ import annotations

import re
import struct
from pathlib import Path

import pytest
from gguf import GGMLQuantizationType as Q
from gguf import GGUFValueType as V

from breakingwind.engine.gguf_file import GGUFArray, inspect_gguf, read_gguf_header
from breakingwind.errors import InvalidModelFile
from tests.conftest import header_read_by_gguf_reader


def test_embedded_model_is_a_well_formed_gguf(embedded_gguf: Path) -> None:
    info = inspect_gguf(embedded_gguf)
    assert info.architecture == "llama"
    assert info.n_layers == 30
    assert info.n_ctx_train == 8192
    assert info.has_chat_template
    # 30 layers x 3 KV heads x (64 + 64) dims x 2 bytes per token
    assert info.kv_cache_bytes(1) == 30 * 3 * 128 * 2


def test_truncated_file_is_refused(tmp_path: Path, embedded_gguf: Path) -> None:
    truncated = tmp_path / "truncated.gguf"
    data = embedded_gguf.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(InvalidModelFile, match="malformed GGUF"):
        inspect_gguf(truncated)


def test_truncated_header_is_refused(tmp_path: Path, embedded_gguf: Path) -> None:
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(embedded_gguf.read_bytes()[:4096])
    with pytest.raises(InvalidModelFile, match="malformed GGUF"):
        inspect_gguf(cut)


def test_html_page_is_refused_with_a_hint(tmp_path: Path) -> None:
    page = tmp_path / "model.gguf"
    page.write_text("<!DOCTYPE html><html>rate limited</html>")
    with pytest.raises(InvalidModelFile, match="not a GGUF file.*HTML download"):
        inspect_gguf(page)


@pytest.mark.parametrize("content", [b"", b"GGU", b"GGUF\x03\x00"])
def test_empty_or_tiny_file_is_refused(tmp_path: Path, content: bytes) -> None:
    tiny = tmp_path / "tiny.gguf"
    tiny.write_bytes(content)
    with pytest.raises(InvalidModelFile, match="too short"):
        inspect_gguf(tiny)


def test_garbage_after_magic_is_refused(tmp_path: Path) -> None:
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"GGUF" + b"\xff" * 4096)
    with pytest.raises(InvalidModelFile):
        inspect_gguf(junk)


def test_directory_and_missing_file_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidModelFile, match="not a regular file"):
        inspect_gguf(tmp_path)
    with pytest.raises(InvalidModelFile, match="does not exist"):
        inspect_gguf(tmp_path / "absent.gguf")


def test_header_matches_the_gguf_package_reader(embedded_gguf: Path) -> None:
    assert read_gguf_header(embedded_gguf) == header_read_by_gguf_reader(embedded_gguf)


def test_vocabulary_arrays_are_counted_not_read(embedded_gguf: Path) -> None:
    fields = read_gguf_header(embedded_gguf).fields
    assert fields["tokenizer.ggml.tokens"] == GGUFArray(V.STRING, 49152)
    assert fields["tokenizer.ggml.merges"] == GGUFArray(V.STRING, 48900)


# A minimal GGUF, built byte by byte so that each case below breaks exactly one thing in it.
def _string(text: str | bytes) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    return struct.pack("<Q", len(raw)) + raw


def _kv(key: str | bytes, value_type: int, payload: bytes) -> bytes:
    return _string(key) + struct.pack("<I", value_type) + payload


def _tensor(name: str, shape: tuple[int, ...], ggml_type: int = Q.F32, offset: int = 0) -> bytes:
    dims = struct.pack(f"<I{len(shape)}Q", len(shape), *shape)
    return _string(name) + dims + struct.pack("<IQ", ggml_type, offset)


ARCH = _kv("general.architecture", V.STRING, _string("llama"))
LAYERS = _kv("llama.block_count", V.UINT32, struct.pack("<I", 2))
WEIGHT = _tensor("output_norm.weight", (8,))


def _gguf(
    kvs: list[bytes],
    tensors: list[bytes],
    data: bytes = b"\0" * 32,
    *,
    version: int = 3,
    n_kv: int | None = None,
    n_tensors: int | None = None,
) -> bytes:
    counts = (len(tensors) if n_tensors is None else n_tensors, len(kvs) if n_kv is None else n_kv)
    head = struct.pack("<4sIQQ", b"GGUF", version, *counts) + b"".join(kvs) + b"".join(tensors)
    return head + b"\0" * (-len(head) % 32) + data


def _write(tmp_path: Path, content: bytes) -> Path:
    path = tmp_path / "model.gguf"
    path.write_bytes(content)
    return path


def test_minimal_file_passes(tmp_path: Path) -> None:
    path = _write(tmp_path, _gguf([ARCH, LAYERS], [WEIGHT]))
    assert inspect_gguf(path).n_layers == 2
    assert read_gguf_header(path) == header_read_by_gguf_reader(path)


MALFORMED = [
    pytest.param(
        _gguf([ARCH, struct.pack("<Q", 1 << 40) + b"llama"], [WEIGHT]),
        "key #1 is 1099511627776 bytes long, but only .* bytes of the file follow",
        id="string-length-past-the-end",
    ),
    pytest.param(
        _gguf([ARCH], [WEIGHT], n_kv=1 << 62),
        "the header announces 4611686018427387904 key/value pairs",
        id="huge-key-count",
    ),
    pytest.param(
        _gguf([ARCH], [WEIGHT], n_tensors=(1 << 64) - 1),
        "the header announces 1 key/value pairs and 18446744073709551615 tensors",
        id="huge-tensor-count",
    ),
    pytest.param(
        _gguf([ARCH, _kv("tokens", V.ARRAY, struct.pack("<IQ", V.STRING, 10**9))], []),
        "the array tokens has 1000000000 strings, more than the .* bytes left can hold",
        id="huge-string-array",
    ),
    pytest.param(
        _gguf([ARCH, _kv("scores", V.ARRAY, struct.pack("<IQ", V.FLOAT32, 1 << 29))], []),
        "the array scores needs 2147483648 bytes",
        id="huge-number-array",
    ),
    pytest.param(
        _gguf([ARCH], [WEIGHT], data=b"\0" * 16),
        "tensor output_norm.weight ends at byte .*, past the end of the file .* truncated download",
        id="tensor-past-the-end",
    ),
    pytest.param(
        _gguf([ARCH], [_string("w") + struct.pack("<I", 0xFFFFFFFF)]),
        "tensor w has 4294967295 dimensions",
        id="absurd-dimension-count",
    ),
    pytest.param(
        _gguf([ARCH], [_tensor("w", (1 << 63,))]),
        "tensor w has an impossible shape",
        id="absurd-shape",
    ),
    pytest.param(
        _gguf([ARCH], [_tensor("w", (8,), ggml_type=999)]),
        "tensor w has unknown ggml type 999",
        id="unknown-tensor-type",
    ),
    pytest.param(
        _gguf([ARCH], [_tensor("w", (33,), ggml_type=Q.Q4_0)]),
        "tensor w has rows of 33 values, not a multiple of the Q4_0 block size 32",
        id="row-not-a-multiple-of-the-block",
    ),
    pytest.param(
        _gguf([ARCH], [WEIGHT, _tensor("b", (8,), offset=64)], data=b"\0" * 128),
        "tensor b starts at data offset 64, expected 32",
        id="tensors-not-in-sequence",
    ),
    pytest.param(
        _gguf([ARCH], [WEIGHT, WEIGHT], data=b"\0" * 64),
        "tensor output_norm.weight appears twice",
        id="duplicate-tensor",
    ),
    pytest.param(
        _gguf([ARCH, _kv(b"general.\xff", V.UINT32, b"\0" * 4)], []),
        r"key #1 is not UTF-8: b'general.\\xff'",
        id="non-utf8-key",
    ),
    pytest.param(
        _gguf([ARCH, ARCH], []),
        "key general.architecture appears twice",
        id="duplicate-key",
    ),
    pytest.param(
        _gguf([ARCH, _kv("x", 13, b"\0" * 8)], []),
        "key x has unknown value type 13",
        id="unknown-value-type",
    ),
    pytest.param(
        _gguf([ARCH, _kv("x\ny", 13, b"\0" * 8)], []),
        r"key 'x\\ny' has unknown value type 13",
        id="unprintable-key-escaped-in-the-message",
    ),
    pytest.param(
        _gguf([ARCH, _kv("x", V.ARRAY, struct.pack("<IQ", V.ARRAY, 1))], []),
        "the array x holds arrays",
        id="nested-array",
    ),
    pytest.param(
        _gguf([ARCH, _kv("general.alignment", V.UINT32, struct.pack("<I", 48))], []),
        "general.alignment is 48, not a power of two",
        id="alignment-not-a-power-of-two",
    ),
    pytest.param(
        _gguf([ARCH, _kv("general.alignment", V.UINT64, struct.pack("<Q", 32))], []),
        "general.alignment has value type 10, not UINT32",
        id="alignment-not-uint32",
    ),
    pytest.param(
        _gguf([ARCH, LAYERS], [WEIGHT])[:100],
        "the file ends at byte 100, inside the value of llama.block_count",
        id="truncated-header",
    ),
]


@pytest.mark.parametrize(("content", "problem"), MALFORMED)
def test_malformed_file_is_refused_with_the_reason(
    tmp_path: Path, content: bytes, problem: str
) -> None:
    path = _write(tmp_path, content)
    expected = f"^{re.escape(str(path))}: malformed GGUF: {problem}"
    with pytest.raises(InvalidModelFile, match=expected):
        inspect_gguf(path)


@pytest.mark.parametrize("version", [1, 4])
def test_unsupported_version_is_refused(tmp_path: Path, version: int) -> None:
    path = _write(tmp_path, _gguf([ARCH], [WEIGHT], version=version))
    with pytest.raises(InvalidModelFile, match=f"unsupported GGUF version {version}"):
        inspect_gguf(path)


def test_big_endian_file_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, _gguf([ARCH], [WEIGHT], version=3 << 24))
    with pytest.raises(InvalidModelFile, match="a big-endian file"):
        inspect_gguf(path)


def test_split_file_is_refused(tmp_path: Path) -> None:
    split = _kv("split.count", V.UINT16, struct.pack("<H", 3))
    path = _write(tmp_path, _gguf([ARCH, split], [WEIGHT]))
    with pytest.raises(InvalidModelFile, match="split GGUF files are not supported"):
        inspect_gguf(path)


def test_file_without_architecture_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, _gguf([LAYERS], [WEIGHT]))
    with pytest.raises(InvalidModelFile, match="no general.architecture key"):
        inspect_gguf(path)


def test_hyperparameter_of_the_wrong_type_is_refused_naming_the_file(tmp_path: Path) -> None:
    layers = _kv("llama.block_count", V.STRING, _string("two"))
    path = _write(tmp_path, _gguf([ARCH, layers], [WEIGHT]))
    with pytest.raises(InvalidModelFile, match=f"{path}: GGUF key llama.block_count is str"):
        inspect_gguf(path)
