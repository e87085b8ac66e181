"""What the user wants: demand from every source table merged into wanted tracks.

Each source (playlist tracks, backfilled FREE-ingest items, new watchlist releases) is one SQL query
returning DEMAND_COLUMNS; a source whose table does not exist yet is skipped. A track is identified by
its ISRC, or else by a normalised artist + title + duration key, so the same recording demanded by two
sources is one wanted track (a second length of the same name, e.g. a radio edit, stays separate).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import duckdb

from harmony_pipeline import storage

_ASCII_NON_WORD = re.compile(r"[^a-z0-9]+")

DEMAND_COLUMNS = (
    "spotify_track_id", "isrc", "title", "artist", "artists", "album", "album_id", "album_artist",
    "track_number", "disc_number", "album_total_tracks", "release_date", "duration_ms", "source",
)
WANTED_COLUMNS = (
    "wanted_key", "spotify_track_id", "isrc", "title", "artist", "artists", "album", "album_id",
    "album_artist", "track_number", "disc_number", "album_total_tracks", "release_date", "duration_ms",
    "sources", "state", "first_wanted_at", "updated_at",
)
# What a wanted track says about the recording; a change in any of these (or in state) rewrites its row.
CONTENT_COLUMNS = WANTED_COLUMNS[1:15]
SAME_RECORDING_MS = 10_000  # two demands of one artist + title further apart than this are two versions


@dataclass(frozen=True)
class DemandSource:
    name: str
    table: str
    sql: str  # returns DEMAND_COLUMNS


DEMAND_SOURCES: list[DemandSource] = [
    DemandSource(
        "playlists",
        "playlist_tracks",
        "SELECT spotify_track_id, isrc, title, artist, artists, album, album_id, album_artist, "
        "track_number, disc_number, album_total_tracks, release_date, duration_ms, "
        "'playlist:' || playlist_id AS source FROM playlist_tracks WHERE removed_at IS NULL",
    ),
    DemandSource(
        "free_ingest",
        "backfilled_tracks",
        "SELECT spotify_track_id, isrc, title, artist, artists, album, album_id, album_artist, "
        "track_number, disc_number, album_total_tracks, release_date, duration_ms, "
        "'free_ingest' AS source FROM backfilled_tracks WHERE status = 'matched'",
    ),
    DemandSource(
        "watchlist",
        "artist_release_tracks",
        "SELECT spotify_track_id, isrc, title, artist, artists, album, album_id, album_artist, "
        "track_number, disc_number, album_total_tracks, release_date, duration_ms, "
        "'watchlist:' || artist_id AS source FROM artist_release_tracks WHERE acquire",
    ),
]


def normalise(text: str | None) -> str:
    """Case-, accent- and punctuation-insensitive form for identity keys."""
    if not text:
        return ""
    if text.isascii():  # the same result without the Unicode work, ~5x faster (most names are ASCII)
        return _ASCII_NON_WORD.sub(" ", text.lower()).strip()
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return re.sub(r"[\W_]+", " ", stripped).strip()


def wanted_key(isrc: str | None, artist: str, title: str, duration_ms: int | None = None) -> str:
    """`isrc:<ISRC>`, else `key:<artist>|<title>`; merge_demand adds `|<seconds>` for a second version."""
    if isrc and isrc.strip():
        return "isrc:" + isrc.strip().upper()
    return f"key:{normalise(artist)}|{normalise(title)}"


def _far_apart(a: int | None, b: int | None) -> bool:
    return a is not None and b is not None and abs(a - b) > SAME_RECORDING_MS


def merge_demand(rows: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Demand rows grouped by wanted key; sources merged, the richest row's metadata kept."""
    merged: dict[str, dict[str, Any]] = {}
    for row in rows:
        key = wanted_key(row.get("isrc"), row["artist"], row["title"])
        if key.startswith("key:") and key in merged and _far_apart(merged[key].get("duration_ms"), row.get("duration_ms")):
            key = f"{key}|{round(row['duration_ms'] / 1000)}"  # same name, another length: another version
        current = merged.get(key)
        if current is None:
            merged[key] = {**{c: row.get(c) for c in DEMAND_COLUMNS if c != "source"},
                           "wanted_key": key, "sources": [row["source"]]}
            continue
        if row["source"] not in current["sources"]:
            current["sources"].append(row["source"])
        for column in DEMAND_COLUMNS:
            if column != "source" and current.get(column) in (None, "", []) and row.get(column):
                current[column] = row[column]
    for entry in merged.values():
        entry["sources"].sort()
    return merged


