"""Acquisition: wanted tracks (group `catalog`), Soulseek matches, downloads, the library (group `acquisition`).

Runs work on batches: one run takes every wanted track due through search, ranking, enqueue and import
of what has finished; download_transfer_sensor requests the follow-up runs as transfers finish. The work
itself lives in plain modules (harmony_pipeline.soulseek_search, download_flow, import_flow); these assets
read inputs, call them and describe what happened. The acquisition assets materialize only when they
did something (`output_required=False`), so the newest event on each asset page is real work.
"""

from pathlib import Path

from dagster import AssetExecutionContext, AssetKey, Failure, MaterializeResult, MetadataValue, asset

from assets.common import NETWORK_RETRY, activity_metadata, markdown_table
from harmony_pipeline import storage
from harmony_pipeline.acquisition_state import (
    claim_searches,
    imports_pending,
    still_claimed_searches,
    tracks_due_for_search,
)
from harmony_pipeline.audio_verification import verification_counts
from harmony_pipeline.demand import wanted_changes
from harmony_pipeline.download_attempts import RetryRules
from harmony_pipeline.download_flow import DownloadSetup, blocked_candidates, reconcile_transfers, start_due_downloads
from harmony_pipeline.http_cache import HttpCache
from harmony_pipeline.import_flow import ImportSetup, import_downloads, imports_to_do
from harmony_pipeline.library_scan import adopted_keys
from harmony_pipeline.quality import parse_quality
from harmony_pipeline.soulseek_search import SearchPipeline, SearchSession, decide_groups, group_by_album
from harmony_pipeline.spotify_cache import SpotifyCache
from resources.acoustid import AcoustIdResource
from resources.database import HarmonyDatabase, LibraryFolders, PipelineSettings
from resources.musicbrainz import MusicBrainzResource
from resources.slskd import SlskdResource
from resources.spotify import SpotifyError, SpotifyNotFound, SpotifyResource


@asset(
    group_name="catalog",
    deps=[AssetKey("playlist_tracks"), AssetKey("backfilled_tracks"), AssetKey("artist_releases"),
          AssetKey("library_scan")],
    output_required=False,
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
            "new": MetadataValue.md(markdown_table(newly_wanted)),
        }
    )


# --- matching ------------------------------------------------------------------------------------
@asset(
    group_name="acquisition",
    deps=[wanted_tracks],
    retry_policy=NETWORK_RETRY,
    output_required=False,
    description="Soulseek search and ranking per wanted track: best match, score, reasons, runner-ups.",
)
def soulseek_matches(
    context: AssetExecutionContext,
    slskd: SlskdResource,
    database: HarmonyDatabase,
    pipeline: PipelineSettings,
):
    with database.connect() as conn, storage.transaction(conn):  # claimed: an overlapping run skips them
        todo = claim_searches(conn, tracks_due_for_search(conn, storage.utcnow()), storage.utcnow())
        blocked = blocked_candidates(conn)
    if not todo:
        context.log.info("no wanted track is due for a search")
        return
    client = slskd.get_client()
    session = SearchSession(search=None, database=database, limit=pipeline.search_limit,
                            window_seconds=pipeline.search_window_seconds, log=context.log)
    searches = SearchPipeline(client, session, timeout_ms=slskd.search_timeout_ms, poll_seconds=slskd.poll_seconds)
    quality = parse_quality(pipeline.quality) if pipeline.quality else None
    # One search per album when several of its tracks are wanted; several searches in flight at once.
    decisions = decide_groups(searches, group_by_album(todo), blocked, quality)

    labels = {row["wanted_key"]: f"{row['artist']} – {row['title']}" for row in todo}
    with database.connect() as conn, storage.transaction(conn):
        decisions = still_claimed_searches(conn, decisions)
        storage.upsert(conn, "soulseek_matches", decisions, key=["wanted_key"])
        for d in decisions:
            if d["status"] == "no_match":
                storage.record_activity(conn, "soulseek_no_results", {
                    "track": labels[d["wanted_key"]], "queries": d["queries"], "rejected": d["rejected_count"]})
        counts = dict(conn.execute("SELECT status, count(*) FROM soulseek_matches GROUP BY status").fetchall())

    table = [{"track": labels[d["wanted_key"]], "decision": d["status"], "score": d["score"],
              "file": (d["filename"] or "").split("\\")[-1], "reasons": "; ".join(d["reasons"] or [])}
             for d in decisions]
    yield MaterializeResult(
        metadata={
            "decided": len(decisions),
            "matched": sum(1 for d in decisions if d["status"] == "matched"),
            "no_match": sum(1 for d in decisions if d["status"] == "no_match"),
            "deferred_by_budget": sum(1 for d in decisions if d["status"] == "deferred"),
            "searches": session.searches,
            "slskd_seconds": round(client.seconds_spent, 2),
            "search_cache_hits": session.cache_hits,
            "matched_total": counts.get("matched", 0),
            "decisions": MetadataValue.md(markdown_table(table)),
            **activity_metadata(context, database),
        }
    )


