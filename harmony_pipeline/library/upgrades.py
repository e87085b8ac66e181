"""Quality upgrades, without Dagster: library files below the HARMONY_QUALITY cutoff replaced by better ones.

Only files the pipeline imported (`library_tracks`) are upgraded; the user's own files are never touched.
A run first settles upgrade transfers that finished, then searches a few tracks below the cutoff, at a
low priority: only when no wanted track waits for a search, through the shared search budget. A better
correct file (a higher tier of the profile) is downloaded with slskd, checked (readable, right length,
really of the better quality) and put in place of the old one:

  replacing  the new path is recorded first (a run killed later finishes the job from there)
  → the old file's tags, Spotify id and cover are written into the download (a tagged copy, one rename)
  → the download is moved into the library next to the old file (same name, its own extension; the
    `.lrc` sidecar keeps fitting it) → the library row points at it → the old file is removed
  → `track_upgraded` activity event.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import Any

from harmony_pipeline import storage
from harmony_pipeline.acquisition.state import searches_due
from harmony_pipeline.enrichment.artwork import ArtworkError, embed_cover, existing_cover, existing_cover_bytes
from harmony_pipeline.acquisition.download_flow import local_file
from harmony_pipeline.acquisition.audio_verification import verify_download
from harmony_pipeline.library.import_tags import read_spotify_id, tag_in_place_atomically
from harmony_pipeline.acquisition.library_import import (
    AudioCheckError,
    check_download,
    import_into_library,
    inspect_audio,
    quarantine,
)
from harmony_pipeline.library.paths import resolve_inside, unique_destination
from harmony_pipeline.library.quality import QualityProfile
from harmony_pipeline.acquisition.search import SearchSession, decide_match
from harmony_pipeline.enrichment.tagging import TaggingError, read_tags

RECHECK_AFTER = timedelta(days=7)  # no better file found: look again after this
FAILED_RETRY_AFTER = timedelta(days=1)
SEARCHES_PER_RUN = 5  # low priority: a few tracks per run
UPGRADE_COLUMNS = (
    "wanted_key", "state", "old_path", "new_path", "username", "filename", "size", "local_path", "from_quality",
    "to_quality", "attempts", "last_error", "next_check_at", "updated_at",
)
_TRACKS_SQL = (
    "SELECT l.wanted_key, l.path, l.format, l.bitrate, w.* EXCLUDE (wanted_key, state, updated_at), "
    "u.state AS upgrade_state, u.attempts AS upgrade_attempts, u.next_check_at "
    "FROM library_tracks l JOIN wanted_tracks w USING (wanted_key) "
    "LEFT JOIN library_upgrades u USING (wanted_key) "
    "WHERE u.wanted_key IS NULL OR (u.state IN ('no_better', 'failed', 'replaced') AND u.next_check_at <= ?) "
    "ORDER BY l.imported_at, l.wanted_key"
)


@dataclass
class UpgradeSetup:
    database: Any
    client: Any  # SlskdClient: enqueue, transfers, completed_local_paths
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
    deferred: str | None = None  # why no search ran

    @property
    def did_something(self) -> bool:
        return bool(self.searched or self.enqueued or self.replaced or self.failed)


def quality_label(file_format: str | None, bitrate: int | None) -> str:
    return f"{file_format} {bitrate} kbps" if bitrate else f"{file_format}"


def _save(conn, row: dict[str, Any]) -> None:
    storage.upsert(conn, "library_upgrades", [{c: row.get(c) for c in UPGRADE_COLUMNS}], key=["wanted_key"])


def _label(row: dict[str, Any]) -> str:
    return f"{row['artist']} – {row['title']}"


# --- 1. settle finished transfers and half-done replacements --------------------------------------
def settle_upgrades(setup: UpgradeSetup, report: UpgradeReport) -> None:
    with setup.database.connect(read_only=True) as conn:
        rows = storage.fetch_dicts(
            conn, "SELECT u.*, w.artist, w.title, w.duration_ms, w.isrc FROM library_upgrades u "
            "JOIN wanted_tracks w USING (wanted_key) WHERE u.state IN ('downloading', 'replacing')")
    if not rows:
        return
    transfers = {(t.username, t.filename): t for t in setup.client.transfers()}
    reported = setup.client.completed_local_paths() if any(t.succeeded for t in transfers.values()) else {}
    for row in rows:
        if row["state"] == "downloading":
            transfer = transfers.get((row["username"], row["filename"]))
            if transfer is None or not transfer.is_terminal:
                continue
            if not transfer.succeeded:
                _fail(setup, row, f"transfer {transfer.state}", report)
                continue
            path = local_file(setup, transfer, reported)
            if path is None:
                _fail(setup, row, "the finished file was not found in the downloads folder", report)
                continue
            row["local_path"] = str(path)
        _replace(setup, row, report)


def _fail(setup: UpgradeSetup, row: dict[str, Any], reason: str, report: UpgradeReport) -> None:
    setup.log.warning(f"{_label(row)}: upgrade failed: {reason}")
    row.update(state="failed", last_error=reason, next_check_at=storage.utcnow() + FAILED_RETRY_AFTER,
               updated_at=storage.utcnow())
    with setup.database.connect() as conn:
        _save(conn, row)
    report.failed.append({"track": _label(row), "reason": reason})


def _replace(setup: UpgradeSetup, row: dict[str, Any], report: UpgradeReport) -> None:
    old = resolve_inside(setup.library_root, row["old_path"])
    source = Path(row["local_path"]) if row.get("local_path") else None
    if row["state"] == "downloading":
        try:
            info = check_download(source, row.get("duration_ms"))
            # Silent, truncated or another recording: never replaces the library's good file.
            verify_download(source, {"isrc": row.get("isrc")}, setup.verifier)
        except AudioCheckError as error:
            if source.is_file():
                quarantine(source, setup.quarantine_dir, str(error))
            _fail(setup, row, f"file rejected: {error}", report)
            return
        old_format = Path(row["old_path"]).suffix.lstrip(".")
        if setup.profile.tier_of(info.format, info.bitrate_kbps) >= setup.profile.tier_of(
                old_format, _bitrate_of(row["from_quality"])):
            quarantine(source, setup.quarantine_dir, f"not better than the library's {row['from_quality']}")
            _fail(setup, row, f"the download is {quality_label(info.format, info.bitrate_kbps)}, not better", report)
            return
        target = unique_destination(old.with_suffix(source.suffix.lower()), same_as=source)
        row.update(state="replacing", new_path=target.relative_to(setup.library_root.resolve()).as_posix(),
                   to_quality=quality_label(info.format, info.bitrate_kbps), updated_at=storage.utcnow())
        with setup.database.connect() as conn:  # where the file goes is recorded before anything moves
            _save(conn, row)
    target = resolve_inside(setup.library_root, row["new_path"])
    try:
        if not target.is_file():
            if source is None or not source.is_file():
                raise FileNotFoundError("the downloaded file is gone")
            if old.is_file():
                _carry_over(old, source)
            import_into_library(source, setup.library_root, PurePosixPath(row["new_path"]))
    except (OSError, TaggingError, ArtworkError, ValueError) as error:
        _fail(setup, row, f"could not replace the file: {error}", report)
        return
    info = inspect_audio(target)
    now = storage.utcnow()
    with setup.database.connect() as conn, storage.transaction(conn):
        conn.execute(
            "UPDATE library_tracks SET path = ?, format = ?, bitrate = ?, duration_s = ?, sample_rate = ?, "
            "size_bytes = ?, source = ?, source_filename = ? WHERE wanted_key = ?",
            [row["new_path"], info.format, info.bitrate_kbps, info.duration_seconds, info.sample_rate,
             target.stat().st_size, f"soulseek:{row['username']}", row["filename"], row["wanted_key"]])
        row.update(state="replaced", next_check_at=now + RECHECK_AFTER, last_error=None, updated_at=now)
        _save(conn, row)
        storage.record_activity(conn, "track_upgraded", {
            "track": _label(row), "from": row["from_quality"], "to": row["to_quality"], "path": row["new_path"]})
    if old != target:
        old.unlink(missing_ok=True)  # only now: the new file is in place and recorded
    report.replaced.append({"track": _label(row), "from": row["from_quality"], "to": row["to_quality"]})


def _bitrate_of(label: str | None) -> int | None:
    parts = (label or "").split()
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None


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
    return [r for r in storage.fetch_dicts(conn, _TRACKS_SQL, [now]) if profile.below_cutoff(r["format"], r["bitrate"])]


def search_upgrades(setup: UpgradeSetup, report: UpgradeReport) -> None:
    now = storage.utcnow()
    with setup.database.connect() as conn:  # read-write: applies this concern's migration on first use
        if searches_due(conn, now):
            report.deferred = "wanted tracks wait for a search: they go first"
            return
        todo = tracks_below_cutoff(conn, setup.profile, now)[:SEARCHES_PER_RUN]
        blocked = {(u, f) for u, f in conn.execute("SELECT username, filename FROM blocked_candidates").fetchall()}
    if not todo:
        return
    client = setup.client
    session = SearchSession(search=setup.search, database=setup.database,
                            limit=setup.search_limit, window_seconds=setup.search_window_seconds, log=setup.log)
    for track in todo:
        decision = decide_match(track, None, session, blocked, setup.profile)
        if decision["status"] == "deferred":
            report.deferred = "search budget spent"
            break
        report.searched += 1
        current = setup.profile.tier_of(track["format"], track["bitrate"])
        better = [c for c in json.loads(decision["candidates"] or "[]")
                  if setup.profile.tier_of(c["extension"], c.get("bitrate")) < current]
        row = {"wanted_key": track["wanted_key"], "old_path": track["path"], "attempts": (track["upgrade_attempts"] or 0),
               "from_quality": quality_label(track["format"], track["bitrate"]), "updated_at": storage.utcnow()}
        if not better:
            row.update(state="no_better", next_check_at=storage.utcnow() + RECHECK_AFTER)
            report.no_better += 1
        else:
            best = better[0]
            client.enqueue(best["username"], best["filename"], best.get("size"))
            row.update(state="downloading", username=best["username"], filename=best["filename"],
                       size=best.get("size"), attempts=row["attempts"] + 1, next_check_at=None)
            report.enqueued += 1
        with setup.database.connect() as conn:
            _save(conn, row)


def run_upgrades(setup: UpgradeSetup) -> UpgradeReport:
    report = UpgradeReport()
    settle_upgrades(setup, report)
    search_upgrades(setup, report)
    return report
