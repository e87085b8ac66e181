"""FREE ingest submissions recorded in DuckDB, shared by `harmony ingest`, the inbox sensor and the asset.

A submission is one file (or standard input). Its items are stored once per fingerprint across all
submissions: an item seen before is skipped with "already submitted" and keeps the submission it
first came from. Rejected lines are kept with the submission, with their line number and reason.
Inbox files are claimed before they are read: renamed into `processing/`, which only one of the inbox
sensor and the free_ingest_items asset can do, then moved to `processed/` or, when they cannot be
read, `failed/` with a `.reason.txt`. So no file is read twice, and a file taken elsewhere is skipped.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import duckdb

from harmony_pipeline import storage
from harmony_pipeline.ingest_parser import IngestError, IngestItem, ParseResult, parse_submission

ALREADY_SUBMITTED = "already submitted"
INBOX_EXTENSIONS = (".txt", ".csv", ".json")
INSERT_CHUNK = 500  # items written per statement; progress advances per chunk


@dataclass(frozen=True)
class Skipped:
    line_number: int
    reason: str
    raw: str = ""


@dataclass
class SubmissionOutcome:
    submission_id: int
    source: str
    accepted: int
    skipped: list[Skipped]
    notes: list[str] = field(default_factory=list)

    def report_lines(self, prefix: str = "") -> list[str]:
        """`line N: reason` for every skipped line (what `harmony ingest` prints)."""
        return [f"{prefix}line {s.line_number}: {s.reason}" for s in self.skipped]


def item_kind(item: IngestItem) -> str:
    if item.spotify_ref is not None:
        return item.spotify_ref.kind
    return "isrc" if item.title is None and item.isrc else "text"


def _item_row(item: IngestItem, submission_id: int, now: datetime) -> dict:
    return {
        "fingerprint": item.fingerprint, "kind": item_kind(item), "artist": item.artist,
        "artists": list(item.artists) or None, "title": item.title, "album": item.album,
        "year": item.year, "duration_ms": item.duration_ms, "isrc": item.isrc,
        "spotify_uri": item.spotify_ref.uri if item.spotify_ref else None,
        "raw": item.raw.rstrip("\r\n")[:500], "line_number": item.line_number,
        "submission_id": submission_id, "state": "pending", "reason": None, "lookups": 0,
        "next_lookup_at": None, "submitted_at": now, "updated_at": now,
    }


def record_submission(
    conn: duckdb.DuckDBPyConnection,
    result: ParseResult,
    source: str,
    progress: Callable[[int], None] | None = None,
) -> SubmissionOutcome:
    """Store one parsed submission in a single transaction; `progress(n)` is told of items written."""
    now = storage.utcnow()
    with storage.transaction(conn):
        known = _known_fingerprints(conn, [item.fingerprint for item in result.items])
        new_items = [item for item in result.items if item.fingerprint not in known]
        skipped = [Skipped(r.line_number, r.reason, r.raw) for r in result.rejections]
        skipped += [Skipped(i.line_number, ALREADY_SUBMITTED, i.raw) for i in result.items if i.fingerprint in known]
        skipped.sort(key=lambda s: s.line_number)
        rejected = json.dumps([{"line": s.line_number, "reason": s.reason, "raw": s.raw} for s in skipped],
                              ensure_ascii=False)
        submission_id = conn.execute(
            "INSERT INTO free_ingest_submissions (source, format, submitted_at, accepted, skipped, rejected, notes) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
            [source, result.format, now, len(new_items), len(skipped), rejected, result.notes or None],
        ).fetchone()[0]
        for start in range(0, len(new_items), INSERT_CHUNK):
            chunk = new_items[start:start + INSERT_CHUNK]
            storage.upsert(conn, "free_ingest_items", [_item_row(i, submission_id, now) for i in chunk],
                           key=["fingerprint"])
            if progress:
                progress(len(chunk))
        storage.record_activity(conn, "free_ingest_submitted", {
            "source": source, "submission": submission_id, "accepted": len(new_items), "skipped": len(skipped)})
    return SubmissionOutcome(submission_id, source, len(new_items), skipped, list(result.notes))


def _known_fingerprints(conn: duckdb.DuckDBPyConnection, fingerprints: list[str]) -> set[str]:
    if not fingerprints:
        return set()
    rows = conn.execute(
        "SELECT fingerprint FROM free_ingest_items "
        "WHERE fingerprint IN (SELECT unnest(CAST(CAST(? AS JSON) AS VARCHAR[])))",
        [json.dumps(fingerprints)],  # one JSON text: DuckDB converts a Python list value by value
    ).fetchall()
    return {row[0] for row in rows}


# --- the inbox folder ------------------------------------------------------------------------------
@dataclass(frozen=True)
class InboxFile:
    path: Path
    mtime: float


@dataclass
class InboxOutcome:
    file: InboxFile
    moved_to: Path
    outcome: SubmissionOutcome | None  # None: the file could not be ingested
    error: str | None = None


def waiting_inbox_files(inbox_dir: Path, now: float, settle_seconds: float) -> list[InboxFile]:
    """Dropped .txt/.csv/.json files, oldest first, left alone until unchanged for `settle_seconds`
    (a file still being copied would otherwise be read half-written)."""
    if not inbox_dir.is_dir():
        return []
    found = []
    for path in inbox_dir.iterdir():
        if path.name.startswith(".") or path.suffix.lower() not in INBOX_EXTENSIONS or not path.is_file():
            continue
        stat = path.stat()
        if now - stat.st_mtime >= settle_seconds:
            found.append(InboxFile(path, stat.st_mtime))
    return sorted(found, key=lambda f: (f.mtime, f.path.name))


def ingest_inbox_file(database_path: Path | str, file: InboxFile) -> InboxOutcome | None:
    """Claim, record and move aside one inbox file: `processed/` (with a `.report.txt` listing skipped
    lines) or `failed/` (with a `.reason.txt`) when nothing in it could be read. None when the file was
    taken elsewhere (the sensor and the asset both look at the inbox)."""
    inbox_dir = file.path.parent
    name = f"{storage.utcnow().strftime('%Y%m%dT%H%M%S%fZ')}_{file.path.name}"
    (inbox_dir / "processing").mkdir(exist_ok=True)
    claimed = inbox_dir / "processing" / name
    try:
        file.path.rename(claimed)  # atomic: of two takers only one succeeds
    except FileNotFoundError:
        return None
    try:
        result = parse_submission(claimed.read_bytes(), file.path.name)
        if not result.items and result.rejections:
            raise IngestError("; ".join(f"line {r.line_number}: {r.reason}" for r in result.rejections[:20]))
    except (OSError, IngestError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        target = _move(claimed, inbox_dir / "failed")
        target.with_name(target.name + ".reason.txt").write_text(reason + "\n", encoding="utf-8")
        return InboxOutcome(file, target, None, reason)
    try:
        with storage.connect(database_path) as conn:
            outcome = record_submission(conn, result, f"inbox:{file.path.name}")
    except BaseException:
        claimed.rename(file.path)  # back into the inbox: read again by the next tick, never lost
        raise
    target = _move(claimed, inbox_dir / "processed")
    report = outcome.report_lines() + [f"accepted {outcome.accepted}, skipped {len(outcome.skipped)}"]
    target.with_name(target.name + ".report.txt").write_text("\n".join(report) + "\n", encoding="utf-8")
    return InboxOutcome(file, target, outcome)


def _move(path: Path, folder: Path) -> Path:
    folder.mkdir(exist_ok=True)
    return path.rename(folder / path.name)


def ingest_inbox(database_path: Path | str, inbox_dir: Path, now: float,
                 settle_seconds: float) -> list[InboxOutcome]:
    """Every waiting inbox file not taken elsewhere, recorded and moved aside."""
    taken = (ingest_inbox_file(database_path, f) for f in waiting_inbox_files(inbox_dir, now, settle_seconds))
    return [outcome for outcome in taken if outcome is not None]


# --- queue state ------------------------------------------------------------------------------------
def lookup_due_where() -> str:
    """SQL condition for items the next backfill looks up (one parameter: now)."""
    return "(state = 'pending' OR (state = 'unmatched' AND next_lookup_at <= ?))"


def backfill_work(conn: duckdb.DuckDBPyConnection, now: datetime) -> tuple[int, int]:
    """(items due for a lookup, newest submission id): what the inbox sensor keys its runs on."""
    due = conn.execute(f"SELECT count(*) FROM free_ingest_items WHERE {lookup_due_where()}", [now]).fetchone()[0]
    newest = conn.execute("SELECT coalesce(max(id), 0) FROM free_ingest_submissions").fetchone()[0]
    return due, newest
