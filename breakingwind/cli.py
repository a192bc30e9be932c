"""The `breakingwind` command line. Each command parses, calls one core function, prints."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import click

from breakingwind.config import AGENT_NAMES, Settings, load_settings
from breakingwind.errors import BreakingWindError, ConfigError

if TYPE_CHECKING:
    from rich.console import Console

    from breakingwind.daemon_client import DaemonClient
    from breakingwind.runtime import Runtime
    from breakingwind.service import Platform

EXIT_CONFIG = 2
EXIT_FAILED = 1
AGENT_OR_ALL = click.Choice([*AGENT_NAMES, "all"])
PULL_ACTIONS = {
    "downloaded": "downloaded",
    "up_to_date": "up to date",
    "recorded": "already present, matches the Hub, recorded",
}
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # as a shell reports a command ended by SIGINT


def _settings(ctx: click.Context) -> Settings:
    """Load settings once per invocation; a bad config exits 2 before anything starts."""
    if "settings" not in ctx.obj:
        try:
            ctx.obj["settings"] = load_settings(ctx.obj["config"])
        except ConfigError as exc:
            click.echo(f"breakingwind: {exc}", err=True)
            ctx.exit(EXIT_CONFIG)
    return ctx.obj["settings"]


def _fail(exc: BreakingWindError) -> NoReturn:
    """Print the error as one line (or a ConfigError's list) and exit non-zero."""
    click.echo(f"breakingwind: {exc}", err=True)
    sys.exit(EXIT_CONFIG if isinstance(exc, ConfigError) else EXIT_FAILED)


def _project(settings: Settings, project: Path | None) -> Path:
    """The project folder a command works on, checked by the one project rule (exit 2)."""
    from breakingwind.projects import allowed_project

    try:
        return allowed_project(project, settings)
    except BreakingWindError as exc:
        click.echo(f"breakingwind: {exc}", err=True)
        sys.exit(EXIT_CONFIG)


def _local_agents(settings: Settings, choice: str) -> list[str]:
    """The agents `choice` names that load a local file; a remote agent has none to handle."""
    agents = settings.agents()
    if choice != "all" and agents[choice].is_remote:
        click.echo(
            f"breakingwind: {choice} runs on {agents[choice].base_url} (backend ="
            f" {agents[choice].backend!r}); it has no local model file",
            err=True,
        )
        sys.exit(EXIT_USAGE)
    return [name for name in AGENT_NAMES if choice in ("all", name) and not agents[name].is_remote]


@click.group()
@click.option(
    "--config",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Config file (default: $BREAKINGWIND_CONFIG, else ./config.toml).",
)
@click.version_option(package_name="breakingwind")
@click.pass_context
def main(ctx: click.Context, config: Path | None) -> None:
    """BreakingWind: a local, private, multi-agent coding daemon."""
    ctx.ensure_object(dict)
    ctx.obj["config"] = config


@main.command()
@click.option("--host", default=None, help="Override server.host.")
@click.option("--port", type=int, default=None, help="Override server.port.")
@click.pass_context
def serve(ctx: click.Context, host: str | None, port: int | None) -> None:
    """Start the daemon (HTTP API on server.host:server.port)."""
    import uvicorn

    from breakingwind.api.app import create_app
    from breakingwind.api.server import exposure_warning, listening_socket, server_config
    from breakingwind.errors import StoreError
    from breakingwind.store import TaskStore

    settings = _settings(ctx)
    logging.basicConfig(
        level=settings.server.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    root = settings.project.root
    if not root.is_dir():  # a config problem: one line and exit 2, like every other
        click.echo(
            f"breakingwind: project.root: {root} is not a folder (set [project] root in"
            f" {settings.config_file or 'config.toml'} or BREAKINGWIND_PROJECT_ROOT)",
            err=True,
        )
        sys.exit(EXIT_CONFIG)
    warning = exposure_warning(host or settings.server.host, settings.server.api_key)
    if warning:
        click.secho(warning, fg="red", bold=True, err=True)
    _project(settings, None)  # a refused project.root stops here, in one line
    host, port = host or settings.server.host, port or settings.server.port
    try:
        # In this order: the data folder's lock (a second daemon on it stops here, before it
        # reads a task), the database's check, then the port, all before any task resumes.
        store = TaskStore(settings.storage.database_path)
    except StoreError as exc:
        click.echo(f"breakingwind: {exc}", err=True)
        sys.exit(EXIT_CONFIG)
    try:
        sock = listening_socket(host, port)
    except OSError as exc:
        store.close()
        click.echo(
            f"breakingwind: cannot listen on {host}:{port}: {exc.strerror}",
            err=True,
        )
        sys.exit(EXIT_CONFIG)
    try:
        app = create_app(settings, store=store)
    except BreakingWindError as exc:
        store.close()
        _fail(exc)
    server = uvicorn.Server(server_config(app, settings.server, host=host, port=port))
    try:
        server.run(sockets=[sock])
    finally:
        store.close()
    if not server.started:  # the start-up failed; as uvicorn.run exits
        sys.exit(3)


@main.group()
def models() -> None:
    """Inspect, download and verify the models each agent uses."""


@models.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def models_list(ctx: click.Context, as_json: bool) -> None:
    """Each agent's resolved model file, whether it is present, its size, who shares it; or the
    server a remote agent runs on."""
    from breakingwind.modelfiles.manifest import load_manifest, resolve_agent_models

    settings = _settings(ctx)
    try:
        manifest = load_manifest()
        resolved = resolve_agent_models(settings, manifest)
    except BreakingWindError as exc:
        click.echo(f"breakingwind: {exc}", err=True)
        sys.exit(1)
    rows = []
    for agent, model in resolved.items():
        shared = [other for other, m in resolved.items() if m.path == model.path and other != agent]
        rows.append(
            {
                "agent": agent,
                "file": str(model.path),
                "configured": str(model.configured),
                "present": model.present,
                "size_bytes": model.size_bytes,
                "embedded_default": model.fallback,
                "n_ctx": model.n_ctx,
                "shared_with": shared,
            }
        )
    by_agent = {row["agent"]: {"backend": "local", **row} for row in rows}
    for agent, agent_settings in settings.agents().items():
        if agent_settings.is_remote:
            by_agent[agent] = {
                "agent": agent,
                "backend": agent_settings.backend,
                "base_url": agent_settings.base_url,
                "model": agent_settings.model,
            }
    ordered = [by_agent[agent] for agent in AGENT_NAMES]
    if as_json:
        click.echo(json.dumps(ordered, indent=2))
        return
    for row in ordered:
        if row["backend"] != "local":
            click.echo(f"{row['agent']}:")
            click.echo(f"  remote   {row['model']} at {row['base_url']} ({row['backend']})")
            continue
        size = f"{row['size_bytes'] / 1024**3:.2f} GiB" if row["size_bytes"] else "-"
        source = (
            f"embedded default (configured {row['configured']} is missing)"
            if row["embedded_default"]
            else "configured"
        )
        click.echo(f"{row['agent']}:")
        click.echo(f"  file     {row['file']}")
        click.echo(
            f"  present  {'yes' if row['present'] else 'NO'}   size {size}   n_ctx {row['n_ctx']}"
        )
        click.echo(f"  source   {source}")
        click.echo(f"  shared   {', '.join(row['shared_with']) or '-'}")


@main.command()
@click.option("--quick", is_flag=True, help="A short smoke run (CI): fewer tokens and runs.")
@click.option("--agent", default="coder", show_default=True, help="Whose model to measure.")
@click.option("--tokens", type=int, default=None, help="Tokens to generate per run.")
@click.option("--repeats", type=int, default=None, help="Runs per path (the median is shown).")
@click.option(
    "--parallel",
    type=click.IntRange(1, 256),
    default=None,
    help="Slots of the measured model (default: the most simultaneous streams; 1 = no batching).",
)
@click.option(
    "--peers",
    is_flag=True,
    help="Also send the streams to llama-cpp-python's server and llama-server on the same model.",
)
@click.option(
    "--llama-server",
    "llama_server_path",
    default=None,
    help="The llama-server binary for --peers (default: llama-server on PATH).",
)
@click.option(
    "--pipeline",
    "pipeline_tasks",
    type=click.IntRange(0, 64),
    default=0,
    help="Also run the eval tasks through the whole pipeline, 1 and then N at once.",
)
@click.pass_context
def bench(
    ctx: click.Context,
    quick: bool,
    agent: str,
    tokens: int | None,
    repeats: int | None,
    parallel: int | None,
    peers: bool,
    llama_server_path: str | None,
    pipeline_tasks: int,
) -> None:
    """Measure speed side by side, as ratios: bare vs engine vs HTTP, 1-8 streams, prefix reuse,
    prompt-lookup drafts, the peers (--peers); and memory."""
    from breakingwind.measure.bench import BenchPlan, run_bench
    from breakingwind.measure.peers import llama_server_binary

    settings = _settings(ctx)
    if quick:  # CI smoke: every figure once, a few tokens each
        plan = BenchPlan(tokens or 32, repeats or 1, stream_levels=(1, 2, 4), stream_tokens=16)
    else:
        plan = BenchPlan(tokens or 256, repeats or 3)
    binary = llama_server_binary(llama_server_path)
    if llama_server_path and binary is None:
        raise click.BadParameter(f"{llama_server_path} is not a file", param_hint="--llama-server")
    plan = replace(
        plan,
        parallel=parallel,
        peers=peers,
        llama_server=binary,
        pipeline_tasks=pipeline_tasks,
    )
    run_bench(settings, agent, plan, echo=click.echo)


@main.command()
@click.option(
    "--url",
    default=None,
    help="The daemon to load (e.g. http://127.0.0.1:8080). Default: --spawn.",
)
@click.option(
    "--spawn",
    is_flag=True,
    help="Start a daemon of its own (free port, temporary data dir and project, embedded model);"
    " the default without --url.",
)
@click.option("--pid", type=int, default=None, help="With --url: the daemon's pid (RSS, threads).")
@click.option(
    "--clients", type=click.IntRange(1, 1000), default=50, show_default=True, help="Concurrent."
)
@click.option(
    "--duration",
    type=click.FloatRange(min=1),
    default=180.0,
    show_default=True,
    help="Seconds during which clients start requests.",
)
@click.option(
    "--warmup",
    type=click.FloatRange(min=0),
    default=None,
    help="Memory is judged after this many seconds (default: a third of --duration).",
)
@click.option(
    "--window",
    type=click.FloatRange(min=1),
    default=30.0,
    show_default=True,
    help="Each client must make progress in every window of this many seconds.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seeds the clients' picks.")
@click.option(
    "--no-prime", is_flag=True, help="Skip running each kind of request once before the clock."
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def loadtest(
    url: str | None,
    spawn: bool,
    pid: int | None,
    clients: int,
    duration: float,
    warmup: float | None,
    window: float,
    seed: int,
    no_prime: bool,
    as_json: bool,
) -> None:
    """Drive concurrent mixed clients (streamed chats, completions, MCP tool calls, workflows)
    for a fixed time and judge: no 5xx but 503 back-pressure with Retry-After, no deadlock,
    memory flat. Exit 1 unless every verdict passed."""
    from breakingwind.measure.loadtest import LoadPlan, render_text, run_loadtest

    if spawn and url:
        click.echo("breakingwind: pass --url or --spawn, not both", err=True)
        sys.exit(EXIT_USAGE)
    plan = LoadPlan(
        clients=clients,
        duration_s=duration,
        warmup_s=warmup,
        window_s=window,
        seed=seed,
        prime=not no_prime,
    )
    try:
        report = run_loadtest(plan, url, pid, echo=_say)
    except BreakingWindError as exc:
        _fail(exc)
    click.echo(report.model_dump_json(indent=2) if as_json else render_text(report))
    sys.exit(0 if report.ok else EXIT_FAILED)


@models.command("pull")
@click.argument("agent", type=AGENT_OR_ALL, default="all")
@click.option("--force", is_flag=True, help="Download again even when the file is present.")
@click.option("-v", "--verbose", is_flag=True, help="Also show huggingface_hub's own warnings.")
@click.pass_context
def models_pull(ctx: click.Context, agent: str, force: bool, verbose: bool) -> None:
    """Download the full-profile GGUF of AGENT (default: all) from the Hugging Face Hub."""
    from huggingface_hub.utils import logging as hf_logging

    from breakingwind.modelfiles.downloads import pull_models
    from breakingwind.modelfiles.manifest import load_manifest

    settings = _settings(ctx)
    if not verbose:
        hf_logging.set_verbosity_error()  # our own lines say what failed and what is retried
    try:
        results = pull_models(
            settings, load_manifest(), _local_agents(settings, agent), force=force, say=_say
        )
    except BreakingWindError as exc:
        _fail(exc)
    for result in results:
        click.echo(
            f"{result.agent}: {PULL_ACTIONS[result.action]} {result.path}"
            f" ({result.size_bytes / 1024**3:.2f} GiB, sha256 {result.sha256},"
            f" commit {result.commit[:12]})"
        )


@models.command("verify")
@click.argument("agent", type=AGENT_OR_ALL, default="all")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@click.pass_context
def models_verify(ctx: click.Context, agent: str, as_json: bool) -> None:
    """Re-check AGENT's file (default: all) on disk: size, sha256 (from the lock) and GGUF header.

    Exits 1 when any file fails.
    """
    from breakingwind.modelfiles.lock import verify_models

    settings = _settings(ctx)
    try:
        results = verify_models(settings, _local_agents(settings, agent))
    except BreakingWindError as exc:
        _fail(exc)
    if as_json:
        click.echo(json.dumps([r.model_dump(mode="json") for r in results], indent=2))
    else:
        for result in results:
            click.echo(f"{result.agent}: {'OK' if result.ok else 'FAILED'}  {result.path}")
            for problem in result.problems:
                click.echo(f"  - {problem}")
    if not all(result.ok for result in results):
        sys.exit(EXIT_FAILED)


def _say(line: str) -> None:
    click.echo(line, err=True)


@main.group()
def service() -> None:
    """Run the daemon in the background: launchd agent (macOS) or systemd user unit (Linux)."""


def _platform() -> Platform:
    from breakingwind.service import platform_for

    try:
        return platform_for(sys.platform, Path.home())
    except BreakingWindError as exc:
        _fail(exc)


@service.command("install")
@click.option("--dry-run", is_flag=True, help="Print the service file; write and load nothing.")
@click.pass_context
def service_install(ctx: click.Context, dry_run: bool) -> None:
    """Write, validate and load the service that runs `breakingwind serve` with this config."""
    from breakingwind.service import install_service, service_spec

    platform = _platform()
    try:
        spec = service_spec(_settings(ctx))
        if dry_run:
            click.echo(f"# {platform.path()}")
            click.echo(platform.render(spec), nl=False)
            return
        report = install_service(spec, platform)
    except BreakingWindError as exc:
        _fail(exc)
    click.echo(f"wrote {report.path}")
    if spec.carried_env:
        click.echo(f"carried into the service: {', '.join(sorted(spec.carried_env))}")
    if spec.dropped_env:
        click.echo(
            f"left out: {', '.join(spec.dropped_env)} (a key would sit in the service file in"
            " plain text; set it in the config file instead)"
        )
    if report.loaded:
        click.echo(f"loaded with {platform.tool}; logs: `breakingwind service logs`")
        return
    click.echo(
        f"not loaded: {platform.tool} is unavailable or has no user session here (a container?)."
        " On the machine that should run the daemon, run:"
    )
    for line in report.next_steps:
        click.echo(f"  {line}")


@service.command("uninstall")
def service_uninstall() -> None:
    """Stop the service and delete its file."""
    from breakingwind.service import uninstall_service

    platform = _platform()
    try:
        removed = uninstall_service(platform)
    except BreakingWindError as exc:
        _fail(exc)
    click.echo(f"removed {removed}" if removed else f"not installed ({platform.path()} is absent)")


@service.command("status")
def service_status() -> None:
    """Show the service's state (`systemctl --user status` / `launchctl print`)."""
    from breakingwind.service import show_status

    try:
        sys.exit(show_status(_platform()))
    except BreakingWindError as exc:
        _fail(exc)


@service.command("logs")
@click.option("-n", "--lines", type=click.IntRange(min=1), default=100, show_default=True)
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines.")
@click.pass_context
def service_logs(ctx: click.Context, lines: int, follow: bool) -> None:
    """Print the daemon's recent log lines (journalctl on Linux, the log files on macOS)."""
    from breakingwind.service import service_spec, show_logs

    try:
        sys.exit(show_logs(_platform(), service_spec(_settings(ctx)), lines, follow))
    except BreakingWindError as exc:
        _fail(exc)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--url", default=None, help="The daemon to probe (default: server.host:server.port).")
@click.option("--skip-live", is_flag=True, help="Do not contact a running daemon.")
@click.option("--verify", is_flag=True, help="Hash each model file against manifest.lock (slow).")
@click.pass_context
def doctor(
    ctx: click.Context, as_json: bool, url: str | None, skip_live: bool, verify: bool
) -> None:
    """Check the install, the models, this machine and the running daemon: OK/WARN/FAIL, with the
    fix for each problem. Exits 1 when any check FAILs."""
    from breakingwind.checks.context import Context
    from breakingwind.checks.doctor import render_text, run_doctor

    settings = _settings(ctx)
    checked = Context(settings, url or settings.server.url, verify=verify)
    report = run_doctor(checked, skip_live=skip_live)
    click.echo(report.model_dump_json(indent=2) if as_json else render_text(report))
    sys.exit(0 if report.ok else EXIT_FAILED)


@main.command()
@click.option("--stdio", is_flag=True, help="Serve MCP over stdin/stdout (for IDE clients).")
@click.pass_context
def mcp(ctx: click.Context, stdio: bool) -> None:
    """Serve the codebase tools over MCP. Over HTTP they are at /mcp of `breakingwind serve`."""
    if not stdio:
        click.echo("breakingwind: pass --stdio (HTTP clients use /mcp of `serve`)", err=True)
        ctx.exit(EXIT_USAGE)
    from breakingwind.api.mcp_server import build_mcp_server
    from breakingwind.tools.registry import build_registry

    settings = _settings(ctx)
    # stdout carries the protocol: logs go to stderr only.
    logging.basicConfig(stream=sys.stderr, level=settings.server.log_level.upper())
    try:
        server = build_mcp_server(build_registry(settings))
    except BreakingWindError as exc:
        click.echo(f"breakingwind: {exc}", err=True)
        sys.exit(1)
    server.run("stdio")


@main.command()
@click.argument("task")
@click.option(
    "--project",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=None,
    help="Project folder (default: project.root).",
)
@click.option("--apply", "apply_", is_flag=True, help="Apply the final diff when approved.")
@click.option(
    "--cycles",
    type=click.IntRange(1, 20),
    default=None,
    help="Coder/reviewer cycles per plan (default: pipeline.max_review_cycles).",
)
@click.option("--local", is_flag=True, help="Run in this process even if a daemon is running.")
@click.option("--tokens", is_flag=True, help="Also print the agents' text as it is generated.")
@click.pass_context
def run(
    ctx: click.Context,
    task: str,
    project: Path | None,
    apply_: bool,
    cycles: int | None,
    local: bool,
    tokens: bool,
) -> None:
    """Run one workflow on TASK with live progress; prints the final diff. Exit 1 unless it
    completed.

    Ctrl-C stops following a daemon's task (it goes on; a second Ctrl-C cancels it); a task run
    in this process (--local, or no daemon) is cancelled. Either exits 130.
    """
    from breakingwind.runner import run_workflow
    from breakingwind.tasks import WorkflowOptions

    settings = _settings(ctx)
    logging.basicConfig(level="WARNING", format="%(levelname)s %(name)s: %(message)s")
    options = WorkflowOptions(apply=apply_, max_review_cycles=cycles)
    try:
        state = run_workflow(
            settings,
            task,
            _project(settings, project),
            options,
            _console(),
            local,
            tokens,
        )
    except BreakingWindError as exc:
        _fail(exc)
    except KeyboardInterrupt:
        sys.exit(EXIT_INTERRUPTED)
    sys.exit(0 if state.current_stage == "complete" else EXIT_FAILED)


def _console() -> Console:
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True)  # a log keeps whole lines


def _client(settings: Settings, url: str | None) -> DaemonClient:
    from breakingwind.daemon_client import DaemonClient

    return DaemonClient(url or settings.server.url, settings.server.api_key)


@main.command()
@click.option("--url", default=None, help="The daemon (default: server.host:server.port).")
@click.option("-n", "--limit", type=click.IntRange(1, 500), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def tasks(ctx: click.Context, url: str | None, limit: int, as_json: bool) -> None:
    """The daemon's newest tasks: id, stage, age and what was asked."""
    from datetime import UTC, datetime

    try:
        listed = _client(_settings(ctx), url).tasks(limit)
    except BreakingWindError as exc:
        _fail(exc)
    if as_json:
        click.echo(json.dumps(listed, indent=2))
        return
    if not listed:
        click.echo("no tasks")
        return
    now = datetime.now(UTC)
    for task in listed:
        age = now - datetime.fromisoformat(task["updated_at"])
        first_line = task["input"].splitlines()[0] if task["input"] else ""
        click.echo(
            f"{task['task_id']}  {task['stage']:<9}  {_age(age.total_seconds()):>8}"
            f"  {first_line[:60]}"
        )


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit} ago"
    return f"{int(seconds)}s ago"


@main.command()
@click.argument("task_id")
@click.option("--url", default=None, help="The daemon (default: server.host:server.port).")
@click.pass_context
def cancel(ctx: click.Context, task_id: str, url: str | None) -> None:
    """Cancel the daemon's task TASK_ID (see `breakingwind tasks`)."""
    try:
        state = _client(_settings(ctx), url).cancel(task_id)
    except BreakingWindError as exc:
        _fail(exc)
    click.echo(f"task {task_id} is {state['current_stage']}")


@main.command("eval")
@click.option(
    "--tasks",
    "tasks_dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="A folder of tasks in the evals/ format (default: the bundled evals/).",
)
@click.option("--limit", type=click.IntRange(1), default=None, help="Run only the first N tasks.")
@click.option(
    "--cycles",
    type=click.IntRange(1, 20),
    default=None,
    help="Coder/reviewer cycles per plan (default: pipeline.max_review_cycles).",
)
@click.option(
    "--parallel",
    type=click.IntRange(1, 16),
    default=1,
    help="Tasks run at once (they share each model's batched decode; seconds per task grow).",
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON document (progress goes to stderr)."
)
@click.pass_context
def eval_command(
    ctx: click.Context,
    tasks_dir: Path | None,
    limit: int | None,
    cycles: int | None,
    parallel: int,
    as_json: bool,
) -> None:
    """Run coding tasks through the pipeline; a hidden test decides each one."""
    import asyncio
    import json

    from breakingwind.measure.evals import (
        EVALS_DIR,
        EvalProgress,
        load_eval_tasks,
        machine,
        run_evals,
        summarize,
        summary_line,
        table,
    )
    from breakingwind.tasks import WorkflowOptions

    settings = _settings(ctx)
    logging.basicConfig(level="WARNING", format="%(levelname)s %(name)s: %(message)s")
    try:
        tasks = load_eval_tasks(tasks_dir or EVALS_DIR)[:limit]
    except BreakingWindError as exc:
        _fail(exc)
    stream = sys.stderr if as_json else sys.stdout
    options = WorkflowOptions(max_review_cycles=cycles)
    progress = EvalProgress(stream, live=stream.isatty() and parallel == 1)
    records = asyncio.run(run_evals(settings, tasks, options, progress, parallel))
    summary = summarize(records)
    if as_json:
        document = {
            "tasks": [record.model_dump() for record in records],
            "summary": summary.model_dump(),
            "machine": {**machine(), "parallel": parallel},
        }
        click.echo(json.dumps(document, indent=2))
    else:
        click.echo(table(records))
        click.echo(summary_line(summary))


@main.group()
def speckit() -> None:
    """spec-kit commands: /speckit.specify, /speckit.plan and /speckit.implement on local agents."""


PROJECT_OPTION = click.option(
    "--project",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=None,
    help="Project folder (default: project.root).",
)


@speckit.command("init")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path), default=Path("."))
@click.option(
    "--agent",
    type=click.Choice(["claude", "cursor", "windsurf", "copilot", "all"]),
    default="all",
    show_default=True,
    help="Whose command files to write.",
)
@click.option("--force", is_flag=True, help="Also replace command files this tool did not write.")
def speckit_init(directory: Path, agent: str, force: bool) -> None:
    """Write the spec-kit command files into DIRECTORY (default: here) for the IDE agents."""
    from breakingwind.speckit import AGENTS, install_commands

    agents = list(AGENTS) if agent == "all" else [agent]
    for written in install_commands(directory.resolve(), agents, force):
        note = (
            " (not written by breakingwind; --force replaces it)"
            if written.action == "kept"
            else ""
        )
        click.echo(f"{written.action:8} {written.path}{note}")


