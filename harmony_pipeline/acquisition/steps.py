"""The acquisition assets' steps, over the slskd client and DuckDB: the search step (claim the due tracks,
search one album at a time, record decisions and start their downloads as they come), the downloads
summary, and the disc counts the import's path template needs."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harmony_pipeline import storage
from harmony_pipeline.acquisition.audio_verification import verification_counts
from harmony_pipeline.acquisition.download_attempts import RetryRules
from harmony_pipeline.acquisition.download_flow import DownloadSetup, blocked_candidates, start_due_downloads
from harmony_pipeline.acquisition.search import (
    SEARCH_STEP_SECONDS,
    SearchPipeline,
    SearchSession,
    decide_groups,
    group_by_album,
    record_decisions,
)
from harmony_pipeline.acquisition.state import claim_searches, imports_pending, tracks_due_for_search
from harmony_pipeline.library.quality import QualityProfile
from harmony_pipeline.spotify.cache import SpotifyCache
from harmony_pipeline.spotify.client import SpotifyError, SpotifyNotFound


def retry_rules(pipeline) -> RetryRules:
    return RetryRules(pipeline.retry_max_attempts, pipeline.retry_base_seconds, pipeline.retry_jitter_pct)


def download_setup(client, database, folders, pipeline, log, verifier=None) -> DownloadSetup:
    """The download flow's setup from the folders and pipeline settings (duck-typed: no Dagster here)."""
    return DownloadSetup(client=client, database=database, downloads_dir=Path(folders.downloads_dir),
                         remote_downloads_dir=folders.remote_downloads_dir, quarantine_dir=folders.quarantine,
                         rules=retry_rules(pipeline), log=log, verifier=verifier)


def claim_due_searches(database) -> tuple[list[dict], set[tuple[str, str]]]:
    """Claim every wanted track due for a search (an overlapping run skips them); and the blocked candidates."""
    with database.connect() as conn, storage.transaction(conn):
        todo = claim_searches(conn, tracks_due_for_search(conn, storage.utcnow()), storage.utcnow())
        return todo, blocked_candidates(conn)


@dataclass
class SearchStep:
    client: Any  # harmony_pipeline.acquisition.slskd.SlskdClient
    database: Any
    limit: int  # the shared search budget: `limit` searches per `window_seconds`
    window_seconds: int
    timeout_ms: int
    poll_seconds: float
    quality: QualityProfile | None
    downloads: DownloadSetup | None  # set when the run downloads too: matched tracks start at once
    log: Any
    recorded: list[dict] = field(default_factory=list)
    enqueued: int = 0


def search_and_decide(step: SearchStep, todo: list[dict], blocked: set[tuple[str, str]]) -> SearchSession:
    """One search per album (several in flight, creations spread over the budget's window, at most
    SEARCH_STEP_SECONDS); decisions written, and their downloads started, while the searches go on."""
    session = SearchSession(search=None, database=step.database, limit=step.limit,
                            window_seconds=step.window_seconds, log=step.log)
    searches = SearchPipeline(step.client, session, timeout_ms=step.timeout_ms, poll_seconds=step.poll_seconds,
                              spacing_seconds=step.window_seconds / step.limit, max_seconds=SEARCH_STEP_SECONDS)
    labels = track_labels(todo)

    def decided(batch: list[dict]) -> None:
        step.recorded.extend(record_decisions(step.database, batch, labels))
        matched = {d["wanted_key"] for d in batch if d["status"] == "matched"}
        if step.downloads is not None and matched:
            step.enqueued += start_due_downloads(step.downloads, only=matched)

    decide_groups(searches, group_by_album(todo), blocked, step.quality, on_decided=decided)
    return session


def track_labels(rows: list[dict]) -> dict[str, str]:
    return {row["wanted_key"]: f"{row['artist']} – {row['title']}" for row in rows}


def decision_rows(recorded: list[dict], labels: dict[str, str]) -> list[dict]:
    """The decisions as the asset's preview shows them: track, decision, score, file, reasons."""
    return [{"track": labels[d["wanted_key"]], "decision": d["status"], "score": d["score"],
             "file": (d["filename"] or "").split("\\")[-1], "reasons": "; ".join(d["reasons"] or [])}
            for d in recorded]


def count_by(database, table: str, column: str) -> dict[str, int]:
    with database.connect(read_only=True) as conn:
        return dict(conn.execute(f"SELECT {column}, count(*) FROM {table} GROUP BY {column}").fetchall())


@dataclass
class DownloadsSummary:
    states: dict[str, int]
    to_import: int
    verification: dict
    recent: list[dict]


def downloads_summary(database) -> DownloadsSummary:
    with database.connect(read_only=True) as conn:
        return DownloadsSummary(
            states=dict(conn.execute("SELECT state, count(*) FROM downloads GROUP BY state").fetchall()),
            to_import=imports_pending(conn),
            verification=verification_counts(conn),
            recent=storage.fetch_dicts(
                conn, "SELECT w.artist || ' – ' || w.title AS track, d.state, d.attempts, d.verification, "
                "d.last_error FROM downloads d JOIN wanted_tracks w USING (wanted_key) "
                "ORDER BY d.updated_at DESC LIMIT 30"))


def disc_totals(lookups: SpotifyCache, album_ids: set[str], log) -> dict[str, int]:
    """Number of discs per album (decides `{disc_prefix}`), from the album answers in the lookup cache."""
    totals = {}
    for album_id in sorted(album_ids):
        try:
            totals[album_id] = lookups.disc_total(album_id)
        except SpotifyNotFound:
            continue
        except SpotifyError as error:
            log.warning(f"disc count unavailable ({error}); using the disc numbers at hand")
            break
    return totals


