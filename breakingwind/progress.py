"""Workflow progress as text, for people: the CLI and the pipeline chat model render events here."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console, RenderableType
from rich.live import Live
from rich.spinner import Spinner
from rich.syntax import Syntax
from rich.text import Text

from breakingwind.tasks import Event, TaskState

TERMINAL_EVENTS = frozenset({"completed", "failed", "cancelled"})
DIFF_LINES = 60  # of each applied diff shown as it comes; the final diff is shown whole


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
        "prefill": lambda: f"\n({data['agent']} is reading {data['prompt_tokens']:,} tokens…)\n",
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
            f"\nDiff {data['iteration']} applied to {', '.join(data['files']) or 'no file'}\n"
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


@dataclass
class AgentMeter:
    """One agent's generation as the terminal sees it: tokens, and the time they took."""

    tokens: int = 0
    generating_s: float = 0.0  # summed over its calls, first token to last
    call_tokens: int = 0  # the current call: tokens after its first event
    call_first: float | None = None
    call_last: float | None = None
    reading: int | None = None  # prompt tokens being read (no token of this call yet)

    def prefill(self, prompt_tokens: int) -> None:
        self._close_call()
        self.reading = prompt_tokens

    def add(self, tokens: int, at: float) -> None:
        self.tokens += tokens
        self.reading = None
        if self.call_first is None:
            self.call_first = at  # its batch arrived at once: the rate counts what came after
        else:
            self.call_tokens += tokens
        self.call_last = at

    def rate(self) -> float:
        """Tokens per second of the current call, else over all calls."""
        if self.call_first is not None and self.call_last and self.call_last > self.call_first:
            return self.call_tokens / (self.call_last - self.call_first)
        return self.tokens / self.generating_s if self.generating_s else 0.0

    def overall_rate(self) -> float:
        self._close_call()
        return self.rate()

    def _close_call(self) -> None:
        if self.call_first is not None and self.call_last is not None:
            self.generating_s += self.call_last - self.call_first
        self.call_first = self.call_last = None
        self.call_tokens = 0


