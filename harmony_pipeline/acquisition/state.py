"""The acquisition state machine: which wanted tracks are due for a search or a download, and every
transition of a `downloads` row, in one place for assets, sensors, `harmony status` and the CLI.

Runs overlap (no writer pool), so every transition is conditional: a row is written only where it
still holds the version it was read with (its state and `updated_at`). A run that loses the race skips
the row; two runs can never enqueue the same transfer twice, import twice or overwrite each other.

download states:
  enqueuing   claimed by a process that is asking slskd for the transfer (`claimed_by`)
  downloading the transfer is on slskd
  retry       the last attempt failed; the next one falls due at `next_attempt_at`
  succeeded   the file is downloaded and checked, waiting for the import
  importing   claimed by a process moving the file to `library_path`
  imported    in the library
  superseded  downloaded, but the user's library already had the track (library_scan): not imported
  dead_letter RETRY_MAX_ATTEMPTS spent, or nobody left to try; `harmony dead-letter requeue` revives it
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from harmony_pipeline import storage
from harmony_pipeline.claims import claim_is_live, process_token

DOWNLOAD_COLUMNS = (
    "wanted_key", "state", "attempts", "username", "filename", "size", "transfer_id", "transfer_state",
    "local_path", "enqueued_at", "next_attempt_at", "last_error", "history", "updated_at", "claimed_by",
    "library_path", "verification",
)

# A wanted track needs a (new) search: never decided, a no-match / budget-deferred decision whose wait is
# over, or a search claimed by a process that is gone (checked in Python: `claim_is_live`).
_SEARCH_CANDIDATES = (
    "SELECT w.*, m.status AS match_status, m.claimed_by AS match_claimed_by, m.decided_at AS match_decided_at "
    "FROM wanted_tracks w LEFT JOIN soulseek_matches m USING (wanted_key) "
    "WHERE w.state = 'wanted' AND (m.wanted_key IS NULL OR m.status = 'searching' "
    "OR (m.status IN ('deferred', 'no_match') AND m.retry_search_after <= ?)) "
    "ORDER BY w.first_wanted_at, w.wanted_key"
)


def tracks_due_for_search(conn, now: datetime) -> list[dict[str, Any]]:
    """Wanted tracks due for a search; each keeps the version of its match row (for `claim_searches`)."""
    rows = storage.fetch_dicts(conn, _SEARCH_CANDIDATES, [now])
    return [row for row in rows if row["match_status"] != "searching"
            or row["match_claimed_by"] == process_token()  # this process's own (a retried step)
            or not claim_is_live(row["match_claimed_by"], row["match_decided_at"])]


def still_claimed_searches(conn, decisions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The decisions whose search this process still holds: a requeue or a forgotten match in the
    meantime (another process changed the row) is not overwritten."""
    held = {key for (key,) in conn.execute(
        "SELECT wanted_key FROM soulseek_matches WHERE status = 'searching' AND claimed_by = ? "
        "AND wanted_key IN (SELECT unnest(?))", [process_token(), [d["wanted_key"] for d in decisions]]).fetchall()}
    return [d for d in decisions if d["wanted_key"] in held]


def searches_due(conn, now: datetime) -> int:
    return len(tracks_due_for_search(conn, now))


def claim_searches(conn, rows: list[dict[str, Any]], now: datetime) -> list[dict[str, Any]]:
    """Mark the tracks as being searched by this process, where no other run got to them first."""
    claimed = []
    for row in rows:
        if row["match_status"] is None:
            changed = conn.execute(
                "INSERT INTO soulseek_matches (wanted_key, status, claimed_by, decided_at) "
                "VALUES (?, 'searching', ?, ?) ON CONFLICT DO NOTHING",
                [row["wanted_key"], process_token(), now]).fetchone()[0]
        else:
            changed = conn.execute(
                "UPDATE soulseek_matches SET status = 'searching', claimed_by = ?, decided_at = ? "
                "WHERE wanted_key = ? AND status = ? AND decided_at = ?",
                [process_token(), now, row["wanted_key"], row["match_status"], row["match_decided_at"]]).fetchone()[0]
        if changed:
            claimed.append(row)
    return claimed


def pending_download_work(conn, now: datetime) -> tuple[int, datetime | None]:
    """(transfers in flight, when the next retry that has candidates falls due)."""
    in_flight = conn.execute("SELECT count(*) FROM downloads WHERE state IN ('enqueuing', 'downloading')"
                             ).fetchone()[0]
    next_due = conn.execute(
        "SELECT min(d.next_attempt_at) FROM downloads d JOIN soulseek_matches m USING (wanted_key) "
        "JOIN wanted_tracks w USING (wanted_key) "
        "WHERE d.state = 'retry' AND m.status = 'matched' AND w.state = 'wanted'").fetchone()[0]
    return in_flight, next_due


