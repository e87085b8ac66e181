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
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from harmony_pipeline import storage
from harmony_pipeline.acquisition.state import still_claimed_searches
from harmony_pipeline.matching import WantedTrack, build_album_query, build_queries, rank
from harmony_pipeline.library.quality import QualityProfile
from harmony_pipeline.acquisition.search_budget import seconds_until_allowed

SEARCH_CACHE_TTL = timedelta(hours=6)  # peers come and go: an older answer is searched again
NO_MATCH_COOLDOWN = timedelta(hours=12)  # longer than the cache TTL, so the retry really searches
MAX_BUDGET_WAIT_SECONDS = 30.0  # a longer wait defers the rest to a later run instead of idling
MAX_QUERIES_PER_TRACK = 2
STOPPED_SEARCH_GRACE_SECONDS = 10.0  # a stopped search still running after this is given up
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

    search: Callable[[str], list[dict]] | None  # runs one slskd search to completion (the serial path)
    database: Any  # anything with connect() / connect(read_only=True), e.g. HarmonyDatabase
    limit: int
    window_seconds: int
    log: logging.Logger | Any = field(default_factory=lambda: logging.getLogger(__name__))
    sleep: Callable[[float], None] = time.sleep
    searches: int = 0
    cache_hits: int = 0
    deferred: bool = False
    budget_free_at: datetime | None = None  # when the spent budget lets the next search start
    # Fresh cached queries, read once per session; answers not yet written (written in batches).
    _fresh: set[str] | None = field(default=None, init=False, repr=False)
    _unstored: dict[str, dict[str, Any]] = field(default_factory=dict, init=False, repr=False)

    def responses(self, query: str) -> list[dict] | None:
        """Responses for the query (fresh cache or a new search); None when the budget defers it."""
        cached = self.cached(query)
        if cached is not None:
            return cached
        while True:
            wait = self.take_budget(query)
            if wait is None:
                return None
            if wait <= 0:
                break
            self.sleep(wait + 0.05)
        responses = self.search(query)
        self.store(query, responses)
        self.write_cache()
        return responses

    def cached(self, query: str) -> list[dict] | None:
        """A fresh answer to the query from the cache; one connection per session for the keys, one
        per hit for its answer (a DuckDB connection costs more than the query)."""
        if query in self._unstored:
            self.cache_hits += 1
            return json.loads(self._unstored[query]["responses"])
        fresh_after = storage.utcnow() - SEARCH_CACHE_TTL
        if self._fresh is None:
            with self.database.connect(read_only=True) as conn:
                self._fresh = {q for (q,) in conn.execute(
                    "SELECT query FROM search_cache WHERE searched_at > ?", [fresh_after]).fetchall()}
        if query not in self._fresh:
            return None
        with self.database.connect(read_only=True) as conn:
            row = conn.execute("SELECT responses FROM search_cache WHERE query = ? AND searched_at > ?",
                               [query, fresh_after]).fetchone()
        if row is None:
            return None
        self.cache_hits += 1
        return json.loads(row[0])

    def store(self, query: str, responses: list[dict]) -> None:
        """Kept for `write_cache`, which writes every STORE_BATCH answers (and at the end of a batch)."""
        self._unstored[query] = {"query": query, "responses": json.dumps(responses, ensure_ascii=False),
                                 "response_count": len(responses), "searched_at": storage.utcnow()}
        if len(self._unstored) >= STORE_BATCH:
            self.write_cache()

    def write_cache(self) -> None:
        """Write the answers kept so far in one transaction. Lost in a crash, they only cost a new search."""
        if not self._unstored:
            return
        with self.database.connect() as conn, storage.transaction(conn):
            storage.upsert(conn, "search_cache", list(self._unstored.values()), key=["query"])
        if self._fresh is not None:
            self._fresh.update(self._unstored)
        self._unstored.clear()

    def take_budget(self, query: str) -> float | None:
        """0 when one search was recorded in the shared budget (it may start now); otherwise the seconds
        until the window has room, or None when that is longer than MAX_BUDGET_WAIT_SECONDS (deferred).
        Counting and recording happen in one transaction, so runs in other processes cannot both take
        the last slot."""
        if self.deferred:
            return None
        now = storage.utcnow()
        with self.database.connect() as conn, storage.transaction(conn):
            recent = [r[0] for r in conn.execute(
                "SELECT searched_at FROM search_budget WHERE searched_at > ?",
                [now - timedelta(seconds=self.window_seconds)]).fetchall()]
            wait = seconds_until_allowed(recent, now, self.limit, self.window_seconds)
            if wait <= 0:
                conn.execute("INSERT INTO search_budget VALUES (?, ?)", [now, query])
                self.searches += 1
                return 0.0
        if wait > MAX_BUDGET_WAIT_SECONDS:
            self.log.info(f"search budget spent; next search possible in {wait:.0f}s: the rest is deferred")
            self.budget_free_at = now + timedelta(seconds=wait)
            self.deferred = True
            return None
        return wait


