"""Lyrics: choose an LRCLIB record for a track and render the `.lrc` sidecar.

Matching mirrors LRCLIB's own `/api/get` rule (api-contracts.md §3.1): artist and title equal after
normalisation, duration within ±2 s; a track with several artists matches a record stored under all
of them or under any one of them. Synced lyrics go to a `.lrc` file next to the audio; plain
lyrics go into the audio tag only; an instrumental record means "no lyrics, and that is known".

All times are integer milliseconds internally and `length_s` is in seconds, spelled out in the
names: the original backend mixed the two and spaced lines 1000x too far apart.
"""

from __future__ import annotations

import math
import os
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

DURATION_TOLERANCE_S = 2.0
_TIMESTAMP = re.compile(r"\[(\d+):(\d{1,2})(?:[.:](\d{1,3}))?\]")
_OFFSET_TAG = re.compile(r"^\[offset:\s*([+-]?\d+)\s*\]\s*$", re.IGNORECASE)
_APOSTROPHES = re.compile(r"['’‘ʼ`]")
_WORD_TIMING = re.compile(r"<\d+:\d{1,2}(?:[.:]\d{1,3})?>\s*")  # enhanced LRC


@dataclass(frozen=True)
class LyricsRecord:
    id: int
    track_name: str
    artist_name: str
    album_name: str
    duration: float | None  # seconds
    instrumental: bool
    plain_lyrics: str | None
    synced_lyrics: str | None

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> LyricsRecord:
        """Build from an LRCLIB record (camelCase JSON)."""
        duration = record.get("duration")

        def text(key: str) -> str:  # a wrongly typed field reads as absent
            value = record.get(key)
            return value if isinstance(value, str) else ""

        return cls(
            id=int(record["id"]),
            track_name=text("trackName") or text("name"),
            artist_name=text("artistName"),
            album_name=text("albumName"),
            duration=float(duration) if isinstance(duration, (int, float)) and not isinstance(duration, bool)
            and math.isfinite(duration) else None,
            instrumental=record.get("instrumental") is True,
            plain_lyrics=text("plainLyrics") or None,
            synced_lyrics=text("syncedLyrics") or None,
        )


class LyricsKind(StrEnum):
    SYNCED = "synced"
    PLAIN = "plain"
    INSTRUMENTAL = "instrumental"
    MISSING = "missing"


@dataclass(frozen=True)
class LyricsOutcome:
    kind: LyricsKind
    record_id: int | None = None
    lrc_text: str | None = None  # the sidecar's content, only for SYNCED
    plain_text: str | None = None  # for the audio tag (SYNCED and PLAIN)


