"""The coder: plan + relevant files + review feedback -> edits, stored as one unified diff per file.

A local model edits through the constrained steps of `agents/edits.py` (target, line range,
replacement after the forced original lines), so every edit applies by construction. A remote
model (no GBNF) answers with JSON whose paths are limited to the project's files by the schema;
its diffs go through the tolerant applier, and one that does not apply is fed back.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from breakingwind.agents.context import char_budget, file_excerpts
from breakingwind.agents.edits import (
    UPDATED_MARK,
    Edit,
    EditTargets,
    apply_edit,
    count_lines,
    edit_diff,
    edit_targets,
    file_lines,
    numbered,
    parse_range,
    parse_replacement,
    parse_target,
    range_grammar,
    replacement_grammar,
    replacement_prefix,
    target_grammar,
    valid_new_path,
)
from breakingwind.agents.tool_loop import OnDelta, OnToolCall, gather_with_tools, offered_tools
from breakingwind.engine import Engine, GenerationRequest, generate_structured
from breakingwind.engine.budget import current_budget
from breakingwind.errors import TokenBudgetExhausted
from breakingwind.prompts import render_prompt
from breakingwind.tasks import CoderDraft, CoderOutput, FileChange
from breakingwind.tools.registry import ToolRegistry

AGENT = "coder"
TOOLS = ["read_file"]
MAX_EDITS = 3  # edits per iteration (local models)
TARGET_TOKENS = 48  # a path, `new <path>` or DONE
RANGE_TOKENS = 12  # START-END
REPLACEMENT_TOKENS = 640  # the new lines of one edit
# What one iteration may generate: the tool loop plus every step of every edit (a JSON answer
# of a remote model fits in the same budget).
TOOL_TURN_TOKENS = 256


def coder_budget(max_tool_calls: int) -> int:
    """The coder stage's token budget for one iteration."""
    edits = MAX_EDITS * (TARGET_TOKENS + RANGE_TOKENS + REPLACEMENT_TOKENS) + TARGET_TOKENS
    return TOOL_TURN_TOKENS * (max_tool_calls + 1) + edits


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
    local = engine.worker(AGENT).backend == "local"
    targets = edit_targets(registry.context.sandbox, relevant_files)
    messages = [
        {"role": "system", "content": render_prompt("coder_edit.md" if local else "coder.md")},
        {
            "role": "user",
            "content": render_prompt(
                "coder_task.md",
                task=task,
                plan=plan_json,
                files=await file_excerpts(registry, relevant_files, char_budget(n_ctx, 0.3)),
                feedback=feedback,
                iteration=iteration,
            ),
        },
    ]
    tools = offered_tools(registry, TOOLS, max_tool_calls)
    messages = await gather_with_tools(
        engine, AGENT, messages, registry, tools, max_tool_calls, on_tool_call, on_delta
    )
    if local:
        session = EditSession(engine, registry, targets, messages, tools, n_ctx, on_delta)
        return await session.run(iteration)
    messages.append({"role": "user", "content": render_prompt("coder_answer.md")})
    draft = await generate_structured(
        engine,
        AGENT,
        messages,
        CoderDraft,
        json_schema=_draft_schema(targets.paths),
        temperature=0.0,
        on_delta=on_delta,
        tools=tools,
    )
    return CoderOutput(**draft.model_dump(), iteration=iteration, edits=len(draft.files_modified))


def _draft_schema(paths: list[str]) -> dict[str, Any]:
    """CoderDraft's JSON schema with each path one of `paths` or a new, well-formed path."""
    schema = CoderDraft.model_json_schema()
    schema["$defs"]["FileChangeDraft"]["properties"]["path"] = {
        "anyOf": [
            {"enum": paths},
            {"type": "string", "pattern": "^[A-Za-z0-9_][A-Za-z0-9_./-]*$", "maxLength": 120},
        ]
    }
    return schema


