"""DuckDB storage: numbered migrations, idempotent upserts, and two runs writing at the same time."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from conftest import REPO, subprocess_env

from harmony_pipeline import storage


def test_migrations_are_recorded_once(tmp_path):
    path = tmp_path / "h.duckdb"
    with storage.connect(path) as conn:
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY version").fetchall()]
        assert versions == [v for v, _, _ in storage.migration_files()]
        assert storage.migrate(conn) == []  # nothing left to apply
        tables = {r[0] for r in conn.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    assert {"spotify_playlists", "playlist_tracks", "wanted_tracks", "downloads", "library_tracks",
            "activity_events"} <= tables


def test_upsert_by_natural_key_never_duplicates(tmp_path):
    with storage.connect(tmp_path / "h.duckdb") as conn:
        conn.execute("CREATE TABLE answers (service VARCHAR, key VARCHAR, body VARCHAR, PRIMARY KEY (service, key))")
        row = {"service": "s", "key": "k", "body": "one"}
        storage.upsert(conn, "answers", [row], key=["service", "key"])
        storage.upsert(conn, "answers", [{**row, "body": "two"}], key=["service", "key"])
        assert conn.execute("SELECT count(*), max(body) FROM answers").fetchone() == (1, "two")


def test_failed_transaction_leaves_nothing(tmp_path):
    with storage.connect(tmp_path / "h.duckdb") as conn:
        with pytest.raises(RuntimeError), storage.transaction(conn):
            storage.record_activity(conn, "sync_started", {})
            raise RuntimeError("boom")
        assert conn.execute("SELECT count(*) FROM activity_events").fetchone()[0] == 0


def test_reader_waits_for_writer_lock_from_another_process(tmp_path):
    path = tmp_path / "h.duckdb"
    with storage.connect(path):
        pass
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('locked', flush=True); time.sleep(2)",
         str(path)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    with storage.connect(path) as conn:  # opens once the other process lets go, instead of failing
        assert conn.execute("SELECT count(*) FROM schema_migrations").fetchone()[0] >= 1
    holder.wait(timeout=10)


@pytest.mark.integration
def test_two_materializations_at_the_same_time_both_succeed(harmony_env, dagster_home, instance):
    """Two `dagster asset materialize` processes on one DuckDB file: no lock error (design.md §8).

    The `instance` fixture creates the Dagster instance's storage first, as `dagster dev` would.
    """
    env = subprocess_env({**harmony_env, "DAGSTER_HOME": str(dagster_home)})
    command = [str(Path(sys.executable).parent / "dagster"), "asset", "materialize", "-m",
               "harmony_pipeline.definitions", "--select", "spotify_playlists,playlist_tracks,wanted_tracks"]
    runs = [subprocess.Popen(command, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for _ in range(2)]
    outputs = [run.communicate(timeout=240)[0] for run in runs]
    for run, output in zip(runs, outputs):
        assert run.returncode == 0, output[-3000:]
        assert "RUN_SUCCESS" in output
    with duckdb.connect(harmony_env["HARMONY_DATA_DIR"] + "/harmony.duckdb", read_only=True) as conn:
        assert conn.execute("SELECT count(*) FROM spotify_playlists").fetchone()[0] == 4
        assert conn.execute("SELECT count(*) FROM playlist_tracks").fetchone()[0] > 50


def test_every_migration_replays_from_the_wal_after_a_kill(tmp_path):
    """A process killed after committing migrations but before any checkpoint leaves them in the WAL:
    DuckDB must replay every one of them (some DDL it cannot, and then refuses to open the file)."""
    path = tmp_path / "h.duckdb"
    code = (
        "import os, signal, sys; from harmony_pipeline import storage\n"
        "conn = storage.open_connection(sys.argv[1])\n"
        "conn.execute('CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name VARCHAR NOT NULL, "
        "applied_at TIMESTAMPTZ NOT NULL)')\n"
        "for version, name, sql in storage.migration_files():\n"
        "    conn.execute('BEGIN TRANSACTION'); conn.execute(sql)\n"
        "    conn.execute('INSERT INTO schema_migrations VALUES (?, ?, now())', [version, name])\n"
        "    conn.execute('COMMIT')\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n")
    killed = subprocess.run([sys.executable, "-c", code, str(path)], cwd=REPO, capture_output=True, text=True)
    assert killed.returncode == -9, killed.stderr
    assert Path(str(path) + ".wal").stat().st_size > 0  # the migrations are only in the WAL
    with storage.connect(path) as conn:
        applied = conn.execute("SELECT count(*) FROM schema_migrations").fetchone()[0]
    assert applied == len(storage.migration_files())


def test_upsert_keeps_types_lists_json_and_time_zones(tmp_path):
    """Values reach DuckDB as the table's types: lists from lists/tuples/sets, JSON text for a dict or list
    in a VARCHAR column, the same instant for any offset, text the INSERT casts (an ISO time)."""
    from datetime import datetime, timedelta, timezone

    paris = timezone(timedelta(hours=2))
    with storage.connect(tmp_path / "h.duckdb") as conn, storage.transaction(conn):
        storage.upsert(conn, "soulseek_matches", [
            {"wanted_key": "a", "status": "matched", "queries": ["q1", "q2"], "reasons": ("r1",),
             "candidates": [{"file": "é.flac", "score": 0.5}], "rejected_count": 3, "size": 2**40,
             "score": 1, "decided_at": datetime(2026, 1, 2, 12, 0, tzinfo=paris), "retry_search_after": None},
            {"wanted_key": "b", "status": "no_match", "queries": {"only"}, "reasons": None,
             "candidates": None, "rejected_count": None, "size": None, "score": 0.25,
             "decided_at": "2026-01-02T10:00:00+00:00", "retry_search_after": datetime(2026, 1, 3, tzinfo=timezone.utc)},
        ], key=["wanted_key"])
        rows = {r["wanted_key"]: r for r in storage.fetch_dicts(conn, "SELECT * FROM soulseek_matches")}
    assert rows["a"]["queries"] == ["q1", "q2"] and rows["a"]["reasons"] == ["r1"]
    assert rows["b"]["queries"] == ["only"] and rows["b"]["reasons"] is None
    assert rows["a"]["candidates"] == '[{"file":"é.flac","score":0.5}]'
    assert rows["a"]["size"] == 2**40 and rows["a"]["score"] == 1.0 and rows["a"]["rejected_count"] == 3
    assert rows["a"]["decided_at"] == rows["b"]["decided_at"] == datetime(2026, 1, 2, 10, 0, tzinfo=timezone.utc)
    assert rows["b"]["retry_search_after"] == datetime(2026, 1, 3, tzinfo=timezone.utc)


def test_upsert_in_chunks_updates_all_but_key_and_kept_columns(tmp_path, monkeypatch):
    monkeypatch.setattr(storage, "UPSERT_CHUNK_ROWS", 7)  # several chunks in one call
    first = storage.utcnow()
    rows = [{"wanted_key": f"k{i}", "title": f"T{i}", "artist": "A", "sources": ["free_ingest"], "state": "wanted",
             "first_wanted_at": first, "updated_at": first} for i in range(50)]
    with storage.connect(tmp_path / "h.duckdb") as conn:
        assert storage.upsert(conn, "wanted_tracks", rows, key=["wanted_key"]) == 50
        later = storage.utcnow()
        changed = [{**r, "state": "in_library", "first_wanted_at": later, "updated_at": later} for r in rows[::2]]
        storage.upsert(conn, "wanted_tracks", changed, key=["wanted_key"], keep=["first_wanted_at"])
        by_state = dict(conn.execute("SELECT state, count(*) FROM wanted_tracks GROUP BY state").fetchall())
        kept = conn.execute("SELECT count(*) FROM wanted_tracks WHERE first_wanted_at = ?", [first]).fetchone()[0]
        updated = conn.execute("SELECT count(*) FROM wanted_tracks WHERE updated_at = ?", [later]).fetchone()[0]
    assert by_state == {"wanted": 25, "in_library": 25}
    assert kept == 50 and updated == 25


def test_upsert_looks_up_column_types_once_per_connection(tmp_path):
    with storage.connect(tmp_path / "h.duckdb") as conn:
        row = {"username": "u", "filename": "f", "reason": "r", "blocked_at": storage.utcnow()}
        storage.upsert(conn, "blocked_candidates", [row], key=["username", "filename"])
        assert set(storage._column_types[conn]["blocked_candidates"]) == {"username", "filename", "reason", "blocked_at"}
        # A column added on this connection after the look-up is found on the next upsert.
        conn.execute("ALTER TABLE blocked_candidates ADD COLUMN note VARCHAR")
        storage.upsert(conn, "blocked_candidates", [{**row, "note": {"why": 1}}], key=["username", "filename"])
        assert conn.execute("SELECT note FROM blocked_candidates").fetchone()[0] == '{"why":1}'
        with pytest.raises(ValueError, match="blocked_candidates has no column"):
            storage.upsert(conn, "blocked_candidates", [{**row, "nope": 1}], key=["username", "filename"])
