"""Property-based tests of what reads the services' answers and what writes into the library: Soulseek
search responses (path parser and scorer), Spotify track objects, MusicBrainz recordings, LRCLIB records,
the library path renderer and the LRC writer/parser. Answers have fields missing, null, of the wrong
type or huge; every one is handled or rejected, and nothing is written outside the folder it belongs
to (checked by listing the filesystem)."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harmony_pipeline.enrichment.credits import extract_credits
from harmony_pipeline.library.paths import TrackNaming, render_library_path, resolve_inside
from harmony_pipeline.enrichment.lyrics import LyricsRecord, choose_record, parse_lrc, render_lrc, write_lrc_sidecar
from harmony_pipeline.matching.models import WantedTrack
from harmony_pipeline.matching.scoring import rank
from harmony_pipeline.spotify.playlist_sync import track_from_item

FAST = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=60)
HUGE = st.sampled_from([10**18, -(10**18), 2**63, 1e308, -1e308, float("inf"), float("nan")])
ODD = st.none() | st.booleans() | st.integers() | HUGE | TEXT | st.lists(TEXT, max_size=3) | st.just({})


def field_value(good):
    """The right value, or a missing/null/wrong-typed/huge one."""
    return st.one_of(good, ODD)


def answer(fields: dict) -> st.SearchStrategy[dict]:
    """A dict whose fields may each be absent, null, of another type or huge."""
    return st.fixed_dictionaries({}, optional={name: field_value(good) for name, good in fields.items()})


SLSKD_FILE = answer({
    "filename": st.sampled_from(["Music\\Björk\\Homogenic\\05 - Jóga.flac", "a/b/../../etc/passwd",
                                 "C:\\..\\..\\x.mp3", "01 Björk - Jóga.mp3"]) | TEXT,
    "size": st.integers(0, 10**9), "bitRate": st.integers(0, 3000), "length": st.integers(0, 10**5),
    "sampleRate": st.integers(0, 192000), "bitDepth": st.integers(0, 32)})
SLSKD_RESPONSE = st.fixed_dictionaries(
    {"username": TEXT}, optional={"files": st.lists(SLSKD_FILE, max_size=4), "lockedFiles": st.lists(SLSKD_FILE, max_size=2),
                                  "hasFreeUploadSlot": ODD, "queueLength": field_value(st.integers(0, 100)),
                                  "uploadSpeed": field_value(st.integers(0, 10**8))})
WANTED = WantedTrack(artist="Björk", artists=("Björk",), title="Jóga", album="Homogenic", duration_ms=305000,
                     track_number=5, album_total_tracks=10, release_year=1997)


@FAST
@given(st.lists(SLSKD_RESPONSE, max_size=4))
def test_soulseek_responses_are_scored_or_rejected(responses):
    decision = rank(WANTED, responses)
    for scored in decision.accepted:
        assert scored.score == scored.score  # never NaN
    # Every file with a name is judged (accepted or rejected with reasons); a file without one is no candidate.
    named = [f for r in responses if isinstance(r.get("username"), str) for key in ("files", "lockedFiles")
             for f in (r.get(key) if isinstance(r.get(key), list) else []) if isinstance(f.get("filename"), str)]
    assert len(decision.accepted) + len(decision.rejected) == len(named)
    assert all(scored.reasons for scored in decision.rejected)


SPOTIFY_ARTIST = answer({"id": TEXT, "name": TEXT})
SPOTIFY_TRACK = answer({
    "id": st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=22, max_size=22),
    "name": TEXT, "artists": st.lists(SPOTIFY_ARTIST, max_size=3), "duration_ms": st.integers(0, 10**7),
    "is_local": st.booleans(), "track_number": st.integers(1, 99), "disc_number": st.integers(1, 9),
    "external_ids": answer({"isrc": TEXT}),
    "album": answer({"id": TEXT, "name": TEXT, "release_date": TEXT, "total_tracks": st.integers(1, 99),
                     "artists": st.lists(SPOTIFY_ARTIST, max_size=2)})})


@FAST
@given(st.sampled_from(["item", "track"]), SPOTIFY_TRACK, st.integers(0, 10**6))
def test_spotify_items_are_read_or_skipped(key, track, position):
    result = track_from_item({key: track}, position)
    assert result is None or (result.spotify_track_id and result.title is not None)


MB_RELATION = answer({"type": st.sampled_from(["performance", "producer", "composer", "lyricist"]),
                      "target-type": st.sampled_from(["work", "artist"]),
                      "artist": answer({"name": TEXT}), "work": answer({"relations": st.lists(st.just({}))})})
MB_RECORDING = answer({"relations": st.lists(MB_RELATION, max_size=3),
                       "genres": st.lists(answer({"name": TEXT, "count": st.integers()}), max_size=3),
                       "tags": st.lists(answer({"name": TEXT, "count": st.integers()}), max_size=3)})


@FAST
@given(MB_RECORDING, st.none() | MB_RECORDING)
def test_musicbrainz_recordings_give_credits(recording, release):
    credits = extract_credits(recording, release)
    assert all(isinstance(name, str) for name in credits.composers + credits.producers + credits.genres)


LRCLIB_RECORD = st.fixed_dictionaries({"id": st.integers(1, 10**12)}, optional={
    "trackName": field_value(st.just("Jóga")), "artistName": field_value(st.just("Björk")),
    "albumName": field_value(st.just("Homogenic")), "duration": field_value(st.floats(0, 1000)),
    "instrumental": ODD, "plainLyrics": field_value(TEXT), "syncedLyrics": field_value(TEXT)})


@FAST
@given(st.lists(LRCLIB_RECORD, max_size=4), st.none() | st.floats(0, 1000))
def test_lrclib_records_are_chosen_or_refused(records, duration):
    parsed = []
    for record in records:
        try:
            parsed.append(LyricsRecord.from_json(record))
        except (TypeError, ValueError) as refused:  # the documented refusal of a malformed record
            assert str(refused)
    chosen = choose_record(parsed, "Björk", "Jóga", "Homogenic", duration)
    assert chosen is None or chosen in parsed


@FAST
@given(st.lists(st.tuples(st.integers(0, 5_999_999), TEXT), max_size=20), TEXT, TEXT, st.none() | TEXT,
       st.none() | st.floats(0, 10**6))
def test_lrc_written_then_parsed_keeps_every_timed_line(tmp_path_factory, lines, artist, title, album, length):
    synced = "\n".join(f"[{ms // 60000:02d}:{ms // 1000 % 60:02d}.{ms % 1000 // 10:02d}]{text}" for ms, text in lines)
    rendered = render_lrc(synced, artist, title, album, length)
    assert parse_lrc(rendered) == parse_lrc(synced)
    folder = tmp_path_factory.mktemp("lrc")
    written = write_lrc_sidecar(folder / "track.flac", rendered)
    assert written.parent == folder and os.listdir(folder) == ["track.lrc"]


NAMING = st.builds(TrackNaming, albumartist=TEXT, artist=TEXT, album=TEXT, year=st.none() | st.integers(-10**6, 10**6),
                   disc=st.integers(0, 10**6), disc_total=st.integers(0, 10**6), track=st.integers(0, 10**9), title=TEXT)
TEMPLATES = st.sampled_from(["{albumartist}/{album} ({year})/{disc}-{track:02d} {title}",
                             "{artist}/{title}", "{albumartist}/{album}/{track:02d} - {artist} - {title}"])
NASTY = st.sampled_from(["..", ".", "../../etc", "/abs", "a/b", "CON", "nul.txt", "\x00", " ", "…" * 200, "é" * 300])


@FAST
@given(TEMPLATES, NAMING, st.sampled_from([".flac", "mp3", ".m4a", ".opus"]), NASTY, NASTY)
def test_rendered_library_paths_stay_inside_the_library(tmp_path_factory, template, naming, extension, nasty_artist,
                                                        nasty_title):
    naming = TrackNaming(**{**naming.__dict__, "albumartist": nasty_artist + naming.albumartist,
                            "title": naming.title + nasty_title})
    root = tmp_path_factory.mktemp("library")
    relative = render_library_path(template, naming, extension)
    target = resolve_inside(root, relative)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(b"audio")
    assert target.is_relative_to(root.resolve()) and target.read_bytes() == b"audio"
    assert all(len(part.encode("utf-8")) <= 255 for part in relative.parts)
    assert sorted(p for p in root.rglob("*") if p.is_file()) == [target]
