"""The preprocessor agent on the real embedded model: identifiers from OCR survive verbatim."""

from __future__ import annotations

import asyncio

from breakingwind.agents.preprocessor import identifiers, preprocess
from breakingwind.engine import Engine
from breakingwind.media import MediaService, PreprocessorInput
from tests.media_files import TRACEBACK_LINES, png_bytes, screenshot

OCR_IDENTIFIERS = ("TypeError", "/home/dev/app/strings.py", "line 42", "reverse_words")


def test_traceback_identifiers_are_found() -> None:
    found = identifiers("\n".join(TRACEBACK_LINES))
    assert set(OCR_IDENTIFIERS) | {"separator.join"} <= set(found)
    assert "Traceback" not in found and "sequence" not in found


def test_ocr_identifiers_survive_preprocessing(engine: Engine, media: MediaService) -> None:
    image = asyncio.run(media.read_image(png_bytes(screenshot())))
    request = PreprocessorInput("Fix the crash in this screenshot.", [], [image])
    task = asyncio.run(preprocess(engine, request, max_tokens=160))
    assert all(name in task.text for name in OCR_IDENTIFIERS), task.text
    # Honest bookkeeping: the material is appended exactly when the model dropped something.
    assert task.material_appended == bool(task.missing)
    assert all(name not in task.model_text for name in task.missing)


def test_material_too_long_for_the_context_is_passed_through(engine: Engine) -> None:
    typed = "Rename reverse_words to reverse_tokens everywhere. " * 400  # far past n_ctx 2048
    task = asyncio.run(preprocess(engine, PreprocessorInput(typed, [], [])))
    assert task.model_text == "" and task.material_appended
    assert task.text == PreprocessorInput(typed, [], []).render()