@dataclass
class SearchPipeline:
    """Several Soulseek searches in flight at once, within the shared budget.

    slskd creates one search at a time but runs many: creations are spaced by `spacing_seconds`, the
    states of all searches come from one `GET /searches` per poll, and each search's responses are
    read once it completes. Work is described by coroutines (`group_steps`) that yield the queries they
    need and receive the responses (None when the budget defers the query). `on_result(index, result)`
    hears of each coroutine as it ends, so its decisions can be acted on while other searches run.
    After `max_seconds` no new search starts: queries not started are answered like a deferral, so
    one step never searches for hours and the next run takes up the rest.
    """

    client: Any  # harmony_pipeline.acquisition.slskd.SlskdClient
    session: SearchSession
    timeout_ms: int = 15000
    poll_seconds: float = 0.5
    max_in_flight: int = 8
    spacing_seconds: float = 1.0
    clock: Callable[[], float] = time.monotonic
    on_result: Callable[[int, Any], None] | None = None
    max_seconds: float | None = None

    def run(self, coroutines: list[Generator[str, list[dict] | None, Any]]) -> list[Any]:
        """Drive every coroutine to its end; returns their results in order."""
        try:
            return self._run(coroutines)
        finally:
            self.session.write_cache()  # what was searched stays searched, even when a step fails

    def _run(self, coroutines: list[Generator[str, list[dict] | None, Any]]) -> list[Any]:
        results: list[Any] = [None] * len(coroutines)
        waiting: dict[str, list[int]] = defaultdict(list)  # query → coroutines waiting for it
        queue: list[str] = []  # queries to search, in the order they were asked
        in_flight: dict[str, tuple[str, float]] = {}  # search id → (query, deadline)
        stopped: dict[str, float] = {}  # search id → when it is given up if slskd still runs it

        def advance(index: int, answer: list[dict] | None, first: bool = False) -> None:
            while True:  # cache hits and deferrals are answered at once
                try:
                    query = next(coroutines[index]) if first else coroutines[index].send(answer)
                except StopIteration as done:
                    results[index] = done.value
                    if self.on_result is not None:
                        self.on_result(index, done.value)
                    return
                first = False
                answer = self.session.cached(query)
                if answer is None and not self.session.deferred:
                    if query not in waiting:
                        queue.append(query)
                    waiting[query].append(index)
                    return
                # a fresh cached answer, or the budget is spent (None: the coroutine records a deferral)

        began = self.clock()
        for index in range(len(coroutines)):
            advance(index, None, first=True)
        last_created = last_poll = float("-inf")
        budget_ready = float("-inf")  # when the shared budget has room again
        while queue or in_flight:
            if self.max_seconds is not None and queue and self.clock() - began >= self.max_seconds \
                    and not self.session.deferred:
                self.session.log.info(f"{len(queue)} searches left for the next run: this step searched "
                                      f"for {self.max_seconds:.0f} s")
                self.session.deferred = True  # the rest is answered as deferred, due again at once
            # Start searches while there is room in flight, in the budget and in slskd's pace.
            while queue and len(in_flight) < self.max_in_flight and \
                    self.clock() - last_created >= self.spacing_seconds and self.clock() >= budget_ready:
                budget_wait = self.session.take_budget(queue[0])
                if budget_wait is None:  # deferred: every query not started yet is answered with None
                    for query in queue:
                        for index in waiting.pop(query):
                            advance(index, None)
                    queue.clear()
                    break
                if budget_wait > 0:
                    budget_ready = self.clock() + budget_wait  # the window frees soon: keep polling meanwhile
                    break
                query = queue.pop(0)
                last_created = self.clock()
                try:
                    search_id = self.client.start_search(query, timeout_ms=self.timeout_ms)
                except Exception as error:
                    if getattr(error, "status", None) != 400:
                        raise  # slskd down or failing: the step's retry policy waits
                    # slskd refuses this text (e.g. only one-letter words): nothing found, not a failed step.
                    self.session.log.warning(f"slskd refused the search {query!r}: {error}")
                    for index in waiting.pop(query):
                        advance(index, [])
                    continue
                in_flight[search_id] = (query, last_created + self.timeout_ms / 1000 * 4 + 30)
            # Sleep until the next creation or poll is due.
            moments = []
            if queue and len(in_flight) < self.max_in_flight:
                moments.append(max(last_created + self.spacing_seconds, budget_ready))
            if in_flight:
                moments.append(last_poll + self.poll_seconds)
            pause = min(moments, default=self.clock()) - self.clock()
            if pause > 0:
                self.session.sleep(pause)
            if not in_flight or self.clock() - last_poll < self.poll_seconds:
                continue
            last_poll = self.clock()
            listed = self.client.search_progress()
            for search_id, (query, deadline) in list(in_flight.items()):
                complete = listed.get(search_id)
                given_up = complete is False and search_id in stopped and self.clock() > stopped[search_id]
                if complete is False and not given_up:
                    if self.clock() > deadline and search_id not in stopped:
                        self.client.stop_search(search_id)  # it completes as "Cancelled", responses kept
                        stopped[search_id] = self.clock() + STOPPED_SEARCH_GRACE_SECONDS
                    continue
                del in_flight[search_id]
                if complete is None or given_up:
                    # Gone from slskd's list (slskd restarted), or still running after being stopped:
                    # no verdict on the track, which is asked again next run.
                    if given_up:
                        self.client.delete_search(search_id)
                        self.session.log.warning(f"search {query!r} did not complete, even after being stopped")
                    responses = None
                else:
                    responses = self.client.finish_search(search_id, query)
                    self.session.store(query, responses)
                for index in waiting.pop(query):
                    advance(index, responses)
        return results


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


