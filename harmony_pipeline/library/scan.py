"""What the user already has: the library folders scanned, each audio file identified, without Dagster.

The scan walks HARMONY_LIBRARY_DIR and the read-only HARMONY_EXTRA_LIBRARY_DIRS, reads each file's tags
with mutagen (title, artist, album, ISRC, Spotify id, length) and records it in `library_files`. It is
incremental: a file with the size and mtime already recorded is not opened again, so an unchanged
library of 20,000 files costs one directory walk. Untagged files are identified by their name
("01 - Artist - Title.mp3", "Artist/Album/01 - Title.flac"). The scan only reads: nothing in those
folders is moved, renamed or rewritten.

`LibraryIndex` answers whether a wanted track is already there, with the identities wanted tracks use
(demand.py): the ISRC, else the normalised artist + title with a length within SAME_RECORDING_MS.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import mutagen
from mutagen.id3 import ID3
from mutagen.mp4 import MP4Tags

from harmony_pipeline import storage
from harmony_pipeline.acquisition.demand import SAME_RECORDING_MS, normalise
from harmony_pipeline.library.import_tags import SPOTIFY_ID_KEY
from harmony_pipeline.matching.models import AUDIO_EXTENSIONS
from harmony_pipeline.matching.paths import parse_numbering, stem_of
from harmony_pipeline.enrichment.tagging import ITUNES_FREEFORM

FILE_COLUMNS = (
    "root", "path", "size_bytes", "mtime_ns", "format", "duration_s", "bitrate", "title", "artist", "album",
    "isrc", "spotify_track_id", "identified_by", "error", "scanned_at",
)
# Credits joining several artists ("A feat. B", "A & B", "A, B"): each part identifies the track too.
_ARTIST_SEPARATORS = re.compile(r"\s*(?:[,;/&+×]|\b(?:feat|ft|featuring|vs|with|x)\b\.?)\s*", re.IGNORECASE)
_FEATURING = re.compile(r"\s*[(\[](?:feat|ft|featuring|with)\b\.?[^)\]]*[)\]]", re.IGNORECASE)


@dataclass
class ScanReport:
    files: int = 0  # audio files present in the scanned folders
    read: int = 0  # new or changed files opened
    unchanged: int = 0
    removed: int = 0  # recorded files no longer there
    unreadable: int = 0
    missing_roots: list[str] = field(default_factory=list)  # folders not there (their rows are kept)
    seconds: float = 0.0
    changed_rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.read or self.removed)


# --- reading one file ---------------------------------------------------------------------------------
def _first(values: Any) -> str:
    if values is None:
        return ""
    if isinstance(values, (list, tuple)):
        values = values[0] if values else ""
    if hasattr(values, "text"):  # an ID3 frame
        values = values.text[0] if values.text else ""
    if isinstance(values, bytes):
        values = values.decode("utf-8", "replace")
    return str(values).strip()


def _tag_fields(tags: Any) -> dict[str, str]:
    """title / artist / album / isrc / spotify_track_id from any mutagen tag container."""
    if tags is None:
        return {}
    if isinstance(tags, ID3):  # MP3, and ID3 chunks of WAV / AIFF
        return {"title": _first(tags.get("TIT2")), "artist": _first(tags.get("TPE1")),
                "album": _first(tags.get("TALB")), "isrc": _first(tags.get("TSRC")),
                "spotify_track_id": _first(tags.get(f"TXXX:{SPOTIFY_ID_KEY}"))}
    if isinstance(tags, MP4Tags):
        return {"title": _first(tags.get("©nam")), "artist": _first(tags.get("©ART")),
                "album": _first(tags.get("©alb")), "isrc": _first(tags.get(ITUNES_FREEFORM + "ISRC")),
                "spotify_track_id": _first(tags.get(ITUNES_FREEFORM + SPOTIFY_ID_KEY))}
    # Vorbis comments, APEv2, ASF: keys compared without case.
    lowered: dict[str, Any] = {}
    for key in tags.keys():
        lowered.setdefault(str(key).lower(), tags[key])
    def get(*names: str) -> str:
        return next((_first(lowered[n]) for n in names if n in lowered and _first(lowered[n])), "")
    return {"title": get("title"), "artist": get("artist", "author"), "album": get("album", "wm/albumtitle"),
            "isrc": get("isrc", "wm/isrc"), "spotify_track_id": get(SPOTIFY_ID_KEY.lower())}


def names_from_path(relative: PurePosixPath) -> tuple[str, str]:
    """(artist, title) a file's name and folders suggest: "01 - Artist - Title", "Artist/Album/01 - Title"."""
    _, _, rest = parse_numbering(stem_of(relative.name))
    if " - " in rest:
        artist, title = rest.split(" - ", 1)
        return artist.strip(), title.strip()
    folders = relative.parts[:-1]
    artist = folders[-2] if len(folders) >= 2 else (folders[-1] if folders else "")
    return artist.strip(), rest.strip()


