"""The `breakingwind` command line. Each command parses, calls one core function, prints."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import click

from breakingwind.config import Settings, load_settings
from breakingwind.errors import BreakingWindError, ConfigError

EXIT_CONFIG = 2
EXIT_USAGE = 2


def _settings(ctx: click.Context) -> Settings:
    """Load settings once per invocation; a bad config exits 2 before anything starts."""
    if "settings" not in ctx.obj:
        try:
            ctx.obj["settings"] = load_settings(ctx.obj["config"])
        except ConfigError as exc:
            click.echo(f"breakingwind: {exc}", err=True)
            ctx.exit(EXIT_CONFIG)
    return ctx.obj["settings"]


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

    settings = _settings(ctx)
    logging.basicConfig(
        level=settings.server.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    uvicorn.run(
        create_app(settings),
        host=host or settings.server.host,
        port=port or settings.server.port,
        log_level=settings.server.log_level,
    )


@main.group()
def models() -> None:
    """Inspect the models each agent uses."""


@models.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def models_list(ctx: click.Context, as_json: bool) -> None:
    """Each agent's resolved model file, whether it is present, its size, who shares it."""
    from breakingwind.models import load_manifest, resolve_agent_models

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
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
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
