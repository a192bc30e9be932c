"""Turn chat messages into a prompt string with the model's own template (or a named override).

A GGUF's template is untrusted Jinja: llama-cpp-python's Jinja2ChatFormatter renders it in
jinja2's ImmutableSandboxedEnvironment, and whatever the sandbox refuses becomes a TemplateError.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from llama_cpp import llama_chat_format

from breakingwind.engine.tool_calls import format_for_template
from breakingwind.engine.types import ToolCallFormat
from breakingwind.errors import ModelLoadError, TemplateError
from breakingwind.prompts import render_prompt

# Named formats a user may configure as `chat_format`, for GGUFs whose embedded template is
# missing or wrong. A table, not a chain of ifs: adding one is one line.
NAMED_FORMATS: dict[str, Callable[..., llama_chat_format.ChatFormatterResponse]] = {
    "chatml": llama_chat_format.format_chatml,
    "llama-2": llama_chat_format.format_llama2,
    "llama-3": llama_chat_format.format_llama3,
    "gemma": llama_chat_format.format_gemma,
    "mistral-instruct": llama_chat_format.format_mistral_instruct,
    "qwen": llama_chat_format.format_qwen,
    "zephyr": llama_chat_format.format_zephyr,
    "alpaca": llama_chat_format.format_alpaca,
}
FALLBACK_FORMAT = "chatml"


@dataclass(frozen=True)
class RenderedPrompt:
    text: str
    stop: list[str]
    has_bos: bool  # the template wrote the BOS token itself; do not add another


class ChatTemplate:
    """Renders messages for one model. Thread-safe: rendering keeps no state."""

    def __init__(
        self, metadata: dict[str, str], bos_token: str, eos_token: str, chat_format: str | None
    ) -> None:
        self.source: str
        template_text = metadata.get("tokenizer.chat_template")
        # Native tool support: the template itself renders `tools` (and tool-call history).
        self.supports_tools = chat_format is None and "tools" in (template_text or "")
        self.tool_format: ToolCallFormat = format_for_template(template_text)
        if chat_format is not None:
            if chat_format not in NAMED_FORMATS:
                known = ", ".join(sorted(NAMED_FORMATS))
                raise ModelLoadError(f"unknown chat_format {chat_format!r}; known: {known}")
            self._format = NAMED_FORMATS[chat_format]
            self.source = chat_format
        elif "tokenizer.chat_template" in metadata:
            self._format = llama_chat_format.Jinja2ChatFormatter(
                template=metadata["tokenizer.chat_template"],
                eos_token=eos_token,
                bos_token=bos_token,
            )
            self.source = "gguf"
        else:
            self._format = NAMED_FORMATS[FALLBACK_FORMAT]
            self.source = f"{FALLBACK_FORMAT} (fallback: the GGUF has no chat template)"

    def render(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None
    ) -> RenderedPrompt:
        """The prompt for `messages` (and `tools`, offered to the model when given).

        Text content parts are joined into one string. Templates without tool support get the
        tools as a system instruction and earlier calls/results written out as text.
        """
        plain = [_with_text_content(message) for message in messages]
        kwargs: dict[str, Any] = {}
        if self.supports_tools:
            if tools:
                kwargs["tools"] = tools
        else:
            plain = [self._tool_history_as_text(message) for message in plain]
            if tools:
                plain = _with_system_instruction(
                    plain, render_prompt("tool_use.md", tools=tools, fmt=self.tool_format)
                )
        try:
            response = self._format(messages=plain, **kwargs)
        except Exception as exc:  # jinja2 errors and the template's own raise_exception()
            raise TemplateError(f"the model's chat template rejected the messages: {exc}") from None
        stop = response.stop or []
        return RenderedPrompt(
            text=response.prompt,
            stop=[stop] if isinstance(stop, str) else list(stop),
            has_bos=bool(response.added_special),
        )

    def _tool_history_as_text(self, message: dict[str, Any]) -> dict[str, Any]:
        calls = message.get("tool_calls")
        if message.get("role") == "assistant" and calls:
            written = "".join(
                self.tool_format.render_call(
                    call["function"]["name"], _arguments(call["function"].get("arguments"))
                )
                for call in calls
            )
            content = message.get("content") or ""
            return {"role": "assistant", "content": f"{content}{written}"}
        if message.get("role") == "tool":
            return {"role": "tool", "content": message.get("content") or ""}
        return message


def _arguments(raw: Any) -> Any:
    if isinstance(raw, str):
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            return raw
    return raw if raw is not None else {}


def _with_system_instruction(
    messages: list[dict[str, Any]], instruction: str
) -> list[dict[str, Any]]:
    if messages and messages[0].get("role") == "system":
        first = messages[0]
        return [{**first, "content": f"{first['content']}\n\n{instruction}"}, *messages[1:]]
    return [{"role": "system", "content": instruction}, *messages]


def _with_text_content(message: dict[str, Any]) -> dict[str, Any]:
    content = message.get("content")
    if isinstance(content, list):
        text = "".join(
            part.get("text", "")
            for part in content
            if isinstance(part, dict) and part.get("type") == "text"
        )
        return {**message, "content": text}
    if content is None:
        return {**message, "content": ""}
    return message
