"""Acquisition: wanted tracks (group `catalog`), Soulseek matches, downloads, the library (group `acquisition`).

Runs work on batches: one run takes every wanted track through search, ranking, enqueue and import.
Network I/O happens with no DuckDB connection open; each write is a short transaction.
"""

import json
import time
from collections import defaultdict
from datetime import timedelta
from pathlib import Path
from typing import Any

from dagster import AssetExecutionContext, AssetKey, MaterializeResult, MetadataValue, asset

from assets.common import NETWORK_RETRY, activity_metadata, markdown_table
from harmony_pipeline import storage
from harmony_pipeline.demand import DEMAND_SOURCES, in_library, library_keys, merge_demand
from harmony_pipeline.download_attempts import (
    RetryRules,
    after_failure,
    close_attempt,
    history_entry,
    next_candidate,
)
from harmony_pipeline.library_import import (
    AudioCheckError,
    check_download,
    find_downloaded_file,
    import_into_library,
    map_remote_path,
    quarantine,
)
from harmony_pipeline.library_paths import TrackNaming, render_library_path
from harmony_pipeline.matching import WantedTrack, build_album_query, build_queries, rank
from harmony_pipeline.search_budget import seconds_until_allowed
from resources.database import HarmonyDatabase, LibraryFolders, PipelineSettings
from resources.slskd import SlskdError, SlskdResource
from resources.spotify import SpotifyError, SpotifyResource

NO_MATCH_COOLDOWN = timedelta(hours=12)
MAX_BUDGET_WAIT_SECONDS = 300.0
QUEUE_GIVE_UP = timedelta(hours=6)  # a transfer still waiting in a peer's queue after this is abandoned
POLL_SECONDS = 1.0

WANTED_COLUMNS = (
    "wanted_key", "spotify_track_id", "isrc", "title", "artist", "artists", "album", "album_id",
    "album_artist", "track_number", "disc_number", "album_total_tracks", "release_date", "duration_ms",
    "sources", "state", "first_wanted_at", "updated_at",
)


def _existing_tables(conn) -> set[str]:
    return {row[0] for row in conn.execute("SELECT table_name FROM information_schema.tables").fetchall()}


@asset(
    group_name="catalog",
    deps=[AssetKey("playlist_tracks"), AssetKey("backfilled_tracks"), AssetKey("artist_releases")],
    pool="duckdb_writer",
    description="Every demanded track not yet in the library, identified by ISRC or artist + title + duration.",
)
def wanted_tracks(context: AssetExecutionContext, database: HarmonyDatabase) -> MaterializeResult:
    now = storage.utcnow()
    with database.connect() as conn, storage.transaction(conn):
        tables = _existing_tables(conn)
        demand_rows: list[dict] = []
        for source in DEMAND_SOURCES:
            if source.table in tables:
                demand_rows += storage.fetch_dicts(conn, source.sql)
        demanded = merge_demand(demand_rows)
        keys = library_keys(storage.fetch_dicts(conn, "SELECT * FROM library_tracks"))
        previous = {r["wanted_key"]: r for r in storage.fetch_dicts(conn, "SELECT * FROM wanted_tracks")}

        rows, newly_wanted = [], []
        for key, entry in demanded.items():
            state = "in_library" if in_library(entry, keys) else "wanted"
            before = previous.get(key)
            if state == "wanted" and (before is None or before["state"] != "wanted"):
                newly_wanted.append({"track": f"{entry['artist']} – {entry['title']}", "from": ", ".join(entry["sources"])})
            rows.append({**entry, "state": state, "first_wanted_at": before["first_wanted_at"] if before else now,
                         "updated_at": now})
        for key, before in previous.items():
            if key not in demanded and before["state"] == "wanted":
                rows.append({**before, "state": "withdrawn", "updated_at": now})
        storage.upsert(conn, "wanted_tracks", [{c: r.get(c) for c in WANTED_COLUMNS} for r in rows],
                       key=["wanted_key"], keep=["first_wanted_at"])
        counts = dict(conn.execute("SELECT state, count(*) FROM wanted_tracks GROUP BY state").fetchall())
    context.log.info(f"{counts.get('wanted', 0)} tracks wanted, {len(newly_wanted)} new")
    return MaterializeResult(
        metadata={
            "wanted": counts.get("wanted", 0),
            "in_library": counts.get("in_library", 0),
            "withdrawn": counts.get("withdrawn", 0),
            "newly_wanted": len(newly_wanted),
            "demand_rows": len(demand_rows),
            "new": MetadataValue.md(markdown_table(newly_wanted)),
        }
    )