def library_keys(library_rows: Iterable[dict[str, Any]]) -> set[str]:
    """Keys under which tracks already in the library are known (ISRC and artist/title/duration)."""
    keys: set[str] = set()
    for row in library_rows:
        keys.add(row["wanted_key"])
        if row.get("isrc"):
            keys.add(wanted_key(row["isrc"], "", "", None))
        keys.add(wanted_key(None, row["artist"], row["title"]))
    return keys


def in_library(entry: dict[str, Any], keys: set[str]) -> bool:
    """Known by its key, its ISRC, or (for a track without ISRC) its artist + title."""
    if entry["wanted_key"] in keys:
        return True
    return not entry.get("isrc") and wanted_key(None, entry["artist"], entry["title"]) in keys


@dataclass
class WantedChanges:
    """What wanted_tracks must change: rows to upsert (new, changed or withdrawn) and what became wanted."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    newly_wanted: list[dict[str, Any]] = field(default_factory=list)
    demand_rows: int = 0


# An ISRC as wanted_key() reads it: trimmed (any white space), upper-case; blank means none.
_ISRC_SQL = "upper(regexp_replace(isrc, '^\\s+|\\s+$', '', 'g'))"
_DEMAND_TABLE = "_demand_rows"
_DEMANDED_TABLE = "_demanded"


def _collect_demand(conn: duckdb.DuckDBPyConnection, synced_playlists: set[str]) -> int:
    """Every demand row of the sources whose table exists, in source order, into a temporary table;
    playlists not synced are left out. Returns the number of rows."""
    tables = {row[0] for row in conn.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    # ord: the order merge_demand would see the rows in (source by source, each in its scan order).
    parts = [f"SELECT *, {rank} * 1000000000000 + row_number() OVER () AS ord FROM ({source.sql})"
             for rank, source in enumerate(DEMAND_SOURCES) if source.table in tables]
    # No source table at all: no rows, typed like the sources (wanted_tracks has their columns).
    no_source = (f"SELECT {', '.join(c for c in DEMAND_COLUMNS if c != 'source')}, NULL::VARCHAR AS source, "
                 f"0::BIGINT AS ord FROM wanted_tracks LIMIT 0")
    union = " UNION ALL ".join(parts) or no_source
    conn.execute(
        f"CREATE OR REPLACE TEMP TABLE {_DEMAND_TABLE} AS SELECT *, "
        f"coalesce({_ISRC_SQL}, '') AS isrc_key FROM ({union}) "
        # A playlist taken out of HARMONY_PLAYLISTS no longer demands its tracks.
        f"WHERE NOT starts_with(source, 'playlist:') OR list_contains(?, source)", [sorted(synced_playlists)])
    return conn.execute(f"SELECT count(*) FROM {_DEMAND_TABLE}").fetchone()[0]


def _isrc_demand_sql() -> str:
    """Demand rows with an ISRC merged as merge_demand does, in SQL: one row per ISRC, sources sorted,
    each column's first non-empty value in demand order."""
    def first(column: str) -> str:
        empty = f"{column} IS NULL" + (" OR len(artists) = 0" if column == "artists" else
                                       f" OR {column}::VARCHAR = ''")
        return (f"coalesce(arg_min({column}, ord) FILTER (WHERE NOT ({empty})), "
                f"arg_min_null({column}, ord)) AS {column}")
    library = ("SELECT wanted_key FROM library_tracks UNION "
               f"SELECT 'isrc:' || {_ISRC_SQL} FROM library_tracks WHERE {_ISRC_SQL} <> ''")
    plain = [c for c in DEMAND_COLUMNS if c != "source"]
    # Most ISRCs are demanded once: those rows need no merge, only the others are aggregated.
    return (
        f"WITH twice AS (SELECT isrc_key FROM {_DEMAND_TABLE} WHERE isrc_key <> '' "
        f"GROUP BY isrc_key HAVING count(*) > 1), "
        f"merged AS (SELECT 'isrc:' || isrc_key AS wanted_key, {', '.join(plain)}, [source] AS sources "
        f"FROM {_DEMAND_TABLE} WHERE isrc_key <> '' AND isrc_key NOT IN (SELECT isrc_key FROM twice) "
        f"UNION ALL SELECT 'isrc:' || isrc_key, {', '.join(first(c) for c in plain)}, "
        f"list_sort(list(DISTINCT source)) FROM {_DEMAND_TABLE} "
        f"WHERE isrc_key IN (SELECT isrc_key FROM twice) GROUP BY isrc_key) "
        f"SELECT m.*, CASE WHEN m.wanted_key IN ({library}) THEN 'in_library' ELSE 'wanted' END AS state FROM merged m"
    )


