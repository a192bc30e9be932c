"""`breakingwind doctor`: each check against the real thing it checks (files, sockets, SQLite, a
live daemon), through the CLI where the exit code and the output format matter."""

from __future__ import annotations

import http.server
import json
import os
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

import pytest

from breakingwind.api.app import create_app
from breakingwind.backend_choice import Machine
from breakingwind.checks.context import Context, Result, Status
from breakingwind.checks.doctor import CHECKS, Report, run_doctor
from breakingwind.checks.install import InstalledBuild, installed_build
from breakingwind.config import AGENT_NAMES, Settings, load_settings
from breakingwind.engine import Engine
from breakingwind.engine.gguf_file import GGUFInfo
from breakingwind.errors import InvalidModelFile
from breakingwind.hardware import Gpu, Hardware
from breakingwind.modelfiles.lock import LockEntry, ModelLock, lock_path, save_lock
from tests.conftest import LiveServer, make_settings, write_config

GIB = 1024**3
SMALL = 64 * 1024**2  # less than the embedded model needs
GGUFCache = dict[Path, GGUFInfo | InvalidModelFile]
NO_GPU = Hardware(apple_silicon=False, nvidia_driver=False, gpus=(), ram_bytes=64 * GIB)
APPLE = Hardware(apple_silicon=True, nvidia_driver=False, gpus=(), ram_bytes=64 * GIB)
NVIDIA = Hardware(
    apple_silicon=False, nvidia_driver=True, gpus=(Gpu("NVIDIA H100", 80 * GIB),), ram_bytes=GIB
)


