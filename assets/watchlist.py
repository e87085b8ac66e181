"""Watchlist: watched artists and their releases (group `sources`).

watchlist_artists merges HARMONY_WATCHLIST with the artists added by `harmony watch add`.
artist_releases records every album and single of the checked artists; releases first seen after an
artist's first check are new and their tracks (with ISRC, one GET /tracks/{id} each) become demand
for wanted_tracks through artist_release_tracks. Tracks not found on Soulseek stay there with `acquire`
set, so the acquisition retry rules keep trying them. Albums, tracks and artist names come through the
shared Spotify lookup cache (harmony_pipeline.spotify_cache), so acquisition and enrichment reuse them.
"""

from datetime import datetime, timedelta

from dagster import AssetExecutionContext, Config, MaterializeResult, MetadataValue, asset
from pydantic import Field

from assets.common import NETWORK_RETRY, retry_on_short_rate_limit, markdown_table
from harmony_pipeline import storage
from harmony_pipeline.service_errors import escapes_item
from harmony_pipeline import watchlist as rules
from harmony_pipeline.http_cache import HttpCache
from harmony_pipeline.spotify_cache import SpotifyCache
from resources.database import HarmonyDatabase, PipelineSettings
from resources.spotify import SpotifyError, SpotifyNotFound, SpotifyRateLimited, SpotifyResource


@asset(
    group_name="sources",
    retry_policy=NETWORK_RETRY,
    description="Artists watched for new releases: from HARMONY_WATCHLIST and `harmony watch add`.",
)
def watchlist_artists(
    context: AssetExecutionContext, spotify: SpotifyResource, database: HarmonyDatabase, pipeline: PipelineSettings
) -> MaterializeResult:
    with database.connect() as conn, storage.transaction(conn):
        synced = rules.sync_env_artists(conn, pipeline.watchlist, storage.utcnow())
        unnamed = [r[0] for r in conn.execute("SELECT artist_id FROM watchlist_artists WHERE name IS NULL").fetchall()]
    names, unknown = {}, {}
    with SpotifyCache(spotify, HttpCache(database.path)) as lookups:
        with retry_on_short_rate_limit():  # a rate limit that lifts soon: retry after it
            for artist_id in unnamed:
                try:
                    names[artist_id] = lookups.artist(artist_id).get("name")
                except SpotifyNotFound:
                    unknown[artist_id] = "unknown artist (Spotify 404)"
                except SpotifyError as error:
                    if escapes_item(error):
                        raise  # a 5xx, an outage or a short rate limit: the step retries
                    context.log.warning(f"artist {artist_id}: {error}")
    with database.connect() as conn, storage.transaction(conn):
        for artist_id, name in names.items():
            conn.execute("UPDATE watchlist_artists SET name = ? WHERE artist_id = ?", [name, artist_id])
        for artist_id, reason in unknown.items():
            conn.execute("UPDATE watchlist_artists SET last_error = ? WHERE artist_id = ?", [reason, artist_id])
        artists = rules.load_artists(conn)
    preview = [{"artist": a["name"] or a["artist_id"], "source": a["source"], "priority": a["priority"],
                "paused": a["paused"], "last check": a["last_checked_at"], "next due": a["next_due_at"],
                "error": a["last_error"]} for a in artists]
    return MaterializeResult(metadata={
        "artists": len(artists),
        "paused": sum(1 for a in artists if a["paused"]),
        "added_from_env": synced["added"],
        "removed_from_env": synced["removed"],
        "unknown": len(unknown),
        "preview": MetadataValue.md(markdown_table(preview)),
    })


class ArtistReleasesConfig(Config):
    artist_ids: list[str] = Field(
        default=[],
        description="Check only these artists (new_release_sensor sets them); empty: every unpaused artist.")
    new_release_ids: dict[str, list[str]] = Field(
        default={},
        description="Artist id → ids of its releases new_release_sensor found new; such an artist's albums "
                    "are not listed again, only these are read. Artists not named here are listed.")


