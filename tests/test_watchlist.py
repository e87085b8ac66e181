"""Watchlist: rules, `harmony watch`, and new_release_sensor against the sandbox's Spotify (and its slskd
when present), with real materializations, a real DuckDB file and the emulators' request logs."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlsplit

import duckdb
import mutagen
import pytest
from conftest import materialize_assets, settle_acquisition
from dagster import build_sensor_context, materialize

from harmony_pipeline import storage
from harmony_pipeline.watchlist import releases as rules
from harmony_pipeline.cli.main import main as harmony
from harmony_pipeline.definitions import collect_wiring
from harmony_pipeline.http_cache import HttpCache
from harmony_pipeline.sandbox import Fault, Sandbox
from harmony_pipeline.sandbox.catalog import Album, Artist, Catalog
from harmony_pipeline.settings import load_settings
from harmony_pipeline.enrichment.tagging import read_tags

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)
WATCHLIST_JOB = ["artist_releases", "wanted_tracks", "soulseek_matches", "downloads", "library_tracks"]


# --- rules -------------------------------------------------------------------------------------------
def _artist(artist_id: str, **values) -> dict:
    return {"artist_id": artist_id, "paused": False, "priority": 0, "next_due_at": None, "last_checked_at": None,
            **values}


def test_due_artists_by_priority_and_interval_without_paused():
    artists = [
        _artist("checked_long_ago", last_checked_at=NOW - timedelta(days=2), next_due_at=NOW - timedelta(days=1)),
        _artist("checked_recently", last_checked_at=NOW - timedelta(days=1), next_due_at=NOW - timedelta(hours=1)),
        _artist("never_checked"),
        _artist("important", priority=5, last_checked_at=NOW - timedelta(days=1), next_due_at=NOW),
        _artist("paused", paused=True, priority=9),
        _artist("not_due", priority=9, last_checked_at=NOW, next_due_at=NOW + timedelta(seconds=1)),
    ]
    due = [a["artist_id"] for a in rules.due_artists(artists, NOW, limit=10)]
    assert due == ["important", "never_checked", "checked_long_ago", "checked_recently"]
    assert [a["artist_id"] for a in rules.due_artists(artists, NOW, limit=2)] == ["important", "never_checked"]


def _album(album_id: str, release_date: str = "2019") -> dict:
    return {"id": album_id, "name": album_id.title(), "album_type": "album", "release_date": release_date,
            "release_date_precision": "year" if len(release_date) == 4 else "day", "total_tracks": 9}


def test_first_check_is_the_baseline_and_later_unknown_ids_are_new_whatever_their_date():
    albums = [_album("one"), _album("two")]
    baseline = rules.release_rows("a", albums, set(), baseline_recorded=False, with_discography=False, now=NOW)
    assert [(r["album_id"], r["is_new"], r["acquire"]) for r in baseline] == [
        ("one", False, False), ("two", False, False)]
    back_catalogue = rules.release_rows("a", albums, set(), baseline_recorded=False, with_discography=True, now=NOW)
    assert all(r["acquire"] and not r["is_new"] for r in back_catalogue)

    # A release that appears later is new even when dated before the last check (year precision).
    later = [_album("three", "2001"), *albums]
    rows = rules.release_rows("a", later, {"one", "two"}, baseline_recorded=True, with_discography=False, now=NOW)
    assert [(r["album_id"], r["is_new"], r["acquire"]) for r in rows] == [("three", True, True)]
    unchanged = rules.release_rows("a", albums, {"one", "two"}, baseline_recorded=True, with_discography=False, now=NOW)
    assert unchanged == []


def test_error_back_off_doubles_up_to_the_interval():
    delays = [rules.error_delay(n, 86_400) for n in range(1, 9)]
    assert delays[:3] == [timedelta(minutes=15), timedelta(minutes=30), timedelta(hours=1)]
    assert delays[-1] == timedelta(hours=16) and delays == sorted(delays)  # 15 min × 2^6 at most
    assert rules.error_delay(3, 600) == timedelta(seconds=600)


# --- sandbox helpers ---------------------------------------------------------------------------------
@dataclass
class Upcoming:
    """An album shared on Soulseek from the start but published on Spotify only by `release()`
    (the slskd emulator's peers share what the catalog holds when it starts)."""

    catalog: Catalog
    artist: Artist
    album: Album

    def release(self) -> None:
        with self.catalog.lock:
            self.catalog.albums[self.album.id] = self.album


@pytest.fixture
def sandbox_and_upcoming(tmp_path):
    box = Sandbox(tmp_path / "sandbox", slskd_search_seconds=0.2, slskd_transfer_step_seconds=0.02)
    artist = _pick_artist(box.catalog)
    album = box.catalog.add_album(artist.id, name="Brand New Day", track_count=6, release_date="2026-11-20")
    with box:
        with box.catalog.lock:
            del box.catalog.albums[album.id]
        yield box, Upcoming(box.catalog, artist, album)


@pytest.fixture
def sandbox(sandbox_and_upcoming):
    return sandbox_and_upcoming[0]


@pytest.fixture
def upcoming(sandbox_and_upcoming):
    return sandbox_and_upcoming[1]


@pytest.fixture
def env(harmony_env, monkeypatch):
    monkeypatch.setenv("HARMONY_PLAYLISTS", "")  # only watchlist demand in these tests
    return harmony_env


def _rows(sql: str, params=()) -> list[tuple]:
    with duckdb.connect(str(load_settings().duckdb_path), read_only=True) as conn:
        return conn.execute(sql, list(params)).fetchall()


def _make_due(*artist_ids: str) -> None:
    """As if the watch interval had passed since the last check."""
    with storage.connect(load_settings().duckdb_path) as conn:
        conn.execute("UPDATE watchlist_artists SET next_due_at = ? WHERE artist_id IN (SELECT unnest(?))",
                     [storage.utcnow() - timedelta(seconds=1), list(artist_ids)])


def _tick(instance):
    wiring = collect_wiring(load_settings())
    sensor = next(s for s in wiring.sensors if s.name == "new_release_sensor")
    context = build_sensor_context(instance=instance, resources=wiring.resources)
    return sensor.evaluate_tick(context)


def _run(instance, run_request, *, acquire: bool = True):
    """The requested run with the watchlist job's own selection (releases, wanted tracks, then search,
    download and import); without `acquire` only up to wanted tracks, for tests about demand."""
    wiring = collect_wiring(load_settings())
    job = next(j for j in wiring.jobs if j.name == "watchlist_job")
    selection = job.selection if acquire else ["artist_releases", "wanted_tracks"]
    result = materialize(wiring.assets, resources=wiring.resources, instance=instance, selection=selection,
                         run_config=run_request.run_config, tags=run_request.tags)
    assert result.success
    if acquire:
        # The chain materializes as far as there was work (no empty events), then the runs
        # download_transfer_sensor requests finish the transfers.
        done = [node for node in WATCHLIST_JOB if result.asset_materializations_for_node(node)]
        assert done == WATCHLIST_JOB[:len(done)] and done
        settle_acquisition(instance)
    return result


def _spotify_api(sandbox, part: str = "/v1/") -> list:
    return [r for r in sandbox.emulator("spotify").requests() if part in r.path]


def _watch(*args: str) -> int:
    return harmony(["--quiet", "watch", *args])


def _pick_artist(catalog: Catalog) -> Artist:
    return next(a for a in catalog.artists.values() if len(a.album_ids) >= 2)


def _published(catalog: Catalog, artist: Artist) -> list[str]:
    return [album_id for album_id in artist.album_ids if album_id in catalog.albums]


def _baseline(sandbox, instance, artist_id: str, *extra: str, acquire: bool = False):
    assert _watch("add", f"spotify:artist:{artist_id}", *extra) == 0
    tick = _tick(instance)
    assert len(tick.run_requests) == 1
    _run(instance, tick.run_requests[0], acquire=acquire)


# --- harmony watch -----------------------------------------------------------------------------------
def test_watch_add_talks_to_spotify_without_importing_dagster(sandbox, env, tmp_path):
    """`harmony watch add` only talks to Spotify: run as a user runs it, it imports no dagster module."""
    artist = next(iter(sandbox.catalog.artists.values()))
    repo = Path(__file__).resolve().parent.parent
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "harmony_pipeline.cli", "watch", "add",
                           f"spotify:artist:{artist.id}"], env={**os.environ, "PYTHONPATH": str(repo)},
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    assert "spotipy" in imported and "requests_cache" in imported  # the command did reach the client
    assert {m for m in imported if m.split(".")[0] == "dagster"} == set()
    assert not {m for m in imported if m.split(".")[0] == "resources"}
    assert _rows("SELECT name, source FROM watchlist_artists WHERE artist_id = ?", [artist.id]) == [
        (artist.name, "cli")]


