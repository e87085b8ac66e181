"""Backfill of FREE-ingest items: each pending item resolved to Spotify tracks (links expanded, ISRC search
first, then scored field searches), written with its new cache entries every FLUSH_EVERY items.

Spotify answers go through the shared lookup cache (harmony_pipeline.spotify.cache: tracks, albums with every
track, playlist items, searches), so a lookup is never repeated while its answer is fresh, whichever concern
fetched it, and resolved items cost nothing again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from harmony_pipeline import storage
from harmony_pipeline.ingest.backfill import (
    Scored,
    Wanted,
    choose,
    isrc_query,
    resolved_track,
    search_queries,
    unmatched_reason,
)
from harmony_pipeline.ingest.store import lookup_due_where
from harmony_pipeline.spotify.cache import SpotifyCache
from harmony_pipeline.spotify.ids import parse_spotify_ref
from harmony_pipeline.spotify.playlist_flow import FORBIDDEN_REASON, track_columns
from harmony_pipeline.spotify.playlist_sync import PlaylistTrack, track_from_item
from harmony_pipeline.spotify.client import SpotifyError, SpotifyForbidden, SpotifyNotFound, SpotifyRateLimited

UNMATCHED_COOLDOWN = timedelta(days=7)
FLUSH_EVERY = 25  # items per write transaction, so a failure loses little work
ARTIST_LINK_REASON = "artist links are not ingested; use `harmony watch add` to follow an artist"


@dataclass
class Resolution:
    state: str  # matched | unmatched | expanded
    reason: str
    tracks: list[tuple[PlaylistTrack, str, Scored | None]] = field(default_factory=list)  # (track, via, score)
    retry: bool = True  # False: never looked up again (403 playlist, artist link)


def _wanted(item: dict) -> Wanted:
    return Wanted(artist=item["artist"], title=item["title"], album=item["album"],
                  artists=tuple(item["artists"] or ()), duration_ms=item["duration_ms"], isrc=item["isrc"])


def resolve_item(item: dict, spotify: SpotifyCache) -> Resolution:
    """Spotify tracks for one ingest item. Rate limits, outages and missing credentials propagate; an
    answer this code cannot read makes the item unmatched instead of stopping every later item."""
    ref = parse_spotify_ref(item["spotify_uri"]) if item["spotify_uri"] else None
    try:
        if ref is None:
            return _search(_wanted(item), spotify)
        if ref.kind == "track":
            track = resolved_track(spotify.track(ref.id))
            if track is None:
                return Resolution("unmatched", "the link is not a playable Spotify track")
            return Resolution("matched", "Spotify track link", [(track, "link", None)])
        if ref.kind == "album":
            return _expand_album(ref.id, spotify)
        if ref.kind == "playlist":
            return _expand_playlist(ref.id, spotify)
        return Resolution("unmatched", ARTIST_LINK_REASON, retry=False)
    except SpotifyForbidden:
        return Resolution("unmatched", FORBIDDEN_REASON, retry=False)
    except SpotifyNotFound:
        return Resolution("unmatched", f"{ref.kind if ref else 'track'} not found on Spotify")
    except SpotifyError as error:
        if error.status != 400:
            raise
        # A request Spotify calls malformed will not succeed later either.
        return Resolution("unmatched", f"Spotify refused the lookup: {error}", retry=False)
    except Exception as error:  # one malformed answer must not block the whole queue
        return Resolution("unmatched", f"unreadable Spotify answer ({type(error).__name__}: {error})")


def _expand_album(album_id: str, spotify: SpotifyCache) -> Resolution:
    album = spotify.album(album_id)
    # Album track lists carry no ISRC; the full track object does.
    full = spotify.tracks([simple["id"] for simple in album["tracks"]["items"] if simple.get("id")])
    tracks = [(track, "album", None) for track in map(resolved_track, full) if track]
    return Resolution("expanded", f"album {album.get('name')!r}: {len(tracks)} tracks", tracks)


def _expand_playlist(playlist_id: str, spotify: SpotifyCache) -> Resolution:
    items = spotify.playlist_items(playlist_id)
    tracks = [(t, "playlist", None) for t in (track_from_item(i, n) for n, i in enumerate(items)) if t]
    skipped = len(items) - len(tracks)
    note = f" ({skipped} local or unavailable skipped)" if skipped else ""
    return Resolution("expanded", f"playlist: {len(tracks)} tracks{note}", tracks)


def _search(wanted: Wanted, spotify: SpotifyCache) -> Resolution:
    queries = ([isrc_query(wanted.isrc)] if wanted.isrc else []) + search_queries(wanted)
    every: list[Scored] = []
    for query in queries:
        best, scored = choose(wanted, spotify.search_tracks(query))
        if best is not None:
            track = resolved_track(best.track)
            via = "isrc" if query.startswith("isrc:") else "search"
            reason = f"{via}: score {best.score:.0f} ({'; '.join(best.reasons)})"
            return Resolution("matched", reason, [(track, via, best)] if track else [])
        every += scored
    every.sort(key=lambda s: (not s.rejected, s.score), reverse=True)
    return Resolution("unmatched", unmatched_reason(every, queries))



def backfill_row(fingerprint: str, track: PlaylistTrack, via: str, scored: Scored | None, now: datetime) -> dict:
    columns = {name: value for name, value in track_columns(track).items() if name not in ("position", "added_at")}
    return {"fingerprint": fingerprint, **columns, "status": "matched", "via": via,
            "score": scored.score if scored else None, "reasons": scored.reasons if scored else None,
            "resolved_at": now}


def item_label(item: dict) -> str:
    if item["artist"] and item["title"]:
        return f"{item['artist']} – {item['title']}"
    return item["spotify_uri"] or (f"ISRC {item['isrc']}" if item["isrc"] else item["raw"])


def save_resolved(database, done: list[tuple[dict, Resolution]]) -> None:
    """Write resolved items, their tracks and new cache entries in one short transaction."""
    if not done:
        return
    now = storage.utcnow()
    rows = [backfill_row(item["fingerprint"], track, via, scored, now)
            for item, resolution in done for track, via, scored in resolution.tracks]
    with database.connect() as conn, storage.transaction(conn):
        storage.upsert(conn, "backfilled_tracks", rows, key=["fingerprint", "spotify_track_id"])
        if done:
            conn.executemany(
                "UPDATE free_ingest_items SET state = ?, reason = ?, lookups = lookups + 1, next_lookup_at = ?, "
                "updated_at = ? WHERE fingerprint = ?",
                [[r.state, r.reason, now + UNMATCHED_COOLDOWN if r.state == "unmatched" and r.retry else None,
                  now, item["fingerprint"]] for item, r in done],
            )
    done.clear()



@dataclass
class BackfillReport:
    outcomes: list[dict] = field(default_factory=list)  # {item, state, tracks, reason}
    rate_limited_until: datetime | None = None
    rate_limit: str | None = None  # the limit's message, when one left items pending
    left_pending: int = 0

    def count(self, state: str) -> int:
        return sum(1 for outcome in self.outcomes if outcome["state"] == state)


def items_due(database, now: datetime) -> list[dict]:
    with database.connect(read_only=True) as conn:
        return storage.fetch_dicts(
            conn, f"SELECT * FROM free_ingest_items WHERE {lookup_due_where()} ORDER BY submitted_at, line_number",
            [now])


def backfill_items(database, due: list[dict], lookups: SpotifyCache) -> BackfillReport:
    """Resolve every due item, saving every FLUSH_EVERY; a long rate limit leaves the rest pending."""
    report, unsaved = BackfillReport(), []
    try:
        for item in due:
            resolution = resolve_item(item, lookups)
            unsaved.append((item, resolution))
            report.outcomes.append({"item": item_label(item), "state": resolution.state,
                                    "tracks": len(resolution.tracks), "reason": resolution.reason})
            if len(unsaved) >= FLUSH_EVERY:
                save_resolved(database, unsaved)
    except SpotifyRateLimited as limited:
        # Waiting hours inside a run helps nobody: keep what is done, the rest stays pending.
        report.rate_limited_until, report.rate_limit = limited.until, str(limited)
        report.left_pending = len(due) - len(report.outcomes)
    finally:
        save_resolved(database, unsaved)
    return report
