"""The errors BreakingWind raises, as one small tree.

    BreakingWindError
     ├── ConfigError               config.toml / environment is invalid (exit code 2 at start-up)
     ├── RequestError              an HTTP request is wrong; carries the status and the bad field
     │    ├── InvalidRequest       400: malformed JSON, a wrong field, an unsupported option
     │    ├── Unauthorized         401: missing or wrong API key
     │    ├── Forbidden            403: foreign Origin (cross-site request)
     │    ├── ModelNotFound        404: no such model id
     │    ├── RequestTimeout       408: the body did not arrive within server.body_timeout_s
     │    ├── PayloadTooLarge      413: body over server.max_body_bytes
     │    ├── UnsupportedMediaType 415: a JSON route called with another content type
     │    ├── MisdirectedRequest   421: foreign Host header (DNS rebinding)
     │    ├── HeadersTooLarge      431: more than server.max_headers, or over max_header_bytes
     │    └── ProjectRefused       403: a project folder outside project.root/allowed_roots, a
     │                             system folder, the home folder or the data dir
     ├── ModelLoadError            a model could not be loaded
     │    ├── InvalidModelFile     not a well-formed GGUF (refused before llama.cpp sees it)
     │    └── MemoryBudgetExceeded loading would go past the configured memory budget
     ├── EngineError               a generation request could not be served
     │    ├── ModelUnavailable     the agent's model is loading or failed to load
     │    ├── QueueFull            the model's request queue is at its bound (retry later)
     │    ├── ContextOverflow      the prompt does not fit the model's context window
     │    ├── TemplateError        the chat template could not render the messages
     │    ├── EmptyPrompt          the request renders to no tokens at all (400)
     │    ├── GrammarError         a JSON schema (tools, response_format) cannot become a grammar
     │    │    └── GrammarLimitExceeded  the schema is over an engine.grammar bound (400)
     │    ├── SamplingError        a sampling option the model cannot take (logit_bias token id)
     │    ├── GenerationFailed     llama.cpp reported an error mid-generation
     │    ├── StructuredOutputError  output did not validate against its schema, even after a retry
     │    ├── TokenBudgetExhausted   a pipeline stage has generated all the tokens it may
     │    └── BackendError         a remote serving engine (backend = "openai") failed a request
     │         ├── BackendUnavailable  unreachable, connection lost, or busy (429/5xx) after retries
     │         ├── BackendTimeout      no connection or no bytes within the configured timeout
     │         ├── BackendRejected     the server refused the request (4xx, 500) with its reason
     │         └── BackendProtocolError  the answer is not the OpenAI API (malformed stream, JSON)
     ├── DownloadError             a model download failed or was refused (`models pull`)
     │    ├── HubUnreachable       offline, connection refused, timed out, or HF_HUB_OFFLINE is set
     │    ├── NotEnoughDisk        the files would not fit the free disk space (with the numbers)
     │    └── ChecksumMismatch     the downloaded bytes do not match the Hub's LFS sha256
     ├── ServiceError              the background service could not be installed or controlled
     ├── DaemonError               a running daemon answered wrongly (`doctor`'s live checks)
     │    └── DaemonUnreachable    nothing answers at its URL: not running
     ├── MediaError                audio or an image from a client cannot be used (HTTP 400)
     │    ├── UnsupportedMedia     not a format BreakingWind reads, or a source it will not open
     │    ├── MediaTooLarge        over a configured limit: bytes, seconds or pixels (HTTP 413)
     │    ├── CorruptMedia         a known format that is empty, truncated or does not decode
     │    └── MediaPathRefused     a local path outside the project root, or no such file
     ├── PipelineError             a workflow could not go on
     │    ├── TaskNotFound         404: no task with that id
     │    ├── TaskConflict         409: the task is in the wrong state for the request
     │    ├── ProjectChanged       409: the project changed since the task started (apply refused)
     │    ├── DiffError            a model-written diff does not apply (fed back to the coder)
     │    └── WorkspaceError       the task's isolated workspace could not be made or used
     ├── StoreError                the task store could not write (disk full, read-only) — 503
     │    ├── StoreInUse           another process holds the data folder's lock (exit 2 at start)
     │    ├── StoreUnreadable      the database is not SQLite, truncated or damaged (exit 2)
     │    └── TaskUnreadable       one task's stored row cannot be read — 500; others are served
     ├── SandboxViolation          a path argument breaks a sandbox rule (`rule` names which one)
     └── ToolError                 a tool call could not be served
          ├── UnknownTool          no tool is registered under that name
          ├── InvalidToolArguments the arguments do not match the tool's input schema
          ├── ToolInputRejected    well-formed but refused (missing/binary file, option-like ref)
          ├── ToolOutputTooLarge   the result is over the tool's size bound
          └── ToolFailed           the tool ran and failed (git or a parser crashed)

Constructing an exception has no side effects; callers log at the boundary. The HTTP layer maps
these to status codes by class (see `breakingwind.api`), never by message text; the MCP server
turns `SandboxViolation` and `ToolError` into tool results with `isError` and the same reason.
"""

