"""The embedded DuckDB file: connections, numbered migrations, upserts and activity events.

DuckDB allows one read-write process per file. Runs, sensors and the CLI are different processes, so a
connection is opened only around the SQL that needs it and opening retries while another process holds
the lock (design.md §8). Network I/O always happens before a connection is opened.
"""

from __future__ import annotations

import contextvars
import json
import random
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any

import duckdb

LOCK_WAIT_SECONDS = 60.0
# The Dagster run whose step is recording activity (None outside runs: the CLI, sensors). Steps of
# different runs overlap, so a step's own events are told apart by run, not by time.
current_run_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("current_run_id", default=None)
_migrated: set[str] = set()
_migrate_lock = threading.Lock()


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def migration_files() -> list[tuple[int, str, str]]:
    """(version, name, sql) for every file named NNNN_name.sql, in order."""
    found = []
    for entry in resources.files("harmony_pipeline.migrations").iterdir():
        name = entry.name
        if not name.endswith(".sql") or not name[:4].isdigit():
            continue
        found.append((int(name[:4]), name[5:-4], entry.read_text(encoding="utf-8")))
    found.sort()
    versions = [version for version, _, _ in found]
    if len(versions) != len(set(versions)):
        raise RuntimeError(f"two migrations share a number: {versions}")
    return found


def migrate(conn: duckdb.DuckDBPyConnection) -> list[int]:
    """Apply every migration not yet recorded in schema_migrations; returns the versions applied."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER PRIMARY KEY, name VARCHAR NOT NULL, applied_at TIMESTAMPTZ NOT NULL)"
    )
    done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations").fetchall()}
    applied = []
    for version, name, sql in migration_files():
        if version in done:
            continue
        conn.execute("BEGIN TRANSACTION")
        try:
            conn.execute(sql)
            conn.execute(
                "INSERT INTO schema_migrations VALUES (?, ?, ?)", [version, name, utcnow()]
            )
            conn.execute("COMMIT")
        except Exception:
            conn.execute("ROLLBACK")
            raise
        applied.append(version)
        # Schema changes leave the WAL at once: a crash before the next checkpoint must never make
        # DuckDB replay DDL (some of which it cannot replay, refusing to open the file).
        conn.execute("CHECKPOINT")
    return applied


def _is_lock_error(error: Exception) -> bool:
    text = str(error).lower()
    return "lock" in text and ("conflicting" in text or "could not set" in text)


def open_connection(path: Path, *, read_only: bool = False, wait_seconds: float = LOCK_WAIT_SECONDS):
    """Open the database, waiting (with jittered backoff) while another process holds the lock."""
    path = Path(path)
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + wait_seconds
    delay = 0.05
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except duckdb.IOException as error:
            if not _is_lock_error(error) or time.monotonic() >= deadline:
                raise
            time.sleep(delay * random.uniform(0.5, 1.5))
            delay = min(delay * 2, 1.0)


@contextmanager
def connect(path: Path | str, *, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    """A short-lived connection with the schema up to date. Close it before any network call."""
    path = Path(path)
    if read_only and not path.exists():
        # Nothing was ever written: create the schema once so readers see empty tables.
        with connect(path):
            pass
    conn = open_connection(path, read_only=read_only)
    try:
        key = str(path.resolve())
        if not read_only and key not in _migrated:
            with _migrate_lock:
                migrate(conn)
                _migrated.add(key)
        yield conn
    finally:
        conn.close()


@contextmanager
def transaction(conn: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    conn.execute("BEGIN TRANSACTION")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _json_structure_type(data_type: str) -> object:
    """DuckDB's from_json structure for a column type: lists become [element type]."""
    if data_type.endswith("[]"):
        return [_json_structure_type(data_type[:-2])]
    return data_type


def upsert(
    conn: duckdb.DuckDBPyConnection,
    table: str,
    rows: Sequence[Mapping[str, Any]],
    key: Sequence[str],
    *,
    keep: Iterable[str] = (),
) -> int:
    """INSERT … ON CONFLICT (key) DO UPDATE for every column but the key and `keep` (e.g. first_seen_at).

    Rows travel as one JSON document: DuckDB's executemany costs milliseconds per row, this costs
    microseconds, which matters for libraries of many thousand tracks.
    """
    if not rows:
        return 0
    columns = list(rows[0].keys())
    types = dict(conn.execute(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = ?", [table]).fetchall())
    structure = json.dumps([{c: _json_structure_type(types[c]) for c in columns}])
    kept = set(key) | set(keep)
    updates = [c for c in columns if c not in kept]
    conflict = (
        "DO UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in updates) if updates else "DO NOTHING"
    )
    names = ", ".join(columns)
    sql = (
        f"INSERT INTO {table} ({names}) SELECT {', '.join(f'r.{c}' for c in columns)} "
        f"FROM (SELECT unnest(from_json(?::JSON, ?)) AS r) ON CONFLICT ({', '.join(key)}) {conflict}"
    )
    payload = json.dumps([{c: row[c] for c in columns} for row in rows], default=_json_value, ensure_ascii=False)
    conn.execute(sql, [payload, structure])
    return len(rows)


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (set, tuple)):
        return list(value)
    return str(value)


def fetch_dicts(conn: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any] = ()) -> list[dict]:
    cursor = conn.execute(sql, list(params))
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]


def record_activity(
    conn: duckdb.DuckDBPyConnection, event_type: str, details: Mapping[str, Any] | None = None
) -> None:
    """Append one activity event (sync_started, download_dead_lettered, …)."""
    event_id = conn.execute(
        "INSERT INTO activity_events (time, type, details) VALUES (?, ?, ?) RETURNING id",
        [utcnow(), event_type, json.dumps(dict(details or {}), default=str, ensure_ascii=False)],
    ).fetchone()[0]
    if current_run_id.get():
        conn.execute("INSERT INTO activity_runs VALUES (?, ?)", [event_id, current_run_id.get()])


def recent_activity(conn: duckdb.DuckDBPyConnection, limit: int = 20) -> list[dict]:
    rows = fetch_dicts(
        conn, "SELECT time, type, details FROM activity_events ORDER BY id DESC LIMIT ?", [limit]
    )
    for row in rows:
        row["details"] = json.loads(row["details"]) if row["details"] else {}
    return rows
