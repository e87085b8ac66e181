"""The embedded DuckDB file: connections, numbered migrations, upserts and activity events.

DuckDB allows one read-write process per file. Runs, sensors and the CLI are different processes, so a
connection is opened only around the SQL that needs it and opening retries while another process holds
the lock (design.md §8). Network I/O always happens before a connection is opened.

With HARMONY_DATABASE_URL=postgresql://… every table lives in PostgreSQL instead (docs/scale.md): the
same DuckDB SQL runs over PostgreSQL attached as the catalog (harmony_pipeline/storage/postgres.py).
"""

from __future__ import annotations

import contextvars
import json
import os
import random
import threading
import time
import weakref
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
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
    for entry in resources.files("harmony_pipeline.storage.migrations").iterdir():
        name = entry.name
        if not name.endswith(".sql") or not name[:4].isdigit():
            continue
        found.append((int(name[:4]), name[5:-4], entry.read_text(encoding="utf-8")))
    found.sort()
    versions = [version for version, _, _ in found]
    if len(versions) != len(set(versions)):
        raise RuntimeError(f"two migrations share a number: {versions}")
    return found


def next_id(conn, sequence: str) -> int:
    """The next value of a sequence (INSERT … RETURNING is not available on a PostgreSQL catalog)."""
    if getattr(conn, "is_postgres", False):
        return conn.next_id(sequence)
    return conn.execute("SELECT nextval(?)", [sequence]).fetchone()[0]


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
    if applied:
        # Schema changes leave the WAL at once, so a crash seldom makes DuckDB replay DDL (every
        # migration must replay all the same: tests/test_storage.py checks it after a kill).
        conn.execute("CHECKPOINT")
    return applied


def database_url() -> str | None:
    """HARMONY_DATABASE_URL when it names PostgreSQL; None for the embedded DuckDB file (the default)."""
    url = os.environ.get("HARMONY_DATABASE_URL", "").strip()
    if not url:
        return None
    if not url.startswith(("postgresql://", "postgres://")):
        raise ValueError("HARMONY_DATABASE_URL must start with postgresql:// (unset it for the DuckDB file)")
    return url


def _is_lock_error(error: Exception) -> bool:
    text = str(error).lower()
    return "lock" in text and ("conflicting" in text or "could not set" in text)


def database_exists(path: Path) -> bool:
    """Whether there is pipeline state to read: the DuckDB file, or PostgreSQL when HARMONY_DATABASE_URL is set."""
    return database_url() is not None or Path(path).exists()


def open_connection(path: Path, *, read_only: bool = False, wait_seconds: float = LOCK_WAIT_SECONDS):
    """Open the database, waiting (with jittered backoff) while another process holds the lock.
    With HARMONY_DATABASE_URL set, a connection to PostgreSQL instead (the path is not used)."""
    if (url := database_url()) is not None:
        from harmony_pipeline.storage import postgres as pg_storage

        return pg_storage.open_connection(url)
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
    if database_url() is not None:
        conn = open_connection(path)  # migrated when the process first attached the database
        try:
            yield conn
        finally:
            conn.close()
        return
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


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICROSECOND = timedelta(microseconds=1)
UPSERT_CHUNK_ROWS = 20_000  # rows per INSERT: one frame at a time keeps memory flat
_column_types: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # conn → {table: {column: type}}


def column_types(conn: duckdb.DuckDBPyConnection, table: str) -> dict[str, str]:
    """{column: DuckDB type} of a table, looked up once per connection (migrations run before use)."""
    tables = _column_types.setdefault(conn, {})
    if table not in tables:
        tables[table] = dict(conn.execute(
            "SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = ? "
            "AND database_name = current_database() AND schema_name = current_schema() "
            "ORDER BY column_index", [table]).fetchall())
    return tables[table]


