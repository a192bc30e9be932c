"""Errors to HTTP: one table from exception class to status, looked up through the MRO.

Every error body is OpenAI-shaped, `{"error": {"message", "type", "param", "code"}}`, so IDE
clients show the message; except on Anthropic's Messages API (/v1/messages...), whose clients
read Anthropic's envelope, `{"type": "error", "error": {"type", "message"}}` (with our `param`
and `code` added). No traceback ever reaches a client; unexpected exceptions
are logged here, at the boundary.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from breakingwind.errors import (
    BackendProtocolError,
    BackendRejected,
    BackendTimeout,
    BackendUnavailable,
    BreakingWindError,
    ContextOverflow,
    CorruptMedia,
    EmptyPrompt,
    EngineError,
    GrammarError,
    GrammarLimitExceeded,
    HeadersTooLarge,
    InvalidToolArguments,
    MediaError,
    MediaPathRefused,
    MediaTooLarge,
    ModelUnavailable,
    ProjectChanged,
    QueueFull,
    RequestError,
    RequestTimeout,
    SamplingError,
    SandboxViolation,
    StoreError,
    StructuredOutputError,
    TaskConflict,
    TaskNotFound,
    TaskUnreadable,
    TemplateError,
    ToolError,
    ToolFailed,
    ToolInputRejected,
    ToolOutputTooLarge,
    UnknownTool,
    UnsupportedMedia,
    WorkspaceError,
)

log = logging.getLogger(__name__)

# class -> (HTTP status, OpenAI error type, code). The most specific class in the MRO wins.
ERROR_TABLE: dict[type[BaseException], tuple[int, str, str | None]] = {
    ContextOverflow: (400, "invalid_request_error", "context_length_exceeded"),
    TemplateError: (400, "invalid_request_error", "invalid_messages"),
    EmptyPrompt: (400, "invalid_request_error", "empty_prompt"),
    GrammarLimitExceeded: (400, "invalid_request_error", "schema_too_large"),
    GrammarError: (400, "invalid_request_error", "invalid_schema"),
    SamplingError: (400, "invalid_request_error", "invalid_sampling"),
    SandboxViolation: (403, "invalid_request_error", "sandbox_violation"),
    TaskNotFound: (404, "invalid_request_error", "task_not_found"),
    TaskConflict: (409, "invalid_request_error", "task_conflict"),
    ProjectChanged: (409, "invalid_request_error", "project_changed"),
    WorkspaceError: (500, "server_error", "workspace_error"),
    StoreError: (503, "server_error", "storage_unavailable"),
    TaskUnreadable: (500, "server_error", "task_unreadable"),
    UnknownTool: (404, "invalid_request_error", "unknown_tool"),
    InvalidToolArguments: (422, "invalid_request_error", "invalid_tool_arguments"),
    ToolInputRejected: (422, "invalid_request_error", "tool_input_rejected"),
    ToolOutputTooLarge: (413, "invalid_request_error", "tool_output_too_large"),
    ToolFailed: (500, "server_error", "tool_failed"),
    ToolError: (400, "invalid_request_error", "tool_error"),
    MediaTooLarge: (413, "invalid_request_error", "media_too_large"),
    UnsupportedMedia: (400, "invalid_request_error", "unsupported_media"),
    CorruptMedia: (400, "invalid_request_error", "corrupt_media"),
    MediaPathRefused: (400, "invalid_request_error", "media_path_refused"),
    MediaError: (400, "invalid_request_error", "invalid_media"),
    QueueFull: (503, "server_error", "queue_full"),
    ModelUnavailable: (503, "server_error", "model_unavailable"),
    StructuredOutputError: (500, "server_error", "invalid_model_output"),
    BackendUnavailable: (503, "server_error", "backend_unavailable"),
    BackendTimeout: (504, "server_error", "backend_timeout"),
    BackendRejected: (502, "server_error", "backend_rejected"),
    BackendProtocolError: (502, "server_error", "backend_protocol_error"),
    EngineError: (500, "server_error", "generation_failed"),
    BreakingWindError: (500, "server_error", None),
}


def error_body(exc: BaseException) -> tuple[int, dict[str, Any], dict[str, str]]:
    """The status, OpenAI-shaped body and extra headers for `exc`."""
    headers: dict[str, str] = {}
    if isinstance(exc, RequestError):
        status = exc.status_code
        kind = "invalid_request_error" if status < 500 else "server_error"
        if status == 401:
            kind = "authentication_error"
        body = _body(str(exc), kind, exc.param, exc.code)
    else:
        status, kind, code = next(
            (ERROR_TABLE[cls] for cls in type(exc).__mro__ if cls in ERROR_TABLE),
            (500, "server_error", None),
        )
        message = str(exc) if isinstance(exc, BreakingWindError) else "internal server error"
        body = _body(message, kind, getattr(exc, "param", None), code)
    if isinstance(exc, RequestTimeout | HeadersTooLarge):
        headers["Connection"] = "close"  # the rest of the request may still be coming: stop here
    if isinstance(exc, QueueFull):
        headers["Retry-After"] = str(exc.retry_after_s)
    if isinstance(exc, BackendUnavailable) and exc.retry_after_s is not None:
        headers["Retry-After"] = str(exc.retry_after_s)
    if isinstance(exc, SandboxViolation):
        body["error"]["rule"] = exc.rule
    if isinstance(exc, GrammarLimitExceeded):
        body["error"]["limit"] = exc.limit
    if isinstance(exc, ContextOverflow):
        body["error"]["prompt_tokens"] = exc.prompt_tokens
        body["error"]["context_length"] = exc.n_ctx
    return status, body, headers


ANTHROPIC_PATH = "/v1/messages"
# HTTP status -> Anthropic's error type (anything else is "api_error").
ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
    529: "overloaded_error",
}


def anthropic_error_body(exc: BaseException) -> tuple[int, dict[str, Any], dict[str, str]]:
    """As `error_body`, in Anthropic's envelope."""
    status, body, headers = error_body(exc)
    error = body["error"]
    error["type"] = ANTHROPIC_TYPES.get(status, "api_error")
    return status, {"type": "error", "error": error}, headers


def error_response(exc: BaseException, path: str = "") -> Response:
    """The error response for `exc` on `path`, in the shape of that route's protocol."""
    shape = anthropic_error_body if path.startswith(ANTHROPIC_PATH) else error_body
    status, body, headers = shape(exc)
    return JSONResponse(body, status_code=status, headers=headers)


def sse_error(exc: BaseException) -> bytes:
    """A mid-stream failure as one SSE data line (the stream ends after it)."""
    _, body, _ = error_body(exc)
    return b"data: " + json.dumps(body).encode() + b"\n\n"


async def handle_breakingwind_error(request: Request, exc: Exception) -> Response:
    quiet = RequestError | MediaError | SandboxViolation | ToolError | TaskNotFound | TaskConflict
    if not isinstance(exc, quiet):
        log.warning(
            "%s %s failed: %s: %s", request.method, request.url.path, type(exc).__name__, exc
        )
    return error_response(exc, request.url.path)


async def handle_unexpected_error(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return error_response(exc, request.url.path)


def _body(message: str, kind: str, param: str | None, code: str | None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


EXCEPTION_HANDLERS = {
    BreakingWindError: handle_breakingwind_error,
    Exception: handle_unexpected_error,
}
