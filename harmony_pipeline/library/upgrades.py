"""Quality upgrades, without Dagster: library files below the HARMONY_QUALITY cutoff replaced by better ones.

Only files the pipeline imported (`library_tracks`) are upgraded; the user's own files are never touched.
A run first settles upgrade transfers that finished, then searches a few tracks below the cutoff, at a
low priority: only when no wanted track waits for a search, through the shared search budget.

Runs overlap, so upgrades follow the model of downloads and imports (acquisition_state.py, claims.py):
every write is conditional on the version a row was read at (state, updated_at), and a row mid-transition
carries the claim of the process doing it; a claim whose process is gone is finished or undone by the
next run. States:

  searching   claimed: this process searches the track
  enqueuing   claimed: asking slskd for the better file (`enqueued_at`); a dead claim becomes
              `downloading` if slskd has the transfer, else it is undone (no attempt spent)
  downloading the transfer is on slskd; matched to the newest transfer of that file requested for this
              attempt; missing after MISSING_GRACE, queued beyond QUEUE_GIVE_UP or failed → `failed`
  replacing   claimed, with the target path and the old file to remove recorded before anything moves
  replaced / no_better / failed   waiting for `next_check_at` (failed: exponential backoff)

A replacement: the download is checked (readable, right length, the right recording, really better) →
`replacing` committed (new_path; remove_path = the old file when the new one has another name) → the old
file's tags, Spotify id and cover written into the download → the download copied to a temporary file
next to the target and renamed over it (same name and extension: replaced in place, the library path and
the playlists stay valid) → the new file verified → library row, `replaced` and the `track_upgraded`
event in one transaction → the old file removed, then `remove_path` cleared. A run that dies after the
commit leaves `remove_path`: the next run removes it, unless the library points to it again.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from harmony_pipeline import storage
from harmony_pipeline.acquisition.state import searches_due
from harmony_pipeline.enrichment.artwork import ArtworkError, embed_cover, existing_cover, existing_cover_bytes
from harmony_pipeline.acquisition.audio_verification import verify_download
from harmony_pipeline.acquisition.backoff import next_attempt_at
from harmony_pipeline.claims import claim_is_live, process_token
from harmony_pipeline.crashpoints import crashpoint
from harmony_pipeline.acquisition.download_flow import (
    MISSING_GRACE,
    QUEUE_GIVE_UP,
    belongs_to_attempt,
    local_file,
    newest_transfers,
)
from harmony_pipeline.library.import_tags import read_spotify_id, tag_in_place_atomically
from harmony_pipeline.acquisition.library_import import (
    AudioCheckError,
    _copy_into_place,
    check_download,
    inspect_audio,
    quarantine,
)
from harmony_pipeline.library.paths import resolve_inside, same_content, unique_destination
from harmony_pipeline.library.quality import QualityProfile
from harmony_pipeline.acquisition.search import SearchSession, decide_match
from harmony_pipeline.enrichment.tagging import TaggingError, read_tags

RECHECK_AFTER = timedelta(days=7)  # no better file found: look again after this
FAILED_RETRY_BASE_SECONDS = 1800  # a failed upgrade waits 1 h, 2 h, 4 h… (backoff.py: 2^min(attempts, 6) × this)
FAILED_RETRY_JITTER = 0.2
SEARCHES_PER_RUN = 5  # low priority: a few tracks per run
CLAIMED_STATES = ("searching", "enqueuing", "replacing")
UPGRADE_COLUMNS = (
    "wanted_key", "state", "old_path", "new_path", "username", "filename", "size", "local_path", "from_quality",
    "to_quality", "attempts", "last_error", "next_check_at", "updated_at", "claimed_by", "enqueued_at",
    "remove_path",
)
_TRACKS_SQL = (
    "SELECT l.wanted_key, l.path, l.format, l.bitrate, w.* EXCLUDE (wanted_key, state, updated_at), "
    "u.state AS upgrade_state, u.attempts AS upgrade_attempts, u.next_check_at, "
    "u.updated_at AS upgrade_updated_at, u.claimed_by AS upgrade_claimed_by "
    "FROM library_tracks l JOIN wanted_tracks w USING (wanted_key) "
    "LEFT JOIN library_upgrades u USING (wanted_key) "
    "WHERE u.wanted_key IS NULL OR u.state = 'searching' "
    "OR (u.state IN ('no_better', 'failed', 'replaced') AND u.next_check_at <= ? AND u.remove_path IS NULL) "
    "ORDER BY l.imported_at, l.wanted_key"
)
_UPGRADE_SQL = ("SELECT u.*, w.artist, w.title, w.duration_ms, w.isrc FROM library_upgrades u "
                "JOIN wanted_tracks w USING (wanted_key) WHERE ")


@dataclass
class UpgradeSetup:
    database: Any
    client: Any  # SlskdClient: enqueue, transfers, completed_local_paths, cancel
    search: Callable[[str], list[dict]]  # one slskd search to completion
    profile: QualityProfile
    library_root: Path
    downloads_dir: Path
    remote_downloads_dir: str | None
    quarantine_dir: Path
    search_limit: int
    search_window_seconds: int
    log: Any = logging.getLogger(__name__)
    verifier: Any = None  # audio_verification.Verifier: the same checks as every import


@dataclass
class UpgradeReport:
    searched: int = 0
    enqueued: int = 0
    replaced: list[dict[str, Any]] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)
    no_better: int = 0
    removed: list[str] = field(default_factory=list)  # old files removed by this run
    deferred: str | None = None  # why no search ran

    @property
    def did_something(self) -> bool:
        return bool(self.searched or self.enqueued or self.replaced or self.failed or self.removed)


def quality_label(file_format: str | None, bitrate: int | None) -> str:
    return f"{file_format} {bitrate} kbps" if bitrate else f"{file_format}"


# --- conditional writes ------------------------------------------------------------------------------
def load_upgrades(conn, where: str, params: list | None = None) -> list[dict[str, Any]]:
    """Upgrade rows with their track's fields, each remembering the version it was read at."""
    rows = storage.fetch_dicts(conn, _UPGRADE_SQL + where, params or [])
    for row in rows:
        row["_version"] = (row["state"], row["updated_at"])
    return rows


