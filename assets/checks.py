"""Asset checks: playlists kept fresh, no dead-lettered downloads, an intact library, enrichment coverage.

Each check is non-blocking and runs in the same run as its asset whenever the asset is selected; its
result (with the offending rows as metadata) shows on the asset's Checks tab in the UI. The judging
logic is in plain functions; the checks only read DuckDB and the library folder.
"""

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import mutagen
from dagster import AssetCheckResult, AssetCheckSeverity, asset_check

from assets.common import table_preview
from harmony_pipeline import storage
from harmony_pipeline.spotify.playlist_sync import STALE_AFTER, is_stale
from resources.database import HarmonyDatabase, LibraryFolders

COVERAGE_THRESHOLD = 0.9
# Tracks imported this recently are not counted yet: enrichment follows the import within minutes.
ENRICHMENT_GRACE = timedelta(hours=1)

# Statuses that count as done for each enrichment part (migrations/0004_enrichment.sql). Tags written
# without Spotify ("partial") are not done yet: a later run completes them.
ENRICHMENT_PARTS = {
    "tags": ("track_metadata", ("tagged",)),
    "cover": ("track_artwork", ("embedded", "kept")),
    "lyrics": ("track_lyrics", ("synced", "plain", "instrumental")),
}


# --- judging, without Dagster ---------------------------------------------------------------------
def stale_playlists(rows: Sequence[Mapping[str, Any]], now: datetime) -> tuple[list[dict], list[dict]]:
    """(failing, forbidden): playlists in error or not synced within STALE_AFTER, and those we may not read."""
    failing, forbidden = [], []
    for row in rows:
        entry = {"playlist": row.get("name") or row["playlist_id"], "status": row["sync_status"],
                 "reason": row.get("sync_status_reason"), "synced_at": row.get("synced_at")}
        if row["sync_status"] == "forbidden":
            forbidden.append(entry)
        elif row["sync_status"] == "error" or is_stale(row.get("synced_at"), now):
            failing.append(entry)
    return failing, forbidden


def library_problems(paths: Sequence[str], library_dir: Path) -> list[dict]:
    """Library files that are missing, outside the library folder, or that mutagen cannot open."""
    library = library_dir.resolve()
    problems = []
    for relative in paths:
        full = (library / relative).resolve()
        if not full.is_relative_to(library):
            problems.append({"path": relative, "problem": "outside the library folder"})
        elif not full.is_file():
            problems.append({"path": relative, "problem": "missing"})
        else:
            try:
                if mutagen.File(full) is None:
                    problems.append({"path": relative, "problem": "not a recognised audio file"})
            except (mutagen.MutagenError, OSError, ValueError) as error:
                problems.append({"path": relative, "problem": f"unreadable: {error}"})
    return problems


