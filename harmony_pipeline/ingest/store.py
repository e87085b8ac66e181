"""FREE ingest submissions recorded in DuckDB, shared by `harmony ingest`, the inbox sensor and the asset.

A submission is one file (or standard input). Its items are stored once per fingerprint across all
submissions: an item seen before is skipped with "already submitted" and keeps the submission it
first came from. Rejected lines are kept with the submission, with their line number and reason (the
first MAX_SKIPPED_LISTED of them; beyond that only their number, so a hostile file of millions of bad
lines costs no memory). A submission is recorded while it is parsed, so memory holds the text and one
chunk of items, not every item: in one transaction up to COMMIT_EVERY_ITEMS items, in committed steps
beyond (see record_submission).

Inbox files are claimed before they are read: renamed into `processing/` under a name that carries
the claim time, which only one of the inbox sensor and the free_ingest_items asset can do; then moved
to `processed/` or, when they cannot be read, `failed/` with a `.reason.txt`. So no file is read
twice, and a file taken elsewhere is skipped. A claim older than CLAIM_STALE_SECONDS belongs to a tick
or run that was killed: the next tick or run claims it again, so a kill never loses a submission
(a file whose claim was taken MAX_CLAIMS times goes to `failed/`). Files are opened without following
links and read through harmony_pipeline.safe_read.
"""

from __future__ import annotations

import heapq
import json
import os
import re
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import duckdb

from harmony_pipeline import storage
from harmony_pipeline.claims import file_claim_is_live, file_claim_tag
from harmony_pipeline.crashpoints import crashpoint
from harmony_pipeline.ingest.parser import (
    MAX_SUBMISSION_BYTES,
    IngestError,
    IngestItem,
    Outcome,
    ParsedSubmission,
    ParseResult,
    Rejection,
    iter_submission,
)
from harmony_pipeline.safe_read import ReadRefused, preview, read_submission

ALREADY_SUBMITTED = "already submitted"
INBOX_EXTENSIONS = (".txt", ".csv", ".json")
INSERT_CHUNK = 500  # items written per statement; progress advances per chunk
MAX_SKIPPED_LISTED = 10_000  # skipped lines kept with their reason per submission; the rest are counted
# A submission with more items is committed in steps of this many: DuckDB keeps an open transaction's
# rows in memory (about 600 bytes an item), a committed and checkpointed step on disk.
COMMIT_EVERY_ITEMS = 20_000
# A claim is held while one file (at most 5 MiB) is read, parsed and recorded: seconds, plus at most a
# minute waiting for the DuckDB lock. A claim older than this outlived the tick or run that made it.
CLAIM_STALE_SECONDS = 15 * 60
MAX_CLAIMS = 3  # a file whose ingest was interrupted this often is set aside instead of tried again
# Larger inbox files are left to the free_ingest_items asset in a run, so a sensor tick stays short.
SENSOR_MAX_BYTES = 512 * 1024


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
    skipped: list[Skipped]  # the first MAX_SKIPPED_LISTED skipped lines, in line order
    notes: list[str] = field(default_factory=list)
    not_listed: int = 0  # skipped lines beyond the listed ones

    @property
    def skipped_count(self) -> int:
        return len(self.skipped) + self.not_listed

    def report_lines(self, prefix: str = "") -> list[str]:
        """`line N: reason` for every skipped line (what `harmony ingest` prints)."""
        lines = [f"{prefix}line {s.line_number}: {s.reason}" for s in self.skipped]
        if self.not_listed:
            lines.append(f"{prefix}… and {self.not_listed:,} more skipped lines, not listed")
        return lines


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


def _outcomes(result: ParseResult | ParsedSubmission) -> Iterator[Outcome]:
    if isinstance(result, ParsedSubmission):
        return result.outcomes
    return heapq.merge(result.items, result.rejections, key=lambda outcome: outcome.line_number)


class _SkippedList:
    """Skipped lines, listed up to MAX_SKIPPED_LISTED and counted beyond."""

    def __init__(self) -> None:
        self.listed: list[Skipped] = []
        self.not_listed = 0

    def add(self, line_number: int, reason: str, raw: str) -> None:
        if len(self.listed) < MAX_SKIPPED_LISTED:
            self.listed.append(Skipped(line_number, reason, raw))
        else:
            self.not_listed += 1

    @property
    def count(self) -> int:
        return len(self.listed) + self.not_listed


