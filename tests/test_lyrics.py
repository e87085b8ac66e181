from __future__ import annotations

from pathlib import Path

import pytest

from harmony_pipeline.enrichment.lyrics import (
    LyricsKind,
    LyricsRecord,
    artist_forms,
    choose_record,
    lrc_sidecar_path,
    lyrics_outcome,
    parse_lrc,
    render_lrc,
    write_lrc_sidecar,
)

SYNCED = (
    "[00:17.12] I feel your breath upon my neck\n"
    "[00:20.41] A soft caress\n"
    "[01:05.5][02:10.255] Chorus <01:05.90>line\n"
    "[00:25.00] \n"
)


def _record(**overrides: object) -> dict[str, object]:
    """An LRCLIB record as the API returns it (api-contracts.md §3.1)."""
    record: dict[str, object] = {
        "id": 3396226,
        "name": "I Want to Live",
        "trackName": "I Want to Live",
        "artistName": "Borislav Slavov",
        "albumName": "Baldur's Gate 3 (Original Game Soundtrack)",
        "duration": 233.0,
        "instrumental": False,
        "plainLyrics": "I feel your breath upon my neck\nA soft caress",
        "syncedLyrics": SYNCED,
    }
    record.update(overrides)
    return record


def test_render_lrc_exact_text_with_headers_and_normalised_timestamps() -> None:
    text = render_lrc(
        SYNCED, "Borislav Slavov", "I Want to Live", "Baldur's Gate 3 (Original Game Soundtrack)", 233.0
    )

    assert text == (
        "[ar:Borislav Slavov]\n"
        "[ti:I Want to Live]\n"
        "[al:Baldur's Gate 3 (Original Game Soundtrack)]\n"
        "[length:03:53]\n"
        "[00:17.12]I feel your breath upon my neck\n"
        "[00:20.41]A soft caress\n"
        "[00:25.00]\n"
        "[01:05.50]Chorus <01:05.90>line\n"
        "[02:10.26]Chorus <01:05.90>line\n"
    )


def test_render_lrc_without_album_or_length_and_with_long_tracks() -> None:
    text = render_lrc("[75:03.999]Last words", "A", "T", None, None)
    assert text == "[ar:A]\n[ti:T]\n[75:04.00]Last words\n"
    assert render_lrc("", "A", "T", "B", 59.5).splitlines()[-1] == "[length:01:00]"


def test_parse_lrc_times_are_milliseconds() -> None:
    assert parse_lrc("[01:02.50]x") == [(62_500, "x")]
    assert parse_lrc("[01:02.505]x\n[00:00.07]y\n[02:00]z") == [(70, "y"), (62_505, "x"), (120_000, "z")]


def test_parse_lrc_skips_id_tags_and_applies_offset() -> None:
    text = "[ar:Someone]\n[offset:+500]\n[00:10.00]a\nuntimed\n[00:00.20]b\n"
    assert parse_lrc(text) == [(0, "b"), (9_500, "a")]


def test_duration_rule_is_two_seconds_either_way() -> None:
    within = LyricsRecord.from_json(_record(id=1, duration=235.0))
    outside = LyricsRecord.from_json(_record(id=2, duration=235.5))

    assert choose_record([within, outside], "Borislav Slavov", "I Want to Live", None, 233.0) == within
    assert choose_record([outside], "Borislav Slavov", "I Want to Live", None, 233.0) is None
    assert choose_record([outside], "Borislav Slavov", "I Want to Live", None, 237.4) == outside
    assert choose_record([outside], "Borislav Slavov", "I Want to Live", None, None) == outside


def test_synced_is_preferred_over_plain_even_from_another_album() -> None:
    plain_same_album = LyricsRecord.from_json(_record(id=1, syncedLyrics=None))
    synced_compilation = LyricsRecord.from_json(_record(id=2, albumName="Best of", duration=234.5))

    chosen = choose_record(
        [plain_same_album, synced_compilation],
        "Borislav Slavov",
        "I Want to Live",
        "Baldur's Gate 3 (Original Game Soundtrack)",
        233.0,
    )

    assert chosen == synced_compilation


def test_same_album_then_closest_duration_break_ties() -> None:
    other_album = LyricsRecord.from_json(_record(id=1, albumName="Best of", duration=233.0))
    same_album_far = LyricsRecord.from_json(_record(id=2, duration=231.5))
    same_album_near = LyricsRecord.from_json(_record(id=3, duration=233.5))
    records = [other_album, same_album_far, same_album_near]

    chosen = choose_record(
        records, "Borislav Slavov", "I Want to Live", "Baldur’s Gate 3 (Original Game Soundtrack)", 233.0
    )

    assert chosen.id == 3


def test_names_match_after_lrclib_normalisation_only() -> None:
    record = LyricsRecord.from_json(
        _record(artistName="Beyoncé", trackName="Don't Stop (Me) Now!", duration=200.0)
    )

    assert choose_record([record], "BEYONCE", "Dont stop me now", None, 200.0) == record
    assert choose_record([record], "Beyoncé", "Don’t Stop (Me) Now", None, 200.0) == record
    assert choose_record([record], "Other Artist", "Dont stop me now", None, 200.0) is None
    assert choose_record([record], "Beyoncé", "Don't Stop (Me) Now (Live)", None, 200.0) is None


