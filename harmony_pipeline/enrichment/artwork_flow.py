"""track_artwork's work: one cover per album (Cover Art Archive original or Spotify's largest, measured),
cached under the data folder, embedded in each track unless a good enough cover is there."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from harmony_pipeline import storage
from harmony_pipeline.acquisition.demand import normalise
from harmony_pipeline.enrichment.artwork import (
    ArtworkCandidate,
    ArtworkError,
    ImageInfo,
    choose_largest,
    embed_cover,
    existing_cover,
    measure_image,
    prepare_embed,
    should_replace_embed,
    write_cover_file,
)
from harmony_pipeline.enrichment.batch import FAILURE_COOLDOWN, MISS_COOLDOWN, check_audio_file, library_file
from harmony_pipeline.enrichment.lookups import Lookups, album_upc
from harmony_pipeline.enrichment.tagging import TaggingError
from harmony_pipeline.http_cache import ServiceError
from harmony_pipeline.service_errors import escapes_item
from harmony_pipeline.enrichment.coverart import CoverArtClient, ImageTooLarge
from harmony_pipeline.spotify.client import SpotifyError

@dataclass(frozen=True)
class AlbumArt:
    source: str
    url: str
    original: bytes
    info: ImageInfo
    cache_path: Path
    embed: bytes  # a JPEG of at most 1500 px, what goes into the files
    embed_info: ImageInfo
    complete: bool  # Spotify's candidate was weighed too; otherwise a later run looks again


def album_key(row: dict) -> str:
    if row.get("album_id"):
        return row["album_id"]
    name = normalise(f"{row.get('album_artist') or row['artist']}|{row.get('album') or ''}")
    return "name-" + hashlib.sha1(name.encode("utf-8")).hexdigest()[:16]


def _art(source: str, url: str, original: bytes, cache_path: Path, complete: bool) -> AlbumArt:
    embed, embed_info = prepare_embed(original)
    return AlbumArt(source, url, original, measure_image(original), cache_path, embed, embed_info, complete)


def cached_album_art(cache_dir: Path, key: str) -> AlbumArt | None:
    """The album's image chosen by an earlier run from every source, if its cache files are intact."""
    try:
        saved = json.loads((cache_dir / f"{key}.json").read_text(encoding="utf-8"))
        if not saved.get("complete", True):
            return None  # chosen while Spotify could not answer: look again
        image = cache_dir / saved["file"]
        return _art(saved["source"], saved["url"], image.read_bytes(), image, True)
    except (OSError, ValueError, KeyError, ArtworkError):
        return None


def store_album_art(cache_dir: Path, key: str, source: str, url: str, original: bytes,
                    complete: bool = True) -> AlbumArt:
    cache_dir.mkdir(parents=True, exist_ok=True)
    image = cache_dir / f"{key}{'.png' if measure_image(original).mime == 'image/png' else '.jpg'}"
    image.write_bytes(original)
    (cache_dir / f"{key}.json").write_text(
        json.dumps({"source": source, "url": url, "file": image.name, "complete": complete}), encoding="utf-8")
    return _art(source, url, original, image, complete)


def download_first_image(caa: CoverArtClient, source: str, urls: list[str | None], max_bytes: int,
                         log) -> tuple[ArtworkCandidate, ImageInfo, bytes] | None:
    """The first of `urls` (largest rendition first) that downloads within `max_bytes` and is an image;
    an original that is too large, fails (e.g. a 5xx on the archive hop) or is no image yields to the next."""
    for url in filter(None, urls):
        try:
            data = caa.download(url, max_bytes)
            return ArtworkCandidate(source, url), measure_image(data), data
        except ImageTooLarge as error:
            log.info(f"{error}; trying a smaller rendition")
        except (ServiceError, ArtworkError) as error:
            log.warning(f"{source} image {url}: {error}")
    return None


