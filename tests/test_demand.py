"""wanted_changes: demand merged and compared with wanted_tracks as set operations (issue 11).

The oracle is the row-by-row merge (merge_demand, library_keys, in_library) the asset used before:
the set-based version must give the same wanted tracks, and write only what changed.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from harmony_pipeline import storage
from harmony_pipeline.acquisition.demand import (
    DEMAND_SOURCES,
    WANTED_COLUMNS,
    in_library,
    library_keys,
    merge_demand,
    wanted_changes,
)

P1, P2, P3 = "playlist:" + "a" * 22, "playlist:" + "b" * 22, "playlist:" + "c" * 22
SYNCED = {P1, P2}


def _track(track_id: str, title: str, artist: str, isrc: str | None, **extra) -> dict:
    return {"spotify_track_id": track_id, "isrc": isrc, "title": title, "artist": artist, "artists": [artist],
            "album": "Album", "album_id": "al1", "album_artist": artist, "track_number": 1, "disc_number": 1,
            "album_total_tracks": 10, "release_date": "2001", "duration_ms": 200_000, **extra}


def _playlist_row(playlist: str, track: dict, now) -> dict:
    return {"playlist_id": playlist.split(":", 1)[1], "position": 0, **track, "added_at": now,
            "first_seen_at": now, "removed_at": None}


@pytest.fixture
def conn(tmp_path):
    now = storage.utcnow()
    with storage.connect(tmp_path / "h.duckdb") as conn:
        playlist = [
            _playlist_row(P1, _track("t1", "Hoppípolla", "Sigur Rós", "isaa00000001", album=None), now),
            _playlist_row(P2, _track("t1b", "Hoppipolla", "Sigur Ros", " ISAA00000001 ", album="Takk..."), now),
            _playlist_row(P1, _track("t2", "Song", "Band", None), now),
            _playlist_row(P2, _track("t3", "Song", "Band", None, duration_ms=260_000), now),  # another length
            _playlist_row(P1, _track("t4", "In Library", "Band", "ISLIB0000001"), now),
            _playlist_row(P1, _track("t5", "Known By Name", "Ärtist", None), now),
            _playlist_row(P3, _track("t6", "Unsynced", "Band", "ISUNS0000001"), now),  # playlist not synced
            _playlist_row(P1, _track("t7", "Blank isrc", "Band", "  "), now),
            {**_playlist_row(P1, _track("t8", "Removed", "Band", "ISREM0000001"), now), "removed_at": now},
        ]
        storage.upsert(conn, "playlist_tracks", playlist, key=["playlist_id", "spotify_track_id"])
        storage.upsert(conn, "backfilled_tracks", [
            {"fingerprint": "f1", "status": "matched", "via": "search", "score": 1.0, "reasons": [],
             "resolved_at": now, **_track("t1c", "Hoppipolla", "Sigur Ros", "ISAA00000001", track_number=3)},
            {"fingerprint": "f2", "status": "matched", "via": "search", "score": 1.0, "reasons": [],
             "resolved_at": now, **_track("t9", "Only Ingest", "Solo", "ISING0000001")},
        ], key=["fingerprint", "spotify_track_id"])
        storage.upsert(conn, "library_tracks", [
            {"wanted_key": "isrc:ISLIB0000001", "path": "a.flac", "isrc": "islib0000001", "title": "x",
             "artist": "y", "imported_at": now},
            {"wanted_key": "isrc:ISZZZ0000001", "path": "b.flac", "isrc": "ISZZZ0000001", "title": "Known by name!",
             "artist": "Artist", "imported_at": now},
        ], key=["wanted_key"])
        yield conn


def _oracle(conn) -> dict[str, dict]:
    """The asset's former row-by-row computation."""
    rows = []
    for source in DEMAND_SOURCES:
        rows += storage.fetch_dicts(conn, source.sql)
    rows = [r for r in rows if not r["source"].startswith("playlist:") or r["source"] in SYNCED]
    keys = library_keys(storage.fetch_dicts(conn, "SELECT * FROM library_tracks"))
    merged = merge_demand(rows)
    return {k: {**e, "state": "in_library" if in_library(e, keys) else "wanted"} for k, e in merged.items()}


def _apply(conn, changes) -> None:
    storage.upsert(conn, "wanted_tracks", changes.rows, key=["wanted_key"], keep=["first_wanted_at"])