def test_watch_add_list_set_remove_with_reasons(sandbox, env, instance, monkeypatch, capsys):
    artist, other = list(sandbox.catalog.artists.values())[:2]
    monkeypatch.setenv("HARMONY_WATCHLIST", f"https://open.spotify.com/artist/{other.id}?si=x")

    assert _watch("add", f"https://open.spotify.com/artist/{artist.id}", "--priority", "3") == 0
    assert _rows("SELECT name, source, priority, paused FROM watchlist_artists WHERE artist_id = ?",
                 [artist.id]) == [(artist.name, "cli", 3, False)]

    capsys.readouterr()
    assert _watch("add", artist.id) == 1
    assert "already watched" in capsys.readouterr().err
    assert _watch("add", f"spotify:artist:{other.id}") == 1
    assert "from HARMONY_WATCHLIST" in capsys.readouterr().err
    assert _watch("add", "0123456789abcdefghijkl") == 1
    assert "unknown artist" in capsys.readouterr().err
    assert _watch("add", f"spotify:album:{next(iter(sandbox.catalog.albums))}") == 1
    assert "expected a Spotify artist" in capsys.readouterr().err
    assert _watch("remove", other.id) == 1
    assert "remove it there" in capsys.readouterr().err

    assert _watch("set", artist.id, "--pause", "--priority", "7") == 0
    assert _rows("SELECT priority, paused FROM watchlist_artists WHERE artist_id = ?", [artist.id]) == [(7, True)]
    assert harmony(["watch", "list"]) == 0
    listing = capsys.readouterr().out
    assert "paused" in listing and "cli" in listing and "env" in listing

    assert _watch("remove", artist.id) == 0
    assert [r[0] for r in _rows("SELECT artist_id FROM watchlist_artists")] == [other.id]


