"""Request body of OpenAI's Responses API (/v1/responses), as Codex CLI and the Agents SDK send it.

Stateless: `store` is accepted, `previous_response_id` is refused (clients resend the history).
Unknown fields (`truncation`, `prompt_cache_key`, `user`, ...) are accepted and ignored.
Input items are kept as loose dicts here and read one by one in `responses_routes`, so that an
item of a kind we do not serve gets an error naming it rather than a wall of union errors.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from breakingwind.api.openai_schemas import _Open


class FunctionTool(_Open):
    type: Literal["function"]
    name: str = Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$")
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class NamedFunctionChoice(_Open):
    type: Literal["function"]
    name: str


class TextFormat(_Open):
    type: Literal["text", "json_object", "json_schema"]
    name: str = "response"
    schema_: dict[str, Any] | None = Field(None, alias="schema")
    strict: bool | None = None


class TextOptions(_Open):
    format: TextFormat | None = None


LOGPROBS = "message.output_text.logprobs"


class ResponsesRequest(_Open):
    model: str = Field(min_length=1)
    input: str | list[dict[str, Any]]
    instructions: str | None = None
    tools: list[dict[str, Any]] | None = None  # function tools are offered; built-in ones are not
    tool_choice: Literal["auto", "none", "required"] | NamedFunctionChoice | None = None
    parallel_tool_calls: bool | None = None
    max_output_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    text: TextOptions | None = None
    reasoning: dict[str, Any] | None = None  # accepted: a local model reasons as it is made to
    stream: bool = False
    include: list[str] | None = None  # "message.output_text.logprobs" is served; others ignored
    top_logprobs: int | None = Field(None, ge=0, le=20)
    store: bool | None = None
    previous_response_id: str | None = None

    @property
    def wants_logprobs(self) -> bool:
        return LOGPROBS in (self.include or []) or self.top_logprobs is not None