def find_album_art(rows: list[dict], lookups: Lookups, caa: CoverArtClient, cache_dir: Path,
                   max_bytes: int, log) -> AlbumArt | None:
    """Cover Art Archive front (original, else 1200) and Spotify's largest image, measured; the largest wins."""
    lookups.take_spotify_gap()  # only what this album misses counts
    key = album_key(rows[0])
    cached = cached_album_art(cache_dir, key)
    if cached is not None:
        return cached
    album = lookups.spotify_album(rows[0].get("album_id"))
    downloads = []
    release = None
    for row in rows:
        release = lookups.musicbrainz_match(row, album_upc(album))[1]
        if release:
            break
    if release:
        listing = caa.listing(release["id"]) or {}
        front = next((image for image in listing.get("images") or [] if image.get("front")), None)
        if front:
            urls = [front.get("image"), (front.get("thumbnails") or {}).get("1200")]
            downloads.append(download_first_image(caa, "coverartarchive", urls, max_bytes, log))
    images = (album or {}).get("images") or []
    if images:
        largest = max(images, key=lambda image: (image.get("width") or 0) * (image.get("height") or 0))
        downloads.append(download_first_image(caa, "spotify", [largest.get("url")], max_bytes, log))
    measured = {candidate: (info, data) for candidate, info, data in filter(None, downloads)}
    chosen = choose_largest([(candidate, info) for candidate, (info, _) in measured.items()], max_bytes)
    if chosen is None:
        return None
    candidate = chosen[0]
    _, original = measured[candidate]
    return store_album_art(cache_dir, key, candidate.source, candidate.url, original,
                           complete=lookups.spotify_gap is None)


def embed_track_art(row: dict, art: AlbumArt, library: Path, min_edge: int) -> dict:
    """Embed the album's image unless the file already holds one good enough; the track_artwork row."""
    path = library_file(library, row)
    check_audio_file(path)
    existing = existing_cover(path)
    if should_replace_embed(existing, art.embed_info, min_edge=min_edge):
        embed_cover(path, art.embed, art.embed_info.mime)
        return {"status": "embedded", "reason": None, "embedded_width": art.embed_info.width,
                "embedded_height": art.embed_info.height}
    return {"status": "kept", "reason": f"the embedded {existing.width}x{existing.height} cover is good enough",
            "embedded_width": existing.width, "embedded_height": existing.height}


ARTWORK_COLUMNS = (
    "wanted_key", "path", "album_key", "status", "reason", "source", "url", "width", "height", "bytes",
    "cache_path", "embedded_width", "embedded_height", "next_attempt_at", "updated_at",
)



@dataclass(frozen=True)
class ArtworkSetup:
    caa: CoverArtClient
    cache_dir: Path  # the chosen images, by album key
    library: Path
    max_bytes: int
    min_edge: int


def album_artwork(rows: list[dict], key: str, lookups: Lookups, setup: ArtworkSetup, now: datetime,
                  log) -> tuple[AlbumArt | None, list[dict]]:
    """Find the album's cover and put it into each of its tracks' files: (the cover or None, the track_artwork
    row of each track). A failed lookup or file is a recorded failure with the cool-down that fits."""
    try:
        art = find_album_art(rows, lookups, setup.caa, setup.cache_dir, setup.max_bytes, log)
    except (ServiceError, SpotifyError, OSError) as error:
        if escapes_item(error):
            raise
        art, failure = None, f"artwork lookup failed: {error}"
    else:
        failure = None
    spotify_gap = lookups.take_spotify_gap()
    results = []
    for row in rows:
        base = {"wanted_key": row["wanted_key"], "path": row["path"], "album_key": key, "updated_at": now}
        if art is None and failure:
            result = {**base, "status": "failed", "reason": failure, "next_attempt_at": now + FAILURE_COOLDOWN}
        elif art is None and spotify_gap:  # Spotify's image may exist: look again as after a failure
            result = {**base, "status": "missing", "reason": f"no cover found without Spotify ({spotify_gap})",
                      "next_attempt_at": now + FAILURE_COOLDOWN}
        elif art is None:
            result = {**base, "status": "missing", "reason": "no cover found", "next_attempt_at": now + MISS_COOLDOWN}
        else:
            base.update(source=art.source, url=art.url, width=art.info.width, height=art.info.height,
                        bytes=art.info.bytes, cache_path=str(art.cache_path))
            try:
                result = {**base, **embed_track_art(row, art, setup.library, setup.min_edge)}
                write_cover_file(library_file(setup.library, row).parent, art.original)
            except (TaggingError, ArtworkError, OSError) as error:
                result = {**base, "status": "failed", "reason": str(error), "next_attempt_at": now + FAILURE_COOLDOWN}
            else:
                if not art.complete:  # Spotify's image may be larger: a later run weighs it
                    result.update(reason=f"chosen without Spotify's candidate ({spotify_gap})",
                                  next_attempt_at=now + FAILURE_COOLDOWN)
        results.append(result)
    return art, results


def record_embedded(database, album: str | None, art: AlbumArt, tracks: int) -> None:
    with database.connect() as conn:
        storage.record_activity(conn, "artwork_embedded", {
            "album": album, "source": art.source, "width": art.info.width, "height": art.info.height,
            "tracks": tracks})