# --- matching ------------------------------------------------------------------------------------
def _wanted_track(row: dict) -> WantedTrack:
    year = int(row["release_date"][:4]) if (row.get("release_date") or "")[:4].isdigit() else None
    return WantedTrack(
        artist=row["artist"], artists=tuple(row.get("artists") or [row["artist"]]), title=row["title"],
        album=row.get("album"), duration_ms=row.get("duration_ms"), isrc=row.get("isrc"),
        track_number=row.get("track_number"), album_total_tracks=row.get("album_total_tracks"),
        release_year=year,
    )


class SearchSession:
    """Searches through the cache and the shared budget; counts what it did."""

    def __init__(self, context, slskd: SlskdResource, database: HarmonyDatabase, pipeline: PipelineSettings):
        self.context = context
        self.client = slskd.get_client()
        self.database = database
        self.limit = pipeline.search_limit
        self.window = pipeline.search_window_seconds
        self.timeout_ms = slskd.search_timeout_ms
        self.poll_seconds = slskd.poll_seconds
        self.searches = 0
        self.cache_hits = 0
        self.deferred = False

    def responses(self, query: str) -> list[dict] | None:
        """Responses for the query (cached or searched); None when the budget defers the search."""
        with self.database.connect() as conn:
            cached = conn.execute("SELECT responses FROM search_cache WHERE query = ?", [query]).fetchone()
        if cached:
            self.cache_hits += 1
            return json.loads(cached[0])
        if self.deferred or not self._wait_for_budget():
            self.deferred = True
            return None
        with self.database.connect() as conn:
            conn.execute("INSERT INTO search_budget VALUES (?, ?)", [storage.utcnow(), query])
        self.searches += 1
        responses = self.client.search(query, timeout_ms=self.timeout_ms, poll_seconds=self.poll_seconds)
        with self.database.connect() as conn:
            storage.upsert(conn, "search_cache", [{
                "query": query, "responses": json.dumps(responses, ensure_ascii=False),
                "response_count": len(responses), "searched_at": storage.utcnow()}], key=["query"])
        return responses

    def _wait_for_budget(self) -> bool:
        while True:
            now = storage.utcnow()
            with self.database.connect() as conn:
                recent = [r[0] for r in conn.execute(
                    "SELECT searched_at FROM search_budget WHERE searched_at > ?",
                    [now - timedelta(seconds=self.window)]).fetchall()]
            wait = seconds_until_allowed(recent, now, self.limit, self.window)
            if wait <= 0:
                return True
            if wait > MAX_BUDGET_WAIT_SECONDS:
                self.context.log.info(f"search budget spent; next search possible in {wait:.0f}s: deferred")
                return False
            self.context.log.info(f"search budget: waiting {wait:.1f}s ({self.limit}/{self.window}s)")
            time.sleep(wait + 0.05)


