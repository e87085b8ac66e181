"""Artwork: measure candidates, pick the largest, decide replacement, embed per format.

Sizes are always measured from the downloaded bytes with Pillow: declared sizes lie (a CAA "1200"
thumbnail of a 600 px original is 600 px, iTunes renders at most its source size). The embedded
copy is a JPEG of at most 1500 px on the long edge, because players choke on huge embedded art;
the original is kept next to the audio as cover.jpg / cover.png. Only the image is ever re-encoded.
"""

from __future__ import annotations

import base64
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from mutagen import MutagenError
from mutagen.flac import FLAC, Picture
from mutagen.id3 import APIC, PictureType
from mutagen.mp3 import MP3
from mutagen.mp4 import MP4, MP4Cover
from PIL import Image, UnidentifiedImageError

from harmony_pipeline.enrichment.tagging import open_audio, save_audio

ArtworkSource = Literal["coverartarchive", "spotify", "itunes"]
# Most reliable first (api-contracts.md §4.4): used to break ties between equally large images.
SOURCE_RELIABILITY: tuple[ArtworkSource, ...] = ("coverartarchive", "spotify", "itunes")

SUPPORTED_MIME = {"JPEG": "image/jpeg", "PNG": "image/png"}
COVER_FILE_NAMES = {"image/jpeg": "cover.jpg", "image/png": "cover.png"}
MP4_COVER_FORMATS = {"image/jpeg": MP4Cover.FORMAT_JPEG, "image/png": MP4Cover.FORMAT_PNG}
DEFAULT_MIN_EDGE = 1000
DEFAULT_MIN_BYTES = 150_000  # the low-resolution threshold when an embed's dimensions are unknown
EMBED_MAX_EDGE = 1500
EMBED_JPEG_QUALITY = 90


class ArtworkError(Exception):
    """Image data that is not a supported image, or audio that cannot hold a cover."""


@dataclass(frozen=True)
class ArtworkCandidate:
    source: ArtworkSource
    url: str
    width: int | None = None  # as declared by the source; not trusted for ranking
    height: int | None = None


@dataclass(frozen=True)
class ImageInfo:
    width: int | None  # None when an embedded picture could not be decoded
    height: int | None
    mime: str
    bytes: int

    @property
    def pixels(self) -> int | None:
        return self.width * self.height if self.width and self.height else None

    @property
    def shorter_edge(self) -> int | None:
        return min(self.width, self.height) if self.width and self.height else None


