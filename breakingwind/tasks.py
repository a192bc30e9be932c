"""The task data model: what the pipeline records, persists and streams.

The agents' output shapes (Plan, CoderOutput, Review) are part of it: each agent module produces
its own, TaskState holds them as they were produced, the store persists them. This module imports
no agent and no engine, so reading tasks never loads the inference runtime.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# --- the planner's output ----------------------------------------------------------------

Level = Literal["low", "medium", "high"]


class TaskItem(BaseModel):
    id: str
    description: str
    priority: Level
    dependencies: list[str] = Field(default_factory=list, max_length=10)
    estimated_complexity: Level


class CodebaseContext(BaseModel):
    relevant_files: list[str] = Field(default_factory=list, max_length=12)
    architecture_notes: str
    test_requirements: list[str] = Field(default_factory=list, max_length=10)


class Plan(BaseModel):
    task_breakdown: list[TaskItem] = Field(min_length=1, max_length=10)
    codebase_context: CodebaseContext


# --- the coder's output ------------------------------------------------------------------


class FileChange(BaseModel):
    path: str = Field(min_length=1, description="Project-relative path of the file.")
    diff: str = Field(min_length=1, description="A unified diff of this one file.")
    reasoning: str


class FileChangeDraft(FileChange):
    """A FileChange as a remote model writes it, bounded for the job."""

    path: str = Field(min_length=1, max_length=240, description="Project-relative path.")
    # No maxLength: a grammar repetition that long is refused (engine.grammar.max_repeat); the
    # coder stage's token budget bounds it.
    diff: str = Field(min_length=1, description="A unified diff of this one file.")
    reasoning: str = Field(max_length=400)


class CoderDraft(BaseModel):
    """What a remote model writes (JSON); the pipeline adds the iteration number."""

    files_modified: list[FileChangeDraft] = Field(min_length=1, max_length=10)
    tests_created: list[str] = Field(default_factory=list, max_length=10)
    status: Literal["complete", "partial", "blocked"]


class CoderOutput(BaseModel):
    """One coder iteration: a diff per file changed (none when the edits changed nothing)."""

    iteration: int
    files_modified: list[FileChange] = Field(default_factory=list, max_length=10)
    tests_created: list[str] = Field(default_factory=list, max_length=10)
    status: Literal["complete", "partial", "blocked"]
    edits: int = Field(0, ge=0, description="Edits the coder made (a file may have several).")
    notes: list[str] = Field(
        default_factory=list, description="What the edit steps corrected or cut short."
    )


# --- the reviewer's output ---------------------------------------------------------------

ReviewStatus = Literal["approved", "changes_requested", "escalate"]


class ReviewDraft(BaseModel):
    review_status: ReviewStatus
    issues_found: list[str] = Field(default_factory=list, max_length=10)
    recommendations: list[str] = Field(default_factory=list, max_length=10)
    next_iteration: str = Field("", description="What the coder should do next, if anything.")


class ReviewTestResults(BaseModel):
    __test__ = False

    passed: int
    failed: int
    coverage: float | None


class Review(ReviewDraft):
    test_results: ReviewTestResults
    overridden: str | None = Field(
        None, description="Why the pipeline changed the model's verdict (e.g. tests failing)."
    )


# --- tasks and events --------------------------------------------------------------------

Stage = Literal["preprocess", "plan", "code", "review", "complete", "failed", "cancelled"]
TERMINAL: frozenset[str] = frozenset({"complete", "failed", "cancelled"})
EventType = Literal[
    "task_created",
    "stage_started",
    "stage_finished",
    "prefill",
    "token",
    "tool_call",
    "plan",
    "diff",
    "test_results",
    "review",
    "escalated",
    "completed",
    "failed",
    "cancelled",
    "resumed",
]


def now() -> datetime:
    return datetime.now(UTC)


class WorkflowOptions(BaseModel):
    """Per-task overrides; unset fields take the configured pipeline settings."""

    model_config = ConfigDict(extra="forbid")

    max_review_cycles: int | None = Field(None, ge=1, le=20)
    stage_timeout_s: float | None = Field(None, gt=0, le=3600)
    apply: bool = Field(False, description="Apply the final diff to the project when approved.")


class TestSummary(BaseModel):
    """The real result of running the project's tests (from run_tests, never from a model)."""

    __test__ = False  # not a pytest test class

    runner: str
    passed: int
    failed: int
    errors: int
    skipped: int
    total: int
    timed_out: bool
    coverage_percent: float | None
    failures: list[str] = Field(default_factory=list)

    @property
    def green(self) -> bool:
        return self.failed == 0 and self.errors == 0 and not self.timed_out


class Iteration(BaseModel):
    """One coder pass: its output, whether its diffs applied, and the error if not."""

    cycle: int
    escalation: int
    output: CoderOutput | None
    applied: bool
    diff: str = ""  # the diffs exactly as applied to the workspace
    error: str | None = None


class FinalReport(BaseModel):
    summary: str
    diff: str
    test_results: TestSummary | None
    open_issues: list[str] = Field(default_factory=list)
    applied_to_project: bool = False


class TaskState(BaseModel):
    task_id: str
    user_input: str
    project: str
    options: WorkflowOptions = Field(default_factory=WorkflowOptions)
    current_stage: Stage = "preprocess"
    preprocessed_text: str | None = None
    plan: Plan | None = None
    plans: list[Plan] = Field(default_factory=list)
    code_iterations: list[Iteration] = Field(default_factory=list)
    review_results: list[Review] = Field(default_factory=list)
    test_results: list[TestSummary] = Field(default_factory=list)
    cycle: int = 0  # coder/reviewer cycles under the current plan
    escalations: int = 0
    workspace: str | None = None
    base_fingerprint: str | None = None
    final_output: FinalReport | None = None
    error_message: str | None = None
    created_at: datetime = Field(default_factory=now)
    updated_at: datetime = Field(default_factory=now)

    @property
    def finished(self) -> bool:
        return self.current_stage in TERMINAL


class Event(BaseModel):
    """One entry of a task's event stream; `seq` is its SSE id (per task, from 1)."""

    task_id: str
    seq: int
    type: EventType
    data: dict[str, Any]
    created_at: datetime = Field(default_factory=now)