def _blocked(conn) -> set[tuple[str, str]]:
    return {(u, f) for u, f in conn.execute("SELECT username, filename FROM blocked_candidates").fetchall()}


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
            "WHERE w.state = 'wanted' AND (m.wanted_key IS NULL OR m.status = 'deferred' "
            "OR (m.status = 'no_match' AND m.retry_search_after <= ?)) ORDER BY w.first_wanted_at, w.wanted_key",
            [now],
        )
        blocked = _blocked(conn)
    session = SearchSession(context, slskd, database, pipeline)

    # One search per album when several wanted tracks share it; singles get their own search.
    by_album: dict[str, list[dict]] = defaultdict(list)
    for row in todo:
        by_album[row.get("album_id") or f"single:{row['wanted_key']}"].append(row)

    decisions: list[dict] = []
    for album_tracks in by_album.values():
        album_responses = None
        first = album_tracks[0]
        if len(album_tracks) > 1 and first.get("album"):
            album_query = build_album_query(first.get("album_artist") or first["artist"], first["album"])
            album_responses = session.responses(album_query)
        for row in album_tracks:
            decisions.append(_decide(row, album_responses, session, blocked))

    with database.connect() as conn, storage.transaction(conn):
        storage.upsert(conn, "soulseek_matches", [d["row"] for d in decisions], key=["wanted_key"])
        for d in decisions:
            if d["row"]["status"] == "no_match":
                storage.record_activity(conn, "soulseek_no_results", {
                    "track": d["label"], "queries": d["row"]["queries"], "rejected": d["row"]["rejected_count"]})
        counts = dict(conn.execute("SELECT status, count(*) FROM soulseek_matches GROUP BY status").fetchall())

    table = [{"track": d["label"], "decision": d["row"]["status"], "score": d["row"]["score"],
              "file": (d["row"]["filename"] or "").split("\\")[-1], "reasons": "; ".join(d["row"]["reasons"] or [])}
             for d in decisions]
    return MaterializeResult(
        metadata={
            "decided": len(decisions),
            "matched": sum(1 for d in decisions if d["row"]["status"] == "matched"),
            "no_match": sum(1 for d in decisions if d["row"]["status"] == "no_match"),
            "deferred_by_budget": sum(1 for d in decisions if d["row"]["status"] == "deferred"),
            "searches": session.searches,
            "slskd_seconds": round(session.client.seconds_spent, 2),
            "search_cache_hits": session.cache_hits,
            "matched_total": counts.get("matched", 0),
            "decisions": MetadataValue.md(markdown_table(table)),
            **activity_metadata(context, database),
        }
    )


def _decide(row: dict, album_responses: list[dict] | None, session: SearchSession,
            blocked: set[tuple[str, str]]) -> dict:
    wanted = _wanted_track(row)
    label = f"{row['artist']} – {row['title']}"
    queries_used: list[str] = []
    decision = None
    if album_responses:
        decision = rank(wanted, album_responses)
    if decision is None or decision.best is None:
        # The primary query, then the diacritics-free variant only when the first found nothing usable.
        for query in build_queries(wanted)[:2]:
            responses = session.responses(query)
            if responses is None:
                break
            queries_used.append(query)
            decision = rank(wanted, responses)
            if decision.best is not None:
                break
    now = storage.utcnow()
    accepted = [c.as_dict() for c in (decision.accepted if decision else [])
                if (c.username, c.filename) not in blocked]
    status = "matched" if accepted else ("deferred" if session.deferred and not decision else "no_match")
    best = accepted[0] if accepted else None
    rejected = decision.rejected if decision else []
    return {
        "label": label,
        "row": {
            "wanted_key": row["wanted_key"], "status": status, "queries": queries_used or None,
            "username": best["username"] if best else None, "filename": best["filename"] if best else None,
            "size": best.get("size") if best else None, "score": best["score"] if best else None,
            "reasons": best["reasons"] if best else [f"{len(rejected)} candidates rejected"],
            "candidates": json.dumps(accepted[:10], ensure_ascii=False),
            "rejected_count": len(rejected),
            "rejected_sample": json.dumps([r.as_dict() for r in rejected[:5]], ensure_ascii=False),
            "decided_at": now,
            "retry_search_after": now + NO_MATCH_COOLDOWN if status == "no_match" else None,
        },
    }


# --- downloads -----------------------------------------------------------------------------------
DOWNLOAD_COLUMNS = (
    "wanted_key", "state", "attempts", "username", "filename", "size", "transfer_id", "transfer_state",
    "local_path", "enqueued_at", "next_attempt_at", "last_error", "history", "updated_at",
)


def _save_download(conn, row: dict) -> None:
    storage.upsert(conn, "downloads", [{c: row.get(c) for c in DOWNLOAD_COLUMNS}], key=["wanted_key"])


def _load_downloads(conn, where: str, params: list | None = None) -> list[dict]:
    rows = storage.fetch_dicts(conn, f"SELECT * FROM downloads WHERE {where}", params or [])
    for row in rows:
        row["history"] = json.loads(row["history"] or "[]")
    return rows