from __future__ import annotations


class BreakingWindError(Exception):
    """Base class of every error BreakingWind raises on purpose."""


class ConfigError(BreakingWindError):
    """The settings are invalid; `problems` lists `(dotted.key, what was expected)` pairs."""

    def __init__(self, problems: list[tuple[str, str]], source: str = "config") -> None:
        self.problems = problems
        self.source = source
        lines = [f"{key}: {message}" for key, message in problems]
        super().__init__(f"invalid {source}:\n  " + "\n  ".join(lines))


class RequestError(BreakingWindError):
    """Something about an HTTP request is wrong. `param` names the offending field, if any."""

    status_code = 400
    code: str | None = None

    def __init__(self, message: str, param: str | None = None, code: str | None = None) -> None:
        self.param = param
        if code is not None:
            self.code = code
        super().__init__(message)


class InvalidRequest(RequestError):
    status_code = 400


class Unauthorized(RequestError):
    status_code = 401
    code = "invalid_api_key"


class Forbidden(RequestError):
    status_code = 403
    code = "forbidden_origin"


class ModelNotFound(RequestError):
    status_code = 404
    code = "model_not_found"


class RequestTimeout(RequestError):
    status_code = 408
    code = "request_timeout"


class PayloadTooLarge(RequestError):
    status_code = 413
    code = "payload_too_large"


class UnsupportedMediaType(RequestError):
    status_code = 415
    code = "unsupported_media_type"


class MisdirectedRequest(RequestError):
    status_code = 421
    code = "forbidden_host"


class HeadersTooLarge(RequestError):
    status_code = 431
    code = "headers_too_large"


class ProjectRefused(RequestError):
    """A folder that may not be a project (see `breakingwind.projects`)."""

    status_code = 403
    code = "project_refused"


class ModelLoadError(BreakingWindError):
    """A model file could not be loaded."""


class InvalidModelFile(ModelLoadError):
    """The file is not a well-formed GGUF."""


class MemoryBudgetExceeded(ModelLoadError):
    """Loading the model would exceed the configured memory budget."""


class EngineError(BreakingWindError):
    """A generation request could not be served."""


class ModelUnavailable(EngineError):
    """The agent's model is not ready (still loading, or failed to load)."""


class QueueFull(EngineError):
    """The model's queue is full; `retry_after_s` is a hint for the client."""

    def __init__(self, message: str, retry_after_s: int = 1) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(message)


class ContextOverflow(EngineError):
    """The prompt (plus reserved output) does not fit the context window."""

    def __init__(self, prompt_tokens: int, n_ctx: int, max_tokens: int = 0) -> None:
        self.prompt_tokens = prompt_tokens
        self.n_ctx = n_ctx
        self.max_tokens = max_tokens
        super().__init__(
            f"prompt is {prompt_tokens} tokens but the model's context window is {n_ctx} tokens"
            + (f" (with max_tokens={max_tokens} requested)" if max_tokens else "")
        )


class TemplateError(EngineError):
    """The model's chat template refused the messages (e.g. roles out of order)."""


class EmptyPrompt(EngineError):
    """The prompt (after the chat template) has no tokens: there is nothing to continue."""


class GrammarError(EngineError):
    """A JSON schema could not be turned into a sampling grammar."""


class SamplingError(EngineError):
    """A sampling option does not fit the model (a logit_bias token outside its vocabulary)."""

    def __init__(self, message: str, param: str | None = None) -> None:
        self.param = param
        super().__init__(message)


class GrammarLimitExceeded(GrammarError):
    """A schema or grammar is over one of the `engine.grammar` bounds; `limit` names it."""

    def __init__(self, message: str, limit: str, param: str | None = None) -> None:
        self.limit = limit
        self.param = param
        super().__init__(message)


class GenerationFailed(EngineError):
    """llama.cpp failed while decoding (for example the KV cache is full)."""


class StructuredOutputError(EngineError):
    """The model's output did not validate against the requested schema."""

    def __init__(self, message: str, raw_output: str) -> None:
        self.raw_output = raw_output
        super().__init__(message)


class TokenBudgetExhausted(EngineError):
    """A pipeline stage has generated as many tokens as its budget allows."""


class BackendError(EngineError):
    """A remote serving engine failed a request; the message names the agent and the server
    (never its credentials)."""


