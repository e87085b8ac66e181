"""Downloads without Dagster: enqueue the next candidate, reconcile slskd's transfers, verify finished
files, and turn failures into backoff retries or dead-letters.

Rows of the `downloads` table carry one track each (its attempts, history and state). slskd transfer
ids are GUIDs, so transfers are matched to rows by username + remote filename (the newest request).
Network calls happen with no DuckDB connection open; each write is one short transaction.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from harmony_pipeline import storage
from harmony_pipeline.audio_verification import verify_download
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
    map_remote_path,
    quarantine,
)

QUEUE_GIVE_UP = timedelta(hours=6)  # a transfer still waiting in a peer's queue after this is abandoned
MISSING_GRACE = timedelta(minutes=5)  # a transfer slskd does not list after this was lost
DOWNLOAD_COLUMNS = (
    "wanted_key", "state", "attempts", "username", "filename", "size", "transfer_id", "transfer_state",
    "local_path", "enqueued_at", "next_attempt_at", "last_error", "history", "updated_at", "verification",
)


@dataclass
class DownloadSetup:
    client: Any  # resources.slskd.SlskdClient
    database: Any  # anything with connect() / connect(read_only=True)
    downloads_dir: Path
    remote_downloads_dir: str | None
    quarantine_dir: Path
    rules: RetryRules
    log: Any = logging.getLogger(__name__)
    verifier: Any = None  # audio_verification.Verifier (AcoustID); None: decoding and fingerprint only


def save_download(conn, row: dict[str, Any]) -> None:
    stored = {c: row.get(c) for c in DOWNLOAD_COLUMNS}
    if isinstance(stored["history"], list):
        stored["history"] = json.dumps(stored["history"], ensure_ascii=False)
    storage.upsert(conn, "downloads", [stored], key=["wanted_key"])


def load_downloads(conn, where: str, params: list | None = None) -> list[dict[str, Any]]:
    rows = storage.fetch_dicts(conn, f"SELECT * FROM downloads WHERE {where}", params or [])
    for row in rows:
        row["history"] = json.loads(row["history"] or "[]")
    return rows


def blocked_candidates(conn) -> set[tuple[str, str]]:
    return {(u, f) for u, f in conn.execute("SELECT username, filename FROM blocked_candidates").fetchall()}


def matched_candidates(conn) -> dict[str, list[dict]]:
    return {key: json.loads(c or "[]") for key, c in conn.execute(
        "SELECT wanted_key, candidates FROM soulseek_matches WHERE status = 'matched'").fetchall()}


def track_labels(conn) -> dict[str, str]:
    return {k: f"{a} – {t}" for k, a, t in conn.execute(
        "SELECT wanted_key, artist, title FROM wanted_tracks").fetchall()}


def block_candidate(conn, username: str, filename: str, reason: str) -> None:
    storage.upsert(conn, "blocked_candidates", [{
        "username": username, "filename": filename, "reason": reason, "blocked_at": storage.utcnow()}],
        key=["username", "filename"])


def fail_attempt(conn, row: dict[str, Any], candidates: list[dict], error: str, rules: RetryRules,
                 *, outcome: str = "failed", label: str | None = None) -> str:
    """Close the current attempt as failed and schedule the next one, or dead-letter the track."""
    now = storage.utcnow()
    close_attempt(row["history"], outcome, error, now)
    left = next_candidate(candidates, row["history"], blocked_candidates(conn)) is not None
    result = after_failure(row["attempts"], rules, now, candidates_left=left)
    row.update(state=result.state, next_attempt_at=result.next_attempt_at, last_error=error,
               transfer_id=None, updated_at=now)
    save_download(conn, row)
    if result.search_again:
        forget_match(conn, row["wanted_key"])
    details = {"track": label or row["wanted_key"], "attempts": row["attempts"], "error": error,
               "file": row.get("filename")}
    if result.state == "dead_letter":
        storage.record_activity(conn, "download_dead_lettered", {**details, "reason": result.reason})
    else:
        storage.record_activity(conn, "download_retry_scheduled",
                                {**details, "next_attempt_at": result.next_attempt_at.isoformat(),
                                 "reason": result.reason})
    return result.state


def forget_match(conn, wanted_key: str) -> None:
    """Drop a track's match decision and its cached searches, so the next run searches Soulseek again."""
    queries = conn.execute("SELECT queries FROM soulseek_matches WHERE wanted_key = ?", [wanted_key]).fetchone()
    for query in (queries[0] or []) if queries else []:
        conn.execute("DELETE FROM search_cache WHERE query = ?", [query])
    conn.execute("DELETE FROM soulseek_matches WHERE wanted_key = ?", [wanted_key])


