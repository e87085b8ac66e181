"""Pipelined Soulseek searches against the sandbox slskd: several in flight, one list request per poll,
the shared budget respected and deferrals recorded, album searches serving their tracks."""

from __future__ import annotations

import json
import time

import pytest

from harmony_pipeline import storage
from harmony_pipeline.sandbox import Sandbox
from harmony_pipeline.acquisition.search import SearchPipeline, SearchSession, decide_groups, group_by_album
from resources.database import HarmonyDatabase
from resources.slskd import SlskdResource

SEARCH_SECONDS = 1.0


@pytest.fixture
def slskd_sandbox(tmp_path):
    with Sandbox(tmp_path / "sandbox", slskd_search_seconds=SEARCH_SECONDS) as sandbox:
        yield sandbox


def _rows(catalog, count: int) -> list[dict]:
    """Wanted rows for `count` sandbox tracks of different albums (singles: one search each)."""
    rows, seen_albums = [], set()
    for track in catalog.tracks.values():
        if track.album_id in seen_albums or len(track.artist_ids) != 1:
            continue
        seen_albums.add(track.album_id)
        artist = catalog.artists[track.artist_ids[0]].name
        rows.append({"wanted_key": f"isrc:{track.isrc}", "artist": artist, "artists": [artist], "title": track.name,
                     "album": None, "album_id": None, "duration_ms": track.duration_ms, "isrc": track.isrc})
        if len(rows) == count:
            return rows
    raise AssertionError("not enough tracks")


def _pipeline(sandbox, database, limit: int = 1000, window: int = 60) -> SearchPipeline:
    client = SlskdResource(url=sandbox.url("slskd"), api_key=sandbox.env["SLSKD_API_KEY"]).get_client()
    session = SearchSession(search=None, database=database, limit=limit, window_seconds=window)
    return SearchPipeline(client, session, timeout_ms=2000, poll_seconds=0.25, spacing_seconds=0.1)


def test_searches_run_side_by_side_and_are_polled_together(slskd_sandbox, tmp_path):
    database = HarmonyDatabase(path=str(tmp_path / "h.duckdb"))
    rows = _rows(slskd_sandbox.catalog, 6)
    pipeline = _pipeline(slskd_sandbox, database)
    decisions = decide_groups(pipeline, group_by_album(rows), set())

    assert [d["wanted_key"] for d in decisions] == [r["wanted_key"] for r in rows]
    assert all(d["status"] in ("matched", "no_match") for d in decisions)
    requests = slskd_sandbox.emulator("slskd").requests()
    created = [r for r in requests if r.method == "POST" and r.path.rstrip("/").endswith("/searches")]
    polls = [r for r in requests if r.method == "GET" and r.path.rstrip("/").endswith("/searches")]
    assert len(created) == pipeline.session.searches >= 4
    first_read = min(r.time for r in requests if r.path.endswith("/responses"))
    assert sum(1 for r in created if r.time < first_read) >= 3  # several were in flight at once
    assert len(polls) < len(created) * SEARCH_SECONDS / 0.25  # one list request serves every search
    with database.connect(read_only=True) as conn:  # every answer cached, every search in the budget
        assert conn.execute("SELECT count(*) FROM search_budget").fetchone()[0] == len(created)
        assert conn.execute("SELECT count(*) FROM search_cache").fetchone()[0] == len(set(
            json.loads(r.body)["searchText"] for r in created))


def test_a_spent_budget_defers_the_searches_not_started(slskd_sandbox, tmp_path):
    database = HarmonyDatabase(path=str(tmp_path / "h.duckdb"))
    rows = _rows(slskd_sandbox.catalog, 5)
    pipeline = _pipeline(slskd_sandbox, database, limit=2, window=600)
    decisions = decide_groups(pipeline, group_by_album(rows), set())
    created = [r for r in slskd_sandbox.emulator("slskd").requests()
               if r.method == "POST" and r.path.rstrip("/").endswith("/searches")]
    assert len(created) == 2
    deferred = [d for d in decisions if d["status"] == "deferred"]
    assert deferred and all(d["queries"] is None for d in deferred)
    for decision in deferred:  # asked again when the window frees, not before
        assert (decision["retry_search_after"] - storage.utcnow()).total_seconds() > 500


def test_one_album_search_serves_every_wanted_track_of_the_album(slskd_sandbox, tmp_path):
    catalog = slskd_sandbox.catalog
    album = next(a for a in catalog.albums.values()
                 if len(a.track_ids) >= 4 and len(a.artist_ids) == 1 and a.album_type == "album")
    artist = catalog.artists[album.artist_ids[0]].name
    rows = [{"wanted_key": f"isrc:{t.isrc}", "artist": artist, "artists": [artist], "title": t.name,
             "album": album.name, "album_id": album.id, "album_artist": artist, "duration_ms": t.duration_ms,
             "isrc": t.isrc, "track_number": t.track_number, "album_total_tracks": len(album.track_ids)}
            for t in catalog.album_tracks(album)[:4]]
    database = HarmonyDatabase(path=str(tmp_path / "h.duckdb"))
    decisions = decide_groups(_pipeline(slskd_sandbox, database), group_by_album(rows), set())
    matched = [d for d in decisions if d["status"] == "matched"]
    assert matched, decisions
    created = [json.loads(r.body)["searchText"] for r in slskd_sandbox.emulator("slskd").requests()
               if r.method == "POST" and r.path.rstrip("/").endswith("/searches")]
    # The album search, plus a track search only for a track the album search did not settle.
    assert len(created) <= 1 + (len(rows) - len(matched)) * 2