def test_artist_taken_out_of_the_env_watchlist_stops_being_acquired(sandbox, upcoming, env, instance, monkeypatch):
    artist, album = upcoming.artist, upcoming.album
    monkeypatch.setenv("HARMONY_WATCHLIST", f"spotify:artist:{artist.id}")
    _run(instance, _tick(instance).run_requests[0], acquire=False)  # baseline
    upcoming.release()
    _make_due(artist.id)
    _run(instance, _tick(instance).run_requests[0], acquire=False)
    album_isrcs = {t.isrc for t in sandbox.catalog.album_tracks(album)}
    assert {r[0] for r in _rows("SELECT isrc FROM wanted_tracks WHERE state = 'wanted'")} == album_isrcs

    monkeypatch.setenv("HARMONY_WATCHLIST", "")
    _tick(instance)  # the sensor brings the table in line with HARMONY_WATCHLIST
    assert materialize_assets(["wanted_tracks"], instance).success

    for table in ("watchlist_artists", "artist_releases", "artist_release_tracks"):
        assert _rows(f"SELECT count(*) FROM {table}") == [(0,)], table
    assert _rows("SELECT count(*) FROM wanted_tracks WHERE state = 'wanted'") == [(0,)]
    assert {r[0] for r in _rows("SELECT isrc FROM wanted_tracks WHERE state = 'withdrawn'")} == album_isrcs


def test_watchlist_artists_asset_names_env_artists(sandbox, env, instance, monkeypatch):
    artist = list(sandbox.catalog.artists.values())[3]
    monkeypatch.setenv("HARMONY_WATCHLIST", f"spotify:artist:{artist.id}")
    assert materialize_assets(["watchlist_artists"], instance).success
    assert _rows("SELECT artist_id, name, source FROM watchlist_artists") == [(artist.id, artist.name, "env")]