class BackendUnavailable(BackendError):
    """The server cannot be reached, dropped the connection, or stayed busy (429/503) after the
    allowed retries; `retry_after_s` is the server's own hint, when it gave one."""

    def __init__(self, message: str, retry_after_s: int | None = None) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(message)


class BackendTimeout(BackendError):
    """No connection within the connect timeout, or no bytes within the read timeout."""


class BackendRejected(BackendError):
    """The server answered an error status other than 429/503 (bad request, bad key, no model)."""

    def __init__(self, message: str, status_code: int) -> None:
        self.status_code = status_code
        super().__init__(message)


class BackendProtocolError(BackendError):
    """The server's answer does not follow the OpenAI API (malformed stream, unexpected JSON)."""


class DownloadError(BreakingWindError):
    """A model download failed or was refused; the message is one line, fit for a terminal."""


class HubUnreachable(DownloadError):
    """The Hub cannot be reached: offline, connection refused, timed out, or HF_HUB_OFFLINE."""


class NotEnoughDisk(DownloadError):
    """The download would not fit; `needed_bytes` and `free_bytes` are the numbers."""

    def __init__(self, message: str, needed_bytes: int, free_bytes: int) -> None:
        self.needed_bytes = needed_bytes
        self.free_bytes = free_bytes
        super().__init__(message)


class ChecksumMismatch(DownloadError):
    """The bytes received do not hash to the sha256 the Hub's LFS metadata promised."""


class ServiceError(BreakingWindError):
    """Installing, removing or querying the background service (launchd / systemd) failed."""


class DaemonError(BreakingWindError):
    """A running daemon answered a client request with an error; `status` is the HTTP status
    (None when the failure was not an HTTP answer, e.g. an MCP protocol error)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class DaemonUnreachable(DaemonError):
    """Nothing answers at the daemon's URL (connection refused): it is not running."""


class MediaError(BreakingWindError):
    """Client media that cannot be used; `param` names the request field when known."""

    def __init__(self, message: str, param: str | None = None) -> None:
        self.param = param
        super().__init__(message)


class UnsupportedMedia(MediaError):
    """Not a format BreakingWind reads (or a remote URL, which is never fetched)."""


class MediaTooLarge(MediaError):
    """Over a configured limit; found from the size or the header, before decoding."""


class CorruptMedia(MediaError):
    """A recognised format that is empty, truncated or fails to decode."""


class MediaPathRefused(MediaError):
    """A local file path that is outside the project root or does not exist."""


class SandboxViolation(BreakingWindError):
    """A path argument breaks one of the sandbox rules.

    `rule` is one of `SANDBOX_RULES` (for example `symlink_escape`); `argument` is the tool argument
    that carried the path. The message quotes the path as given, never what it resolved to.
    """

    def __init__(self, rule: str, argument: str, path: str, reason: str) -> None:
        self.rule = rule
        self.argument = argument
        self.path = path
        super().__init__(f"{argument}={path!r} refused by sandbox rule {rule}: {reason}")


class ToolError(BreakingWindError):
    """A tool call could not be served; `tool` names the tool when known."""

    def __init__(self, message: str, tool: str | None = None) -> None:
        self.tool = tool
        super().__init__(message)


class UnknownTool(ToolError):
    """No tool is registered under the requested name."""


class InvalidToolArguments(ToolError):
    """The arguments do not validate against the tool's input schema (the message names fields)."""


class ToolInputRejected(ToolError):
    """The arguments are well-formed but cannot be served (missing or binary file, bad ref...)."""


class ToolOutputTooLarge(ToolError):
    """The tool's result is over its configured size bound."""


class ToolFailed(ToolError):
    """The tool ran and failed for a reason outside the caller's arguments."""


class PipelineError(BreakingWindError):
    """A workflow could not go on."""


class TaskNotFound(PipelineError):
    """No task with that id."""


class TaskConflict(PipelineError):
    """The task is in the wrong state for the request (e.g. apply before it completed)."""


class ProjectChanged(PipelineError):
    """The project's files changed since the task started; applying the diff is refused."""


class DiffError(PipelineError):
    """A diff does not apply; the message is written for the model that wrote it."""


class WorkspaceError(PipelineError):
    """The task's isolated workspace could not be created or used."""


class StoreError(BreakingWindError):
    """The task store could not write (disk full, read-only data dir); nothing was announced."""


class StoreInUse(StoreError):
    """Another process (a second daemon) holds the data folder's lock."""


class StoreUnreadable(StoreError):
    """The database file is not a SQLite database, or is truncated or damaged."""


class TaskUnreadable(StoreError):
    """One task's stored row cannot be read; the rest of the store is served."""
