"""track_metadata's work: every tag of a track gathered (Spotify, MusicBrainz credits) and written in one save."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harmony_pipeline.enrichment.batch import FAILURE_COOLDOWN, check_audio_file, library_file, track_artists, unique
from harmony_pipeline.enrichment.credits import MAX_GENRES, Credits, extract_credits, extract_genres
from harmony_pipeline.enrichment.lookups import Lookups, album_upc
from harmony_pipeline.enrichment.tagging import TaggingError, TrackTags, write_tags
from harmony_pipeline.http_cache import ServiceError
from harmony_pipeline.service_errors import escapes_item
from harmony_pipeline.spotify.client import SpotifyError

COPYRIGHT_SYMBOLS = {"P": "℗", "C": "©"}


@dataclass(frozen=True)
class Numbering:
    track_total: int | None
    disc_number: int | None
    disc_total: int | None


def numbering(row: dict, album: dict | None) -> Numbering:
    """Track total of the track's own disc and the number of discs, from the album's track list."""
    items = ((album or {}).get("tracks") or {}).get("items") or []
    disc = row.get("disc_number") or 1
    if not items:
        return Numbering(row.get("album_total_tracks"), row.get("disc_number"), None)
    discs = [item.get("disc_number") or 1 for item in items]
    return Numbering(discs.count(disc) or None, disc, max(discs))


def copyright_text(album: dict | None) -> str:
    """The album's ℗ (sound recording) line, then its © line, each with its symbol."""
    lines = []
    for kind in ("P", "C"):
        for entry in (album or {}).get("copyrights") or []:
            text = (entry.get("text") or "").strip()
            if entry.get("type") != kind or not text:
                continue
            if not text.startswith(tuple(COPYRIGHT_SYMBOLS.values())) and text[:3].upper() not in ("(P)", "(C)"):
                text = f"{COPYRIGHT_SYMBOLS[kind]} {text}"
            lines.append(text)
    return "; ".join(unique(lines))


def spotify_genres(row: dict, album: dict | None, lookups: Lookups) -> list[str]:
    """Genres of the track's Spotify artists (one cached request per artist)."""
    items = ((album or {}).get("tracks") or {}).get("items") or []
    this_track = next((item for item in items if item.get("id") == row.get("spotify_track_id")), None)
    artists = (this_track or album or {}).get("artists") or []
    genres = []
    for artist in artists:
        if artist.get("id"):
            genres += (lookups.spotify_artist(artist["id"]) or {}).get("genres") or []
    return unique(genres)[:MAX_GENRES]


def gather_tags(row: dict, lookups: Lookups) -> TrackTags:
    """Every tag of the track: Spotify data at hand, album and artist lookups, MusicBrainz credits."""
    album = lookups.spotify_album(row.get("album_id"))
    recording, release = lookups.musicbrainz_match(row, album_upc(album))
    credits = Credits()
    recording_id = release_id = None
    mb = lookups.musicbrainz
    if recording is not None:
        recording_id = recording["id"]
        full_recording = mb.recording(recording_id) or recording
        full_release = mb.release(release["id"]) if release else None
        release_id = release["id"] if full_release else None
        credits = extract_credits(full_recording, full_release)
    genres = spotify_genres(row, album, lookups) or credits.genres
    if not genres and recording is not None:
        credited = [part.get("artist") or {} for part in recording.get("artist-credit") or []]
        if credited and credited[0].get("id"):
            genres = extract_genres([mb.artist(credited[0]["id"]) or {}])
    numbers = numbering(row, album)
    artists = track_artists(row)
    return TrackTags(
        title=row["title"],
        artist=", ".join(artists),
        artists=artists,
        album=row.get("album") or "",
        album_artist=row.get("album_artist") or "",
        track_number=row.get("track_number"),
        track_total=numbers.track_total,
        disc_number=numbers.disc_number,
        disc_total=numbers.disc_total,
        date=row.get("release_date") or "",
        genres=genres,
        composers=credits.composers,
        lyricists=credits.lyricists,
        producers=credits.producers,
        isrc=row.get("isrc") or "",
        copyright=copyright_text(album),
        label=credits.label or (album or {}).get("label") or "",
        musicbrainz_recording_id=recording_id,
        musicbrainz_release_id=release_id,
    )


def tag_track(row: dict, lookups: Lookups, library: Path) -> dict:
    """Gather and write the track's tags in one save; the track_metadata row of the outcome."""
    now = lookups.cache.now()
    result: dict[str, Any] = {"wanted_key": row["wanted_key"], "path": row["path"], "updated_at": now}
    path = library_file(library, row)
    lookups.take_spotify_gap()  # only what this track misses counts
    try:
        check_audio_file(path)
        tags = gather_tags(row, lookups)
        write_tags(path, tags)
    except (TaggingError, ServiceError, SpotifyError, OSError) as error:
        if escapes_item(error):
            raise  # a 5xx or an outage: the step's retry policy tries again, not a day's cool-down
        return {**result, "status": "failed", "reason": str(error), "next_attempt_at": now + FAILURE_COOLDOWN}
    spotify_gap = lookups.take_spotify_gap()
    if spotify_gap:  # written without genres / copyright / disc totals: a later run completes the tags
        result.update(status="partial", reason=f"tagged without Spotify ({spotify_gap})",
                      next_attempt_at=now + FAILURE_COOLDOWN)
    else:
        result.update(status="tagged", reason=None, next_attempt_at=None)
    return {
        **result, "genres": tags.genres, "composers": tags.composers,
        "lyricists": tags.lyricists, "producers": tags.producers, "isrc": tags.isrc or None,
        "copyright": tags.copyright or None, "label": tags.label or None,
        "musicbrainz_recording_id": tags.musicbrainz_recording_id,
        "musicbrainz_release_id": tags.musicbrainz_release_id, "fields_written": tags.filled_fields(),
    }


METADATA_COLUMNS = (
    "wanted_key", "path", "status", "reason", "genres", "composers", "lyricists", "producers", "isrc",
    "copyright", "label", "musicbrainz_recording_id", "musicbrainz_release_id", "fields_written",
    "next_attempt_at", "updated_at",
)