# --- new_release_sensor ------------------------------------------------------------------------------
def test_adding_an_artist_records_its_discography_and_acquires_nothing(sandbox, env, instance):
    artist = _pick_artist(sandbox.catalog)
    slskd = sandbox.emulator("slskd")
    slskd.clear_requests()

    _baseline(sandbox, instance, artist.id, acquire=True)  # the whole watchlist job

    releases = _rows("SELECT album_id, is_new, acquire FROM artist_releases WHERE artist_id = ?", [artist.id])
    assert sorted(releases) == sorted((album_id, False, False) for album_id in _published(sandbox.catalog, artist))
    assert _rows("SELECT count(*) FROM artist_release_tracks") == [(0,)]
    assert _rows("SELECT count(*) FROM wanted_tracks") == [(0,)]
    assert _rows("SELECT baseline_at IS NOT NULL, next_due_at > now() FROM watchlist_artists") == [(True, True)]
    assert _rows("SELECT count(*) FROM activity_events WHERE type = 'new_release_detected'") == [(0,)]
    assert [r.path for r in slskd.requests() if r.method == "POST"] == []  # no search, no enqueued download
    assert _tick(instance).run_requests == []  # not due again before the interval


def test_new_album_is_detected_by_one_tick_and_its_tracks_acquired(sandbox, upcoming, env, instance):
    artist, album = upcoming.artist, upcoming.album
    _baseline(sandbox, instance, artist.id)
    upcoming.release()
    _make_due(artist.id)
    spotify = sandbox.emulator("spotify")
    spotify.clear_requests()
    sandbox.emulator("slskd").clear_requests()

    tick = _tick(instance)
    sensor_requests = _spotify_api(sandbox)
    assert [r.path for r in sensor_requests] == [f"/v1/artists/{artist.id}/albums"]
    assert sensor_requests[0].query["include_groups"] == "album,single" and sensor_requests[0].query["limit"] == "10"
    assert len(tick.run_requests) == 1
    run_config = tick.run_requests[0].run_config["ops"]["artist_releases"]["config"]
    assert run_config == {"artist_ids": [artist.id], "new_release_ids": {artist.id: [album.id]}}

    spotify.clear_requests()
    result = _run(instance, tick.run_requests[0])
    run_requests = _spotify_api(sandbox)
    assert not [r for r in run_requests if r.path.endswith("/albums")]  # the run does not list them again
    releases_requests = result.asset_materializations_for_node("artist_releases")[0].metadata["spotify_requests"].value
    events = _rows("SELECT details FROM activity_events WHERE type = 'new_release_detected'")
    assert len(events) == 1 and "Brand New Day" in events[0][0]

    assert _rows("SELECT is_new, acquire FROM artist_releases WHERE album_id = ?", [album.id]) == [(True, True)]
    expected = {(t.id, t.isrc) for t in sandbox.catalog.album_tracks(album)}
    assert set(_rows("SELECT spotify_track_id, isrc FROM artist_release_tracks WHERE acquire")) == expected
    wanted = _rows("SELECT isrc, album_id, sources FROM wanted_tracks")
    assert {r[0] for r in wanted} == {isrc for _, isrc in expected}
    assert all(r[1] == album.id and r[2] == [f"watchlist:{artist.id}"] for r in wanted)
    assert sum(1 for r in run_requests if r.path.startswith("/v1/tracks/")) == len(expected)  # one per track
    assert not any("ids" in r.query for r in run_requests)  # no batch endpoints

    slskd_requests = sandbox.emulator("slskd").requests()
    library = Path(load_settings().library_dir)
    states = dict(_rows("SELECT w.spotify_track_id, w.state FROM wanted_tracks w"))
    imported = dict(_rows("SELECT w.spotify_track_id, l.path FROM library_tracks l JOIN wanted_tracks w "
                          "USING (wanted_key)"))
    network = sandbox.emulator("slskd").peers
    findable = {t.id for t in sandbox.catalog.album_tracks(album) if network.scenario(t.id) == "normal"}
    assert imported and set(imported) <= findable
    for track_id, relative in imported.items():
        assert states[track_id] == "in_library" and mutagen.File(library / relative) is not None
    # Tracks not found stay wanted (and demanded), so the acquisition retry rules keep trying them.
    for track_id in set(states) - set(imported):
        assert states[track_id] == "wanted"
    assert _rows("SELECT bool_and(acquire) FROM artist_release_tracks") == [(True,)]
    print(f"\nnew album of {len(expected)} tracks: sensor tick {len(sensor_requests)} Spotify request; run "
          f"{len(run_requests)} Spotify requests "
          f"({', '.join(f'{k} {v}' for k, v in _by_endpoint(run_requests).items())}"
          f"), of which artist_releases {releases_requests} and acquisition {len(run_requests) - releases_requests}; "
          f"slskd {len(slskd_requests)} requests "
          f"({', '.join(f'{k} {v}' for k, v in _by_endpoint(slskd_requests).items())})")

    # Asked again, nothing is fetched twice: the album is known and its tracks are read.
    spotify.clear_requests()
    _make_due(artist.id)
    assert _tick(instance).run_requests == []
    assert len(_spotify_api(sandbox)) == 1