@dataclass
class EditSession:
    """The constrained edit steps of one local coder iteration."""

    engine: Engine
    registry: ToolRegistry
    targets: EditTargets
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] | None  # rendered as the tool loop rendered them, never called
    n_ctx: int
    on_delta: OnDelta | None
    original: dict[str, str | None] = field(default_factory=dict)  # None: a new file
    current: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    async def run(self, iteration: int) -> CoderOutput:
        edits: list[Edit] = []
        attempts = 0
        try:
            while attempts < MAX_EDITS:
                attempts += 1
                path = await self._choose_target(len(edits))
                if path is None:
                    break
                refused = self._load(path)
                if refused:
                    self.notes.append(f"{path}: {refused}")
                    self.messages.append({"role": "user", "content": f"{path}: {refused}."})
                    continue
                edit = await self._edit(path)
                self.current[path] = apply_edit(self.current[path], edit)
                edits.append(edit)
                self.messages.append(
                    {
                        "role": "assistant",
                        "content": render_prompt(
                            "coder_edit_done.md",
                            number=len(edits),
                            path=path,
                            start=edit.start,
                            end=edit.end,
                            count=len(edit.new),
                        ),
                    }
                )
        except TokenBudgetExhausted as exc:
            self.notes.append(f"stopped editing: {exc}")
        except TimeoutError:
            self.notes.append("stopped editing: the stage's time for edits ran out")
        return self._output(iteration, edits)

    async def _choose_target(self, edits_made: int) -> str | None:
        refused = sorted(self.targets.refused.items())[:20]
        prompt = render_prompt(
            "coder_target.md", edits_made=edits_made, paths=self.targets.paths, refused=refused
        )
        grammar = target_grammar(self.targets.paths, allow_done=edits_made > 0)
        answer = await self._ask(prompt, grammar, TARGET_TOKENS)
        return parse_target(answer.text)

    def _load(self, path: str) -> str | None:
        """Read `path` (or start it empty, if new) unless already loaded; else why it cannot be."""
        if path in self.current:
            return None
        sandbox = self.registry.context.sandbox
        if path in self.targets.paths:
            text = (sandbox.root / path).read_text(encoding="utf-8")
            self.original[path] = self.current[path] = text
            return None
        if path in self.targets.refused:
            return f"not editable: {self.targets.refused[path]}"
        if not valid_new_path(path) or sandbox.is_secret(path):
            return "not a path a new file may have"
        parts = path.split("/")
        parents = [sandbox.root.joinpath(*parts[:i]) for i in range(1, len(parts))]
        if any(parent.exists() and not parent.is_dir() for parent in parents):
            return "a folder of this path is a file"
        if (sandbox.root / path).exists():
            return "the path exists but is not a file that may be edited"
        self.original[path] = None
        self.current[path] = ""
        return None

    async def _edit(self, path: str) -> Edit:
        text = self.current[path]
        total = count_lines(text)
        start, end = 1, 0
        if total:
            lines = file_lines(text)[:total]
            shown = lines_within(lines, char_budget(self.n_ctx, 0.25))
            prompt = render_prompt(
                "coder_range.md",
                path=path,
                text=numbered(lines[:shown]),
                shown=shown,
                total=total,
            )
            answer = await self._ask(prompt, range_grammar(total), RANGE_TOKENS)
            start, end = parse_range(answer.text, total)
        original = file_lines(text)[start - 1 : end]
        created = self.original[path] is None
        prompt = render_prompt("coder_replace.md", path=path, start=start, end=end, created=created)
        answer = await self._ask(
            prompt,
            replacement_grammar(),
            REPLACEMENT_TOKENS,
            prefix=replacement_prefix(path, start, end, original),
            stop=[UPDATED_MARK],
        )
        complete = answer.finish_reason == "stop" and not answer.looped
        if answer.looped:
            self.notes.append(f"{path} {start}-{end}: the replacement was cut, it began to loop")
        elif answer.finish_reason == "length":
            self.notes.append(f"{path} {start}-{end}: the replacement was cut at its token limit")
        new = parse_replacement(answer.text, complete, answer.looped)
        return Edit(path, start, end, new, created=created)

    async def _ask(
        self,
        prompt: str,
        grammar: str | None,
        max_tokens: int,
        prefix: str = "",
        stop: list[str] | None = None,
    ) -> Any:
        budget = current_budget()
        async with asyncio.timeout_at(budget.deadline if budget else None):
            return await self._complete(prompt, grammar, max_tokens, prefix, stop)

    async def _complete(
        self, prompt: str, grammar: str | None, max_tokens: int, prefix: str, stop: list[str] | None
    ) -> Any:
        return await self.engine.complete(
            AGENT,
            GenerationRequest(
                messages=[*self.messages, {"role": "user", "content": prompt}],
                tools=self.tools,
                tool_choice="none",
                grammar=grammar,
                max_tokens=max_tokens,
                temperature=0.0,
                assistant_prefix=prefix,
                stop=stop or [],
            ),
            on_delta=self.on_delta,
            wait_for_room=True,  # pipeline work: a full queue is waited out within the stage
        )

    def _output(self, iteration: int, edits: list[Edit]) -> CoderOutput:
        changes = []
        for path, before in self.original.items():
            diff = edit_diff(path, before, self.current[path])
            if not diff:
                continue
            ranges = ", ".join(f"{e.start}-{e.end}" for e in edits if e.path == path)
            reasoning = f"{'created' if before is None else 'replaced lines ' + ranges}"
            changes.append(FileChange(path=path, diff=diff, reasoning=reasoning))
        if not changes and edits:
            self.notes.append("the edits left every file as it was")
        tests = [c.path for c in changes if self.original[c.path] is None and "test" in c.path]
        return CoderOutput(
            iteration=iteration,
            files_modified=changes,
            tests_created=tests,
            status="complete" if changes else "blocked",
            edits=len(edits),
            notes=self.notes,
        )


def lines_within(lines: list[str], budget: int) -> int:
    """How many leading lines fit in `budget` characters (at least one)."""
    used = 0
    for count, line in enumerate(lines):
        used += len(line) + 8
        if used > budget:
            return max(count, 1)
    return len(lines)
