"""track_lyrics' work: LRCLIB records looked up under every artist form, the best one written as a .lrc
sidecar (synced) and into the tags (plain)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import mutagen

from harmony_pipeline.enrichment.batch import (
    FAILURE_COOLDOWN,
    MISS_COOLDOWN,
    check_audio_file,
    library_file,
    track_artists,
)
from harmony_pipeline.enrichment.lyrics import LyricsKind, LyricsRecord, artist_forms, choose_record, lyrics_outcome, write_lrc_sidecar
from harmony_pipeline.enrichment.tagging import TaggingError, TrackTags, write_tags
from harmony_pipeline.http_cache import ServiceError
from harmony_pipeline.service_errors import escapes_item
from harmony_pipeline.enrichment.lrclib import LrclibClient

def file_length_s(path: Path, row: dict) -> float | None:
    """The file's own length (what a player shows), else Spotify's duration."""
    try:
        audio = mutagen.File(path)
    except mutagen.MutagenError:
        audio = None
    if audio is not None and audio.info and audio.info.length:
        return float(audio.info.length)
    return row["duration_ms"] / 1000 if row.get("duration_ms") else None


def find_lyrics(row: dict, length_s: float | None, lrclib: LrclibClient) -> LyricsRecord | None:
    """get-cached, then get, each under every artist form (all credited artists, then each alone),
    then search by the main artist; a synced (or instrumental) record ends the hunt early."""
    artists, title, album = track_artists(row), row["title"], row.get("album")
    records: list[LyricsRecord] = []
    found = None
    for lookup in (lrclib.get_cached, lrclib.get):
        for artist in artist_forms(artists):
            found = lookup(title, artist, album, length_s)
            if found:
                records.append(LyricsRecord.from_json(found))
                break
        if found:
            break
    chosen = choose_record(records, artists, title, album, length_s)
    if chosen and (chosen.synced_lyrics or chosen.instrumental):
        return chosen
    # Search matches the artist's words anywhere in the record's artist: the main artist alone finds
    # records stored under every credited artist as well as under the main one.
    records += [LyricsRecord.from_json(record) for record in lrclib.search(title, artists[0])]
    return choose_record(records, artists, title, album, length_s)


def lyrics_for_track(row: dict, lrclib: LrclibClient, library: Path,
                     now: datetime) -> tuple[dict, str | None]:
    """Find and write the track's lyrics; (track_lyrics row, .lrc text or None)."""
    path = library_file(library, row)
    result: dict[str, Any] = {"wanted_key": row["wanted_key"], "path": row["path"], "updated_at": now,
                              "reason": None, "next_attempt_at": None}
    try:
        check_audio_file(path)
        length_s = file_length_s(path, row)
        result["duration_s"] = length_s
        record = find_lyrics(row, length_s, lrclib)
        outcome = lyrics_outcome(record, ", ".join(track_artists(row)), row["title"], row.get("album"), length_s)
        if outcome.kind == LyricsKind.SYNCED:
            sidecar = write_lrc_sidecar(path, outcome.lrc_text)
            result["lrc_path"] = sidecar.relative_to(library).as_posix()
        if outcome.plain_text:  # USLT / LYRICS / ©lyr, for players that do not read a .lrc (synced too)
            write_tags(path, TrackTags(plain_lyrics=outcome.plain_text))
    except (TaggingError, ServiceError, OSError) as error:
        if escapes_item(error):
            raise
        return {**result, "status": "failed", "reason": str(error), "next_attempt_at": now + FAILURE_COOLDOWN}, None
    result.update(status=outcome.kind.value, lrclib_id=outcome.record_id)
    if outcome.kind == LyricsKind.MISSING:
        result.update(reason="no matching LRCLIB record", next_attempt_at=now + MISS_COOLDOWN)
    return result, outcome.lrc_text


LYRICS_COLUMNS = (
    "wanted_key", "path", "status", "reason", "lrclib_id", "lrc_path", "duration_s", "next_attempt_at", "updated_at",
)

