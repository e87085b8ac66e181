"""Parsing Soulseek search responses into candidates: the whole backslash path is read."""

from __future__ import annotations

import math
import re
from functools import lru_cache
from typing import Any

from .models import AUDIO_EXTENSIONS, Candidate

# Leading track numbers: "1-05 " (disc-track), "A1. " (vinyl side), "05 - ", "05. ", "05-", "05 ".
_NUMBERING = re.compile(
    r"""^\s*(?:
        (?P<disc>\d{1,2})[-.](?P<disc_track>\d{2,3})
      | (?P<side>[A-Da-d])(?P<side_track>\d{1,2})
      | (?P<track>\d{1,3})
    )(?:\s*[-._)]\s*|\s+)(?=\S)""",
    re.VERBOSE,
)
_DISC_FOLDER = re.compile(r"^\s*(?:cd|disc|disk)\s*(\d{1,2})\s*$", re.IGNORECASE)
_SCENE_STEM = re.compile(r"^[^\s]+(?:-[^\s]+)+$")  # "01-artist_name-song_title-grp": no spaces
_EXTENSION = re.compile(r"^[0-9a-z]{1,5}$")
_SEPARATORS = re.compile(r"[\\/]")


def split_path(filename: str) -> list[str]:
    return filename.split("\\")


def is_hostile(filename: str) -> bool:
    """A `..` segment could escape the download folder; such paths are never taken."""
    if ".." not in filename:
        return False
    return any(segment.strip() == ".." for segment in _SEPARATORS.split(filename))


def extension_of(basename: str) -> str:
    if "." not in basename:
        return ""
    extension = basename.rsplit(".", 1)[1].lower()
    return extension if _EXTENSION.match(extension) else ""


def stem_of(basename: str, extension: str | None = None) -> str:
    """The name without its extension, nor a repeated audio extension ("Song.flac.flac")."""
    if extension is None:
        extension = extension_of(basename)
    stem = basename[: -len(extension) - 1] if extension else basename
    while extension_of(stem) in AUDIO_EXTENSIONS:
        stem = stem.rsplit(".", 1)[0]
    return stem


def parse_numbering(stem: str) -> tuple[int | None, int | None, str]:
    """(disc, track, rest of the name) for the numbering styles peers use."""
    match = _NUMBERING.match(stem)
    if not match:
        return None, None, stem.strip()
    rest = stem[match.end():].strip()
    if match.group("disc"):
        return int(match.group("disc")), int(match.group("disc_track")), rest
    if match.group("side"):
        return None, int(match.group("side_track")), rest
    return None, int(match.group("track")), rest


@lru_cache(maxsize=8192)
def _folders_of(folder_path: str) -> tuple[tuple[str, ...], int | None]:
    """(folders, disc number they give) of the path before a file name: shared by a folder's files."""
    folders = tuple(split_path(folder_path))
    return folders, disc_from_folders(folders)


def disc_from_folders(folders: tuple[str, ...]) -> int | None:
    for folder in reversed(folders):
        match = _DISC_FOLDER.match(folder)
        if match:
            return int(match.group(1))
    return None


def guess_artist_and_title(rest: str) -> tuple[str | None, str]:
    """Splits 'Artist - Title' and scene 'artist_name-song_title-grp' names."""
    if _SCENE_STEM.match(rest) and ("_" in rest or rest.count("-") >= 2):
        parts = rest.split("-")
        artist, title_parts = parts[0], parts[1:]
        if len(title_parts) > 1 and "_" not in title_parts[-1] and len(title_parts[-1]) <= 12:
            title_parts = title_parts[:-1]  # release group or hash tag
        return artist.replace("_", " "), "-".join(title_parts).replace("_", " ")
    if " - " in rest:
        artist, title = rest.split(" - ", 1)
        return artist.strip(), title.strip()
    return None, rest


def int_or_none(value: Any) -> int | None:
    if type(value) is int:  # the usual case, checked first
        return value
    if isinstance(value, float) and not math.isfinite(value):  # int(inf) raises
        return None
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def parse_candidate(response: dict[str, Any], file: dict[str, Any], locked: bool) -> Candidate:
    filename = file["filename"]
    folder_path, separator, basename = filename.rpartition("\\")
    folders, folder_disc = _folders_of(folder_path) if separator else ((), None)
    extension = extension_of(basename)
    stem = stem_of(basename, extension)
    disc, track, rest = parse_numbering(stem)
    artist_guess, title_guess = guess_artist_and_title(rest)
    return Candidate(
        username=response["username"],
        filename=filename,
        size=int_or_none(file.get("size")),
        extension=extension,
        bitrate=int_or_none(file.get("bitRate")),
        length=int_or_none(file.get("length")),
        sample_rate=int_or_none(file.get("sampleRate")),
        bit_depth=int_or_none(file.get("bitDepth")),
        locked=locked,
        has_free_slot=bool(response.get("hasFreeUploadSlot", False)),
        queue_length=int_or_none(response.get("queueLength")) or 0,
        upload_speed=int_or_none(response.get("uploadSpeed")) or 0,
        folders=folders,
        stem=stem,
        disc_number=disc if disc is not None else folder_disc,
        track_number=track,
        artist_guess=artist_guess,
        title_guess=title_guess,
    )


def candidates_from_responses(responses: list[dict[str, Any]]) -> list[Candidate]:
    """Every file of every response; files under `lockedFiles` are marked locked."""
    candidates = []
    for response in responses:
        if not isinstance(response, dict) or not isinstance(response.get("username"), str):
            continue  # a malformed answer is no candidate
        for key, locked in (("files", False), ("lockedFiles", True)):
            files = response.get(key)
            for file in files if isinstance(files, list) else []:
                if isinstance(file, dict) and isinstance(file.get("filename"), str):
                    candidates.append(parse_candidate(response, file, locked=locked))
    return candidates
