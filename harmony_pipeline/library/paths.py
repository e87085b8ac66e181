"""Library paths: `HARMONY_PATH_TEMPLATE` rendering, safe path components, collision handling.

Every rendered component is made safe for every common filesystem, because libraries often live
on SMB/NTFS shares: no ``<>:"/\\|?*`` or control characters, no reserved device names (CON,
NUL, COM1…), no trailing dots or spaces, no leading dot (which would hide the file), and at most
255 UTF-8 bytes. Unicode is kept, normalised to NFC.

A slash or backslash *inside* a value is replaced by "_" before the value is placed in the
template, so "AC/DC" becomes the single folder "AC_DC". "_" is chosen over look-alike characters
such as "∕" (U+2215) because it is plain ASCII, is what other tools (beets, slskd) use, and keeps
names searchable and typeable.
"""

from __future__ import annotations

import hashlib
import re
import string
import unicodedata
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pathvalidate

MAX_COMPONENT_BYTES = 255
PLACEHOLDERS = frozenset(
    {"albumartist", "artist", "album", "year", "disc", "track", "title", "disc_prefix"}
)
_EXTENSION = re.compile(r"\.[a-z0-9]{1,10}")


@dataclass(frozen=True)
class TrackNaming:
    """The values a path template may use; empty strings and zeros mean unknown."""

    albumartist: str
    artist: str
    album: str
    year: int | None
    disc: int
    disc_total: int
    track: int
    title: str


class _PathFormatter(string.Formatter):
    # An unknown year renders as nothing, whatever its format spec ({year:04d} included).
    def format_field(self, value: object, format_spec: str) -> str:
        if value is None:
            return ""
        return super().format_field(value, format_spec)


_FORMATTER = _PathFormatter()
_SAMPLE = TrackNaming(
    albumartist="Album Artist", artist="Artist", album="Album", year=2001,
    disc=1, disc_total=2, track=1, title="Title",
)


def truncate_utf8(text: str, max_bytes: int) -> str:
    """`text` cut to at most `max_bytes` UTF-8 bytes, never inside a character."""
    return text.encode("utf-8")[:max_bytes].decode("utf-8", errors="ignore")


def safe_component(text: str, max_bytes: int = MAX_COMPONENT_BYTES) -> str:
    """One path component safe on every common filesystem; "" when nothing usable is left."""
    text = unicodedata.normalize("NFC", text)
    # Trailing dots and spaces go first, so that "NUL ." is still seen as the reserved "NUL".
    text = re.sub(r"[\t\r\n]+", " ", text).rstrip(". ")
    text = pathvalidate.sanitize_filename(
        text, replacement_text="_", platform="universal", max_len=max_bytes, fs_encoding="utf-8"
    )
    # Neither truncation nor the reserved-name fix may leave a trailing dot or space behind.
    text = text.rstrip(". ")
    if text.startswith("."):
        text = "_" + text[1:]
    return text


def validate_template(template: str) -> None:
    """Raise ValueError naming the problem when `template` cannot render a library path."""
    _template_components(template)
    try:
        render_library_path(template, _SAMPLE, ".flac")
    except (ValueError, TypeError) as exc:
        raise ValueError(f"path template {template!r} does not render: {exc}") from exc


def render_library_path(template: str, naming: TrackNaming, extension: str) -> PurePosixPath:
    """The library path (relative) of a track, `extension` (".flac" or "flac") appended."""
    suffix = _normalise_extension(extension)
    components = _template_components(template)
    values = _template_values(naming)
    folders = [safe_component(_FORMATTER.vformat(part, (), values)) for part in components[:-1]]
    stem_budget = MAX_COMPONENT_BYTES - len(suffix.encode("utf-8"))
    stem = safe_component(_FORMATTER.vformat(components[-1], (), values), stem_budget)
    if not stem:
        stem = safe_component(str(values["title"]), stem_budget)
    # A folder that renders empty (e.g. "{year}" with no year) is left out rather than invented.
    return PurePosixPath(*[folder for folder in folders if folder], stem + suffix)