def record_submission(
    conn: duckdb.DuckDBPyConnection,
    result: ParseResult | ParsedSubmission,
    source: str,
    progress: Callable[[int], None] | None = None,
    *,
    refuse_unreadable: bool = False,
) -> SubmissionOutcome:
    """Store one parsed submission chunk by chunk as it is parsed; `progress(n)` is told of items written.

    Up to COMMIT_EVERY_ITEMS items it is one transaction. A larger one is committed (and checkpointed)
    every COMMIT_EVERY_ITEMS items, with its counts, so DuckDB's memory stays that of one step: an
    interrupted large submission keeps its first steps, and submitting it again records the rest
    (the first part is then "already submitted"); nothing is lost or recorded twice.
    `refuse_unreadable`: IngestError (and nothing recorded) when the submission has rejected lines and
    not one item."""
    now = storage.utcnow()
    skipped = _SkippedList()
    accepted = items_seen = since_commit = 0
    refused_lines: list[Rejection] = []
    submitted_before: dict[bytes, int] = {}  # half fingerprint → first line, for items submitted earlier
    conn.execute("BEGIN TRANSACTION")
    try:
        submission_id = storage.next_id(conn, "free_ingest_submissions_id")
        conn.execute(
            "INSERT INTO free_ingest_submissions (id, source, format, submitted_at, accepted, skipped, rejected, "
            "notes) VALUES (?, ?, ?, ?, 0, 0, '[]', ?)",
            [submission_id, source, result.format, now, result.notes or None],
        )

        def flush(chunk: list[IngestItem]) -> None:
            nonlocal accepted, since_commit
            # A fingerprint recorded by this submission is a duplicate line (DuckDB remembers where
            # it came first, so no set of every fingerprint is held in memory); by another, already submitted.
            known = _known_items(conn, [item.fingerprint for item in chunk])
            first_in_chunk: dict[str, int] = {}
            new_items = []
            for item in chunk:
                if item.fingerprint in known:
                    first_submission, first_line = known[item.fingerprint]
                    if first_submission != submission_id:  # only these are kept in memory, to name their line
                        first_line = submitted_before.setdefault(bytes.fromhex(item.fingerprint[:32]),
                                                                 item.line_number)
                    reason = ALREADY_SUBMITTED if first_line == item.line_number else f"duplicate of line {first_line}"
                    skipped.add(item.line_number, reason, item.raw)
                elif item.fingerprint in first_in_chunk:
                    skipped.add(item.line_number, f"duplicate of line {first_in_chunk[item.fingerprint]}", item.raw)
                else:
                    first_in_chunk[item.fingerprint] = item.line_number
                    new_items.append(item)
            _insert_items(conn, [_item_row(item, submission_id, now) for item in new_items])
            accepted += len(new_items)
            since_commit += len(chunk)
            if progress:
                progress(len(chunk))
            if since_commit >= COMMIT_EVERY_ITEMS:
                _save_counts(conn, submission_id, accepted, skipped)
                conn.execute("COMMIT")
                _checkpoint(conn)
                conn.execute("BEGIN TRANSACTION")
                since_commit = 0

        chunk: list[IngestItem] = []
        for outcome in _outcomes(result):
            if isinstance(outcome, Rejection):
                skipped.add(outcome.line_number, outcome.reason, outcome.raw)
                if len(refused_lines) < 20:
                    refused_lines.append(outcome)
                continue
            items_seen += 1
            chunk.append(outcome)
            if len(chunk) >= INSERT_CHUNK:
                flush(chunk)
                chunk = []
        if chunk:
            flush(chunk)
        if refuse_unreadable and not items_seen and refused_lines:  # nothing committed yet: no item came
            raise IngestError("; ".join(f"line {r.line_number}: {r.reason}" for r in refused_lines))
        _save_counts(conn, submission_id, accepted, skipped)
        storage.record_activity(conn, "free_ingest_submitted", {
            "source": source, "submission": submission_id, "accepted": accepted, "skipped": skipped.count})
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return SubmissionOutcome(submission_id, source, accepted, skipped.listed, list(result.notes), skipped.not_listed)


def _save_counts(conn: duckdb.DuckDBPyConnection, submission_id: int, accepted: int, skipped: _SkippedList) -> None:
    skipped.listed.sort(key=lambda s: s.line_number)
    rejected = json.dumps([{"line": s.line_number, "reason": s.reason, "raw": s.raw} for s in skipped.listed],
                          ensure_ascii=False)
    conn.execute("UPDATE free_ingest_submissions SET accepted = ?, skipped = ?, rejected = ? WHERE id = ?",
                 [accepted, skipped.count, rejected, submission_id])


