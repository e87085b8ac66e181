"""Liked Songs as a source: `liked` in HARMONY_PLAYLISTS reads `/me/tracks` (paged), snapshot-less: an unchanged
first page costs one request and no walk; the tracks are wanted and acquired like a playlist's."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
import requests
from conftest import materialize_assets, pipeline_environment, settle_acquisition

from harmony_pipeline.spotify.liked_songs import first_page_snapshot
from harmony_pipeline.sandbox import Sandbox
from harmony_pipeline.settings import SettingsError, load_settings
from harmony_pipeline.enrichment.tagging import read_tags

SYNC = ["spotify_playlists", "playlist_tracks", "library_scan", "wanted_tracks"]


def test_settings_accept_liked_next_to_playlist_ids(tmp_path):
    settings = load_settings({"HARMONY_DATA_DIR": str(tmp_path),
                              "HARMONY_PLAYLISTS": "Liked, 37i9dQZF1DXcBWIGoYBM5M,liked"})
    assert settings.playlists == ("liked", "37i9dQZF1DXcBWIGoYBM5M")
    with pytest.raises(SettingsError, match="HARMONY_PLAYLISTS"):
        load_settings({"HARMONY_DATA_DIR": str(tmp_path), "HARMONY_PLAYLISTS": "likes"})


def test_first_page_snapshot_changes_with_a_like_or_an_unlike():
    page = {"total": 2, "items": [{"added_at": "2026-01-02T00:00:00Z", "track": {"id": "a"}},
                                  {"added_at": "2026-01-01T00:00:00Z", "track": {"id": "b"}}]}
    assert first_page_snapshot(page) == first_page_snapshot({**page})
    liked = {"total": 3, "items": [{"added_at": "2026-01-03T00:00:00Z", "track": {"id": "c"}}] + page["items"]}
    assert first_page_snapshot(liked) != first_page_snapshot(page)
    assert first_page_snapshot({**page, "total": 1}) != first_page_snapshot(page)  # an unlike further down


def test_sandbox_serves_me_tracks_paged_with_the_scope_checked(sandbox):
    spotify = sandbox.emulator("spotify")
    base = sandbox.env["SPOTIFY_API_URL"]
    token = spotify.issue_access_token(sandbox.catalog.me)
    page = requests.get(f"{base}me/tracks", params={"limit": 2},
                        headers={"Authorization": f"Bearer {token}"}, timeout=10).json()
    assert page["total"] == len(spotify.liked) >= 3 and len(page["items"]) == 2
    assert page["items"][0]["track"]["id"] == spotify.liked[0][0] and page["items"][0]["added_at"]
    assert page["next"].startswith(base) and "offset=2" in page["next"]
    too_big = requests.get(f"{base}me/tracks", params={"limit": 51}, headers={"Authorization": f"Bearer {token}"},
                           timeout=10)
    assert too_big.status_code == 400
    narrow = spotify.issue_access_token(sandbox.catalog.me, scope="playlist-read-private")
    refused = requests.get(f"{base}me/tracks", headers={"Authorization": f"Bearer {narrow}"}, timeout=10)
    assert refused.status_code == 403 and refused.json()["error"]["status"] == 403
    app_only = spotify.issue_access_token(None)
    assert requests.get(f"{base}me/tracks", headers={"Authorization": f"Bearer {app_only}"},
                        timeout=10).status_code == 401


@pytest.fixture
def pipeline(tmp_path, monkeypatch, dagster_home):
    with Sandbox(tmp_path / "sandbox", slskd_search_seconds=0.1, slskd_transfer_step_seconds=0.02) as sandbox:
        env = pipeline_environment(sandbox, tmp_path, HARMONY_PLAYLISTS="liked")
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        yield sandbox, Path(env["HARMONY_LIBRARY_DIR"])


def _spotify_paths(sandbox) -> list[str]:
    return [r.path for r in sandbox.emulator("spotify").requests() if r.path.startswith("/v1/")]


def _query(sql: str) -> list[tuple]:
    with duckdb.connect(str(load_settings().duckdb_path), read_only=True) as conn:
        return conn.execute(sql).fetchall()


def test_liked_songs_synced_acquired_and_short_circuited_when_unchanged(pipeline, instance):
    sandbox, library = pipeline
    spotify = sandbox.emulator("spotify")
    catalog = sandbox.catalog
    liked_ids = [track_id for track_id, _ in spotify.liked]
    assert materialize_assets(SYNC, instance).success
    stored = _query("SELECT spotify_track_id FROM playlist_tracks WHERE playlist_id = 'liked' ORDER BY position")
    assert [r[0] for r in stored] == liked_ids, "Liked Songs in Spotify's order (newest first)"
    wanted = _query("SELECT spotify_track_id FROM wanted_tracks WHERE list_contains(sources, 'playlist:liked')")
    assert {r[0] for r in wanted} == set(liked_ids)

    settle_acquisition(instance)
    imported = _query("SELECT spotify_track_id, path FROM library_tracks")
    assert {r[0] for r in imported} <= set(liked_ids) and len(imported) >= 3
    titles = {catalog.tracks[track_id].name for track_id in liked_ids}
    assert all(read_tags(library / path).title in titles for _, path in imported)

    # Unchanged: one request for the first page, no walk, nothing newly wanted.
    before = len(_spotify_paths(sandbox))
    assert materialize_assets(["spotify_playlists", "playlist_tracks"], instance).success
    assert _spotify_paths(sandbox)[before:] == ["/v1/me/tracks"]

    # A new like is found and wanted.
    new = next(t for t in catalog.playlist_tracks(catalog.playlists[catalog.acquisition_playlist_id])
               if t.id not in liked_ids)
    spotify.like(new.id)
    assert materialize_assets(SYNC, instance).success
    assert _query(f"SELECT state FROM wanted_tracks WHERE spotify_track_id = '{new.id}'") == [("wanted",)]
    assert _query("SELECT spotify_track_id FROM playlist_tracks WHERE playlist_id = 'liked' "
                  "ORDER BY position LIMIT 1") == [(new.id,)]