def _speckit_project(ctx: click.Context, project: Path | None) -> tuple[Settings, Path]:
    settings = _settings(ctx)
    return settings, _project(settings, project)


def _with_runtime(settings: Settings, work: Callable[[Runtime], Awaitable[Path]]) -> Path:
    """Run `work` in a runtime of this process, closed afterwards; exit on a typed error."""
    import asyncio

    from breakingwind.runtime import open_runtime

    async def run() -> Path:
        async with open_runtime(settings.in_process("speckit")) as runtime:  # not the daemon's
            return await work(runtime)

    try:
        return asyncio.run(run())
    except BreakingWindError as exc:
        _fail(exc)


@speckit.command("specify")
@click.argument("description")
@PROJECT_OPTION
@click.pass_context
def speckit_specify(ctx: click.Context, description: str, project: Path | None) -> None:
    """Analyse DESCRIPTION (preprocessor + planner) into specs/NNN-short-name/spec.md."""
    from breakingwind.speckit import specify

    settings, root = _speckit_project(ctx, project)
    folder = _with_runtime(settings, lambda r: specify(r, root, description))
    click.echo(f"wrote {folder / 'spec.md'}")


@speckit.command("plan")
@click.argument("feature", required=False)
@PROJECT_OPTION
@click.pass_context
def speckit_plan(ctx: click.Context, feature: str | None, project: Path | None) -> None:
    """Plan FEATURE (default: the newest in specs/) into plan.md and tasks.md."""
    from breakingwind.speckit import find_feature, plan_feature

    settings, root = _speckit_project(ctx, project)
    try:
        name = find_feature(root, feature).name  # before the models load
    except BreakingWindError as exc:
        _fail(exc)
    folder = _with_runtime(settings, lambda r: plan_feature(r, root, name))
    click.echo(f"wrote {folder / 'plan.md'}\nwrote {folder / 'tasks.md'}")