def _checkpoint(conn: duckdb.DuckDBPyConnection) -> None:
    """Write the committed rows out of memory; skipped while another transaction of this process is open."""
    try:
        conn.execute("CHECKPOINT")
    except duckdb.Error:
        pass


def _known_items(conn: duckdb.DuckDBPyConnection, fingerprints: list[str]) -> dict[str, tuple[int, int]]:
    """fingerprint → (submission id, line number) of the items already recorded."""
    if not fingerprints:
        return {}
    rows = conn.execute(
        "SELECT fingerprint, submission_id, line_number FROM free_ingest_items "
        "WHERE fingerprint IN (SELECT unnest(CAST(CAST(? AS JSON) AS VARCHAR[])))",
        [json.dumps(fingerprints)],  # one JSON text: DuckDB converts a Python list value by value
    ).fetchall()
    return {fingerprint: (submission, line) for fingerprint, submission, line in rows}


_ITEM_COLUMNS: dict[str, str] = {}


def _insert_items(conn: duckdb.DuckDBPyConnection, rows: list[dict]) -> None:
    """A plain INSERT of new items: their fingerprints were just checked in this transaction, and an
    ON CONFLICT clause costs DuckDB several times the memory per row."""
    if not rows:
        return
    columns = list(rows[0])
    if not _ITEM_COLUMNS:
        _ITEM_COLUMNS.update(conn.execute(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'free_ingest_items'"
        ).fetchall())
    structure = json.dumps([{c: storage.json_structure_type(_ITEM_COLUMNS[c]) for c in columns}])
    payload = json.dumps(rows, default=storage._json_value, ensure_ascii=False)
    conn.execute(
        f"INSERT INTO free_ingest_items ({', '.join(columns)}) SELECT {', '.join(f'r.{c}' for c in columns)} "
        "FROM (SELECT unnest(from_json(?::JSON, ?)) AS r)", [payload, structure])


# --- the inbox folder ------------------------------------------------------------------------------
_CLAIM_RE = re.compile(r"(?P<time>\d{8}T\d{12}Z)(?:-(?P<claims>\d+))?(?:~(?P<owner>[0-9a-f]{6}\.\d+\.\d+))?"
                       r"_(?P<name>.+)", re.DOTALL)


@dataclass(frozen=True)
class InboxFile:
    path: Path
    mtime: float
    size: int = 0
    claims: int = 0  # > 0: a stale claim in processing/, taken back from a tick or run that died

    @property
    def name(self) -> str:
        """The name it was dropped with."""
        if self.claims:
            match = _CLAIM_RE.fullmatch(self.path.name)
            assert match is not None
            return match["name"]
        return self.path.name

    @property
    def inbox_dir(self) -> Path:
        return self.path.parent.parent if self.claims else self.path.parent


@dataclass
class InboxOutcome:
    file: InboxFile
    moved_to: Path
    outcome: SubmissionOutcome | None  # None: the file could not be ingested
    error: str | None = None  # a short, sanitised reason (the whole one is in the .reason.txt file)


def waiting_inbox_files(inbox_dir: Path, now: float, settle_seconds: float,
                        stale_seconds: float = CLAIM_STALE_SECONDS) -> list[InboxFile]:
    """Dropped .txt/.csv/.json entries, oldest first, left alone until unchanged for `settle_seconds`
    (a file still being copied would otherwise be read half-written), then claims in `processing/`
    older than `stale_seconds`. Entries are looked at with lstat: a link or FIFO is listed (and
    refused when claimed), never followed."""
    if not inbox_dir.is_dir():
        return []
    found = []
    for entry in os.scandir(inbox_dir):
        if entry.name.startswith(".") or os.path.splitext(entry.name)[1].lower() not in INBOX_EXTENSIONS:
            continue
        info = entry.stat(follow_symlinks=False)
        if stat.S_ISDIR(info.st_mode):
            continue
        if now - info.st_mtime >= settle_seconds:
            found.append(InboxFile(Path(entry.path), info.st_mtime, info.st_size))
    found.sort(key=lambda f: (f.mtime, f.path.name))
    return found + _stale_claims(inbox_dir / "processing", now, stale_seconds)


