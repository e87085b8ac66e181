"""Importing checked downloads into the library, crash-safe, without Dagster.

Every import is claimed first, with the exact library path it will take (`importing`, committed), then
the file is moved, then the library row is written. A run killed anywhere in between leaves a claim
whose process is gone; the next run sees where the file was headed and finishes the job: the file
already there (and the download gone) is the import done, never a second copy as "… (2)".

The basic tags (title, artists, album, numbers, year, ISRC, Spotify id) are written into the downloaded
file just before its move (import_tags.py), so no file is ever visible in the library untagged.

A download whose track the user's own library already holds (library_scan adopted a file for it while
the transfer ran) is not imported a second time: the download row becomes `superseded` and the
downloaded file is removed from the downloads folder (never anything in the library).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path, PurePosixPath
from typing import Any

from harmony_pipeline import storage
from harmony_pipeline.acquisition.state import import_due, load_downloads, save_download
from harmony_pipeline.claims import process_token
from harmony_pipeline.crashpoints import crashpoint
from harmony_pipeline.acquisition.download_attempts import RetryRules
from harmony_pipeline.acquisition.download_flow import block_candidate, fail_attempt, matched_candidates
from harmony_pipeline.library.import_tags import TaggingError, basic_tags, tag_in_place_atomically
from harmony_pipeline.library.scan import LibraryIndex, file_path
from harmony_pipeline.acquisition.library_import import (
    AudioCheckError,
    AudioInfo,
    check_download,
    import_into_library,
    inspect_audio,
    quarantine,
)
from harmony_pipeline.library.paths import TrackNaming, render_library_path, resolve_inside, same_content, unique_destination

IMPORT_RETRY = timedelta(minutes=10)  # an import that failed on our side is tried again after this

LIBRARY_COLUMNS = (
    "wanted_key", "path", "spotify_track_id", "isrc", "title", "artist", "album", "album_id", "album_artist",
    "track_number", "disc_number", "release_date", "format", "bitrate", "duration_s", "sample_rate",
    "size_bytes", "source", "source_filename", "imported_at",
)


@dataclass
class ImportSetup:
    database: Any  # anything with connect() / connect(read_only=True)
    library_root: Path
    path_template: str
    quarantine_dir: Path
    rules: RetryRules
    log: Any = logging.getLogger(__name__)
    downloads_dir: Path | None = None  # superseded downloads are removed only from inside this folder


@dataclass
class ImportReport:
    imported: list[dict] = field(default_factory=list)  # the library rows written
    rejected: list[dict] = field(default_factory=list)  # track, reason
    errors: list[str] = field(default_factory=list)  # our side: the file stays, nothing is spent
    superseded: list[dict] = field(default_factory=list)  # track, library file: already in the user's library


def imports_to_do(database) -> list[dict[str, Any]]:
    """Checked downloads waiting for the import, and imports a dead process left half done, with their
    wanted track's fields."""
    with database.connect(read_only=True) as conn:
        now = storage.utcnow()
        rows = [r for r in load_downloads(conn, "state IN ('succeeded', 'importing')") if import_due(r, now)]
        keys = [r["wanted_key"] for r in rows]
        wanted = {w["wanted_key"]: w for w in storage.fetch_dicts(
            conn, "SELECT * EXCLUDE (state, updated_at) FROM wanted_tracks WHERE wanted_key IN (SELECT unnest(?))",
            [keys])} if keys else {}
        rows = [{**wanted[r["wanted_key"]], **r} for r in rows if r["wanted_key"] in wanted]
        adopted = adopted_files(conn, [r for r in rows if r["state"] == "succeeded"])
    for row in rows:
        row["_adopted"] = adopted.get(row["wanted_key"])
    return rows


def adopted_files(conn, rows: list[dict[str, Any]]) -> dict[str, str]:
    """Wanted key → the user's own library file (library_scan) that already is the track. Files the
    pipeline imported itself do not count: they are `library_tracks`, not adopted ones."""
    if not rows:
        return {}
    index = LibraryIndex.load(conn)
    if not index.by_isrc and not index.by_name:
        return {}
    imported = {p for (p,) in conn.execute("SELECT path FROM library_tracks").fetchall()}
    found = {}
    for row in rows:
        match = index.find(row)
        if match is not None and match["path"] not in imported:
            found[row["wanted_key"]] = str(file_path(match))
    return found