def read_file(root: Path, path: Path, stat: os.stat_result) -> dict[str, Any]:
    """The library_files row of one audio file (opened once with mutagen)."""
    relative = PurePosixPath(path.relative_to(root).as_posix())
    row: dict[str, Any] = {
        "root": str(root), "path": str(relative), "size_bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns,
        "format": path.suffix.lstrip(".").lower(), "duration_s": None, "bitrate": None, "title": None,
        "artist": None, "album": None, "isrc": None, "spotify_track_id": None, "error": None,
    }
    tags: dict[str, str] = {}
    try:
        audio = mutagen.File(path)
        if audio is None:
            row["error"] = "not a recognised audio format"
        else:
            length = getattr(audio.info, "length", 0) or 0
            bitrate = getattr(audio.info, "bitrate", 0) or 0
            row.update(duration_s=float(length) or None, bitrate=round(bitrate / 1000) or None)
            tags = _tag_fields(audio.tags)
    except (mutagen.MutagenError, OSError, ValueError) as error:
        row["error"] = f"unreadable: {error}"[:300]
    guessed_artist, guessed_title = names_from_path(relative)
    if tags.get("title") and tags.get("artist"):
        identified_by = "tags"
    elif guessed_title and (tags.get("artist") or guessed_artist):
        identified_by = "filename"
    else:
        identified_by = "none"
    row.update(
        title=tags.get("title") or guessed_title or None,
        artist=tags.get("artist") or guessed_artist or None,
        album=tags.get("album") or None,
        isrc=(tags.get("isrc") or "").upper() or None,
        spotify_track_id=tags.get("spotify_track_id") or None,
        identified_by=identified_by if not row["error"] else "none",
    )
    return row


# --- walking the folders ------------------------------------------------------------------------------
def audio_files(root: Path) -> Iterator[tuple[Path, os.stat_result]]:
    """Every audio file under `root` with its stat; hidden files and folders (".…") are skipped, as are
    the pipeline's own temporary files. Symlinked folders are followed, each folder once (no loops)."""
    stack, seen = [root], set()
    while stack:
        folder = stack.pop()
        try:
            identity = (folder.stat().st_dev, folder.stat().st_ino)
            if identity in seen:
                continue
            seen.add(identity)
            entries = list(os.scandir(folder))
        except OSError:
            continue  # unreadable folder: skipped, like a media server does
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                if entry.is_dir():
                    stack.append(Path(entry.path))
                elif entry.is_file() and entry.name.rsplit(".", 1)[-1].lower() in AUDIO_EXTENSIONS:
                    yield Path(entry.path), entry.stat()
            except OSError:
                continue