def save_upgrade(conn, row: dict[str, Any]) -> bool:
    """Write `row` where the stored row still has the version `row` was read at (a new row: where none
    exists). False when another run got there first."""
    stored = {c: row.get(c) for c in UPGRADE_COLUMNS}
    stored["updated_at"] = row["updated_at"] = storage.utcnow()
    return storage.save_versioned(conn, "library_upgrades", row, stored)


def _remove_row(conn, row: dict[str, Any]) -> bool:
    return storage.remove_versioned(conn, "library_upgrades", row)


def _held_elsewhere(row: dict[str, Any]) -> bool:
    """Claimed by another process that still runs: not ours to touch."""
    return (row["state"] in CLAIMED_STATES and row.get("claimed_by") != process_token()
            and claim_is_live(row.get("claimed_by"), row["updated_at"]))


def _label(row: dict[str, Any]) -> str:
    return f"{row['artist']} – {row['title']}"


def failed_retry_at(now: datetime, attempts: int) -> datetime:
    return next_attempt_at(now, max(attempts, 1), FAILED_RETRY_BASE_SECONDS, FAILED_RETRY_JITTER)


def _fail(setup: UpgradeSetup, row: dict[str, Any], reason: str, report: UpgradeReport) -> bool:
    """The attempt failed: recorded, and the track waits (backoff) before it is searched again.
    False when another run changed the row first."""
    row.update(state="failed", last_error=reason, claimed_by=None, remove_path=None,
               next_check_at=failed_retry_at(storage.utcnow(), row.get("attempts") or 1))
    with setup.database.connect() as conn, storage.transaction(conn):
        if not save_upgrade(conn, row):
            return False
        storage.record_activity(conn, "track_upgrade_failed", {"track": _label(row), "reason": reason,
                                                               "next_check_at": row["next_check_at"].isoformat()})
    setup.log.warning(f"{_label(row)}: upgrade failed: {reason}")
    report.failed.append({"track": _label(row), "reason": reason})
    return True