def _label(row: dict[str, Any]) -> str:
    return f"{row['artist']} – {row['title']}"


def _relative_path(row: dict[str, Any], template: str, disc_totals: dict[str, int], file_format: str) -> PurePosixPath:
    year = row.get("release_date") or ""
    naming = TrackNaming(
        albumartist=row.get("album_artist") or row["artist"], artist=row["artist"],
        album=row.get("album") or "", title=row["title"],
        year=int(year[:4]) if year[:4].isdigit() else None,
        disc=row.get("disc_number") or 1,
        disc_total=max(disc_totals.get(row.get("album_id"), 1), row.get("disc_number") or 1),
        track=row.get("track_number") or 0,
    )
    return render_library_path(template, naming, file_format)


def _destination(setup: ImportSetup, row: dict[str, Any], disc_totals: dict[str, int]) -> tuple[str, AudioInfo | None]:
    """Where the file goes (relative to the library); the intended path of a half-done import is kept."""
    if row["state"] == "importing" and row.get("library_path"):
        return row["library_path"], None
    source = Path(row["local_path"])
    info = check_download(source, row.get("duration_ms"))
    target = resolve_inside(setup.library_root, _relative_path(row, setup.path_template, disc_totals, info.format))
    target.parent.mkdir(parents=True, exist_ok=True)
    # The exact name is fixed now ("(2)" only for a different file already there), so a re-run after a
    # crash finds the file where this run put it.
    destination = unique_destination(target, same_as=source)
    return destination.relative_to(setup.library_root.resolve()).as_posix(), info


def _tag_before_move(setup: ImportSetup, row: dict[str, Any], source: Path, disc_totals: dict[str, int]) -> None:
    """The basic tags go into the downloaded file before it is moved: a media server scanning the library
    never sees it untagged. Formats the tag writers do not know (WAV, APE…) are imported as they are."""
    try:
        tag_in_place_atomically(source, basic_tags(row, disc_totals.get(row.get("album_id"))),
                                row.get("spotify_track_id"))
    except TaggingError as error:
        setup.log.warning(f"{_label(row)}: imported without tags: {error}")


def _postpone(conn, row: dict[str, Any], error: str) -> None:
    """An import that failed on our side (library not writable, disk full, a bad template): the file stays,
    no attempt is spent, and the import is tried again after IMPORT_RETRY, not at every sensor tick."""
    now = storage.utcnow()
    row.update(next_attempt_at=now + IMPORT_RETRY, last_error=f"could not import: {error}", updated_at=now)
    save_download(conn, row)


def _discard_download(setup: ImportSetup, row: dict[str, Any]) -> None:
    """Remove a superseded download, only from inside the downloads folder (never a library file)."""
    source = Path(row["local_path"]) if row.get("local_path") else None
    if source is None or setup.downloads_dir is None:
        return
    try:
        if source.resolve().is_relative_to(Path(setup.downloads_dir).resolve()) and source.is_file():
            source.unlink()
    except OSError as error:
        setup.log.warning(f"{_label(row)}: could not remove the superseded download {source}: {error}")


