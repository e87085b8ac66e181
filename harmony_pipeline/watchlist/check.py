"""The watchlist's checks over the Spotify client and DuckDB: names of added artists, each due artist's
releases recorded (one transaction per artist), and the tracks of the releases to acquire read album by
album. Albums, tracks and artist names come through the shared Spotify lookup cache
(harmony_pipeline.spotify.cache), saved with each artist's and album's rows.

Rate limits that lift soon, outages and 5xx answers escape to the caller (the step retries); any other
Spotify error delays only the artist or release it concerns.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from harmony_pipeline import storage
from harmony_pipeline.service_errors import escapes_item
from harmony_pipeline.spotify.cache import SpotifyCache
from harmony_pipeline.watchlist import releases as rules
from harmony_pipeline.spotify.client import SpotifyError, SpotifyNotFound, SpotifyRateLimited


def name_artists(database, lookups: SpotifyCache, pipeline_watchlist: Sequence[str], log) -> tuple[dict, dict]:
    """Sync HARMONY_WATCHLIST's artists into the table and fill in the names it lacks; (synced, unknown)."""
    with database.connect() as conn, storage.transaction(conn):
        synced = rules.sync_env_artists(conn, pipeline_watchlist, storage.utcnow())
        unnamed = [r[0] for r in conn.execute("SELECT artist_id FROM watchlist_artists WHERE name IS NULL").fetchall()]
    names, unknown = {}, {}
    for artist_id in unnamed:
        try:
            names[artist_id] = lookups.artist(artist_id).get("name")
        except SpotifyNotFound:
            unknown[artist_id] = "unknown artist (Spotify 404)"
        except SpotifyError as error:
            if escapes_item(error):
                raise  # a 5xx, an outage or a short rate limit: the step retries
            log.warning(f"artist {artist_id}: {error}")
    with database.connect() as conn, storage.transaction(conn):
        for artist_id, name in names.items():
            conn.execute("UPDATE watchlist_artists SET name = ? WHERE artist_id = ?", [name, artist_id])
        for artist_id, reason in unknown.items():
            conn.execute("UPDATE watchlist_artists SET last_error = ? WHERE artist_id = ?", [reason, artist_id])
    return synced, unknown


def artists_to_check(database, artist_ids: Sequence[str]) -> tuple[list[dict], dict[str, set[str]]]:
    """The named artists (none named: every unpaused one) and the release ids already known of each."""
    with database.connect(read_only=True) as conn:
        artists = [a for a in rules.load_artists(conn)
                   if (a["artist_id"] in artist_ids if artist_ids else not a["paused"])]
        return artists, rules.known_release_ids(conn, [a["artist_id"] for a in artists])


@dataclass
class CheckReport:
    recorded: list[dict] = field(default_factory=list)  # artist_releases rows with the artist's name
    errors: list[dict] = field(default_factory=list)  # {artist, error}


def record_releases(database, lookups: SpotifyCache, artist: Mapping, albums: list[dict], known: set[str],
                    listed: bool, interval: int) -> list[dict]:
    """Record one artist's albums not known yet and its successful check, in one transaction."""
    artist_id = artist["artist_id"]
    now = storage.utcnow()
    rows = rules.release_rows(artist_id, albums, known, baseline_recorded=artist["baseline_at"] is not None,
                              with_discography=artist["with_discography"], now=now)
    name = artist["name"] or rules.artist_name_from_albums(artist_id, albums)
    with database.connect() as conn, storage.transaction(conn):
        storage.upsert(conn, "artist_releases", rows, key=["artist_id", "album_id"], keep=["first_seen_at"])
        rules.record_check(conn, artist_id, now, now + timedelta(seconds=interval),
                           release_count=len(albums) if listed else None, name=name)
        conn.execute("UPDATE watchlist_artists SET baseline_at = coalesce(baseline_at, ?) WHERE artist_id = ?",
                     [now, artist_id])
        if rows:
            storage.record_activity(conn, "watchlist_releases_recorded", {
                "artist": name or artist_id, "first_check": artist["baseline_at"] is None,
                "releases": len(rows), "to_acquire": sum(1 for r in rows if r["acquire"])})
        new = [r for r in rows if r["is_new"]]
        if new:  # logged where the release is recorded, so once whatever happens to the run
            storage.record_activity(conn, "new_release_detected", {
                "artist": name or artist_id, "artist_id": artist_id,
                "releases": [f"{r['name']} ({r['album_type']}, {r['release_date']})" for r in new]})
    return [{"artist": name or artist_id, **r} for r in rows]