@asset(
    group_name="sources",
    deps=[watchlist_artists],
    retry_policy=NETWORK_RETRY,
    description="Every album and single of the watched artists; new ones (and the back catalogue on request) "
                "are acquired through artist_release_tracks.",
)
def artist_releases(
    context: AssetExecutionContext,
    config: ArtistReleasesConfig,
    spotify: SpotifyResource,
    database: HarmonyDatabase,
    pipeline: PipelineSettings,
) -> MaterializeResult:
    with database.connect(read_only=True) as conn:
        artists = [a for a in rules.load_artists(conn)
                   if (a["artist_id"] in config.artist_ids if config.artist_ids else not a["paused"])]
        known = rules.known_release_ids(conn, [a["artist_id"] for a in artists])
    if not artists:
        return MaterializeResult(metadata={"artists_checked": 0, "releases_recorded": 0})
    api = spotify.get_api()
    recorded, errors = [], []
    # Answers are saved with each artist's and album's rows, and on leaving the block whatever happens.
    with SpotifyCache(spotify, HttpCache(database.path)) as lookups:
        with retry_on_short_rate_limit():  # a rate limit that lifts soon: retry after it
            for artist in artists:
                artist_id = artist["artist_id"]
                listed = artist_id not in config.new_release_ids
                try:
                    if listed:
                        albums = api.artist_albums(artist_id)
                    else:
                        albums = [lookups.album(album_id) for album_id in config.new_release_ids[artist_id]
                                  if album_id not in known[artist_id]]
                except SpotifyError as error:
                    if escapes_item(error):
                        raise
                    errors.append({"artist": artist["name"] or artist_id, "error": str(error)})
                    _record_error(database, artist_id, str(error), pipeline.watchlist_interval,
                                  error.until if isinstance(error, SpotifyRateLimited) else None)
                    if isinstance(error, SpotifyRateLimited):
                        break
                    continue
                now = storage.utcnow()
                rows = rules.release_rows(artist_id, albums, known[artist_id],
                                          baseline_recorded=artist["baseline_at"] is not None,
                                          with_discography=artist["with_discography"], now=now)
                name = artist["name"] or rules.artist_name_from_albums(artist_id, albums)
                with database.connect() as conn, storage.transaction(conn):
                    lookups.save(conn)
                    storage.upsert(conn, "artist_releases", rows, key=["artist_id", "album_id"], keep=["first_seen_at"])
                    rules.record_check(conn, artist_id, now, now + timedelta(seconds=pipeline.watchlist_interval),
                                       release_count=len(albums) if listed else None, name=name)
                    conn.execute("UPDATE watchlist_artists SET baseline_at = coalesce(baseline_at, ?) "
                                 "WHERE artist_id = ?", [now, artist_id])
                    if rows:
                        storage.record_activity(conn, "watchlist_releases_recorded", {
                            "artist": name or artist_id, "first_check": artist["baseline_at"] is None,
                            "releases": len(rows), "to_acquire": sum(1 for r in rows if r["acquire"])})
                    new = [r for r in rows if r["is_new"]]
                    if new:  # logged where the release is recorded, so once whatever happens to the run
                        storage.record_activity(conn, "new_release_detected", {
                            "artist": name or artist_id, "artist_id": artist_id,
                            "releases": [f"{r['name']} ({r['album_type']}, {r['release_date']})" for r in new]})
                recorded += [{"artist": name or artist_id, **r} for r in rows]

        artist_ids = [a["artist_id"] for a in artists]
        tracks_added, albums_read, unread, retry_at = _read_tracks_to_acquire(context, lookups, database, artist_ids)
    if unread:
        retry_at = retry_at or storage.utcnow() + rules.error_delay(1, pipeline.watchlist_interval)
        with database.connect() as conn:
            rules.recheck_unread_releases(conn, artist_ids, retry_at)
    with database.connect(read_only=True) as conn:
        totals = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE is_new), count(*) FILTER (WHERE acquire) FROM artist_releases"
        ).fetchone()
    preview = [{"artist": r["artist"], "release": r["name"], "type": r["album_type"], "date": r["release_date"],
                "new": r["is_new"], "acquire": r["acquire"]} for r in recorded]
    return MaterializeResult(metadata={
        "artists_checked": len(artists) - len(errors),
        "releases_recorded": len(recorded),
        "new_releases": sum(1 for r in recorded if r["is_new"]),
        "releases_to_acquire": sum(1 for r in recorded if r["acquire"]),
        "albums_read": albums_read,
        "tracks_added": tracks_added,
        "albums_unread": unread,
        "errors": len(errors),
        "spotify_requests": api.requests_made,
        "spotify_cache_hits": lookups.hits,
        "known_releases_total": totals[0],
        "new_releases_total": totals[1],
        "acquired_releases_total": totals[2],
        "recorded": MetadataValue.md(markdown_table(preview)),
        "error_list": MetadataValue.md(markdown_table(errors)),
    })


