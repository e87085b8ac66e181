"""Acquisition: wanted tracks (group `catalog`), Soulseek matches, downloads, the library (group `acquisition`).

Runs work on batches: one run takes every wanted track due through search, ranking, enqueue and import
of what has finished; download_transfer_sensor requests the follow-up runs as transfers finish. The work
itself lives in plain modules (harmony_pipeline.acquisition.search, download_flow, import_flow); these assets
read inputs, call them and describe what happened. The acquisition assets materialize only when they
did something (`output_required=False`), so the newest event on each asset page is real work.
"""

from pathlib import Path

from dagster import AssetExecutionContext, AssetKey, Failure, MaterializeResult, MetadataValue, asset

from assets.common import NETWORK_RETRY, activity_metadata, table_preview
from harmony_pipeline import storage
from harmony_pipeline.acquisition.demand import wanted_changes
from harmony_pipeline.acquisition.download_flow import reconcile_transfers, start_due_downloads
from harmony_pipeline.acquisition.import_flow import ImportSetup, import_downloads, imports_to_do
from harmony_pipeline.acquisition.steps import (
    SearchStep,
    claim_due_searches,
    count_by,
    decision_rows,
    disc_totals,
    download_setup,
    downloads_summary,
    retry_rules,
    search_and_decide,
    track_labels,
)
from harmony_pipeline.http_cache import HttpCache
from harmony_pipeline.library.quality import parse_quality
from harmony_pipeline.library.scan import adopted_keys
from harmony_pipeline.spotify.cache import SpotifyCache
from resources.acoustid import AcoustIdResource
from resources.database import HarmonyDatabase, LibraryFolders, PipelineSettings
from resources.musicbrainz import MusicBrainzResource
from resources.slskd import SlskdResource
from resources.spotify import SpotifyResource

OWNERS = ["team:acquisition"]


@asset(
    group_name="catalog",
    deps=[AssetKey("playlist_tracks"), AssetKey("backfilled_tracks"), AssetKey("artist_releases"),
          AssetKey("library_scan")],
    output_required=False,
    kinds={"polars", "duckdb"},
    owners=OWNERS,
    tags={"concern": "acquisition"},
    description="Every demanded track not yet in the library, identified by ISRC or artist + title + duration.",
)
def wanted_tracks(context: AssetExecutionContext, database: HarmonyDatabase, pipeline: PipelineSettings):
    now = storage.utcnow()
    synced = {f"playlist:{playlist_id}" for playlist_id in pipeline.playlists}
    with database.connect() as conn, storage.transaction(conn):
        # Only new, changed and withdrawn rows; files the user already has (library_scan) count as in the library.
        changes = wanted_changes(conn, synced, now, adopted=adopted_keys)
        storage.upsert(conn, "wanted_tracks", changes.rows, key=["wanted_key"], keep=["first_wanted_at"])
        counts = dict(conn.execute("SELECT state, count(*) FROM wanted_tracks GROUP BY state").fetchall())
    newly_wanted = changes.newly_wanted
    context.log.info(f"{counts.get('wanted', 0)} tracks wanted, {len(newly_wanted)} new, "
                     f"{len(changes.rows)} rows written")
    if not changes.rows:  # the demand is what it was: nothing downstream needs to run for it
        return
    yield MaterializeResult(
        metadata={
            "wanted": counts.get("wanted", 0),
            "in_library": counts.get("in_library", 0),
            "withdrawn": counts.get("withdrawn", 0),
            "newly_wanted": len(newly_wanted),
            "demand_rows": changes.demand_rows,
            "rows_written": len(changes.rows),
            "new": table_preview(newly_wanted),
            "dagster/row_count": sum(counts.values()),
        }
    )


# --- matching ------------------------------------------------------------------------------------
@asset(
    group_name="acquisition",
    deps=[wanted_tracks],
    retry_policy=NETWORK_RETRY,
    output_required=False,
    kinds={"soulseek", "duckdb"},
    owners=OWNERS,
    tags={"concern": "acquisition"},
    description="Soulseek search and ranking per wanted track: best match, score, reasons, runner-ups. When the "
                "run includes `downloads`, a matched track's download is started as soon as it is decided.",
)
def soulseek_matches(
    context: AssetExecutionContext,
    slskd: SlskdResource,
    database: HarmonyDatabase,
    folders: LibraryFolders,
    pipeline: PipelineSettings,
):
    todo, blocked = claim_due_searches(database)
    if not todo:
        context.log.info("no wanted track is due for a search")
        return
    client = slskd.get_client()
    # Downloads start as soon as their track is decided, when this run is to download at all.
    # (The assets this run executes: the job's, narrowed by a sensor's or the UI's selection.)
    downloading = folders.downloads_dir and AssetKey("downloads") in context.job_def.asset_layer.executable_asset_keys
    step = SearchStep(client, database, pipeline.search_limit, pipeline.search_window_seconds, slskd.search_timeout_ms,
                      slskd.poll_seconds, parse_quality(pipeline.quality) if pipeline.quality else None,
                      download_setup(client, database, folders, pipeline, context.log) if downloading else None,
                      context.log)
    session = search_and_decide(step, todo, blocked)
    recorded, stored = step.recorded, count_by(database, "soulseek_matches", "status")
    yield MaterializeResult(
        metadata={
            "decided": len(recorded),
            "matched": sum(1 for d in recorded if d["status"] == "matched"),
            "no_match": sum(1 for d in recorded if d["status"] == "no_match"),
            "deferred_by_budget": sum(1 for d in recorded if d["status"] == "deferred"),
            "downloads_started": step.enqueued,
            "searches": session.searches,
            "slskd_seconds": round(client.seconds_spent, 2),
            "search_cache_hits": session.cache_hits,
            "matched_total": stored.get("matched", 0),
            "decisions": table_preview(decision_rows(recorded, track_labels(todo))),
            "dagster/row_count": sum(stored.values()),
            **activity_metadata(context, database),
        }
    )


