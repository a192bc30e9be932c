"""`breakingwind doctor`: is this machine ready to run BreakingWind, and is the daemon healthy?

`CHECKS` is the table the CLI runs, in order: a name and a function of a `Context` that yields
`Result`s (OK, WARN or FAIL, a one-line detail and, unless OK, the fix to run). Adding a check
is one function (in `breakingwind.checks`) and one line here. Checks marked `live` talk to the
daemon at `Context.url` and are left out with `--skip-live`; a check that cannot run raises
`Skipped`, and the report lists it with the reason.

The doctor changes nothing: the writability probe deletes its own temp file, the database is
opened read-only, model files are only read (and hashed only with `verify`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from pydantic import BaseModel, computed_field

from breakingwind.checks import daemon, install, machine, models, project, remote
from breakingwind.checks.context import Context, Result, Skipped, Status, fail


@dataclass(frozen=True)
class Check:
    name: str
    run: Callable[[Context], Iterable[Result]]
    live: bool = False  # talks to the running daemon (left out with --skip-live)


CHECKS: tuple[Check, ...] = (
    Check("config", install.check_config),
    Check("python", install.check_python),
    Check("packages", install.check_packages),
    Check("backend", install.check_backend),
    Check("models", models.check_models),
    Check("memory", models.check_memory),
    Check("port", machine.check_port),
    Check("data_dir", machine.check_data_dir),
    Check("database", machine.check_database),
    Check("service", machine.check_service),
    Check("tools", project.check_tools),
    Check("remote", remote.check_remote_backends),
    Check("daemon", daemon.check_daemon, live=True),
    Check("openai_api", daemon.check_openai_models, live=True),
    Check("chat", daemon.check_chat, live=True),
    Check("mcp", daemon.check_mcp, live=True),
)


class Report(BaseModel):
    results: list[Result]
    skipped: dict[str, str] = {}

    @computed_field  # type: ignore[prop-decorator]
    @property
    def ok(self) -> bool:
        """True when nothing FAILed (WARNs allowed): the CLI's exit code 0."""
        return all(result.status != Status.FAIL for result in self.results)

    def count(self, status: Status) -> int:
        return sum(result.status == status for result in self.results)


def run_doctor(ctx: Context, skip_live: bool = False, checks: Iterable[Check] = CHECKS) -> Report:
    """Run `checks` in order. A check that crashes becomes a FAIL line: a doctor never dies."""
    results: list[Result] = []
    skipped: dict[str, str] = {}
    for check in checks:
        if check.live and skip_live:
            skipped[check.name] = "--skip-live"
            continue
        try:
            for result in check.run(ctx):
                results.append(result.model_copy(update={"check": check.name}))
        except Skipped as exc:
            skipped[check.name] = str(exc)
        except Exception as exc:  # reported as a FAIL line, with the exception's name
            results.append(
                fail(
                    f"the check itself failed: {type(exc).__name__}: {exc}",
                    "report it, with the output of `breakingwind doctor --json`",
                ).model_copy(update={"check": check.name})
            )
    return Report(results=results, skipped=skipped)


def render_text(report: Report) -> str:
    """The report for a terminal: one line per result, its fix under it, then a summary."""
    width = max((len(result.check) for result in report.results), default=0)
    lines = []
    for result in report.results:
        lines.append(f"{result.status.value:<4}  {result.check:<{width}}  {result.detail}")
        if result.fix:
            lines.append(f"{'':<4}  {'':<{width}}  fix: {result.fix}")
    by_reason: dict[str, list[str]] = {}
    for name, reason in report.skipped.items():
        by_reason.setdefault(reason, []).append(name)
    for reason, names in by_reason.items():
        lines.append(f"skipped {', '.join(names)}: {reason}")
    counts = ", ".join(f"{report.count(status)} {status.value}" for status in Status)
    lines.append(f"{counts}: {'no failures' if report.ok else 'FAILED'}")
    return "\n".join(lines)
