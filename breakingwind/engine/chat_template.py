"""Turn chat messages into a prompt string with the model's own template (or a named override)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from llama_cpp import llama_chat_format

from breakingwind.errors import ModelLoadError

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
        """The prompt for `messages`; text content parts are joined into one string."""
        plain = [_with_text_content(message) for message in messages]
        kwargs: dict[str, Any] = {"messages": plain}
        if tools:
            kwargs["tools"] = tools
        response = self._format(**kwargs)
        stop = response.stop or []
        return RenderedPrompt(
            text=response.prompt,
            stop=[stop] if isinstance(stop, str) else list(stop),
            has_bos=bool(response.added_special),
        )


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
