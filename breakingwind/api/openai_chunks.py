"""The OpenAI streaming envelope, built in one place for every OpenAI-shaped stream.

Chat completions (an agent or the whole pipeline) and completions share the chunk head (`id`,
`object`, `created`, `model`), the usage chunk and the way a failure mid-stream is reported (one
error data line, then the stream ends); a whole chat completion is built here too.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from breakingwind.api.errors import sse_error
from breakingwind.api.sse import data_line
from breakingwind.engine.types import TokenLogprob, Usage
from breakingwind.errors import BreakingWindError

log = logging.getLogger(__name__)
NO_USAGE = Usage(prompt_tokens=0, completion_tokens=0)


class Envelope:
    """The head every chunk of one response repeats, and the chunk shapes built on it."""

    def __init__(self, response_id: str, kind: str, model: str) -> None:
        self.head = {"id": response_id, "object": kind, "created": int(time.time()), "model": model}

    def chat(
        self,
        delta: dict[str, Any],
        finish: str | None = None,
        logprobs: dict[str, Any] | None = None,
    ) -> bytes:
        """A `chat.completion.chunk` with one choice."""
        choice = {"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish}
        return data_line({**self.head, "choices": [choice]})

    def text(
        self, text: str, finish: str | None = None, logprobs: dict[str, Any] | None = None
    ) -> bytes:
        """A `text_completion` chunk with one choice."""
        choice = {"index": 0, "text": text, "logprobs": logprobs, "finish_reason": finish}
        return data_line({**self.head, "choices": [choice]})

    def usage(self, usage: Usage) -> bytes:
        """The last chunk when the client asked for `stream_options.include_usage`."""
        return data_line({**self.head, "choices": [], "usage": usage_json(usage)})


def chat_completion(
    model: str,
    message: dict[str, Any],
    finish: str,
    usage: Usage,
    logprobs: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A whole (non-streamed) `chat.completion` with one choice."""
    choice = {"index": 0, "message": message, "logprobs": logprobs, "finish_reason": finish}
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [choice],
        "usage": usage_json(usage),
    }


def token_logprobs(entries: list[TokenLogprob]) -> list[dict[str, Any]]:
    """Tokens' log probabilities as chat completions' `logprobs.content` and the Responses
    API's `output_text.logprobs` both list them."""
    return [
        {
            "token": entry.token,
            "logprob": entry.logprob,
            "bytes": list(entry.bytes),
            "top_logprobs": [
                {"token": alt.token, "logprob": alt.logprob, "bytes": list(alt.bytes)}
                for alt in entry.top
            ],
        }
        for entry in entries
    ]


def chat_logprobs(entries: list[TokenLogprob]) -> dict[str, Any]:
    """A chat choice's `logprobs` object."""
    return {"content": token_logprobs(entries), "refusal": None}


def text_logprobs(entries: list[TokenLogprob], offset: int) -> dict[str, Any]:
    """A legacy completion choice's `logprobs` object; `offset`: where the first token's text
    starts in the choice's text."""
    offsets = []
    for entry in entries:
        offsets.append(offset)
        offset += len(entry.token)
    return {
        "tokens": [entry.token for entry in entries],
        "token_logprobs": [entry.logprob for entry in entries],
        "top_logprobs": [{alt.token: alt.logprob for alt in entry.top} for entry in entries],
        "text_offset": offsets,
    }


def usage_json(usage: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
    }


async def guarded(
    chunks: AsyncIterator[bytes],
    what: str,
    close: Callable[[], Awaitable[None]] | None = None,
    failure: Callable[[BaseException], bytes] = sse_error,
) -> AsyncIterator[bytes]:
    """`chunks`, with a failure turned into the protocol's error event (`failure`: one OpenAI
    error data line by default); `close` runs at the end."""
    try:
        async for chunk in chunks:
            yield chunk
    except BreakingWindError as exc:
        yield failure(exc)
    except Exception as exc:
        log.exception("%s stream failed", what)
        yield failure(exc)
    finally:
        if close is not None:
            await close()
