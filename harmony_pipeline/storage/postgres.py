"""Pipeline state in PostgreSQL (HARMONY_DATABASE_URL=postgresql://…), for deployments with many writers.

DuckDB stays the SQL engine: PostgreSQL is attached through DuckDB's postgres extension as the default
catalog, so every module's SQL, the polars-frame upserts and the temporary views run unchanged while
every row lives in PostgreSQL. The extension comes from a pip package built for the pinned DuckDB
(`duckdb-extension-postgres_scanner`, the `postgres` extra): nothing is downloaded at run time.

- Migrations are the same files, applied by PostgreSQL itself in one transaction, under an advisory
  lock so two processes starting together do not both apply one; DOUBLE is spelt DOUBLE PRECISION there.
- One in-memory DuckDB per process holds the attachment; each connect() is a cursor on it (cheap), and
  the extension pools the PostgreSQL connections.
- The extension runs every transaction at REPEATABLE READ, so two writers touching one row make the
  later one fail with a serialization error rather than lose an update, and the pipeline's transactions
  (`with storage.transaction(conn): …`) cannot be replayed from here. So every writing transaction and
  every lone write statement holds PostgreSQL's advisory lock WRITE_LOCK from before its snapshot to
  its end: writes take turns as they did on the DuckDB file (each a few milliseconds: network I/O is
  never inside one, design.md §8), while reads, Dagster's own storage and the runs themselves overlap.
  A lone statement that still meets a serialization failure is run again.
"""

from __future__ import annotations

import os
import random
import re
import threading
import time
from pathlib import Path

import duckdb

CATALOG = "harmony_pg"
SERIALIZATION_RETRIES = 20
_RETRYABLE = ("could not serialize access", "deadlock detected")
_MIGRATION_LOCK = 0x4841524D  # pg_advisory_xact_lock key: "HARM"
WRITE_LOCK = 0x48415257  # pg_advisory_lock key of writes: "HARW"
_READS = ("SELECT", "WITH", "SHOW", "DESCRIBE", "PRAGMA", "USE", "SET", "CALL", "EXPLAIN", "CREATE TEMP",
          "CREATE OR REPLACE TEMP", "DROP VIEW")
_bases: dict[tuple[int, str], duckdb.DuckDBPyConnection] = {}
_bases_lock = threading.Lock()


def extension_path() -> Path:
    """The postgres extension shipped by the pip package for this DuckDB version."""
    try:
        import duckdb_extension_postgres_scanner as package
    except ImportError:
        raise RuntimeError("HARMONY_DATABASE_URL needs the postgres extra: pip install 'harmony-pipeline[postgres]'"
                           ) from None
    wanted = f"v{duckdb.__version__}"
    found = sorted(Path(package.__file__).parent.glob("extensions/*/postgres_scanner.duckdb_extension"))
    for path in found:
        if path.parent.name == wanted:
            return path
    raise RuntimeError(f"the installed postgres extension is for {', '.join(p.parent.name for p in found)}, "
                       f"DuckDB is {wanted}: install matching versions")


def pg_dialect(sql: str) -> str:
    """A migration as PostgreSQL spells it: the only DuckDB-only word in them is the DOUBLE type."""
    return re.sub(r"\bDOUBLE\b(?!\s+PRECISION)", "DOUBLE PRECISION", sql)


def migrate(url: str) -> list[int]:
    """Apply the migrations not yet recorded, each in one PostgreSQL transaction; returns their versions."""
    import psycopg2  # dagster-postgres's driver, already installed with the postgres extra

    from harmony_pipeline.storage import migration_files, utcnow

    applied = []
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", [_MIGRATION_LOCK])
        cur.execute("CREATE TABLE IF NOT EXISTS schema_migrations ("
                    " version INTEGER PRIMARY KEY, name VARCHAR NOT NULL, applied_at TIMESTAMPTZ NOT NULL)")
        cur.execute("SELECT version FROM schema_migrations")
        done = {row[0] for row in cur.fetchall()}
        for version, name, sql in migration_files():
            if version in done:
                continue
            cur.execute(pg_dialect(sql))
            cur.execute("INSERT INTO schema_migrations VALUES (%s, %s, %s)", [version, name, utcnow()])
            applied.append(version)
    # psycopg2's `with conn` committed (or rolled back) the one transaction; the connection stays open.
    conn.close()
    return applied


_CREDENTIALS = re.compile(r"(//[^/:@\s]*:)[^@\s]*@")


def redacted(text: str) -> str:
    """The text without a password of a postgresql:// URL (the extension quotes the whole URL when it
    cannot connect; that message reaches step failures, the event log and the CLI)."""
    return _CREDENTIALS.sub(r"\1***@", text)


def _clean(error: duckdb.Error) -> duckdb.Error:
    text = str(error)
    return error if redacted(text) == text else type(error)(redacted(text))


