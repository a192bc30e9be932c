"""One daemon per data folder, and a damaged store or config stops `serve` in one line.

Real `serve` processes, a real SQLite file damaged in the ways a disk or a person damages it."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from breakingwind.errors import StoreInUse, StoreUnreadable, TaskUnreadable
from breakingwind.store import TaskStore
from breakingwind.tasks import WorkflowOptions
from tests.conftest import REPO, Daemon, _free_port, daemon_config
from tests.pipeline_fixtures import TASK, make_project

DAMAGE = ["garbage", "truncated", "corrupted page", "zeroed header"]


def serve(config: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "breakingwind", "--config", str(config), "serve", *args]
    return subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def test_a_second_daemon_on_the_same_data_folder_exits_2_naming_the_first(
    tmp_path: Path, free_port: int, clean_env: dict[str, str]
) -> None:
    project = make_project(tmp_path / "project")
    config = daemon_config(tmp_path, project, free_port)
    first = Daemon(config, free_port, clean_env)
    try:
        with httpx.stream("POST", f"{first.url}/api/workflow", json={"input": TASK}) as response:
            task_id = response.headers["x-task-id"]  # running in the first daemon
            same_port = one_line(serve(config, clean_env))
            other_port = one_line(serve(config, clean_env, "--port", str(_free_port())))
            for line in (same_port, other_port):
                assert f"pid {first.proc.pid}" in line and str(tmp_path / "data") in line
            elsewhere = tmp_path / "elsewhere"
            elsewhere.mkdir()
            env = {**clean_env, "BREAKINGWIND_HOME": str(elsewhere)}
            taken = one_line(serve(config, env))  # another data folder, the same port
            assert f"cannot listen on 127.0.0.1:{free_port}" in taken
            assert first.proc.poll() is None
            assert httpx.get(f"{first.url}/health", timeout=10).status_code == 200
    finally:
        first.stop()
    with sqlite3.connect(tmp_path / "data" / "breakingwind.sqlite3") as db:
        kinds = [
            row[0] for row in db.execute("SELECT type FROM events WHERE task_id = ?", [task_id])
        ]
    assert kinds[0] == "task_created" and "resumed" not in kinds  # nobody else touched it


def test_a_store_is_locked_while_open(tmp_path: Path) -> None:
    store = TaskStore(tmp_path / "db.sqlite3")
    with pytest.raises(StoreInUse, match=f"pid {os.getpid()}"):
        TaskStore(tmp_path / "db.sqlite3")
    store.close()
    TaskStore(tmp_path / "db.sqlite3").close()  # released on close


def damaged_store(folder: Path, how: str) -> Path:
    path = folder / "breakingwind.sqlite3"
    store = TaskStore(path)
    for i in range(40):
        state = store.create(f"task {i} " + "x" * 2000, folder, WorkflowOptions())
        for _ in range(5):
            store.add_event(state.task_id, "token", {"agent": "planner", "text": "y" * 1500})
    store.close()
    data = bytearray(path.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    if how == "garbage":
        data = bytearray(os.urandom(len(data)))
    elif how == "truncated":
        data = data[: len(data) // 2 + 100]
    elif how == "corrupted page":
        middle = (len(data) // page // 2) * page
        data[middle : middle + 64] = b"\xff" * 64  # a B-tree page's header
    elif how == "zeroed header":
        data[:100] = bytes(100)
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("how", DAMAGE)
def test_a_damaged_database_is_refused_naming_the_file(tmp_path: Path, how: str) -> None:
    path = damaged_store(tmp_path, how)
    with pytest.raises(StoreUnreadable) as caught:
        TaskStore(path)
    message = str(caught.value)
    assert str(path) in message and "Move it aside" in message and "\n" not in message
    TaskStore(tmp_path / "other.sqlite3").close()  # the refused open left the folder unlocked


@pytest.mark.parametrize("how", ["garbage", "corrupted page"])
def test_serve_on_a_damaged_database_exits_2_in_one_line(
    tmp_path: Path, free_port: int, clean_env: dict[str, str], how: str
) -> None:
    config = daemon_config(tmp_path, make_project(tmp_path / "project"), free_port)
    (tmp_path / "data").mkdir()
    path = damaged_store(tmp_path / "data", how)
    line = one_line(serve(config, clean_env))
    assert str(path) in line and "restore it from a backup" in line


def test_serve_with_a_non_utf8_config_exits_2_naming_it(
    tmp_path: Path, clean_env: dict[str, str]
) -> None:
    config = tmp_path / "config.toml"
    config.write_bytes(b'[server]\nhost = "caf\xe9"\n')
    result = serve(config, clean_env)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert str(config) in result.stderr and "not UTF-8" in result.stderr


def test_one_bad_task_row_is_skipped_and_the_others_are_served(tmp_path: Path) -> None:
    path = tmp_path / "breakingwind.sqlite3"
    store = TaskStore(path)
    good = [store.create(f"task {i}", tmp_path, WorkflowOptions()).task_id for i in range(3)]
    store.close()
    with sqlite3.connect(path) as db:
        db.execute(
            "INSERT INTO tasks (task_id, stage, state, created_at, updated_at)"
            " VALUES ('bad1', 'plan', '{not json', '2026-01-01', '2026-01-01'),"
            " ('bad2', 'plan', '{\"task_id\": 7}', '2026-01-01', '2026-01-01'),"
            " ('bad3', 'plan', NULL, '2026-01-01', '2026-01-01')"
        )
    store = TaskStore(path)
    try:
        tasks, total = store.list()
        assert sorted(t.task_id for t in tasks) == sorted(good) and total == 3
        assert sorted(store.unreadable) == ["bad1", "bad2", "bad3"]
        assert sorted(t.task_id for t in store.unfinished()) == sorted(good)  # never resumed
        with pytest.raises(TaskUnreadable, match="bad1"):
            store.get("bad1")
        store.add_event(good[0], "token", {"agent": "planner", "text": "still served"})
    finally:
        store.close()


def test_a_bad_row_is_a_typed_500_over_http_and_the_rest_is_served(
    tmp_path: Path, free_port: int, clean_env: dict[str, str]
) -> None:
    config = daemon_config(tmp_path, make_project(tmp_path / "project"), free_port)
    store = TaskStore(tmp_path / "data" / "breakingwind.sqlite3")
    store.close()
    with sqlite3.connect(tmp_path / "data" / "breakingwind.sqlite3") as db:
        db.execute(
            "INSERT INTO tasks (task_id, stage, state, created_at, updated_at)"
            " VALUES ('bad1', 'plan', 'garbage', '2026-01-01', '2026-01-01')"
        )
    daemon = Daemon(config, free_port, clean_env)
    try:
        bad = httpx.get(f"{daemon.url}/api/task/bad1", timeout=10)
        listed = httpx.get(f"{daemon.url}/api/tasks", timeout=10)
    finally:
        daemon.stop()
    assert bad.status_code == 500 and bad.json()["error"]["code"] == "task_unreadable"
    assert listed.status_code == 200 and listed.json()["total"] == 0
