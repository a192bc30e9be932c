"""Server-sent events helpers (`data:` lines, keep-alive comments) and JSON request bodies."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import StreamingResponse

from breakingwind.errors import InvalidRequest, UnsupportedMediaType

ModelT = TypeVar("ModelT", bound=BaseModel)
PING = b": ping\n\n"
DONE = b"data: [DONE]\n\n"
_SURROGATE = re.compile("[\ud800-\udfff]")
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def event_line(payload: dict[str, Any]) -> bytes:
    """A named SSE event (`event: <type>`), as the Responses and Messages APIs send them."""
    data = json.dumps(payload, ensure_ascii=False)
    return f"event: {payload['type']}\ndata: {data}\n\n".encode()


def event_stream_response(
    events: AsyncIterator[bytes], headers: dict[str, str] | None = None
) -> StreamingResponse:
    return StreamingResponse(
        events, media_type="text/event-stream", headers={**SSE_HEADERS, **(headers or {})}
    )


def data_line(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload, ensure_ascii=False).encode() + b"\n\n"


async def parse_json_body(request: Request, model: type[ModelT]) -> ModelT:
    """Validate a JSON request body into `model`; errors name the field (`param`)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        # Browsers send text/plain and form bodies cross-site without a preflight: refuse them.
        raise UnsupportedMediaType(
            f"expected Content-Type application/json, got {content_type or 'none'}"
        )
    body = await request.body()
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidRequest(f"request body is not valid JSON: {exc}") from None
    except RecursionError:
        raise InvalidRequest("request body is nested too deeply") from None
    if (where := lone_surrogate_at(data)) is not None:
        raise InvalidRequest(
            f"{where or 'body'}: contains a lone UTF-16 surrogate escape (such as \\ud800),"
            " which is not a character",
            param=where or None,
        )
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise invalid_request(exc) from None


def invalid_request(exc: ValidationError) -> InvalidRequest:
    """The 400 for a validation error: of a union's alternatives, the deepest error (the one
    that got furthest into the value) names the field."""
    errors = exc.errors(include_url=False)
    deepest = max(errors, key=lambda error: len(_field_path(error["loc"])))
    param = _dotted(_field_path(deepest["loc"]))
    return InvalidRequest(f"{param or 'body'}: {deepest['msg']}", param=param or None)


def _field_path(loc: tuple[int | str, ...]) -> list[int | str]:
    """`loc` without pydantic's names of union alternatives (`str`, `list[...]`, a tag)."""
    return [part for part in loc if isinstance(part, int) or not _UNION_BRANCH.search(part)]


_UNION_BRANCH = re.compile(r"^(str|int|float|bool|list|dict|none)$|[\[\](){}-]")


def lone_surrogate_at(data: Any) -> str | None:
    """The dotted path of the first string (value or key) in `data` holding a lone surrogate,
    or None. JSON allows the escape; no file name, prompt or database row can hold it."""
    todo: list[tuple[Any, tuple[int | str, ...]]] = [(data, ())]
    while todo:
        node, loc = todo.pop()
        if isinstance(node, str):
            if _SURROGATE.search(node):
                return _dotted(loc)
        elif isinstance(node, dict):
            for key, value in node.items():
                if _SURROGATE.search(key):
                    return _dotted(loc)
                todo.append((value, (*loc, key)))
        elif isinstance(node, list):
            todo.extend((item, (*loc, i)) for i, item in enumerate(node))
    return None


def _dotted(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out