def test_several_artists_match_a_record_under_all_of_them_or_any_one() -> None:
    credited = ["Beyoncé", "Kendrick Lamar"]
    under = {name: LyricsRecord.from_json(_record(artistName=name, trackName="Freedom", duration=290.0))
             for name in ("Beyonce", "Beyoncé, Kendrick Lamar", "Kendrick Lamar", "Beyoncé & Kendrick Lamar",
                          "Beyoncé feat. Kendrick Lamar", "Jay-Z")}

    assert artist_forms(credited) == ["Beyoncé, Kendrick Lamar", "Beyoncé", "Kendrick Lamar"]
    assert artist_forms("Beyoncé") == ["Beyoncé"]
    # "&" and "," are both punctuation to LRCLIB's normalisation: the same joined form.
    for name in ("Beyonce", "Beyoncé, Kendrick Lamar", "Kendrick Lamar", "Beyoncé & Kendrick Lamar"):
        assert choose_record([under[name]], credited, "Freedom", None, 290.0) == under[name], name
    others = [under["Beyoncé feat. Kendrick Lamar"], under["Jay-Z"]]
    assert choose_record(others, credited, "Freedom", None, 290.0) is None
    # A single artist still needs the record's artist to be that artist.
    assert choose_record([under["Beyoncé, Kendrick Lamar"]], "Beyoncé", "Freedom", None, 290.0) is None


def test_synced_outcome_renders_lrc_and_keeps_plain_text_for_the_tag(tmp_path: Path) -> None:
    record = LyricsRecord.from_json(_record())
    outcome = lyrics_outcome(record, "Borislav Slavov", "I Want to Live", None, 233.0)

    assert outcome.kind == LyricsKind.SYNCED
    assert outcome.record_id == 3396226
    assert outcome.lrc_text == render_lrc(SYNCED, "Borislav Slavov", "I Want to Live", None, 233.0)
    assert outcome.plain_text == record.plain_lyrics

    audio = tmp_path / "01 - I Want to Live.v2.flac"
    sidecar = write_lrc_sidecar(audio, outcome.lrc_text)
    assert sidecar == tmp_path / "01 - I Want to Live.v2.lrc"
    assert sidecar.read_bytes() == outcome.lrc_text.encode("utf-8")
    assert [p.name for p in tmp_path.iterdir()] == [sidecar.name]


def test_synced_without_plain_derives_plain_text_without_word_timings() -> None:
    record = LyricsRecord.from_json(_record(plainLyrics=None))
    outcome = lyrics_outcome(record, "A", "T", None, None)
    assert outcome.plain_text == "I feel your breath upon my neck\nA soft caress\n\nChorus line\nChorus line"


def test_plain_instrumental_and_missing_outcomes_have_no_lrc() -> None:
    plain = lyrics_outcome(LyricsRecord.from_json(_record(syncedLyrics=None)), "A", "T", None, 233.0)
    instrumental_record = LyricsRecord.from_json(
        _record(instrumental=True, plainLyrics=None, syncedLyrics=None)
    )
    instrumental = lyrics_outcome(instrumental_record, "A", "T", None, 233.0)
    missing = lyrics_outcome(None, "A", "T", None, 233.0)

    assert (plain.kind, plain.lrc_text, plain.plain_text) == (
        LyricsKind.PLAIN,
        None,
        _record()["plainLyrics"],
    )
    assert (instrumental.kind, instrumental.lrc_text, instrumental.plain_text) == (
        LyricsKind.INSTRUMENTAL,
        None,
        None,
    )
    assert (missing.kind, missing.lrc_text, missing.record_id) == (LyricsKind.MISSING, None, None)


def test_instrumental_record_is_chosen_when_it_is_the_only_match_but_loses_to_lyrics() -> None:
    instrumental = LyricsRecord.from_json(
        _record(id=9, instrumental=True, plainLyrics=None, syncedLyrics=None)
    )
    plain = LyricsRecord.from_json(_record(id=10, syncedLyrics=None))
    empty = LyricsRecord.from_json(_record(id=11, plainLyrics=None, syncedLyrics=None))

    assert choose_record([instrumental], "Borislav Slavov", "I Want to Live", None, 233.0) == instrumental
    assert choose_record([instrumental, plain], "Borislav Slavov", "I Want to Live", None, 233.0) == plain
    assert choose_record([empty], "Borislav Slavov", "I Want to Live", None, 233.0) is None


@pytest.mark.parametrize(
    ("audio", "expected"),
    [("/lib/A/B/03 - T.mp3", "/lib/A/B/03 - T.lrc"), ("/lib/x.y.m4a", "/lib/x.y.lrc")],
)
def test_sidecar_path_keeps_stem_and_directory(audio: str, expected: str) -> None:
    assert lrc_sidecar_path(audio) == Path(expected)