def _rules(pipeline: PipelineSettings) -> RetryRules:
    return RetryRules(pipeline.retry_max_attempts, pipeline.retry_base_seconds, pipeline.retry_jitter_pct)


def fail_attempt(conn, row: dict, candidates: list[dict], error: str, pipeline: PipelineSettings,
                 outcome: str = "failed", label: str | None = None) -> str:
    """Close the current attempt as failed and schedule the next one, or dead-letter the track."""
    now = storage.utcnow()
    close_attempt(row["history"], outcome, error, now)
    left = next_candidate(candidates, row["history"], _blocked(conn)) is not None
    result = after_failure(row["attempts"], _rules(pipeline), now, candidates_left=left)
    row.update(state=result.state, next_attempt_at=result.next_attempt_at, last_error=error,
               transfer_id=None, updated_at=now, history=json.dumps(row["history"], ensure_ascii=False))
    _save_download(conn, row)
    details = {"track": label or row["wanted_key"], "attempts": row["attempts"], "error": error,
               "file": row.get("filename")}
    if result.state == "dead_letter":
        storage.record_activity(conn, "download_dead_lettered", {**details, "reason": result.reason})
    else:
        storage.record_activity(conn, "download_retry_scheduled",
                                {**details, "next_attempt_at": result.next_attempt_at.isoformat()})
    row["history"] = json.loads(row["history"])
    return result.state


def _candidates(conn) -> dict[str, list[dict]]:
    return {key: json.loads(c or "[]") for key, c in conn.execute(
        "SELECT wanted_key, candidates FROM soulseek_matches WHERE status = 'matched'").fetchall()}


def _labels(conn) -> dict[str, str]:
    return {k: f"{a} – {t}" for k, a, t in conn.execute("SELECT wanted_key, artist, title FROM wanted_tracks").fetchall()}


def start_due_downloads(context, client, database: HarmonyDatabase, pipeline: PipelineSettings) -> int:
    """Enqueue the next candidate for every matched track without a download, or whose retry is due."""
    now = storage.utcnow()
    with database.connect(read_only=True) as conn:
        candidates = _candidates(conn)
        labels = _labels(conn)
        blocked = _blocked(conn)
        existing = {r["wanted_key"]: r for r in _load_downloads(conn, "TRUE")}
        wanted = {k for (k,) in conn.execute("SELECT wanted_key FROM wanted_tracks WHERE state = 'wanted'").fetchall()}
    started = 0
    for key, options in candidates.items():
        if key not in wanted:
            continue
        row = existing.get(key)
        if row is not None and not (row["state"] == "retry" and row["next_attempt_at"] and row["next_attempt_at"] <= now):
            continue
        row = row or {"wanted_key": key, "attempts": 0, "history": []}
        candidate = next_candidate(options, row["history"], blocked)
        if candidate is None:
            with database.connect() as conn:
                row.update(state="dead_letter", last_error="no candidate left", updated_at=storage.utcnow(),
                           history=json.dumps(row["history"], ensure_ascii=False))
                _save_download(conn, row)
                storage.record_activity(conn, "download_dead_lettered", {"track": labels.get(key, key),
                                        "reason": "no candidate left", "attempts": row["attempts"]})
            continue
        row["attempts"] += 1
        row["history"].append(history_entry(candidate, storage.utcnow()))
        row.update(username=candidate["username"], filename=candidate["filename"], size=candidate.get("size"),
                   enqueued_at=storage.utcnow(), next_attempt_at=None, transfer_state="Requested",
                   local_path=None, state="downloading", updated_at=storage.utcnow())
        try:
            client.enqueue(candidate["username"], candidate["filename"], candidate.get("size"))
            error = None
        except SlskdError as failure:
            error = str(failure)
        with database.connect() as conn, storage.transaction(conn):
            if error:
                context.log.warning(f"{labels.get(key, key)}: enqueue failed: {error}")
                fail_attempt(conn, row, options, error, pipeline, outcome="enqueue_failed", label=labels.get(key))
            else:
                row["history"] = json.dumps(row["history"], ensure_ascii=False)
                _save_download(conn, row)
                row["history"] = json.loads(row["history"])
                started += 1
    return started