# --- 1. settle transfers, half-done replacements and old files left behind -----------------------------
def settle_upgrades(setup: UpgradeSetup, report: UpgradeReport) -> None:
    with setup.database.connect(read_only=True) as conn:
        rows = [r for r in load_upgrades(conn, "u.state IN ('enqueuing', 'downloading', 'replacing') "
                                               "OR (u.state = 'replaced' AND u.remove_path IS NOT NULL)")
                if not _held_elsewhere(r)]
    if not rows:
        return
    for row in [r for r in rows if r["state"] == "replaced"]:
        remove_old_file(setup, row, report)
    waiting = [r for r in rows if r["state"] in ("enqueuing", "downloading")]
    transfers, reported = {}, {}
    if waiting:
        transfers = newest_transfers(setup.client.transfers())
        if any(t.succeeded for t in transfers.values()):
            reported = setup.client.completed_local_paths()
    now = storage.utcnow()
    for row in waiting:
        transfer = transfers.get((row["username"], row["filename"]))
        if transfer is not None and not belongs_to_attempt(transfer, row):
            transfer = None  # an earlier attempt's transfer of the same file
        started = row.get("enqueued_at") or row["updated_at"]
        if row["state"] == "enqueuing":  # its process died between the claim and slskd's answer
            _settle_dead_enqueue(setup, row, transfer is not None)
        elif transfer is None:
            if now - started > MISSING_GRACE:
                _fail(setup, row, "transfer missing from slskd", report)
        elif not transfer.is_terminal:
            if now - started > QUEUE_GIVE_UP and _fail(
                    setup, row, f"still {transfer.state} after {QUEUE_GIVE_UP}", report):
                setup.client.cancel(transfer.username, transfer.id)
        elif not transfer.succeeded:
            _fail(setup, row, f"transfer {transfer.state}" + (f": {transfer.exception}" if transfer.exception
                                                              else ""), report)
        else:
            path = local_file(setup, transfer, reported)
            if path is None or not path.is_file():
                _fail(setup, row, "the finished file was not found in the downloads folder", report)
                continue
            row["local_path"] = str(path)
            replace_file(setup, row, report)
    for row in [r for r in rows if r["state"] == "replacing"]:
        replace_file(setup, row, report)  # a replacement whose run died: finished from what it recorded


def _settle_dead_enqueue(setup: UpgradeSetup, row: dict[str, Any], on_slskd: bool) -> None:
    if on_slskd:
        row.update(state="downloading", claimed_by=None)
    else:  # the attempt never happened: no attempt spent, searched again at once
        row.update(state="failed", claimed_by=None, attempts=max((row.get("attempts") or 1) - 1, 0),
                   next_check_at=storage.utcnow(),
                   last_error="the run enqueuing it stopped before slskd had the transfer")
    with setup.database.connect() as conn:
        save_upgrade(conn, row)


def replacement_target(old: Path, source: Path) -> Path:
    """Where the better file goes: the old file's own path when the extension is the same (replaced in
    place), else the same name with the new extension ("(2)" only for a different file there)."""
    target = old.with_suffix(source.suffix.lower())
    return old if target == old else unique_destination(target, same_as=source)


def _bitrate_of(label: str | None) -> int | None:
    parts = (label or "").split()
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None


def _better(setup: UpgradeSetup, row: dict[str, Any], file_format: str | None, bitrate: int | None) -> bool:
    old_format = (row["from_quality"] or "").split()[0] if row.get("from_quality") else \
        Path(row["old_path"]).suffix.lstrip(".")
    return setup.profile.tier_of(file_format, bitrate) < setup.profile.tier_of(old_format,
                                                                              _bitrate_of(row["from_quality"]))


