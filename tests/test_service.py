"""`breakingwind service`: the launchd plist and systemd unit (both checked on any OS), and
install/uninstall through the CLI with HOME in a temp folder and a stand-in `systemctl`."""

from __future__ import annotations

import os
import plistlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from breakingwind.errors import ServiceError
from breakingwind.service import (
    LAUNCHD_LABEL,
    STOP_MARGIN_S,
    Launchd,
    ServiceSpec,
    Systemd,
    install_service,
    launchd_plist,
    systemd_unit,
)
from tests.conftest import write_config

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="systemd is Linux")


def make_spec(tmp_path: Path, python: Path | None = None, grace_s: float = 12.5) -> ServiceSpec:
    return ServiceSpec(
        python=python or Path(sys.executable),
        config=tmp_path / "project" / "config.toml",
        data_dir=tmp_path / "data",
        working_dir=tmp_path / "project",
        grace_s=grace_s,
    )


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """A systemd unit as section -> key -> values (keys such as Environment may repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
        elif line and not line.startswith("#"):
            key, _, value = line.partition("=")
            current.setdefault(key, []).append(value)
    return sections


def test_launchd_plist_restarts_on_crash_and_logs_under_the_data_dir(tmp_path: Path) -> None:
    spec = make_spec(tmp_path)
    plist = plistlib.loads(launchd_plist(spec))
    assert plist["Label"] == LAUNCHD_LABEL
    assert plist["ProgramArguments"] == [sys.executable, "-m", "breakingwind", "serve"]
    assert plist["RunAtLoad"] is True
    assert plist["KeepAlive"] == {"SuccessfulExit": False}
    assert plist["ThrottleInterval"] > 0
    assert plist["StandardOutPath"] == str(tmp_path / "data" / "logs" / "daemon.out.log")
    assert plist["StandardErrorPath"] == str(tmp_path / "data" / "logs" / "daemon.err.log")
    assert plist["EnvironmentVariables"]["BREAKINGWIND_CONFIG"] == str(spec.config)
    assert plist["EnvironmentVariables"]["BREAKINGWIND_HOME"] == str(spec.data_dir)
    assert plist["WorkingDirectory"] == str(spec.working_dir)
    assert plist["ExitTimeOut"] == 13 + STOP_MARGIN_S


def test_systemd_unit_restarts_on_failure_and_waits_the_grace_period(tmp_path: Path) -> None:
    spec = make_spec(tmp_path)
    unit = parse_unit(systemd_unit(spec))
    service = unit["Service"]
    assert service["ExecStart"] == [f"{sys.executable} -m breakingwind serve"]
    assert service["Restart"] == ["on-failure"]
    assert service["KillSignal"] == ["SIGTERM"]
    assert service["TimeoutStopSec"] == [str(13 + STOP_MARGIN_S)]
    assert service["Environment"] == [
        f"BREAKINGWIND_CONFIG={spec.config}",
        f"BREAKINGWIND_HOME={spec.data_dir}",
    ]
    assert service["WorkingDirectory"] == [str(spec.working_dir)]
    assert unit["Install"]["WantedBy"] == ["default.target"]


def test_systemd_unit_quotes_spaces_and_escapes_specifiers(tmp_path: Path) -> None:
    spec = make_spec(tmp_path / "my 100% home", python=Path("/opt/my venv/bin/python"))
    service = parse_unit(systemd_unit(spec))["Service"]
    assert service["ExecStart"] == ['"/opt/my venv/bin/python" -m breakingwind serve']
    config = str(spec.config).replace("%", "%%")
    assert service["Environment"][0] == f'"BREAKINGWIND_CONFIG={config}"'


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze not installed")
def test_systemd_analyze_accepts_the_unit(tmp_path: Path) -> None:
    spec = make_spec(tmp_path)
    spec.working_dir.mkdir(parents=True)
    path = tmp_path / "breakingwind.service"
    path.write_text(systemd_unit(spec))
    Systemd(tmp_path).validate(path)  # raises ServiceError with systemd-analyze's complaint


def test_launchd_install_without_launchctl_writes_the_plist_and_says_what_to_run(
    tmp_path: Path,
) -> None:
    spec = make_spec(tmp_path)
    launchd = Launchd(tmp_path / "home")
    if launchd.available():
        pytest.skip("launchctl is present: this would load a real agent")
    report = install_service(spec, launchd)
    path = tmp_path / "home" / "Library" / "LaunchAgents" / f"{LAUNCHD_LABEL}.plist"
    assert report.path == path and not report.loaded
    assert plistlib.loads(path.read_bytes())["Label"] == LAUNCHD_LABEL
    assert report.next_steps[-1] == f"launchctl bootstrap gui/{os.getuid()} {path}"
    assert spec.log_dir.is_dir()


# --- the CLI, with HOME in tmp_path and a stand-in systemctl that records its calls -----------


@pytest.fixture
def fake_systemctl(tmp_path: Path) -> tuple[Path, Path]:
    """A `systemctl` on PATH that logs its arguments; exit code from $FAKE_SYSTEMCTL_RC."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "systemctl-calls"
    script = bin_dir / "systemctl"
    script.write_text(
        f'#!/bin/sh\necho "$*" >> {calls}\n'
        'if [ "${FAKE_SYSTEMCTL_RC:-0}" != 0 ]; then echo "Failed to connect to bus" >&2; fi\n'
        'exit "${FAKE_SYSTEMCTL_RC:-0}"\n'
    )
    script.chmod(0o755)
    return bin_dir, calls


