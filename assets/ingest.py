"""FREE ingest: submitted items (group `sources`) and their Spotify backfill (group `catalog`).

`harmony ingest` and the inbox sensor record items straight into DuckDB (harmony_pipeline.ingest.store);
`free_ingest_items` shows their state and records inbox files no sensor has taken yet;
`backfilled_tracks` resolves every pending item to Spotify tracks (links expanded, ISRC search first,
then scored field searches) and feeds wanted_tracks through the "free_ingest" demand source.
Spotify answers go through the shared lookup cache (harmony_pipeline.spotify.cache: tracks, albums with
every track, playlist items, searches), so a lookup is never repeated while its answer is fresh, whichever
concern fetched it, and resolved items cost nothing again.
"""

import json
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from assets.common import NETWORK_RETRY, markdown_table
from assets.playlists import FORBIDDEN_REASON
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
from harmony_pipeline.http_cache import HttpCache
from harmony_pipeline.ingest.store import ingest_inbox, lookup_due_where
from harmony_pipeline.spotify.playlist_sync import PlaylistTrack, track_from_item
from harmony_pipeline.safe_read import preview
from harmony_pipeline.spotify.cache import SpotifyCache
from harmony_pipeline.spotify.ids import parse_spotify_ref
from resources.database import HarmonyDatabase
from resources.inbox import IngestInbox
from resources.spotify import (
    SpotifyError,
    SpotifyForbidden,
    SpotifyNotFound,
    SpotifyRateLimited,
    SpotifyResource,
)

UNMATCHED_COOLDOWN = timedelta(days=7)
FLUSH_EVERY = 25  # items per write transaction, so a failure loses little work
ARTIST_LINK_REASON = "artist links are not ingested; use `harmony watch add` to follow an artist"
SKIPPED_LINES_SHOWN = 50  # rows of the skipped_lines table; each line only as a short sanitised preview
INGEST_CHAIN = ("free_ingest_items", "backfilled_tracks", "wanted_tracks", "soulseek_matches", "downloads",
                "library_tracks")


@asset(
    group_name="sources",
    description="FREE-ingest items from `harmony ingest` and the inbox, deduplicated across submissions, "
                "with their state (pending | matched | unmatched | expanded).",
)
def free_ingest_items(
    context: AssetExecutionContext, database: HarmonyDatabase, ingest_inbox_dir: IngestInbox
) -> MaterializeResult:
    taken = ingest_inbox(database.path, Path(ingest_inbox_dir.path), time.time(), ingest_inbox_dir.settle_seconds,
                         ingest_inbox_dir.claim_stale_seconds)
    for entry in taken:
        summary = (f"accepted {entry.outcome.accepted}, skipped {entry.outcome.skipped_count}" if entry.outcome
                   else f"failed: {entry.error}")
        context.log.info(f"inbox {preview(entry.file.name)}: {summary}")
    with database.connect(read_only=True) as conn:
        states = dict(conn.execute("SELECT state, count(*) FROM free_ingest_items GROUP BY state").fetchall())
        kinds = dict(conn.execute("SELECT kind, count(*) FROM free_ingest_items GROUP BY kind").fetchall())
        total_submissions = conn.execute("SELECT count(*) FROM free_ingest_submissions").fetchone()[0]
        submissions = storage.fetch_dicts(
            conn, "SELECT id, source, format, submitted_at, accepted, skipped, "
            f"to_json(list_slice(CAST(CAST(rejected AS JSON) AS JSON[]), 1, {SKIPPED_LINES_SHOWN})) AS rejected "
            "FROM free_ingest_submissions "
            "ORDER BY id DESC LIMIT 20")
    # Submitted text is untrusted: only short, single-line previews reach the event log.
    skipped_lines = [{"source": preview(s["source"]), "line": r["line"], "reason": preview(r["reason"], 120),
                      "text": preview(r["raw"])}
                     for s in submissions for r in json.loads(s.pop("rejected") or "[]")][:SKIPPED_LINES_SHOWN]
    for s in submissions:
        s["source"] = preview(s["source"])
    return MaterializeResult(
        metadata={
            "items": sum(states.values()),
            **{state: states.get(state, 0) for state in ("pending", "matched", "unmatched", "expanded")},
            "by_kind": MetadataValue.json(kinds),
            "inbox_files_taken": len(taken),
            "submissions": total_submissions,
            "newest_submissions": MetadataValue.md(markdown_table(submissions)),
            "skipped_lines": MetadataValue.md(markdown_table(skipped_lines)),
        }
    )


# --- resolving one item ----------------------------------------------------------------------------
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


def _backfill_row(fingerprint: str, track: PlaylistTrack, via: str, scored: Scored | None, now: datetime) -> dict:
    return {
        "fingerprint": fingerprint, "spotify_track_id": track.spotify_track_id, "status": "matched", "via": via,
        "score": scored.score if scored else None, "reasons": scored.reasons if scored else None,
        "isrc": track.isrc, "title": track.title, "artist": track.artist, "artists": list(track.artists),
        "album": track.album, "album_id": track.album_id, "album_artist": track.album_artist,
        "track_number": track.track_number, "disc_number": track.disc_number,
        "album_total_tracks": track.album_total_tracks, "release_date": track.release_date,
        "duration_ms": track.duration_ms, "resolved_at": now,
    }


