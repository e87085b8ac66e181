"""Liked Songs as a playlist source: `liked` in HARMONY_PLAYLISTS, read from `/me/tracks` (paged, newest
first). Liked Songs have no snapshot id, so one is derived from the first page: its total and the ids
and times of its items. A like or an unlike changes it (new likes come first; an unlike changes the
total), so an unchanged first page short-circuits the sync with one request, as a snapshot id does for
a playlist.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

LIKED_ID = "liked"
LIKED_NAME = "Liked Songs"
PAGE_LIMIT = 50  # /me/tracks accepts 1–50


def is_liked(playlist_id: str) -> bool:
    return playlist_id == LIKED_ID


def first_page_snapshot(page: dict[str, Any]) -> str:
    items = [((item.get("track") or item.get("item") or {}).get("id"), item.get("added_at"))
             for item in page.get("items") or []]
    digest = hashlib.sha256(json.dumps([page.get("total"), items]).encode()).hexdigest()
    return f"{LIKED_ID}-{digest[:32]}"


def liked_playlist_row(page: dict[str, Any], now: datetime) -> dict[str, Any]:
    """The spotify_playlists row of Liked Songs, from the first page of /me/tracks."""
    return {"playlist_id": LIKED_ID, "name": LIKED_NAME, "owner_id": None, "owner_name": None,
            "collaborative": False, "public": False, "snapshot_id": first_page_snapshot(page),
            "track_count": page.get("total"), "checked_at": now}
