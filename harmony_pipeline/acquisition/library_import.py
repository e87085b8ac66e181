"""From a finished slskd download to a file in the library: locate, check, move, or quarantine.

Plain functions, no Dagster and no HTTP. Paths that come from slskd or from remote peers are
never trusted: each one is resolved and checked to stay inside its root before it is used.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath, PureWindowsPath

import mutagen

from harmony_pipeline.library.paths import (
    MAX_COMPONENT_BYTES,
    resolve_inside,
    truncate_utf8,
    unique_destination,
)

# mutagen's file type → the format name used across the pipeline (lower-case, like extensions).
_FORMATS = {
    "MP3": "mp3",
    "FLAC": "flac",
    "OggFLAC": "flac",
    "OggVorbis": "ogg",
    "OggOpus": "opus",
    "MP4": "m4a",
    "AAC": "aac",
    "WAVE": "wav",
    "AIFF": "aiff",
    "ASF": "wma",
    "MonkeysAudio": "ape",
    "WavPack": "wv",
}
_COPY_CHUNK = 1 << 20


class AudioCheckError(Exception):
    """A downloaded file is not the audio we wanted; the message says why."""


@dataclass(frozen=True)
class AudioInfo:
    format: str
    bitrate_kbps: int | None
    duration_seconds: float
    sample_rate: int | None


def map_remote_path(local_filename_from_slskd: str, remote_downloads_dir: str, downloads_dir: Path) -> Path:
    """The path of a finished download as this machine sees it.

    slskd reports `localFilename` as it sees it (e.g. /app/downloads/… inside its container);
    `remote_downloads_dir` (SLSKD_REMOTE_DOWNLOADS_DIR) is that prefix, `downloads_dir`
    (SLSKD_DOWNLOADS_DIR) our mount of the same folder. ValueError for a path outside the prefix
    or one that would escape `downloads_dir`.
    """
    flavour = PureWindowsPath if _is_windows_path(remote_downloads_dir) else PurePosixPath
    reported = flavour(local_filename_from_slskd)
    try:
        relative = reported.relative_to(flavour(remote_downloads_dir))
    except ValueError:
        raise ValueError(
            f"slskd path {local_filename_from_slskd!r} is not under {remote_downloads_dir!r} "
            "(SLSKD_REMOTE_DOWNLOADS_DIR)"
        ) from None
    return resolve_inside(downloads_dir, PurePosixPath(*relative.parts))


def expected_download_path(downloads_dir: Path, remote_filename: str) -> Path:
    """Where slskd puts a finished download by default: `<downloads>/<remote parent dir>/<file>`.

    Soulseek names use backslashes (a slash is taken as a separator as well). Like slskd on a
    Linux host, a NUL is replaced by "_"; a name made only of dots ("..") becomes underscores, so
    hostile names such as `..\\..\\x.mp3` stay inside `downloads_dir`.
    """
    parts = [part for part in re.split(r"[\\/]", remote_filename) if part]
    if not parts:
        raise ValueError(f"remote filename {remote_filename!r} has no file name")
    names = [_slskd_name(part) for part in parts[-2:]]
    return resolve_inside(downloads_dir, PurePosixPath(*names))


def find_downloaded_file(downloads_dir: Path, remote_filename: str) -> Path | None:
    """The finished file of a download when slskd's event did not say where it is.

    The expected path, else the newest `<stem>_<digits><ext>` in the same folder: slskd's
    rename when the expected name was taken. None when neither exists.
    """
    expected = expected_download_path(downloads_dir, remote_filename)
    if expected.is_file():
        return expected
    if not expected.parent.is_dir():
        return None
    renamed = re.compile(re.escape(expected.stem) + r"_\d+")
    root = Path(downloads_dir).resolve()
    candidates = [
        path
        for path in expected.parent.iterdir()
        if path.suffix == expected.suffix
        and renamed.fullmatch(path.stem)
        and path.is_file()
        and path.resolve().is_relative_to(root)
    ]
    return max(candidates, key=lambda path: path.stat().st_mtime, default=None)


def inspect_audio(path: Path) -> AudioInfo:
    """Format, bitrate, duration and sample rate of an audio file; AudioCheckError if it is not one."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise AudioCheckError(f"{path.name}: cannot be read ({exc.strerror})") from exc
    if size == 0:
        raise AudioCheckError(f"{path.name}: file is empty")
    try:
        audio = mutagen.File(path)
    except (mutagen.MutagenError, OSError) as exc:
        raise AudioCheckError(f"{path.name}: not a readable audio file ({exc})") from exc
    if audio is None or getattr(audio, "info", None) is None:
        raise AudioCheckError(f"{path.name}: not a recognised audio format")
    duration = float(getattr(audio.info, "length", 0) or 0)
    if duration <= 0:
        raise AudioCheckError(f"{path.name}: holds no audio (duration 0s)")
    bitrate = getattr(audio.info, "bitrate", 0)
    sample_rate = getattr(audio.info, "sample_rate", 0)
    kind = type(audio).__name__
    return AudioInfo(
        format=_FORMATS.get(kind, kind.lower()),
        bitrate_kbps=round(bitrate / 1000) if bitrate else None,
        duration_seconds=duration,
        sample_rate=sample_rate or None,
    )


