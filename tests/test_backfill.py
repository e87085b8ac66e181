"""Backfill query building and candidate scoring, without Dagster or HTTP."""

import pytest

from harmony_pipeline.ingest.backfill import (
    MATCH_THRESHOLD,
    Wanted,
    choose,
    duration_points,
    isrc_query,
    resolved_track,
    score_candidate,
    search_queries,
    unmatched_reason,
)


def spotify_track(name: str, artists: list[str], album: str = "Album", duration_ms: int = 200_000,
                  isrc: str = "GBAAA2000001", track_id: str = "t1", album_type: str = "album") -> dict:
    """The fields of a Spotify track object (api-contracts §2.3) that backfill reads."""
    return {
        "id": track_id, "name": name, "type": "track", "duration_ms": duration_ms, "track_number": 3,
        "disc_number": 1, "external_ids": {"isrc": isrc},
        "artists": [{"id": f"a{i}", "name": n} for i, n in enumerate(artists)],
        "album": {"id": f"al-{track_id}", "name": album, "album_type": album_type, "total_tracks": 12,
                  "release_date": "2019-03-01", "artists": [{"id": "a0", "name": artists[0]}]},
    }


# --- queries ---------------------------------------------------------------------------------------
def test_queries_use_field_filters_album_first_then_without():
    wanted = Wanted(artist="Sigur Rós", title="Hoppípolla", album="Takk...")
    assert search_queries(wanted) == [
        'track:"Hoppípolla" artist:"Sigur Rós" album:"Takk..."',
        'track:"Hoppípolla" artist:"Sigur Rós"',
    ]


def test_queries_drop_inner_quotes_and_add_the_bare_title_for_versions():
    wanted = Wanted(artist='The "Band"', title="Let It Be - Remastered 2009")
    assert search_queries(wanted) == [
        'track:"Let It Be - Remastered 2009" artist:"The Band"',
        'track:"Let It Be" artist:"The Band"',
    ]


def test_no_query_without_artist_and_title_and_isrc_query_is_upper_case():
    assert search_queries(Wanted(isrc="GBUM71029604")) == []
    assert isrc_query(" gbum71029604 ") == "isrc:GBUM71029604"


# --- duration --------------------------------------------------------------------------------------
@pytest.mark.parametrize(("gap_ms", "expected_sign", "reason_start"), [
    (0, 1, "duration within"),
    (2000, 1, "duration within"),
    (4500, 1, "duration off by"),
    (20_000, -1, "duration off by"),
])
def test_duration_within_two_seconds_is_strong_within_five_weak_beyond_a_penalty(gap_ms, expected_sign, reason_start):
    points, reason = duration_points(180_000, 180_000 + gap_ms)
    assert points * expected_sign > 0
    assert reason.startswith(reason_start)


def test_strong_duration_beats_weak_and_unknown_duration_counts_nothing():
    strong, _ = duration_points(180_000, 181_900)
    weak, _ = duration_points(180_000, 184_900)
    assert strong > weak > 0
    assert duration_points(None, 180_000) == (0.0, None)


# --- scoring ---------------------------------------------------------------------------------------
def test_exact_names_and_duration_are_accepted_with_reasons():
    scored = score_candidate(Wanted(artist="Queen", title="Bohemian Rhapsody", duration_ms=355_000),
                             spotify_track("Bohemian Rhapsody", ["Queen"], duration_ms=354_320))
    assert scored.accepted
    assert "title 100" in scored.reasons and "artist 100" in scored.reasons
    assert any(r.startswith("duration within") for r in scored.reasons)


def test_remaster_suffix_and_featured_artist_still_match():
    remaster = score_candidate(Wanted(artist="The Beatles", title="Let It Be"),
                               spotify_track("Let It Be - Remastered 2009", ["The Beatles"]))
    featured = score_candidate(Wanted(artist="Tyler, The Creator", title="See You Again"),
                               spotify_track("See You Again (feat. Kali Uchis)", ["Tyler, The Creator", "Kali Uchis"]))
    assert remaster.accepted and featured.accepted


def test_case_and_accents_do_not_matter():
    scored = score_candidate(Wanted(artist="sigur ros", title="hoppipolla"),
                             spotify_track("Hoppípolla", ["Sigur Rós"]))
    assert scored.accepted