def _stale_claims(processing: Path, now: float, stale_seconds: float) -> list[InboxFile]:
    if not processing.is_dir():
        return []
    stale = []
    for entry in os.scandir(processing):
        claimed_at = _claim_time(entry.name)
        if claimed_at is None:
            continue
        match = _CLAIM_RE.fullmatch(entry.name)
        # Taken back at once when the claiming process is gone (killed); after the timeout otherwise.
        owner_gone = match["owner"] is not None and file_claim_is_live(match["owner"]) is False
        if not owner_gone and now - claimed_at < stale_seconds:
            continue
        info = entry.stat(follow_symlinks=False)
        stale.append(InboxFile(Path(entry.path), claimed_at, info.st_size, claims=int(match["claims"] or 1)))
    return sorted(stale, key=lambda f: (f.mtime, f.path.name))


def _claim_time(name: str) -> float | None:
    match = _CLAIM_RE.fullmatch(name)
    if match is None:
        return None
    return datetime.strptime(match["time"], "%Y%m%dT%H%M%S%fZ").replace(tzinfo=timezone.utc).timestamp()


def ingest_inbox_file(database_path: Path | str, file: InboxFile) -> InboxOutcome | None:
    """Claim, record and move aside one inbox file: `processed/` (with a `.report.txt` listing skipped
    lines) or `failed/` (with a `.reason.txt`) when nothing in it could be read. None when the file was
    taken elsewhere (the sensor and the asset both look at the inbox)."""
    inbox_dir = file.inbox_dir
    claims = file.claims + 1
    stamp = (storage.utcnow().strftime("%Y%m%dT%H%M%S%fZ") + (f"-{claims}" if claims > 1 else "")
             + f"~{file_claim_tag()}")
    (inbox_dir / "processing").mkdir(exist_ok=True)
    claimed = inbox_dir / "processing" / f"{stamp}_{file.name}"
    try:
        file.path.rename(claimed)  # atomic: of two takers only one succeeds
    except FileNotFoundError:
        return None
    crashpoint("ingest.after_claim")
    if claims > MAX_CLAIMS:
        return _fail(file, claimed, f"set aside: reading it was interrupted {file.claims} times "
                                    "(the tick or run was killed or timed out)")
    try:
        data = read_submission(claimed, MAX_SUBMISSION_BYTES, inbox=True)
        parsed = iter_submission(data, file.name, deduplicate=False)
        del data
    except ReadRefused as refused:
        return _fail(file, claimed, str(refused).replace(str(claimed), file.name))
    except (OSError, IngestError) as error:
        return _fail(file, claimed, error.strerror if isinstance(error, OSError) and error.strerror else str(error))
    try:
        with storage.connect(database_path) as conn:
            outcome = record_submission(conn, parsed, f"inbox:{file.name}", refuse_unreadable=True)
    except IngestError as error:
        return _fail(file, claimed, str(error))
    except BaseException:
        _return_to_inbox(claimed, inbox_dir / file.name)  # read again by the next tick, never lost
        raise
    target = _move(claimed, inbox_dir / "processed")
    report = outcome.report_lines() + [f"accepted {outcome.accepted}, skipped {outcome.skipped_count}"]
    target.with_name(target.name + ".report.txt").write_text("\n".join(report) + "\n", encoding="utf-8")
    return InboxOutcome(file, target, outcome)


def _fail(file: InboxFile, claimed: Path, reason: str) -> InboxOutcome:
    target = _move(claimed, file.inbox_dir / "failed")
    target.with_name(target.name + ".reason.txt").write_text(reason + "\n", encoding="utf-8")
    return InboxOutcome(file, target, None, preview(reason, 120))


def _return_to_inbox(claimed: Path, destination: Path) -> None:
    """Back under the dropped name, unless a new file took that name meanwhile: then the claim stays
    in processing/ and is taken back once stale. A link never replaces an existing file."""
    try:
        os.link(claimed, destination, follow_symlinks=False)
    except OSError:
        return
    os.unlink(claimed)


def _move(path: Path, folder: Path) -> Path:
    folder.mkdir(exist_ok=True)
    return path.rename(folder / path.name)


def ingest_inbox(database_path: Path | str, inbox_dir: Path, now: float,
                 settle_seconds: float, stale_seconds: float = CLAIM_STALE_SECONDS) -> list[InboxOutcome]:
    """Every waiting inbox file (and stale claim) not taken elsewhere, recorded and moved aside."""
    taken = (ingest_inbox_file(database_path, f)
             for f in waiting_inbox_files(inbox_dir, now, settle_seconds, stale_seconds))
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
