"""Acquisition: wanted tracks (group `catalog`), Soulseek matches, downloads, the library (group `acquisition`).

Runs work on batches: one run takes every wanted track through search, ranking, enqueue and import.
The work itself lives in plain modules (harmony_pipeline.soulseek_search, download_flow, library_import);
these assets read inputs, call them and describe what happened.
"""

import time
from pathlib import Path

from dagster import AssetExecutionContext, AssetKey, Failure, MaterializeResult, MetadataValue, asset

from assets.common import NETWORK_RETRY, activity_metadata, markdown_table
from harmony_pipeline import storage
from harmony_pipeline.demand import wanted_changes
from harmony_pipeline.download_attempts import RetryRules
from harmony_pipeline.download_flow import (
    DownloadSetup,
    block_candidate,
    fail_attempt,
    load_downloads,
    matched_candidates,
    pending_download_work,
    reconcile_transfers,
    start_due_downloads,
)
from harmony_pipeline.http_cache import HttpCache
from harmony_pipeline.library_import import AudioCheckError, check_download, import_into_library, quarantine
from harmony_pipeline.library_paths import TrackNaming, render_library_path
from harmony_pipeline.soulseek_search import SearchSession, album_query_for, decide_match, group_by_album
from harmony_pipeline.spotify_cache import SpotifyCache
from resources.database import HarmonyDatabase, LibraryFolders, PipelineSettings
from resources.slskd import SlskdResource
from resources.spotify import SpotifyError, SpotifyNotFound, SpotifyResource

POLL_SECONDS = 1.0