def upsert(
    conn: duckdb.DuckDBPyConnection,
    table: str,
    rows: Sequence[Mapping[str, Any]],
    key: Sequence[str],
    *,
    keep: Iterable[str] = (),
) -> int:
    """INSERT … ON CONFLICT (key) DO UPDATE for every column but the key and `keep` (e.g. first_seen_at).

    Rows travel as polars frames typed after the table, UPSERT_CHUNK_ROWS at a time, which DuckDB scans
    through Arrow without copying (executemany costs milliseconds per row, a JSON document ~10 kB of
    memory per row). Every row has the columns of the first. A dict or list for a VARCHAR column is
    stored as its JSON text; tuples and sets are lists; values polars cannot take as the column's type
    go as text, which DuckDB casts.
    """
    if not rows:
        return 0
    columns = list(rows[0].keys())
    types = column_types(conn, table)
    if any(c not in types for c in columns):  # a column added since the look-up: look again once
        _column_types.get(conn, {}).pop(table, None)
        types = column_types(conn, table)
        missing = [c for c in columns if c not in types]
        if missing:
            raise ValueError(f"{table} has no column(s) {', '.join(missing)}")
    kept = set(key) | set(keep)
    updates = [c for c in columns if c not in kept]
    conflict = (
        "DO UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in updates) if updates else "DO NOTHING"
    )
    sql = (
        f"INSERT INTO {table} ({', '.join(columns)}) SELECT {_typed_columns(columns, types)} "
        f"FROM _upsert_rows r ON CONFLICT ({', '.join(key)}) {conflict}"
    )
    for start in range(0, len(rows), UPSERT_CHUNK_ROWS):
        chunk = rows[start:start + UPSERT_CHUNK_ROWS]
        conn.register("_upsert_rows", _ArrowStream(_frame(chunk, columns, types)))
        try:
            conn.execute(sql)
        finally:
            conn.unregister("_upsert_rows")
    return len(rows)


@contextmanager
def rows_view(
    conn: duckdb.DuckDBPyConnection, name: str, table: str, rows: Sequence[Mapping[str, Any]], columns: Sequence[str]
) -> Iterator[None]:
    """Rows typed like `table`'s columns, visible to SQL as the temporary view `name` inside the block
    (e.g. to compare many rows with a table in one query). DuckDB scans the frame in place at each use."""
    columns = list(columns)
    types = column_types(conn, table)
    raw = f"_{name}_rows"
    conn.register(raw, _ArrowStream(_frame(rows, columns, types)))
    del rows  # the frame holds the data now; the caller may free its rows
    try:
        conn.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT {_typed_columns(columns, types)} FROM {raw} r")
        yield
    finally:
        conn.execute(f"DROP VIEW IF EXISTS {name}")
        conn.unregister(raw)


def _typed_columns(columns: Sequence[str], types: Mapping[str, str]) -> str:
    # List columns travel as JSON text: polars builds nested lists from Python slowly and with much memory.
    return ", ".join(
        f"CAST(CAST(r.{c} AS JSON) AS {types[c]}) AS {c}" if types[c].endswith("[]")
        else f"CAST(r.{c} AS {types[c]}) AS {c}"
        for c in columns)


class _ArrowStream:
    """A polars frame seen only through the Arrow PyCapsule stream interface, which DuckDB scans in
    place; handed over as a polars frame, DuckDB would convert it through pyarrow, which is not needed."""

    def __init__(self, frame) -> None:
        self._frame = frame

    def __arrow_c_stream__(self, requested_schema=None):
        return self._frame.__arrow_c_stream__(requested_schema)


def _frame(rows: Sequence[Mapping[str, Any]], columns: list[str], types: Mapping[str, str]):
    import polars as pl  # loaded on first write: `harmony status` and readers never pay for it

    return pl.DataFrame([_series(pl, c, [row[c] for row in rows], types[c]) for c in columns])


_POLARS_TYPES = {
    "VARCHAR": "String", "BOOLEAN": "Boolean", "INTEGER": "Int32", "BIGINT": "Int64", "SMALLINT": "Int16",
    "DOUBLE": "Float64", "FLOAT": "Float32", "DATE": "Date",
}


