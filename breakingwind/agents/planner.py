"""The planner: task + repo map (+ read-only tool queries) -> a Plan.

The model answers a `PlanAnswer`: the stored `Plan` with every string and list bounded for the
planner's job, and `relevant_files` limited to the project's real files by the call's schema.
When no valid plan comes (invalid twice, or the stage's tokens are spent), `fallback_plan` makes
the task itself the one step, so the pipeline goes on and says why.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from breakingwind.agents.context import char_budget, repo_map
from breakingwind.agents.tool_loop import OnDelta, OnToolCall, gather_with_tools, offered_tools
from breakingwind.engine import Engine, generate_structured
from breakingwind.engine.structured import ATTEMPTS
from breakingwind.prompts import render_prompt
from breakingwind.tasks import CodebaseContext, Plan, TaskItem
from breakingwind.tools.files import project_files
from breakingwind.tools.registry import ToolRegistry

AGENT = "planner"
READ_ONLY_TOOLS = ["read_file", "search_docs", "find_references", "analyze_codebase"]
MAX_STEPS = 3
MAX_FILES = 6
MAX_FILE_CHOICES = 200  # paths in the relevant_files enum
STEP_CHARS = 160
NOTE_CHARS = 200
TEST_CHARS = 120
ANSWER_TOKENS = 700  # above what a PlanAnswer at its bounds takes in typical tokens
TOOL_TURN_TOKENS = 256
StepId = Annotated[str, Field(pattern="^[1-9]$")]


def planner_budget(max_tool_calls: int) -> int:
    """The plan stage's token budget: the tool loop plus every attempt at the answer."""
    return TOOL_TURN_TOKENS * (max_tool_calls + 1) + ATTEMPTS * ANSWER_TOKENS


class StepAnswer(TaskItem):
    id: StepId
    description: str = Field(min_length=1, max_length=STEP_CHARS)
    dependencies: list[StepId] = Field(default_factory=list, max_length=MAX_STEPS - 1)


class ContextAnswer(CodebaseContext):
    relevant_files: list[str] = Field(default_factory=list, max_length=MAX_FILES)
    architecture_notes: str = Field(max_length=NOTE_CHARS)
    test_requirements: list[Annotated[str, Field(max_length=TEST_CHARS)]] = Field(
        default_factory=list, max_length=2
    )


class PlanAnswer(Plan):
    """What the model writes: a Plan bounded for the job."""

    task_breakdown: list[StepAnswer] = Field(min_length=1, max_length=MAX_STEPS)
    codebase_context: ContextAnswer


def answer_schema(paths: list[str]) -> dict[str, Any]:
    """PlanAnswer's JSON schema with relevant_files limited to `paths` (when there are any)."""
    schema = PlanAnswer.model_json_schema()
    if paths:
        files = schema["$defs"]["ContextAnswer"]["properties"]["relevant_files"]
        files["items"] = {"enum": paths[:MAX_FILE_CHOICES]}
    return schema


def fallback_plan(task: str, paths: list[str], reason: str) -> Plan:
    """The task as the one step, when the planner gave no usable plan."""
    return Plan(
        task_breakdown=[
            TaskItem(
                id="1",
                description=task[:STEP_CHARS],
                priority="high",
                estimated_complexity="medium",
            )
        ],
        codebase_context=CodebaseContext(
            relevant_files=paths[:MAX_FILES],
            architecture_notes=f"no plan from the planner ({reason[:NOTE_CHARS]})",
        ),
    )


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
    tools = offered_tools(registry, READ_ONLY_TOOLS, max_tool_calls)
    messages = await gather_with_tools(
        engine, AGENT, messages, registry, tools, max_tool_calls, on_tool_call, on_delta
    )
    messages.append({"role": "user", "content": render_prompt("planner_answer.md")})
    answer = await generate_structured(
        engine,
        AGENT,
        messages,
        PlanAnswer,
        json_schema=answer_schema(project_paths(registry)),
        max_tokens=ANSWER_TOKENS,
        temperature=0.0,
        on_delta=on_delta,
        tools=tools,
    )
    return Plan.model_validate(answer.model_dump())


def project_paths(registry: ToolRegistry) -> list[str]:
    """The project's files, as the tools see them."""
    sandbox = registry.context.sandbox
    found = (file.relative for file in project_files(sandbox, sandbox.root))
    return [path for path in found if ".git" not in path.split("/")]