def reconcile_transfers(context, client, database: HarmonyDatabase, folders: LibraryFolders,
                        pipeline: PipelineSettings) -> dict[str, int]:
    """Match slskd transfers to downloading rows by username + remote filename; settle finished ones."""
    counts = {"succeeded": 0, "failed": 0, "in_flight": 0}
    with database.connect(read_only=True) as conn:
        active = _load_downloads(conn, "state = 'downloading'")
    if not active:
        return counts
    transfers = {(t.username, t.filename): t for t in client.transfers()}  # newest wins
    needs_paths = any(t.succeeded for t in transfers.values())
    local_paths = client.completed_local_paths() if needs_paths else {}
    now = storage.utcnow()
    with database.connect() as conn, storage.transaction(conn):
        candidates = _candidates(conn)
        labels = _labels(conn)
        durations = dict(conn.execute("SELECT wanted_key, duration_ms FROM wanted_tracks").fetchall())
        for row in active:
            transfer = transfers.get((row["username"], row["filename"]))
            label = labels.get(row["wanted_key"], row["wanted_key"])
            if transfer is None:
                if row["enqueued_at"] and now - row["enqueued_at"] > timedelta(minutes=5):
                    fail_attempt(conn, row, candidates.get(row["wanted_key"], []),
                                 "transfer missing from slskd", pipeline, label=label)
                    counts["failed"] += 1
                else:
                    counts["in_flight"] += 1
                continue
            row.update(transfer_id=transfer.id, transfer_state=transfer.state, updated_at=now)
            if transfer.succeeded:
                local = _local_path(folders, transfer, local_paths)
                problem = _verify_download(local, durations.get(row["wanted_key"]))
                if problem:
                    # A file that is not the promised audio is quarantined and its source never tried again.
                    if local is not None and local.is_file():
                        quarantine(local, folders.quarantine, problem)
                    storage.upsert(conn, "blocked_candidates", [{
                        "username": row["username"], "filename": row["filename"], "reason": problem,
                        "blocked_at": now}], key=["username", "filename"])
                    fail_attempt(conn, row, candidates.get(row["wanted_key"], []), f"file rejected: {problem}",
                                 pipeline, outcome="quarantined", label=label)
                    counts["failed"] += 1
                    continue
                row.update(state="succeeded", local_path=str(local))
                close_attempt(row["history"], "downloaded", None, now)
                row["history"] = json.dumps(row["history"], ensure_ascii=False)
                _save_download(conn, row)
                storage.record_activity(conn, "download_completed", {"track": label, "from": row["username"]})
                counts["succeeded"] += 1
            elif transfer.is_terminal:
                reason = transfer.state.replace("Completed, ", "") + (f": {transfer.exception}" if transfer.exception else "")
                fail_attempt(conn, row, candidates.get(row["wanted_key"], []), reason, pipeline,
                             outcome=transfer.state, label=label)
                counts["failed"] += 1
            elif row["enqueued_at"] and now - row["enqueued_at"] > QUEUE_GIVE_UP:
                client.cancel(transfer.username, transfer.id)
                fail_attempt(conn, row, candidates.get(row["wanted_key"], []),
                             f"still {transfer.state} after {QUEUE_GIVE_UP}", pipeline, label=label)
                counts["failed"] += 1
            else:
                row["history"] = json.dumps(row["history"], ensure_ascii=False)
                _save_download(conn, row)
                counts["in_flight"] += 1
    return counts


def _verify_download(path: Path | None, duration_ms: int | None) -> str | None:
    """None when the file is decodable audio of the expected length; otherwise the reason."""
    if path is None or not path.is_file():
        return "the finished file was not found in the downloads folder"
    try:
        check_download(path, duration_ms)
    except AudioCheckError as error:
        return str(error)
    return None


