"""Downloads without Dagster: enqueue the next candidate, reconcile slskd's transfers, verify finished
files, and turn failures into backoff retries or dead-letters.

Rows of the `downloads` table carry one track each (its attempts, history and state); every write is a
conditional transition (harmony_pipeline.acquisition.state), so overlapping runs never take the same
work twice. slskd transfer ids are GUIDs, so transfers are matched to rows by username + remote filename
(the newest request). Each step works in phases: read, network and files with no DuckDB connection
open, then one short transaction for the writes.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from harmony_pipeline import storage
from harmony_pipeline.acquisition.state import (
    abandoned,
    download_due,
    forget_match,
    load_downloads,
    save_download,
    remove_download,
)
from harmony_pipeline.acquisition.audio_verification import verify_download
from harmony_pipeline.claims import process_token
from harmony_pipeline.crashpoints import crashpoint
from harmony_pipeline.acquisition.download_attempts import (
    RetryRules,
    after_failure,
    close_attempt,
    history_entry,
    next_candidate,
)
from harmony_pipeline.acquisition.library_import import (
    AudioCheckError,
    check_download,
    find_downloaded_file,
    map_remote_path,
    quarantine,
)

QUEUE_GIVE_UP = timedelta(hours=6)  # a transfer still waiting in a peer's queue after this is abandoned
MISSING_GRACE = timedelta(minutes=5)  # a transfer slskd does not list after this was lost
CLOCK_SKEW = timedelta(seconds=60)  # slskd's clock may differ from ours by this much


@dataclass
class DownloadSetup:
    client: Any  # harmony_pipeline.acquisition.slskd.SlskdClient
    database: Any  # anything with connect() / connect(read_only=True)
    downloads_dir: Path
    remote_downloads_dir: str | None
    quarantine_dir: Path
    rules: RetryRules
    log: Any = logging.getLogger(__name__)
    verifier: Any = None  # audio_verification.Verifier (AcoustID); None: decoding and fingerprint only


def blocked_candidates(conn) -> set[tuple[str, str]]:
    return {(u, f) for u, f in conn.execute("SELECT username, filename FROM blocked_candidates").fetchall()}


def matched_candidates(conn) -> dict[str, list[dict]]:
    return {key: json.loads(c or "[]") for key, c in conn.execute(
        "SELECT wanted_key, candidates FROM soulseek_matches WHERE status = 'matched'").fetchall()}


def wanted_matched_candidates(conn, only: set[str] | None = None) -> dict[str, list[dict]]:
    """Candidates of the matched tracks still wanted (of `only`, when given): read where they are
    chosen, not all matches ever made, since the search step asks every few seconds."""
    sql = ("SELECT m.wanted_key, m.candidates FROM soulseek_matches m JOIN wanted_tracks w USING (wanted_key) "
           "WHERE m.status = 'matched' AND w.state = 'wanted'")
    if only is None:
        rows = conn.execute(sql).fetchall()
    else:
        rows = conn.execute(sql + " AND m.wanted_key IN (SELECT unnest(?))", [sorted(only)]).fetchall()
    return {key: json.loads(c or "[]") for key, c in rows}


def track_labels(conn, keys: list[str] | None = None) -> dict[str, str]:
    sql = "SELECT wanted_key, artist, title FROM wanted_tracks"
    rows = conn.execute(sql).fetchall() if keys is None else \
        conn.execute(sql + " WHERE wanted_key IN (SELECT unnest(?))", [keys]).fetchall()
    return {k: f"{a} – {t}" for k, a, t in rows}


def block_candidate(conn, username: str, filename: str, reason: str) -> None:
    storage.upsert(conn, "blocked_candidates", [{
        "username": username, "filename": filename, "reason": reason, "blocked_at": storage.utcnow()}],
        key=["username", "filename"])


def fail_attempt(conn, row: dict[str, Any], candidates: list[dict], error: str, rules: RetryRules,
                 *, outcome: str = "failed", label: str | None = None) -> str | None:
    """Close the current attempt as failed and schedule the next one, or dead-letter the track.
    None when another run changed the row first (nothing is written then)."""
    now = storage.utcnow()
    close_attempt(row["history"], outcome, error, now)
    left = next_candidate(candidates, row["history"], blocked_candidates(conn)) is not None
    result = after_failure(row["attempts"], rules, now, candidates_left=left)
    row.update(state=result.state, next_attempt_at=result.next_attempt_at, last_error=error,
               transfer_id=None, claimed_by=None, updated_at=now)
    if not save_download(conn, row):
        return None
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


def start_due_downloads(setup: DownloadSetup, only: set[str] | None = None) -> int:
    """Enqueue the next candidate for every matched wanted track without a download or with a due retry
    (of the tracks in `only`, when given: those the search step has just decided).

    Each track is first claimed (state `enqueuing`, committed), then enqueued on slskd, then settled:
    a second run sees the claim and leaves the track alone; a claim whose process died is undone by
    `reconcile_transfers`.
    """
    from harmony_pipeline.acquisition.slskd import SlskdError, SlskdUnavailable

    now = storage.utcnow()
    with setup.database.connect(read_only=True) as conn:
        candidates = wanted_matched_candidates(conn, only)
        keys = list(candidates)
        labels = track_labels(conn, keys)
        blocked = blocked_candidates(conn)
        existing = {r["wanted_key"]: r for r in load_downloads(
            conn, "wanted_key IN (SELECT unnest(?))", [keys])} if keys else {}

    claimed: list[tuple[dict, dict, dict | None]] = []  # (row, candidate, row before the claim)
    with setup.database.connect() as conn, storage.transaction(conn):
        for key in keys:
            row = existing.get(key)
            if not download_due(row, now):
                continue
            before = None if row is None else {**row, "history": list(row["history"])}
            row = row or {"wanted_key": key, "attempts": 0, "history": []}
            candidate = next_candidate(candidates[key], row["history"], blocked)
            if candidate is None:  # a new search found nobody left to try
                row.update(state="dead_letter", last_error=_last_real_error(row) or "no candidate left to try",
                           updated_at=storage.utcnow())
                if save_download(conn, row):
                    storage.record_activity(conn, "download_dead_lettered", {
                        "track": labels.get(key, key), "reason": "no candidate left to try",
                        "last_error": row["last_error"], "attempts": row["attempts"]})
                continue
            row["attempts"] += 1
            row["history"].append(history_entry(candidate, now))
            row.update(username=candidate["username"], filename=candidate["filename"], size=candidate.get("size"),
                       enqueued_at=now, next_attempt_at=None, transfer_state="Requested", transfer_id=None,
                       local_path=None, library_path=None, state="enqueuing", claimed_by=process_token(),
                       updated_at=storage.utcnow())
            if save_download(conn, row):
                claimed.append((row, candidate, before))

    crashpoint("enqueue.after_claim")
    errors: dict[str, str] = {}
    unavailable: SlskdUnavailable | None = None
    for row, candidate, _ in claimed:  # no DuckDB connection is open during these requests
        try:
            setup.client.enqueue(candidate["username"], candidate["filename"], candidate.get("size"))
        except SlskdUnavailable as error:
            unavailable = error  # slskd itself is down: nothing more can be enqueued now
            if error.maybe_done:  # sent, no answer: slskd may have the transfer; reconcile decides
                row["_uncertain"] = True
            break
        except SlskdError as failure:
            errors[row["wanted_key"]] = str(failure)
        row["_enqueued"] = True
    crashpoint("enqueue.after_slskd")

    started = 0
    with setup.database.connect() as conn, storage.transaction(conn):
        for row, _, before in claimed:
            key, label = row["wanted_key"], labels.get(row["wanted_key"], row["wanted_key"])
            if row.pop("_uncertain", False):
                # Released, not undone: reconcile_transfers finds the transfer on slskd or undoes the claim.
                row.update(claimed_by=None, updated_at=storage.utcnow())
                save_download(conn, row)
            elif not row.pop("_enqueued", False):
                _undo_claim(conn, row, before)  # an slskd outage spends no attempt
            elif key in errors:
                setup.log.warning(f"{label}: enqueue refused: {errors[key]}")
                fail_attempt(conn, row, candidates[key], errors[key], setup.rules, outcome="enqueue_failed",
                             label=label)
            else:
                row.update(state="downloading", claimed_by=None, updated_at=storage.utcnow())
                started += save_download(conn, row)
    if unavailable is not None:
        raise unavailable  # the step's retry policy waits for slskd
    return started


def _undo_claim(conn, row: dict[str, Any], before: dict[str, Any] | None) -> bool:
    """Put a claimed row back as it was before the claim (or remove it if it was new)."""
    if before is None:
        return remove_download(conn, row)
    return save_download(conn, {**before, "updated_at": storage.utcnow(), "_version": row["_version"]})


def _last_real_error(row: dict[str, Any]) -> str | None:
    """The newest error an attempt actually met (a transfer or verification failure), for dead-letters."""
    for attempt in reversed(row.get("history") or []):
        if attempt.get("error"):
            return attempt["error"]
    return row.get("last_error")


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


def belongs_to_attempt(transfer, row: dict[str, Any]) -> bool:
    """Whether slskd's transfer was requested for the row's current attempt, not an earlier one of the
    same file (allowing for clocks that differ a little between slskd and this machine)."""
    if not row.get("enqueued_at") or not transfer.requested_at:
        return True
    return _requested_at(transfer) >= row["enqueued_at"] - CLOCK_SKEW


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
    """Settle downloading rows whose transfer finished: verify the file, or fail the attempt.

    Claims left by a process that died mid-enqueue are settled too: on slskd after all, or undone.
    """
    counts = {"succeeded": 0, "failed": 0, "in_flight": 0}
    with setup.database.connect(read_only=True) as conn:
        active = [r for r in load_downloads(conn, "state IN ('downloading', 'enqueuing')")
                  if r["state"] == "downloading" or abandoned(r)]
        candidates = matched_candidates(conn)
        labels = track_labels(conn)
        durations = dict(conn.execute("SELECT wanted_key, duration_ms FROM wanted_tracks").fetchall())
        isrcs = dict(conn.execute("SELECT wanted_key, isrc FROM wanted_tracks").fetchall())
    if not active:
        return counts
    transfers = newest_transfers(setup.client.transfers())
    reported_paths = setup.client.completed_local_paths() if any(t.succeeded for t in transfers.values()) else {}
    now = storage.utcnow()

    # Decide every row with no connection open: file checks, fingerprints and AcoustID take a while.
    outcomes = []  # (row, action, detail)
    for row in active:
        transfer = transfers.get((row["username"], row["filename"]))
        if transfer is not None and not belongs_to_attempt(transfer, row):
            transfer = None  # an earlier attempt's transfer of the same file (a retry, a requeue)
        if row["state"] == "enqueuing":  # its process died between the claim and slskd's answer
            outcomes.append((row, "enqueued" if transfer else "undo_claim", None))
            continue
        if transfer is None:
            late = row["enqueued_at"] and now - row["enqueued_at"] > MISSING_GRACE
            outcomes.append((row, "fail", ("transfer missing from slskd", "failed")) if late else (row, "wait", None))
            continue
        progressed = (row.get("transfer_id"), row.get("transfer_state")) != (transfer.id, transfer.state)
        row.update(transfer_id=transfer.id, transfer_state=transfer.state)
        if transfer.succeeded:
            path = local_file(setup, transfer, reported_paths)
            if path is None or not path.is_file():
                # Not the peer's fault (a path mapping, a file moved away): the same file is tried again.
                outcomes.append((row, "fail", ("the finished file was not found in SLSKD_DOWNLOADS_DIR",
                                               "file_missing")))
                continue
            try:
                check_download(path, durations.get(row["wanted_key"]))
                verdict = verify_download(path, {"isrc": isrcs.get(row["wanted_key"])}, setup.verifier)
            except AudioCheckError as problem:  # a verification mismatch too: the wrong recording
                outcomes.append((row, "reject", (path, str(problem))))
                continue
            row["verification"] = verdict.label
            outcomes.append((row, "succeeded", path))
        elif transfer.is_terminal:
            reason = transfer.state.replace("Completed, ", "") + (
                f": {transfer.exception}" if transfer.exception else "")
            outcomes.append((row, "fail", (reason, transfer.state)))
        elif row["enqueued_at"] and now - row["enqueued_at"] > QUEUE_GIVE_UP:
            outcomes.append((row, "abandon", transfer))
        else:
            outcomes.append((row, "wait", progressed))

    to_quarantine, to_cancel = [], []
    with setup.database.connect() as conn, storage.transaction(conn):
        for row, action, detail in outcomes:
            key = row["wanted_key"]
            options, label = candidates.get(key, []), labels.get(key, key)
            if action == "wait":
                counts["in_flight"] += 1
                if detail:  # slskd moved the transfer on (queued → in progress): keep its state for status
                    save_download(conn, {**row, "updated_at": now})
            elif action == "enqueued":
                row.update(state="downloading", claimed_by=None, updated_at=now)
                counts["in_flight"] += save_download(conn, row)
            elif action == "undo_claim":
                _undo_unconfirmed_claim(conn, row, now)
            elif action == "succeeded":
                row.update(state="succeeded", local_path=str(detail), updated_at=now)
                close_attempt(row["history"], "downloaded", None, now)
                if save_download(conn, row):
                    storage.record_activity(conn, "download_completed", {"track": label, "from": row["username"]})
                    counts["succeeded"] += 1
            elif action == "reject":
                # Not the promised audio: quarantined, and this source is never tried again.
                path, problem = detail
                if fail_attempt(conn, row, options, f"file rejected: {problem}", setup.rules,
                                outcome="quarantined", label=label):
                    block_candidate(conn, row["username"], row["filename"], problem)
                    to_quarantine.append((path, problem))
                    counts["failed"] += 1
            elif action == "abandon":
                if fail_attempt(conn, row, options, f"still {detail.state} after {QUEUE_GIVE_UP}", setup.rules,
                                outcome="abandoned", label=label):
                    to_cancel.append(detail)
                    counts["failed"] += 1
            else:  # fail
                reason, outcome = detail
                counts["failed"] += fail_attempt(conn, row, options, reason, setup.rules, outcome=outcome,
                                                 label=label) is not None
    # After the commit: files and slskd are touched only for transitions that were really written.
    for path, problem in to_quarantine:
        if path.is_file():
            quarantine(path, setup.quarantine_dir, problem)
    for transfer in to_cancel:
        setup.client.cancel(transfer.username, transfer.id)
    return counts


def _undo_unconfirmed_claim(conn, row: dict[str, Any], now: datetime) -> bool:
    """A claim whose process died before slskd had the transfer: the attempt never happened."""
    row["history"].pop()
    row["attempts"] -= 1
    if not row["history"]:
        return remove_download(conn, row)
    row.update(state="retry", next_attempt_at=now, claimed_by=None, updated_at=now,
               last_error="the run enqueuing it stopped before slskd had the transfer")
    return save_download(conn, row)