def _due(row: dict[str, Any] | None, now: datetime) -> bool:
    if row is None:
        return True
    return row["state"] == "retry" and row["next_attempt_at"] is not None and row["next_attempt_at"] <= now


def start_due_downloads(setup: DownloadSetup) -> int:
    """Enqueue the next candidate for every matched wanted track without a download or with a due retry."""
    from resources.slskd import SlskdError, SlskdUnavailable

    now = storage.utcnow()
    with setup.database.connect(read_only=True) as conn:
        candidates = matched_candidates(conn)
        labels = track_labels(conn)
        blocked = blocked_candidates(conn)
        wanted = {k for (k,) in conn.execute("SELECT wanted_key FROM wanted_tracks WHERE state = 'wanted'").fetchall()}
        keys = [k for k in candidates if k in wanted]
        existing = {r["wanted_key"]: r for r in load_downloads(
            conn, "wanted_key IN (SELECT unnest(?))", [keys])} if keys else {}
    started = 0
    for key in keys:
        row = existing.get(key)
        if not _due(row, now):
            continue
        row = row or {"wanted_key": key, "attempts": 0, "history": []}
        candidate = next_candidate(candidates[key], row["history"], blocked)
        label = labels.get(key, key)
        if candidate is None:  # a new search found nobody left to try
            with setup.database.connect() as conn, storage.transaction(conn):
                row.update(state="dead_letter", last_error="no candidate left to try", updated_at=storage.utcnow())
                save_download(conn, row)
                storage.record_activity(conn, "download_dead_lettered", {
                    "track": label, "reason": "no candidate left to try", "attempts": row["attempts"]})
            continue
        try:
            setup.client.enqueue(candidate["username"], candidate["filename"], candidate.get("size"))
            error = None
        except SlskdUnavailable:
            raise  # slskd itself is down: the step's retry policy waits; no attempt is spent
        except SlskdError as failure:
            error = str(failure)
        row["attempts"] += 1
        row["history"].append(history_entry(candidate, now))
        row.update(username=candidate["username"], filename=candidate["filename"], size=candidate.get("size"),
                   enqueued_at=now, next_attempt_at=None, transfer_state="Requested", local_path=None,
                   state="downloading", updated_at=now)
        with setup.database.connect() as conn, storage.transaction(conn):
            if error:
                setup.log.warning(f"{label}: enqueue refused: {error}")
                fail_attempt(conn, row, candidates[key], error, setup.rules, outcome="enqueue_failed", label=label)
            else:
                save_download(conn, row)
                started += 1
    return started


def _requested_at(transfer) -> datetime:
    """slskd timestamps: ISO-8601 with up to 7 fraction digits, with or without an offset (UTC)."""
    text = (transfer.requested_at or "").rstrip("Z")
    if not text:
        return datetime.min.replace(tzinfo=timezone.utc)
    head, _, fraction = text.partition(".")
    parsed = datetime.fromisoformat(head + ("." + fraction[:6] if fraction else ""))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def newest_transfers(transfers: list) -> dict[tuple[str, str], Any]:
    """The newest transfer of each (username, remote filename): an older failed one must not hide it."""
    newest: dict[tuple[str, str], Any] = {}
    for transfer in transfers:
        key = (transfer.username, transfer.filename)
        if key not in newest or _requested_at(transfer) >= _requested_at(newest[key]):
            newest[key] = transfer
    return newest


def local_file(setup: DownloadSetup, transfer, reported_paths: dict) -> Path | None:
    """Where slskd wrote the file: its event's path mapped to this host, else the expected place."""
    reported = reported_paths.get((transfer.username, transfer.filename)) or reported_paths.get(
        (None, transfer.filename))
    if reported:
        try:
            return map_remote_path(reported, setup.remote_downloads_dir or str(setup.downloads_dir),
                                   setup.downloads_dir)
        except ValueError:
            pass  # a path outside the downloads folder is never trusted; fall back to the expected place
    return find_downloaded_file(setup.downloads_dir, transfer.filename)