def replace_file(setup: UpgradeSetup, row: dict[str, Any], report: UpgradeReport) -> None:
    old = resolve_inside(setup.library_root, row["old_path"])
    source = Path(row["local_path"]) if row.get("local_path") else None
    if row["state"] == "downloading":
        try:
            info = check_download(source, row.get("duration_ms"))
            # Silent, truncated or another recording: never replaces the library's good file.
            verify_download(source, {"isrc": row.get("isrc")}, setup.verifier)
        except AudioCheckError as error:
            if _fail(setup, row, f"file rejected: {error}", report) and source.is_file():
                quarantine(source, setup.quarantine_dir, str(error))
            return
        if not _better(setup, row, info.format, info.bitrate_kbps):
            if _fail(setup, row, f"the download is {quality_label(info.format, info.bitrate_kbps)}, not better",
                     report) and source.is_file():
                quarantine(source, setup.quarantine_dir, f"not better than the library's {row['from_quality']}")
            return
        target = replacement_target(old, source)
        relative = target.relative_to(setup.library_root.resolve()).as_posix()
        # Where the file goes and which file then goes away are recorded before anything moves.
        row.update(state="replacing", new_path=relative, claimed_by=process_token(),
                   remove_path=None if target == old else row["old_path"],
                   to_quality=quality_label(info.format, info.bitrate_kbps))
        with setup.database.connect() as conn:
            if not save_upgrade(conn, row):
                return  # another run took this replacement
        crashpoint("upgrade.after_claim")
    elif row.get("claimed_by") != process_token():
        row["claimed_by"] = process_token()  # taking over a dead run's replacement
        with setup.database.connect() as conn:
            if not save_upgrade(conn, row):
                return
    target = resolve_inside(setup.library_root, row["new_path"])
    try:
        swap_in(old, source, target)
        crashpoint("upgrade.after_swap")
        info = inspect_audio(target)
    except (OSError, TaggingError, ArtworkError, ValueError, AudioCheckError) as error:
        _fail(setup, row, f"could not replace the file: {error}", report)
        return
    if not _better(setup, row, info.format, info.bitrate_kbps):  # the swap never happened: nothing to record
        _fail(setup, row, "the downloaded file is gone", report)
        return
    now = storage.utcnow()
    with setup.database.connect() as conn, storage.transaction(conn):
        row.update(state="replaced", claimed_by=None, next_check_at=now + RECHECK_AFTER, last_error=None,
                   local_path=None)
        if not save_upgrade(conn, row):
            return
        conn.execute(
            "UPDATE library_tracks SET path = ?, format = ?, bitrate = ?, duration_s = ?, sample_rate = ?, "
            "size_bytes = ?, source = ?, source_filename = ? WHERE wanted_key = ?",
            [row["new_path"], info.format, info.bitrate_kbps, info.duration_seconds, info.sample_rate,
             target.stat().st_size, f"soulseek:{row['username']}", row["filename"], row["wanted_key"]])
        storage.record_activity(conn, "track_upgraded", {
            "track": _label(row), "from": row["from_quality"], "to": row["to_quality"], "path": row["new_path"]})
    report.replaced.append({"track": _label(row), "from": row["from_quality"], "to": row["to_quality"]})
    crashpoint("upgrade.after_commit")
    remove_old_file(setup, row, report)


def swap_in(old: Path, source: Path | None, target: Path) -> None:
    """Put the checked download at `target` with the old file's tags and cover; idempotent, so a run that
    died anywhere in here is finished by the next one. The download is copied to a temporary file next to
    `target` and renamed over it: a reader sees the old file or the new one, never a part."""
    if source is None or not source.is_file():
        return  # already moved (the caller checks that the file in place is the better one)
    if target.is_file() and same_content(source, target):
        source.unlink()  # swapped by a run that died before removing the download
        return
    if target.is_file() and target != old:
        raise FileExistsError(f"{target} appeared meanwhile")
    if old.is_file():
        _carry_over(old, source)
    target.parent.mkdir(parents=True, exist_ok=True)
    _copy_into_place(source, target)
    source.unlink()


def remove_old_file(setup: UpgradeSetup, row: dict[str, Any], report: UpgradeReport) -> None:
    """Remove the replaced file recorded in `remove_path`, once: only a file the pipeline imported (it was
    the track's library path) that no library row points to any more."""
    relative = row.get("remove_path")
    if not relative:
        return
    with setup.database.connect(read_only=True) as conn:
        in_use = conn.execute("SELECT count(*) FROM library_tracks WHERE path = ?", [relative]).fetchone()[0]
    if not in_use and relative != row.get("new_path"):
        try:
            resolve_inside(setup.library_root, relative).unlink(missing_ok=True)
        except (OSError, ValueError) as error:
            setup.log.warning(f"{_label(row)}: could not remove the replaced file {relative}: {error}")
            return  # tried again by the next run
        report.removed.append(relative)
    row["remove_path"] = None
    with setup.database.connect() as conn:
        save_upgrade(conn, row)


def _carry_over(old: Path, new: Path) -> None:
    """The old file's tags, Spotify id and cover into the new one (the `.lrc` sidecar keeps its name)."""
    tags = read_tags(old)
    tag_in_place_atomically(new, tags, read_spotify_id(old))
    cover = existing_cover_bytes(old)
    if cover:
        info = existing_cover(old)
        embed_cover(new, cover, info.mime if info and info.mime in ("image/jpeg", "image/png") else "image/jpeg")


# --- 2. search a few tracks below the cutoff ------------------------------------------------------
def tracks_below_cutoff(conn, profile: QualityProfile, now: datetime) -> list[dict[str, Any]]:
    """Tracks below the cutoff due for an upgrade search (a search whose process died is due again)."""
    return [r for r in storage.fetch_dicts(conn, _TRACKS_SQL, [now])
            if profile.below_cutoff(r["format"], r["bitrate"]) and not (
                r["upgrade_state"] == "searching" and claim_is_live(r["upgrade_claimed_by"], r["upgrade_updated_at"]))]