def _record_error(database: HarmonyDatabase, artist_id: str, error: str, interval: int,
                  not_before: datetime | None) -> None:
    with database.connect() as conn:
        rules.record_check_error(conn, artist_id, storage.utcnow(), interval, error, not_before=not_before)


def _read_tracks_to_acquire(context, lookups: SpotifyCache, database: HarmonyDatabase,
                            artist_ids: list[str]) -> tuple[int, int, int, datetime | None]:
    """Tracks (with ISRC) of every release to acquire whose tracks are not read yet, album by album.

    Albums and full tracks come through the lookup cache and are saved album by album, so a retry after
    a failure asks Spotify only for what it does not have yet. Returns (tracks added, albums read,
    albums still unread, end of the rate limit that stopped the reading or None).
    """
    with database.connect(read_only=True) as conn:
        pending = storage.fetch_dicts(
            conn, "SELECT artist_id, album_id FROM artist_releases WHERE acquire AND tracks_read_at IS NULL "
            "AND artist_id IN (SELECT unnest(?)) ORDER BY first_seen_at, album_id", [artist_ids])
    tracks_added = albums_read = 0
    with retry_on_short_rate_limit():  # a rate limit that lifts soon: retry after it
        for index, release in enumerate(pending):
            try:
                album = lookups.album(release["album_id"])
                tracks = []
                for track_id in [t["id"] for t in album["tracks"]["items"] if t.get("id")]:
                    try:
                        tracks.append(lookups.track(track_id))
                    except SpotifyNotFound:
                        context.log.warning(f"release {release['album_id']}: track {track_id} is gone from Spotify")
            except SpotifyNotFound:
                # Withdrawn since it was listed: settled without tracks, or every tick would ask for it again.
                context.log.warning(f"release {release['album_id']} is gone from Spotify; nothing to acquire")
                with database.connect() as conn, storage.transaction(conn):
                    lookups.save(conn)
                    conn.execute("UPDATE artist_releases SET tracks_read_at = ?, acquire = FALSE "
                                 "WHERE artist_id = ? AND album_id = ?",
                                 [storage.utcnow(), release["artist_id"], release["album_id"]])
                continue
            except SpotifyError as error:
                if escapes_item(error):
                    raise
                context.log.warning(f"release {release['album_id']}: {error}; tracks read by the next run")
                if isinstance(error, SpotifyRateLimited):
                    return tracks_added, albums_read, len(pending) - index, error.until
                continue
            now = storage.utcnow()
            rows = [rules.track_row(release["artist_id"], album, track, acquire=True, now=now) for track in tracks]
            with database.connect() as conn, storage.transaction(conn):
                lookups.save(conn)
                storage.upsert(conn, "artist_release_tracks", rows, key=["artist_id", "spotify_track_id"],
                               keep=["first_seen_at"])
                conn.execute("UPDATE artist_releases SET tracks_read_at = ? WHERE artist_id = ? AND album_id = ?",
                             [now, release["artist_id"], release["album_id"]])
            tracks_added += len(rows)
            albums_read += 1
    return tracks_added, albums_read, len(pending) - albums_read, None


def wiring(settings, workers):
    """Watchlist assets, the watchlist job (releases through acquisition) and new_release_sensor."""
    from dagster import AssetSelection, define_asset_job

    from harmony_pipeline.wiring import Wiring
    from sensors.watchlist import build_new_release_sensor

    job = define_asset_job(
        "watchlist_job",
        selection=AssetSelection.assets("artist_releases", "wanted_tracks", "soulseek_matches", "downloads",
                                        "library_tracks"),
        description="Record the checked artists' releases and acquire the new ones.",
        # deploy/dagster.yaml's queue runs one at a time: an artist is never in two runs at once.
        tags={"harmony/queue": "watchlist"},
    )
    return Wiring(
        assets=[watchlist_artists, artist_releases],
        jobs=[job],
        sensors=[build_new_release_sensor(job, workers, settings.sensor_interval_seconds)],
    )
