from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import mutagen
import numpy as np
import pytest
import soundfile
from audio_fixtures import AUDIO_SUFFIXES, write_audio
from mutagen.id3 import ID3, TIPL
from mutagen.mp4 import MP4, AtomDataType, MP4FreeForm

from harmony_pipeline.enrichment.tagging import TaggingError, TrackTags, read_tags, write_tags

FULL = TrackTags(
    title="Hey Boy Hey Girl – Ünïcode",
    artist="The Chemical Brothers feat. Guest",
    artists=["The Chemical Brothers", "Guest"],
    album="Surrender",
    album_artist="The Chemical Brothers",
    track_number=3,
    track_total=12,
    disc_number=1,
    disc_total=2,
    date="1999-06-21",
    genres=["big beat", "electronic"],
    composers=["Tom Rowlands", "Ed Simons"],
    lyricists=["Lyricist L"],
    producers=["Producer P", "Co Producer"],
    isrc="GBAAA9900303",
    copyright="℗ 1999 Virgin Records Ltd",
    label="Virgin",
    plain_lyrics="Hey girl\nHey boy\n\nSuperstar DJs",
    musicbrainz_recording_id="bf7845cc-eac3-48a3-8b06-543b4b7ba117",
    musicbrainz_release_id="76df3287-6cda-33eb-8e9a-044b5e15ffdd",
)


def _decoded(path: Path) -> np.ndarray | None:
    """Decoded samples (None for the sample-less M4A container)."""
    if path.suffix == ".m4a":
        return None
    samples, _ = soundfile.read(path)
    return samples


@pytest.mark.parametrize("suffix", AUDIO_SUFFIXES)
def test_every_field_round_trips_and_audio_is_untouched(tmp_path: Path, suffix: str) -> None:
    path = write_audio(tmp_path / f"track{suffix}")
    before = mutagen.File(path).info
    samples_before = _decoded(path)

    write_tags(path, FULL)

    after = mutagen.File(path).info
    assert after.length == pytest.approx(before.length)
    assert after.channels == before.channels
    if samples_before is not None:
        assert np.array_equal(_decoded(path), samples_before)
    read = read_tags(path)
    assert read == FULL
    assert read.filled_fields() == FULL.filled_fields() == [f.name for f in fields(TrackTags)]


def test_mp3_uses_standard_id3v24_frames(tmp_path: Path) -> None:
    path = write_audio(tmp_path / "track.mp3")
    write_tags(path, FULL)

    id3 = ID3(path)
    assert id3.version == (2, 4, 0)
    assert id3["TIT2"].text == [FULL.title]
    assert id3["TPE1"].text == [FULL.artist]
    assert id3["TXXX:ARTISTS"].text == FULL.artists
    assert id3["TALB"].text == [FULL.album]
    assert id3["TPE2"].text == [FULL.album_artist]
    assert id3["TRCK"].text == ["3/12"]
    assert id3["TPOS"].text == ["1/2"]
    assert [str(stamp) for stamp in id3["TDRC"].text] == ["1999-06-21"]
    assert id3["TCON"].text == FULL.genres
    assert id3["TCOM"].text == FULL.composers
    assert id3["TEXT"].text == FULL.lyricists
    assert id3["TIPL"].people == [["producer", "Producer P"], ["producer", "Co Producer"]]
    assert not id3.getall("TXXX:PRODUCER")
    assert id3["TSRC"].text == [FULL.isrc]
    assert id3["TCOP"].text == [FULL.copyright]
    assert id3["TPUB"].text == [FULL.label]
    [lyrics] = id3.getall("USLT")
    assert (lyrics.lang, lyrics.desc, lyrics.text) == ("eng", "", FULL.plain_lyrics)
    assert id3["UFID:http://musicbrainz.org"].data == FULL.musicbrainz_recording_id.encode()
    assert id3["TXXX:MusicBrainz Album Id"].text == [FULL.musicbrainz_release_id]