def _base(url: str) -> duckdb.DuckDBPyConnection:
    key = (os.getpid(), url)
    with _bases_lock:
        base = _bases.get(key)
        if base is None:
            migrate(url)
            base = duckdb.connect(":memory:")
            base.execute(f"LOAD '{extension_path()}'")
            base.execute("SET pg_pool_acquire_mode = 'wait'")  # never more connections than the pool
            quoted = url.replace("'", "''")
            try:
                base.execute(f"ATTACH '{quoted}' AS {CATALOG} (TYPE postgres)")
            except duckdb.Error as error:
                raise _clean(error) from None
            _bases[key] = base
    return base


class _WriteLock:
    """WRITE_LOCK held on one session of this process's own (psycopg2) connection; threads take turns."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._thread_lock = threading.RLock()  # reentrant, as pg_advisory_lock is within one session
        self._conn = None

    def acquire(self) -> None:
        self._thread_lock.acquire()
        try:
            if self._conn is None or self._conn.closed:
                import psycopg2

                self._conn = psycopg2.connect(self.url)
                self._conn.autocommit = True
            with self._conn.cursor() as cur:
                cur.execute("SELECT pg_advisory_lock(%s)", [WRITE_LOCK])
        except BaseException:
            self._thread_lock.release()
            raise

    def release(self) -> None:
        try:
            with self._conn.cursor() as cur:
                cur.execute("SELECT pg_advisory_unlock(%s)", [WRITE_LOCK])
        finally:
            self._thread_lock.release()


_write_locks: dict[tuple[int, str], _WriteLock] = {}


def open_connection(url: str) -> PgConnection:
    cursor = _base(url).cursor()
    cursor.execute(f"USE {CATALOG}")
    with _bases_lock:
        lock = _write_locks.setdefault((os.getpid(), url), _WriteLock(url))
    return PgConnection(cursor, lock)


def _retryable(error: Exception) -> bool:
    text = str(error).lower()
    return any(marker in text for marker in _RETRYABLE)


class PgConnection:
    """A DuckDB connection whose default catalog is PostgreSQL; retries a lone statement that lost a race."""

    is_postgres = True

    def __init__(self, cursor: duckdb.DuckDBPyConnection, write_lock: _WriteLock) -> None:
        self._cursor = cursor
        self._write_lock = write_lock
        self._in_transaction = False

    def execute(self, sql: str, parameters=None):
        try:
            return self._execute(sql, parameters)
        except duckdb.Error as error:  # a lost connection's message may quote the URL
            raise _clean(error) from None

    def _execute(self, sql: str, parameters=None):
        head = " ".join(sql.lstrip()[:24].upper().split())
        if head.startswith("CHECKPOINT"):
            return self._cursor  # PostgreSQL checkpoints by itself; DuckDB's would flush nothing of ours
        if head.startswith("BEGIN"):
            self._write_lock.acquire()  # before the transaction's snapshot is taken
            try:
                result = self._cursor.execute(sql)
            except BaseException:
                self._write_lock.release()
                raise
            self._in_transaction = True
            return result
        if head.startswith(("COMMIT", "ROLLBACK", "ABORT")):
            try:
                return self._cursor.execute(sql)
            finally:
                if self._in_transaction:
                    self._in_transaction = False
                    self._write_lock.release()
        if self._in_transaction or head.startswith(_READS):
            return self._run(sql, parameters)
        self._write_lock.acquire()  # a lone write: its own short transaction
        try:
            return self._run(sql, parameters)
        finally:
            self._write_lock.release()

    def executemany(self, sql: str, parameters):
        try:
            if self._in_transaction:
                return self._cursor.executemany(sql, parameters)
            self._write_lock.acquire()
            try:
                return self._cursor.executemany(sql, parameters)
            finally:
                self._write_lock.release()
        except duckdb.Error as error:
            raise _clean(error) from None

    def _run(self, sql: str, parameters):
        delay = 0.01
        for attempt in range(SERIALIZATION_RETRIES + 1):
            try:
                if parameters is None:
                    return self._cursor.execute(sql)
                return self._cursor.execute(sql, parameters)
            except duckdb.Error as error:
                if self._in_transaction or not _retryable(error) or attempt == SERIALIZATION_RETRIES:
                    raise
                time.sleep(delay * random.uniform(0.5, 1.5))
                delay = min(delay * 2, 0.5)
        raise AssertionError("unreachable")

    def next_id(self, sequence: str) -> int:
        if not re.fullmatch(r"[a-z_]+", sequence):
            raise ValueError(f"not a sequence name: {sequence!r}")
        return self._cursor.execute(
            f"SELECT * FROM postgres_query('{CATALOG}', 'SELECT nextval(''{sequence}'')')").fetchone()[0]

    def close(self) -> None:
        if self._in_transaction:  # an exception left it open: give the pooled connection back clean
            try:
                self.execute("ROLLBACK")
            except duckdb.Error:
                pass
        self._cursor.close()

    def __getattr__(self, name):  # register, unregister, fetch*, description, …
        return getattr(self._cursor, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

