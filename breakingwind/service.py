"""Run the daemon as a per-user background service: a launchd agent on macOS, a systemd user unit
on Linux.

The service file is rendered by pure functions from a `ServiceSpec` (the venv's interpreter, the
absolute config file, the data dir, the shutdown grace period), so both platforms' files can be
generated and checked on any OS. Installing writes it under the given home folder, validates it
(`plistlib` round trip; `systemd-analyze verify` when present) and loads it with the platform's
tool. Where that tool or a user session is unavailable (a container, SSH without a login session),
the file is still written and `install` says what to run instead.
"""

from __future__ import annotations

import os
import plistlib
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from breakingwind.config import Settings
from breakingwind.errors import ServiceError

LAUNCHD_LABEL = "dev.breakingwind.daemon"
SYSTEMD_UNIT = "breakingwind.service"
THROTTLE_S = 10  # launchd: at least this long between two starts of a crashing daemon
RESTART_S = 5  # systemd: wait before restarting a crashed daemon
STOP_MARGIN_S = 15  # beyond the grace period: the lifespan closes the models and the database
# A variable naming a key is not written into the service file (readable by other users).
SECRET_MARKER = "API_KEY"

Runner = Callable[[list[str]], subprocess.CompletedProcess[str]]


@dataclass(frozen=True)
class Step:
    """One service-manager command; `may_fail` when failing just means "already so"."""

    command: list[str]
    may_fail: bool = False

    def shell(self) -> str:
        return " ".join(self.command) + (" || true" if self.may_fail else "")


@dataclass(frozen=True)
class ServiceSpec:
    """Everything a service file says, resolved to absolute paths."""

    python: Path
    config: Path
    data_dir: Path
    working_dir: Path
    grace_s: float
    carried_env: dict[str, str] = field(default_factory=dict)  # BREAKINGWIND_* overrides
    dropped_env: tuple[str, ...] = ()  # overrides left out (secrets), named to the user

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def stdout_log(self) -> Path:
        return self.log_dir / "daemon.out.log"

    @property
    def stderr_log(self) -> Path:
        return self.log_dir / "daemon.err.log"

    @property
    def command(self) -> list[str]:
        return [str(self.python), "-m", "breakingwind", "serve"]

    @property
    def environment(self) -> dict[str, str]:
        return {
            **self.carried_env,
            "BREAKINGWIND_CONFIG": str(self.config),
            "BREAKINGWIND_HOME": str(self.data_dir),
        }

    @property
    def stop_timeout_s(self) -> int:
        """How long the service manager waits after SIGTERM before it kills the daemon."""
        return int(self.grace_s + 0.999) + STOP_MARGIN_S


def service_spec(settings: Settings, python: Path | None = None) -> ServiceSpec:
    """The spec for these settings, run by `python` (default: this venv's interpreter)."""
    if settings.config_file is None:
        raise ServiceError(
            "the service needs a config file: create config.toml (or pass --config) and run"
            " `breakingwind service install` again"
        )
    config = settings.config_file.resolve()
    overrides = {k: v for k, v in settings.env_overrides.items() if k != "BREAKINGWIND_HOME"}
    secret = {name for name in overrides if SECRET_MARKER in name}
    return ServiceSpec(
        python=Path(python or sys.executable).absolute(),
        config=config,
        data_dir=settings.storage.data_dir.resolve(),
        working_dir=config.parent,
        grace_s=settings.server.shutdown_grace_s,
        carried_env={k: v for k, v in overrides.items() if k not in secret},
        dropped_env=tuple(sorted(secret)),
    )


def launchd_plist(spec: ServiceSpec) -> bytes:
    """The launchd agent: started at login, restarted when it crashes (not when it exits 0)."""
    return plistlib.dumps(
        {
            "Label": LAUNCHD_LABEL,
            "ProgramArguments": spec.command,
            "EnvironmentVariables": spec.environment,
            "WorkingDirectory": str(spec.working_dir),
            "RunAtLoad": True,
            "KeepAlive": {"SuccessfulExit": False},
            "ThrottleInterval": THROTTLE_S,
            "ExitTimeOut": spec.stop_timeout_s,
            "StandardOutPath": str(spec.stdout_log),
            "StandardErrorPath": str(spec.stderr_log),
        }
    )


def systemd_unit(spec: ServiceSpec) -> str:
    """The systemd user unit: restarted on failure, stopped with SIGTERM and the grace period."""
    environment = "\n".join(
        f"Environment={_systemd_quote(f'{key}={value}')}" for key, value in spec.environment.items()
    )
    exec_start = " ".join(_systemd_quote(arg, in_command=True) for arg in spec.command)
    return f"""[Unit]
Description=BreakingWind local multi-agent coding daemon

[Service]
Type=exec
ExecStart={exec_start}
WorkingDirectory={_systemd_quote(str(spec.working_dir))}
{environment}
Restart=on-failure
RestartSec={RESTART_S}
KillSignal=SIGTERM
TimeoutStopSec={spec.stop_timeout_s}

[Install]
WantedBy=default.target
"""


