from __future__ import annotations

from pathlib import Path

import pytest

from breakingwind.engine.gguf_file import inspect_gguf
from breakingwind.errors import InvalidModelFile


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
