"""`harmony dead-letter list|requeue` on a real DuckDB file."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

import pytest

from harmony_pipeline import storage
from harmony_pipeline.cli.main import main


def _attempt(peer: str, name: str, outcome: str, error: str, started) -> dict:
    return {"username": peer, "filename": f"music\\{name}", "outcome": outcome, "error": error,
            "started_at": started.isoformat()}


@pytest.fixture
def database(tmp_path, monkeypatch):
    monkeypatch.setenv("HARMONY_DATA_DIR", str(tmp_path))
    path = tmp_path / "harmony.duckdb"
    now = storage.utcnow()
    # DEAD1: three peers timed out, then a new search found nobody left (the bookkeeping last_error).
    # DEAD2: one peer's file failed verification (blocked), then the peer errored twice.
    histories = {
        "isrc:DEAD1": ([_attempt(f"peer{n}", f"s{n}.mp3", "Completed, TimedOut", "TimedOut: Transfer timed out",
                                 now - timedelta(minutes=10 - n)) for n in range(3)], "no candidate left to try"),
        "isrc:DEAD2": ([_attempt("solo", "bad.flac", "failed", "verification: 12 s long, expected 215 s", now),
                        _attempt("solo", "b.mp3", "Completed, Errored", "Errored: boom", now)], "Errored: boom"),
        "isrc:OK": ([], None),
    }
    titles = {"isrc:DEAD1": "Night Drive", "isrc:DEAD2": "Song Two", "isrc:OK": "Fine"}
    with storage.connect(path) as conn:
        for key, (history, last_error) in histories.items():
            state = "imported" if key == "isrc:OK" else "dead_letter"
            storage.upsert(conn, "wanted_tracks", [{
                "wanted_key": key, "title": titles[key], "artist": "Band", "sources": ["playlist:x"],
                "state": "wanted" if state != "imported" else "in_library", "first_wanted_at": now,
                "updated_at": now}], key=["wanted_key"])
            storage.upsert(conn, "downloads", [{
                "wanted_key": key, "state": state, "attempts": len(history), "last_error": last_error,
                "history": json.dumps(history), "updated_at": now}], key=["wanted_key"])
            storage.upsert(conn, "soulseek_matches", [{
                "wanted_key": key, "status": "matched", "queries": [f"band song {key}"], "decided_at": now}],
                key=["wanted_key"])
            storage.upsert(conn, "search_cache", [{
                "query": f"band song {key}", "responses": "[]", "response_count": 0, "searched_at": now}],
                key=["query"])
        storage.upsert(conn, "blocked_candidates", [{
            "username": "solo", "filename": "music\\bad.flac", "reason": "too short", "blocked_at": now}],
            key=["username", "filename"])
    return path


def _rows(out: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(out), delimiter="\t", quoting=csv.QUOTE_NONE))


def test_list_shows_the_real_cause_not_the_bookkeeping_line(database, capsys):
    assert main(["dead-letter", "list"]) == 0
    rows = {r["id"]: r for r in _rows(capsys.readouterr().out)}
    assert set(rows) == {"isrc:DEAD1", "isrc:DEAD2"}
    assert rows["isrc:DEAD1"]["cause"] == "TimedOut: Transfer timed out"
    assert (rows["isrc:DEAD1"]["attempts"], rows["isrc:DEAD1"]["peers"]) == ("3", "3")
    assert rows["isrc:DEAD2"]["cause"] == "Errored: boom" and rows["isrc:DEAD2"]["track"] == "Band – Song Two"


def test_verbose_list_is_the_history_of_attempts(database, capsys):
    assert main(["dead-letter", "list", "-v"]) == 0
    rows = _rows(capsys.readouterr().out)
    dead1 = [r for r in rows if r["id"] == "isrc:DEAD1"]
    assert [r["attempt"] for r in dead1] == ["1", "2", "3"]
    assert [r["peer"] for r in dead1] == ["peer0", "peer1", "peer2"]
    assert {r["error"] for r in dead1} == {"TimedOut: Transfer timed out"}
    assert [r["file"] for r in rows if r["id"] == "isrc:DEAD2"] == ["bad.flac", "b.mp3"]


def test_json_carries_cause_peers_and_history(database, capsys):
    assert main(["dead-letter", "list", "--json"]) == 0
    rows = {r["wanted_key"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["isrc:DEAD1"]["cause"] == "TimedOut: Transfer timed out"
    assert rows["isrc:DEAD1"]["last_error"] == "no candidate left to try"
    assert rows["isrc:DEAD1"]["peers"] == ["peer0", "peer1", "peer2"] and len(rows["isrc:DEAD1"]["history"]) == 3


def test_requeue_one_gives_a_fresh_start_and_says_what_follows(database, capsys):
    assert main(["dead-letter", "requeue", "isrc:DEAD1"]) == 0
    out = capsys.readouterr().out
    assert ("requeued Band – Night Drive (isrc:DEAD1): 3 attempts with 3 peers failed "
            "(last: TimedOut: Transfer timed out); a new search is made first") in out
    with storage.connect(database, read_only=True) as conn:
        assert conn.execute("SELECT count(*) FROM downloads WHERE wanted_key = 'isrc:DEAD1'").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM soulseek_matches WHERE wanted_key = 'isrc:DEAD1'").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM search_cache WHERE query LIKE '%DEAD1'").fetchone()[0] == 0
        assert conn.execute("SELECT state FROM wanted_tracks WHERE wanted_key = 'isrc:DEAD1'").fetchone()[0] == "wanted"
        assert conn.execute("SELECT count(*) FROM downloads WHERE state = 'dead_letter'").fetchone()[0] == 1
        assert "download_requeued" in {r[0] for r in conn.execute("SELECT type FROM activity_events").fetchall()}


def test_requeue_by_name_and_blocked_files_are_mentioned(database, capsys):
    assert main(["dead-letter", "requeue", "band - song two"]) == 0  # a hyphen for the listing's dash
    out = capsys.readouterr().out
    assert ("requeued Band – Song Two (isrc:DEAD2): the same peer failed 2 times (last: Errored: boom); a new "
            "search is made first; the same peer may be offered again (1 file that failed verification stays "
            "blocked)") in out


def test_ambiguous_name_is_refused_with_the_candidates(database, capsys):
    with storage.connect(database) as conn:
        conn.execute("UPDATE wanted_tracks SET title = 'Night Drive' WHERE wanted_key = 'isrc:DEAD2'")
    assert main(["dead-letter", "requeue", "Night Drive"]) == 1
    err = capsys.readouterr().err
    assert "'Night Drive' names 2 entries" in err and "isrc:DEAD1" in err and "isrc:DEAD2" in err
    with storage.connect(database, read_only=True) as conn:  # nothing was requeued
        assert conn.execute("SELECT count(*) FROM downloads WHERE state = 'dead_letter'").fetchone()[0] == 2


def test_requeue_all_and_bad_input(database, capsys):
    assert main(["dead-letter", "requeue"]) == 2
    assert "--all" in capsys.readouterr().err
    assert main(["dead-letter", "requeue", "bogus-id"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""  # only the error: nothing claims a requeue happened
    assert captured.err.strip() == "harmony: not dead-lettered: bogus-id (see `harmony dead-letter list`)"
    assert main(["dead-letter", "requeue", "isrc:OK", "isrc:DEAD1"]) == 1  # one unknown id: nothing done
    assert capsys.readouterr().out == ""
    assert main(["dead-letter", "requeue", "--all"]) == 0
    assert "requeued 2;" in capsys.readouterr().out


def test_what_a_requeue_leads_to_for_one_attempt():
    from harmony_pipeline.cli.dead_letter import peers, real_error, what_happens

    row = {"history": [{"username": "Sven1964", "filename": "a.mp3", "error": "TimedOut: Transfer timed out"}],
           "last_error": "no candidate left to try"}
    row["cause"], row["peers"] = real_error(row), peers(row)
    assert what_happens(row, 0) == ("its only attempt, with peer Sven1964, failed (last: TimedOut: Transfer "
                                    "timed out); a new search is made first; the same peer may be offered again")
