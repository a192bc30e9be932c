"""A gathering tool turn ends once the model writes prose instead of calling a tool: its prose is
never used, and a small model otherwise fills the turn's whole token limit with it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from breakingwind.agents.tool_loop import PREAMBLE_CHARS
from breakingwind.engine import Engine, GenerationRequest
from breakingwind.engine.scripted import ScriptedModel
from tests.conftest import make_settings
from tests.pipeline_fixtures import gather_one_call, tool_call

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def gather(tmp_path: Path, answer: str) -> tuple[list[dict[str, Any]], list[str], ScriptedModel]:
    root = tmp_path / "project"
    root.mkdir()
    (root / "notes.txt").write_text("hello\n")
    settings = make_settings(tmp_path, environ={"BREAKINGWIND_PROJECT_ROOT": str(root)})
    conversation, calls, planner = gather_one_call(
        settings, "read_file", "What is in notes.txt?", answer
    )
    return conversation, [name for name, _ in calls], planner


def test_a_call_after_a_short_preamble_is_made(tmp_path: Path) -> None:
    conversation, called, planner = gather(
        tmp_path, "Let me read the file first. " + tool_call("read_file", path="notes.txt")
    )
    assert called == ["read_file"] and conversation[-1]["role"] == "tool"
    assert planner.requests[0].tool_preamble_chars == PREAMBLE_CHARS


def test_prose_past_the_preamble_ends_the_turn_without_a_call(tmp_path: Path) -> None:
    prose = "The notes file probably holds a greeting, as notes often do. " * 10
    assert len(prose) > PREAMBLE_CHARS
    conversation, called, _ = gather(tmp_path, prose + tool_call("read_file", path="notes.txt"))
    assert called == [] and [m["role"] for m in conversation] == ["user"]


def test_the_embedded_model_stops_soon_after_its_preamble(engine: Engine) -> None:
    def story(preamble: int | None) -> Any:
        request = GenerationRequest(
            messages=[{"role": "user", "content": "Write a long story about a dragon."}],
            tools=[WEATHER],
            tool_choice="auto",
            tool_preamble_chars=preamble,
            max_tokens=200,
            temperature=0,
            ignore_eos=True,
        )
        return asyncio.run(engine.complete("coder", request))

    whole, cut = story(None), story(120)
    assert not whole.tool_calls and whole.usage.completion_tokens == 200
    assert not cut.tool_calls and cut.finish_reason == "stop"
    assert 120 < len(cut.text) < 200
    assert cut.usage.completion_tokens < 60
