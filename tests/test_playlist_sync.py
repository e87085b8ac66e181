from __future__ import annotations

from harmony_pipeline.spotify.playlist_sync import diff_playlist, sync_status, track_from_item, tracks_from_items


def _track(track_id: str, name: str = "Song", **extra) -> dict:
    return {
        "id": track_id, "name": name, "type": "track", "duration_ms": 200000, "track_number": 2,
        "disc_number": 1, "external_ids": {"isrc": "GBAAA0000001"},
        "artists": [{"id": "a1", "name": "Main"}, {"id": "a2", "name": "Guest"}],
        "album": {"id": "al1", "name": "Album", "total_tracks": 9, "release_date": "2019",
                  "artists": [{"id": "a1", "name": "Main"}]},
        **extra,
    }


def test_item_key_first_then_legacy_track_key():
    new = track_from_item({"item": _track("t1"), "added_at": "2026-01-01T00:00:00Z"}, 0)
    legacy = track_from_item({"track": _track("t2")}, 1)
    assert new.spotify_track_id == "t1" and new.artists == ("Main", "Guest") and new.isrc == "GBAAA0000001"
    assert new.album_artist == "Main" and new.album_total_tracks == 9
    assert legacy.spotify_track_id == "t2" and legacy.position == 1


def test_local_episode_and_unavailable_items_are_skipped():
    items = [
        {"item": None},
        {"is_local": True, "item": {**_track("x"), "id": None, "is_local": True}},
        {"item": {**_track("e1"), "type": "episode"}},
        {"item": _track("t1")},
        {"item": _track("t1")},  # the same track twice: one row
    ]
    tracks, skipped = tracks_from_items(items)
    assert [t.spotify_track_id for t in tracks] == ["t1"]
    assert skipped == 3


def test_diff_added_removed_revived_kept():
    stored = {"keep": False, "gone": False, "back": True, "still_gone": True}
    diff = diff_playlist(stored, ["keep", "back", "new"])
    assert diff.added == ["new"]
    assert diff.removed == ["gone"]
    assert diff.revived == ["back"]
    assert diff.kept == ["keep"]
    assert diff.changed
    assert not diff_playlist({"a": False}, ["a"]).changed


def test_sync_status():
    assert sync_status(snapshot_id=None, previous_snapshot_id="x", items_read=True) == ("stale", "missing_snapshot")
    assert sync_status(snapshot_id="b", previous_snapshot_id="a", items_read=True) == ("fresh", "snapshot_changed")
    assert sync_status(snapshot_id="a", previous_snapshot_id="a", items_read=False) == ("fresh", "synced_recently")