def service_cli(
    tmp_path: Path, env: dict[str, str], bin_dir: Path, *args: str, rc: int = 0
) -> subprocess.CompletedProcess[str]:
    config = write_config(tmp_path, '[storage]\ndata_dir = "data"\n')
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    environment = {
        **env,
        "HOME": str(home),
        "PATH": f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
        "FAKE_SYSTEMCTL_RC": str(rc),
    }
    return subprocess.run(
        [sys.executable, "-m", "breakingwind", "--config", str(config), "service", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=environment,
    )


@linux_only
def test_install_dry_run_prints_the_unit_and_writes_nothing(
    tmp_path: Path, clean_env: dict[str, str], fake_systemctl: tuple[Path, Path]
) -> None:
    bin_dir, calls = fake_systemctl
    proc = service_cli(tmp_path, clean_env, bin_dir, "install", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert "Restart=on-failure" in proc.stdout
    assert f"BREAKINGWIND_CONFIG={tmp_path / 'config.toml'}" in proc.stdout
    assert list((tmp_path / "home").iterdir()) == []
    assert not calls.exists()


@linux_only
def test_install_writes_loads_and_uninstall_removes_the_unit(
    tmp_path: Path, clean_env: dict[str, str], fake_systemctl: tuple[Path, Path]
) -> None:
    bin_dir, calls = fake_systemctl
    proc = service_cli(tmp_path, clean_env, bin_dir, "install")
    assert proc.returncode == 0, proc.stderr
    unit = tmp_path / "home" / ".config" / "systemd" / "user" / "breakingwind.service"
    assert parse_unit(unit.read_text())["Service"]["Restart"] == ["on-failure"]
    assert "loaded with systemctl" in proc.stdout
    assert calls.read_text().splitlines() == [
        "--user show-environment",
        "--user daemon-reload",
        "--user enable breakingwind.service",
        "--user restart breakingwind.service",
    ]
    calls.unlink()
    proc = service_cli(tmp_path, clean_env, bin_dir, "uninstall")
    assert proc.returncode == 0, proc.stderr
    assert not unit.exists()
    assert "--user disable --now breakingwind.service" in calls.read_text().splitlines()


@linux_only
def test_install_without_a_user_manager_prints_next_steps(
    tmp_path: Path, clean_env: dict[str, str], fake_systemctl: tuple[Path, Path]
) -> None:
    bin_dir, calls = fake_systemctl
    proc = service_cli(tmp_path, clean_env, bin_dir, "install", rc=1)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "home" / ".config" / "systemd" / "user" / "breakingwind.service").is_file()
    assert "not loaded" in proc.stdout
    assert "  systemctl --user enable breakingwind.service" in proc.stdout
    assert calls.read_text().splitlines() == ["--user show-environment"]


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze not installed")
def test_systemd_analyze_rejects_a_broken_unit(tmp_path: Path) -> None:
    path = tmp_path / "breakingwind.service"
    path.write_text(systemd_unit(make_spec(tmp_path)).replace("on-failure", "sometimes"))
    with pytest.raises(ServiceError, match="Restart|restart"):
        Systemd(tmp_path).validate(path)


@linux_only
def test_install_carries_the_environment_overrides_and_names_a_left_out_key(
    tmp_path: Path, clean_env: dict[str, str], fake_systemctl: tuple[Path, Path]
) -> None:
    bin_dir, _ = fake_systemctl
    env = {
        **clean_env,
        "BREAKINGWIND_SERVER__PORT": "9123",
        "BREAKINGWIND_CODER__N_CTX": "4096",
        "BREAKINGWIND_SERVER__API_KEY": "s3cret",
    }
    proc = service_cli(tmp_path, env, bin_dir, "install")
    assert proc.returncode == 0, proc.stderr
    unit = tmp_path / "home" / ".config" / "systemd" / "user" / "breakingwind.service"
    environment = parse_unit(unit.read_text())["Service"]["Environment"]
    assert "BREAKINGWIND_SERVER__PORT=9123" in environment
    assert "BREAKINGWIND_CODER__N_CTX=4096" in environment
    assert "s3cret" not in unit.read_text()
    assert (
        "carried into the service: BREAKINGWIND_CODER__N_CTX, BREAKINGWIND_SERVER__PORT"
        in proc.stdout
    )
    assert "left out: BREAKINGWIND_SERVER__API_KEY (a key would sit" in proc.stdout


@linux_only
@pytest.mark.parametrize("command", ["status", "logs"])
def test_status_and_logs_of_a_service_not_installed_say_so_in_one_line(
    tmp_path: Path, clean_env: dict[str, str], fake_systemctl: tuple[Path, Path], command: str
) -> None:
    bin_dir, calls = fake_systemctl
    proc = service_cli(tmp_path, clean_env, bin_dir, command)
    unit = tmp_path / "home" / ".config" / "systemd" / "user" / "breakingwind.service"
    assert proc.returncode == 1
    assert proc.stderr == (
        f"breakingwind: the service is not installed ({unit} is absent):"
        " `breakingwind service install` writes it\n"
    )
    assert not calls.exists()


@linux_only
def test_status_without_a_user_manager_says_why_in_one_line(
    tmp_path: Path, clean_env: dict[str, str], fake_systemctl: tuple[Path, Path]
) -> None:
    bin_dir, _ = fake_systemctl
    service_cli(tmp_path, clean_env, bin_dir, "install", rc=1)  # written, not loaded
    proc = service_cli(tmp_path, clean_env, bin_dir, "status", rc=1)
    assert proc.returncode == 1
    assert proc.stderr.startswith("breakingwind: no systemd user manager answers here")
    assert "Failed to connect to bus" not in proc.stderr and len(proc.stderr.splitlines()) == 1