def _claim_search(conn, track: dict[str, Any]) -> dict[str, Any] | None:
    row = {"wanted_key": track["wanted_key"], "state": "searching", "claimed_by": process_token(),
           "old_path": track["path"], "from_quality": quality_label(track["format"], track["bitrate"]),
           "attempts": track["upgrade_attempts"] or 0, "artist": track["artist"], "title": track["title"]}
    if track["upgrade_state"] is not None:
        row["_version"] = (track["upgrade_state"], track["upgrade_updated_at"])
    before = track["upgrade_state"]
    if not save_upgrade(conn, row):
        return None
    row["_before"] = before
    return row


def _release_search(conn, row: dict[str, Any]) -> None:
    """A claimed search that did not run (budget spent): due again as it was."""
    if row["_before"] in (None, "searching"):
        _remove_row(conn, row)
    else:
        row.update(state=row["_before"], claimed_by=None, next_check_at=storage.utcnow())
        save_upgrade(conn, row)


def search_upgrades(setup: UpgradeSetup, report: UpgradeReport) -> None:
    from harmony_pipeline.acquisition.slskd import SlskdError, SlskdUnavailable

    now = storage.utcnow()
    with setup.database.connect() as conn:  # read-write: applies this concern's migrations on first use
        if searches_due(conn, now):
            report.deferred = "wanted tracks wait for a search: they go first"
            return
        todo = tracks_below_cutoff(conn, setup.profile, now)[:SEARCHES_PER_RUN]
        blocked = {(u, f) for u, f in conn.execute("SELECT username, filename FROM blocked_candidates").fetchall()}
        with storage.transaction(conn):
            claimed = [(track, row) for track in todo if (row := _claim_search(conn, track)) is not None]
    if not claimed:
        return
    session = SearchSession(search=setup.search, database=setup.database,
                            limit=setup.search_limit, window_seconds=setup.search_window_seconds, log=setup.log)
    for index, (track, row) in enumerate(claimed):
        decision = decide_match(track, None, session, blocked, setup.profile)
        if decision["status"] == "deferred":
            report.deferred = "search budget spent"
            with setup.database.connect() as conn:
                for _, left in claimed[index:]:
                    _release_search(conn, left)
            break
        report.searched += 1
        current = setup.profile.tier_of(track["format"], track["bitrate"])
        better = [c for c in json.loads(decision["candidates"] or "[]")
                  if setup.profile.tier_of(c["extension"], c.get("bitrate")) < current]
        if not better:
            row.update(state="no_better", claimed_by=None, next_check_at=storage.utcnow() + RECHECK_AFTER)
            with setup.database.connect() as conn:
                report.no_better += save_upgrade(conn, row)
            continue
        best = better[0]
        row.update(state="enqueuing", username=best["username"], filename=best["filename"], size=best.get("size"),
                   attempts=row["attempts"] + 1, next_check_at=None, local_path=None, new_path=None,
                   to_quality=None, last_error=None, enqueued_at=storage.utcnow())
        with setup.database.connect() as conn:
            if not save_upgrade(conn, row):
                continue
        crashpoint("upgrade.after_enqueue_claim")
        try:
            setup.client.enqueue(best["username"], best["filename"], best.get("size"))
        except SlskdUnavailable as error:
            # slskd itself is down: no attempt spent (sent without an answer: the next run asks slskd).
            with setup.database.connect() as conn:
                for _, left in claimed[index + 1:]:
                    _release_search(conn, left)
                if error.maybe_done:
                    row["claimed_by"] = None
                    save_upgrade(conn, row)
                else:
                    row.update(attempts=row["attempts"] - 1)
                    _release_search(conn, row)
            raise
        except SlskdError as error:
            _fail(setup, row, f"enqueue refused: {error}", report)
            continue
        crashpoint("upgrade.after_enqueue")
        row.update(state="downloading", claimed_by=None)
        with setup.database.connect() as conn:
            report.enqueued += save_upgrade(conn, row)


def run_upgrades(setup: UpgradeSetup) -> UpgradeReport:
    report = UpgradeReport()
    settle_upgrades(setup, report)
    search_upgrades(setup, report)
    return report