class _StuckClient:
    """A client whose searches never report complete (a wedged slskd), on a fake clock."""

    def __init__(self, clock):
        self.clock, self.stopped, self.deleted = clock, [], []

    def start_search(self, query, timeout_ms):
        return f"id-{query}"

    def search_progress(self):
        return {f"id-{q}": False for q in ("a b",)}

    def stop_search(self, search_id):
        self.stopped.append(search_id)

    def delete_search(self, search_id):
        self.deleted.append(search_id)


def test_a_search_slskd_never_completes_is_given_up_not_waited_on_forever(tmp_path):
    now = [0.0]
    database = HarmonyDatabase(path=str(tmp_path / "h.duckdb"))
    session = SearchSession(search=None, database=database, limit=1000, window_seconds=60,
                            sleep=lambda seconds: now.__setitem__(0, now[0] + max(seconds, 0.01)))
    client = _StuckClient(now)
    pipeline = SearchPipeline(client, session, timeout_ms=1000, poll_seconds=0.5, clock=lambda: now[0])

    def steps():
        answer = yield "a b"
        return answer

    assert pipeline.run([steps()]) == [None]  # no verdict: the track is searched again next run
    assert client.stopped == ["id-a b"] and client.deleted == ["id-a b"]
    assert now[0] < 1 * 4 + 30 + 60  # the deadline, the grace after stopping, a few polls


def test_a_busy_budget_is_waited_for_without_spinning(tmp_path):
    now = [0.0]
    calls = []
    database = HarmonyDatabase(path=str(tmp_path / "h.duckdb"))
    session = SearchSession(search=None, database=database, limit=1000, window_seconds=60,
                            sleep=lambda seconds: now.__setitem__(0, now[0] + max(seconds, 0.01)))
    session.take_budget = lambda query: calls.append(now[0]) or (5.0 if len(calls) < 2 else None)
    pipeline = SearchPipeline(_StuckClient(now), session, clock=lambda: now[0])

    def steps():
        return (yield "a b")

    assert pipeline.run([steps()]) == [None]
    assert len(calls) == 2 and calls[1] - calls[0] >= 5.0  # asked again when the window frees, not in a loop


def test_a_search_text_slskd_refuses_is_nothing_found_not_a_failed_step(tmp_path):
    from harmony_pipeline.acquisition.slskd import SlskdError

    class Refusing(_StuckClient):
        def start_search(self, query, timeout_ms):
            raise SlskdError(f"search {query!r} not created: Search text must be at least 2 characters", 400)

    now = [0.0]
    database = HarmonyDatabase(path=str(tmp_path / "h.duckdb"))
    session = SearchSession(search=None, database=database, limit=1000, window_seconds=60,
                            sleep=lambda seconds: now.__setitem__(0, now[0] + max(seconds, 0.01)))
    pipeline = SearchPipeline(Refusing(now), session, clock=lambda: now[0])
    row = {"wanted_key": "isrc:X", "artist": "A", "title": "B", "album": None, "duration_ms": 200000}
    [decision] = decide_groups(pipeline, [[row]], set())
    assert decision["status"] == "no_match"


def test_decisions_are_handed_over_while_other_searches_still_run(slskd_sandbox, tmp_path):
    """What is decided can be acted on (its download started) before the last search of the batch."""
    database = HarmonyDatabase(path=str(tmp_path / "h.duckdb"))
    rows = _rows(slskd_sandbox.catalog, 8)
    pipeline = _pipeline(slskd_sandbox, database)
    pipeline.max_in_flight = 2  # so the batch takes several rounds of searches
    handed: list[tuple[float, list[str]]] = []
    decisions = decide_groups(pipeline, group_by_album(rows), set(), flush_seconds=0,
                              on_decided=lambda batch: handed.append((time.time(), [d["wanted_key"] for d in batch])))
    assert sorted(k for _, keys in handed for k in keys) == sorted(d["wanted_key"] for d in decisions)
    created = [r.time for r in slskd_sandbox.emulator("slskd").requests()
               if r.method == "POST" and r.path.rstrip("/").endswith("/searches")]
    assert len(handed) >= 2 and handed[0][0] < max(created)  # the first decisions came before the last search


def test_a_step_stops_starting_searches_after_its_time_and_leaves_the_rest_due(slskd_sandbox, tmp_path):
    database = HarmonyDatabase(path=str(tmp_path / "h.duckdb"))
    rows = _rows(slskd_sandbox.catalog, 6)
    pipeline = _pipeline(slskd_sandbox, database)
    pipeline.max_in_flight, pipeline.max_seconds = 1, SEARCH_SECONDS  # room for about one search
    decisions = decide_groups(pipeline, group_by_album(rows), set())
    searched = [d for d in decisions if d["status"] != "deferred"]
    left = [d for d in decisions if d["status"] == "deferred"]
    assert searched and left and len(searched) + len(left) == len(rows)
    for decision in left:  # due again at once: the next run takes them up, not after a budget window
        assert decision["retry_search_after"] <= storage.utcnow()
