"""Acquisition logic without Dagster: wanted keys, demand merge, search budget, attempts and retries."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pytest

from harmony_pipeline.acquisition.demand import in_library, library_keys, merge_demand, wanted_key
from harmony_pipeline.acquisition.download_attempts import RetryRules, after_failure, close_attempt, history_entry, next_candidate
from harmony_pipeline.acquisition.search_budget import seconds_until_allowed

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)


def _demand(source: str, **extra) -> dict:
    row = {"spotify_track_id": "t1", "isrc": None, "title": "Hoppípolla", "artist": "Sigur Rós", "artists": None,
           "album": "Takk...", "album_id": "al", "album_artist": "Sigur Rós", "track_number": 3, "disc_number": 1,
           "album_total_tracks": 11, "release_date": "2005", "duration_ms": 268000, "source": source}
    row.update(extra)
    return row


def test_wanted_key_prefers_isrc_and_normalises_names():
    assert wanted_key("gbaaa0000001 ", "X", "Y", 1) == "isrc:GBAAA0000001"
    assert wanted_key(None, "Sigur Rós", "Hoppípolla") == wanted_key(None, "SIGUR ROS", "hoppipolla!")


def test_same_name_with_another_length_is_another_version():
    merged = merge_demand([_demand("playlist:a"), _demand("playlist:b", duration_ms=268900),
                           _demand("playlist:c", duration_ms=210000)])
    assert len(merged) == 2
    assert sorted(len(e["sources"]) for e in merged.values()) == [1, 2]


def test_same_recording_from_two_sources_is_one_wanted_track():
    merged = merge_demand([_demand("playlist:a"), _demand("free_ingest", artists=["Sigur Rós"]),
                           _demand("playlist:b", title="Glósóli")])
    assert len(merged) == 2
    entry = merged[wanted_key(None, "Sigur Rós", "Hoppípolla")]
    assert entry["sources"] == ["free_ingest", "playlist:a"]
    assert entry["artists"] == ["Sigur Rós"]  # filled from the richer row


def test_library_match_by_isrc_or_by_artist_and_title():
    library = [{"wanted_key": "isrc:AAA", "isrc": "AAA", "artist": "A", "title": "T", "duration_s": 200.0}]
    keys = library_keys(library)
    assert in_library({"wanted_key": "isrc:AAA", "artist": "Z", "title": "Z", "duration_ms": 1}, keys)
    same_song_no_isrc = {"wanted_key": wanted_key(None, "a", "t"), "isrc": None, "artist": "a", "title": "t",
                         "duration_ms": 200400}
    assert in_library(same_song_no_isrc, keys)
    assert not in_library({"wanted_key": "isrc:BBB", "artist": "A", "title": "Other", "duration_ms": 200000}, keys)


def test_search_budget_window():
    recent = [NOW - timedelta(seconds=s) for s in (10, 50, 100)]
    assert seconds_until_allowed(recent, NOW, limit=4, window_seconds=220) == 0
    assert seconds_until_allowed(recent, NOW, limit=3, window_seconds=220) == pytest.approx(120)
    assert seconds_until_allowed(recent, NOW, limit=2, window_seconds=220) == pytest.approx(170)
    old = [NOW - timedelta(seconds=300)] * 50
    assert seconds_until_allowed(old, NOW, limit=34, window_seconds=220) == 0


CANDIDATES = [{"username": u, "filename": f"f{u}", "size": 1, "score": s} for u, s in (("a", 99), ("b", 90), ("c", 80))]


def test_next_candidate_skips_tried_and_blocked():
    history = [history_entry(CANDIDATES[0], NOW)]
    assert next_candidate(CANDIDATES, history, set())["username"] == "b"
    assert next_candidate(CANDIDATES, history, {("b", "fb")})["username"] == "c"
    assert next_candidate(CANDIDATES, history, {("b", "fb"), ("c", "fc")}) is None


def test_failure_schedules_backoff_then_dead_letters():
    rules = RetryRules(max_attempts=3, base_seconds=60, jitter=0.2)
    rng = random.Random(1)
    first = after_failure(1, rules, NOW, candidates_left=True, rng=rng)
    assert first.state == "retry"
    assert 96 <= (first.next_attempt_at - NOW).total_seconds() <= 144  # 60 × 2 × U(0.8, 1.2)
    second = after_failure(2, rules, NOW, candidates_left=True, rng=rng)
    assert 192 <= (second.next_attempt_at - NOW).total_seconds() <= 288
    assert after_failure(3, rules, NOW, candidates_left=True).state == "dead_letter"
    assert after_failure(3, rules, NOW, candidates_left=False).state == "dead_letter"
    exhausted = after_failure(1, rules, NOW, candidates_left=False)
    assert exhausted.state == "retry" and exhausted.search_again  # search for new peers, not give up


def test_close_attempt_records_outcome():
    history = [history_entry(CANDIDATES[0], NOW)]
    close_attempt(history, "Completed, Rejected", "File not shared.", NOW)
    assert history[0]["outcome"] == "Completed, Rejected" and history[0]["error"] == "File not shared."


def test_a_file_missing_on_our_side_does_not_count_against_the_peer():
    """A finished file gone from the downloads folder is our side's problem: the same file stays the
    next candidate; a file the peer failed to deliver does not."""
    history = [{"username": "a", "filename": CANDIDATES[0]["filename"], "outcome": "file_missing"}]
    assert next_candidate(CANDIDATES, history, set())["username"] == "a"
    history[0]["outcome"] = "Completed, Errored"
    assert next_candidate(CANDIDATES, history, set())["username"] == "b"
