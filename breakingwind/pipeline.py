"""The workflow state machine: preprocess → plan → code ⇄ review → (escalate once) → done.

Each stage reads the task's state, does its work and commits the next state together with the
event that announces it (`TaskStore.commit`), so after a crash a task resumes at the stage it was
in, with everything before it intact; the workspace is rebuilt from its snapshot plus the diffs
recorded as applied. What a model got wrong — a diff that does not apply, invalid output, failing
tests — becomes feedback for the next cycle; what broke — an engine failure, a timeout, a full disk
— ends the task `failed` with the reason and a report.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from contextvars import Token
from pathlib import Path
from typing import Any

from breakingwind.agents.coder import coder_budget, write_code
from breakingwind.agents.planner import fallback_plan, make_plan, planner_budget, project_paths
from breakingwind.agents.preprocessor import preprocess
from breakingwind.agents.reviewer import REVIEW_BUDGET, review_changes
from breakingwind.config import Settings
from breakingwind.diffs import apply_file_changes
from breakingwind.engine import Engine
from breakingwind.engine.budget import TokenBudget, token_budget
from breakingwind.engine.engine import prompt_observer
from breakingwind.errors import (
    BreakingWindError,
    DiffError,
    InvalidRequest,
    ProjectChanged,
    ProjectRefused,
    SandboxViolation,
    StoreError,
    StructuredOutputError,
    TaskConflict,
    TaskNotFound,
    TokenBudgetExhausted,
    ToolError,
    WorkspaceError,
)
from breakingwind.media import PreprocessorInput
from breakingwind.projects import allowed_project
from breakingwind.store import TaskStore
from breakingwind.tasks import (
    CoderOutput,
    FinalReport,
    Iteration,
    Review,
    ReviewDraft,
    ReviewTestResults,
    TaskState,
    TestSummary,
    WorkflowOptions,
)
from breakingwind.tools.registry import ToolRegistries, ToolRegistry
from breakingwind.tools.run_tests import RunTestsResult
from breakingwind.tools.sandbox import Sandbox
from breakingwind.workspace import (
    Workspace,
    apply_to_project,
    create_workspace,
    project_fingerprint,
    remove_orphan,
    remove_workspace,
)

log = logging.getLogger(__name__)
# The task whose stage is running, in that task's asyncio context (and the calls it makes).
current_task: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "current_task", default=None
)
TOKEN_FLUSH_S = 0.25
TOKEN_FLUSH_CHARS = 2000
# The agents get this share of a stage's time limit; the rest is left for what follows them
# (a fallback plan, applying the diff, recording the review), so a slow model degrades the
# stage instead of failing the task.
AGENT_TIME_SHARE = 0.85


class Pipeline:
    """Runs workflows as asyncio tasks; state lives in the store, models in the engine."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        store: TaskStore,
        registries: ToolRegistries | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.store = store
        self.registries = registries or ToolRegistries(settings)
        self.test_observers: list[Callable[[float], None]] = []  # seconds of each test run
        self._running: dict[str, asyncio.Task[None]] = {}
        self._cancelling: set[str] = set()
        self._applying: set[str] = set()
        self._workspaces: dict[str, Workspace] = {}
        self._stages: dict[str, Callable[[TaskState], Awaitable[None]]] = {
            "preprocess": self._preprocess,
            "plan": self._plan,
            "code": self._code,
            "review": self._review,
        }

    # --- control -------------------------------------------------------------------------

    def submit(
        self, user_input: str, project: Path | None = None, options: WorkflowOptions | None = None
    ) -> TaskState:
        """Create a task and start it; returns at once."""
        root = allowed_project(project, self.settings)
        if not user_input.strip():
            raise InvalidRequest("the task is empty", param="input")
        state = self.store.create(user_input, root, options or WorkflowOptions())
        self._start(state.task_id)
        return state

    def sweep_workspaces(self) -> list[Path]:
        """At start-up, remove the workspaces no running task will use: those of finished tasks
        (kept only with `keep_workspaces`) and of tasks the store does not know (a crash between
        making a workspace and recording it). Returns what was removed. Blocks: git."""
        parent = self._workspaces_dir()
        if not parent.is_dir():
            return []
        removed = []
        for path in sorted(parent.iterdir()):
            try:
                state = self.store.get(path.name)
            except TaskNotFound:
                remove_orphan(path)
                removed.append(path)
                continue
            if state.finished and not self.settings.pipeline.keep_workspaces:
                remove_workspace(Path(state.project), path)
                removed.append(path)
        return removed

    def resume_unfinished(self) -> list[str]:
        """Restart every task that was running when the daemon stopped."""
        resumed = []
        for state in self.store.unfinished():
            self.store.add_event(state.task_id, "resumed", {"stage": state.current_stage})
            self._start(state.task_id)
            resumed.append(state.task_id)
        return resumed

    async def cancel(self, task_id: str) -> TaskState:
        state = self.store.get(task_id)
        if state.finished:
            raise TaskConflict(f"task {task_id} already ended ({state.current_stage})")
        task = self._running.get(task_id)
        if task is None:
            self._finish(state, "cancelled", "cancelled", {"stage": state.current_stage})
            await self._release(task_id)
        else:
            self._cancelling.add(task_id)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        return self.store.get(task_id)

    def cancel_soon(self, task_id: str) -> None:
        """Start cancelling a running task without waiting for it (its client hung up); the
        task records `cancelled` as `cancel` does. A task that is not running is left alone."""
        task = self._running.get(task_id)
        if task is not None and not task.done():
            self._cancelling.add(task_id)
            task.cancel()

    async def apply(self, task_id: str) -> TaskState:
        """Apply a completed task's diff to the project, if the project did not change since."""
        state = self.store.get(task_id)
        if state.current_stage != "complete" or state.final_output is None:
            raise TaskConflict(f"task {task_id} is {state.current_stage}, not complete")
        if state.final_output.applied_to_project:
            raise TaskConflict(f"task {task_id}'s diff was already applied")
        if task_id in self._applying:  # a second apply while the first is still writing
            raise TaskConflict(f"task {task_id}'s diff is being applied")
        self._applying.add(task_id)
        try:
            return await self._apply_final(state)
        finally:
            self._applying.discard(task_id)

    async def wait(self, task_id: str) -> TaskState:
        task = self._running.get(task_id)
        if task is not None:
            await asyncio.gather(task, return_exceptions=True)
        return self.store.get(task_id)

    async def shutdown(self) -> None:
        """Stop running tasks without ending them: they resume at the next start."""
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _start(self, task_id: str) -> None:
        task = asyncio.get_running_loop().create_task(self._run(task_id), name=f"task-{task_id}")
        self._running[task_id] = task
        task.add_done_callback(lambda _: self._running.pop(task_id, None))

    # --- the state machine ---------------------------------------------------------------

    async def _run(self, task_id: str) -> None:
        current_task.set(task_id)  # this asyncio task's own context: observers read it
        try:
            while not (state := self.store.get(task_id)).finished:
                limit = state.options.stage_timeout_s or self.settings.pipeline.stage_timeout_s
                stage = state.current_stage
                try:
                    async with asyncio.timeout(limit):
                        await self._stages[stage](state)
                except TimeoutError:
                    self._fail(self.store.get(task_id), f"stage {stage} timed out after {limit}s")
        except asyncio.CancelledError:
            if task_id in self._cancelling:
                self._cancelling.discard(task_id)
                state = self.store.get(task_id)
                self._finish(state, "cancelled", "cancelled", {"stage": state.current_stage})
            raise
        except StoreError:
            log.exception("task %s stopped: its state could not be saved", task_id)
        except BreakingWindError as exc:
            self._fail(self.store.get(task_id), f"{type(exc).__name__}: {exc}")
        except Exception as exc:
            log.exception("task %s failed unexpectedly", task_id)
            self._fail(self.store.get(task_id), f"internal error: {type(exc).__name__}: {exc}")
        finally:
            await self._release(task_id)

    async def _release(self, task_id: str) -> None:
        """Forget a task's in-memory state; once it has ended, remove its workspace too (unless
        `keep_workspaces`). What `apply` needs (the final diff, the fingerprint) is in the store.
        A task stopped by shutdown keeps its workspace: it resumes at the next start."""
        workspace = self._workspaces.pop(task_id, None)
        if workspace is not None:
            self.registries.release(workspace.path)
        try:
            state = self.store.get(task_id)
        except BreakingWindError:
            return
        if not state.finished or state.workspace is None or self.settings.pipeline.keep_workspaces:
            return
        path = Path(state.workspace)
        try:
            await asyncio.shield(asyncio.to_thread(remove_workspace, Path(state.project), path))
        except (OSError, BreakingWindError):
            log.warning("could not remove the workspace %s; it goes at the next start", path)

    async def _preprocess(self, state: TaskState) -> None:
        self._started(state, "preprocess")
        with (
            TokenEvents(self.store, state.task_id, "preprocessor") as tokens,
            self._token_budget(state, self.settings.preprocessor.max_tokens) as budget,
        ):
            result = await preprocess(
                self.engine, PreprocessorInput(state.user_input, [], []), on_delta=tokens.add
            )
        self._stage_finished(state, "preprocess", budget, passthrough=result.passthrough)
        self.store.commit(
            state.model_copy(update={"preprocessed_text": result.text, "current_stage": "plan"})
        )

    async def _plan(self, state: TaskState) -> None:
        workspace, state = await self._workspace(state)
        if state.escalations:
            await asyncio.to_thread(workspace.reset)  # a new plan starts from the snapshot
        self._started(state, "plan")
        history = self._failure_history(state) if state.escalations else []
        registry = self._registry(workspace.path)
        calls = self.settings.pipeline.planner_max_tool_calls
        fallback = None
        with (
            TokenEvents(self.store, state.task_id, "planner") as tokens,
            self._token_budget(state, planner_budget(calls)) as budget,
        ):
            try:
                async with asyncio.timeout_at(budget.deadline):
                    plan = await make_plan(
                        self.engine,
                        registry,
                        self._task_text(state),
                        history,
                        calls,
                        self._tool_call_event(state, "planner"),
                        tokens.add,
                    )
            except (StructuredOutputError, TokenBudgetExhausted, TimeoutError) as exc:
                fallback = str(exc)[:400] or "the planner ran out of time"
                paths = await asyncio.to_thread(project_paths, registry)
                plan = fallback_plan(self._task_text(state), paths, fallback)
        self._stage_finished(state, "plan", budget, fallback=fallback)
        self.store.commit(
            state.model_copy(
                update={
                    "plan": plan,
                    "plans": [*state.plans, plan],
                    "current_stage": "code",
                    "cycle": 0,
                }
            ),
            "plan",
            {"plan": plan.model_dump(mode="json"), "escalation": state.escalations},
        )

    async def _code(self, state: TaskState) -> None:
        workspace, state = await self._workspace(state)
        self._started(state, "code")
        assert state.plan is not None
        registry = self._registry(workspace.path)
        output: CoderOutput | None = None
        error: str | None = None
        calls = self.settings.pipeline.coder_max_tool_calls
        with (
            TokenEvents(self.store, state.task_id, "coder") as tokens,
            self._token_budget(state, coder_budget(calls)) as budget,
        ):
            try:
                async with asyncio.timeout_at(budget.deadline):
                    output = await write_code(
                        self.engine,
                        registry,
                        self._task_text(state),
                        state.plan.model_dump_json(indent=1),
                        state.plan.codebase_context.relevant_files,
                        self._feedback(state),
                        len(state.code_iterations) + 1,
                        calls,
                        self._tool_call_event(state, "coder"),
                        tokens.add,
                    )
            except (TimeoutError, TokenBudgetExhausted) as exc:
                # Out of time or tokens is not a wrong answer: the unchanged workspace still
                # gets its test run and review, whose findings feed the next iteration.
                reason = str(exc) or "the coder ran out of time"
                output = CoderOutput(
                    iteration=len(state.code_iterations) + 1, status="blocked", notes=[reason]
                )
            except StructuredOutputError as exc:
                error = f"your reply was not valid JSON for the required schema: {exc}"
        self._stage_finished(state, "code", budget)
        applied = ""
        if output is not None:
            changes = [(change.path, change.diff) for change in output.files_modified]
            try:
                result = await asyncio.to_thread(
                    apply_file_changes, self._sandbox(workspace), changes
                )
                applied = "\n".join(diff for _, diff in changes)
                files = result.files
            except DiffError as exc:
                error, files = f"the diff did not apply: {exc}", []
        iteration = Iteration(
            cycle=state.cycle + 1,
            escalation=state.escalations,
            output=output,
            applied=error is None,
            diff=applied,
            error=error,
        )
        edits = output.edits if output is not None else 0
        event = {
            "iteration": len(state.code_iterations) + 1,
            "applied": error is None,
            "files": files if error is None else [],
            "diff": applied,
            "error": error,
            "edits": edits,
            "edits_applied": edits if error is None else 0,
            "notes": output.notes if output is not None else [],
        }
        state = state.model_copy(update={"code_iterations": [*state.code_iterations, iteration]})
        if error is None:
            self.store.commit(state.model_copy(update={"current_stage": "review"}), "diff", event)
            return
        self.store.add_event(state.task_id, "diff", event)
        self._rejected(
            state.model_copy(update={"cycle": state.cycle + 1}), [error], escalate_now=False
        )

    async def _review(self, state: TaskState) -> None:
        workspace, state = await self._workspace(state)
        self._started(state, "review")
        tests = await self._run_tests(workspace)
        self.store.add_event(state.task_id, "test_results", tests.model_dump(mode="json"))
        diff = await asyncio.to_thread(workspace.diff)
        assert state.plan is not None
        with (
            TokenEvents(self.store, state.task_id, "reviewer") as tokens,
            self._token_budget(state, REVIEW_BUDGET) as budget,
        ):
            try:
                async with asyncio.timeout_at(budget.deadline):
                    draft = await review_changes(
                        self.engine,
                        self._task_text(state),
                        state.plan.model_dump_json(indent=1),
                        diff,
                        _tests_report(tests),
                        tokens.add,
                    )
            except (StructuredOutputError, TokenBudgetExhausted, TimeoutError) as exc:
                draft = ReviewDraft(
                    review_status="changes_requested",
                    issues_found=[f"the review could not be read: {exc}"],
                )
        self._stage_finished(state, "review", budget)
        review = _checked_review(draft, tests, changed=bool(diff.strip()))
        state = state.model_copy(
            update={
                "review_results": [*state.review_results, review],
                "test_results": [*state.test_results, tests],
            }
        )
        if review.review_status == "approved":
            report = FinalReport(
                summary=_summary(state, review),
                diff=diff,
                test_results=tests,
                open_issues=review.recommendations,
            )
            if state.options.apply:
                # Applied before the end is announced, so that the terminal event a client sees
                # is the task's terminal state: `failed` when the project changed meanwhile.
                try:
                    await self._apply_to_project(state, report.diff)
                except (ProjectChanged, ProjectRefused, WorkspaceError) as exc:
                    self.store.add_event(state.task_id, "review", review.model_dump(mode="json"))
                    self._fail(state, f"approved, but not applied: {exc}", [str(exc)])
                    return
                report = report.model_copy(update={"applied_to_project": True})
            state = state.model_copy(update={"final_output": report})
            self._finish(
                state,
                "complete",
                "completed",
                {"report": report.model_dump(mode="json")},
                review_event=review,
            )
            return
        self.store.add_event(state.task_id, "review", review.model_dump(mode="json"))
        issues = review.issues_found + ([review.next_iteration] if review.next_iteration else [])
        self._rejected(
            state.model_copy(update={"cycle": state.cycle + 1}),
            issues,
            escalate_now=review.review_status == "escalate",
        )

    # --- transitions ---------------------------------------------------------------------

    def _rejected(self, state: TaskState, issues: list[str], escalate_now: bool) -> None:
        """A cycle ended without approval: code again, escalate once, or fail with a report."""
        limit = state.options.max_review_cycles or self.settings.pipeline.max_review_cycles
        if state.cycle < limit and not escalate_now:
            self.store.commit(state.model_copy(update={"current_stage": "code"}))
            return
        if state.escalations == 0:
            reason = (
                f"{state.cycle} cycles without approval"
                if not escalate_now
                else "the reviewer asked for a new plan"
            )
            self.store.commit(
                state.model_copy(update={"current_stage": "plan", "escalations": 1, "cycle": 0}),
                "escalated",
                {"reason": reason, "issues": issues},
            )
            return
        self._fail(
            state, f"no approved change after {state.cycle} cycles and one escalation", issues
        )

    def _fail(self, state: TaskState, reason: str, issues: list[str] | None = None) -> None:
        best = max(
            (i for i, t in enumerate(state.test_results)),
            key=lambda i: state.test_results[i].passed - state.test_results[i].failed,
            default=None,
        )
        report = FinalReport(
            summary=f"Failed: {reason}",
            diff=self._current_diff(state),
            test_results=state.test_results[best] if best is not None else None,
            open_issues=issues or [i for r in state.review_results[-1:] for i in r.issues_found],
        )
        state = state.model_copy(update={"final_output": report, "error_message": reason})
        self._finish(
            state, "failed", "failed", {"error": reason, "report": report.model_dump(mode="json")}
        )

    def _finish(
        self,
        state: TaskState,
        stage: str,
        event: str,
        data: dict[str, Any],
        review_event: Review | None = None,
    ) -> None:
        if review_event is not None:
            self.store.add_event(state.task_id, "review", review_event.model_dump(mode="json"))
        self.store.commit(state.model_copy(update={"current_stage": stage}), event, data)

    def _started(self, state: TaskState, stage: str) -> None:
        self.store.add_event(
            state.task_id,
            "stage_started",
            {
                "stage": stage,
                "cycle": state.cycle + (1 if stage in ("code", "review") else 0),
                "escalation": state.escalations,
            },
        )

    def _token_budget(self, state: TaskState, limit: int) -> AbstractContextManager[TokenBudget]:
        """The token budget of one stage run (engine/budget.py): the configured repetition guard,
        and the agents' share of the stage's time limit."""
        seconds = state.options.stage_timeout_s or self.settings.pipeline.stage_timeout_s
        return token_budget(
            limit, self.settings.pipeline.repetition_guard, seconds * AGENT_TIME_SHARE
        )

    def _stage_finished(
        self, state: TaskState, stage: str, budget: TokenBudget, **extra: Any
    ) -> None:
        """Record what a stage run generated against its budget (and any notes on it)."""
        self.store.add_event(
            state.task_id,
            "stage_finished",
            {
                "stage": stage,
                "tokens": budget.used,
                "budget": budget.limit,
                "seconds": round(time.monotonic() - budget.opened_at, 3),
                **{key: value for key, value in extra.items() if value is not None},
            },
        )

    async def _apply_to_project(self, state: TaskState, diff: str) -> None:
        assert state.base_fingerprint is not None
        await asyncio.to_thread(
            apply_to_project,
            allowed_project(state.project, self.settings),
            diff,
            state.base_fingerprint,
            self.settings.storage.data_dir,
        )

    async def _apply_final(self, state: TaskState) -> TaskState:
        assert state.final_output is not None
        await self._apply_to_project(state, state.final_output.diff)
        report = state.final_output.model_copy(update={"applied_to_project": True})
        self.store.commit(state.model_copy(update={"final_output": report}))
        return self.store.get(state.task_id)

    # --- helpers -------------------------------------------------------------------------

    async def _workspace(self, state: TaskState) -> tuple[Workspace, TaskState]:
        """The task's workspace; made on first use, rebuilt (snapshot + the diffs recorded as
        applied under the current plan) after a restart, so it matches the recorded state."""
        if state.task_id in self._workspaces:
            return self._workspaces[state.task_id], state
        project = Path(state.project)
        if state.base_fingerprint is None:
            fingerprint = await asyncio.to_thread(
                project_fingerprint, project, self.settings.storage.data_dir
            )
            state = state.model_copy(update={"base_fingerprint": fingerprint})
        parent = self._workspaces_dir()
        workspace = await asyncio.to_thread(
            create_workspace, project, parent, state.task_id, self.settings.storage.data_dir
        )
        for iteration in state.code_iterations:
            if iteration.applied and iteration.escalation == state.escalations and iteration.output:
                changes = [(c.path, c.diff) for c in iteration.output.files_modified]
                await asyncio.to_thread(apply_file_changes, self._sandbox(workspace), changes)
        state = state.model_copy(update={"workspace": str(workspace.path)})
        self.store.commit(state)
        self._workspaces[state.task_id] = workspace
        return workspace, state

    def _workspaces_dir(self) -> Path:
        return self.settings.storage.data_dir / "workspaces"

    def _registry(self, root: Path) -> ToolRegistry:
        return self.registries.get(root)

    def _sandbox(self, workspace: Workspace) -> Sandbox:
        return Sandbox.create(workspace.path, self.settings.tools)

    async def _run_tests(self, workspace: Workspace) -> TestSummary:
        started = time.perf_counter()
        try:
            return await self._tests_summary(workspace)
        finally:
            for observe in self.test_observers:
                observe(time.perf_counter() - started)

    async def _tests_summary(self, workspace: Workspace) -> TestSummary:
        try:
            result = await self._registry(workspace.path).call("run_tests", {"workspace": "."})
        except (ToolError, SandboxViolation) as exc:
            return TestSummary(
                runner="none",
                passed=0,
                failed=0,
                errors=0,
                skipped=0,
                total=0,
                timed_out=False,
                coverage_percent=None,
                failures=[f"the tests could not be run: {exc}"],
            )
        assert isinstance(result, RunTestsResult)
        return TestSummary(
            runner=result.runner,
            passed=result.passed,
            failed=result.failed,
            errors=result.errors,
            skipped=result.skipped,
            total=result.total,
            timed_out=result.timed_out,
            coverage_percent=result.coverage_percent,
            failures=[f"{f.name}: {f.message}"[:500] for f in result.failures[:10]],
        )

    def _tool_call_event(
        self, state: TaskState, agent: str
    ) -> Callable[[str, dict[str, Any], bool, str], Awaitable[None]]:
        async def record(name: str, arguments: dict[str, Any], ok: bool, summary: str) -> None:
            self.store.add_event(
                state.task_id,
                "tool_call",
                {
                    "agent": agent,
                    "name": name,
                    "arguments": arguments,
                    "ok": ok,
                    "summary": summary,
                },
            )

        return record

    @staticmethod
    def _task_text(state: TaskState) -> str:
        return state.preprocessed_text or state.user_input

    @staticmethod
    def _feedback(state: TaskState) -> str | None:
        """What the coder should fix: the last apply error, or the last review and tests."""
        current = [i for i in state.code_iterations if i.escalation == state.escalations]
        if current and current[-1].error:
            return current[-1].error
        if state.review_results and current:
            review, tests = state.review_results[-1], state.test_results[-1]
            lines = [*review.issues_found, *review.recommendations]
            if review.next_iteration:
                lines.append(review.next_iteration)
            lines += [f"failing test: {f}" for f in tests.failures]
            return "\n".join(f"- {line}" for line in lines) or None
        return None

    @staticmethod
    def _failure_history(state: TaskState) -> list[str]:
        history = [i.error for i in state.code_iterations if i.error]
        history += [issue for review in state.review_results for issue in review.issues_found]
        return [h[:400] for h in history if h]

    def _current_diff(self, state: TaskState) -> str:
        """The workspace's diff as it stands (empty when the task never made a workspace)."""
        live = self._workspaces.get(state.task_id)
        if live is None:
            return ""
        try:
            return live.diff()
        except BreakingWindError:
            return ""