@pytest.mark.parametrize("suffix", [".flac", ".ogg", ".opus"])
def test_vorbis_formats_use_standard_comments(tmp_path: Path, suffix: str) -> None:
    path = write_audio(tmp_path / f"track{suffix}")
    write_tags(path, FULL)

    comments = mutagen.File(path).tags
    expected = {
        "title": [FULL.title],
        "artist": [FULL.artist],
        "artists": FULL.artists,
        "album": [FULL.album],
        "albumartist": [FULL.album_artist],
        "tracknumber": ["3"],
        "tracktotal": ["12"],
        "discnumber": ["1"],
        "disctotal": ["2"],
        "date": ["1999-06-21"],
        "genre": FULL.genres,
        "composer": FULL.composers,
        "lyricist": FULL.lyricists,
        "producer": FULL.producers,
        "isrc": [FULL.isrc],
        "copyright": [FULL.copyright],
        "label": [FULL.label],
        "lyrics": [FULL.plain_lyrics],
        "musicbrainz_trackid": [FULL.musicbrainz_recording_id],
        "musicbrainz_albumid": [FULL.musicbrainz_release_id],
    }
    for key, values in expected.items():
        assert comments[key] == values, key


def test_m4a_uses_itunes_atoms_and_utf8_freeform(tmp_path: Path) -> None:
    path = write_audio(tmp_path / "track.m4a")
    write_tags(path, FULL)

    atoms = MP4(path).tags
    assert atoms["©nam"] == [FULL.title]
    assert atoms["©ART"] == [FULL.artist]
    assert atoms["©alb"] == [FULL.album]
    assert atoms["aART"] == [FULL.album_artist]
    assert atoms["trkn"] == [(3, 12)]
    assert atoms["disk"] == [(1, 2)]
    assert atoms["©day"] == ["1999-06-21"]
    assert atoms["©gen"] == FULL.genres
    assert atoms["©wrt"] == FULL.composers
    assert atoms["cprt"] == [FULL.copyright]
    assert atoms["©lyr"] == [FULL.plain_lyrics]
    freeform = {
        "PRODUCER": FULL.producers,
        "LYRICIST": FULL.lyricists,
        "ISRC": [FULL.isrc],
        "LABEL": [FULL.label],
        "ARTISTS": FULL.artists,
        "MusicBrainz Track Id": [FULL.musicbrainz_recording_id],
    }
    for name, values in freeform.items():
        stored = atoms[f"----:com.apple.iTunes:{name}"]
        assert all(isinstance(v, MP4FreeForm) and v.dataformat == AtomDataType.UTF8 for v in stored)
        assert [bytes(v).decode("utf-8") for v in stored] == values, name


@pytest.mark.parametrize("suffix", AUDIO_SUFFIXES)
def test_empty_fields_keep_existing_values_and_rewrites_do_not_duplicate(tmp_path: Path, suffix: str) -> None:
    path = write_audio(tmp_path / f"track{suffix}")
    write_tags(path, TrackTags(title="Old title", genres=["rock"], plain_lyrics="old words"))

    write_tags(path, TrackTags(genres=["pop", "dance"], plain_lyrics="new words", track_number=4))

    read = read_tags(path)
    assert read.title == "Old title"
    assert read.genres == ["pop", "dance"]
    assert read.plain_lyrics == "new words"
    assert (read.track_number, read.track_total) == (4, None)
    assert read.filled_fields() == ["title", "track_number", "genres", "plain_lyrics"]


def test_mp3_producer_write_keeps_other_people_roles(tmp_path: Path) -> None:
    path = write_audio(tmp_path / "track.mp3")
    id3 = ID3()
    id3.add(TIPL(encoding=3, people=[["engineer", "Engineer E"], ["producer", "Old Producer"]]))
    id3.save(path)

    write_tags(path, TrackTags(producers=["Producer P"]))

    assert ID3(path)["TIPL"].people == [["engineer", "Engineer E"], ["producer", "Producer P"]]


def test_track_number_without_total_is_written_alone(tmp_path: Path) -> None:
    path = write_audio(tmp_path / "track.mp3")
    write_tags(path, TrackTags(track_number=7, disc_number=2))
    id3 = ID3(path)
    assert (id3["TRCK"].text, id3["TPOS"].text) == (["7"], ["2"])


def test_corrupt_unsupported_and_missing_files_raise_tagging_error(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.mp3"
    corrupt.write_bytes(b"not audio at all " * 64)
    wav = tmp_path / "tone.wav"
    soundfile.write(wav, np.zeros(800), 8000)

    with pytest.raises(TaggingError, match=r"corrupt\.mp3"):
        write_tags(corrupt, FULL)
    with pytest.raises(TaggingError, match="unsupported"):
        write_tags(wav, FULL)
    with pytest.raises(TaggingError, match=r"missing\.flac"):
        read_tags(tmp_path / "missing.flac")
    assert corrupt.read_bytes() == b"not audio at all " * 64