# --- downloads -----------------------------------------------------------------------------------
@asset(
    group_name="acquisition",
    deps=[soulseek_matches],
    retry_policy=NETWORK_RETRY,
    output_required=False,
    kinds={"soulseek", "acoustid", "duckdb"},
    owners=OWNERS,
    tags={"concern": "acquisition"},
    description="slskd transfers of the best candidates, finished files verified (decodable, right length); "
                "failures retried with backoff, then dead-lettered.",
)
def downloads(
    context: AssetExecutionContext,
    slskd: SlskdResource,
    acoustid: AcoustIdResource,
    musicbrainz: MusicBrainzResource,
    database: HarmonyDatabase,
    folders: LibraryFolders,
    pipeline: PipelineSettings,
):
    if not folders.downloads_dir:
        raise Failure("SLSKD_DOWNLOADS_DIR is not set: the pipeline must read the files slskd downloads "
                      "(set it to slskd's downloads folder as this machine sees it)")
    verifier = acoustid.get_verifier(musicbrainz.get_client(HttpCache(database.path)), HttpCache(database.path))
    setup = download_setup(slskd.get_client(), database, folders, pipeline, context.log, verifier)
    # Enqueue and reconcile once: transfers take minutes, and download_transfer_sensor asks for the
    # follow-up run when they finish or a retry falls due. No step sleeps waiting for a peer.
    started = start_due_downloads(setup)
    settled = reconcile_transfers(setup)
    summary = downloads_summary(database)
    states = summary.states
    if not (started or settled["succeeded"] or settled["failed"] or summary.to_import):
        context.log.info(f"nothing to enqueue or settle; {settled['in_flight']} transfers in flight")
        return
    yield MaterializeResult(
        metadata={
            "enqueued": started,
            "slskd_seconds": round(setup.client.seconds_spent, 2),
            "finished": settled["succeeded"],
            "failed_attempts": settled["failed"],
            "downloading": states.get("downloading", 0) + states.get("enqueuing", 0),
            "awaiting_import": summary.to_import,
            "retry_scheduled": states.get("retry", 0),
            "dead_letter": states.get("dead_letter", 0),
            "imported_total": states.get("imported", 0),
            "audio_verification": MetadataValue.json(summary.verification),
            "latest": table_preview(summary.recent),
            "dagster/row_count": sum(states.values()),
            **activity_metadata(context, database),
        }
    )


# --- library ---------------------------------------------------------------------------------------
@asset(
    group_name="acquisition",
    deps=[downloads],
    output_required=False,
    kinds={"python", "spotify", "duckdb"},
    owners=OWNERS,
    tags={"concern": "acquisition"},
    description="Verified downloads moved atomically into the library by HARMONY_PATH_TEMPLATE.",
)
def library_tracks(
    context: AssetExecutionContext,
    spotify: SpotifyResource,
    database: HarmonyDatabase,
    folders: LibraryFolders,
    pipeline: PipelineSettings,
):
    rows = imports_to_do(database)
    if not rows:
        context.log.info("no finished download awaits the import")
        return
    with SpotifyCache(spotify, HttpCache(database.path)) as lookups:
        discs = disc_totals(lookups, {r["album_id"] for r in rows if r.get("album_id")}, context.log)
    setup = ImportSetup(database=database, library_root=folders.library, path_template=folders.path_template,
                        quarantine_dir=folders.quarantine, rules=retry_rules(pipeline), log=context.log,
                        downloads_dir=Path(folders.downloads_dir) if folders.downloads_dir else None)
    report = import_downloads(setup, rows, discs)
    if report.errors:
        raise Failure(f"{len(report.errors)} verified downloads could not be moved into the library "
                      f"(they stay in the downloads folder and are retried): {report.errors[0]}",
                      metadata={"errors": table_preview([{"error": e} for e in report.errors])})
    with database.connect(read_only=True) as conn:
        total = conn.execute("SELECT count(*) FROM library_tracks").fetchone()[0]
    imported = [{"track": f"{r['artist']} – {r['title']}", "path": r["path"], "format": r["format"],
                 "kbps": r["bitrate"]} for r in report.imported]
    yield MaterializeResult(
        metadata={
            "imported": len(report.imported),
            "quarantined": len(report.rejected),
            "superseded": len(report.superseded),
            "library_size": total,
            "dagster/row_count": total,
            "spotify_requests": lookups.requests,
            "spotify_cache_hits": lookups.hits,
            "imported_files": table_preview(imported),
            "quarantined_files": table_preview(report.rejected),
            **activity_metadata(context, database),
        }
    )


def wiring(settings, workers):
    """Acquisition assets, the acquisition job and its sensor."""
    from dagster import Definitions, define_asset_job

    from sensors.downloads import build_download_transfer_sensor

    chain = [wanted_tracks, soulseek_matches, downloads, library_tracks]
    # The tag is what deploy/dagster.yaml's queue limits to one acquisition run at a time.
    job = define_asset_job("acquisition_job", selection=chain, tags={"harmony/queue": "acquisition"},
                           description="Search, download and import every wanted track.")
    return Definitions(
        assets=chain,
        jobs=[job],
        sensors=[build_download_transfer_sensor(job, workers, settings.sensor_interval_seconds)],
    )
