"""The preprocessor agent on the real embedded model: identifiers from OCR survive verbatim."""

from __future__ import annotations

import asyncio

from breakingwind.agents.preprocessor import identifiers, needs_cleaning, preprocess
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


def test_material_too_long_for_the_context_is_passed_through(
    engine: Engine, media: MediaService
) -> None:
    typed = "Rename reverse_words to reverse_tokens everywhere. " * 400  # far past n_ctx 2048
    image = asyncio.run(media.read_image(png_bytes(screenshot())))
    request = PreprocessorInput(typed, [], [image])
    task = asyncio.run(preprocess(engine, request))
    assert task.model_text == "" and task.material_appended
    assert task.text == request.render()


def test_typed_text_alone_is_passed_through_without_a_model_call(engine: Engine) -> None:
    before = engine.worker("preprocessor").tokens_generated
    typed = "  The mean() function in calc/ops.py gives wrong results. Fix it.\n"
    task = asyncio.run(preprocess(engine, PreprocessorInput(typed, [], [])))
    assert task.text == typed.strip() and task.passthrough
    assert task.model_text == "" and not task.material_appended
    assert engine.worker("preprocessor").tokens_generated == before


def test_rendered_screenshot_text_still_goes_to_the_model(media: MediaService) -> None:
    image = asyncio.run(media.read_image(png_bytes(screenshot())))
    rendered = PreprocessorInput("Fix this crash.", [], [image]).render()
    assert needs_cleaning(PreprocessorInput(rendered, [], []))
    assert not needs_cleaning(PreprocessorInput("Fix the crash in strings.py line 42.", [], []))
