"""The basic tags every imported file carries before it becomes visible in the library.

A media server scanning the library must never index a file as "Unknown Artist": the import writes
title, artist(s), album, album artist, track and disc numbers with totals, year, ISRC and the Spotify id
into the downloaded file *before* the atomic move (import_flow.py); enrichment adds genre, credits,
cover and lyrics afterwards.

The tags are written into a copy next to the downloaded file, which then replaces it with one rename:
a crash while mutagen rewrites the file can never leave a torn file behind, and the file that reaches
the library is byte for byte the tagged one (the import's recovery compares contents).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from mutagen.id3 import TXXX
from mutagen.mp3 import MP3
from mutagen.mp4 import MP4, AtomDataType, MP4FreeForm

from harmony_pipeline.library.paths import MAX_COMPONENT_BYTES, truncate_utf8
from harmony_pipeline.enrichment.tagging import ITUNES_FREEFORM, TaggingError, TrackTags, open_audio, save_audio, write_tags

SPOTIFY_ID_KEY = "SPOTIFY_TRACK_ID"  # ID3 TXXX description, Vorbis comment key, iTunes freeform name


def basic_tags(row: dict[str, Any], disc_total: int | None) -> TrackTags:
    """The tags known at import time, from the wanted track's Spotify data.

    The track total is the album's when it has one disc; for several discs only enrichment (which reads
    the album's track list) knows each disc's count, so it is left to it.
    """
    artists = list(row.get("artists") or [row["artist"]])
    discs = max(disc_total or 1, row.get("disc_number") or 1)
    return TrackTags(
        title=row["title"],
        artist=", ".join(artists),  # the display credit, as track_metadata writes it
        artists=artists,
        album=row.get("album") or "",
        album_artist=row.get("album_artist") or row["artist"],
        track_number=row.get("track_number") or None,
        track_total=row.get("album_total_tracks") if discs == 1 else None,
        disc_number=row.get("disc_number") or 1,
        disc_total=discs,
        date=row.get("release_date") or "",
        isrc=row.get("isrc") or "",
    )


def write_spotify_id(path: str | Path, spotify_track_id: str) -> None:
    audio = open_audio(path)
    if isinstance(audio, MP3):
        audio.tags.setall(f"TXXX:{SPOTIFY_ID_KEY}", [TXXX(encoding=3, desc=SPOTIFY_ID_KEY, text=[spotify_track_id])])
    elif isinstance(audio, MP4):
        audio.tags[ITUNES_FREEFORM + SPOTIFY_ID_KEY] = [
            MP4FreeForm(spotify_track_id.encode("utf-8"), dataformat=AtomDataType.UTF8)]
    else:
        audio.tags[SPOTIFY_ID_KEY] = [spotify_track_id]
    save_audio(audio, path)


def read_spotify_id(path: str | Path) -> str | None:
    audio = open_audio(path)
    if isinstance(audio, MP3):
        frame = audio.tags.get(f"TXXX:{SPOTIFY_ID_KEY}")
        return str(frame.text[0]) if frame else None
    if isinstance(audio, MP4):
        values = audio.tags.get(ITUNES_FREEFORM + SPOTIFY_ID_KEY)
        return bytes(values[0]).decode("utf-8") if values else None
    values = audio.tags.get(SPOTIFY_ID_KEY)
    return values[0] if values else None


def tag_in_place_atomically(path: Path, tags: TrackTags, spotify_track_id: str | None) -> None:
    """Write `tags` (and the Spotify id) into `path` through a tagged copy that replaces it in one rename.

    TaggingError when the file cannot be tagged; `path` is then unchanged. The copy's name derives from
    the file's (hidden, `.part` before the extension), so a run killed while writing it leaves nothing the
    next attempt does not overwrite; the import's claim keeps two runs off one file.
    """
    tail = f".part{path.suffix}"
    stem = truncate_utf8(path.stem, MAX_COMPONENT_BYTES - len(".harmony-tags-".encode()) - len(tail.encode()))
    temporary = path.with_name(f".harmony-tags-{stem}{tail}")
    try:
        shutil.copy2(path, temporary)
        write_tags(temporary, tags)
        if spotify_track_id:
            write_spotify_id(temporary, spotify_track_id)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


__all__ = ["SPOTIFY_ID_KEY", "TaggingError", "basic_tags", "read_spotify_id", "tag_in_place_atomically",
           "write_spotify_id"]
