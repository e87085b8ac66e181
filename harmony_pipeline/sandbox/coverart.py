"""Cover Art Archive emulator over the sandbox catalog (api-contracts.md §4.2, §4.5).

- `GET /release/{mbid}` and `/release-group/{mbid}`: the JSON image listing (400 bad UUID, 404 no art).
- `GET /release/{mbid}/front[-250|-500|-1200]`, `/{imageid}.jpg`, `/{imageid}-{size}.jpg` (and the same
  under `/release-group/`): **307** to `/download/mbid-{mbid}/mbid-{mbid}-{imageid}[_thumb{size}].jpg`
  on this emulator, which stands in for the Internet Archive hop and serves real JPEG bytes.

Originals have the catalog's dimensions (`CoverArt.width`×`height`); thumbnails are scaled so the
longer edge is the requested size, never upscaled. Spotify album images are not served here: the
catalog only names their ids (`spotify_image_ids`), and the Spotify emulator owns their URLs.
"""

from __future__ import annotations

import re
from typing import Any

from harmony_pipeline.sandbox.catalog import Album, Catalog
from harmony_pipeline.sandbox.images import jpeg_bytes
from harmony_pipeline.sandbox.server import (
    Emulator,
    Request,
    Response,
    bytes_response,
    json_response,
    redirect_response,
)

THUMBNAIL_SIZES = {"250": 250, "500": 500, "1200": 1200, "small": 250, "large": 500}
MBID_PATTERN = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.IGNORECASE)
_SIZE = r"(?:-(?:250|500|1200|small|large))?"


def thumbnail_dimensions(width: int, height: int, size: int | None) -> tuple[int, int]:
    """The served dimensions: the original for `size` None, else longer edge = min(size, longer edge)."""
    longest = max(width, height)
    if size is None or size >= longest:
        return width, height
    return max(1, round(width * size / longest)), max(1, round(height * size / longest))


def _text(status: int, message: str) -> Response:
    return Response(status, message.encode("utf-8"), {"Content-Type": "text/plain; charset=utf-8"})


class CoverArtEmulator(Emulator):
    name = "coverart"

    def __init__(self, catalog: Catalog) -> None:
        super().__init__()
        self.catalog = catalog
        for kind in ("release", "release-group"):
            self.add_route("GET", f"/{kind}/{{mbid}}", self.listing)
            self.add_route("GET", f"/{kind}/{{mbid}}/{{side:front|back}}{{size:{_SIZE}}}", self.front_redirect)
            self.add_route("GET", f"/{kind}/{{mbid}}/{{image_id:\\d+}}{{size:{_SIZE}}}.jpg", self.image_redirect)
        self.add_route(
            "GET", "/download/mbid-{mbid}/mbid-{mbid2}-{image_id:\\d+}{thumb:(?:_thumb(?:250|500|1200)?)?}.jpg",
            self.download,
        )

    def error_response(self, status: int, message: str) -> Response:
        return _text(status, message)

    # -- lookups ------------------------------------------------------------------------------
    def _album(self, request: Request) -> Album | Response:
        """The album behind `/release/{mbid}` or `/release-group/{mbid}` that has art, or 400/404."""
        mbid = request.params["mbid"].lower()
        if not MBID_PATTERN.match(mbid):
            return _text(400, f"{request.params['mbid']} is not a valid UUID")
        with self.catalog.lock:
            if request.path.startswith("/release-group/"):
                album = self.catalog.find_release_group(mbid)
            else:
                album = self.catalog.find_release(mbid)
        if album is None or album.cover is None:
            return _text(404, "No cover art found")
        return album

    def _image_url(self, request: Request, album: Album, size: str = "") -> str:
        assert album.cover is not None
        suffix = f"-{size}" if size else ""
        return f"{request.base_url}/release/{album.release.mbid}/{album.cover.image_id}{suffix}.jpg"

    def _download_url(self, request: Request, album: Album, size: str) -> str:
        assert album.cover is not None
        mbid = album.release.mbid
        thumb = f"_thumb{THUMBNAIL_SIZES[size]}" if size else ""
        return f"{request.base_url}/download/mbid-{mbid}/mbid-{mbid}-{album.cover.image_id}{thumb}.jpg"

    # -- routes -------------------------------------------------------------------------------
    def listing(self, request: Request) -> Response:
        album = self._album(request)
        if isinstance(album, Response):
            return album
        assert album.cover is not None
        thumbnails = {size: self._image_url(request, album, size) for size in ("250", "500", "1200")}
        thumbnails["small"], thumbnails["large"] = thumbnails["250"], thumbnails["500"]
        image: dict[str, Any] = {
            "id": album.cover.image_id,
            "types": ["Front"],
            "front": True,
            "back": False,
            "approved": True,
            "comment": "",
            "edit": int(album.cover.image_id) % 90_000_000 + 1_000_000,
            "image": self._image_url(request, album),
            "thumbnails": thumbnails,
        }
        return json_response({"release": f"https://musicbrainz.org/release/{album.release.mbid}", "images": [image]})

    def front_redirect(self, request: Request) -> Response:
        album = self._album(request)
        if isinstance(album, Response):
            return album
        if request.params["side"] == "back":  # the catalog's releases only have a front image
            return _text(404, "No back image found")
        return redirect_response(self._download_url(request, album, request.params["size"].lstrip("-")))

    def image_redirect(self, request: Request) -> Response:
        album = self._album(request)
        if isinstance(album, Response):
            return album
        assert album.cover is not None
        if request.params["image_id"] != album.cover.image_id:
            return _text(404, "No image with this id")
        return redirect_response(self._download_url(request, album, request.params["size"].lstrip("-")))

    def download(self, request: Request) -> Response:
        mbid = request.params["mbid"].lower()
        with self.catalog.lock:
            album = self.catalog.find_cover(request.params["image_id"])
        same_release = album is not None and album.release.mbid == mbid == request.params["mbid2"].lower()
        if album is None or album.cover is None or not same_release:
            return _text(404, "Not Found")
        thumb = request.params["thumb"]
        size = None if not thumb else int(thumb.removeprefix("_thumb") or 250)
        width, height = thumbnail_dimensions(album.cover.width, album.cover.height, size)
        return bytes_response(jpeg_bytes(width, height, key=album.id), "image/jpeg")


def create_emulator(sandbox: Any) -> CoverArtEmulator:
    """Sandbox plug-in hook (no options)."""
    return CoverArtEmulator(sandbox.catalog)


def environment(sandbox: Any, base_url: str) -> dict[str, str]:
    """`COVERART_URL` (design.md §4), like https://coverartarchive.org."""
    return {"COVERART_URL": base_url}