def _due_in_seconds(artist_id: str) -> float:
    return _rows("SELECT epoch(next_due_at - now()) FROM watchlist_artists WHERE artist_id = ?", [artist_id])[0][0]


def _detected_events() -> int:
    return _rows("SELECT count(*) FROM activity_events WHERE type = 'new_release_detected'")[0][0]


def test_a_failed_or_rate_limited_run_does_not_hide_a_new_release_for_an_interval(sandbox, upcoming, env, instance):
    artist, album = upcoming.artist, upcoming.album
    _baseline(sandbox, instance, artist.id)
    upcoming.release()
    _make_due(artist.id)

    # The run the tick asks for never records anything (failed, cancelled): the artist stays close to due.
    assert len(_tick(instance).run_requests) == 1
    assert _due_in_seconds(artist.id) <= rules.error_delay(1, 86_400).total_seconds()
    assert _detected_events() == 0

    # The next run is rate-limited while reading the tracks: checked again when the limit ends.
    _make_due(artist.id)
    tick = _tick(instance)
    sandbox.emulator("spotify").add_fault(Fault("/v1/tracks/", status=429, retry_after=3600))
    _run(instance, tick.run_requests[0], acquire=False)
    assert _rows("SELECT tracks_read_at IS NULL FROM artist_releases WHERE album_id = ?", [album.id]) == [(True,)]
    assert 3500 < _due_in_seconds(artist.id) <= 3600
    assert _detected_events() == 1

    sandbox.emulator("spotify").clear_faults()
    _make_due(artist.id)
    _run(instance, _tick(instance).run_requests[0], acquire=False)
    expected = {t.isrc for t in sandbox.catalog.album_tracks(album)}
    assert {r[0] for r in _rows("SELECT isrc FROM wanted_tracks WHERE state = 'wanted'")} == expected
    assert _detected_events() == 1
    assert _due_in_seconds(artist.id) > 86_000


ENDPOINT_WORDS = {"v1", "api", "v0", "artists", "albums", "tracks", "searches", "responses", "transfers",
                  "downloads", "events"}


def _by_endpoint(requests) -> dict[str, int]:
    """Request counts per endpoint, ids replaced by {id}."""
    counts: dict[str, int] = {}
    for request in requests:
        path = "/".join(p if p in ENDPOINT_WORDS else "{id}" for p in request.path.strip("/").split("/"))
        name = f"{request.method} /{path}"
        counts[name] = counts.get(name, 0) + 1
    return counts


def test_unchanged_artist_costs_one_albums_request_and_a_paused_one_none(sandbox, env, instance):
    artists = [a for a in sandbox.catalog.artists.values() if a.album_ids][:2]
    for artist in artists:
        assert _watch("add", artist.id) == 0
    _run(instance, _tick(instance).run_requests[0])  # both baselines in one run
    unchanged, paused = artists
    assert _watch("set", paused.id, "--pause") == 0
    sandbox.catalog.add_album(paused.id, name="Unheard While Paused")
    _make_due(unchanged.id, paused.id)
    sandbox.emulator("spotify").clear_requests()

    tick = _tick(instance)

    assert tick.run_requests == [] and "no new releases" in tick.skip_message
    assert [r.path for r in _spotify_api(sandbox)] == [f"/v1/artists/{unchanged.id}/albums"]
    print(f"\nunchanged artist: {len(_spotify_api(sandbox))} Spotify request per check; paused artist: 0")

    assert _watch("set", paused.id, "--resume") == 0
    tick = _tick(instance)
    assert len(tick.run_requests) == 1
    assert tick.run_requests[0].run_config["ops"]["artist_releases"]["config"]["artist_ids"] == [paused.id]