def resolve_inside(library_root: Path, relative: PurePosixPath | str) -> Path:
    """The absolute target of `relative` under `library_root`; ValueError if it would escape."""
    relative = PurePosixPath(relative)
    if relative.is_absolute() or ".." in relative.parts or not relative.parts:
        raise ValueError(f"{str(relative)!r} is not a plain relative path")
    root = Path(library_root).resolve()
    target = root.joinpath(*relative.parts).resolve()
    if target == root or not target.is_relative_to(root):
        raise ValueError(f"{str(relative)!r} resolves to {target}, outside {root}")
    return target


def unique_destination(path: Path, same_as: Path | None = None) -> Path:
    """`path`, or "name (2).ext", "name (3).ext"… : the first that does not exist yet.

    With `same_as`, an existing candidate holding the same content as that file is returned
    instead, so importing a file twice finds the first copy rather than making a duplicate.
    """
    candidate, number = path, 2
    while candidate.exists() or candidate.is_symlink():
        if same_as is not None and candidate.is_file() and same_content(candidate, same_as):
            return candidate
        candidate = path.with_name(_numbered_name(path, number))
        number += 1
    return candidate


def same_content(first: Path, second: Path) -> bool:
    """Whether two files hold the same bytes (size first, then SHA-256)."""
    if first.stat().st_size != second.stat().st_size:
        return False
    return _sha256(first) == _sha256(second)


def _sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _numbered_name(path: Path, number: int) -> str:
    tail = f" ({number}){path.suffix}"
    stem = truncate_utf8(path.stem, MAX_COMPONENT_BYTES - len(tail.encode("utf-8")))
    return stem + tail


def _normalise_extension(extension: str) -> str:
    suffix = "." + extension.strip().lstrip(".").lower()
    if not _EXTENSION.fullmatch(suffix):
        raise ValueError(f"{extension!r} is not a file extension")
    return suffix


def _template_components(template: str) -> list[str]:
    """The template split into path components, its placeholders checked."""
    if not template.strip():
        raise ValueError("path template is empty")
    if template.startswith("/"):
        raise ValueError(f"path template {template!r} must be relative to the library")
    components = template.split("/")
    for component in components:
        if not component.strip():
            raise ValueError(f"path template {template!r} has an empty path component")
        if component.strip() in (".", ".."):
            raise ValueError(f"path template {template!r} may not contain {component.strip()!r}")
        _check_placeholders(template, component)
    return components


def _check_placeholders(template: str, component: str) -> None:
    known = ", ".join("{" + name + "}" for name in sorted(PLACEHOLDERS))
    try:
        fields = list(_FORMATTER.parse(component))
    except ValueError as exc:
        raise ValueError(f"path template {template!r}: {exc}") from exc
    for _literal, field, spec, _conversion in fields:
        if field is None:
            continue
        if field not in PLACEHOLDERS:
            raise ValueError(
                f"unknown placeholder {{{field}}} in path template {template!r}; known: {known}"
            )
        if spec and "{" in spec:
            raise ValueError(f"nested placeholder in format spec of {{{field}}} in {template!r}")


def _template_values(naming: TrackNaming) -> dict[str, object]:
    artist = _usable(naming.artist) or _usable(naming.albumartist) or "Unknown Artist"
    track = max(naming.track, 0)
    disc = max(naming.disc, 1)
    multi_disc = max(naming.disc_total, disc) > 1
    return {
        "albumartist": _usable(naming.albumartist) or artist,
        "artist": artist,
        "album": _usable(naming.album) or "Unknown Album",
        "year": naming.year if naming.year else None,
        "disc": disc,
        "track": track,
        "title": _usable(naming.title) or (f"Track {track:02d}" if track else "Untitled"),
        "disc_prefix": f"{disc}-" if multi_disc else "",
    }


def _usable(value: str | None) -> str:
    """The value ready for the template, or "" when nothing of it would survive as a name."""
    # Separators inside a value would create extra folders ("AC/DC"); see the module docstring.
    text = unicodedata.normalize("NFC", value or "").strip()
    text = text.replace("/", "_").replace("\\", "_")
    return text if safe_component(text) else ""
