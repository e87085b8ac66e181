"""`harmony dead-letter list|requeue` on a real DuckDB file."""

from __future__ import annotations

import json

import pytest

from harmony_pipeline import storage
from harmony_pipeline.cli import main


@pytest.fixture
def database(tmp_path, monkeypatch):
    monkeypatch.setenv("HARMONY_DATA_DIR", str(tmp_path))
    path = tmp_path / "harmony.duckdb"
    now = storage.utcnow()
    history = [{"username": "peer", "filename": "a\\b.mp3", "outcome": "Completed, Errored", "error": "boom",
                "started_at": now.isoformat()}]
    with storage.connect(path) as conn:
        for key, state in (("isrc:DEAD1", "dead_letter"), ("isrc:DEAD2", "dead_letter"), ("isrc:OK", "imported")):
            storage.upsert(conn, "wanted_tracks", [{
                "wanted_key": key, "title": f"Song {key}", "artist": "Band", "sources": ["playlist:x"],
                "state": "wanted" if state != "imported" else "in_library", "first_wanted_at": now,
                "updated_at": now}], key=["wanted_key"])
            storage.upsert(conn, "downloads", [{
                "wanted_key": key, "state": state, "attempts": 3, "last_error": "Errored: boom",
                "history": json.dumps(history), "updated_at": now}], key=["wanted_key"])
            storage.upsert(conn, "soulseek_matches", [{
                "wanted_key": key, "status": "matched", "queries": [f"band song {key}"], "decided_at": now}],
                key=["wanted_key"])
            storage.upsert(conn, "search_cache", [{
                "query": f"band song {key}", "responses": "[]", "response_count": 0, "searched_at": now}],
                key=["query"])
    return path


def test_list_shows_dead_letters_with_reason(database, capsys):
    assert main(["dead-letter", "list", "--verbose"]) == 0
    out = capsys.readouterr().out
    assert "isrc:DEAD1" in out and "isrc:DEAD2" in out and "isrc:OK" not in out
    assert "Errored: boom" in out and "2 dead-lettered" in out


def test_requeue_one_gives_a_fresh_start(database, capsys):
    assert main(["dead-letter", "requeue", "isrc:DEAD1"]) == 0
    with storage.connect(database, read_only=True) as conn:
        assert conn.execute("SELECT count(*) FROM downloads WHERE wanted_key = 'isrc:DEAD1'").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM soulseek_matches WHERE wanted_key = 'isrc:DEAD1'").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM search_cache WHERE query LIKE '%DEAD1'").fetchone()[0] == 0
        assert conn.execute("SELECT state FROM wanted_tracks WHERE wanted_key = 'isrc:DEAD1'").fetchone()[0] == "wanted"
        assert conn.execute("SELECT count(*) FROM downloads WHERE state = 'dead_letter'").fetchone()[0] == 1
        assert "download_requeued" in {r[0] for r in conn.execute("SELECT type FROM activity_events").fetchall()}


def test_requeue_all_and_bad_input(database, capsys):
    assert main(["dead-letter", "requeue"]) == 2
    assert "--all" in capsys.readouterr().err
    assert main(["dead-letter", "requeue", "isrc:OK"]) == 1  # not dead-lettered: said so
    assert "not dead-lettered: isrc:OK" in capsys.readouterr().err
    assert main(["dead-letter", "requeue", "--all"]) == 0
    assert "requeued 2" in capsys.readouterr().out
