"""Playlists a media server shows: one .m3u8 per synced playlist, without Dagster.

Navidrome, Jellyfin and Plex import `.m3u8` files found in the library: UTF-8, `#EXTM3U`, then per
track `#EXTINF:<seconds>,<Artist> - <Title>` and the file's path relative to the playlist file. Only the
playlist's tracks that are in the library are listed, in playlist order; a removed track leaves the
list (its file stays). A file is rewritten atomically (temporary name, then one rename) and only when
its content changes, so a media server sees no half-written list and no needless rescans.

Each file names its playlist in a comment line (`# harmony spotify:playlist:<id>`): that is how a
renamed playlist's old file, or the file of a playlist taken out of HARMONY_PLAYLISTS, is found and
removed. Files without that line (the user's own playlists) are never touched.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harmony_pipeline import storage
from harmony_pipeline.acquisition.demand import wanted_key
from harmony_pipeline.library.paths import MAX_COMPONENT_BYTES, safe_component
from harmony_pipeline.library.scan import LibraryIndex, file_path

MARKER = "# harmony spotify:playlist:"
SUFFIX = ".m3u8"


@dataclass
class PlaylistFilesReport:
    written: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0
    summary: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class Entry:
    seconds: int
    label: str  # "Artist - Title"
    path: Path  # absolute


def render(playlist_id: str, name: str, entries: list[Entry], folder: Path) -> str:
    """The .m3u8 text of a playlist whose file lives in `folder`."""
    lines = ["#EXTM3U", f"#PLAYLIST:{_one_line(name)}", f"{MARKER}{playlist_id}"]
    for entry in entries:
        lines.append(f"#EXTINF:{entry.seconds},{_one_line(entry.label)}")
        lines.append(Path(os.path.relpath(entry.path, folder)).as_posix())
    return "\n".join(lines) + "\n"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def file_name(name: str, playlist_id: str, taken: set[str]) -> str:
    stem = safe_component(name or playlist_id, MAX_COMPONENT_BYTES - 40) or playlist_id
    if stem.casefold() in taken:  # two playlists of one name: the second carries its id
        stem = f"{stem} ({playlist_id})"
    taken.add(stem.casefold())
    return stem + SUFFIX


def write_atomically(path: Path, text: str) -> bool:
    """Write `text` to `path` through a temporary file and one rename; False when it already holds it."""
    data = text.encode("utf-8")
    try:
        if path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".harmony-", suffix=".m3u8.part")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return True


def owned_files(folder: Path) -> dict[str, list[Path]]:
    """The .m3u8 files in `folder` this module wrote, by playlist id."""
    found: dict[str, list[Path]] = {}
    if not folder.is_dir():
        return found
    for path in folder.glob(f"*{SUFFIX}"):
        try:
            with path.open(encoding="utf-8", errors="replace") as handle:
                head = [handle.readline() for _ in range(3)]
        except OSError:
            continue
        for line in head:
            if line.startswith(MARKER):
                found.setdefault(line[len(MARKER):].strip(), []).append(path)
    return found


class TrackFiles:
    """Where a playlist track's file is: imported by the pipeline (library_tracks), else found by the scan."""

    def __init__(self, library_rows: list[dict[str, Any]], index: LibraryIndex, library_root: Path):
        self.by_spotify = {r["spotify_track_id"]: r for r in library_rows if r.get("spotify_track_id")}
        self.by_key = {r["wanted_key"]: r for r in library_rows}
        self.index = index
        self.root = library_root

    def find(self, track: dict[str, Any]) -> tuple[Path, float | None] | None:
        row = self.by_spotify.get(track["spotify_track_id"]) or self.by_key.get(
            wanted_key(track.get("isrc"), track["artist"], track["title"]))
        if row is not None:
            path = self.root / row["path"]
            if path.is_file():
                return path, row.get("duration_s")
        found = self.index.find(track)
        if found is not None and file_path(found).is_file():
            return file_path(found), found.get("duration_s")
        return None


def playlist_entries(tracks: list[dict[str, Any]], files: TrackFiles) -> list[Entry]:
    entries = []
    for track in tracks:
        found = files.find(track)
        if found is None:
            continue
        path, file_seconds = found
        seconds = round(track["duration_ms"] / 1000) if track.get("duration_ms") else round(file_seconds or 0)
        artists = ", ".join(track.get("artists") or [track["artist"]])
        entries.append(Entry(seconds or -1, f"{artists} - {track['title']}", path))
    return entries


def write_playlist_files(database: Any, library_root: Path, folder: Path, playlist_ids: list[str]) -> PlaylistFilesReport:
    """Bring `folder` in line with the synced playlists: write changed lists, remove our stale ones."""
    report = PlaylistFilesReport()
    with database.connect(read_only=True) as conn:
        playlists = storage.fetch_dicts(
            conn, "SELECT playlist_id, name FROM spotify_playlists WHERE playlist_id IN (SELECT unnest(?)) "
            "AND items_snapshot_id IS NOT NULL", [list(playlist_ids)]) if playlist_ids else []
        tracks = storage.fetch_dicts(
            conn, "SELECT playlist_id, spotify_track_id, isrc, title, artist, artists, duration_ms FROM playlist_tracks "
            "WHERE removed_at IS NULL ORDER BY playlist_id, position")
        files = TrackFiles(storage.fetch_dicts(conn, "SELECT wanted_key, path, spotify_track_id, duration_s "
                                                     "FROM library_tracks"),
                           LibraryIndex.load(conn), Path(library_root))
    by_playlist: dict[str, list[dict[str, Any]]] = {}
    for track in tracks:
        by_playlist.setdefault(track["playlist_id"], []).append(track)
    existing = owned_files(folder)
    taken: set[str] = set()
    order = {pid: i for i, pid in enumerate(playlist_ids)}
    for playlist in sorted(playlists, key=lambda p: order.get(p["playlist_id"], 0)):
        playlist_id, name = playlist["playlist_id"], playlist["name"] or playlist["playlist_id"]
        entries = playlist_entries(by_playlist.get(playlist_id, []), files)
        path = folder / file_name(name, playlist_id, taken)
        folder.mkdir(parents=True, exist_ok=True)
        if write_atomically(path, render(playlist_id, name, entries, folder)):
            report.written.append(path.name)
        else:
            report.unchanged += 1
        for old in existing.pop(playlist_id, []):
            if old != path:  # the playlist was renamed
                old.unlink(missing_ok=True)
                report.removed.append(old.name)
        report.summary.append({"playlist": name, "file": path.name, "tracks": len(by_playlist.get(playlist_id, [])),
                               "in_library": len(entries)})
    for playlist_id, paths in existing.items():
        if playlist_id in playlist_ids:
            continue  # configured but not synced yet (or its sync failed): its last list stays
        for old in paths:
            old.unlink(missing_ok=True)
            report.removed.append(old.name)
    return report