def match_steps(
    row: dict[str, Any],
    album_search: tuple[str, list[dict]] | None,
    blocked: set[tuple[str, str]],
    quality: QualityProfile | None = None,
) -> Generator[str, list[dict] | None, dict[str, Any]]:
    """The soulseek_matches row for one wanted track: matched (with candidates), no_match or deferred.
    Yields each query it needs and receives its responses (None: deferred by the budget)."""
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
            responses = yield query
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
        "reasons": best["reasons"] if best else [_rejected_text(len(rejected))],
        "candidates": json.dumps(accepted[:KEPT_CANDIDATES], ensure_ascii=False),
        "rejected_count": len(rejected),
        "rejected_sample": json.dumps([r.as_dict() for r in rejected[:5]], ensure_ascii=False),
        "decided_at": now,
        "claimed_by": None,
        "retry_search_after": {"no_match": now + NO_MATCH_COOLDOWN, "deferred": None}.get(status),
    }


# One step searches for at most this long; the rest waits for the next run, which the sensor requests
# at once. Imports of what finished meanwhile happen in between.
SEARCH_STEP_SECONDS = 15 * 60
# Search answers are written to the cache this many at a time: a DuckDB connection per answer costs more
# than the search's own bookkeeping.
STORE_BATCH = 25
# Decisions are written (and their downloads started) in batches this far apart: one transaction per batch.
DECISION_FLUSH_SECONDS = 10.0


