"""Pipeline state on PostgreSQL (HARMONY_DATABASE_URL): the same migrations, upserts and activity events as
on the DuckDB file, and writers in several processes racing for the same rows, on a real server."""

from __future__ import annotations

import multiprocessing
import os
from datetime import timedelta

import pytest
from conftest import running_postgres
from postgres_server import PostgresServer

from harmony_pipeline import storage
from harmony_pipeline.storage import postgres as pg_storage

pytestmark = pytest.mark.postgres
ROWS = 40


@pytest.fixture(scope="module")
def server():
    with running_postgres() as running:
        yield running


@pytest.fixture
def database_url(server: PostgresServer, request, monkeypatch) -> str:
    name = request.node.name.lower()[:50]
    server.create_database(name)
    url = server.url(name)
    monkeypatch.setenv("HARMONY_DATABASE_URL", url)
    return url


def _row(key: str, title: str, now) -> dict:
    return {"wanted_key": key, "title": title, "artist": "A", "artists": ["A", "B"], "sources": ["playlist:x"],
            "state": "wanted", "first_wanted_at": now, "updated_at": now, "duration_ms": 200_000, "track_number": 1}


def test_same_migrations_upserts_and_events_as_the_duckdb_file(server, database_url, tmp_path):
    now = storage.utcnow()
    with storage.connect(tmp_path / "unused.duckdb") as conn:
        storage.upsert(conn, "wanted_tracks", [_row("k1", "First", now)], key=["wanted_key"])
        storage.upsert(conn, "wanted_tracks", [_row("k1", "Renamed", now + timedelta(days=1))],
                       key=["wanted_key"], keep=["first_wanted_at"])
        with storage.transaction(conn):
            storage.record_activity(conn, "sync_started", {"playlists": 2})
        rows = storage.fetch_dicts(conn, "SELECT title, artists, first_wanted_at FROM wanted_tracks")
        events = storage.recent_activity(conn)
    assert rows == [{"title": "Renamed", "artists": ["A", "B"], "first_wanted_at": now}]
    assert [(e["type"], e["details"]) for e in events] == [("sync_started", {"playlists": 2})]
    # Every migration is recorded, in PostgreSQL itself; no DuckDB file was written.
    versions = [v for (v,) in server.query(database_url.rsplit("/", 1)[1],
                                           "SELECT version FROM schema_migrations ORDER BY version")]
    assert versions == [v for v, _, _ in storage.migration_files()]
    assert server.query(database_url.rsplit("/", 1)[1], "SELECT title FROM wanted_tracks") == [("Renamed",)]
    assert not (tmp_path / "unused.duckdb").exists()
    # A second process start applies nothing again.
    assert pg_storage.migrate(database_url) == []


def _claim_all(url: str, worker: str, queue) -> None:
    """What an acquisition run does to each row: a conditional transition (lone statement), then a
    read-modify-write in a transaction; reports the rows this process won."""
    os.environ["HARMONY_DATABASE_URL"] = url
    won, errors = [], []
    for n in range(ROWS):
        key = f"k{n}"
        try:
            with storage.connect("unused") as conn:
                changed = conn.execute("UPDATE wanted_tracks SET state = 'claimed', album = ? "
                                       "WHERE wanted_key = ? AND state = 'wanted'", [worker, key]).fetchone()[0]
                if changed:
                    won.append(key)
                with storage.transaction(conn):
                    count = conn.execute("SELECT track_number FROM wanted_tracks WHERE wanted_key = ?",
                                         [key]).fetchone()[0]
                    conn.execute("UPDATE wanted_tracks SET track_number = ? WHERE wanted_key = ?", [count + 1, key])
                    storage.record_activity(conn, "claimed", {"key": key, "by": worker})
        except Exception as error:  # reported to the test, which fails on any
            errors.append(f"{type(error).__name__}: {error}")
    queue.put((worker, won, errors))


def test_writers_in_three_processes_never_both_win_a_row_and_never_fail(server, database_url):
    now = storage.utcnow()
    with storage.connect("unused") as conn:
        storage.upsert(conn, "wanted_tracks", [_row(f"k{n}", f"T{n}", now) for n in range(ROWS)], key=["wanted_key"])
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    workers = [context.Process(target=_claim_all, args=(database_url, f"w{i}", queue)) for i in range(3)]
    for worker in workers:
        worker.start()
    results = [queue.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)
    assert [errors for _, _, errors in results] == [[], [], []]
    won = [key for _, keys, _ in results for key in keys]
    assert sorted(won) == sorted(f"k{n}" for n in range(ROWS))  # each row won exactly once
    with storage.connect("unused") as conn:
        # Every read-modify-write landed: three increments per row, none lost.
        assert conn.execute("SELECT min(track_number), max(track_number) FROM wanted_tracks").fetchall() == [(4, 4)]
        owners = dict(conn.execute("SELECT wanted_key, album FROM wanted_tracks").fetchall())
        assert conn.execute("SELECT count(*) FROM activity_events WHERE type = 'claimed'").fetchone()[0] == 3 * ROWS
    for worker, keys, _ in results:
        assert all(owners[key] == worker for key in keys)


def test_status_and_dead_letters_read_the_queues_from_postgresql(server, database_url, tmp_path, monkeypatch):
    """With HARMONY_DATABASE_URL there is no DuckDB file: `harmony status` and `harmony dead-letter list`
    read PostgreSQL instead of reporting an empty pipeline."""
    from harmony_pipeline.cli.dead_letter import dead_letters
    from harmony_pipeline.settings import load_settings
    from harmony_pipeline.status import read_database

    monkeypatch.setenv("HARMONY_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("HARMONY_LIBRARY_DIR", str(tmp_path / "library"))
    settings = load_settings()
    now = storage.utcnow()
    with storage.connect(settings.duckdb_path) as conn:
        storage.upsert(conn, "wanted_tracks", [_row("k1", "Lost", now)], key=["wanted_key"])
        storage.upsert(conn, "downloads", [{"wanted_key": "k1", "state": "dead_letter", "attempts": 3,
                                            "history": "[]", "last_error": "Rejected", "updated_at": now}],
                       key=["wanted_key"])
    assert not settings.duckdb_path.exists()
    queues, _, _ = read_database(settings.duckdb_path, now, 5)
    assert queues["dead_letter"] == 1
    assert [row["wanted_key"] for row in dead_letters(settings.duckdb_path)] == ["k1"]
    assert not settings.duckdb_path.exists()


def test_a_connection_failure_never_shows_the_password(monkeypatch):
    """DuckDB's postgres extension quotes the whole URL when it cannot connect; that text reaches step
    failures, Dagster's event log and the CLI, so the password is taken out of it."""
    import socket

    import duckdb

    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"postgresql://harmony:S3cr3t-PW@127.0.0.1:{port}/harmony"
    monkeypatch.setattr(pg_storage, "migrate", lambda _url: [])  # straight to the extension's ATTACH
    with pytest.raises(duckdb.Error) as raised:
        pg_storage.open_connection(url)
    assert "S3cr3t-PW" not in str(raised.value)
    assert "harmony:***@" in str(raised.value)