def _local_path(folders: LibraryFolders, transfer, local_paths: dict) -> Path | None:
    if not folders.downloads_dir:
        return None
    downloads = Path(folders.downloads_dir)
    reported = local_paths.get((transfer.username, transfer.filename)) or local_paths.get((None, transfer.filename))
    if reported:
        try:
            return map_remote_path(reported, folders.remote_downloads_dir or str(downloads), downloads)
        except ValueError:
            pass  # a path outside the downloads folder is never trusted; fall back to the expected place
    return find_downloaded_file(downloads, transfer.filename)


@asset(
    group_name="acquisition",
    deps=[soulseek_matches],
    pool="duckdb_writer",
    retry_policy=NETWORK_RETRY,
    description="slskd transfers of the best candidates, finished files verified (decodable, right length); failures retried with backoff, then dead-lettered.",
)
def downloads(
    context: AssetExecutionContext,
    slskd: SlskdResource,
    database: HarmonyDatabase,
    folders: LibraryFolders,
    pipeline: PipelineSettings,
) -> MaterializeResult:
    client = slskd.get_client()
    deadline = time.monotonic() + pipeline.download_wait_seconds
    started = 0
    totals = {"succeeded": 0, "failed": 0}
    while True:
        started += start_due_downloads(context, client, database, pipeline)
        counts = reconcile_transfers(context, client, database, folders, pipeline)
        totals["succeeded"] += counts["succeeded"]
        totals["failed"] += counts["failed"]
        with database.connect(read_only=True) as conn:
            in_flight = conn.execute("SELECT count(*) FROM downloads WHERE state = 'downloading'").fetchone()[0]
            next_due = conn.execute("SELECT min(next_attempt_at) FROM downloads WHERE state = 'retry'").fetchone()[0]
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
            "slskd_seconds": round(client.seconds_spent, 2),
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


def _disc_totals(spotify: SpotifyResource, database: HarmonyDatabase, album_ids: set[str], log) -> dict[str, int]:
    """Number of discs per album (decides `{disc_prefix}`), cached in DuckDB: one request per album ever."""
    with database.connect(read_only=True) as conn:
        cached = dict(conn.execute(
            "SELECT key, CAST(body AS INTEGER) FROM http_cache WHERE service = 'spotify_disc_total'").fetchall())
    missing = [a for a in album_ids if a not in cached]
    if missing:
        fetched = {}
        try:
            api = spotify.get_api()
            for album_id in missing:
                album = api.album(album_id)
                discs = [t.get("disc_number") or 1 for t in api.album_tracks(album)]
                fetched[album_id] = max(discs or [1])
        except SpotifyError as error:
            log.warning(f"disc count unavailable ({error}); using the disc numbers at hand")
        if fetched:
            with database.connect() as conn:
                storage.upsert(conn, "http_cache", [
                    {"service": "spotify_disc_total", "key": k, "status": 200, "body": str(v),
                     "fetched_at": storage.utcnow(), "expires_at": None} for k, v in fetched.items()],
                    key=["service", "key"])
            cached.update(fetched)
    return cached


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
    disc_totals = _disc_totals(spotify, database, {r["album_id"] for r in finished if r.get("album_id")}, context.log)
    imported, rejected = [], []
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
        except (AudioCheckError, OSError, ValueError) as error:
            reason = str(error)
            context.log.warning(f"{label}: {reason}")
            if source is not None and source.is_file():
                quarantine(source, folders.quarantine, reason)
            with database.connect() as conn, storage.transaction(conn):
                storage.upsert(conn, "blocked_candidates", [{
                    "username": row["username"], "filename": row["filename"], "reason": reason,
                    "blocked_at": storage.utcnow()}], key=["username", "filename"])
                download = _load_downloads(conn, "wanted_key = ?", [row["wanted_key"]])[0]
                candidates = _candidates(conn).get(row["wanted_key"], [])
                fail_attempt(conn, download, candidates, f"file rejected: {reason}", pipeline,
                             outcome="quarantined", label=label)
            rejected.append({"track": label, "reason": reason})
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
    with database.connect(read_only=True) as conn:
        total = conn.execute("SELECT count(*) FROM library_tracks").fetchone()[0]
    return MaterializeResult(
        metadata={
            "imported": len(imported),
            "quarantined": len(rejected),
            "library_size": total,
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