class TokenEvents:
    """An agent's generated text as `token` events, each flushed within `TOKEN_FLUSH_S`, and a
    `prefill` event each time the agent starts reading a prompt (the wait before its first token).

    Each `token` event says how many deltas it holds (`tokens`: one per generated token from a
    local model) so a client can show tokens per second without counting text.
    """

    def __init__(self, store: TaskStore, task_id: str, agent: str) -> None:
        self.store, self.task_id, self.agent = store, task_id, agent
        self._buffer: list[str] = []
        self._size = 0
        self._timer: asyncio.TimerHandle | None = None
        self._observing: Token[Callable[[int], None] | None] | None = None

    def add(self, text: str) -> None:
        if not text:
            return
        self._buffer.append(text)
        self._size += len(text)
        if self._size >= TOKEN_FLUSH_CHARS:
            self.flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(TOKEN_FLUSH_S, self.flush)

    def prefill(self, prompt_tokens: int) -> None:
        self.flush()
        self.store.add_event(
            self.task_id, "prefill", {"agent": self.agent, "prompt_tokens": prompt_tokens}
        )

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._buffer:
            count = len(self._buffer)
            text, self._buffer, self._size = "".join(self._buffer), [], 0
            self.store.add_event(
                self.task_id, "token", {"agent": self.agent, "text": text, "tokens": count}
            )

    def __enter__(self) -> TokenEvents:
        self._observing = prompt_observer.set(self.prefill)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._observing is not None:
            prompt_observer.reset(self._observing)
        self.flush()