def test_first_run_gives_the_row_by_row_result(conn):
    now = storage.utcnow()
    changes = wanted_changes(conn, SYNCED, now)
    got = {r["wanted_key"]: {c: r[c] for c in WANTED_COLUMNS[:16]} for r in changes.rows}
    expected = {k: {c: e.get(c) for c in WANTED_COLUMNS[:16]} for k, e in _oracle(conn).items()}
    assert got == expected
    # What the cases exercise, so the comparison above cannot pass on a trivial demand.
    isrc = got["isrc:ISAA00000001"]
    assert isrc["sources"] == sorted(["free_ingest", P1, P2]) and isrc["album"] == "Takk..."
    assert isrc["spotify_track_id"] == "t1" and isrc["track_number"] == 1
    assert {"key:band|song", "key:band|song|260"} <= set(got)
    assert got["isrc:ISLIB0000001"]["state"] == "in_library"
    assert got["key:artist|known by name"]["state"] == "in_library"
    assert "key:band|blank isrc" in got and "isrc:ISUNS0000001" not in got and "isrc:ISREM0000001" not in got
    assert all(r["first_wanted_at"] == now and r["updated_at"] == now for r in changes.rows)
    assert changes.demand_rows == 9
    assert sorted(n["track"] for n in changes.newly_wanted) == sorted(
        f"{e['artist']} – {e['title']}" for e in expected.values() if e["state"] == "wanted")


def test_nothing_new_writes_nothing_and_changes_write_only_their_rows(conn):
    first = storage.utcnow()
    _apply(conn, wanted_changes(conn, SYNCED, first))
    assert wanted_changes(conn, SYNCED, first + timedelta(minutes=1)).rows == []

    later = first + timedelta(minutes=2)
    conn.execute("UPDATE backfilled_tracks SET album = 'Renamed' WHERE spotify_track_id = 't9'")
    storage.upsert(conn, "library_tracks", [{"wanted_key": "isrc:ISING0000002", "path": "c.flac", "isrc": "ISAA00000001",
                                             "title": "t", "artist": "a", "imported_at": later}], key=["wanted_key"])
    changes = wanted_changes(conn, SYNCED, later)
    by_key = {r["wanted_key"]: r for r in changes.rows}
    assert set(by_key) == {"isrc:ISING0000001", "isrc:ISAA00000001"}
    assert by_key["isrc:ISING0000001"]["album"] == "Renamed" and by_key["isrc:ISAA00000001"]["state"] == "in_library"
    assert all(r["first_wanted_at"] == first and r["updated_at"] == later for r in changes.rows)
    assert changes.newly_wanted == []
    _apply(conn, changes)
    stored = dict(conn.execute("SELECT wanted_key, state FROM wanted_tracks").fetchall())
    assert {k: v for k, v in stored.items()} == {k: e["state"] for k, e in _oracle(conn).items()}


def test_a_playlist_left_out_withdraws_what_only_it_wanted(conn):
    now = storage.utcnow()
    _apply(conn, wanted_changes(conn, SYNCED, now))
    changes = wanted_changes(conn, {P1}, now + timedelta(minutes=1))
    by_key = {r["wanted_key"]: r for r in changes.rows}
    assert by_key["key:band|song|260"]["state"] == "withdrawn"  # demanded by P2 only
    assert by_key["isrc:ISAA00000001"]["sources"] == sorted(["free_ingest", P1])  # still wanted, one source less
    assert by_key["isrc:ISAA00000001"]["state"] == "wanted"
    _apply(conn, changes)
    assert wanted_changes(conn, {P1}, now + timedelta(minutes=2)).rows == []


def test_no_demand_table_withdraws_what_was_wanted(tmp_path):
    now = storage.utcnow()
    with storage.connect(tmp_path / "h.duckdb") as conn:
        storage.upsert(conn, "wanted_tracks", [
            {"wanted_key": "isrc:OLD", "title": "T", "artist": "A", "sources": ["free_ingest"], "state": "wanted",
             "first_wanted_at": now, "updated_at": now}], key=["wanted_key"])
        for table in ("playlist_tracks", "backfilled_tracks", "artist_release_tracks"):
            conn.execute(f"DROP TABLE {table}")
        changes = wanted_changes(conn, SYNCED, now)
    assert changes.demand_rows == 0
    assert [(r["wanted_key"], r["state"]) for r in changes.rows] == [("isrc:OLD", "withdrawn")]
