"""The task store: TaskState in memory, mirrored to SQLite, with each task's event stream.

Every change is committed to SQLite first and only then applied in memory and announced to
subscribers, so a crash never loses something a client was told. SQLite settings (documented in
docs/reliability.md): WAL journal; synchronous=NORMAL, which survives a killed process (the tested
fault) though not a power cut between checkpoints; `fullfsync` on macOS; a busy timeout; the WAL
checkpointed every 1000 pages so it stays bounded. Writes happen on the event loop's thread: each
is a small transaction without an fsync (NORMAL in WAL mode), well under a millisecond here.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import os
import sqlite3
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import sqlite_utils

from breakingwind.errors import (
    StoreError,
    StoreInUse,
    StoreUnreadable,
    TaskNotFound,
    TaskUnreadable,
)
from breakingwind.migrations import migrate
from breakingwind.tasks import Event, EventType, TaskState, WorkflowOptions, now

SUBSCRIBER_BUFFER = 2000  # events a slow reader may fall behind before it is dropped
LOCK_FILE = "breakingwind.lock"
log = logging.getLogger(__name__)


class SubscriberDropped(Exception):
    """A reader fell too far behind; it should reconnect with Last-Event-ID."""


class TaskStore:
    """The store of one data folder.

    Opening it takes an exclusive OS lock on the folder (`LOCK_FILE`, held until `close()`), so a
    second daemon on the same folder fails with `StoreInUse` naming the holder's pid before it
    reads anything; then the database is checked (`PRAGMA quick_check`): a file that is not
    SQLite, truncated or damaged raises `StoreUnreadable`, saying what to do. A task row that
    cannot be read is left in the file untouched and skipped (`unreadable`); the others are served.
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path = path
        self._lock = _lock_folder(path.parent)
        try:
            self.db = sqlite_utils.Database(_open_checked(path))
            migrate(self.db)
            self._tasks: dict[str, TaskState] = {}
            self.unreadable: dict[str, str] = {}
            for row in self.db.query("SELECT task_id, state FROM tasks"):
                self._load(row["task_id"], row["state"])
            self._seq: dict[str, int] = {}
            for row in self.db.query(
                "SELECT task_id, MAX(seq) AS seq FROM events GROUP BY task_id"
            ):
                self._seq[row["task_id"]] = row["seq"]
        except sqlite3.DatabaseError as exc:
            os.close(self._lock)
            raise _unreadable(path, str(exc)) from None
        except StoreUnreadable:
            os.close(self._lock)
            raise
        self._subscribers: dict[str, set[asyncio.Queue[Event | None]]] = {}

    def _load(self, task_id: str, raw: object) -> None:
        try:
            self._tasks[task_id] = TaskState.model_validate_json(raw)  # type: ignore[arg-type]
        except (ValueError, TypeError) as exc:
            reason = str(exc).splitlines()[0]
            self.unreadable[task_id] = reason
            log.warning(
                "task %s in %s cannot be read (%s): skipped, left in the file untouched",
                task_id, self.path, reason,
            )  # fmt: skip

    def close(self) -> None:
        self.db.conn.close()
        os.close(self._lock)  # releases the folder's lock

    # --- writing -------------------------------------------------------------------------

    def create(self, user_input: str, project: Path, options: WorkflowOptions) -> TaskState:
        state = TaskState(
            task_id=uuid.uuid4().hex[:16],
            user_input=user_input,
            project=str(project),
            options=options,
        )
        self.commit(
            state,
            "task_created",
            {"task_id": state.task_id, "input": user_input, "project": str(project)},
        )
        return state

    def commit(
        self, state: TaskState, event: EventType | None = None, data: dict[str, Any] | None = None
    ) -> Event | None:
        """Persist `state` (and one event) in one transaction, then publish both."""
        state = state.model_copy(update={"updated_at": now()})
        seq = self._seq.get(state.task_id, 0) + 1
        record = (
            Event(task_id=state.task_id, seq=seq, type=event, data=data or {}) if event else None
        )
        try:
            with self.db.conn:
                self.db.conn.execute("BEGIN IMMEDIATE")
                self.db["tasks"].upsert(
                    {  # type: ignore[union-attr]
                        "task_id": state.task_id,
                        "stage": state.current_stage,
                        "state": state.model_dump_json(),
                        "created_at": state.created_at.isoformat(),
                        "updated_at": state.updated_at.isoformat(),
                    },
                    pk="task_id",
                )
                if record is not None:
                    self._insert_event(record)
        except sqlite3.Error as exc:
            raise StoreError(f"could not save task {state.task_id}: {exc}") from None
        self._tasks[state.task_id] = state
        if record is not None:
            self._publish(record)
        return record

    def add_event(self, task_id: str, event: EventType, data: dict[str, Any]) -> Event:
        """Persist and publish an event that changes no state (tokens, tool calls)."""
        record = Event(task_id=task_id, seq=self._seq.get(task_id, 0) + 1, type=event, data=data)
        try:
            with self.db.conn:
                self.db.conn.execute("BEGIN IMMEDIATE")
                self._insert_event(record)
        except sqlite3.Error as exc:
            raise StoreError(f"could not save an event of task {task_id}: {exc}") from None
        self._publish(record)
        return record

    def _insert_event(self, record: Event) -> None:
        self.db["events"].insert(
            {  # type: ignore[union-attr]
                "task_id": record.task_id,
                "seq": record.seq,
                "type": record.type,
                "data": json.dumps(record.data),
                "created_at": record.created_at.isoformat(),
            }
        )

    def _publish(self, record: Event) -> None:
        self._seq[record.task_id] = record.seq
        for queue in list(self._subscribers.get(record.task_id, ())):
            if queue.qsize() >= SUBSCRIBER_BUFFER:
                self._subscribers[record.task_id].discard(queue)
                queue.put_nowait(None)  # tells the reader it was dropped
            else:
                queue.put_nowait(record)

    # --- reading -------------------------------------------------------------------------

    def get(self, task_id: str) -> TaskState:
        try:
            return self._tasks[task_id]
        except KeyError:
            if task_id in self.unreadable:
                raise TaskUnreadable(
                    f"task {task_id}'s stored state cannot be read"
                    f" ({self.unreadable[task_id]}); it is left in {self.path} untouched"
                ) from None
            raise TaskNotFound(f"no task {task_id!r}") from None

    def list(self, limit: int = 50, offset: int = 0) -> tuple[list[TaskState], int]:
        ordered = sorted(self._tasks.values(), key=lambda t: t.created_at, reverse=True)
        return ordered[offset : offset + limit], len(ordered)

    def unfinished(self) -> list[TaskState]:
        return [task for task in self._tasks.values() if not task.finished]

    def events_after(self, task_id: str, after: int = 0) -> list[Event]:
        self.get(task_id)
        rows = self.db.query(
            "SELECT * FROM events WHERE task_id = ? AND seq > ? ORDER BY seq", [task_id, after]
        )
        return [
            Event(
                task_id=row["task_id"],
                seq=row["seq"],
                type=row["type"],
                data=json.loads(row["data"]),
                created_at=row["created_at"],
            )
            for row in rows
        ]

    async def follow(self, task_id: str, after: int = 0) -> AsyncIterator[Event]:
        """Stored events after `after`, then live ones, each exactly once, until the task
        finishes. Raises `SubscriberDropped` if the reader falls too far behind."""
        queue: asyncio.Queue[Event | None] = asyncio.Queue()
        self._subscribers.setdefault(task_id, set()).add(queue)
        try:
            last = after
            for record in self.events_after(task_id, after):
                yield record
                last = record.seq
            while not (self.get(task_id).finished and last >= self._seq.get(task_id, 0)):
                record = await queue.get()
                if record is None:
                    raise SubscriberDropped(f"reader of task {task_id} fell behind")
                if record.seq > last:
                    yield record
                    last = record.seq
        finally:
            self._subscribers.get(task_id, set()).discard(queue)


