"""Cover Art Archive (api-contracts.md §4.2): image listings by release MBID and image downloads.

Image URLs answer 307 to the Internet Archive; requests follows the hop. Originals can be many
megabytes, so downloads stream and stop at `max_bytes`. Listings (and "no art" 404s) are cached;
image bytes are kept by the caller, once per album.
"""

from __future__ import annotations

from harmony_pipeline.http_cache import CachedJsonClient, ServiceError

CHUNK_BYTES = 64 * 1024


class ImageTooLarge(ServiceError):
    """The image is larger than the allowed number of bytes."""


class CoverArtClient(CachedJsonClient):
    service = "coverartarchive"

    def listing(self, release_mbid: str) -> dict | None:
        """`{"images": [...]}` of the release, or None when the archive has no art for it."""
        return self.get_json(f"/release/{release_mbid}")

    def download(self, url: str, max_bytes: int) -> bytes:
        """The bytes behind any image URL (CAA and its archive hop, Spotify's CDN), at most `max_bytes`."""
        response = self._get(url, stream=True, headers={"Accept": "image/*"})
        with response:
            if response.status_code != 200:
                raise ServiceError(f"image {url}: HTTP {response.status_code}", response.status_code)
            declared = int(response.headers.get("Content-Length") or 0)
            if declared > max_bytes:
                raise ImageTooLarge(f"image {url} has {declared} bytes, more than {max_bytes}")
            data = bytearray()
            for chunk in response.iter_content(CHUNK_BYTES):
                data += chunk
                if len(data) > max_bytes:
                    raise ImageTooLarge(f"image {url} exceeds {max_bytes} bytes")
        return bytes(data)