def reconcile_transfers(setup: DownloadSetup) -> dict[str, int]:
    """Settle downloading rows whose transfer finished: verify the file, or fail the attempt."""
    counts = {"succeeded": 0, "failed": 0, "in_flight": 0}
    with setup.database.connect(read_only=True) as conn:
        active = load_downloads(conn, "state = 'downloading'")
    if not active:
        return counts
    transfers = newest_transfers(setup.client.transfers())
    reported_paths = setup.client.completed_local_paths() if any(t.succeeded for t in transfers.values()) else {}
    now = storage.utcnow()
    to_cancel = []
    with setup.database.connect() as conn, storage.transaction(conn):
        candidates = matched_candidates(conn)
        labels = track_labels(conn)
        durations = dict(conn.execute("SELECT wanted_key, duration_ms FROM wanted_tracks").fetchall())
        isrcs = dict(conn.execute("SELECT wanted_key, isrc FROM wanted_tracks").fetchall())
        for row in active:
            key = row["wanted_key"]
            options, label = candidates.get(key, []), labels.get(key, key)
            transfer = transfers.get((row["username"], row["filename"]))
            if transfer is None:
                if row["enqueued_at"] and now - row["enqueued_at"] > MISSING_GRACE:
                    fail_attempt(conn, row, options, "transfer missing from slskd", setup.rules, label=label)
                    counts["failed"] += 1
                else:
                    counts["in_flight"] += 1
                continue
            row.update(transfer_id=transfer.id, transfer_state=transfer.state, updated_at=now)
            if transfer.succeeded:
                path = local_file(setup, transfer, reported_paths)
                if path is None or not path.is_file():
                    # Not the peer's fault (a path mapping, a file moved away): retry, do not block it.
                    fail_attempt(conn, row, options, "the finished file was not found in SLSKD_DOWNLOADS_DIR",
                                 setup.rules, outcome="file_missing", label=label)
                    counts["failed"] += 1
                    continue
                try:
                    check_download(path, durations.get(key))
                    verdict = verify_download(path, {"isrc": isrcs.get(key)}, setup.verifier)
                except AudioCheckError as problem:
                    # Not the promised audio: quarantined, and this source is never tried again.
                    quarantine(path, setup.quarantine_dir, str(problem))
                    block_candidate(conn, row["username"], row["filename"], str(problem))
                    fail_attempt(conn, row, options, f"file rejected: {problem}", setup.rules,
                                 outcome="quarantined", label=label)
                    counts["failed"] += 1
                    continue
                row.update(state="succeeded", local_path=str(path), verification=verdict.label)
                close_attempt(row["history"], "downloaded", None, now)
                save_download(conn, row)
                storage.record_activity(conn, "download_completed", {"track": label, "from": row["username"]})
                counts["succeeded"] += 1
            elif transfer.is_terminal:
                reason = transfer.state.replace("Completed, ", "") + (
                    f": {transfer.exception}" if transfer.exception else "")
                fail_attempt(conn, row, options, reason, setup.rules, outcome=transfer.state, label=label)
                counts["failed"] += 1
            elif row["enqueued_at"] and now - row["enqueued_at"] > QUEUE_GIVE_UP:
                to_cancel.append(transfer)
                fail_attempt(conn, row, options, f"still {transfer.state} after {QUEUE_GIVE_UP}", setup.rules,
                             outcome="abandoned", label=label)
                counts["failed"] += 1
            else:
                save_download(conn, row)
                counts["in_flight"] += 1
    for transfer in to_cancel:  # after the transaction: no connection is held during network calls
        setup.client.cancel(transfer.username, transfer.id)
    return counts


def pending_download_work(conn, now: datetime) -> tuple[int, datetime | None]:
    """(transfers in flight, when the next retry that has candidates falls due)."""
    in_flight = conn.execute("SELECT count(*) FROM downloads WHERE state = 'downloading'").fetchone()[0]
    next_due = conn.execute(
        "SELECT min(d.next_attempt_at) FROM downloads d JOIN soulseek_matches m USING (wanted_key) "
        "JOIN wanted_tracks w USING (wanted_key) "
        "WHERE d.state = 'retry' AND m.status = 'matched' AND w.state = 'wanted'").fetchone()[0]
    return in_flight, next_due