def _label(item: dict) -> str:
    if item["artist"] and item["title"]:
        return f"{item['artist']} – {item['title']}"
    return item["spotify_uri"] or (f"ISRC {item['isrc']}" if item["isrc"] else item["raw"])


def _save(database: HarmonyDatabase, done: list[tuple[dict, Resolution]], spotify: SpotifyCache) -> None:
    """Write resolved items, their tracks and new cache entries in one short transaction."""
    if not done and not spotify.unsaved:
        return
    now = storage.utcnow()
    rows = [_backfill_row(item["fingerprint"], track, via, scored, now)
            for item, resolution in done for track, via, scored in resolution.tracks]
    with database.connect() as conn, storage.transaction(conn):
        spotify.save(conn)
        storage.upsert(conn, "backfilled_tracks", rows, key=["fingerprint", "spotify_track_id"])
        if done:
            conn.executemany(
                "UPDATE free_ingest_items SET state = ?, reason = ?, lookups = lookups + 1, next_lookup_at = ?, "
                "updated_at = ? WHERE fingerprint = ?",
                [[r.state, r.reason, now + UNMATCHED_COOLDOWN if r.state == "unmatched" and r.retry else None,
                  now, item["fingerprint"]] for item, r in done],
            )
    done.clear()


@asset(
    group_name="catalog",
    deps=[free_ingest_items],
    retry_policy=NETWORK_RETRY,
    description="FREE-ingest items resolved to Spotify tracks: links expanded, ISRC search first, then "
                "track/artist/album searches scored on names and duration. Unmatched items say why.",
)
def backfilled_tracks(
    context: AssetExecutionContext, spotify: SpotifyResource, database: HarmonyDatabase
) -> MaterializeResult:
    now = storage.utcnow()
    with database.connect(read_only=True) as conn:
        due = storage.fetch_dicts(
            conn, f"SELECT * FROM free_ingest_items WHERE {lookup_due_where()} ORDER BY submitted_at, line_number",
            [now])
    lookups = SpotifyCache(spotify, HttpCache(database.path))
    unsaved: list[tuple[dict, Resolution]] = []
    outcomes: list[dict] = []
    rate_limited_until = None
    try:
        for item in due:
            resolution = resolve_item(item, lookups)
            unsaved.append((item, resolution))
            outcomes.append({"item": _label(item), "state": resolution.state, "tracks": len(resolution.tracks),
                             "reason": resolution.reason})
            if len(unsaved) >= FLUSH_EVERY:
                _save(database, unsaved, lookups)
    except SpotifyRateLimited as limited:
        # Waiting hours inside a run helps nobody: keep what is done, the rest stays pending.
        rate_limited_until = limited.until
        context.log.warning(f"{limited}; {len(due) - len(outcomes)} items left pending")
    finally:
        _save(database, unsaved, lookups)

    with database.connect() as conn, storage.transaction(conn):
        states = dict(conn.execute("SELECT state, count(*) FROM free_ingest_items GROUP BY state").fetchall())
        tracks = conn.execute("SELECT count(*) FROM backfilled_tracks WHERE status = 'matched'").fetchone()[0]
        if outcomes:
            storage.record_activity(conn, "backfill_completed", {
                "looked_up": len(outcomes), "spotify_requests": lookups.requests, "cache_hits": lookups.hits,
                **{s: sum(1 for o in outcomes if o["state"] == s) for s in ("matched", "expanded", "unmatched")}})
    for outcome in outcomes:
        if outcome["state"] == "unmatched":
            context.log.info(f"unmatched: {outcome['item']}: {outcome['reason']}")
    metadata: dict[str, Any] = {
        "looked_up": len(outcomes),
        "matched": sum(1 for o in outcomes if o["state"] == "matched"),
        "expanded": sum(1 for o in outcomes if o["state"] == "expanded"),
        "unmatched": sum(1 for o in outcomes if o["state"] == "unmatched"),
        "tracks_resolved": sum(o["tracks"] for o in outcomes),
        "spotify_requests": lookups.requests,
        "cache_hits": lookups.hits,
        "backfilled_tracks_total": tracks,
        "items_by_state": MetadataValue.json(states),
        "items": MetadataValue.md(markdown_table(outcomes)),
    }
    if rate_limited_until is not None:
        metadata["rate_limited_until"] = rate_limited_until.isoformat(timespec="seconds")
    return MaterializeResult(metadata=metadata)


def wiring(settings, workers):
    """FREE-ingest assets, the ingest job (through acquisition) and the inbox sensor."""
    from dagster import AssetSelection, Definitions, define_asset_job

    from sensors.inbox import build_free_ingest_inbox_sensor

    job = define_asset_job("free_ingest_job", selection=AssetSelection.assets(*INGEST_CHAIN),
                           description="Ingested items: backfill from Spotify, then search, download and import.")
    sensor = build_free_ingest_inbox_sensor(job, workers, settings.sensor_interval_seconds)
    return Definitions(
        assets=[free_ingest_items, backfilled_tracks],
        jobs=[job],
        sensors=[sensor],
        resources={"ingest_inbox_dir": IngestInbox(path=str(settings.inbox_dir))},
    )