@asset(
    group_name="catalog",
    deps=[AssetKey("playlist_tracks"), AssetKey("backfilled_tracks"), AssetKey("artist_releases")],
    pool="duckdb_writer",
    description="Every demanded track not yet in the library, identified by ISRC or artist + title + duration.",
)
def wanted_tracks(
    context: AssetExecutionContext, database: HarmonyDatabase, pipeline: PipelineSettings
) -> MaterializeResult:
    now = storage.utcnow()
    synced = {f"playlist:{playlist_id}" for playlist_id in pipeline.playlists}
    with database.connect() as conn, storage.transaction(conn):
        changes = wanted_changes(conn, synced, now)  # only new, changed and withdrawn rows
        storage.upsert(conn, "wanted_tracks", changes.rows, key=["wanted_key"], keep=["first_wanted_at"])
        counts = dict(conn.execute("SELECT state, count(*) FROM wanted_tracks GROUP BY state").fetchall())
    newly_wanted = changes.newly_wanted
    context.log.info(f"{counts.get('wanted', 0)} tracks wanted, {len(newly_wanted)} new, {len(changes.rows)} rows written")
    return MaterializeResult(
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
    pool="duckdb_writer",
    retry_policy=NETWORK_RETRY,
    description="Soulseek search and ranking per wanted track: best match, score, reasons, runner-ups.",
)
def soulseek_matches(
    context: AssetExecutionContext,
    slskd: SlskdResource,
    database: HarmonyDatabase,
    pipeline: PipelineSettings,
) -> MaterializeResult:
    now = storage.utcnow()
    with database.connect(read_only=True) as conn:
        todo = storage.fetch_dicts(
            conn,
            "SELECT w.* FROM wanted_tracks w LEFT JOIN soulseek_matches m USING (wanted_key) "
            "WHERE w.state = 'wanted' AND (m.wanted_key IS NULL "
            "OR (m.status IN ('deferred', 'no_match') AND m.retry_search_after <= ?)) "
            "ORDER BY w.first_wanted_at, w.wanted_key",
            [now],
        )
        blocked = {(u, f) for u, f in conn.execute("SELECT username, filename FROM blocked_candidates").fetchall()}
    client = slskd.get_client()
    session = SearchSession(
        search=lambda text: client.search(text, timeout_ms=slskd.search_timeout_ms, poll_seconds=slskd.poll_seconds),
        database=database, limit=pipeline.search_limit, window_seconds=pipeline.search_window_seconds,
        log=context.log,
    )
    decisions: list[dict] = []
    for group in group_by_album(todo):  # one search per album when several of its tracks are wanted
        album_query = album_query_for(group)
        album_responses = session.responses(album_query) if album_query else None
        album_search = (album_query, album_responses) if album_responses is not None else None
        decisions += [decide_match(row, album_search, session, blocked) for row in group]

    labels = {row["wanted_key"]: f"{row['artist']} – {row['title']}" for row in todo}
    with database.connect() as conn, storage.transaction(conn):
        storage.upsert(conn, "soulseek_matches", decisions, key=["wanted_key"])
        for d in decisions:
            if d["status"] == "no_match":
                storage.record_activity(conn, "soulseek_no_results", {
                    "track": labels[d["wanted_key"]], "queries": d["queries"], "rejected": d["rejected_count"]})
        counts = dict(conn.execute("SELECT status, count(*) FROM soulseek_matches GROUP BY status").fetchall())

    table = [{"track": labels[d["wanted_key"]], "decision": d["status"], "score": d["score"],
              "file": (d["filename"] or "").split("\\")[-1], "reasons": "; ".join(d["reasons"] or [])}
             for d in decisions]
    return MaterializeResult(
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
    pool="duckdb_writer",
    retry_policy=NETWORK_RETRY,
    description="slskd transfers of the best candidates, finished files verified (decodable, right length); "
                "failures retried with backoff, then dead-lettered.",
)
def downloads(
    context: AssetExecutionContext,
    slskd: SlskdResource,
    database: HarmonyDatabase,
    folders: LibraryFolders,
    pipeline: PipelineSettings,
) -> MaterializeResult:
    if not folders.downloads_dir:
        raise Failure("SLSKD_DOWNLOADS_DIR is not set: the pipeline must read the files slskd downloads "
                      "(set it to slskd's downloads folder as this machine sees it)")
    setup = DownloadSetup(
        client=slskd.get_client(), database=database, downloads_dir=Path(folders.downloads_dir),
        remote_downloads_dir=folders.remote_downloads_dir, quarantine_dir=folders.quarantine,
        rules=_rules(pipeline), log=context.log,
    )
    deadline = time.monotonic() + pipeline.download_wait_seconds
    started = 0
    totals = {"succeeded": 0, "failed": 0}
    while True:  # until nothing is in flight and no retry falls due within the wait
        started += start_due_downloads(setup)
        counts = reconcile_transfers(setup)
        totals["succeeded"] += counts["succeeded"]
        totals["failed"] += counts["failed"]
        with database.connect(read_only=True) as conn:
            in_flight, next_due = pending_download_work(conn, storage.utcnow())
        remaining = deadline - time.monotonic()
        retry_soon = next_due is not None and (next_due - storage.utcnow()).total_seconds() < remaining
        if remaining <= 0 or not (in_flight or retry_soon):
            break
        time.sleep(POLL_SECONDS)
    with database.connect(read_only=True) as conn:
        states = dict(conn.execute("SELECT state, count(*) FROM downloads GROUP BY state").fetchall())
        recent = storage.fetch_dicts(
            conn, "SELECT w.artist || ' – ' || w.title AS track, d.state, d.attempts, d.last_error "
            "FROM downloads d JOIN wanted_tracks w USING (wanted_key) ORDER BY d.updated_at DESC LIMIT 30")
    if states.get("downloading"):
        context.log.info(f"{states['downloading']} transfers still running; download_transfer_sensor follows them")
    return MaterializeResult(
        metadata={
            "enqueued": started,
            "slskd_seconds": round(setup.client.seconds_spent, 2),
            "finished": totals["succeeded"],
            "failed_attempts": totals["failed"],
            "downloading": states.get("downloading", 0),
            "retry_scheduled": states.get("retry", 0),
            "dead_letter": states.get("dead_letter", 0),
            "imported_total": states.get("imported", 0),
            "latest": MetadataValue.md(markdown_table(recent)),
            **activity_metadata(context, database),
        }
    )