class LiveProgress:
    """`breakingwind run`'s terminal: events as lines, and one live status line (stage, elapsed,
    tokens and tok/s per agent, "reading N tokens…") redrawn four times a second on a terminal.

    Without a terminal (a pipe, a log) the status line is left out; the same figures are printed
    as lines when each stage ends, so a log holds them too.
    """

    def __init__(self, console: Console, show_tokens: bool = False) -> None:
        self.console = console
        self.show_tokens = show_tokens
        self.started = time.monotonic()
        self.stage = "starting"
        self.stage_label = "starting"
        self.stage_started = self.started
        self.meters: dict[str, AgentMeter] = {}
        self.stage_agents: dict[str, int] = {}  # agents heard this stage: their tokens before it
        self.task_id: str | None = None
        self._partial = ""  # token text not yet ended by a newline (--tokens)
        self._spinner = Spinner("dots")
        self._live = Live(
            get_renderable=self._status,
            console=console,
            refresh_per_second=4,
            transient=True,
            redirect_stdout=False,
            redirect_stderr=False,
        )

    def __enter__(self) -> LiveProgress:
        self._live.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._live.stop()

    def show(self, event: Event) -> None:
        """Render one workflow event."""
        now = time.monotonic()
        data = event.data
        if event.type == "token":
            self._meter(data["agent"]).add(data.get("tokens", 1), now)
            if self.show_tokens:
                self._tokens(data["text"])
            return
        self._end_token_text()
        if event.type == "prefill":
            self._meter(data["agent"]).prefill(data["prompt_tokens"])
            self._print(f"  {data['agent']} is reading {data['prompt_tokens']:,} tokens…", "dim")
            return
        if event.type == "task_created":
            self.task_id = data["task_id"]
        if event.type == "stage_started" or event.type in TERMINAL_EVENTS:
            self._stage_ended()
        if event.type == "stage_started":
            self.stage = data["stage"]
            cycle = data.get("cycle")
            self.stage_label = self.stage + (f" · cycle {cycle}" if cycle else "")
            self.stage_started = now
        if event.type == "diff" and data.get("applied") and data.get("diff"):
            self._print(progress_line(event).strip("\n"))
            self.console.print(Syntax(_head(data["diff"], DIFF_LINES), "diff", theme="ansi_dark"))
            return
        line = progress_line(event)
        if line:
            self._print(line.strip("\n"), "bold" if event.type == "stage_started" else None)

    def summary(self, state: TaskState, diff_file: Path | None) -> str:
        """The closing lines: outcome, cycles, tests, time, tokens, where the diff is."""
        outcome = {
            "complete": "approved",
            "failed": "failed",
            "cancelled": "cancelled",
        }.get(state.current_stage, state.current_stage)
        tests = state.test_results[-1] if state.test_results else None
        lines = [
            f"Outcome: {outcome} after {_duration(time.monotonic() - self.started)}"
            f" (task {state.task_id})",
            f"  cycles: {len(state.code_iterations)} coder iteration(s),"
            f" {len(state.review_results)} review(s), {state.escalations} escalation(s)",
            "  tests: "
            + (
                f"{tests.passed} passed, {tests.failed} failed, {tests.errors} errors"
                f" ({tests.runner})"
                if tests
                else "not run"
            ),
        ]
        if self.meters:
            lines.append(
                "  tokens: "
                + ", ".join(
                    f"{agent} {meter.tokens:,}{_rate(meter.overall_rate())}"
                    for agent, meter in self.meters.items()
                )
            )
        report = state.final_output
        if report is not None and report.applied_to_project:
            lines.append(f"  diff: applied to {state.project}")
        elif diff_file is not None:
            lines.append(f"  diff: {diff_file} (apply it with `git apply {diff_file}`)")
        elif report is None or not report.diff.strip():
            lines.append("  diff: none")
        if state.workspace and Path(state.workspace).is_dir():  # kept (pipeline.keep_workspaces)
            lines.append(f"  workspace: {state.workspace}")
        return "\n".join(lines)

    def _meter(self, agent: str) -> AgentMeter:
        meter = self.meters.setdefault(agent, AgentMeter())
        self.stage_agents.setdefault(agent, meter.tokens)
        return meter

    def _stage_ended(self) -> None:
        """Print what each agent of the stage generated (the live line's figures, for logs)."""
        for agent, base in self.stage_agents.items():
            meter = self.meters[agent]
            self._print(
                f"  {agent}: {meter.tokens - base:,} tokens{_rate(meter.overall_rate())};"
                f" {self.stage} took {_duration(time.monotonic() - self.stage_started)}",
                "dim",
            )
        self.stage_agents = {}

    def _status(self) -> RenderableType:
        now = time.monotonic()
        parts = [
            f"{self.stage_label}  {_duration(now - self.stage_started)}"
            f" (total {_duration(now - self.started)})"
        ]
        for agent in self.stage_agents:
            meter = self.meters[agent]
            if meter.reading is not None:
                parts.append(f"{agent} reading {meter.reading:,} tokens…")
            else:
                parts.append(f"{agent} {meter.tokens:,} tok{_rate(meter.rate())}")
        if self.task_id:
            parts.append(f"Ctrl-C to detach · task {self.task_id}")
        self._spinner.text = Text(" · ".join(parts), style="cyan")
        return self._spinner

    def _print(self, text: str, style: str | None = None) -> None:
        self.console.print(text, style=style, markup=False, highlight=False)

    def _tokens(self, text: str) -> None:
        lines = (self._partial + text).split("\n")
        self._partial = lines.pop()
        for line in lines:
            self._print(line, "dim")

    def _end_token_text(self) -> None:
        if self._partial:
            self._print(self._partial, "dim")
            self._partial = ""


def _head(text: str, lines: int) -> str:
    kept = text.splitlines()
    if len(kept) <= lines:
        return text.rstrip("\n")
    return "\n".join(kept[:lines]) + f"\n… ({len(kept) - lines} more lines)"


def _rate(tokens_per_s: float) -> str:
    """ ", 24.5 tok/s", or nothing when too few tokens came apart in time to measure a rate."""
    return f", {tokens_per_s:.1f} tok/s" if tokens_per_s > 0 else ""


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m {secs:02d}s" if minutes else f"{seconds:.1f}s"