def check_artist_releases(api, lookups: SpotifyCache, database, artists: Sequence[Mapping], known: Mapping[str, set[str]],
                  new_release_ids: Mapping[str, list[str]], interval: int) -> CheckReport:
    """List each artist's albums (or read only the ones a sensor found new) and record the unknown ones."""
    report = CheckReport()
    for artist in artists:
        artist_id = artist["artist_id"]
        listed = artist_id not in new_release_ids
        try:
            albums = api.artist_albums(artist_id) if listed else [
                lookups.album(album_id) for album_id in new_release_ids[artist_id] if album_id not in known[artist_id]]
        except SpotifyError as error:
            if escapes_item(error):
                raise
            report.errors.append({"artist": artist["name"] or artist_id, "error": str(error)})
            limited = isinstance(error, SpotifyRateLimited)
            with database.connect() as conn:
                rules.record_check_error(conn, artist_id, storage.utcnow(), interval, str(error),
                                         not_before=error.until if limited else None)
            if limited:
                break
            continue
        report.recorded += record_releases(database, lookups, artist, albums, known[artist_id], listed, interval)
    return report


@dataclass
class TrackReading:
    tracks_added: int = 0
    albums_read: int = 0
    unread: int = 0
    retry_at: datetime | None = None  # the end of the rate limit that stopped the reading


def _settle_gone_release(database, lookups: SpotifyCache, release: Mapping) -> None:
    # Withdrawn since it was listed: settled without tracks, or every tick would ask for it again.
    with database.connect() as conn, storage.transaction(conn):
        conn.execute("UPDATE artist_releases SET tracks_read_at = ?, acquire = FALSE WHERE artist_id = ? AND album_id = ?",
                     [storage.utcnow(), release["artist_id"], release["album_id"]])


def read_tracks_to_acquire(lookups: SpotifyCache, database, artist_ids: list[str], log) -> TrackReading:
    """Tracks (with ISRC) of every release to acquire whose tracks are not read yet, album by album.

    Albums and full tracks come through the lookup cache and are saved album by album, so a retry after
    a failure asks Spotify only for what it does not have yet.
    """
    with database.connect(read_only=True) as conn:
        pending = storage.fetch_dicts(
            conn, "SELECT artist_id, album_id FROM artist_releases WHERE acquire AND tracks_read_at IS NULL "
            "AND artist_id IN (SELECT unnest(?)) ORDER BY first_seen_at, album_id", [artist_ids])
    reading = TrackReading()
    for index, release in enumerate(pending):
        try:
            album = lookups.album(release["album_id"])
            tracks = []
            for track_id in [t["id"] for t in album["tracks"]["items"] if t.get("id")]:
                try:
                    tracks.append(lookups.track(track_id))
                except SpotifyNotFound:
                    log.warning(f"release {release['album_id']}: track {track_id} is gone from Spotify")
        except SpotifyNotFound:
            log.warning(f"release {release['album_id']} is gone from Spotify; nothing to acquire")
            _settle_gone_release(database, lookups, release)
            continue
        except SpotifyError as error:
            if escapes_item(error):
                raise
            log.warning(f"release {release['album_id']}: {error}; tracks read by the next run")
            if isinstance(error, SpotifyRateLimited):
                reading.unread, reading.retry_at = len(pending) - index, error.until
                return reading
            continue
        now = storage.utcnow()
        rows = [rules.track_row(release["artist_id"], album, track, acquire=True, now=now) for track in tracks]
        with database.connect() as conn, storage.transaction(conn):
            storage.upsert(conn, "artist_release_tracks", rows, key=["artist_id", "spotify_track_id"],
                           keep=["first_seen_at"])
            conn.execute("UPDATE artist_releases SET tracks_read_at = ? WHERE artist_id = ? AND album_id = ?",
                         [now, release["artist_id"], release["album_id"]])
        reading.tracks_added += len(rows)
        reading.albums_read += 1
    reading.unread = len(pending) - reading.albums_read
    return reading


def recheck_unread(database, artist_ids: list[str], reading: TrackReading, interval: int) -> None:
    """Artists left with unread releases are checked again when the limit ends, or after the error delay."""
    if reading.unread:
        retry_at = reading.retry_at or storage.utcnow() + rules.error_delay(1, interval)
        with database.connect() as conn:
            rules.recheck_unread_releases(conn, artist_ids, retry_at)


def release_totals(database) -> dict[str, int]:
    with database.connect(read_only=True) as conn:
        known, new, acquired = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE is_new), count(*) FILTER (WHERE acquire) FROM artist_releases"
        ).fetchone()
    return {"known_releases_total": known, "new_releases_total": new, "acquired_releases_total": acquired,
            "dagster/row_count": known}