def test_unchanged_artist_with_a_long_discography_costs_one_request_and_a_new_single_two(sandbox, env, instance):
    artist = _pick_artist(sandbox.catalog)
    while len(_published(sandbox.catalog, artist)) <= 12:
        sandbox.catalog.add_album(artist.id, release_date="2015-01-01")
    _baseline(sandbox, instance, artist.id)
    assert _rows("SELECT release_count FROM watchlist_artists") == [(len(_published(sandbox.catalog, artist)),)]
    _make_due(artist.id)
    spotify = sandbox.emulator("spotify")
    spotify.clear_requests()

    assert _tick(instance).run_requests == []
    assert [(r.path, r.query.get("offset", "0")) for r in _spotify_api(sandbox)] == [
        (f"/v1/artists/{artist.id}/albums", "0")]

    # Singles come after the albums: the new one is on page 2, found because page 1's total grew.
    single = sandbox.catalog.add_album(artist.id, album_type="single", track_count=1, name="Late Single")
    _make_due(artist.id)
    spotify.clear_requests()
    tick = _tick(instance)
    assert len(_spotify_api(sandbox)) == 2
    assert tick.run_requests[0].run_config["ops"]["artist_releases"]["config"]["new_release_ids"] == {
        artist.id: [single.id]}
    _run(instance, tick.run_requests[0], acquire=False)
    assert _rows("SELECT is_new, acquire FROM artist_releases WHERE album_id = ?", [single.id]) == [(True, True)]
    assert _rows("SELECT release_count FROM watchlist_artists") == [(len(_published(sandbox.catalog, artist)),)]


def test_album_and_track_answers_are_cached_for_a_week_and_a_month(sandbox, upcoming, env, instance):
    artist, album = upcoming.artist, upcoming.album
    _baseline(sandbox, instance, artist.id)
    upcoming.release()
    _make_due(artist.id)
    _run(instance, _tick(instance).run_requests[0], acquire=False)
    responses = HttpCache(load_settings().duckdb_path).backend().responses
    lifetimes: dict[str, int] = {}
    for answer in responses.values():  # the response cache file kept the album and its tracks
        kind = urlsplit(answer.url).path.split("/")[2]
        days = round((answer.expires - answer.created_at).total_seconds() / 86400)
        lifetimes[kind] = max(lifetimes.get(kind, 0), days)
    assert lifetimes == {"albums": 7, "tracks": 30}

    # Once the album answer has expired, reading the release again asks for the album, not its tracks.
    for key, answer in list(responses.items()):
        if "/v1/albums/" in answer.url:
            answer.expires = datetime.now(timezone.utc) - timedelta(seconds=1)
            responses[key] = answer
    with storage.connect(load_settings().duckdb_path) as conn:
        conn.execute("UPDATE artist_releases SET tracks_read_at = NULL WHERE album_id = ?", [album.id])
    sandbox.emulator("spotify").clear_requests()
    wiring = collect_wiring(load_settings())
    run_config = {"ops": {"artist_releases": {"config": {"artist_ids": [artist.id],
                                                          "new_release_ids": {artist.id: []}}}}}
    assert materialize(wiring.assets, resources=wiring.resources, instance=instance, selection=["artist_releases"],
                       run_config=run_config).success
    assert [r.path for r in _spotify_api(sandbox)] == [f"/v1/albums/{album.id}"]


def test_an_album_the_watchlist_read_is_served_from_the_cache_to_import_and_enrichment(
        sandbox, upcoming, env, instance):
    artist, album = upcoming.artist, upcoming.album
    _baseline(sandbox, instance, artist.id)
    upcoming.release()
    _make_due(artist.id)
    tick = _tick(instance)
    spotify = sandbox.emulator("spotify")
    spotify.clear_requests()

    _run(instance, tick.run_requests[0])  # artist_releases through library_tracks
    # artist_releases read the album once; library_tracks counted its discs from that answer.
    assert [r.path for r in _spotify_api(sandbox, "/v1/albums/")] == [f"/v1/albums/{album.id}"]
    imported = _rows("SELECT path FROM library_tracks WHERE album_id = ?", [album.id])
    assert imported
    # The imports happen in this run and in the follow-up runs the transfer sensor requests.
    from dagster import AssetKey

    records = instance.fetch_materializations(AssetKey("library_tracks"), limit=100).records
    imports = [r.asset_materialization.metadata for r in records]
    assert imports and sum(m["spotify_requests"].value for m in imports) == 0
    assert all(m["spotify_cache_hits"].value == 1 for m in imports)

    spotify.clear_requests()
    assert materialize_assets(["track_metadata"], instance).success
    assert _spotify_api(sandbox, "/v1/albums/") == []
    assert _rows("SELECT DISTINCT status FROM track_metadata") == [("tagged",)]
    # The track and disc totals written come from the cached album's track list.
    library_dir = Path(load_settings().library_dir)
    album_tracks = sandbox.catalog.album_tracks(album)
    discs = {t.disc_number for t in album_tracks}
    for (relative,) in imported:
        tags = read_tags(library_dir / relative)
        assert tags.track_total == len(album_tracks) and tags.disc_total == len(discs)


