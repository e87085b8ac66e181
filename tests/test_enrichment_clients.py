"""MusicBrainz, Cover Art Archive and LRCLIB clients against the sandbox emulators over loopback HTTP."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
from datetime import timedelta

import pytest
from urllib3.util.retry import Retry

from harmony_pipeline.enrichment.artwork_flow import download_first_image
from harmony_pipeline.enrichment.artwork import measure_image
from harmony_pipeline.http_cache import MISS_TTL, USER_AGENT, HttpCache
from harmony_pipeline.sandbox.catalog import build_catalog
from harmony_pipeline.sandbox.coverart import CoverArtEmulator
from harmony_pipeline.sandbox.lrclib import LrclibEmulator
from harmony_pipeline.sandbox.musicbrainz import MusicBrainzEmulator
from harmony_pipeline.sandbox.server import Fault, serve
from resources.coverart import CoverArtClient, CoverArtResource, ImageTooLarge
from resources.lrclib import LrclibResource
from resources.musicbrainz import MusicBrainzResource
from harmony_pipeline.enrichment.musicbrainz import MIN_INTERVAL_SECONDS
from tests.response_cache import Clock


@pytest.fixture(scope="module")
def catalog():
    return build_catalog(7)


@pytest.fixture
def musicbrainz(catalog):
    with serve(MusicBrainzEmulator(catalog)) as running:
        yield running


@pytest.fixture
def coverart(catalog):
    with serve(CoverArtEmulator(catalog)) as running:
        yield running


@pytest.fixture
def lrclib(catalog):
    with serve(LrclibEmulator(catalog)) as running:
        yield running


@pytest.fixture
def cache(tmp_path):
    return HttpCache(tmp_path / "harmony.duckdb")


def known_tracks(catalog, count: int):
    """Tracks whose ISRC MusicBrainz knows, one per ISRC."""
    by_isrc = {t.isrc: t for t in catalog.tracks.values() if t.recording is not None}
    return list(by_isrc.values())[:count]


def test_musicbrainz_lookup_sends_user_agent_and_asks_for_json(catalog, musicbrainz):
    track = known_tracks(catalog, 1)[0]
    musicbrainz.emulator.set_rate_limit(None)
    client = MusicBrainzResource(url=musicbrainz.base_url, min_interval_seconds=0.01).get_client()

    lookup = client.isrc(track.isrc)
    recording = client.recording(track.recording.mbid)

    assert [r["id"] for r in lookup["recordings"]] == [track.recording.mbid]
    assert recording["title"] == track.recording.title
    log = musicbrainz.emulator.requests()
    assert [entry.status for entry in log] == [200, 200]
    assert {entry.headers["User-Agent"] for entry in log} == {USER_AGENT}
    assert all(entry.query["fmt"] == "json" for entry in log)
    assert "work-level-rels" in log[1].query["inc"]


def test_musicbrainz_limiter_holds_one_request_per_second_across_threads(catalog, musicbrainz):
    tracks = known_tracks(catalog, 3)
    resource = MusicBrainzResource(url=musicbrainz.base_url)  # the production interval
    results: dict[str, dict] = {}

    def lookup(isrc: str) -> None:
        results[isrc] = resource.get_client().isrc(isrc)  # a client per thread: the limiter is shared

    threads = [threading.Thread(target=lookup, args=(t.isrc,)) for t in tracks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert set(results) == {t.isrc for t in tracks} and all(results.values())
    log = musicbrainz.emulator.requests()
    assert [entry.status for entry in log] == [200, 200, 200]  # the emulator's 1/s rule never tripped
    arrivals = sorted(entry.time for entry in log)
    gaps = [later - earlier for earlier, later in zip(arrivals, arrivals[1:])]
    assert min(gaps) >= 1.0, gaps
    assert MIN_INTERVAL_SECONDS >= 1.0


def test_musicbrainz_503_is_retried_after_the_limiter(catalog, musicbrainz):
    track = known_tracks(catalog, 1)[0]
    musicbrainz.emulator.set_rate_limit(None)
    musicbrainz.emulator.add_fault(Fault(r"^/ws/2/isrc/", status=503, times=1))
    client = MusicBrainzResource(url=musicbrainz.base_url, min_interval_seconds=0.3).get_client()

    lookup = client.isrc(track.isrc)

    assert lookup["recordings"][0]["id"] == track.recording.mbid
    log = musicbrainz.emulator.requests()
    assert [entry.status for entry in log] == [503, 200]
    # Each retry waited for the limiter (0.3 s apart when sent; arrivals may jitter by a few ms).
    assert all(later.time - earlier.time >= 0.25 for earlier, later in zip(log, log[1:]))


def test_cache_hit_asks_nothing_and_a_404_is_cached_until_it_expires(catalog, musicbrainz, cache, tmp_path,
                                                                     monkeypatch):
    clock = Clock(monkeypatch)
    track = known_tracks(catalog, 1)[0]
    unknown_isrc = "ZZABC9912345"
    client = MusicBrainzResource(url=musicbrainz.base_url, min_interval_seconds=0.01).get_client(cache)
    musicbrainz.emulator.set_rate_limit(None)

    first = client.isrc(track.isrc)
    assert client.isrc(track.isrc) == first
    assert client.isrc(unknown_isrc) is None
    assert client.isrc(unknown_isrc) is None
    assert len(musicbrainz.emulator.requests()) == 2
    assert client.requests_made == 2

    # Kept in the response cache's own SQLite file, nothing in DuckDB.
    assert cache.path == tmp_path / "http_cache.sqlite" and cache.path.is_file()
    rows = sorted(cache.backend().responses.values(), key=lambda r: r.status_code)
    assert [row.status_code for row in rows] == [200, 404]
    assert rows[0].expires > rows[0].created_at + MISS_TTL
    assert abs(rows[1].expires - rows[1].created_at - MISS_TTL) < timedelta(seconds=5)

    clock.now += MISS_TTL + timedelta(hours=1)
    later = HttpCache(tmp_path / "harmony.duckdb")
    MusicBrainzResource(url=musicbrainz.base_url, min_interval_seconds=0.01).get_client(later).isrc(unknown_isrc)
    assert len(musicbrainz.emulator.requests()) == 3  # the expired miss was asked again


def test_coverart_listing_and_original_through_the_307_hop(catalog, coverart, cache):
    album = next(a for a in catalog.albums.values() if a.cover is not None)
    client = CoverArtResource(url=coverart.base_url).get_client(cache)

    listing = client.listing(album.release.mbid)
    front = next(image for image in listing["images"] if image["front"])
    original = client.download(front["image"], max_bytes=10_000_000)

    info = measure_image(original)
    assert (info.width, info.height) == (album.cover.width, album.cover.height) == (1500, 1500)
    log = coverart.emulator.requests()
    assert [entry.status for entry in log] == [200, 307, 200]
    assert log[2].path.startswith(f"/download/mbid-{album.release.mbid}/")
    assert {entry.headers["User-Agent"] for entry in log} == {USER_AGENT}
    assert client.listing(album.release.mbid) == listing
    assert len(coverart.emulator.requests()) == 3  # the listing came from the cache


def test_coverart_missing_art_is_none_and_too_large_images_are_refused(catalog, coverart, cache):
    without_art = next(a for a in catalog.albums.values() if a.cover is None)
    with_art = next(a for a in catalog.albums.values() if a.cover is not None)
    client = CoverArtResource(url=coverart.base_url).get_client(cache)

    assert client.listing(without_art.release.mbid) is None
    assert client.listing(without_art.release.mbid) is None
    with pytest.raises(ImageTooLarge):
        client.download(f"{coverart.base_url}/release/{with_art.release.mbid}/front", max_bytes=2_000)
    statuses = [entry.status for entry in coverart.emulator.requests()]
    assert statuses == [404, 307, 200]


def test_coverart_failing_original_yields_to_the_1200_thumbnail(catalog, coverart, cache):
    album = next(a for a in catalog.albums.values() if a.cover is not None)
    # The archive hop of the original answers 503 (retries exhausted: the client here does not retry).
    coverart.emulator.add_fault(Fault(r"^/download/.*-\d+\.jpg$", status=503))
    client = CoverArtClient(coverart.base_url, cache=cache, retry=Retry(total=0, raise_on_status=False))
    front = client.listing(album.release.mbid)["images"][0]

    found = download_first_image(client, "coverartarchive", [front["image"], front["thumbnails"]["1200"]],
                                 10_000_000, logging.getLogger(__name__))

    assert found is not None
    candidate, info, _ = found
    assert candidate.url == front["thumbnails"]["1200"] and (info.width, info.height) == (1200, 1200)
    log = coverart.emulator.requests()
    assert [entry.status for entry in log] == [200, 307, 503, 307, 200]
    assert "_thumb1200" in log[4].path


def test_lrclib_get_cached_search_and_cached_miss(catalog, lrclib, cache):
    track = next(t for t in catalog.tracks.values()
                 if t.lyrics and t.lyrics.kind == "synced" and len(t.artist_ids) == 1)
    artist = catalog.artists[track.artist_ids[0]].name
    album = catalog.albums[track.album_id].name
    client = LrclibResource(url=lrclib.base_url).get_client(cache)

    record = client.get_cached(track.name, artist, album, track.duration_ms / 1000)
    found = client.search(track.name, artist)
    assert client.get_cached(track.name, artist, album, track.duration_ms / 1000 + 30) is None
    assert client.get_cached(track.name, artist, album, track.duration_ms / 1000 + 30) is None

    assert record["id"] == track.lyrics.lrclib_id and record["syncedLyrics"] == track.lyrics.synced
    assert track.lyrics.lrclib_id in [r["id"] for r in found]
    log = lrclib.emulator.requests()
    assert [(entry.path, entry.status) for entry in log] == [
        ("/api/get-cached", 200), ("/api/search", 200), ("/api/get-cached", 404)]
    assert log[0].query["duration"] == str(round(track.duration_ms / 1000))
    assert {entry.headers["User-Agent"] for entry in log} == {USER_AGENT}


_LOOKUPS_SCRIPT = """
import sys
from harmony_pipeline.http_cache import HttpCache
from resources.lrclib import LrclibResource
client = LrclibResource(url=sys.argv[1]).get_client(HttpCache(sys.argv[2]))
for name in sys.argv[3:]:
    client.search(name)