def _systemd_quote(value: str, in_command: bool = False) -> str:
    """Escape `%` specifiers (and `$` in commands); quote values with spaces or quotes."""
    value = value.replace("%", "%%")
    if in_command:
        value = value.replace("$", "$$")
    if re.search(r"[\s\"'\\]", value):
        value = '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return value


@dataclass(frozen=True)
class InstallReport:
    path: Path
    text: str
    loaded: bool
    next_steps: list[str]


class Platform:
    """One service manager. Subclasses fill in the paths and commands."""

    name: ClassVar[str]
    tool: ClassVar[str]
    logs_need_manager: ClassVar[bool] = True  # False: logs are files, readable without it

    def __init__(self, home: Path, run: Runner | None = None) -> None:
        self.home = home
        self.run = run or _run

    def path(self) -> Path:
        raise NotImplementedError

    def render(self, spec: ServiceSpec) -> str:
        raise NotImplementedError

    def validate(self, path: Path) -> None:
        raise NotImplementedError

    def available(self) -> bool:
        return shutil.which(self.tool) is not None

    def load_steps(self) -> list[Step]:
        raise NotImplementedError

    def unload_steps(self) -> list[Step]:
        raise NotImplementedError

    def status_command(self) -> list[str]:
        raise NotImplementedError

    def logs_command(self, spec: ServiceSpec, lines: int, follow: bool) -> list[str]:
        raise NotImplementedError


class Launchd(Platform):
    name = "launchd"
    tool = "launchctl"
    logs_need_manager = False

    @property
    def target(self) -> str:
        return f"gui/{os.getuid()}"

    def path(self) -> Path:
        return self.home / "Library" / "LaunchAgents" / f"{LAUNCHD_LABEL}.plist"

    def render(self, spec: ServiceSpec) -> str:
        return launchd_plist(spec).decode()

    def validate(self, path: Path) -> None:
        try:
            data = plistlib.loads(path.read_bytes())
        except plistlib.InvalidFileException as exc:
            raise ServiceError(f"{path} is not a valid property list: {exc}") from None
        if data.get("Label") != LAUNCHD_LABEL or not data.get("ProgramArguments"):
            raise ServiceError(f"{path} lacks a Label or ProgramArguments")
        if shutil.which("plutil"):
            self._check(["plutil", "-lint", str(path)])

    def load_steps(self) -> list[Step]:
        service = f"{self.target}/{LAUNCHD_LABEL}"
        # bootout first, so a reinstall picks up the new file; it fails when nothing is loaded
        return [
            Step(["launchctl", "bootout", service], may_fail=True),
            Step(["launchctl", "enable", service]),
            Step(["launchctl", "bootstrap", self.target, str(self.path())]),
        ]

    def unload_steps(self) -> list[Step]:
        return [Step(["launchctl", "bootout", f"{self.target}/{LAUNCHD_LABEL}"], may_fail=True)]

    def status_command(self) -> list[str]:
        return ["launchctl", "print", f"{self.target}/{LAUNCHD_LABEL}"]

    def logs_command(self, spec: ServiceSpec, lines: int, follow: bool) -> list[str]:
        flags = ["-F"] if follow else []
        return ["tail", *flags, "-n", str(lines), str(spec.stdout_log), str(spec.stderr_log)]

    def _check(self, command: list[str]) -> None:
        proc = self.run(command)
        if proc.returncode != 0:
            raise ServiceError(f"`{' '.join(command)}` failed: {_output(proc)}")