def test_other_artist_with_the_same_title_is_rejected():
    scored = score_candidate(Wanted(artist="Queen", title="Bohemian Rhapsody"),
                             spotify_track("Bohemian Rhapsody", ["The Muppets"]))
    assert scored.rejected and not scored.accepted
    assert "artist differs" in scored.reasons


def test_live_version_is_refused_when_a_studio_take_was_asked_for():
    scored = score_candidate(Wanted(artist="Nirvana", title="Lithium"),
                             spotify_track("Lithium - Live", ["Nirvana"]))
    assert not scored.accepted
    assert any(r.startswith("other version: live") for r in scored.reasons)


def test_large_duration_gap_pushes_a_name_match_below_the_threshold():
    near = score_candidate(Wanted(artist="Pink Floyd", title="Echoes", duration_ms=1_403_000),
                           spotify_track("Echoes", ["Pink Floyd"], duration_ms=1_402_000))
    far = score_candidate(Wanted(artist="Pink Floyd", title="Echoes", duration_ms=1_403_000),
                          spotify_track("Echoes", ["Pink Floyd"], duration_ms=420_000))
    assert near.accepted and not far.accepted
    assert far.score < MATCH_THRESHOLD <= near.score


def test_album_hint_raises_the_right_release():
    wanted = Wanted(artist="Björk", title="Jóga", album="Homogenic")
    on_album = score_candidate(wanted, spotify_track("Jóga", ["Björk"], album="Homogenic", track_id="a"))
    on_best_of = score_candidate(wanted, spotify_track("Jóga", ["Björk"], album="Greatest Hits", track_id="b"))
    assert on_album.score > on_best_of.score


# --- choosing ------------------------------------------------------------------------------------
def test_isrc_shared_by_album_and_single_prefers_the_album_or_the_named_release():
    album = spotify_track("Song", ["Artist"], album="The Album", isrc="USAAA1900001", track_id="alb")
    single = spotify_track("Song", ["Artist"], album="Song", isrc="USAAA1900001", track_id="sgl",
                           album_type="single")
    best, _ = choose(Wanted(isrc="USAAA1900001"), [single, album])
    assert best is not None and best.track["id"] == "alb"
    best, _ = choose(Wanted(isrc="USAAA1900001", album="Song"), [album, single])
    assert best.track["id"] == "sgl"


def test_choose_picks_the_best_and_explains_when_nothing_passes():
    wanted = Wanted(artist="Daft Punk", title="One More Time", duration_ms=320_000)
    right = spotify_track("One More Time", ["Daft Punk"], duration_ms=320_357, track_id="right")
    radio = spotify_track("One More Time - Radio Edit", ["Daft Punk"], duration_ms=235_000, track_id="radio")
    best, scored = choose(wanted, [radio, right, right])
    assert best.track["id"] == "right"
    assert [s.track["id"] for s in scored] == ["right", "radio"]

    best, scored = choose(wanted, [radio])
    assert best is None
    reason = unmatched_reason(scored, ['track:"One More Time" artist:"Daft Punk"'])
    assert reason.startswith("best candidate 'Daft Punk – One More Time - Radio Edit' scored")
    assert "other version: edit" in reason


def test_unmatched_reason_without_candidates_names_the_queries():
    assert unmatched_reason([], ['track:"X" artist:"Y"']) == 'no Spotify results for track:"X" artist:"Y"'


def test_resolved_track_has_the_demand_columns():
    track = resolved_track(spotify_track("Song", ["Artist", "Guest"], album="Album", isrc="GBAAA2000001"))
    assert (track.spotify_track_id, track.isrc, track.artist, track.artists, track.album_artist) == (
        "t1", "GBAAA2000001", "Artist", ("Artist", "Guest"), "Artist")
    assert (track.track_number, track.disc_number, track.album_total_tracks, track.release_date) == (
        3, 1, 12, "2019-03-01")


def test_candidate_with_a_null_isrc_is_scored_on_its_names():
    track = spotify_track("Song", ["Artist"], isrc=None)
    scored = score_candidate(Wanted(artist="Artist", title="Song", isrc="GBAAA2000001"), track)
    assert scored.accepted and "ISRC equal" not in scored.reasons