def record_decisions(database, decisions: list[dict[str, Any]], labels: dict[str, str]) -> list[dict[str, Any]]:
    """Write the decisions this process still holds the search of (one transaction); returns them."""
    with database.connect() as conn, storage.transaction(conn):
        decisions = still_claimed_searches(conn, decisions)
        storage.upsert(conn, "soulseek_matches", decisions, key=["wanted_key"])
        for d in decisions:
            if d["status"] == "no_match":
                storage.record_activity(conn, "soulseek_no_results", {
                    "track": labels[d["wanted_key"]], "queries": d["queries"], "rejected": d["rejected_count"]})
    return decisions


def _rejected_text(count: int) -> str:
    return f"{count} candidate rejected" if count == 1 else f"{count} candidates rejected"


def decide_groups(pipeline: SearchPipeline, groups: list[list[dict[str, Any]]], blocked: set[tuple[str, str]],
                  quality: QualityProfile | None = None,
                  on_decided: Callable[[list[dict[str, Any]]], None] | None = None,
                  flush_seconds: float | None = None) -> list[dict[str, Any]]:
    """Every group's decisions, searched through the pipeline; deferred ones wait for the budget.

    With `on_decided`, decisions are handed over while the searches go on, in batches at most
    `flush_seconds` (DECISION_FLUSH_SECONDS) apart and the rest at the end, so their downloads start at once."""
    flush_seconds = DECISION_FLUSH_SECONDS if flush_seconds is None else flush_seconds
    pending: list[dict[str, Any]] = []
    last_flush = pipeline.clock()

    def settle(batch: list[dict[str, Any]]) -> None:
        for decision in batch:
            if decision["status"] == "deferred":
                decision["retry_search_after"] = pipeline.session.budget_free_at or decision["decided_at"]

    def flush() -> None:
        nonlocal last_flush
        batch = pending.copy()
        pending.clear()
        last_flush = pipeline.clock()
        settle(batch)
        if batch:
            on_decided(batch)

    def heard(_index: int, group_decisions: list[dict[str, Any]]) -> None:
        pending.extend(group_decisions)
        if pipeline.clock() - last_flush >= flush_seconds:
            flush()

    if on_decided is not None:
        pipeline.on_result = heard
    decisions = [d for group in pipeline.run([group_steps(g, blocked, quality) for g in groups]) for d in group]
    if on_decided is not None:
        flush()
    settle(decisions)
    return decisions


def group_steps(group: list[dict[str, Any]], blocked: set[tuple[str, str]], quality: QualityProfile | None = None
                ) -> Generator[str, list[dict] | None, list[dict[str, Any]]]:
    """Decisions for the wanted tracks of one album (or one single): the album search first, when
    several of its tracks are wanted, then each track's own searches where the album did not settle it."""
    album_query = album_query_for(group)
    album_search = None
    if album_query:
        responses = yield album_query
        if responses is not None:
            album_search = (album_query, responses)
    decisions = []
    for row in group:
        decisions.append((yield from match_steps(row, album_search, blocked, quality)))
    return decisions


def decide_match(
    row: dict[str, Any],
    album_search: tuple[str, list[dict]] | None,
    session: SearchSession,
    blocked: set[tuple[str, str]],
    quality: QualityProfile | None = None,
) -> dict[str, Any]:
    """`match_steps` run with one search at a time through `session`."""
    steps = match_steps(row, album_search, blocked, quality)
    try:
        query = next(steps)
        while True:
            query = steps.send(session.responses(query))
    except StopIteration as done:
        decision = done.value
    if decision["status"] == "deferred":
        decision["retry_search_after"] = session.budget_free_at or decision["decided_at"]
    return decision