def _series(pl, name: str, values: list, data_type: str):
    if data_type.endswith("[]"):
        return pl.Series(name, [None if v is None else _json_text(v) for v in values], dtype=pl.String)
    if data_type == "TIMESTAMP WITH TIME ZONE" and all(v is None or isinstance(v, datetime) for v in values):
        # Integers convert ~10x faster than datetime objects; a naive time is local, as DuckDB reads it.
        micros = [None if v is None else (v if v.tzinfo else v.astimezone()) - _EPOCH for v in values]
        return pl.Series(name, [None if m is None else m // _MICROSECOND for m in micros],
                         dtype=pl.Int64).cast(pl.Datetime("us", "UTC"))
    if data_type in _POLARS_TYPES:
        try:
            return pl.Series(name, values, dtype=getattr(pl, _POLARS_TYPES[data_type]), strict=True)
        except (TypeError, ValueError, OverflowError, pl.exceptions.PolarsError):
            pass
    # Something polars does not take as that type (JSON for a VARCHAR, an ISO string for a timestamp):
    # text, which the SELECT casts to the column's type as DuckDB always did.
    return pl.Series(name, [_as_text(v) for v in values], dtype=pl.String)


def _as_text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (dict, list, tuple, set, bool, int, float)):
        return _json_text(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def json_structure_type(data_type: str) -> object:
    """DuckDB's from_json structure for a column type (lists become [element type]), for plain
    INSERTs that carry their rows as one JSON document (e.g. ingest items)."""
    if data_type.endswith("[]"):
        return [json_structure_type(data_type[:-2])]
    return data_type


def _json_value(value: Any) -> Any:
    """What json cannot encode: times as ISO text, sets and tuples as lists, anything else as text."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (set, tuple)):
        return list(value)
    return str(value)


# One encoder: json.dumps with options builds a new one per call, 3x slower over 100,000 values.
_json_text = json.JSONEncoder(default=_json_value, ensure_ascii=False, separators=(",", ":")).encode


def fetch_dicts(conn: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any] = ()) -> list[dict]:
    cursor = conn.execute(sql, list(params))
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]


def record_activity(
    conn: duckdb.DuckDBPyConnection, event_type: str, details: Mapping[str, Any] | None = None
) -> None:
    """Append one activity event (sync_started, download_dead_lettered, …)."""
    event_id = next_id(conn, "activity_events_id")
    conn.execute(
        "INSERT INTO activity_events (id, time, type, details) VALUES (?, ?, ?, ?)",
        [event_id, utcnow(), event_type, json.dumps(dict(details or {}), default=str, ensure_ascii=False)],
    )
    if current_run_id.get():
        conn.execute("INSERT INTO activity_runs VALUES (?, ?)", [event_id, current_run_id.get()])


def recent_activity(conn: duckdb.DuckDBPyConnection, limit: int = 20) -> list[dict]:
    rows = fetch_dicts(
        conn, "SELECT time, type, details FROM activity_events ORDER BY id DESC LIMIT ?", [limit]
    )
    for row in rows:
        row["details"] = json.loads(row["details"]) if row["details"] else {}
    return rows


# --- conditional transitions ------------------------------------------------------------------------
def save_versioned(conn, table: str, row: dict[str, Any], stored: dict[str, Any]) -> bool:
    """Write `stored` (the row's columns, keyed by `wanted_key`) where the table's row still has the
    version `row` was read at, `row["_version"]` = (state, updated_at); a row read as new (no version)
    only where none exists. False when another run got there first: `row` keeps its old version."""
    columns = list(stored)
    version = row.get("_version")
    if version is None:
        changed = conn.execute(
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)}) "
            "ON CONFLICT DO NOTHING", [stored[c] for c in columns]).fetchone()[0]
    else:
        updates = [c for c in columns if c != "wanted_key"]
        changed = conn.execute(
            f"UPDATE {table} SET {', '.join(f'{c} = ?' for c in updates)} "
            "WHERE wanted_key = ? AND state = ? AND updated_at = ?",
            [stored[c] for c in updates] + [row["wanted_key"], *version]).fetchone()[0]
    if changed:
        row["_version"] = (stored["state"], stored["updated_at"])
    return bool(changed)


def remove_versioned(conn, table: str, row: dict[str, Any]) -> bool:
    """Delete the row where it is still at the version it was read at."""
    return bool(conn.execute(f"DELETE FROM {table} WHERE wanted_key = ? AND state = ? AND updated_at = ?",
                             [row["wanted_key"], *row["_version"]]).fetchone()[0])
