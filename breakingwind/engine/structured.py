"""Structured output: a JSON-schema grammar constrains sampling, pydantic has the last word.

The grammar alone is not trusted (DESIGN.md: it let raw newlines into strings on the chat path),
and it cannot express every pydantic constraint, so each reply is validated. An invalid reply is
sent back to the model once with the validation errors; a second failure raises
`StructuredOutputError` carrying the raw output.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from breakingwind.engine.engine import Engine
from breakingwind.engine.grammars import json_schema_grammar
from breakingwind.engine.output import retry_messages
from breakingwind.engine.types import GenerationRequest
from breakingwind.errors import StructuredOutputError

ModelT = TypeVar("ModelT", bound=BaseModel)
ATTEMPTS = 2


@cache
def grammar_for(schema: type[BaseModel]) -> str:
    """The GBNF grammar of `schema`'s JSON schema (cached per class)."""
    return json_schema_grammar(schema.model_json_schema())


async def generate_structured(
    engine: Engine,
    agent: str,
    messages: list[dict[str, Any]],
    schema: type[ModelT],
    *,
    max_tokens: int | None = None,
    temperature: float | None = None,
    seed: int | None = None,
    on_delta: Callable[[str], None] | None = None,
    json_schema: dict[str, Any] | None = None,
    tools: list[dict[str, Any]] | None = None,
) -> ModelT:
    """Ask `agent` for a `schema` instance; retry once with the errors, then raise.

    `json_schema` narrows `schema`'s own JSON schema for this call (e.g. paths limited to the
    project's real files): sampling follows it, and the reply is validated against `schema`.
    `tools`: the tools the conversation was gathered with; shown, never callable here.
    """
    if json_schema is None:
        json_schema, grammar = schema.model_json_schema(), grammar_for(schema)
    else:
        grammar = json_schema_grammar(json_schema)
    conversation = list(messages)
    raw = ""
    errors = ""
    for _ in range(ATTEMPTS):
        result = await engine.complete(
            agent,
            GenerationRequest(
                messages=conversation,
                grammar=grammar,
                json_schema=json_schema,
                max_tokens=max_tokens,
                temperature=temperature,
                seed=seed,
                tools=tools,
                tool_choice="none",
            ),
            on_delta=on_delta,
            wait_for_room=True,  # pipeline work: a full queue is waited out within the stage
        )
        raw = result.text
        try:
            return schema.model_validate_json(raw)
        except ValidationError as exc:
            errors = _describe(exc, truncated=result.finish_reason == "length")
            if result.looped:
                errors += "\n- the reply began repeating itself and was stopped; do not repeat"
        conversation = retry_messages(messages, raw, schema.__name__, errors)
    raise StructuredOutputError(
        f"{agent}: output did not match {schema.__name__} after {ATTEMPTS} attempts: {errors}",
        raw_output=raw,
    )


def _describe(exc: ValidationError, truncated: bool) -> str:
    lines = [
        f"- {'.'.join(map(str, e['loc'])) or '(root)'}: {e['msg']}"
        for e in exc.errors(include_url=False)
    ]
    if truncated:
        lines.append("- the reply was cut off at the token limit; keep it shorter")
    return "\n".join(lines)
