"""The bounded tool loop agents share: the model may call read-only tools, then must answer.

A tool failure (a refused path, a missing file) is model-caused: it goes back to the model as the
tool's result text, and the loop goes on. The tool list is fixed by code per agent — a model (or a
prompt-injected file) can never reach a tool it was not given.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from breakingwind.engine import Engine, GenerationRequest
from breakingwind.engine.budget import current_budget
from breakingwind.errors import SandboxViolation, ToolError
from breakingwind.tools.registry import ToolRegistry

OnToolCall = Callable[[str, dict[str, Any], bool, str], Awaitable[None]]
OnDelta = Callable[[str], None]
RESULT_CHARS = 6000  # what one tool result may add to the conversation
GATHER_TIME_SHARE = 0.5  # share of a stage's time left for the answer after the tool turns
# Prose a tool turn may write before a call (a short "let me read X first" fits): past it, the
# model is answering instead of calling, and a gathering turn's prose is never used.
PREAMBLE_CHARS = 400


def tool_definitions(registry: ToolRegistry, names: list[str]) -> list[dict[str, Any]]:
    """OpenAI-style function tools for `names`, from the registry's own schemas."""
    described = {d.name: d for d in registry.describe()}
    return [
        {
            "type": "function",
            "function": {
                "name": name,
                "description": described[name].description,
                "parameters": described[name].input_schema,
            },
        }
        for name in names
    ]


def offered_tools(
    registry: ToolRegistry, names: list[str], max_calls: int
) -> list[dict[str, Any]] | None:
    """The tools a gathering turn renders, None when it calls none. An agent's later calls in
    the same conversation pass them too (with tool_choice "none"): the prompt then renders as the
    gathering turns did, and its long prefix is reused from the cache instead of read again."""
    return tool_definitions(registry, names) if max_calls > 0 and names else None


async def gather_with_tools(
    engine: Engine,
    agent: str,
    messages: list[dict[str, Any]],
    registry: ToolRegistry,
    tools: list[dict[str, Any]] | None,
    max_calls: int,
    on_tool_call: OnToolCall,
    on_delta: OnDelta | None = None,
    max_tokens: int = 256,
) -> list[dict[str, Any]]:
    """Let the model call `tools` (from `offered_tools`) up to `max_calls` times; return the
    grown conversation."""
    conversation = list(messages)
    if tools is None:
        return conversation
    tool_names = [tool["function"]["name"] for tool in tools]
    calls = 0
    budget = current_budget()
    # Gathering gets the first part of the stage's time; the answer keeps the rest.
    stop_at = (
        budget.opened_at + budget.seconds * (1 - GATHER_TIME_SHARE)
        if budget is not None and budget.seconds is not None
        else None
    )
    while calls < max_calls:
        try:
            async with asyncio.timeout_at(stop_at):
                result = await engine.complete(
                    agent,
                    GenerationRequest(
                        messages=conversation,
                        tools=tools,
                        tool_choice="auto",
                        tool_preamble_chars=PREAMBLE_CHARS,
                        max_tokens=max_tokens,
                        temperature=0.0,
                    ),
                    on_delta=on_delta,
                    wait_for_room=True,  # pipeline work: a full queue is waited out
                )
        except TimeoutError:
            return conversation  # out of gathering time: answer with what was gathered
        if not result.tool_calls:
            return conversation
        conversation.append(
            {
                "role": "assistant",
                "content": result.text or None,
                "tool_calls": [
                    {
                        "id": c.id,
                        "type": "function",
                        "function": {"name": c.name, "arguments": c.arguments},
                    }
                    for c in result.tool_calls
                ],
            }
        )
        for call in result.tool_calls:
            calls += 1
            text, ok = await _run(registry, call.name, call.arguments, tool_names)
            await on_tool_call(call.name, _arguments(call.arguments), ok, text[:300])
            conversation.append({"role": "tool", "tool_call_id": call.id, "content": text})
            if calls >= max_calls:
                break
    return conversation


async def _run(
    registry: ToolRegistry, name: str, raw_arguments: str, allowed: list[str]
) -> tuple[str, bool]:
    if name not in allowed:
        return f"error: the tool {name!r} is not available here", False
    try:
        result = await registry.call(name, _arguments(raw_arguments))
    except (SandboxViolation, ToolError) as exc:
        return f"error: {exc}", False
    text = result.model_dump_json()
    if len(text) <= RESULT_CHARS:
        return text, True
    # Written for the model: what it got, and how to ask for the rest.
    return (
        text[:RESULT_CHARS] + f" …(cut at {RESULT_CHARS} of {len(text)} characters: ask for less"
        " — a narrower path, a line range, a smaller max_modules, or the next modules_offset)"
    ), True


def _arguments(raw: str) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}