def check_download(path: Path, expected_duration_ms: int | None, tolerance_s: float = 3) -> AudioInfo:
    """`inspect_audio`, plus the duration check against the wanted track when its length is known."""
    info = inspect_audio(path)
    if expected_duration_ms:
        expected_s = expected_duration_ms / 1000
        if abs(info.duration_seconds - expected_s) > tolerance_s:
            raise AudioCheckError(
                f"duration {info.duration_seconds:.0f}s differs from expected {expected_s:.0f}s "
                f"by more than {tolerance_s:g}s"
            )
    return info


def import_into_library(source: Path, library_root: Path, relative: PurePosixPath) -> Path:
    """Move `source` to `library_root/relative` atomically and return where it landed.

    A different file already at the target makes it "name (2).ext"; a file with the same content
    is kept and `source` removed, so re-imports never duplicate. ValueError if `relative` would
    leave the library.
    """
    if not source.is_file():
        raise FileNotFoundError(f"nothing to import at {source}")
    target = resolve_inside(library_root, relative)
    target.parent.mkdir(parents=True, exist_ok=True)
    destination = unique_destination(target, same_as=source)
    if destination == source.resolve():
        return destination
    if destination.exists():  # identical content already in the library
        source.unlink()
        return destination
    _move(source, destination)
    return destination


def quarantine(source: Path, quarantine_dir: Path, reason: str) -> Path:
    """Move a rejected file aside, with `<name>.reason.txt` next to it saying why."""
    quarantine_dir.mkdir(parents=True, exist_ok=True)
    destination = unique_destination(quarantine_dir.resolve() / source.name)
    _move(source, destination)
    note_tail = ".reason.txt"
    note_name = truncate_utf8(destination.name, MAX_COMPONENT_BYTES - len(note_tail)) + note_tail
    moved_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    destination.with_name(note_name).write_text(
        f"{reason}\nfrom: {source}\nquarantined: {moved_at}\n", encoding="utf-8"
    )
    return destination


def _move(source: Path, destination: Path) -> None:
    """Rename when both are on one filesystem; otherwise copy into place, then remove the source."""
    try:
        os.replace(source, destination)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        _copy_into_place(source, destination)
        source.unlink()


def _copy_into_place(source: Path, destination: Path) -> None:
    # The copy goes to a temporary name in the target folder, so the final os.replace is atomic
    # and a crash never leaves a half-written file under the real name.
    handle, temporary = tempfile.mkstemp(dir=destination.parent, prefix=".harmony-", suffix=".part")
    try:
        with os.fdopen(handle, "wb") as out, source.open("rb") as src:
            shutil.copyfileobj(src, out, _COPY_CHUNK)
            out.flush()
            os.fsync(out.fileno())
        shutil.copystat(source, temporary)
        os.replace(temporary, destination)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    _fsync_directory(destination.parent)


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _slskd_name(name: str) -> str:
    name = name.replace("\0", "_")
    return "_" * len(name) if set(name) == {"."} else name


def _is_windows_path(path: str) -> bool:
    return "\\" in path or bool(re.match(r"[A-Za-z]:", path))