def measure_image(data: bytes) -> ImageInfo:
    """Measure a downloaded image; reject anything that is not a complete JPEG or PNG."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()  # decodes fully, so a truncated download is rejected here
            width, height, image_format = image.width, image.height, image.format
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as error:
        raise ArtworkError(f"not a usable image: {error}") from error
    if image_format not in SUPPORTED_MIME:
        raise ArtworkError(f"unsupported image type {image_format}; expected JPEG or PNG")
    return ImageInfo(width, height, SUPPORTED_MIME[image_format], len(data))


def choose_largest(
    measured: list[tuple[ArtworkCandidate, ImageInfo]], max_bytes: int
) -> tuple[ArtworkCandidate, ImageInfo] | None:
    """The candidate with the most measured pixels within `max_bytes`; ties go to the more reliable source."""
    allowed = [(candidate, info) for candidate, info in measured if info.bytes <= max_bytes and info.pixels]
    if not allowed:
        return None
    return max(allowed, key=lambda pair: (pair[1].pixels, -SOURCE_RELIABILITY.index(pair[0].source)))


def should_replace_embed(
    existing: ImageInfo | None,
    candidate: ImageInfo,
    *,
    min_edge: int = DEFAULT_MIN_EDGE,
    min_bytes: int = DEFAULT_MIN_BYTES,
) -> bool:
    """Replace a missing or low-resolution embed, but only with a larger image.

    Low resolution: shorter edge < `min_edge`, or, when the embed's dimensions are unknown,
    fewer than `min_bytes` bytes.
    """
    if existing is None:
        return True
    if existing.shorter_edge is not None:
        low_resolution = existing.shorter_edge < min_edge
    else:
        low_resolution = existing.bytes < min_bytes
    if not low_resolution:
        return False
    if existing.pixels is not None and candidate.pixels is not None:
        return candidate.pixels > existing.pixels
    return candidate.bytes > existing.bytes


def prepare_embed(image_bytes: bytes, max_edge: int = EMBED_MAX_EDGE) -> tuple[bytes, ImageInfo]:
    """The image to embed: a JPEG of at most `max_edge` px on the long edge.

    A JPEG that already fits is embedded byte for byte (no generation loss).
    """
    info = measure_image(image_bytes)
    if info.mime == "image/jpeg" and max(info.width, info.height) <= max_edge:
        return image_bytes, info
    with Image.open(io.BytesIO(image_bytes)) as image:
        image.thumbnail((max_edge, max_edge), Image.Resampling.LANCZOS)
        encoded = _jpeg_bytes(image, EMBED_JPEG_QUALITY)
    return encoded, measure_image(encoded)


def write_cover_file(directory: Path, image_bytes: bytes) -> Path:
    """Keep the original image next to the audio as cover.jpg / cover.png (atomic replace)."""
    target = directory / COVER_FILE_NAMES[measure_image(image_bytes).mime]
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        temporary.write_bytes(image_bytes)
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return target


def embed_cover(path: str | Path, image_bytes: bytes, mime: str) -> None:
    """Make `image_bytes` the only front cover of the audio file at `path` (one save)."""
    if mime not in MP4_COVER_FORMATS:
        raise ArtworkError(f"cannot embed {mime}; expected image/jpeg or image/png")
    audio = open_audio(path)
    if isinstance(audio, MP3):
        audio.tags.delall("APIC")
        audio.tags.add(
            APIC(encoding=3, mime=mime, type=PictureType.COVER_FRONT, desc="Cover", data=image_bytes)
        )
    elif isinstance(audio, MP4):
        audio.tags["covr"] = [MP4Cover(image_bytes, imageformat=MP4_COVER_FORMATS[mime])]
    elif isinstance(audio, FLAC):
        audio.clear_pictures()
        audio.add_picture(_flac_picture(image_bytes, mime))
    else:  # Ogg Vorbis / Opus: a base64 FLAC picture block in a comment
        block = base64.b64encode(_flac_picture(image_bytes, mime).write()).decode("ascii")
        audio.tags["METADATA_BLOCK_PICTURE"] = [block]
    save_audio(audio, path)


def existing_cover(path: str | Path) -> ImageInfo | None:
    """The embedded front cover (else the first picture), measured; None when there is none."""
    picture = _embedded_picture(path)
    if picture is None:
        return None
    data, mime = picture
    try:
        with Image.open(io.BytesIO(data)) as image:
            return ImageInfo(image.width, image.height, Image.MIME.get(image.format, mime), len(data))
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError):
        return ImageInfo(None, None, mime, len(data))


def existing_cover_bytes(path: str | Path) -> bytes | None:
    """The embedded front cover's raw bytes (else the first picture's), or None."""
    picture = _embedded_picture(path)
    return picture[0] if picture else None


def thumbnail_data_uri(image_bytes: bytes, size: int = 96) -> str:
    """A small JPEG data URI for a markdown preview in the Dagster UI."""
    try:
        with Image.open(io.BytesIO(image_bytes)) as image:
            image.thumbnail((size, size), Image.Resampling.LANCZOS)
            encoded = _jpeg_bytes(image, quality=80)
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as error:
        raise ArtworkError(f"not a usable image: {error}") from error
    return "data:image/jpeg;base64," + base64.b64encode(encoded).decode("ascii")


def _jpeg_bytes(image: Image.Image, quality: int) -> bytes:
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        # Flatten transparency onto white rather than letting it turn black.
        rgba = image.convert("RGBA")
        flattened = Image.new("RGB", rgba.size, "white")
        flattened.paste(rgba, mask=rgba.getchannel("A"))
        image = flattened
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=quality, optimize=True)
    return buffer.getvalue()


def _flac_picture(image_bytes: bytes, mime: str) -> Picture:
    info = measure_image(image_bytes)
    picture = Picture()
    picture.type = PictureType.COVER_FRONT
    picture.mime = mime
    picture.desc = "Cover"
    picture.width, picture.height = info.width, info.height
    picture.depth = 24
    picture.data = image_bytes
    return picture


def _embedded_picture(path: str | Path) -> tuple[bytes, str] | None:
    audio = open_audio(path)
    if isinstance(audio, MP3):
        pictures = [(frame.type, frame.data, frame.mime) for frame in audio.tags.getall("APIC")]
    elif isinstance(audio, MP4):
        pictures = [
            (PictureType.COVER_FRONT, bytes(cover), _mp4_cover_mime(cover))
            for cover in audio.tags.get("covr", [])
        ]
    elif isinstance(audio, FLAC):
        pictures = [(picture.type, picture.data, picture.mime) for picture in audio.pictures]
    else:
        pictures = []
        for block in audio.tags.get("METADATA_BLOCK_PICTURE", []):
            try:
                picture = Picture(base64.b64decode(block))
            except (ValueError, MutagenError):  # a malformed comment is no picture
                continue
            pictures.append((picture.type, picture.data, picture.mime))
    if not pictures:
        return None
    front = [picture for picture in pictures if picture[0] == PictureType.COVER_FRONT]
    _, data, mime = (front or pictures)[0]
    return data, mime


def _mp4_cover_mime(cover: MP4Cover) -> str:
    return "image/png" if cover.imageformat == MP4Cover.FORMAT_PNG else "image/jpeg"
