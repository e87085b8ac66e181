"""Playlist sync against the sandbox's Spotify: real materializations, a real DuckDB file, the
emulator's request log as the measure of cost."""

from __future__ import annotations

import duckdb
from conftest import materialize_assets

from harmony_pipeline.settings import load_settings

PLAYLIST_ASSETS = ["spotify_playlists", "playlist_tracks"]


def _api_requests(sandbox, path_part: str = "/v1/") -> list:
    return [r for r in sandbox.emulator("spotify").requests() if path_part in r.path]


def _rows(sql: str, params=()):
    with duckdb.connect(str(load_settings().duckdb_path), read_only=True) as conn:
        return conn.execute(sql, list(params)).fetchall()


def test_first_sync_stores_playlists_and_tracks(sandbox, harmony_env, instance):
    catalog = sandbox.catalog
    result = materialize_assets(PLAYLIST_ASSETS, instance)
    assert result.success

    statuses = dict(_rows("SELECT playlist_id, sync_status FROM spotify_playlists"))
    for playlist_id in catalog.owned_playlist_ids():
        assert statuses[playlist_id] == "fresh"
    assert statuses[catalog.foreign_playlist_id] == "forbidden"
    reason = _rows("SELECT sync_status_reason FROM spotify_playlists WHERE playlist_id = ?",
                   [catalog.foreign_playlist_id])[0][0]
    assert reason == "not owned by the authorised user"

    big = catalog.playlists[catalog.big_playlist_id]
    expected = {t.id for t in catalog.playlist_tracks(big)}
    stored = {r[0] for r in _rows("SELECT spotify_track_id FROM playlist_tracks WHERE playlist_id = ?",
                                  [big.id])}
    assert len(big.entries) > 50 and stored == expected  # local files and unavailable items skipped

    track = catalog.tracks[sorted(expected)[0]]
    row = _rows("SELECT isrc, duration_ms, title, track_number FROM playlist_tracks WHERE spotify_track_id = ?",
                [track.id])[0]
    assert row == (track.isrc, track.duration_ms, track.name, track.track_number)


def test_unchanged_playlists_cost_one_request_each(sandbox, harmony_env, instance):
    assert materialize_assets(PLAYLIST_ASSETS, instance).success
    sandbox.emulator("spotify").clear_requests()

    assert materialize_assets(PLAYLIST_ASSETS, instance).success

    api_calls = _api_requests(sandbox)
    playlists = load_settings().playlists
    assert len(api_calls) == len(playlists)
    assert sorted(r.path.split("/")[-1] for r in api_calls) == sorted(playlists)


def test_changed_playlist_records_added_and_removed(sandbox, harmony_env, instance):
    catalog = sandbox.catalog
    playlist = catalog.playlists[catalog.small_playlist_id]
    assert materialize_assets(PLAYLIST_ASSETS, instance).success

    removed = catalog.playlist_tracks(playlist)[0].id
    present = {t.id for t in catalog.playlist_tracks(playlist)}
    added = next(t for t in catalog.tracks if t not in present)
    catalog.remove_playlist_track(playlist.id, removed)
    catalog.add_playlist_track(playlist.id, added)
    sandbox.emulator("spotify").clear_requests()

    result = materialize_assets(PLAYLIST_ASSETS, instance)
    assert result.success
    events = {e.asset_key.to_user_string(): e.metadata
              for e in result.get_asset_materialization_events() for e in [e.materialization]}
    assert events["playlist_tracks"]["added"].value == 1
    assert events["playlist_tracks"]["removed"].value == 1

    rows = dict(_rows("SELECT spotify_track_id, removed_at IS NOT NULL FROM playlist_tracks WHERE playlist_id = ?",
                      [playlist.id]))
    assert rows[removed] is True  # marked, not deleted
    assert rows[added] is False
    # Only the changed playlist was read item by item.
    item_reads = {r.path for r in _api_requests(sandbox, "/items")}
    assert item_reads == {f"/v1/playlists/{playlist.id}/items"}

    # Re-adding the removed track revives its row.
    catalog.add_playlist_track(playlist.id, removed)
    assert materialize_assets(PLAYLIST_ASSETS, instance).success
    assert _rows("SELECT removed_at FROM playlist_tracks WHERE playlist_id = ? AND spotify_track_id = ?",
                 [playlist.id, removed])[0][0] is None


def test_rate_limit_stops_the_sync_without_hammering(sandbox, harmony_env, instance):
    from harmony_pipeline.sandbox import Fault

    sandbox.emulator("spotify").add_fault(Fault(r"/v1/playlists/", status=429, retry_after=7200))
    assert materialize_assets(PLAYLIST_ASSETS, instance).success  # reported, not crashed
    statuses = _rows("SELECT sync_status, sync_status_reason FROM spotify_playlists")
    assert len(statuses) == len(load_settings().playlists)
    assert all(status == "error" and "rate-limited until" in reason for status, reason in statuses)
    assert len(_api_requests(sandbox)) == 1  # the first 429 ends the sync; Retry-After is honoured