def scan_library(database: Any, roots: Iterable[Path]) -> ScanReport:
    """Walk `roots`, read new and changed files, forget files that are gone; rows written in one transaction.

    A root that does not exist (an unmounted share) keeps its rows: a missing folder must not make
    every track in it wanted again. Roots no longer configured are forgotten.
    """
    started = time.monotonic()
    report = ScanReport()
    roots = [Path(r).absolute() for r in roots]
    with database.connect(read_only=True) as conn:
        known = {(r, p): (size, mtime) for r, p, size, mtime in
                 conn.execute("SELECT root, path, size_bytes, mtime_ns FROM library_files").fetchall()}
    now = storage.utcnow()
    present: set[tuple[str, str]] = set()
    scanned_roots = []
    for root in roots:
        if not root.is_dir():
            report.missing_roots.append(str(root))
            continue
        scanned_roots.append(str(root))
        for path, stat in audio_files(root):
            key = (str(root), path.relative_to(root).as_posix())
            present.add(key)
            report.files += 1
            if known.get(key) == (stat.st_size, stat.st_mtime_ns):
                report.unchanged += 1
                continue
            row = read_file(root, path, stat)
            row["scanned_at"] = now
            report.read += 1
            report.unreadable += bool(row["error"])
            report.changed_rows.append(row)
    configured = {str(r) for r in roots}
    gone = [key for key in known if key not in present and (key[0] in scanned_roots or key[0] not in configured)]
    report.removed = len(gone)
    if report.changed_rows or gone:
        with database.connect() as conn, storage.transaction(conn):
            storage.upsert(conn, "library_files", [{c: r[c] for c in FILE_COLUMNS} for r in report.changed_rows],
                           key=["root", "path"])
            if gone:
                conn.execute("DELETE FROM library_files WHERE (root || chr(0) || path) IN (SELECT unnest(?))",
                             [[f"{r}\0{p}" for r, p in gone]])
    report.seconds = time.monotonic() - started
    return report


# --- is a wanted track there? -------------------------------------------------------------------------
def artist_variants(*credits: str | None) -> set[str]:
    found = set()
    for credit in credits:
        if not credit:
            continue
        found.add(normalise(credit))
        found.update(normalise(part) for part in _ARTIST_SEPARATORS.split(credit))
    found.discard("")
    return found


def title_variants(title: str | None) -> set[str]:
    if not title:
        return set()
    return {normalise(title), normalise(_FEATURING.sub("", title))} - {""}


class LibraryIndex:
    """Scanned files by ISRC and by (artist, title) for finding wanted tracks among them."""

    def __init__(self, rows: Iterable[dict[str, Any]]):
        self.by_isrc: dict[str, dict[str, Any]] = {}
        self.by_name: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for row in rows:
            if row.get("isrc"):
                self.by_isrc.setdefault(row["isrc"].upper(), row)
            for artist in artist_variants(row.get("artist")):
                for title in title_variants(row.get("title")):
                    self.by_name.setdefault((artist, title), []).append(row)

    @classmethod
    def load(cls, conn) -> LibraryIndex:
        return cls(storage.fetch_dicts(
            conn, "SELECT root, path, format, bitrate, duration_s, title, artist, album, isrc, spotify_track_id "
            "FROM library_files WHERE identified_by <> 'none' ORDER BY root, path"))

    def find(self, entry: dict[str, Any]) -> dict[str, Any] | None:
        """The scanned file that is this wanted track: same ISRC, else same artist and title with a length
        within SAME_RECORDING_MS (when both lengths are known)."""
        if entry.get("isrc") and entry["isrc"].upper() in self.by_isrc:
            return self.by_isrc[entry["isrc"].upper()]
        wanted_ms = entry.get("duration_ms")
        artists = artist_variants(entry.get("artist"), *(entry.get("artists") or []))
        for artist in sorted(artists):
            for title in sorted(title_variants(entry.get("title"))):
                for row in self.by_name.get((artist, title), []):
                    if wanted_ms and row.get("duration_s") and \
                            abs(row["duration_s"] * 1000 - wanted_ms) > SAME_RECORDING_MS:
                        continue
                    return row
        return None


def adopted_keys(conn, entries: Iterable[dict[str, Any]]) -> set[str]:
    """Wanted keys of the demanded tracks a scanned library file already satisfies."""
    index = LibraryIndex.load(conn)
    if not index.by_name and not index.by_isrc:
        return set()
    return {entry["wanted_key"] for entry in entries if index.find(entry) is not None}


def file_path(row: dict[str, Any]) -> Path:
    return Path(row["root"]) / row["path"]
