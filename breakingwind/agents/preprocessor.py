"""The preprocessor agent: typed text, speech transcripts and screenshot text merged into one
task statement for the planner.

A small model may mangle or drop code. So the output is checked: every identifier-like token in
the source material (file names, paths, dotted and snake_case names, CamelCase exception names,
`line N`) must appear verbatim in the model's text. When any is missing, or the model wrote
nothing, or the material does not fit its context, the source material itself is appended under a
"Request material (verbatim)" heading. Nothing the developer said or showed is lost; the model's
wording is kept only as a summary on top.

Typed text alone needs no cleaning (it is the developer's own words, with nothing misheard or
misread), so it is passed through without a model call; text that holds rendered speech
transcripts or screenshot text (`needs_cleaning`) goes to the model. The model's reply is bounded
relative to the material: a task statement is never much longer than what it restates.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from breakingwind.engine import Engine, GenerationRequest
from breakingwind.errors import ContextOverflow
from breakingwind.media import PreprocessorInput
from breakingwind.prompts import render_prompt

AGENT = "preprocessor"
CHARS_PER_TOKEN = 3
PASSTHROUGH = "typed text only: passed through as written, without a model call"
# Headings of prompts/preprocessor_sources.md under which media text is rendered.
_MEDIA_HEADING = re.compile(r"^## (Spoken request|Screenshot) \d+ \(", re.MULTILINE)
_IDENTIFIER = re.compile(
    r"""
      \b[A-Za-z_]\w+(?:\.[A-Za-z_]\w+)+\b      # dotted names and files: os.path.join, x.py
    | [\w~/\\-]*\w\.[A-Za-z]\w{1,4}\b(?::\d+)?  # paths: /app/strings.py, app/x.py:42
    | \b_*[A-Za-z]\w*_\w+\b                      # snake_case
    | \b[a-z]+[A-Z]\w*\b                          # camelCase
    | \b[A-Z][a-z0-9]+[A-Z]\w*\b                  # CamelCase: TypeError
    | \bline\ \d+\b                               # traceback line numbers
    """,
    re.VERBOSE,
)


@dataclass(frozen=True)
class PreprocessedTask:
    text: str  # the task statement handed to the planner
    model_text: str  # what the model wrote ("" when it could not run)
    missing: list[str]  # identifiers of the material that the model's text dropped
    material_appended: bool  # the verbatim material follows the model's text
    passthrough: str | None = None  # why no model was asked, when none was


async def preprocess(
    engine: Engine,
    request: PreprocessorInput,
    max_tokens: int | None = None,
    on_delta: Callable[[str], None] | None = None,
) -> PreprocessedTask:
    """Merge the request into one task statement, guaranteeing identifiers survive verbatim;
    `on_delta` sees the model's text as it is generated."""
    if not needs_cleaning(request):
        return PreprocessedTask(request.typed_text.strip(), "", [], False, PASSTHROUGH)
    material = request.render()
    bound = output_budget(material)
    max_tokens = bound if max_tokens is None else min(max_tokens, bound)
    messages = [
        {"role": "system", "content": render_prompt("preprocessor.md")},
        {"role": "user", "content": material},
    ]
    try:
        result = await engine.complete(
            AGENT,
            GenerationRequest(messages=messages, max_tokens=max_tokens, temperature=0.0),
            on_delta=on_delta,
            wait_for_room=True,  # pipeline work: a full queue is waited out within the stage
        )
        model_text = result.text.strip()
    except ContextOverflow:
        model_text = ""
    missing = [name for name in identifiers(material) if name not in model_text]
    if model_text and not missing:
        return PreprocessedTask(model_text, model_text, [], material_appended=False)
    text = f"{model_text}\n\n{material}" if model_text else material
    return PreprocessedTask(text, model_text, missing, material_appended=True)


def needs_cleaning(request: PreprocessorInput) -> bool:
    """Whether the request holds speech or screenshot text (given, or already rendered)."""
    return bool(request.transcripts or request.images or _MEDIA_HEADING.search(request.typed_text))


def output_budget(material: str) -> int:
    """Tokens the task statement may take: about the material's length, plus room for a summary."""
    return len(material) // CHARS_PER_TOKEN + 64


def identifiers(text: str) -> list[str]:
    """Identifier-like tokens of `text`, in order of first appearance."""
    return list(dict.fromkeys(match.group(0) for match in _IDENTIFIER.finditer(text)))