def test_with_discography_acquires_the_back_catalogue(sandbox, env, instance):
    artist = _pick_artist(sandbox.catalog)
    _baseline(sandbox, instance, artist.id, "--with-discography")

    releases = _rows("SELECT album_id, is_new, acquire FROM artist_releases")
    published = _published(sandbox.catalog, artist)
    assert sorted(releases) == sorted((album_id, False, True) for album_id in published)
    expected = {t.id for album_id in published for t in sandbox.catalog.album_tracks(sandbox.catalog.albums[album_id])}
    assert {r[0] for r in _rows("SELECT spotify_track_id FROM artist_release_tracks WHERE acquire")} == expected
    expected_isrcs = {sandbox.catalog.tracks[t].isrc for t in expected}  # singles share their album's ISRCs
    assert {r[0] for r in _rows("SELECT isrc FROM wanted_tracks")} == expected_isrcs


def test_spotify_error_on_one_artist_delays_only_that_artist(sandbox, env, instance):
    failing, healthy = [a for a in sandbox.catalog.artists.values() if a.album_ids][:2]
    for artist in (failing, healthy):
        assert _watch("add", artist.id) == 0
    sandbox.emulator("spotify").add_fault(Fault(f"/v1/artists/{failing.id}/albums", status=403))

    tick = _tick(instance)

    assert tick.run_requests[0].run_config["ops"]["artist_releases"]["config"]["artist_ids"] == [healthy.id]
    rows = dict((r[0], r[1:]) for r in _rows(
        "SELECT artist_id, last_error, error_count, next_due_at > now() FROM watchlist_artists"))
    assert "403" in rows[failing.id][0] and rows[failing.id][1:] == (1, True)
    assert rows[healthy.id] == (None, 0, True)

    # The next failure waits longer; after the fault clears, the artist is checked normally.
    _make_due(failing.id)
    _tick(instance)
    first_delay, second_delay = rules.error_delay(1, 86_400), rules.error_delay(2, 86_400)
    (due_in,) = _rows("SELECT epoch(next_due_at - now()) FROM watchlist_artists WHERE artist_id = ?", [failing.id])[0]
    assert first_delay.total_seconds() < due_in <= second_delay.total_seconds()
    sandbox.emulator("spotify").clear_faults()
    _make_due(failing.id)
    assert _tick(instance).run_requests[0].run_config["ops"]["artist_releases"]["config"]["artist_ids"] == [failing.id]
    recovered = _rows("SELECT last_error, error_count FROM watchlist_artists WHERE artist_id = ?", [failing.id])
    assert recovered == [(None, 0)]


def test_a_release_gone_from_spotify_is_settled_not_requested_again(sandbox, upcoming, env, instance):
    from harmony_pipeline.sandbox import Fault

    artist, album = upcoming.artist, upcoming.album
    _baseline(sandbox, instance, artist.id)
    upcoming.release()
    _make_due(artist.id)
    tick = _tick(instance)
    assert len(tick.run_requests) == 1
    sandbox.emulator("spotify").add_fault(Fault(rf"/v1/albums/{album.id}$", status=404))  # withdrawn meanwhile

    # A run that lists the artist's albums (as a manual run does) records the release, then finds it gone.
    from dagster import RunRequest

    _run(instance, RunRequest(run_config={"ops": {"artist_releases": {"config": {"artist_ids": [artist.id]}}}}),
         acquire=False)
    assert _rows("SELECT acquire, tracks_read_at IS NOT NULL FROM artist_releases WHERE album_id = ?",
                 [album.id]) == [(False, True)]
    assert _rows("SELECT count(*) FROM artist_release_tracks WHERE album_id = ?", [album.id]) == [(0,)]
    _make_due(artist.id)
    assert _tick(instance).run_requests == []  # no run every tick for an album that no longer exists