def downloads_not_started(conn) -> int:
    """Matched wanted tracks that have no download yet."""
    return conn.execute(
        "SELECT count(*) FROM soulseek_matches m JOIN wanted_tracks w USING (wanted_key) "
        "WHERE m.status = 'matched' AND w.state = 'wanted' "
        "AND NOT EXISTS (SELECT 1 FROM downloads d WHERE d.wanted_key = m.wanted_key)").fetchone()[0]


def import_due(row: dict[str, Any], now: datetime) -> bool:
    """A checked download whose import is due (after an error on our side it waits `next_attempt_at`),
    or an import a dead process left half done."""
    if row["state"] == "succeeded":
        return row.get("next_attempt_at") is None or row["next_attempt_at"] <= now
    return abandoned(row)


def imports_pending(conn) -> int:
    """Downloads whose import is due, and imports a dead process left half done."""
    now = storage.utcnow()
    rows = storage.fetch_dicts(conn, "SELECT state, claimed_by, updated_at, next_attempt_at FROM downloads "
                                     "WHERE state IN ('succeeded', 'importing')")
    return sum(1 for row in rows if import_due(row, now))


def download_due(row: dict[str, Any] | None, now: datetime) -> bool:
    """A matched track with no download yet, or a retry whose backoff has passed."""
    if row is None:
        return True
    if row["state"] == "superseded":  # the user's copy is gone since: wanted (and downloaded) again
        return True
    return row["state"] == "retry" and row["next_attempt_at"] is not None and row["next_attempt_at"] <= now


def abandoned(row: dict[str, Any]) -> bool:
    """A row claimed by a process that is gone: its transition must be finished or undone."""
    return row["state"] in ("enqueuing", "importing") and not claim_is_live(row.get("claimed_by"), row["updated_at"])


# --- reading and writing download rows ------------------------------------------------------------
def load_downloads(conn, where: str, params: list | None = None) -> list[dict[str, Any]]:
    """Download rows (history decoded), each remembering the version it was read at."""
    rows = storage.fetch_dicts(conn, f"SELECT * FROM downloads WHERE {where}", params or [])
    for row in rows:
        row["history"] = json.loads(row["history"] or "[]")
        row["_version"] = (row["state"], row["updated_at"])
    return rows


def save_download(conn, row: dict[str, Any]) -> bool:
    """Write `row` where the stored row still has the version `row` was read at (a new row: where none
    exists). False when another run got there first; `row` then keeps its old version."""
    stored = {c: row.get(c) for c in DOWNLOAD_COLUMNS}
    stored["history"] = json.dumps(stored["history"] or [], ensure_ascii=False)
    return storage.save_versioned(conn, "downloads", row, stored)


def remove_download(conn, row: dict[str, Any]) -> bool:
    """Delete a row that is still at the version it was read at (undoing a claim on a new track)."""
    return storage.remove_versioned(conn, "downloads", row)


# --- matches ---------------------------------------------------------------------------------------
def forget_match(conn, wanted_key: str) -> None:
    """Drop a track's match decision and its cached searches, so the next run searches Soulseek again."""
    queries = conn.execute("SELECT queries FROM soulseek_matches WHERE wanted_key = ?", [wanted_key]).fetchone()
    for query in (queries[0] or []) if queries else []:
        conn.execute("DELETE FROM search_cache WHERE query = ?", [query])
    conn.execute("DELETE FROM soulseek_matches WHERE wanted_key = ?", [wanted_key])


def requeue_dead_letters(conn, keys: list[str] | None) -> list[dict[str, Any]]:
    """Give dead-lettered tracks a fresh start (all when `keys` is None): attempts and tried candidates
    cleared, match decision and cached searches dropped. Returns the rows requeued, as they were."""
    dead = load_downloads(conn, "state = 'dead_letter'")
    done = []
    for row in dead:
        if (keys is not None and row["wanted_key"] not in keys) or not remove_download(conn, row):
            continue
        done.append(row)
        forget_match(conn, row["wanted_key"])
        conn.execute("UPDATE wanted_tracks SET state = 'wanted', updated_at = ? WHERE wanted_key = ?",
                     [storage.utcnow(), row["wanted_key"]])
        storage.record_activity(conn, "download_requeued", {"track": row["wanted_key"]})
    return done
