"""Failure paths found in review: nothing is lost when the database refuses a write, a down slskd is
not asked for runs that can only fail, a spent search budget defers until it frees up."""

from __future__ import annotations

import time
from datetime import timedelta

import duckdb
import pytest

from harmony_pipeline import storage
from harmony_pipeline.ingest import store as ingest_store
from harmony_pipeline.acquisition.search import SearchSession, decide_match
from resources.database import HarmonyDatabase
from resources.slskd import SlskdResource
from sensors.downloads import pending_work


def test_inbox_file_goes_back_when_recording_fails(tmp_path, monkeypatch):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    dropped = inbox / "list.txt"
    dropped.write_text("Sigur Rós - Hoppípolla\n", encoding="utf-8")
    [file] = ingest_store.waiting_inbox_files(inbox, time.time() + 60, settle_seconds=0)

    def refuse(*args, **kwargs):
        raise duckdb.IOException("Could not set lock on file: Conflicting lock is held")

    monkeypatch.setattr(ingest_store, "record_submission", refuse)
    with pytest.raises(duckdb.IOException):
        ingest_store.ingest_inbox_file(tmp_path / "h.duckdb", file)
    assert dropped.read_text(encoding="utf-8") == "Sigur Rós - Hoppípolla\n"  # back where it was dropped
    assert ingest_store.waiting_inbox_files(inbox, time.time() + 60, settle_seconds=0)  # picked up next tick


def _wanted(conn, key: str) -> None:
    now = storage.utcnow()
    storage.upsert(conn, "wanted_tracks", [{
        "wanted_key": key, "title": "Song", "artist": "Band", "album": None, "sources": ["playlist:x"],
        "state": "wanted", "first_wanted_at": now, "updated_at": now}], key=["wanted_key"])


def test_sensor_work_check_asks_slskd_even_with_nothing_in_flight(tmp_path):
    from harmony_pipeline.acquisition.slskd import SlskdUnavailable

    database = HarmonyDatabase(path=str(tmp_path / "h.duckdb"))
    with database.connect() as conn:
        _wanted(conn, "isrc:A")  # a search is due, nothing is downloading
    down = SlskdResource(url="http://127.0.0.1:9")  # nothing listens on the discard port
    with pytest.raises(SlskdUnavailable):
        pending_work(database, down)  # the sensor turns this into a SkipReason
    assert pending_work(database, None)["searches_due"] == 1


def test_spent_budget_defers_until_the_window_frees(tmp_path):
    database = HarmonyDatabase(path=str(tmp_path / "h.duckdb"))
    with database.connect() as conn:
        conn.execute("INSERT INTO search_budget VALUES (?, 'earlier search')", [storage.utcnow()])
    searched: list[str] = []
    session = SearchSession(search=lambda text: searched.append(text) or [], database=database,
                            limit=1, window_seconds=600)
    row = {"wanted_key": "isrc:A", "artist": "Band", "title": "Song", "album": None, "duration_ms": 200000}
    decision = decide_match(row, None, session, set())
    assert searched == []
    assert decision["status"] == "deferred"
    wait = decision["retry_search_after"] - storage.utcnow()
    assert timedelta(seconds=590) <= wait <= timedelta(seconds=600)  # not retried before the window frees