@speckit.command("implement")
@click.argument("feature", required=False)
@PROJECT_OPTION
@click.option("--keep-going", is_flag=True, help="Go on with the next task after one fails.")
@click.option(
    "--cycles",
    type=click.IntRange(1, 20),
    default=None,
    help="Coder/reviewer cycles per plan (default: pipeline.max_review_cycles).",
)
@click.option("--local", is_flag=True, help="Run in this process even if a daemon is running.")
@click.pass_context
def speckit_implement(
    ctx: click.Context,
    feature: str | None,
    project: Path | None,
    keep_going: bool,
    cycles: int | None,
    local: bool,
) -> None:
    """Run each open task of FEATURE's tasks.md through the pipeline, applying and ticking
    the approved ones. Exit 1 unless every task is done."""
    from breakingwind.runner import run_workflow
    from breakingwind.speckit import find_feature, implement_feature
    from breakingwind.tasks import WorkflowOptions

    settings, root = _speckit_project(ctx, project)
    logging.basicConfig(level="WARNING", format="%(levelname)s %(name)s: %(message)s")
    options = WorkflowOptions(apply=True, max_review_cycles=cycles)

    def echo(text: str) -> None:
        click.echo(text, nl=False)

    console = _console()
    try:
        outcomes = implement_feature(
            find_feature(root, feature),
            lambda task: run_workflow(settings, task, root, options, console, local),
            echo,
            keep_going,
        )
    except BreakingWindError as exc:
        _fail(exc)
    except KeyboardInterrupt:
        sys.exit(EXIT_INTERRUPTED)
    sys.exit(0 if all(outcome.ticked for outcome in outcomes) else EXIT_FAILED)
