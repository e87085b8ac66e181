"""The shared Spotify lookup cache against the sandbox's Spotify: what is cached, for how long, and what is not."""

from __future__ import annotations

from datetime import timedelta

import pytest

from harmony_pipeline.http_cache import HttpCache
from harmony_pipeline.sandbox import Fault
from harmony_pipeline.spotify.cache import NOT_FOUND_TTL, SpotifyCache
from resources.spotify import SpotifyResource
from harmony_pipeline.spotify.client import SpotifyError, SpotifyNotFound, SpotifyRateLimited
from tests.response_cache import Clock


@pytest.fixture
def clock(monkeypatch) -> Clock:
    return Clock(monkeypatch)


@pytest.fixture
def lookups(sandbox, harmony_env, tmp_path, clock):
    def new_run() -> SpotifyCache:
        spotify = SpotifyResource(
            client_id=harmony_env["SPOTIFY_CLIENT_ID"], client_secret=harmony_env["SPOTIFY_CLIENT_SECRET"],
            refresh_token=harmony_env.get("SPOTIFY_REFRESH_TOKEN"), api_url=harmony_env["SPOTIFY_API_URL"],
            token_url=harmony_env["SPOTIFY_TOKEN_URL"], auth_url=harmony_env["SPOTIFY_AUTH_URL"])
        return SpotifyCache(spotify, HttpCache(tmp_path / "harmony.duckdb"))

    return new_run


def _api_paths(sandbox) -> list[str]:
    return [r.path for r in sandbox.emulator("spotify").requests() if r.path.startswith("/v1/")]


def test_answers_are_shared_between_runs_until_they_expire(sandbox, lookups, clock, tmp_path):
    catalog = sandbox.catalog
    album = next(a for a in catalog.albums.values() if len(catalog.album_tracks(a)) >= 2)
    expected = [t.id for t in catalog.album_tracks(album)]

    with lookups() as first:
        found = first.album(album.id)
        tracks = first.tracks([item["id"] for item in found["tracks"]["items"]])
    assert [t["id"] for t in tracks] == expected and all(t["external_ids"]["isrc"] for t in tracks)
    assert found["tracks"]["next"] is None and first.disc_total(album.id) == max(
        t.disc_number for t in catalog.album_tracks(album))
    assert (first.requests, first.hits) == (1 + len(expected), 1)  # disc_total read the album it had

    sandbox.emulator("spotify").clear_requests()
    with lookups() as second:
        assert second.album(album.id) == found and second.tracks(expected) == tracks
    assert _api_paths(sandbox) == [] and (second.requests, second.hits) == (0, 1 + len(expected))
    # The answers live in the response cache file, without the access token they were fetched with.
    stored = b"".join(path.read_bytes() for path in tmp_path.glob("http_cache.sqlite*"))
    assert album.id.encode() in stored and b"Bearer" not in stored

    clock.now += timedelta(days=7, seconds=1)  # albums expire after a week, tracks after a month
    with lookups() as later:
        later.album(album.id)
        later.tracks(expected)
    assert _api_paths(sandbox) == [f"/v1/albums/{album.id}"]


def test_a_404_is_remembered_for_a_day_and_errors_are_not_cached(sandbox, lookups, clock):
    spotify = sandbox.emulator("spotify")
    with lookups() as first, pytest.raises(SpotifyNotFound):
        first.artist("0000000000000000000000")
    with lookups() as second, pytest.raises(SpotifyNotFound):
        second.artist("0000000000000000000000")
    assert len(_api_paths(sandbox)) == 1
    clock.now += NOT_FOUND_TTL + timedelta(seconds=1)
    with lookups() as later, pytest.raises(SpotifyNotFound):
        later.artist("0000000000000000000000")
    assert len(_api_paths(sandbox)) == 2

    artist_id = next(iter(sandbox.catalog.artists))
    spotify.add_fault(Fault(r"^/v1/artists/", status=500))
    with lookups() as failing, pytest.raises(SpotifyError):
        failing.artist(artist_id)
    spotify.clear_faults()
    with lookups() as recovered:
        assert recovered.artist(artist_id)["id"] == artist_id and recovered.hits == 0


def test_after_a_rate_limit_nothing_is_asked_until_it_ends(sandbox, lookups, clock):
    track_ids = list(sandbox.catalog.tracks)[:3]
    sandbox.emulator("spotify").add_fault(Fault(r"^/v1/tracks/", status=429, retry_after=3600))
    run = lookups()
    with pytest.raises(SpotifyRateLimited):
        run.track(track_ids[0])
    with pytest.raises(SpotifyRateLimited):
        run.track(track_ids[1])
    assert len(_api_paths(sandbox)) == 1

    sandbox.emulator("spotify").clear_faults()
    clock.now += timedelta(hours=1, seconds=1)
    assert run.track(track_ids[1])["id"] == track_ids[1]
    assert lookups().track(track_ids[1])["id"] == track_ids[1] and len(_api_paths(sandbox)) == 2
