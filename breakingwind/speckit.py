"""spec-kit integration: IDE command files and the specify → plan → implement steps.

Follows github/spec-kit's layout: feature folders `specs/NNN-short-name/` holding `spec.md`,
`plan.md` and `tasks.md` (tasks as `- [ ] T001 …` checkboxes), and per-agent command files
(`.claude/commands/speckit.specify.md`, `.github/prompts/speckit.specify.prompt.md`, …) with a
`description:` front matter and `$ARGUMENTS`. Files that spec-kit itself (or a person) wrote are
never replaced unless asked to: only files carrying our marker are rewritten.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from breakingwind.agents.planner import make_plan
from breakingwind.agents.preprocessor import preprocess
from breakingwind.errors import InvalidRequest
from breakingwind.media import PreprocessorInput
from breakingwind.prompts import render_prompt
from breakingwind.runtime import Runtime
from breakingwind.tasks import Plan, TaskItem, TaskState

MARKER = "written by `breakingwind speckit init`; edits are replaced by the next init"
SPECS = "specs"
_FEATURE = re.compile(r"^(\d{3})-[\w.-]+$")
_TASK = re.compile(
    r"^(?P<head>\s*[-*] \[)(?P<mark>[ xX])(?P<tail>\]\s+)(?P<id>T\d+)\b\s*(?P<text>.*)$"
)
_STOPWORDS = frozenset(
    "a an the and or of to for in on with by from into that this it is be as at make "
    "i we want need should so can let lets please".split()
)


@dataclass(frozen=True)
class AgentLayout:
    """Where one IDE agent reads its slash commands (spec-kit's own conventions)."""

    folder: str
    suffix: str


AGENTS: dict[str, AgentLayout] = {
    "claude": AgentLayout(".claude/commands", ".md"),
    "cursor": AgentLayout(".cursor/commands", ".md"),
    "windsurf": AgentLayout(".windsurf/workflows", ".md"),
    "copilot": AgentLayout(".github/prompts", ".prompt.md"),
}


@dataclass(frozen=True)
class Command:
    name: str
    description: str
    argument: str
    optional: bool
    outcome: str


COMMANDS: tuple[Command, ...] = (
    Command(
        "specify",
        "Create a feature specification from a natural language description, with"
        " BreakingWind's local preprocessor and planner.",
        '"$ARGUMENTS"',
        False,
        "It writes `specs/NNN-short-name/spec.md` and prints its path.",
    ),
    Command(
        "plan",
        "Plan the current feature with BreakingWind's local planner: plan.md and tasks.md.",
        "$ARGUMENTS",
        True,
        "It writes `plan.md` and `tasks.md` (`- [ ] T001 …`) in the feature folder"
        " (`$ARGUMENTS` may name it, e.g. `001-photo-albums`; default: the newest).",
    ),
    Command(
        "implement",
        "Implement the open tasks of tasks.md with BreakingWind's coder and reviewer agents.",
        "$ARGUMENTS",
        True,
        "Each open task runs through the coder ⇄ reviewer pipeline; a task is ticked `- [x]`"
        " only when its review passed with green tests and its change was applied.",
    ),
)


@dataclass(frozen=True)
class WrittenFile:
    path: Path
    action: str  # "written", "updated", "kept" (not ours: left alone)


@dataclass(frozen=True)
class SpecTask:
    task_id: str
    description: str
    done: bool
    line: int


@dataclass(frozen=True)
class TaskOutcome:
    task_id: str
    ticked: bool
    reason: str


# --- init ---------------------------------------------------------------------------------


def command_file_text(command: Command) -> str:
    """One command file in spec-kit's Markdown format, telling the agent to run our CLI."""
    return (
        render_prompt(
            "speckit_command.md",
            description=command.description,
            marker=MARKER,
            command=command.name,
            argument=command.argument,
            optional=command.optional,
            outcome=command.outcome,
        )
        + "\n"
    )


def install_commands(root: Path, agents: list[str], force: bool = False) -> list[WrittenFile]:
    """Write the three command files for each agent; a file we did not write is kept unless
    `force`."""
    written = []
    for agent in agents:
        layout = AGENTS[agent]
        for command in COMMANDS:
            path = root / layout.folder / f"speckit.{command.name}{layout.suffix}"
            written.append(_write_owned(path, command_file_text(command), force))
    return written


def _write_owned(path: Path, text: str, force: bool) -> WrittenFile:
    if path.exists():
        if MARKER not in path.read_text(errors="replace") and not force:
            return WrittenFile(path, "kept")
        path.write_text(text)
        return WrittenFile(path, "updated")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return WrittenFile(path, "written")


# --- feature folders ----------------------------------------------------------------------


def short_name(description: str, words: int = 4) -> str:
    """A folder-friendly name from the description's first significant words."""
    tokens = [t for t in re.findall(r"[a-z0-9]+", description.lower()) if t not in _STOPWORDS]
    return "-".join(tokens[:words]) or "feature"


def new_feature_dir(project: Path, description: str) -> Path:
    """`specs/NNN-short-name` with NNN one above the highest number in use."""
    numbers = [int(m.group(1)) for d in _feature_dirs(project) if (m := _FEATURE.match(d.name))]
    return project / SPECS / f"{max(numbers, default=0) + 1:03d}-{short_name(description)}"


def find_feature(project: Path, feature: str | None) -> Path:
    """The feature folder named by `feature` (`001`, `001-name` or a path); default the newest."""
    folders = _feature_dirs(project)
    if feature is None:
        if not folders:
            raise InvalidRequest(f"no feature folders in {project / SPECS}; run specify first")
        return folders[-1]
    as_path = Path(feature)
    if as_path.is_absolute() or len(as_path.parts) > 1:
        candidate = as_path if as_path.is_absolute() else project / as_path
        if candidate.is_dir():
            return candidate.resolve()
    for folder in folders:
        if folder.name == feature or folder.name.startswith(f"{feature}-"):
            return folder
    raise InvalidRequest(f"no feature {feature!r} in {project / SPECS}", param="feature")


def _feature_dirs(project: Path) -> list[Path]:
    specs = project / SPECS
    if not specs.is_dir():
        return []
    return sorted(d for d in specs.iterdir() if d.is_dir() and _FEATURE.match(d.name))


# --- specify and plan ---------------------------------------------------------------------


async def _no_event(name: str, arguments: dict, ok: bool, summary: str) -> None:
    return None


async def specify(runtime: Runtime, project: Path, description: str) -> Path:
    """Requirement analysis (preprocessor, then the planner without tools) into a new spec.md."""
    if not description.strip():
        raise InvalidRequest("the feature description is empty", param="description")
    engine = runtime.engine
    task = await preprocess(engine, PreprocessorInput(description, [], []))
    plan = await make_plan(engine, runtime.registry(project), task.text, [], 0, _no_event)
    folder = new_feature_dir(project, description)
    folder.mkdir(parents=True)
    (folder / "spec.md").write_text(render_spec(folder.name, description, task.text, plan))
    return folder


async def plan_feature(runtime: Runtime, project: Path, feature: str | None) -> Path:
    """The planner, with its read-only tool queries, over spec.md: writes plan.md and tasks.md."""
    folder = find_feature(project, feature)
    spec = folder / "spec.md"
    if not spec.is_file():
        raise InvalidRequest(f"{spec} is missing; run specify first", param="feature")
    task = render_prompt("speckit_plan_task.md", feature=folder.name, spec=spec.read_text())
    plan = await make_plan(
        runtime.engine,
        runtime.registry(project),
        task,
        [],
        runtime.settings.pipeline.planner_max_tool_calls,
        _no_event,
    )
    steps = _numbered_steps(plan.task_breakdown)
    context = plan.codebase_context
    title = _title(folder)
    (folder / "plan.md").write_text(
        render_prompt(
            "speckit_plan.md",
            title=title,
            feature=folder.name,
            created=date.today().isoformat(),
            notes=context.architecture_notes,
            files=context.relevant_files,
            tasks=steps,
            tests=context.test_requirements,
        )
        + "\n"
    )
    (folder / "tasks.md").write_text(
        render_prompt("speckit_tasks.md", title=title, feature=folder.name, tasks=steps) + "\n"
    )
    return folder


def render_spec(feature: str, description: str, overview: str, plan: Plan) -> str:
    ranks = {"high": 1, "medium": 2, "low": 3}
    ordered = _dependency_order(plan.task_breakdown)
    names = {item.id: f"User Story {n}" for n, item in enumerate(ordered, 1)}
    stories = [
        {
            **item.model_dump(),
            "rank": ranks[item.priority],
            "dependencies": [names[d] for d in item.dependencies if d in names and d != item.id],
        }
        for item in ordered
    ]
    return (
        render_prompt(
            "speckit_spec.md",
            title=description.strip().splitlines()[0][:80],
            feature=feature,
            created=date.today().isoformat(),
            description=description.strip().replace('"', "'"),
            overview=overview,
            stories=stories,
            files=plan.codebase_context.relevant_files,
            tests=plan.codebase_context.test_requirements,
        )
        + "\n"
    )


def _numbered_steps(items: list[TaskItem]) -> list[dict]:
    """The plan's steps in dependency order, numbered T001…, dependencies renamed to match."""
    ordered = _dependency_order(items)
    names = {item.id: f"T{n:03d}" for n, item in enumerate(ordered, 1)}
    return [
        {
            "id": names[item.id],
            "description": " ".join(item.description.split()),
            "priority": item.priority,
            "complexity": item.estimated_complexity,
            "after": [names[d] for d in item.dependencies if d in names and d != item.id],
        }
        for item in ordered
    ]


def _dependency_order(items: list[TaskItem]) -> list[TaskItem]:
    """A stable topological order; a dependency cycle keeps the planner's order for the rest."""
    known = {item.id for item in items}
    done: set[str] = set()
    ordered: list[TaskItem] = []
    pending = list(items)
    while pending:
        ready = [i for i in pending if all(d in done or d not in known for d in i.dependencies)]
        batch = ready[:1] or pending[:1]
        ordered += batch
        done.update(i.id for i in batch)
        pending = [i for i in pending if i not in batch]
    return ordered


def _title(folder: Path) -> str:
    spec = folder / "spec.md"
    if spec.is_file():
        first = spec.read_text().splitlines()[:1]
        if first and first[0].startswith("# Feature Specification:"):
            return first[0].split(":", 1)[1].strip()
    return folder.name


# --- implement ----------------------------------------------------------------------------


def read_tasks(tasks_md: Path) -> list[SpecTask]:
    """The checkbox tasks (`- [ ] T001 …`) of a tasks.md, in file order."""
    tasks = []
    for number, line in enumerate(tasks_md.read_text().splitlines()):
        if match := _TASK.match(line):
            tasks.append(SpecTask(match["id"], match["text"].strip(), match["mark"] != " ", number))
    return tasks


def tick_task(tasks_md: Path, task: SpecTask) -> None:
    """Mark `task` done (`- [x]`), changing nothing else in the file."""
    lines = tasks_md.read_text().splitlines(keepends=True)
    match = _TASK.match(lines[task.line])
    if match is None or match["id"] != task.task_id:
        raise InvalidRequest(f"{tasks_md} changed while {task.task_id} was running")
    lines[task.line] = f"{match['head']}x{match['tail']}{lines[task.line][match.end('tail') :]}"
    tasks_md.write_text("".join(lines))


def implement_task_text(folder: Path, task: SpecTask) -> str:
    plan = folder / "plan.md"
    return render_prompt(
        "speckit_implement_task.md",
        task_id=task.task_id,
        feature=folder.name,
        description=task.description,
        plan=plan.read_text()[:6000] if plan.is_file() else "(no plan.md)",
    )


def implement_feature(
    folder: Path,
    run_task: Callable[[str], TaskState],
    echo: Callable[[str], None],
    keep_going: bool = False,
) -> list[TaskOutcome]:
    """Run one workflow (with apply) per open task of tasks.md, in order; tick a task only when
    its workflow completed (approved, green tests) and its diff was applied to the project.

    Stops at the first task that is not ticked unless `keep_going`."""
    tasks_md = folder / "tasks.md"
    if not tasks_md.is_file():
        raise InvalidRequest(f"{tasks_md} is missing; run plan first", param="feature")
    outcomes = []
    for task in [t for t in read_tasks(tasks_md) if not t.done]:
        echo(f"{task.task_id}: {task.description}\n")
        state = run_task(implement_task_text(folder, task))
        outcome = _outcome(task, state)
        if outcome.ticked:
            tick_task(tasks_md, task)
        echo(f"{task.task_id}: {'done' if outcome.ticked else 'not done'}: {outcome.reason}\n")
        outcomes.append(outcome)
        if not outcome.ticked and not keep_going:
            break
    return outcomes


def _outcome(task: SpecTask, state: TaskState) -> TaskOutcome:
    report = state.final_output
    if state.current_stage == "complete" and report is not None and report.applied_to_project:
        return TaskOutcome(task.task_id, True, f"approved and applied (task {state.task_id})")
    if state.current_stage == "complete":
        return TaskOutcome(
            task.task_id, False, f"approved, but its diff was not applied (task {state.task_id})"
        )
    reason = state.error_message or state.current_stage
    issues = report.open_issues[:3] if report else []
    detail = "; ".join([reason, *issues])
    return TaskOutcome(task.task_id, False, f"{detail} (task {state.task_id})")