"""


def test_processes_at_once_share_the_cache_file(catalog, lrclib, tmp_path):
    names = [t.name for t in list(catalog.tracks.values())[:8]]
    workers = [subprocess.Popen([sys.executable, "-c", _LOOKUPS_SCRIPT, lrclib.base_url, str(tmp_path), *names],
                                stderr=subprocess.PIPE, text=True) for _ in range(3)]
    assert all(worker.wait(timeout=60) == 0 for worker in workers), [w.stderr.read()[-500:] for w in workers]
    asked = len(lrclib.emulator.requests())
    assert len(names) <= asked <= 3 * len(names)

    client = LrclibResource(url=lrclib.base_url).get_client(HttpCache(tmp_path))
    assert all(isinstance(client.search(name), list) for name in names)
    assert client.requests_made == 0 and len(lrclib.emulator.requests()) == asked  # every answer was kept


def test_each_client_keeps_its_own_expiry_in_the_shared_file(catalog, musicbrainz, lrclib, cache):
    musicbrainz.emulator.set_rate_limit(None)
    mb = MusicBrainzResource(url=musicbrainz.base_url, min_interval_seconds=0.01).get_client(cache)
    lyrics = LrclibResource(url=lrclib.base_url).get_client(cache)  # built later, with a 6-day expiry
    track = known_tracks(catalog, 1)[0]
    assert mb.isrc(track.isrc) and isinstance(lyrics.search(track.name), list)
    lifetimes = {answer.url.split("/")[2]: answer.expires - answer.created_at
                 for answer in cache.backend().responses.values()}
    host = lambda running: running.base_url.split("/")[2]  # noqa: E731
    assert lifetimes[host(musicbrainz)] > timedelta(days=29) and lifetimes[host(lrclib)] < timedelta(days=6, hours=1)