def enrichment_coverage(conn, parts: Sequence[str], counted_before: datetime) -> dict[str, dict[str, int]]:
    """part → {done, total} over library tracks imported before `counted_before`; parts whose table
    does not exist are left out."""
    tables = {row[0] for row in conn.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    total = conn.execute("SELECT count(*) FROM library_tracks WHERE imported_at < ?", [counted_before]).fetchone()[0]
    coverage = {}
    for part in parts:
        table, done_statuses = ENRICHMENT_PARTS[part]
        if table not in tables:
            continue
        done = conn.execute(
            f"SELECT count(*) FROM library_tracks l JOIN {table} e USING (wanted_key) "
            "WHERE l.imported_at < ? AND e.status IN (SELECT unnest(?))",
            [counted_before, list(done_statuses)],
        ).fetchone()[0]
        coverage[part] = {"done": done, "total": total}
    return coverage


# --- the checks -----------------------------------------------------------------------------------
@asset_check(asset="spotify_playlists", additional_deps=["playlist_tracks"], blocking=False,
             description=f"Every synced playlist confirmed within {STALE_AFTER}; forbidden ones only warn.")
def playlists_fresh(database: HarmonyDatabase) -> AssetCheckResult:
    with database.connect(read_only=True) as conn:
        rows = storage.fetch_dicts(conn, "SELECT * FROM spotify_playlists ORDER BY playlist_id")
    failing, forbidden = stale_playlists(rows, storage.utcnow())
    metadata = {"playlists": len(rows), "stale_or_error": len(failing), "forbidden": len(forbidden),
                "problems": table_preview(failing + forbidden)}
    if failing:
        return AssetCheckResult(passed=False, severity=AssetCheckSeverity.ERROR, metadata=metadata,
                                description=f"{len(failing)} playlist(s) stale or failing")
    if forbidden:
        return AssetCheckResult(passed=False, severity=AssetCheckSeverity.WARN, metadata=metadata,
                                description=f"{len(forbidden)} playlist(s) not owned by the authorised user")
    return AssetCheckResult(passed=True, metadata=metadata)


@asset_check(asset="downloads", blocking=False,
             description="Fails while any download is dead-lettered (requeue with `harmony dead-letter`).")
def no_dead_letters(database: HarmonyDatabase) -> AssetCheckResult:
    with database.connect(read_only=True) as conn:
        dead = storage.fetch_dicts(
            conn, "SELECT coalesce(w.artist || ' – ' || w.title, d.wanted_key) AS track, d.attempts, "
            "d.last_error, d.updated_at FROM downloads d LEFT JOIN wanted_tracks w USING (wanted_key) "
            "WHERE d.state = 'dead_letter' ORDER BY d.updated_at DESC")
    return AssetCheckResult(
        passed=not dead,
        severity=AssetCheckSeverity.ERROR,
        description=f"{len(dead)} download(s) dead-lettered" if dead else "no dead letters",
        metadata={"dead_letter": len(dead), "dead_letters": table_preview(dead)},
    )


@asset_check(asset="library_tracks", blocking=False,
             description="Every library track's file exists inside the library folder and opens with mutagen.")
def library_integrity(database: HarmonyDatabase, folders: LibraryFolders) -> AssetCheckResult:
    with database.connect(read_only=True) as conn:
        paths = [row[0] for row in conn.execute("SELECT path FROM library_tracks ORDER BY path").fetchall()]
    problems = library_problems(paths, folders.library)
    return AssetCheckResult(
        passed=not problems,
        severity=AssetCheckSeverity.ERROR,
        description=f"{len(problems)} of {len(paths)} file(s) missing or unreadable" if problems
        else f"{len(paths)} file(s) present and readable",
        metadata={"files": len(paths), "problems": len(problems),
                  "problem_files": table_preview(problems)},
    )


def build_enrichment_coverage_check(parts: Sequence[str]):
    @asset_check(asset="library_tracks", name="enrichment_coverage", blocking=False,
                 description=f"Share of library tracks with {', '.join(parts)}; warns below "
                             f"{COVERAGE_THRESHOLD:.0%} (tracks imported in the last {ENRICHMENT_GRACE} not counted).")
    def enrichment_coverage_check(database: HarmonyDatabase) -> AssetCheckResult:
        with database.connect(read_only=True) as conn:
            coverage = enrichment_coverage(conn, parts, storage.utcnow() - ENRICHMENT_GRACE)
        shares = {part: (c["done"] / c["total"] if c["total"] else 1.0) for part, c in coverage.items()}
        low = sorted(part for part, share in shares.items() if share < COVERAGE_THRESHOLD)
        table = [{"part": part, "done": c["done"], "tracks": c["total"], "share": f"{shares[part]:.1%}"}
                 for part, c in coverage.items()]
        return AssetCheckResult(
            passed=not low,
            severity=AssetCheckSeverity.WARN,
            description=f"below {COVERAGE_THRESHOLD:.0%}: {', '.join(low)}" if low
            else "coverage fine" if coverage else "no enrichment tables yet",
            metadata={**{f"{part}_share": round(share, 4) for part, share in shares.items()},
                      "coverage": table_preview(table)},
        )

    return enrichment_coverage_check


def wiring(settings, workers):
    """Asset checks, and the sensor that keeps `harmony status`'s view of the instance."""
    from dagster import Definitions

    from sensors.status_view import build_status_view_sensor

    parts = ["tags"] + (["cover"] if settings.enable_artwork else []) + (["lyrics"] if settings.enable_lyrics else [])
    return Definitions(asset_checks=[playlists_fresh, no_dead_letters, library_integrity,
                                     build_enrichment_coverage_check(parts)],
                       sensors=[build_status_view_sensor(workers)])
