"""Watchlist rules: which artists are due, which releases are new, what a release's tracks look like.

The original treated every release dated after the last check as new (so the first scan queued the
whole discography, and year-precision dates hid releases). Here a release is new when its Spotify id
was not known before; the first check of an artist records its discography as known and acquires it
only when the artist was added with `--with-discography`.

The functions taking a DuckDB connection do short SQL only (no network); the caller opens the
connection around them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import duckdb

from harmony_pipeline import storage

ERROR_BACKOFF_BASE = timedelta(minutes=15)
ERROR_BACKOFF_MAX_DOUBLINGS = 6


# --- pure rules --------------------------------------------------------------------------------------
def is_due(artist: Mapping[str, Any], now: datetime) -> bool:
    return not artist["paused"] and (artist["next_due_at"] is None or artist["next_due_at"] <= now)


def due_artists(artists: Iterable[Mapping[str, Any]], now: datetime, limit: int) -> list[Mapping[str, Any]]:
    """Unpaused artists whose next check is due: higher priority first, then never checked, then the
    longest waiting; at most `limit` of them."""
    due = [a for a in artists if is_due(a, now)]
    due.sort(key=lambda a: (
        -(a["priority"] or 0),
        a["last_checked_at"] is not None,
        a["next_due_at"] or datetime.min.replace(tzinfo=now.tzinfo),
        a["artist_id"],
    ))
    return due[:limit]


def new_release_ids(albums: Sequence[Mapping[str, Any]], known_ids: Iterable[str]) -> list[str]:
    """Ids of the albums (in Spotify's order, without repeats) that are not known yet."""
    known = set(known_ids)
    found: list[str] = []
    for album in albums:
        album_id = album.get("id")
        if album_id and album_id not in known and album_id not in found:
            found.append(album_id)
    return found


def release_rows(
    artist_id: str,
    albums: Sequence[Mapping[str, Any]],
    known_ids: Iterable[str],
    *,
    baseline_recorded: bool,
    with_discography: bool,
    now: datetime,
) -> list[dict[str, Any]]:
    """artist_releases rows for the albums not known yet.

    Before the baseline (first check) they are the existing discography: known, acquired only with
    `with_discography`. After it every unknown id is a new release, acquired whatever its date.
    """
    by_id = {a["id"]: a for a in albums if a.get("id")}
    return [
        {
            "artist_id": artist_id,
            "album_id": album_id,
            "name": by_id[album_id].get("name"),
            "album_type": by_id[album_id].get("album_type"),
            "release_date": by_id[album_id].get("release_date"),
            "release_date_precision": by_id[album_id].get("release_date_precision"),
            "total_tracks": by_id[album_id].get("total_tracks"),
            "first_seen_at": now,
            "is_new": baseline_recorded,
            "acquire": baseline_recorded or with_discography,
            "tracks_read_at": None,
        }
        for album_id in new_release_ids(albums, known_ids)
    ]


def artist_name_from_albums(artist_id: str, albums: Iterable[Mapping[str, Any]]) -> str | None:
    """The artist's name as album credits spell it (saves a GET /artists/{id})."""
    for album in albums:
        for credited in album.get("artists") or []:
            if credited.get("id") == artist_id and credited.get("name"):
                return credited["name"]
    return None


def error_delay(error_count: int, interval_seconds: int) -> timedelta:
    """How long a failing artist waits before its next check: 15 min doubling, at most the interval."""
    doublings = min(max(error_count - 1, 0), ERROR_BACKOFF_MAX_DOUBLINGS)
    return min(ERROR_BACKOFF_BASE * 2**doublings, timedelta(seconds=interval_seconds))


def track_row(artist_id: str, album: Mapping[str, Any], track: Mapping[str, Any], *, acquire: bool,
              now: datetime) -> dict[str, Any]:
    """One artist_release_tracks row from a full album object and a full track object (with ISRC)."""
    names = [a.get("name") for a in track.get("artists") or [] if a.get("name")]
    album_artists = [a.get("name") for a in album.get("artists") or [] if a.get("name")]
    return {
        "artist_id": artist_id,
        "spotify_track_id": track["id"],
        "isrc": (track.get("external_ids") or {}).get("isrc"),
        "title": track.get("name") or "",
        "artist": names[0] if names else (album_artists[0] if album_artists else ""),
        "artists": names,
        "album": album.get("name"),
        "album_id": album["id"],
        "album_artist": album_artists[0] if album_artists else None,
        "track_number": track.get("track_number"),
        "disc_number": track.get("disc_number"),
        "album_total_tracks": album.get("total_tracks"),
        "release_date": album.get("release_date"),
        "duration_ms": track.get("duration_ms"),
        "acquire": acquire,
        "first_seen_at": now,
    }


# --- the watchlist_artists table -----------------------------------------------------------------
def load_artists(conn: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    return storage.fetch_dicts(conn, "SELECT * FROM watchlist_artists ORDER BY priority DESC, artist_id")


def get_artist(conn: duckdb.DuckDBPyConnection, artist_id: str) -> dict[str, Any] | None:
    rows = storage.fetch_dicts(conn, "SELECT * FROM watchlist_artists WHERE artist_id = ?", [artist_id])
    return rows[0] if rows else None


def sync_env_artists(conn: duckdb.DuckDBPyConnection, env_ids: Sequence[str], now: datetime) -> dict[str, int]:
    """Make the env-sourced rows match HARMONY_WATCHLIST (CLI-added artists are left alone)."""
    existing = dict(conn.execute("SELECT artist_id, source FROM watchlist_artists").fetchall())
    added = [artist_id for artist_id in env_ids if artist_id not in existing]
    dropped = [artist_id for artist_id, source in existing.items() if source == "env" and artist_id not in env_ids]
    for artist_id in added:
        insert_artist(conn, artist_id, name=None, source="env", now=now)
    for artist_id in dropped:
        remove_artist(conn, artist_id)
        storage.record_activity(conn, "watchlist_artist_removed", {"artist_id": artist_id, "source": "env"})
    return {"added": len(added), "removed": len(dropped)}


def remove_artist(conn: duckdb.DuckDBPyConnection, artist_id: str) -> None:
    """Forget an artist with its releases: their tracks stop being wanted (wanted_tracks withdraws them)
    and adding the artist again starts with a fresh baseline."""
    for table in ("artist_release_tracks", "artist_releases", "watchlist_artists"):
        conn.execute(f"DELETE FROM {table} WHERE artist_id = ?", [artist_id])


def insert_artist(conn: duckdb.DuckDBPyConnection, artist_id: str, *, name: str | None, source: str,
                  now: datetime, priority: int = 0, paused: bool = False, with_discography: bool = False) -> None:
    conn.execute(
        "INSERT INTO watchlist_artists (artist_id, name, source, added_at, priority, paused, with_discography) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        [artist_id, name, source, now, priority, paused, with_discography],
    )


def record_check(conn: duckdb.DuckDBPyConnection, artist_id: str, now: datetime, next_due_at: datetime,
                 *, release_count: int | None, name: str | None) -> None:
    """A successful check: errors cleared, name filled in if unknown, release count kept when None."""
    conn.execute(
        "UPDATE watchlist_artists SET last_checked_at = ?, next_due_at = ?, "
        "release_count = coalesce(?, release_count), error_count = 0, last_error = NULL, name = coalesce(name, ?) "
        "WHERE artist_id = ?",
        [now, next_due_at, release_count, name, artist_id],
    )


def recheck_unread_releases(conn: duckdb.DuckDBPyConnection, artist_ids: Sequence[str], at: datetime) -> None:
    """Artists left with releases whose tracks could not be read are checked again at `at` at the latest."""
    conn.execute(
        "UPDATE watchlist_artists SET next_due_at = least(coalesce(next_due_at, ?), ?) WHERE artist_id IN ("
        " SELECT artist_id FROM artist_releases WHERE acquire AND tracks_read_at IS NULL"
        " AND artist_id IN (SELECT unnest(?)))",
        [at, at, list(artist_ids)])


def record_check_error(conn: duckdb.DuckDBPyConnection, artist_id: str, now: datetime, interval_seconds: int,
                       error: str, *, not_before: datetime | None = None) -> datetime:
    """A failed check: only this artist waits (back-off, or until a rate limit ends); returns when."""
    count = conn.execute(
        "SELECT error_count FROM watchlist_artists WHERE artist_id = ?", [artist_id]).fetchone()
    error_count = (count[0] if count else 0) + 1
    next_due = now + error_delay(error_count, interval_seconds)
    if not_before is not None:
        next_due = max(next_due, not_before)
    conn.execute(
        "UPDATE watchlist_artists SET last_checked_at = ?, next_due_at = ?, error_count = ?, last_error = ? "
        "WHERE artist_id = ?",
        [now, next_due, error_count, error, artist_id],
    )
    return next_due


def known_release_ids(conn: duckdb.DuckDBPyConnection, artist_ids: Sequence[str]) -> dict[str, set[str]]:
    known: dict[str, set[str]] = {artist_id: set() for artist_id in artist_ids}
    for artist_id, album_id in conn.execute(
        "SELECT artist_id, album_id FROM artist_releases WHERE artist_id IN (SELECT unnest(?))", [list(artist_ids)]
    ).fetchall():
        known[artist_id].add(album_id)
    return known


def artists_with_unread_releases(conn: duckdb.DuckDBPyConnection, artist_ids: Sequence[str]) -> set[str]:
    """Artists with a release to acquire whose tracks could not be read yet (retried by the next run)."""
    return {row[0] for row in conn.execute(
        "SELECT DISTINCT artist_id FROM artist_releases WHERE acquire AND tracks_read_at IS NULL "
        "AND artist_id IN (SELECT unnest(?))", [list(artist_ids)]).fetchall()}