def normalise(text: str) -> str:
    """LRCLIB's comparison form: lower case, no accents, punctuation as spaces, no apostrophes."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    without_accents = "".join(char for char in decomposed if not unicodedata.combining(char))
    without_apostrophes = _APOSTROPHES.sub("", without_accents)
    spaced = "".join(char if char.isalnum() else " " for char in without_apostrophes)
    return " ".join(spaced.split())


def artist_forms(artists: str | Sequence[str]) -> list[str]:
    """The names a record of the track may be stored under: every credited artist joined with ", "
    (what a Spotify-based uploader submits), then each credited artist alone (the main one first)."""
    names = [artists] if isinstance(artists, str) else [name for name in artists if name]
    return list(dict.fromkeys([", ".join(names), *names])) if names else []


def choose_record(
    records: list[LyricsRecord], artists: str | Sequence[str], title: str, album: str | None,
    duration_s: float | None,
) -> LyricsRecord | None:
    """The best record for the track, or None.

    A record qualifies when its title matches and its artist matches one of `artist_forms(artists)`,
    after normalisation, and, if the track's duration is known, its duration is within ±2 s. Among
    those: synced before plain before instrumental, then the same album, then the closest duration.
    """
    wanted_artists, wanted_title = {normalise(name) for name in artist_forms(artists)}, normalise(title)
    wanted_album = normalise(album) if album else None

    def qualifies(record: LyricsRecord) -> bool:
        if normalise(record.artist_name) not in wanted_artists or normalise(record.track_name) != wanted_title:
            return False
        if not (record.synced_lyrics or record.plain_lyrics or record.instrumental):
            return False
        if duration_s is None:
            return True
        return record.duration is not None and abs(record.duration - duration_s) <= DURATION_TOLERANCE_S

    def preference(record: LyricsRecord) -> tuple[bool, bool, bool, float]:
        known = duration_s is not None and record.duration is not None
        distance = abs(record.duration - duration_s) if known else 0.0
        same_album = wanted_album is not None and normalise(record.album_name) == wanted_album
        return (record.synced_lyrics is not None, record.plain_lyrics is not None, same_album, -distance)

    qualified = [record for record in records if qualifies(record)]
    return max(qualified, key=preference) if qualified else None


def parse_lrc(text: str) -> list[tuple[int, str]]:
    """Timed lines of LRC text as (milliseconds, line), sorted by time.

    Accepts `[mm:ss]`, `[mm:ss.xx]` and `[mm:ss.xxx]`, several timestamps per line, and applies an
    `[offset:±ms]` tag (positive = lyrics shown earlier). ID tags and untimed lines are dropped.
    """
    offset_ms = 0
    timed: list[tuple[int, str]] = []
    for raw_line in text.splitlines():
        line = raw_line.strip()
        offset = _OFFSET_TAG.match(line)
        if offset:
            offset_ms = int(offset.group(1))
            continue
        stamps: list[int] = []
        while match := _TIMESTAMP.match(line):
            stamps.append(_timestamp_ms(*match.groups()))
            line = line[match.end() :]
        timed.extend((stamp, line.strip()) for stamp in stamps)
    shifted = [(max(0, stamp - offset_ms), line) for stamp, line in timed]
    return sorted(shifted, key=lambda pair: pair[0])  # stable: equal times keep file order


def _timestamp_ms(minutes: str, seconds: str, fraction: str | None) -> int:
    # ".5" is tenths, ".50" hundredths, ".500" milliseconds.
    fraction_ms = int(fraction.ljust(3, "0")) if fraction else 0
    return (int(minutes) * 60 + int(seconds)) * 1000 + fraction_ms


def format_timestamp(ms: int) -> str:
    """`mm:ss.xx` (hundredths, rounded half up); minutes grow past two digits when needed."""
    hundredths = (ms + 5) // 10
    return f"{hundredths // 6000:02d}:{hundredths // 100 % 60:02d}.{hundredths % 100:02d}"


def format_length(length_s: float) -> str:
    """`mm:ss` of a track length in seconds, rounded to the nearest second."""
    total = int(length_s + 0.5)
    return f"{total // 60:02d}:{total % 60:02d}"


def render_lrc(synced_text: str, artist: str, title: str, album: str | None, length_s: float | None) -> str:
    """The `.lrc` sidecar text: ID tags, then every timed line as `[mm:ss.xx]text`."""
    headers = [f"[ar:{_header_value(artist)}]", f"[ti:{_header_value(title)}]"]
    if album:
        headers.append(f"[al:{_header_value(album)}]")
    if length_s:
        headers.append(f"[length:{format_length(length_s)}]")
    lines = [f"[{format_timestamp(ms)}]{line}" for ms, line in parse_lrc(synced_text)]
    return "\n".join(headers + lines) + "\n"


def _header_value(value: str) -> str:
    return " ".join(value.split())  # an ID tag must stay on one line


def lrc_sidecar_path(audio_path: str | Path) -> Path:
    """The sidecar next to the audio file: same stem, `.lrc`."""
    return Path(audio_path).with_suffix(".lrc")


def write_lrc_sidecar(audio_path: str | Path, lrc_text: str) -> Path:
    """Write the sidecar atomically (UTF-8) and return its path."""
    target = lrc_sidecar_path(audio_path)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        temporary.write_text(lrc_text, encoding="utf-8", newline="\n")
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return target


def lyrics_outcome(
    record: LyricsRecord | None, artist: str, title: str, album: str | None, length_s: float | None
) -> LyricsOutcome:
    """What to do with the chosen record: write a sidecar, tag plain text, or record its absence."""
    if record is None:
        return LyricsOutcome(LyricsKind.MISSING)
    if record.instrumental:
        return LyricsOutcome(LyricsKind.INSTRUMENTAL, record_id=record.id)
    timed = parse_lrc(record.synced_lyrics) if record.synced_lyrics else []
    if timed:
        plain = record.plain_lyrics or "\n".join(_WORD_TIMING.sub("", line) for _, line in timed)
        lrc = render_lrc(record.synced_lyrics, artist, title, album, length_s)
        return LyricsOutcome(LyricsKind.SYNCED, record_id=record.id, lrc_text=lrc, plain_text=plain)
    if record.plain_lyrics:
        return LyricsOutcome(LyricsKind.PLAIN, record_id=record.id, plain_text=record.plain_lyrics)
    return LyricsOutcome(LyricsKind.MISSING, record_id=record.id)
