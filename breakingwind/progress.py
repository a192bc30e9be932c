"""Workflow progress as text, for people: the CLI and the pipeline chat model render events here."""

from __future__ import annotations

from collections.abc import Callable

from breakingwind.tasks import Event, TaskState


def progress_line(event: Event) -> str:
    """One line of reasoning text per event (tokens pass through as they are)."""
    data = event.data
    renderers: dict[str, Callable[[], str]] = {
        "task_created": lambda: f"Task {data['task_id']} started.\n",
        "stage_started": lambda: (
            f"\n▶ {data['stage']}"
            + (f" (cycle {data['cycle']})" if data.get("cycle") else "")
            + "\n"
        ),
        "token": lambda: data["text"],
        "tool_call": lambda: (
            f"\n  ↳ {data['agent']} called {data['name']}"
            f"({', '.join(f'{k}={v!r}' for k, v in data['arguments'].items())})\n"
        ),
        "plan": lambda: (
            "\nPlan:\n"
            + "".join(
                f"  {i + 1}. {step['description']}\n"
                for i, step in enumerate(data["plan"]["task_breakdown"])
            )
        ),
        "diff": lambda: (
            f"\nDiff {data['iteration']} applied to {', '.join(data['files'])}\n"
            if data["applied"]
            else f"\nDiff {data['iteration']} rejected: {(data['error'] or '')[:300]}\n"
        ),
        "test_results": lambda: (
            f"\nTests ({data['runner']}): {data['passed']} passed,"
            f" {data['failed']} failed, {data['errors']} errors\n"
        ),
        "review": lambda: (
            f"\nReview: {data['review_status']}"
            + "".join(f"\n  - {issue}" for issue in data.get("issues_found", []))
            + "\n"
        ),
        "stage_finished": lambda: "".join(
            f"\n  ({data['stage']}: {data[key]})\n"
            for key in ("passthrough", "fallback")
            if data.get(key)
        ),
        "escalated": lambda: f"\nEscalated to the planner: {data['reason']}\n",
        "resumed": lambda: f"\nResumed at {data['stage']} after a restart.\n",
    }
    render = renderers.get(event.type)
    return render() if render else ""


def final_message(state: TaskState) -> str:
    report = state.final_output
    if state.current_stage == "cancelled":
        return "The task was cancelled."
    if report is None:
        return f"The task ended: {state.error_message or state.current_stage}."
    text = report.summary
    if report.open_issues:
        text += "\n\nOpen issues:\n" + "\n".join(f"- {issue}" for issue in report.open_issues)
    if report.diff.strip():
        text += f"\n\n```diff\n{report.diff.rstrip()}\n```"
    return text + f"\n\n(task {state.task_id})"
