"""Watchlist: watched artists and their releases (group `sources`).

watchlist_artists merges HARMONY_WATCHLIST with the artists added by `harmony watch add`.
artist_releases records every album and single of the checked artists; releases first seen after an
artist's first check are new and their tracks (with ISRC, one GET /tracks/{id} each) become demand
for wanted_tracks through artist_release_tracks. Tracks not found on Soulseek stay there with `acquire`
set, so the acquisition retry rules keep trying them. Albums, tracks and artist names come through the
shared Spotify lookup cache (harmony_pipeline.spotify.cache), so acquisition and enrichment reuse them.
"""

from dagster import AssetExecutionContext, Config, MaterializeResult, asset
from pydantic import Field

from assets.common import NETWORK_RETRY, retry_on_short_rate_limit, row_count, table_preview
from harmony_pipeline.http_cache import HttpCache
from harmony_pipeline.spotify.cache import SpotifyCache
from harmony_pipeline.watchlist import releases as rules
from harmony_pipeline.watchlist.check import (
    artists_to_check,
    check_artist_releases,
    name_artists,
    read_tracks_to_acquire,
    recheck_unread,
    release_totals,
)
from resources.database import HarmonyDatabase, PipelineSettings
from resources.spotify import SpotifyResource

OWNERS = ["team:sources"]


@asset(
    group_name="sources",
    retry_policy=NETWORK_RETRY,
    kinds={"spotify", "duckdb"},
    owners=OWNERS,
    tags={"concern": "watchlist"},
    description="Artists watched for new releases: from HARMONY_WATCHLIST and `harmony watch add`.",
)
def watchlist_artists(
    context: AssetExecutionContext, spotify: SpotifyResource, database: HarmonyDatabase, pipeline: PipelineSettings
) -> MaterializeResult:
    with SpotifyCache(spotify, HttpCache(database.path)) as lookups:
        with retry_on_short_rate_limit():  # a rate limit that lifts soon: retry after it
            synced, unknown = name_artists(database, lookups, pipeline.watchlist, context.log)
    with database.connect(read_only=True) as conn:
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
        "preview": table_preview(preview),
        **row_count(database, "watchlist_artists"),
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
    kinds={"spotify", "duckdb"},
    owners=OWNERS,
    tags={"concern": "watchlist"},
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
    artists, known = artists_to_check(database, config.artist_ids)
    if not artists:
        return MaterializeResult(metadata={"artists_checked": 0, "releases_recorded": 0})
    api = spotify.get_api()
    artist_ids = [a["artist_id"] for a in artists]
    # Answers are saved with each artist's and album's rows, and on leaving the block whatever happens.
    with SpotifyCache(spotify, HttpCache(database.path)) as lookups, retry_on_short_rate_limit():
        report = check_artist_releases(api, lookups, database, artists, known, config.new_release_ids,
                               pipeline.watchlist_interval)
        reading = read_tracks_to_acquire(lookups, database, artist_ids, context.log)
    recheck_unread(database, artist_ids, reading, pipeline.watchlist_interval)
    recorded = report.recorded
    preview = [{"artist": r["artist"], "release": r["name"], "type": r["album_type"], "date": r["release_date"],
                "new": r["is_new"], "acquire": r["acquire"]} for r in recorded]
    return MaterializeResult(metadata={
        "artists_checked": len(artists) - len(report.errors),
        "releases_recorded": len(recorded),
        "new_releases": sum(1 for r in recorded if r["is_new"]),
        "releases_to_acquire": sum(1 for r in recorded if r["acquire"]),
        "albums_read": reading.albums_read,
        "tracks_added": reading.tracks_added,
        "albums_unread": reading.unread,
        "errors": len(report.errors),
        "spotify_requests": api.requests_made,
        "spotify_cache_hits": lookups.hits,
        **release_totals(database),
        "recorded": table_preview(preview),
        "error_list": table_preview(report.errors),
    })


def wiring(settings, workers):
    """Watchlist assets, the watchlist job (releases through acquisition) and new_release_sensor."""
    from dagster import AssetSelection, Definitions, define_asset_job

    from sensors.watchlist import build_new_release_sensor

    job = define_asset_job(
        "watchlist_job",
        selection=AssetSelection.assets("artist_releases", "wanted_tracks", "soulseek_matches", "downloads",
                                        "library_tracks"),
        description="Record the checked artists' releases and acquire the new ones.",
        # deploy/dagster.yaml's queue runs one at a time: an artist is never in two runs at once.
        tags={"harmony/queue": "watchlist"},
    )
    return Definitions(
        assets=[watchlist_artists, artist_releases],
        jobs=[job],
        sensors=[build_new_release_sensor(job, workers, settings.sensor_interval_seconds)],
    )