# --- downloads -----------------------------------------------------------------------------------
def _rules(pipeline: PipelineSettings) -> RetryRules:
    return RetryRules(pipeline.retry_max_attempts, pipeline.retry_base_seconds, pipeline.retry_jitter_pct)


@asset(
    group_name="acquisition",
    deps=[soulseek_matches],
    retry_policy=NETWORK_RETRY,
    output_required=False,
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
    setup = DownloadSetup(
        client=slskd.get_client(), database=database, downloads_dir=Path(folders.downloads_dir),
        remote_downloads_dir=folders.remote_downloads_dir, quarantine_dir=folders.quarantine,
        rules=_rules(pipeline), log=context.log,
        verifier=acoustid.get_verifier(musicbrainz.get_client(HttpCache(database.path)), HttpCache(database.path)),
    )
    # Enqueue and reconcile once: transfers take minutes, and download_transfer_sensor asks for the
    # follow-up run when they finish or a retry falls due. No step sleeps waiting for a peer.
    started = start_due_downloads(setup)
    settled = reconcile_transfers(setup)
    with database.connect(read_only=True) as conn:
        states = dict(conn.execute("SELECT state, count(*) FROM downloads GROUP BY state").fetchall())
        to_import = imports_pending(conn)
        verification = verification_counts(conn)
        recent = storage.fetch_dicts(
            conn, "SELECT w.artist || ' – ' || w.title AS track, d.state, d.attempts, d.verification, d.last_error "
            "FROM downloads d JOIN wanted_tracks w USING (wanted_key) ORDER BY d.updated_at DESC LIMIT 30")
    if not (started or settled["succeeded"] or settled["failed"] or to_import):
        context.log.info(f"nothing to enqueue or settle; {settled['in_flight']} transfers in flight")
        return
    yield MaterializeResult(
        metadata={
            "enqueued": started,
            "slskd_seconds": round(setup.client.seconds_spent, 2),
            "finished": settled["succeeded"],
            "failed_attempts": settled["failed"],
            "downloading": states.get("downloading", 0) + states.get("enqueuing", 0),
            "awaiting_import": to_import,
            "retry_scheduled": states.get("retry", 0),
            "dead_letter": states.get("dead_letter", 0),
            "imported_total": states.get("imported", 0),
            "audio_verification": MetadataValue.json(verification),
            "latest": MetadataValue.md(markdown_table(recent)),
            **activity_metadata(context, database),
        }
    )


# --- library ---------------------------------------------------------------------------------------
def _disc_totals(lookups: SpotifyCache, album_ids: set[str], log) -> dict[str, int]:
    """Number of discs per album (decides `{disc_prefix}`), from the album answers in the lookup cache."""
    totals = {}
    for album_id in sorted(album_ids):
        try:
            totals[album_id] = lookups.disc_total(album_id)
        except SpotifyNotFound:
            continue
        except SpotifyError as error:
            log.warning(f"disc count unavailable ({error}); using the disc numbers at hand")
            break
    return totals


@asset(
    group_name="acquisition",
    deps=[downloads],
    output_required=False,
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
        disc_totals = _disc_totals(lookups, {r["album_id"] for r in rows if r.get("album_id")}, context.log)
    setup = ImportSetup(database=database, library_root=folders.library, path_template=folders.path_template,
                        quarantine_dir=folders.quarantine, rules=_rules(pipeline), log=context.log)
    report = import_downloads(setup, rows, disc_totals)
    if report.errors:
        raise Failure(f"{len(report.errors)} verified downloads could not be moved into the library "
                      f"(they stay in the downloads folder and are retried): {report.errors[0]}",
                      metadata={"errors": MetadataValue.md(markdown_table([{"error": e} for e in report.errors]))})
    with database.connect(read_only=True) as conn:
        total = conn.execute("SELECT count(*) FROM library_tracks").fetchone()[0]
    imported = [{"track": f"{r['artist']} – {r['title']}", "path": r["path"], "format": r["format"],
                 "kbps": r["bitrate"]} for r in report.imported]
    yield MaterializeResult(
        metadata={
            "imported": len(report.imported),
            "quarantined": len(report.rejected),
            "library_size": total,
            "spotify_requests": lookups.requests,
            "spotify_cache_hits": lookups.hits,
            "imported_files": MetadataValue.md(markdown_table(imported)),
            "quarantined_files": MetadataValue.md(markdown_table(report.rejected)),
            **activity_metadata(context, database),
        }
    )


def wiring(settings, workers):
    """Acquisition assets, the acquisition job and its sensor."""
    from dagster import define_asset_job

    from harmony_pipeline.wiring import Wiring
    from sensors.downloads import build_download_transfer_sensor

    chain = [wanted_tracks, soulseek_matches, downloads, library_tracks]
    # The tag is what deploy/dagster.yaml's queue limits to one acquisition run at a time.
    job = define_asset_job("acquisition_job", selection=chain, tags={"harmony/queue": "acquisition"},
                           description="Search, download and import every wanted track.")
    return Wiring(
        assets=chain,
        jobs=[job],
        sensors=[build_download_transfer_sensor(job, workers, settings.sensor_interval_seconds)],
    )