def _lock_folder(folder: Path) -> int:
    """An exclusive lock on `folder` (an open descriptor of its lock file, holding our pid)."""
    fd = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise StoreInUse(
            f"the data folder {folder} is in use by another BreakingWind process (pid {holder});"
            " stop that one, or give this one its own data folder (BREAKINGWIND_HOME)"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _open_checked(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    try:
        for pragma in (
            "journal_mode=WAL",
            "synchronous=NORMAL",
            "busy_timeout=5000",
            "wal_autocheckpoint=1000",
            "foreign_keys=ON",
            *(["fullfsync=ON"] if sys.platform == "darwin" else []),
        ):
            connection.execute(f"PRAGMA {pragma}")
        # Reads every page (not the index-to-table cross checks of integrity_check): a truncated
        # file or a damaged page is found here, not mid-task.
        problems = [row[0] for row in connection.execute("PRAGMA quick_check(3)")]
    except sqlite3.DatabaseError:
        connection.close()
        raise
    if problems != ["ok"]:
        connection.close()
        raise _unreadable(path, "; ".join(problems))
    return connection


def _unreadable(path: Path, detail: str) -> StoreUnreadable:
    return StoreUnreadable(
        f"{path} is damaged or not a BreakingWind database ({detail}); BreakingWind will not"
        f" start on it. Move it aside (with its -wal and -shm files, e.g. mv {path}"
        f" {path}.damaged) to start with an empty task list, or restore it from a backup"
    )
