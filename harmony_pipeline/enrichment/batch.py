"""What every enrichment asset shares: the batch of library tracks due, their files, the row saved per track.

Each asset takes every library track without a row yet, whose file was imported again since, or whose
miss / failure cool-down has passed; a missing or corrupt file is a recorded failure and the batch goes on.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from harmony_pipeline import storage
from harmony_pipeline.enrichment.due import TRACKS_DUE_SQL
from harmony_pipeline.enrichment.tagging import TaggingError, open_audio

MISS_COOLDOWN = timedelta(days=7)  # no lyrics / no artwork found: ask again after this
FAILURE_COOLDOWN = timedelta(days=1)  # an error (service down, unreadable file): try again after this


def tracks_due(database, table: str, now: datetime) -> list[dict]:
    """Library tracks the asset writing `table` has to (re)visit at `now`."""
    with database.connect() as conn:  # read-write: applies this concern's migration on first use
        return storage.fetch_dicts(conn, TRACKS_DUE_SQL.format(table=table), [now])


def track_label(row: dict) -> str:
    return f"{row['artist']} – {row['title']}"


def track_artists(row: dict) -> list[str]:
    return list(row.get("artists") or [row["artist"]])


def library_file(library: Path, row: dict) -> Path:
    return library / row["path"]


def check_audio_file(path: Path) -> None:
    """Raise TaggingError unless `path` is an audio file mutagen can tag (checked before any request)."""
    if not path.is_file():
        raise TaggingError(f"file not found: {path}")
    open_audio(path)


def save_row(database, table: str, row: dict, activity: tuple[str, dict] | None = None) -> None:
    with database.connect() as conn, storage.transaction(conn):
        storage.upsert(conn, table, [row], key=["wanted_key"])
        if activity:
            storage.record_activity(conn, *activity)


def unique(values: list[str]) -> list[str]:
    return list(dict.fromkeys(value for value in values if value))



def row_result(row: dict, columns: tuple[str, ...]) -> dict:
    """The table row of a result dict (missing columns as NULL)."""
    return {column: row.get(column) for column in columns}
