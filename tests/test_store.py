"""The task store on a real SQLite file: atomic write-through, replay, back-pressure, disk full."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from breakingwind.errors import StoreError, TaskNotFound
from breakingwind.store import SUBSCRIBER_BUFFER, SubscriberDropped, TaskStore
from breakingwind.tasks import WorkflowOptions


def test_state_and_events_survive_reopening(tmp_path: Path) -> None:
    store = TaskStore(tmp_path / "db.sqlite3")
    state = store.create("do it", tmp_path, WorkflowOptions(max_review_cycles=2))
    store.commit(
        state.model_copy(update={"current_stage": "plan"}), "stage_started", {"stage": "plan"}
    )
    store.add_event(state.task_id, "token", {"agent": "planner", "text": "hi"})
    store.close()
    reopened = TaskStore(tmp_path / "db.sqlite3")
    again = reopened.get(state.task_id)
    assert again.current_stage == "plan" and again.options.max_review_cycles == 2
    assert [e.type for e in reopened.events_after(state.task_id)] == [
        "task_created",
        "stage_started",
        "token",
    ]
    assert reopened.unfinished() == [again]
    next_event = reopened.add_event(state.task_id, "token", {"agent": "planner", "text": "!"})
    assert next_event.seq == 4  # numbering continues after a restart


def test_disk_full_fails_clearly_and_changes_nothing(tmp_path: Path) -> None:
    store = TaskStore(tmp_path / "db.sqlite3")
    state = store.create("do it", tmp_path, WorkflowOptions())
    pages = store.db.execute("PRAGMA page_count").fetchone()[0]
    store.db.execute(f"PRAGMA max_page_count = {pages}")  # SQLite's own "disk is full"
    big = {"text": "x" * 200_000}
    with pytest.raises(StoreError, match="full"):
        store.commit(state.model_copy(update={"current_stage": "plan"}), "token", big)
    assert store.get(state.task_id).current_stage == "preprocess"  # memory unchanged too
    assert [e.type for e in store.events_after(state.task_id)] == ["task_created"]
    with pytest.raises(StoreError):
        store.create("y" * 200_000, tmp_path, WorkflowOptions())
    assert len(store.list()[0]) == 1


def test_follow_replays_stored_events_then_live_ones_once(tmp_path: Path) -> None:
    async def go() -> list[int]:
        store = TaskStore(tmp_path / "db.sqlite3")
        state = store.create("do it", tmp_path, WorkflowOptions())
        store.add_event(state.task_id, "token", {"text": "a"})
        seen: list[int] = []

        async def read() -> None:
            async for event in store.follow(state.task_id, after=1):
                seen.append(event.seq)

        reader = asyncio.create_task(read())
        await asyncio.sleep(0.05)
        store.add_event(state.task_id, "token", {"text": "b"})
        store.commit(state.model_copy(update={"current_stage": "complete"}), "completed", {})
        await asyncio.wait_for(reader, 5)
        return seen

    assert asyncio.run(go()) == [2, 3, 4]


def test_a_slow_reader_is_dropped_at_its_buffer(tmp_path: Path) -> None:
    async def go() -> None:
        store = TaskStore(tmp_path / "db.sqlite3")
        state = store.create("do it", tmp_path, WorkflowOptions())
        follower = store.follow(state.task_id, after=1)
        pending = asyncio.ensure_future(anext(follower))
        await asyncio.sleep(0.01)
        for n in range(SUBSCRIBER_BUFFER + 10):
            store.add_event(state.task_id, "token", {"text": str(n)})
        received = [await pending]
        with pytest.raises(SubscriberDropped):
            while True:
                received.append(await anext(follower))
        assert len(received) >= SUBSCRIBER_BUFFER - 1  # what fitted was delivered, in order
        assert [e.seq for e in received] == list(range(2, 2 + len(received)))

    asyncio.run(go())


def test_unknown_task(tmp_path: Path) -> None:
    with pytest.raises(TaskNotFound):
        TaskStore(tmp_path / "db.sqlite3").get("nope")
