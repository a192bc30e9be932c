"""Before the clock starts: run each kind of request once (but the workflow), so what loads on
first use (the tools' parsers and jedi, the chat template) is not read as growth.

The KV cache is another matter: it is allocated when the model loads, but its pages count in the
RSS only once its cells are first used, and finished requests keep their cells as prefix caches
until the room is needed, so under load it fills over the first minute or so. Filling it here
with long prompts would do the same at once, but every batch then attends over the whole cache
and the run starts far slower than a daemon in use; the warm-up period covers it instead.
"""

from __future__ import annotations

import asyncio

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from breakingwind.measure.loadtest.http_requests import CODE_PREFIXES, MODEL, PROMPTS
from breakingwind.measure.loadtest.project import TOOL_CALLS

RETRIES = 30


async def prime(http: httpx2.AsyncClient, url: str) -> str:
    """Call each MCP tool once, then one chat and one completion; say what was done, or what
    failed (priming is best effort and never fails the run)."""
    try:
        async with Client(streamable_http_client(f"{url}/mcp", http_client=http)) as client:
            for tool, arguments in TOOL_CALLS.items():
                await client.call_tool(tool, arguments)
        chat = {"messages": [{"role": "user", "content": PROMPTS[0]}]}
        await _post(http, f"{url}/v1/chat/completions", chat)
        await _post(http, f"{url}/v1/completions", {"prompt": CODE_PREFIXES[0]})
    except (httpx2.HTTPError, ValueError) as exc:
        return f"priming failed ({type(exc).__name__}: {exc}); the warm-up period still applies"
    return "each MCP tool, one chat and one completion ran once"


async def _post(http: httpx2.AsyncClient, url: str, body: dict[str, object]) -> None:
    """A short generation; a 503 (back-pressure) is retried after its Retry-After."""
    body = {"model": MODEL, "max_tokens": 8, **body}
    for _ in range(RETRIES):
        answer = await http.post(url, json=body, timeout=120)
        if answer.status_code != 503:
            break
        await asyncio.sleep(float(answer.headers.get("retry-after", 1)))
    answer.raise_for_status()
