"""llama.cpp's log lines reach Python logging at their own level: information is DEBUG."""

from __future__ import annotations

import logging
from pathlib import Path

import llama_cpp
import pytest

from breakingwind.engine import llama_logs


def test_ggml_levels_map_to_python_levels() -> None:
    levels = [llama_logs.python_level(level) for level in (1, 2, 3, 4)]
    assert levels == [logging.DEBUG, logging.DEBUG, logging.WARNING, logging.ERROR]


def test_a_continued_line_keeps_the_level_it_continues() -> None:
    llama_logs.python_level(3)
    assert llama_logs.python_level(llama_logs.GGML_CONT) == logging.WARNING
    llama_logs.python_level(2)
    assert llama_logs.python_level(llama_logs.GGML_CONT) == logging.DEBUG


def test_loading_a_model_logs_its_information_lines_at_debug(
    embedded_gguf: Path, caplog: pytest.LogCaptureFixture
) -> None:
    llama_logs.install()
    caplog.set_level(logging.DEBUG, logger="llama.cpp")
    llm = llama_cpp.Llama(str(embedded_gguf), n_ctx=256, n_threads=1, verbose=False)
    llm.close()
    lines = [record for record in caplog.records if record.name == "llama.cpp"]
    assert any(
        "llama_context: n_ctx" in record.getMessage() and record.levelno == logging.DEBUG
        for record in lines
    )
    assert [record.getMessage() for record in lines if record.levelno > logging.DEBUG] == []
