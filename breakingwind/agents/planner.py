"""The planner: task + repo map (+ read-only tool queries) -> a Plan."""

from __future__ import annotations

from breakingwind.agents.context import char_budget, repo_map
from breakingwind.agents.tool_loop import OnDelta, OnToolCall, gather_with_tools
from breakingwind.engine import Engine, generate_structured
from breakingwind.prompts import render_prompt
from breakingwind.tasks import Plan
from breakingwind.tools.registry import ToolRegistry

AGENT = "planner"
READ_ONLY_TOOLS = ["read_file", "search_docs", "find_references", "analyze_codebase"]


async def make_plan(
    engine: Engine,
    registry: ToolRegistry,
    task: str,
    failure_history: list[str],
    max_tool_calls: int,
    on_tool_call: OnToolCall,
    on_delta: OnDelta | None = None,
) -> Plan:
    """Plan `task`; on escalation `failure_history` says what went wrong so far."""
    n_ctx = engine.worker(AGENT).n_ctx
    messages = [
        {"role": "system", "content": render_prompt("planner.md")},
        {
            "role": "user",
            "content": render_prompt(
                "planner_task.md",
                task=task,
                repo_map=await repo_map(registry, char_budget(n_ctx, 0.3)),
                failures=failure_history[-6:],
            ),
        },
    ]
    messages = await gather_with_tools(
        engine, AGENT, messages, registry, READ_ONLY_TOOLS, max_tool_calls, on_tool_call, on_delta
    )
    messages.append({"role": "user", "content": render_prompt("planner_answer.md")})
    return await generate_structured(
        engine, AGENT, messages, Plan, temperature=0.0, on_delta=on_delta
    )