def import_downloads(setup: ImportSetup, rows: list[dict[str, Any]], disc_totals: dict[str, int]) -> ImportReport:
    report = ImportReport()
    # 1. Where each file goes (reading files only).
    planned, rejected, missing, postponed, superseded = [], [], [], [], []
    for row in rows:
        source = Path(row["local_path"]) if row.get("local_path") else None
        if row["state"] == "succeeded" and row.get("_adopted"):
            superseded.append(row)  # the user's library has it already: no second copy
            continue
        try:
            if row["state"] == "succeeded" and (source is None or not source.is_file()):
                missing.append(row)
                continue
            relative, info = _destination(setup, row, disc_totals)
        except AudioCheckError as error:
            rejected.append((row, str(error)))
            continue
        except (OSError, ValueError) as error:
            setup.log.error(f"{_label(row)}: could not import: {error}")
            report.errors.append(f"{_label(row)}: {error}")
            postponed.append((row, str(error)))
            continue
        planned.append((row, relative, info))

    # 2. Claim them with their destination; settle what cannot be imported.
    claimed = []
    with setup.database.connect() as conn, storage.transaction(conn):
        candidates = matched_candidates(conn)
        for row, relative, info in planned:
            row.update(state="importing", library_path=relative, claimed_by=process_token(),
                       updated_at=storage.utcnow())
            if save_download(conn, row):
                claimed.append((row, relative, info))
        for row in missing:
            # Our side (the file was moved or deleted): the same peer's file is downloaded again.
            fail_attempt(conn, row, candidates.get(row["wanted_key"], []),
                         "the finished file was not found in the downloads folder", setup.rules,
                         outcome="file_missing", label=_label(row))
        for row, error in postponed:
            _postpone(conn, row, error)
        discard = []
        for row in superseded:
            row.update(state="superseded", claimed_by=None, last_error=None, updated_at=storage.utcnow())
            if not save_download(conn, row):
                continue
            conn.execute("UPDATE wanted_tracks SET state = 'in_library', updated_at = ? WHERE wanted_key = ? "
                         "AND state = 'wanted'", [storage.utcnow(), row["wanted_key"]])
            storage.record_activity(conn, "download_superseded", {
                "track": _label(row), "library_file": row["_adopted"], "download": row.get("local_path")})
            report.superseded.append({"track": _label(row), "library_file": row["_adopted"]})
            discard.append(row)
        quarantined = []
        for row, reason in rejected:
            # The file changed since it was verified: quarantine it, try another source.
            setup.log.warning(f"{_label(row)}: {reason}")
            if fail_attempt(conn, row, candidates.get(row["wanted_key"], []), f"file rejected: {reason}",
                            setup.rules, outcome="quarantined", label=_label(row)):
                block_candidate(conn, row["username"], row["filename"], reason)
                quarantined.append((row, reason))
                report.rejected.append({"track": _label(row), "reason": reason})
    for row, reason in quarantined:
        source = Path(row["local_path"])
        if source.is_file():
            quarantine(source, setup.quarantine_dir, reason)
    for row in discard:
        _discard_download(setup, row)

    crashpoint("import.after_claim")
    # 3. Move the files.
    moved = []
    for row, relative, info in claimed:
        source, target = Path(row["local_path"]), resolve_inside(setup.library_root, relative)
        try:
            if target.is_file() and (not source.is_file() or same_content(source, target)):
                source.unlink(missing_ok=True)  # moved by a run that died before writing its row
            else:
                _tag_before_move(setup, row, source, disc_totals)
                target = import_into_library(source, setup.library_root, PurePosixPath(relative))
            moved.append((row, target, info or inspect_audio(target)))
            crashpoint("import.after_move")
        except (OSError, ValueError, AudioCheckError) as error:
            setup.log.error(f"{_label(row)}: could not import: {error}")
            report.errors.append(f"{_label(row)}: {error}")
            moved.append((row, None, str(error)))

    # 4. Record them.
    with setup.database.connect() as conn, storage.transaction(conn):
        for row, target, info in moved:
            if target is None:  # released; the file stays where it was
                row.update(state="succeeded", claimed_by=None, library_path=None)
                _postpone(conn, row, info)
                continue
            library_row = {
                **{c: row.get(c) for c in LIBRARY_COLUMNS},
                "path": target.relative_to(setup.library_root.resolve()).as_posix(),
                "format": info.format, "bitrate": info.bitrate_kbps, "duration_s": info.duration_seconds,
                "sample_rate": info.sample_rate, "size_bytes": target.stat().st_size,
                "source": f"soulseek:{row['username']}", "source_filename": row["filename"],
                "imported_at": storage.utcnow(),
            }
            row.update(state="imported", claimed_by=None, updated_at=storage.utcnow())
            if not save_download(conn, row):
                continue
            conn.execute("UPDATE wanted_tracks SET state = 'in_library', updated_at = ? WHERE wanted_key = ?",
                         [storage.utcnow(), row["wanted_key"]])
            storage.record_activity(conn, "track_imported", {"track": _label(row), "path": library_row["path"]})
            report.imported.append(library_row)
        storage.upsert(conn, "library_tracks", report.imported, key=["wanted_key"])
    return report
