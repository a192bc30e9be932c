"""Schema changes, as an append-only list (like llm's migrations): each runs once, in order, and
is recorded in `_migrations`. Never edit a released migration; append a new one."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import sqlite_utils

Migration = Callable[[sqlite_utils.Database], None]
MIGRATIONS: list[Migration] = []


def migration(fn: Migration) -> Migration:
    MIGRATIONS.append(fn)
    return fn


@migration
def m001_tasks_and_events(db: sqlite_utils.Database) -> None:
    db["tasks"].create(  # type: ignore[union-attr]
        {"task_id": str, "stage": str, "state": str, "created_at": str, "updated_at": str},
        pk="task_id",
    )
    db["tasks"].create_index(["created_at"])  # type: ignore[union-attr]
    db["tasks"].create_index(["stage"])  # type: ignore[union-attr]
    db["events"].create(  # type: ignore[union-attr]
        {"task_id": str, "seq": int, "type": str, "data": str, "created_at": str},
        pk=("task_id", "seq"),
    )


def migrate(db: sqlite_utils.Database) -> list[str]:
    """Apply what has not been applied; return the names applied now."""
    db["_migrations"].create(  # type: ignore[union-attr]
        {"name": str, "applied_at": str}, pk="name", if_not_exists=True
    )
    done = {row["name"] for row in db["_migrations"].rows}
    applied = []
    for fn in MIGRATIONS:
        if fn.__name__ in done:
            continue
        with db.conn:
            fn(db)
            db["_migrations"].insert(  # type: ignore[union-attr]
                {"name": fn.__name__, "applied_at": datetime.now(UTC).isoformat()}
            )
        applied.append(fn.__name__)
    return applied
