"""Searching Soulseek for wanted tracks and deciding the match, without Dagster.

Searches go through a cache (a retry never searches again while the answer is fresh) and through the
shared budget (SLSKD_SEARCH_LIMIT per window across every run, recorded in DuckDB). Several wanted
tracks of one album share one album search; a track the album search does not settle gets its own.
"""

from __future__ import annotations

import json
import logging
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from harmony_pipeline import storage
from harmony_pipeline.matching import WantedTrack, build_album_query, build_queries, rank
from harmony_pipeline.quality import QualityProfile
from harmony_pipeline.search_budget import seconds_until_allowed

SEARCH_CACHE_TTL = timedelta(hours=6)  # peers come and go: an older answer is searched again
NO_MATCH_COOLDOWN = timedelta(hours=12)  # longer than the cache TTL, so the retry really searches
MAX_BUDGET_WAIT_SECONDS = 30.0  # a longer wait defers the rest to a later run instead of idling
MAX_QUERIES_PER_TRACK = 2
KEPT_CANDIDATES = 10


def wanted_track_from_row(row: dict[str, Any]) -> WantedTrack:
    year = int(row["release_date"][:4]) if (row.get("release_date") or "")[:4].isdigit() else None
    return WantedTrack(
        artist=row["artist"], artists=tuple(row.get("artists") or [row["artist"]]), title=row["title"],
        album=row.get("album"), duration_ms=row.get("duration_ms"), isrc=row.get("isrc"),
        track_number=row.get("track_number"), album_total_tracks=row.get("album_total_tracks"),
        release_year=year,
    )


@dataclass
class SearchSession:
    """Searches through the cache and the shared budget; counts what it did."""

    search: Callable[[str], list[dict]]  # runs one slskd search to completion
    database: Any  # anything with connect() / connect(read_only=True), e.g. HarmonyDatabase
    limit: int
    window_seconds: int
    log: logging.Logger | Any = field(default_factory=lambda: logging.getLogger(__name__))
    sleep: Callable[[float], None] = time.sleep
    searches: int = 0
    cache_hits: int = 0
    deferred: bool = False
    budget_free_at: datetime | None = None  # when the spent budget lets the next search start

    def responses(self, query: str) -> list[dict] | None:
        """Responses for the query (fresh cache or a new search); None when the budget defers it."""
        fresh_after = storage.utcnow() - SEARCH_CACHE_TTL
        with self.database.connect(read_only=True) as conn:
            cached = conn.execute(
                "SELECT responses FROM search_cache WHERE query = ? AND searched_at > ?", [query, fresh_after]
            ).fetchone()
        if cached:
            self.cache_hits += 1
            return json.loads(cached[0])
        if self.deferred or not self._take_budget(query):
            self.deferred = True
            return None
        self.searches += 1
        responses = self.search(query)
        with self.database.connect() as conn:
            storage.upsert(conn, "search_cache", [{
                "query": query, "responses": json.dumps(responses, ensure_ascii=False),
                "response_count": len(responses), "searched_at": storage.utcnow()}], key=["query"])
        return responses

    def _take_budget(self, query: str) -> bool:
        """Record one search in the shared budget when the window allows it (waiting a little if need be).
        Counting and recording happen in one transaction, so runs in other processes cannot both take
        the last slot."""
        while True:
            now = storage.utcnow()
            with self.database.connect() as conn, storage.transaction(conn):
                recent = [r[0] for r in conn.execute(
                    "SELECT searched_at FROM search_budget WHERE searched_at > ?",
                    [now - timedelta(seconds=self.window_seconds)]).fetchall()]
                wait = seconds_until_allowed(recent, now, self.limit, self.window_seconds)
                if wait <= 0:
                    conn.execute("INSERT INTO search_budget VALUES (?, ?)", [now, query])
                    return True
            if wait > MAX_BUDGET_WAIT_SECONDS:
                self.log.info(f"search budget spent; next search possible in {wait:.0f}s: the rest is deferred")
                self.budget_free_at = now + timedelta(seconds=wait)
                return False
            self.log.info(f"search budget: waiting {wait:.1f}s ({self.limit}/{self.window_seconds}s)")
            self.sleep(wait + 0.05)


def group_by_album(rows: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Wanted tracks grouped so tracks of one album share a search; singles stand alone."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        groups[row.get("album_id") or f"single:{row['wanted_key']}"].append(row)
    return list(groups.values())


def album_query_for(group: list[dict[str, Any]]) -> str | None:
    first = group[0]
    if len(group) < 2 or not first.get("album"):
        return None
    return build_album_query(first.get("album_artist") or first["artist"], first["album"])


def decide_match(
    row: dict[str, Any],
    album_search: tuple[str, list[dict]] | None,
    session: SearchSession,
    blocked: set[tuple[str, str]],
    quality: QualityProfile | None = None,
) -> dict[str, Any]:
    """The soulseek_matches row for one wanted track: matched (with candidates), no_match or deferred."""
    wanted = wanted_track_from_row(row)
    queries_used: list[str] = []
    decision = None
    if album_search is not None:
        queries_used.append(album_search[0])
        decision = rank(wanted, album_search[1])
    searched_all = True
    if decision is None or decision.best is None:
        # The track's own query, then the next variant only when the first found nothing usable.
        for query in build_queries(wanted)[:MAX_QUERIES_PER_TRACK]:
            responses = session.responses(query)
            if responses is None:
                searched_all = False
                break
            queries_used.append(query)
            decision = rank(wanted, responses)
            if decision.best is not None:
                break
    now = storage.utcnow()
    accepted = [c.as_dict() for c in (decision.accepted if decision else [])
                if (c.username, c.filename) not in blocked]
    if quality is not None:  # HARMONY_QUALITY orders the correct files and drops unwanted ones
        accepted = quality.order(accepted)
    if accepted:
        status = "matched"
    elif not searched_all:
        status = "deferred"  # the budget stopped the search: not a verdict on the track
    else:
        status = "no_match"
    best = accepted[0] if accepted else None
    rejected = decision.rejected if decision else []
    return {
        "wanted_key": row["wanted_key"], "status": status, "queries": queries_used or None,
        "username": best["username"] if best else None, "filename": best["filename"] if best else None,
        "size": best.get("size") if best else None, "score": best["score"] if best else None,
        "reasons": best["reasons"] if best else [f"{len(rejected)} candidates rejected"],
        "candidates": json.dumps(accepted[:KEPT_CANDIDATES], ensure_ascii=False),
        "rejected_count": len(rejected),
        "rejected_sample": json.dumps([r.as_dict() for r in rejected[:5]], ensure_ascii=False),
        "decided_at": now,
        "claimed_by": None,
        "retry_search_after": {"no_match": now + NO_MATCH_COOLDOWN,
                               "deferred": session.budget_free_at or now}.get(status),
    }