class Systemd(Platform):
    name = "systemd"
    tool = "systemctl"

    def path(self) -> Path:
        return self.home / ".config" / "systemd" / "user" / SYSTEMD_UNIT

    def render(self, spec: ServiceSpec) -> str:
        return systemd_unit(spec)

    def validate(self, path: Path) -> None:
        """`systemd-analyze --user verify` when present; system scope when there is no user
        manager to ask (a container), which checks the same syntax."""
        if not shutil.which("systemd-analyze"):
            return
        proc = self.run(["systemd-analyze", "--user", "verify", str(path)])
        if proc.returncode != 0 and "Failed to initialize manager" in _output(proc):
            proc = self.run(["systemd-analyze", "verify", str(path)])
        if proc.returncode != 0 or str(path) in _output(proc):
            raise ServiceError(f"systemd-analyze rejects {path}: {_output(proc)}")

    def available(self) -> bool:
        """systemctl exists and a user manager answers (not so in most containers)."""
        if not super().available():
            return False
        return self.run(["systemctl", "--user", "show-environment"]).returncode == 0

    def load_steps(self) -> list[Step]:
        # restart, not start: a reinstall must replace a daemon running the old unit
        return [
            Step(["systemctl", "--user", "daemon-reload"]),
            Step(["systemctl", "--user", "enable", SYSTEMD_UNIT]),
            Step(["systemctl", "--user", "restart", SYSTEMD_UNIT]),
        ]

    def unload_steps(self) -> list[Step]:
        return [
            Step(["systemctl", "--user", "disable", "--now", SYSTEMD_UNIT], may_fail=True),
            Step(["systemctl", "--user", "daemon-reload"]),
        ]

    def status_command(self) -> list[str]:
        return ["systemctl", "--user", "status", "--no-pager", SYSTEMD_UNIT]

    def logs_command(self, spec: ServiceSpec, lines: int, follow: bool) -> list[str]:
        flags = ["-f"] if follow else []
        return ["journalctl", "--user", "-u", SYSTEMD_UNIT, "-n", str(lines), "--no-pager", *flags]


PLATFORMS: dict[str, type[Platform]] = {"darwin": Launchd, "linux": Systemd}


def platform_for(system: str, home: Path, run: Runner | None = None) -> Platform:
    """The service manager of `system` (a `sys.platform` value)."""
    for prefix, cls in PLATFORMS.items():
        if system.startswith(prefix):
            return cls(home, run)
    raise ServiceError(f"no background service support on {system}; run `breakingwind serve`")


def install_service(spec: ServiceSpec, platform: Platform) -> InstallReport:
    """Write, validate and load the service file; see the module docstring for the fallback."""
    path = platform.path()
    text = platform.render(spec)
    with tempfile.TemporaryDirectory() as folder:
        candidate = Path(folder) / path.name  # systemd-analyze wants the real unit name
        candidate.write_text(text)
        platform.validate(candidate)
    path.parent.mkdir(parents=True, exist_ok=True)
    spec.log_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    steps = platform.load_steps()
    if not platform.available():
        return InstallReport(path, text, loaded=False, next_steps=[s.shell() for s in steps])
    _run_steps(platform, steps)
    return InstallReport(path, text, loaded=True, next_steps=[])


def uninstall_service(platform: Platform) -> Path | None:
    """Stop and unload the service, then delete its file; return the deleted path (None: absent).
    Without a reachable service manager only the file is deleted."""
    path = platform.path()
    if not path.exists():
        return None
    path.unlink()
    if platform.available():
        _run_steps(platform, platform.unload_steps())
    return path


def show_status(platform: Platform) -> int:
    """Run the platform's status command on the terminal; return its exit code."""
    _check_queryable(platform)
    return _run_on_terminal(platform, platform.status_command())


def show_logs(platform: Platform, spec: ServiceSpec, lines: int, follow: bool) -> int:
    """Print the daemon's recent log lines (journal, or the log files under the data dir)."""
    _check_queryable(platform, needs_manager=platform.logs_need_manager)
    return _run_on_terminal(platform, platform.logs_command(spec, lines, follow))


def _check_queryable(platform: Platform, needs_manager: bool = True) -> None:
    """Say in one line why there is nothing to ask, rather than pass the tool's error through."""
    if not platform.path().exists():
        raise ServiceError(
            f"the service is not installed ({platform.path()} is absent):"
            " `breakingwind service install` writes it"
        )
    if needs_manager and not platform.available():
        raise ServiceError(
            f"no {platform.name} user manager answers here (a container, or SSH without a login"
            f" session), so the service cannot be queried; run `breakingwind serve` instead"
        )


def _run_on_terminal(platform: Platform, command: list[str]) -> int:
    if shutil.which(command[0]) is None:
        raise ServiceError(
            f"{command[0]} is not installed here, so the {platform.name} service cannot be queried"
        )
    try:
        return subprocess.run(command, check=False).returncode
    except KeyboardInterrupt:
        return 0  # leaving `logs --follow`


def _run_steps(platform: Platform, steps: list[Step]) -> None:
    for step in steps:
        proc = platform.run(step.command)
        if proc.returncode != 0 and not step.may_fail:
            raise ServiceError(f"`{' '.join(step.command)}` failed: {_output(proc)}")


def _output(proc: subprocess.CompletedProcess[str]) -> str:
    text = ((proc.stderr or "") + (proc.stdout or "")).strip()
    lines = [line for line in text.splitlines() if line.strip()]
    return " / ".join(lines) or f"exit {proc.returncode}"


def _run(command: list[str]) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return subprocess.CompletedProcess(command, 127, "", str(exc))
