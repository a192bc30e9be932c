"""The coder: plan + relevant files + review feedback -> one unified diff per file."""

from __future__ import annotations

from breakingwind.agents.context import char_budget, file_excerpts
from breakingwind.agents.tool_loop import OnDelta, OnToolCall, gather_with_tools
from breakingwind.engine import Engine, generate_structured
from breakingwind.prompts import render_prompt
from breakingwind.tasks import CoderDraft, CoderOutput
from breakingwind.tools.registry import ToolRegistry

AGENT = "coder"
TOOLS = ["read_file"]


async def write_code(
    engine: Engine,
    registry: ToolRegistry,
    task: str,
    plan_json: str,
    relevant_files: list[str],
    feedback: str | None,
    iteration: int,
    max_tool_calls: int,
    on_tool_call: OnToolCall,
    on_delta: OnDelta | None = None,
) -> CoderOutput:
    """One coder iteration over the task's workspace (the registry is rooted there)."""
    n_ctx = engine.worker(AGENT).n_ctx
    messages = [
        {"role": "system", "content": render_prompt("coder.md")},
        {
            "role": "user",
            "content": render_prompt(
                "coder_task.md",
                task=task,
                plan=plan_json,
                files=await file_excerpts(registry, relevant_files, char_budget(n_ctx, 0.35)),
                feedback=feedback,
                iteration=iteration,
            ),
        },
    ]
    messages = await gather_with_tools(
        engine, AGENT, messages, registry, TOOLS, max_tool_calls, on_tool_call, on_delta
    )
    messages.append({"role": "user", "content": render_prompt("coder_answer.md")})
    draft = await generate_structured(
        engine, AGENT, messages, CoderDraft, temperature=0.0, on_delta=on_delta
    )
    return CoderOutput(**draft.model_dump(), iteration=iteration)