def _rows_without_isrc(conn: duckdb.DuckDBPyConnection):
    cursor = conn.execute(f"SELECT {', '.join(DEMAND_COLUMNS)} FROM {_DEMAND_TABLE} "
                          f"WHERE isrc_key = '' ORDER BY ord")
    while batch := cursor.fetchmany(10_000):
        for values in batch:
            yield dict(zip(DEMAND_COLUMNS, values))


def _library_rows(conn: duckdb.DuckDBPyConnection):
    cursor = conn.execute("SELECT wanted_key, isrc, artist, title FROM library_tracks")
    while batch := cursor.fetchmany(10_000):
        for wanted, isrc, artist, title in batch:
            yield {"wanted_key": wanted, "isrc": isrc, "artist": artist, "title": title}


def wanted_changes(conn: duckdb.DuckDBPyConnection, synced_playlists: set[str], now: datetime,
                   adopted: Callable[[duckdb.DuckDBPyConnection, list[dict]], set[str]] | None = None
                   ) -> WantedChanges:
    """Demand merged and compared with wanted_tracks as set operations: only rows that are new, whose
    state or content changed, or that are no longer demanded (withdrawn) come back, ready to upsert.

    Tracks with an ISRC (nearly all) are merged and matched with the library in SQL. The others keep
    the Python merge (identity keys need Unicode normalisation and the order-dependent
    same-name-other-length rule). The comparison with the stored rows runs in DuckDB, so a run with
    nothing new reads 110,000 tracks and writes none. `adopted` names the wanted keys that files the
    user already has satisfy (library_scan): those are in the library too.
    """
    changes = WantedChanges(demand_rows=_collect_demand(conn, synced_playlists))
    columns = WANTED_COLUMNS[:16]  # the two times are not compared
    try:
        conn.execute(f"CREATE OR REPLACE TEMP TABLE {_DEMANDED_TABLE} AS "
                     f"SELECT {', '.join(columns)} FROM ({_isrc_demand_sql()})")
        by_name = merge_demand(_rows_without_isrc(conn))
        if by_name:
            keys = library_keys(_library_rows(conn))
            for entry in by_name.values():  # merged entries hold every column but state and the two times
                entry["state"] = "in_library" if in_library(entry, keys) else "wanted"
            del keys
            with storage.rows_view(conn, "_demanded_by_name", "wanted_tracks", list(by_name.values()), columns):
                conn.execute(f"INSERT INTO {_DEMANDED_TABLE} SELECT * FROM _demanded_by_name")
        del by_name
        if adopted is not None:
            still_wanted = storage.fetch_dicts(conn, (
                f"SELECT wanted_key, isrc, artist, artists, title, duration_ms FROM {_DEMANDED_TABLE} "
                "WHERE state = 'wanted'"))
            found = adopted(conn, still_wanted)
            if found:
                conn.execute(f"UPDATE {_DEMANDED_TABLE} SET state = 'in_library' "
                             "WHERE wanted_key IN (SELECT unnest(?))", [sorted(found)])
        differs = " OR ".join(f"n.{c} IS DISTINCT FROM w.{c}" for c in ("state", *CONTENT_COLUMNS))
        changed = storage.fetch_dicts(conn, (
            f"SELECT n.*, w.state AS state_before, w.first_wanted_at FROM {_DEMANDED_TABLE} n "
            f"LEFT JOIN wanted_tracks w USING (wanted_key) WHERE w.wanted_key IS NULL OR {differs}"))
        withdrawn = storage.fetch_dicts(conn, (
            f"SELECT * FROM wanted_tracks w WHERE w.state = 'wanted' "
            f"AND NOT EXISTS (SELECT 1 FROM {_DEMANDED_TABLE} n WHERE n.wanted_key = w.wanted_key)"))
    finally:
        conn.execute(f"DROP TABLE IF EXISTS {_DEMANDED_TABLE}")
        conn.execute(f"DROP TABLE IF EXISTS {_DEMAND_TABLE}")
    for row in changed:
        before = row.pop("state_before")
        if row["state"] == "wanted" and before != "wanted":
            changes.newly_wanted.append({"track": f"{row['artist']} – {row['title']}",
                                         "from": ", ".join(row["sources"])})
        changes.rows.append({**row, "first_wanted_at": row["first_wanted_at"] or now, "updated_at": now})
    changes.rows += [{**row, "state": "withdrawn", "updated_at": now} for row in withdrawn]
    return changes
