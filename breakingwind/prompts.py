"""Prompts are data: one file per prompt in `prompts/`, rendered with strict variables."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import jinja2

PROMPTS_DIR = Path(__file__).resolve().parent.parent / "prompts"

_environment = jinja2.Environment(
    loader=jinja2.FileSystemLoader(PROMPTS_DIR),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=False,
    autoescape=False,
)


@cache
def _template(name: str) -> jinja2.Template:
    return _environment.get_template(name)


def render_prompt(name: str, **variables: Any) -> str:
    """Render `prompts/<name>`; a variable the template uses but the caller omits is an error."""
    return _template(name).render(**variables).strip()