# --- library ---------------------------------------------------------------------------------------
LIBRARY_COLUMNS = (
    "wanted_key", "path", "spotify_track_id", "isrc", "title", "artist", "album", "album_id", "album_artist",
    "track_number", "disc_number", "release_date", "format", "bitrate", "duration_s", "sample_rate",
    "size_bytes", "source", "source_filename", "imported_at",
)


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
    pool="duckdb_writer",
    description="Verified downloads moved atomically into the library by HARMONY_PATH_TEMPLATE.",
)
def library_tracks(
    context: AssetExecutionContext,
    spotify: SpotifyResource,
    database: HarmonyDatabase,
    folders: LibraryFolders,
    pipeline: PipelineSettings,
) -> MaterializeResult:
    with database.connect(read_only=True) as conn:
        finished = storage.fetch_dicts(
            conn, "SELECT d.*, w.* EXCLUDE (wanted_key, state) FROM downloads d "
            "JOIN wanted_tracks w USING (wanted_key) WHERE d.state = 'succeeded'")
    with SpotifyCache(spotify, HttpCache(database.path)) as lookups:
        disc_totals = _disc_totals(lookups, {r["album_id"] for r in finished if r.get("album_id")}, context.log)
    imported, rejected, import_errors = [], [], []
    for row in finished:
        label = f"{row['artist']} – {row['title']}"
        source = Path(row["local_path"]) if row.get("local_path") else None
        try:
            if source is None or not source.is_file():
                raise AudioCheckError("the finished file was not found in the downloads folder")
            info = check_download(source, row.get("duration_ms"))
            naming = TrackNaming(
                albumartist=row.get("album_artist") or row["artist"], artist=row["artist"],
                album=row.get("album") or "", title=row["title"],
                year=int(row["release_date"][:4]) if (row.get("release_date") or "")[:4].isdigit() else None,
                disc=row.get("disc_number") or 1,
                disc_total=max(disc_totals.get(row.get("album_id"), 1), row.get("disc_number") or 1),
                track=row.get("track_number") or 0,
            )
            relative = render_library_path(folders.path_template, naming, info.format)
            target = import_into_library(source, folders.library, relative)
        except AudioCheckError as error:
            # The file changed or vanished since it was verified: quarantine it, try another source.
            reason = str(error)
            context.log.warning(f"{label}: {reason}")
            if source is not None and source.is_file():
                quarantine(source, folders.quarantine, reason)
            with database.connect() as conn, storage.transaction(conn):
                block_candidate(conn, row["username"], row["filename"], reason)
                download = load_downloads(conn, "wanted_key = ?", [row["wanted_key"]])[0]
                fail_attempt(conn, download, matched_candidates(conn).get(row["wanted_key"], []),
                             f"file rejected: {reason}", _rules(pipeline), outcome="quarantined", label=label)
            rejected.append({"track": label, "reason": reason})
            continue
        except (OSError, ValueError) as error:
            # Our side (library not writable, disk full, a bad template): the file stays, nothing is spent.
            context.log.error(f"{label}: could not import: {error}")
            import_errors.append(f"{label}: {error}")
            continue
        library_row = {
            **{c: row.get(c) for c in LIBRARY_COLUMNS},
            "path": target.relative_to(folders.library).as_posix(),
            "format": info.format, "bitrate": info.bitrate_kbps, "duration_s": info.duration_seconds,
            "sample_rate": info.sample_rate, "size_bytes": target.stat().st_size,
            "source": f"soulseek:{row['username']}", "source_filename": row["filename"],
            "imported_at": storage.utcnow(),
        }
        with database.connect() as conn, storage.transaction(conn):
            storage.upsert(conn, "library_tracks", [library_row], key=["wanted_key"])
            conn.execute("UPDATE downloads SET state = 'imported', updated_at = ? WHERE wanted_key = ?",
                         [storage.utcnow(), row["wanted_key"]])
            conn.execute("UPDATE wanted_tracks SET state = 'in_library', updated_at = ? WHERE wanted_key = ?",
                         [storage.utcnow(), row["wanted_key"]])
            storage.record_activity(conn, "track_imported", {"track": label, "path": library_row["path"]})
        imported.append({"track": label, "path": library_row["path"], "format": info.format,
                         "kbps": info.bitrate_kbps})
    if import_errors:
        raise Failure(f"{len(import_errors)} verified downloads could not be moved into the library "
                      f"(they stay in the downloads folder and are retried): {import_errors[0]}",
                      metadata={"errors": MetadataValue.md(markdown_table([{"error": e} for e in import_errors]))})
    with database.connect(read_only=True) as conn:
        total = conn.execute("SELECT count(*) FROM library_tracks").fetchone()[0]
    return MaterializeResult(
        metadata={
            "imported": len(imported),
            "quarantined": len(rejected),
            "library_size": total,
            "spotify_requests": lookups.requests,
            "spotify_cache_hits": lookups.hits,
            "imported_files": MetadataValue.md(markdown_table(imported)),
            "quarantined_files": MetadataValue.md(markdown_table(rejected)),
            **activity_metadata(context, database),
        }
    )


def wiring(settings, workers):
    """Acquisition assets, the acquisition job and its sensor."""
    from dagster import define_asset_job

    from harmony_pipeline.wiring import Wiring
    from sensors.downloads import build_download_transfer_sensor

    chain = [wanted_tracks, soulseek_matches, downloads, library_tracks]
    job = define_asset_job("acquisition_job", selection=chain,
                           description="Search, download and import every wanted track.")
    return Wiring(
        assets=chain,
        jobs=[job],
        sensors=[build_download_transfer_sensor(job, workers, settings.sensor_interval_seconds)],
    )