def _checked_review(draft: ReviewDraft, tests: TestSummary, changed: bool) -> Review:
    """The review with the real test counts; approval needs green tests and a change, whatever
    the model says (a task asks for a change: an unchanged workspace solves nothing)."""
    overridden = None
    status = draft.review_status
    if status == "approved" and not changed:
        status = "changes_requested"
        overridden = "approval withdrawn: the workspace has no change"
    elif status == "approved" and not tests.green:
        status = "changes_requested"
        overridden = f"approval withdrawn: {tests.failed} failed, {tests.errors} errors" + (
            ", timed out" if tests.timed_out else ""
        )
    return Review(
        **{**draft.model_dump(), "review_status": status},
        test_results=ReviewTestResults(
            passed=tests.passed, failed=tests.failed + tests.errors, coverage=tests.coverage_percent
        ),
        overridden=overridden,
    )


def _tests_report(tests: TestSummary) -> str:
    lines = [
        f"runner {tests.runner}: {tests.passed} passed, {tests.failed} failed,"
        f" {tests.errors} errors, {tests.skipped} skipped"
        + (" (timed out)" if tests.timed_out else "")
    ]
    lines += [f"- {failure}" for failure in tests.failures]
    return "\n".join(lines)


def _summary(state: TaskState, review: Review) -> str:
    steps = [item.description for item in state.plan.task_breakdown] if state.plan else []
    tests = review.test_results
    lines = [
        f"Approved after {len(state.code_iterations)} coder iteration(s);"
        f" tests: {tests.passed} passed, {tests.failed} failed."
    ]
    lines += [f"- {step}" for step in steps]
    return "\n".join(lines)
