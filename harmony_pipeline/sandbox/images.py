"""Real, deterministic JPEG/PNG bytes of given dimensions for the sandbox's artwork endpoints."""

from __future__ import annotations

import hashlib
import io
from functools import lru_cache

from PIL import Image, ImageDraw


def _colours(key: str) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return (digest[0], digest[1], digest[2]), (digest[3], digest[4], digest[5])


@lru_cache(maxsize=256)
def image_bytes(width: int, height: int, key: str = "", image_format: str = "JPEG") -> bytes:
    """An image of exactly `width`×`height` whose colours derive from `key` (e.g. an album id).

    `image_format` is "JPEG" or "PNG". Results are cached: the same arguments give the same bytes.
    """
    background, accent = _colours(key)
    image = Image.new("RGB", (width, height), background)
    # A centred square in a second colour, so covers differ visibly and are not a single flat colour.
    draw = ImageDraw.Draw(image)
    draw.rectangle((width // 4, height // 4, width * 3 // 4, height * 3 // 4), fill=accent)
    buffer = io.BytesIO()
    if image_format.upper() == "JPEG":
        image.save(buffer, format="JPEG", quality=85)
    else:
        image.save(buffer, format="PNG")
    return buffer.getvalue()


def jpeg_bytes(width: int, height: int, key: str = "") -> bytes:
    return image_bytes(width, height, key, "JPEG")


def png_bytes(width: int, height: int, key: str = "") -> bytes:
    return image_bytes(width, height, key, "PNG")
