"""Tag writing and reading with mutagen, one standard field per value and format.

MP3 gets ID3v2.4 frames, FLAC / Ogg Vorbis / Ogg Opus get Vorbis comments, M4A gets iTunes atoms
(api-contracts.md §6.1). Every non-empty field of `TrackTags` is written in a single save; empty
fields leave whatever the file already has. Audio data is never touched.

The producer goes into the standard people-list frame (ID3 TIPL) or the PRODUCER comment / freeform
atom: the original backend used a non-standard "easy" key that made the whole write fail.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import mutagen
from mutagen.flac import FLAC
from mutagen.id3 import (
    ID3,
    TALB,
    TCOM,
    TCON,
    TCOP,
    TDRC,
    TEXT,
    TIPL,
    TIT2,
    TPE1,
    TPE2,
    TPOS,
    TPUB,
    TRCK,
    TSRC,
    TXXX,
    UFID,
    USLT,
)
from mutagen.mp3 import MP3
from mutagen.mp4 import MP4, AtomDataType, MP4FreeForm, MP4Tags
from mutagen.oggopus import OggOpus
from mutagen.oggvorbis import OggVorbis

MUSICBRAINZ_UFID_OWNER = "http://musicbrainz.org"
ITUNES_FREEFORM = "----:com.apple.iTunes:"
PRODUCER_ROLE = "producer"


class TaggingError(Exception):
    """The file is missing, corrupt, or not a format this module tags."""


@dataclass
class TrackTags:
    title: str = ""
    artist: str = ""  # the display credit, e.g. "A feat. B"
    artists: list[str] = field(default_factory=list)  # each credited artist on its own
    album: str = ""
    album_artist: str = ""
    track_number: int | None = None
    track_total: int | None = None
    disc_number: int | None = None
    disc_total: int | None = None
    date: str = ""  # "2019-03-01", "2019-03" or "2019"
    genres: list[str] = field(default_factory=list)
    composers: list[str] = field(default_factory=list)
    lyricists: list[str] = field(default_factory=list)
    producers: list[str] = field(default_factory=list)
    isrc: str = ""
    copyright: str = ""
    label: str = ""
    plain_lyrics: str | None = None
    musicbrainz_recording_id: str | None = None
    musicbrainz_release_id: str | None = None

    def filled_fields(self) -> list[str]:
        """Names of the fields that hold a value (what `write_tags` writes)."""
        return [f.name for f in fields(self) if getattr(self, f.name) not in (None, "", [])]


def write_tags(path: str | Path, tags: TrackTags) -> None:
    """Write every non-empty field of `tags` into `path` with one save."""
    audio = open_audio(path)
    if isinstance(audio, MP3):
        _write_id3(audio.tags, tags)
    elif isinstance(audio, MP4):
        _write_mp4(audio.tags, tags)
    else:
        _write_vorbis(audio.tags, tags)
    save_audio(audio, path)


def read_tags(path: str | Path) -> TrackTags:
    """Read the fields `write_tags` writes back from `path`."""
    audio = open_audio(path)
    if isinstance(audio, MP3):
        return _read_id3(audio.tags)
    if isinstance(audio, MP4):
        return _read_mp4(audio.tags)
    return _read_vorbis(audio.tags)


def open_audio(path: str | Path) -> mutagen.FileType:
    """The mutagen object of a supported file, with an (empty) tag container ensured."""
    try:
        audio = mutagen.File(path)
    except mutagen.MutagenError as error:
        raise TaggingError(f"cannot read {path}: {error}") from error
    if not isinstance(audio, (MP3, FLAC, OggVorbis, OggOpus, MP4)):
        kind = type(audio).__name__ if audio is not None else "unrecognised data"
        raise TaggingError(f"unsupported audio file {path} ({kind}); expected MP3, FLAC, Ogg or M4A")
    if audio.tags is None:
        audio.add_tags()
    return audio


def save_audio(audio: mutagen.FileType, path: str | Path) -> None:
    try:
        audio.save()
    except mutagen.MutagenError as error:
        raise TaggingError(f"cannot save tags to {path}: {error}") from error


def _number_pair(number: int | None, total: int | None) -> str:
    return f"{number}/{total}" if total else str(number)


def _parse_number_pair(text: str) -> tuple[int | None, int | None]:
    number, _, total = text.partition("/")
    return _to_int(number), _to_int(total)


def _to_int(text: str) -> int | None:
    text = text.strip()
    return int(text) if text.isdigit() else None


# --- ID3 (MP3) -------------------------------------------------------------------------------


def _write_id3(id3: ID3, tags: TrackTags) -> None:
    text_frames = [
        (TIT2, [tags.title]),
        (TPE1, [tags.artist]),
        (TALB, [tags.album]),
        (TPE2, [tags.album_artist]),
        (TDRC, [tags.date]),
        (TCON, tags.genres),
        (TCOM, tags.composers),
        (TEXT, tags.lyricists),
        (TSRC, [tags.isrc]),
        (TCOP, [tags.copyright]),
        (TPUB, [tags.label]),
    ]
    for frame_class, values in text_frames:
        values = [value for value in values if value]
        if values:
            id3.setall(frame_class.__name__, [frame_class(encoding=3, text=values)])
    if tags.artists:
        id3.setall("TXXX:ARTISTS", [TXXX(encoding=3, desc="ARTISTS", text=tags.artists)])
    if tags.track_number:
        id3.setall("TRCK", [TRCK(encoding=3, text=[_number_pair(tags.track_number, tags.track_total)])])
    if tags.disc_number:
        id3.setall("TPOS", [TPOS(encoding=3, text=[_number_pair(tags.disc_number, tags.disc_total)])])
    if tags.producers:
        # Keep the other roles (engineer, mix…) a previous tagger may have listed in TIPL.
        other_roles = [pair for pair in _id3_people(id3) if pair[0] != PRODUCER_ROLE]
        people = other_roles + [[PRODUCER_ROLE, name] for name in tags.producers]
        id3.setall("TIPL", [TIPL(encoding=3, people=people)])
    if tags.plain_lyrics:
        id3.delall("USLT")
        id3.add(USLT(encoding=3, lang="eng", desc="", text=tags.plain_lyrics))
    if tags.musicbrainz_recording_id:
        ufid = UFID(owner=MUSICBRAINZ_UFID_OWNER, data=tags.musicbrainz_recording_id.encode("ascii"))
        id3.setall(f"UFID:{MUSICBRAINZ_UFID_OWNER}", [ufid])
    if tags.musicbrainz_release_id:
        album_id = TXXX(encoding=3, desc="MusicBrainz Album Id", text=[tags.musicbrainz_release_id])
        id3.setall("TXXX:MusicBrainz Album Id", [album_id])


def _id3_people(id3: ID3) -> list[list[str]]:
    frame = id3.get("TIPL")
    return [list(pair) for pair in frame.people] if frame else []


def _id3_texts(id3: ID3, key: str) -> list[str]:
    frame = id3.get(key)
    return [str(value) for value in frame.text] if frame else []


def _id3_text(id3: ID3, key: str) -> str:
    texts = _id3_texts(id3, key)
    return texts[0] if texts else ""


def _read_id3(id3: ID3) -> TrackTags:
    track_number, track_total = _parse_number_pair(_id3_text(id3, "TRCK"))
    disc_number, disc_total = _parse_number_pair(_id3_text(id3, "TPOS"))
    lyrics = id3.getall("USLT")
    ufid = id3.get(f"UFID:{MUSICBRAINZ_UFID_OWNER}")
    return TrackTags(
        title=_id3_text(id3, "TIT2"),
        artist=_id3_text(id3, "TPE1"),
        artists=_id3_texts(id3, "TXXX:ARTISTS"),
        album=_id3_text(id3, "TALB"),
        album_artist=_id3_text(id3, "TPE2"),
        track_number=track_number,
        track_total=track_total,
        disc_number=disc_number,
        disc_total=disc_total,
        date=_id3_text(id3, "TDRC"),
        genres=_id3_texts(id3, "TCON"),
        composers=_id3_texts(id3, "TCOM"),
        lyricists=_id3_texts(id3, "TEXT"),
        producers=[name for role, name in _id3_people(id3) if role == PRODUCER_ROLE],
        isrc=_id3_text(id3, "TSRC"),
        copyright=_id3_text(id3, "TCOP"),
        label=_id3_text(id3, "TPUB"),
        plain_lyrics=lyrics[0].text if lyrics else None,
        musicbrainz_recording_id=ufid.data.decode("ascii") if ufid else None,
        musicbrainz_release_id=_id3_text(id3, "TXXX:MusicBrainz Album Id") or None,
    )


# --- Vorbis comments (FLAC, Ogg Vorbis, Ogg Opus) --------------------------------------------


def _vorbis_fields(tags: TrackTags) -> dict[str, list[str]]:
    def numbers(*values: int | None) -> list[str]:
        return [str(value) for value in values if value]

    return {
        "TITLE": [tags.title],
        "ARTIST": [tags.artist],
        "ARTISTS": tags.artists,
        "ALBUM": [tags.album],
        "ALBUMARTIST": [tags.album_artist],
        "TRACKNUMBER": numbers(tags.track_number),
        "TRACKTOTAL": numbers(tags.track_total),
        "DISCNUMBER": numbers(tags.disc_number),
        "DISCTOTAL": numbers(tags.disc_total),
        "DATE": [tags.date],
        "GENRE": tags.genres,
        "COMPOSER": tags.composers,
        "LYRICIST": tags.lyricists,
        "PRODUCER": tags.producers,
        "ISRC": [tags.isrc],
        "COPYRIGHT": [tags.copyright],
        "LABEL": [tags.label],
        "LYRICS": [tags.plain_lyrics or ""],
        "MUSICBRAINZ_TRACKID": [tags.musicbrainz_recording_id or ""],
        "MUSICBRAINZ_ALBUMID": [tags.musicbrainz_release_id or ""],
    }


def _write_vorbis(comment: Any, tags: TrackTags) -> None:
    for key, values in _vorbis_fields(tags).items():
        values = [value for value in values if value]
        if values:
            comment[key] = values  # replaces every case variant of the key


def _read_vorbis(comment: Any) -> TrackTags:
    def values(key: str) -> list[str]:
        return list(comment.get(key, []))

    def first(key: str) -> str:
        found = values(key)
        return found[0] if found else ""

    return TrackTags(
        title=first("TITLE"),
        artist=first("ARTIST"),
        artists=values("ARTISTS"),
        album=first("ALBUM"),
        album_artist=first("ALBUMARTIST"),
        track_number=_parse_number_pair(first("TRACKNUMBER"))[0],
        track_total=_to_int(first("TRACKTOTAL")) or _parse_number_pair(first("TRACKNUMBER"))[1],
        disc_number=_parse_number_pair(first("DISCNUMBER"))[0],
        disc_total=_to_int(first("DISCTOTAL")) or _parse_number_pair(first("DISCNUMBER"))[1],
        date=first("DATE"),
        genres=values("GENRE"),
        composers=values("COMPOSER"),
        lyricists=values("LYRICIST"),
        producers=values("PRODUCER"),
        isrc=first("ISRC"),
        copyright=first("COPYRIGHT"),
        label=first("LABEL") or first("ORGANIZATION"),
        plain_lyrics=first("LYRICS") or first("UNSYNCEDLYRICS") or None,
        musicbrainz_recording_id=first("MUSICBRAINZ_TRACKID") or None,
        musicbrainz_release_id=first("MUSICBRAINZ_ALBUMID") or None,
    )


# --- MP4 atoms (M4A) -------------------------------------------------------------------------

_MP4_ATOMS = {
    "©nam": "title",
    "©ART": "artist",
    "©alb": "album",
    "aART": "album_artist",
    "©day": "date",
    "©gen": "genres",
    "©wrt": "composers",
    "cprt": "copyright",
    "©lyr": "plain_lyrics",
}
_MP4_FREEFORM = {
    "ARTISTS": "artists",
    "LYRICIST": "lyricists",
    "PRODUCER": "producers",
    "ISRC": "isrc",
    "LABEL": "label",
    "MusicBrainz Track Id": "musicbrainz_recording_id",
    "MusicBrainz Album Id": "musicbrainz_release_id",
}


def _as_list(value: str | list[str] | None) -> list[str]:
    if isinstance(value, list):
        return [item for item in value if item]
    return [value] if value else []


def _write_mp4(atoms: MP4Tags, tags: TrackTags) -> None:
    for atom, name in _MP4_ATOMS.items():
        values = _as_list(getattr(tags, name))
        if values:
            atoms[atom] = values
    for freeform_name, name in _MP4_FREEFORM.items():
        values = _as_list(getattr(tags, name))
        if values:
            atoms[ITUNES_FREEFORM + freeform_name] = [
                MP4FreeForm(value.encode("utf-8"), dataformat=AtomDataType.UTF8) for value in values
            ]
    if tags.track_number:
        atoms["trkn"] = [(tags.track_number, tags.track_total or 0)]
    if tags.disc_number:
        atoms["disk"] = [(tags.disc_number, tags.disc_total or 0)]


def _read_mp4(atoms: MP4Tags) -> TrackTags:
    def text(atom: str) -> str:
        values = atoms.get(atom)
        return str(values[0]) if values else ""

    def freeform(name: str) -> list[str]:
        return [bytes(value).decode("utf-8") for value in atoms.get(ITUNES_FREEFORM + name, [])]

    def first_freeform(name: str) -> str:
        values = freeform(name)
        return values[0] if values else ""

    track_number, track_total = atoms.get("trkn", [(0, 0)])[0]
    disc_number, disc_total = atoms.get("disk", [(0, 0)])[0]
    return TrackTags(
        title=text("©nam"),
        artist=text("©ART"),
        artists=freeform("ARTISTS"),
        album=text("©alb"),
        album_artist=text("aART"),
        track_number=track_number or None,
        track_total=track_total or None,
        disc_number=disc_number or None,
        disc_total=disc_total or None,
        date=text("©day"),
        genres=list(atoms.get("©gen", [])),
        composers=list(atoms.get("©wrt", [])),
        lyricists=freeform("LYRICIST"),
        producers=freeform("PRODUCER"),
        isrc=first_freeform("ISRC"),
        copyright=text("cprt"),
        label=first_freeform("LABEL"),
        plain_lyrics=text("©lyr") or None,
        musicbrainz_recording_id=first_freeform("MusicBrainz Track Id") or None,
        musicbrainz_release_id=first_freeform("MusicBrainz Album Id") or None,
    )