def doctor_cli(config: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "breakingwind", "--config", str(config), "doctor", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


def run(settings: Settings, *names: str, **context: object) -> list[Result]:
    """Run only the named checks (in table order) on `settings`; the results of all of them."""
    home = settings.storage.data_dir.parent / "home"  # no service installed there
    ctx = Context(settings, settings.server.url, home=home, **context)
    return run_doctor(ctx, checks=[check for check in CHECKS if check.name in names]).results


def only(results: list[Result], status: Status) -> list[Result]:
    return [result for result in results if result.status == status]


def embedded_config(tmp_path: Path, port: int) -> Path:
    """Every agent configured with the embedded GGUF itself (no fallback), at a small context."""
    from breakingwind.modelfiles.manifest import embedded_model_path

    agents = "".join(
        f'[{agent}]\nmodel = "{embedded_model_path()}"\nn_ctx = 2048\n' for agent in AGENT_NAMES
    )
    return write_config(
        tmp_path,
        f'[server]\nport = {port}\n[storage]\ndata_dir = "data"\n'
        f'[engine]\nmodels_dir = "models"\n{agents}',
    )


@pytest.fixture(scope="module")
def ggufs() -> GGUFCache:
    """GGUF headers shared by this module's checks."""
    return {}


@pytest.fixture
def home_env(tmp_path: Path, clean_env: dict[str, str]) -> dict[str, str]:
    """A clean environment whose HOME is empty (no service installed)."""
    home = tmp_path / "home"
    home.mkdir()
    return {**clean_env, "HOME": str(home)}


# --- through the CLI --------------------------------------------------------------------------


def test_fresh_install_warns_about_fallbacks_and_fails_nothing(
    tmp_path: Path, home_env: dict[str, str], free_port: int
) -> None:
    config = write_config(tmp_path, f'[server]\nport = {free_port}\n[storage]\ndata_dir = "d"\n')
    proc = doctor_cli(config, home_env, "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = Report.model_validate_json(proc.stdout)
    assert report.ok and not only(report.results, Status.FAIL)
    warnings = {(r.check, r.fix) for r in only(report.results, Status.WARN)}
    assert warnings == {
        *(("models", f"breakingwind models pull {agent}") for agent in AGENT_NAMES),
        ("daemon", "`make run`, or `breakingwind service install` to run it in the background"),
    }
    daemon = next(r for r in report.results if r.check == "daemon")
    assert daemon.detail == f"not running: nothing answers at http://127.0.0.1:{free_port}"
    assert set(report.skipped) == {
        "openai_api",
        "chat",
        "mcp",
        "remote",
    }  # no daemon, no remote agent
    checks = {r.check for r in report.results}
    assert checks == {
        *("config", "python", "packages", "backend", "models", "memory", "port", "data_dir"),
        *("database", "service", "tools", "daemon"),
    }
    assert json.loads(proc.stdout)["ok"] is True


def test_broken_model_file_fails_naming_it_and_exits_1(
    tmp_path: Path, home_env: dict[str, str], free_port: int
) -> None:
    broken = tmp_path / "models" / "Devstral-Small-2507-Q6_K.gguf"
    broken.parent.mkdir()
    broken.write_bytes(b"<html>rate limited</html>" * 10)
    config = write_config(
        tmp_path, f'[server]\nport = {free_port}\n[engine]\nmodels_dir = "models"\n'
    )
    proc = doctor_cli(config, home_env, "--skip-live")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    failed = [i for i, line in enumerate(lines) if line.startswith("FAIL")]
    assert len(failed) == 1
    assert f"coder: {broken}: not a GGUF file" in lines[failed[0]]
    assert lines[failed[0] + 1].strip() == "fix: breakingwind models pull coder --force"
    assert lines[-1].endswith("1 FAIL: FAILED")
    assert "skipped daemon, openai_api, chat, mcp: --skip-live" in lines


def test_live_round_trip_against_a_running_daemon_is_all_ok(
    tmp_path: Path, home_env: dict[str, str], engine: Engine
) -> None:
    with LiveServer(create_app(make_settings(tmp_path), engine)) as live:
        config = embedded_config(tmp_path, int(live.url.rsplit(":", 1)[1]))
        proc = doctor_cli(config, home_env, "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = Report.model_validate_json(proc.stdout)
    assert [r for r in report.results if r.status != Status.OK] == []
    assert report.skipped == {"remote": "every agent runs in-process"}
    details = {r.check: r.detail for r in report.results}
    assert "in use by a BreakingWind daemon" in details["port"]
    assert "breakingwind-coder" in details["openai_api"]
    assert details["chat"].startswith("breakingwind-coder answered")
    assert "6 tools" in details["mcp"] and "read_file" in details["mcp"]
    ready = [r.detail for r in report.results if r.check == "daemon"]
    assert sorted(d.split(":")[0] for d in ready) == sorted(AGENT_NAMES)


# --- one check at a time, in process ----------------------------------------------------------


def test_memory_budget_too_small_fails_naming_the_refused_model(
    tmp_path: Path, ggufs: GGUFCache
) -> None:
    settings = make_settings(tmp_path, "memory_budget_gb = 0.01")
    failed = only(run(settings, "memory", gguf_cache=ggufs), Status.FAIL)
    assert len(failed) == 1
    assert failed[0].detail.startswith("engine.memory_budget_gb = 0.01 GiB is too small")
    assert "SmolLM2-135M-Instruct.Q4_1.gguf (preprocessor, planner, coder, reviewer" in (
        failed[0].detail
    )
    assert failed[0].fix is not None and "raise engine.memory_budget_gb" in failed[0].fix


@pytest.mark.parametrize(
    ("backend", "hardware", "pool"),
    [
        ("CPU", Hardware(False, False, (), ram_bytes=SMALL), "RAM"),
        ("CUDA", Hardware(False, True, (Gpu("NVIDIA T400", SMALL),), ram_bytes=GIB), "VRAM"),
        ("Metal", Hardware(True, False, (), ram_bytes=SMALL), "unified memory"),
    ],
)
def test_models_larger_than_the_machine_fail(
    tmp_path: Path, backend: str, hardware: Hardware, pool: str, ggufs: GGUFCache
) -> None:
    settings = make_settings(tmp_path)
    ctx = Context(settings, settings.server.url, gguf_cache=ggufs)
    ctx.hardware, ctx.backend = hardware, backend  # describe another machine to the check
    memory = [c for c in CHECKS if c.name == "memory"]
    failed = only(run_doctor(ctx, checks=memory).results, Status.FAIL)
    assert len(failed) == 1
    assert failed[0].detail.endswith(f"0.1 GiB of {pool}: they do not fit")
    assert failed[0].fix is not None and "lower n_ctx" in failed[0].fix


@pytest.mark.parametrize(
    ("hardware", "backend", "status", "fix"),
    [
        (APPLE, "CPU", Status.WARN, "make install BREAKINGWIND_BACKEND=metal"),
        (
            NVIDIA,
            "CPU",
            Status.WARN,
            "put the CUDA toolkit's nvcc on PATH, then: make install BREAKINGWIND_BACKEND=cuda",
        ),
        (
            NO_GPU,
            "CUDA",
            Status.WARN,
            "install the NVIDIA driver, or build for the CPU: "
            "make install BREAKINGWIND_BACKEND=cpu",
        ),
        (NVIDIA, "CUDA", Status.OK, None),
        (APPLE, "Metal", Status.OK, None),
        (NO_GPU, "CPU", Status.OK, None),
    ],
)
def test_backend_is_checked_against_the_hardware(
    tmp_path: Path, hardware: Hardware, backend: str, status: Status, fix: str | None
) -> None:
    settings = make_settings(tmp_path)
    ctx = Context(settings, settings.server.url)
    ctx.hardware, ctx.backend = hardware, backend
    ctx.installed_build = None  # installed some other way than scripts/install.sh
    [result] = run_doctor(ctx, checks=[c for c in CHECKS if c.name == "backend"]).results
    assert result.status == status
    if fix:
        assert result.fix == fix
    assert (result.fix is None) == (status == Status.OK)


def test_backend_line_names_the_wheel_install_sh_built(tmp_path: Path) -> None:
    record = {
        "backend": "cuda",
        "cmake_args": "-DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90",
        "wheel_key": "cuda-sm90-x86_64",
        "reason": "CUDA (nvidia-smi lists 1 GPU(s), compute capability 9.0; nvcc /usr/bin/nvcc)",
        "requested": "auto",
        "wheel": str(tmp_path / "llama_cpp_python-0.3.36-cp311-cp311-linux_x86_64.whl"),
    }
    (tmp_path / "breakingwind-backend.json").write_text(json.dumps(record))
    settings = make_settings(tmp_path)
    ctx = Context(settings, settings.server.url)
    ctx.hardware, ctx.backend = NO_GPU, "CUDA"
    ctx.installed_build = installed_build(tmp_path)
    [result] = run_doctor(ctx, checks=[c for c in CHECKS if c.name == "backend"]).results
    assert result.status == Status.WARN
    assert "a CUDA build but no NVIDIA GPU" in result.detail
    assert "(wheel cuda-sm90-x86_64: CUDA (nvidia-smi lists 1 GPU(s)" in result.detail


@pytest.mark.parametrize(
    ("built_for", "status"), [("cuda-sm90-x86_64", Status.OK), ("cuda-sm86-x86_64", Status.WARN)]
)
def test_a_cuda_wheel_is_checked_against_the_gpus_compute_capability(
    tmp_path: Path, built_for: str, status: Status
) -> None:
    settings = make_settings(tmp_path)
    ctx = Context(settings, settings.server.url)
    ctx.hardware, ctx.backend = NVIDIA, "CUDA"
    ctx.build_machine = Machine("Linux", "x86_64", "/usr/bin/nvcc", ("9.0",), "nvidia-smi lists 1")
    ctx.installed_build = InstalledBuild(
        backend="cuda",
        cmake_args="-DGGML_CUDA=ON",
        wheel_key=built_for,
        reason="CUDA (an older GPU)",
        requested="auto",
        wheel=str(tmp_path / "llama_cpp_python-0.3.36-py3-none-linux_x86_64.whl"),
    )
    [result] = run_doctor(ctx, checks=[c for c in CHECKS if c.name == "backend"]).results
    assert result.status == status
    if status == Status.WARN:
        assert "would now build cuda-sm90-x86_64: CUDA (nvidia-smi lists 1" in result.detail
        assert result.fix == "make install BREAKINGWIND_BACKEND=auto"
    else:
        assert result.detail.startswith("llama-cpp-python is a CUDA build (wheel cuda-sm90-x86_64")


def test_no_install_record_is_no_wheel_named(tmp_path: Path) -> None:
    (tmp_path / "breakingwind-backend.json").write_text('{"backend": "cpu"}')  # truncated
    assert installed_build(tmp_path) is None
    assert installed_build(tmp_path / "missing") is None


def _index_out_of_step(path: Path) -> str:
    """A database whose index no longer matches its table (what integrity_check reports)."""
    with closing(sqlite3.connect(path)) as db:
        db.execute("CREATE TABLE tasks (id INTEGER PRIMARY KEY, stage TEXT, title TEXT)")
        db.execute("CREATE INDEX tasks_stage ON tasks (stage)")
        rows = [("plan", f"task {i}") for i in range(50)]
        db.executemany("INSERT INTO tasks (stage, title) VALUES (?, ?)", rows)
        db.execute("PRAGMA writable_schema = ON")
        db.execute(
            "UPDATE sqlite_master SET sql = 'CREATE INDEX tasks_stage ON tasks (title)'"
            " WHERE name = 'tasks_stage'"
        )
        db.commit()
    return "fails PRAGMA integrity_check: row 1 missing from index tasks_stage (and 49 more)"


def _garbage(path: Path) -> str:
    path.write_bytes(b"this was never a database\n" * 100)
    return "cannot be read as SQLite: file is not a database"


@pytest.mark.parametrize("damage", [_index_out_of_step, _garbage], ids=["index", "not_sqlite"])
def test_corrupted_sqlite_fails_naming_the_file(
    tmp_path: Path, damage: Callable[[Path], str]
) -> None:
    settings = make_settings(tmp_path)
    path = settings.storage.database_path
    path.parent.mkdir(parents=True)
    reason = damage(path)
    [result] = run(settings, "database")
    assert result.status == Status.FAIL
    assert result.detail == f"{path} {reason}"
    assert result.fix is not None and f"mv {path} {path}.broken" in result.fix


def test_healthy_sqlite_is_ok_and_opened_read_only(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    path = settings.storage.database_path
    path.parent.mkdir(parents=True)
    with closing(sqlite3.connect(path)) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE tasks (id INTEGER PRIMARY KEY)")
        db.commit()
    before = path.stat().st_mtime_ns
    [result] = run(settings, "database")
    assert result.status == Status.OK
    assert "integrity ok, journal_mode wal" in result.detail
    assert path.stat().st_mtime_ns == before


def test_data_dir_under_a_regular_file_fails(tmp_path: Path) -> None:
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where a folder should be\n")
    settings = make_settings(tmp_path, environ={"BREAKINGWIND_HOME": str(blocker / "sub")})
    [result] = run(settings, "data_dir")
    assert result.status == Status.FAIL
    assert result.detail == f"{blocker / 'sub'} cannot be a folder: {blocker} is a file"
    assert result.fix is not None and "BREAKINGWIND_HOME" in result.fix


def test_a_project_root_that_is_not_a_folder_fails(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-project"
    settings = make_settings(tmp_path, environ={"BREAKINGWIND_PROJECT_ROOT": str(missing)})
    [result] = run(settings, "tools")
    assert result.status == Status.FAIL
    assert result.detail.endswith(f"cannot start: project {missing} is not a folder")
    assert result.fix is not None and "BREAKINGWIND_PROJECT_ROOT" in result.fix


def test_data_dir_probe_leaves_nothing_behind(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    settings.storage.data_dir.mkdir()
    [result] = run(settings, "data_dir")
    assert result.status == Status.OK
    assert list(settings.storage.data_dir.iterdir()) == []


class _NotBreakingWind(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        self.send_response(404)
        self.end_headers()
        self.wfile.write(b"nothing here")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def other_server() -> Iterator[int]:
    """Another program's web server on a loopback port (it answers 404 to everything)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NotBreakingWind)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_port_in_use_by_another_program_fails_naming_it(tmp_path: Path, other_server: int) -> None:
    settings = make_settings(tmp_path, environ={"BREAKINGWIND_SERVER__PORT": str(other_server)})
    port, daemon = run(settings, "port", "daemon")
    assert port.status == Status.FAIL
    assert port.detail.startswith(f"127.0.0.1:{other_server} is in use by ")
    assert f"(pid {os.getpid()})" in port.detail
    assert port.fix is not None and "BREAKINGWIND_SERVER__PORT" in port.fix
    assert daemon.status == Status.FAIL
    assert "answered HTTP 404" in daemon.detail


def test_free_port_is_ok(tmp_path: Path, free_port: int) -> None:
    settings = make_settings(tmp_path, environ={"BREAKINGWIND_SERVER__PORT": str(free_port)})
    [result] = run(settings, "port")
    assert (result.status, result.detail) == (Status.OK, f"127.0.0.1:{free_port} is free")


def test_a_wrong_api_key_fails_the_live_checks_with_the_fix(tmp_path: Path, engine: Engine) -> None:
    served = make_settings(tmp_path, '[server]\napi_key = "sesame"\n')
    with LiveServer(create_app(served, engine)) as live:
        port = live.url.rsplit(":", 1)[1]
        wrong = make_settings(
            tmp_path,
            environ={"BREAKINGWIND_SERVER__PORT": port, "BREAKINGWIND_SERVER__API_KEY": "nope"},
        )
        results = run(wrong, "daemon", "openai_api", "mcp")
    assert only(results, Status.WARN) == []
    failed = only(results, Status.FAIL)
    assert [r.check for r in failed] == ["openai_api", "mcp"]
    for result in failed:
        assert "HTTP 401" in result.detail
        assert result.fix is not None and "api_key" in result.fix


def test_verify_hashes_the_file_against_the_lock(
    tmp_path: Path, model_copy: Path, ggufs: GGUFCache
) -> None:
    settings = make_settings(tmp_path, f'[coder]\nmodel = "{model_copy.name}"\n')
    entry = LockEntry(
        repo="org/repo",
        file=model_copy.name,
        commit="0" * 40,
        path=model_copy,
        size_bytes=model_copy.stat().st_size,
        sha256="0" * 64,
        downloaded_at=datetime.now(UTC),
    )
    save_lock(ModelLock(models={"coder": entry}), lock_path(settings))
    quick = [r for r in run(settings, "models", gguf_cache=ggufs) if r.detail.startswith("coder:")]
    assert quick[0].status == Status.OK and "`--verify` checks the sha256" in quick[0].detail
    full = [
        r
        for r in run(settings, "models", verify=True, gguf_cache=ggufs)
        if r.detail.startswith("coder:")
    ]
    assert full[0].status == Status.FAIL
    assert "sha256 is " in full[0].detail and f"the Hub's is {'0' * 64}" in full[0].detail
    assert full[0].fix == "breakingwind models pull coder --force"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the systemd unit is Linux's")
def test_an_out_of_date_service_file_warns(tmp_path: Path) -> None:
    settings = load_settings(write_config(tmp_path, '[storage]\ndata_dir = "data"\n'), environ={})
    unit = tmp_path / "home" / ".config" / "systemd" / "user" / "breakingwind.service"
    unit.parent.mkdir(parents=True)
    unit.write_text("[Service]\nExecStart=/old/venv/bin/python -m breakingwind serve\n")
    ctx = Context(settings, settings.server.url, home=tmp_path / "home")
    results = run_doctor(ctx, checks=[c for c in CHECKS if c.name == "service"]).results
    assert results[0].status == Status.WARN
    assert results[0].detail == (
        f"{unit} is out of date: it runs another interpreter, config file or data dir than this"
        " doctor's"
    )
    assert results[0].fix == "breakingwind service install"
    assert Status.FAIL not in {r.status for r in results}


def test_a_crashing_check_becomes_one_fail_line(tmp_path: Path) -> None:
    from breakingwind.checks.doctor import Check

    def explode(ctx: Context) -> list[Result]:
        raise RuntimeError("boom")

    settings = make_settings(tmp_path)
    report = run_doctor(Context(settings, settings.server.url), checks=[Check("remote", explode)])
    [result] = report.results
    assert (result.check, result.status) == ("remote", Status.FAIL)
    assert result.detail == "the check itself failed: RuntimeError: boom"
    assert not report.ok
