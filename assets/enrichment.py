"""Enrichment (group `enrichment`): tags, artwork and lyrics written into the library files.

Each asset takes a batch: every library track without a row yet, whose file was imported again since,
or whose miss / failure cool-down has passed (the nightly enrichment_schedule picks those up).
External answers go through the DuckDB response cache (harmony_pipeline/http_cache.py), so tracks
sharing an album or artist, and later runs, ask nothing again; network and file I/O happen with no
DuckDB connection open. A missing or corrupt file is a recorded failure; the batch goes on.
"""

import hashlib
import json
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import mutagen
from dagster import (
    AssetExecutionContext,
    AssetKey,
    AutomationCondition,
    MaterializeResult,
    MetadataValue,
    asset,
)

from assets.common import NETWORK_RETRY, markdown_table, retry_on_short_rate_limit
from harmony_pipeline import storage
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
    thumbnail_data_uri,
    write_cover_file,
)
from harmony_pipeline.enrichment.due import TRACKS_DUE_SQL
from harmony_pipeline.enrichment.credits import (
    MAX_GENRES,
    Credits,
    choose_recording,
    choose_release,
    extract_credits,
    extract_genres,
)
from harmony_pipeline.acquisition.demand import normalise
from harmony_pipeline.http_cache import HttpCache, ServiceError
from harmony_pipeline.service_errors import escapes_item, retry_wait
from harmony_pipeline.enrichment.lyrics import (
    LyricsKind,
    LyricsRecord,
    artist_forms,
    choose_record,
    lyrics_outcome,
    write_lrc_sidecar,
)
from harmony_pipeline.spotify.cache import SpotifyCache
from harmony_pipeline.enrichment.tagging import TaggingError, TrackTags, open_audio, write_tags
from resources.coverart import CoverArtClient, CoverArtResource, ImageTooLarge
from resources.database import HarmonyDatabase, LibraryFolders, PipelineSettings
from resources.lrclib import LrclibClient, LrclibResource
from resources.musicbrainz import MusicBrainzClient, MusicBrainzResource
from resources.spotify import (
    SpotifyError,
    SpotifyNotAuthorised,
    SpotifyNotFound,
    SpotifyRateLimited,
    SpotifyResource,
)

MISS_COOLDOWN = timedelta(days=7)  # no lyrics / no artwork found: ask again after this
FAILURE_COOLDOWN = timedelta(days=1)  # an error (service down, unreadable file): try again after this
PREVIEWS = 4  # cover thumbnails shown in the materialization metadata
SNIPPET_LINES = 8
COPYRIGHT_SYMBOLS = {"P": "℗", "C": "©"}

def tracks_due(database: HarmonyDatabase, table: str, now: datetime) -> list[dict]:
    """Library tracks the asset writing `table` has to (re)visit at `now`."""
    with database.connect() as conn:  # read-write: applies this concern's migration on first use
        return storage.fetch_dicts(conn, TRACKS_DUE_SQL.format(table=table), [now])


def track_label(row: dict) -> str:
    return f"{row['artist']} – {row['title']}"


def track_artists(row: dict) -> list[str]:
    return list(row.get("artists") or [row["artist"]])


def library_file(folders: LibraryFolders, row: dict) -> Path:
    return folders.library / row["path"]


def check_audio_file(path: Path) -> None:
    """Raise TaggingError unless `path` is an audio file mutagen can tag (checked before any request)."""
    if not path.is_file():
        raise TaggingError(f"file not found: {path}")
    open_audio(path)


def save_row(database: HarmonyDatabase, table: str, row: dict, activity: tuple[str, dict] | None = None) -> None:
    with database.connect() as conn, storage.transaction(conn):
        storage.upsert(conn, table, [row], key=["wanted_key"])
        if activity:
            storage.record_activity(conn, *activity)


def _unique(values: list[str]) -> list[str]:
    return list(dict.fromkeys(value for value in values if value))


# --- shared lookups --------------------------------------------------------------------------------
class Lookups:
    """Spotify album/artist and MusicBrainz lookups of one run, every answer through the response cache
    (Spotify's through the shared lookup cache, so albums the watchlist or acquisition read cost nothing).

    When Spotify cannot answer (not authorised, or rate-limited until a given time) nothing is cached
    and Spotify is not asked again in this run (until the limit ends); `take_spotify_gap()` tells the
    caller that what it built lacks Spotify's part, so it is saved to be completed by a later run.
    """

    def __init__(self, cache: HttpCache, spotify: SpotifyResource, musicbrainz: MusicBrainzClient, log):
        self.cache = cache
        self.spotify = SpotifyCache(spotify, cache)
        self.musicbrainz = musicbrainz
        self.log = log
        self.spotify_unavailable: str | None = None
        self.rate_limited_until: datetime | None = None
        self.spotify_gap: str | None = None  # why a Spotify answer was missing since take_spotify_gap()

    @property
    def spotify_requests(self) -> int:
        return self.spotify.requests

    def take_spotify_gap(self) -> str | None:
        """Why a Spotify answer was missing since the last call (None: every answer was there); resets."""
        gap, self.spotify_gap = self.spotify_gap, None
        return gap

    def _spotify(self, lookup: Callable[[str], dict], spotify_id: str) -> dict | None:
        try:
            return lookup(spotify_id)
        except SpotifyNotFound:
            return None
        except SpotifyNotAuthorised as error:  # not cached: with credentials, a later run will ask
            if not self.spotify_unavailable:
                self.spotify_unavailable = str(error)
                self.log.warning(f"Spotify unavailable, enriching without it: {error}")
            self.spotify_gap = f"Spotify unavailable: {error}"
        except SpotifyRateLimited as error:  # not cached either: asked again once the limit has passed
            if retry_wait(error) is not None:
                raise  # lifts soon: the step waits and retries instead of tagging without Spotify
            if error.until != self.rate_limited_until:
                self.rate_limited_until = error.until
                self.log.warning(f"{error}; enriching without Spotify until then")
            self.spotify_gap = str(error)
        finally:
            self.spotify.save()
        return None

    def spotify_album(self, album_id: str | None) -> dict | None:
        """The full album with every track (all pages)."""
        return self._spotify(self.spotify.album, album_id) if album_id else None

    def spotify_artist(self, artist_id: str) -> dict | None:
        return self._spotify(self.spotify.artist, artist_id)

    def musicbrainz_match(self, row: dict, upc: str | None) -> tuple[dict | None, dict | None]:
        """(recording, release) of the track's ISRC that fit its artist, length and album; None when unknown."""
        lookup = self.musicbrainz.isrc(row["isrc"]) if row.get("isrc") else None
        if not lookup:
            return None, None
        recording = choose_recording(lookup, row.get("duration_ms"), row["artist"])
        if recording is None:
            return None, None
        return recording, choose_release(recording, row.get("release_date"), upc)


def album_upc(album: dict | None) -> str | None:
    return ((album or {}).get("external_ids") or {}).get("upc")


# --- metadata --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Numbering:
    track_total: int | None
    disc_number: int | None
    disc_total: int | None


def numbering(row: dict, album: dict | None) -> Numbering:
    """Track total of the track's own disc and the number of discs, from the album's track list."""
    items = ((album or {}).get("tracks") or {}).get("items") or []
    disc = row.get("disc_number") or 1
    if not items:
        return Numbering(row.get("album_total_tracks"), row.get("disc_number"), None)
    discs = [item.get("disc_number") or 1 for item in items]
    return Numbering(discs.count(disc) or None, disc, max(discs))


def copyright_text(album: dict | None) -> str:
    """The album's ℗ (sound recording) line, then its © line, each with its symbol."""
    lines = []
    for kind in ("P", "C"):
        for entry in (album or {}).get("copyrights") or []:
            text = (entry.get("text") or "").strip()
            if entry.get("type") != kind or not text:
                continue
            if not text.startswith(tuple(COPYRIGHT_SYMBOLS.values())) and text[:3].upper() not in ("(P)", "(C)"):
                text = f"{COPYRIGHT_SYMBOLS[kind]} {text}"
            lines.append(text)
    return "; ".join(_unique(lines))


def spotify_genres(row: dict, album: dict | None, lookups: Lookups) -> list[str]:
    """Genres of the track's Spotify artists (one cached request per artist)."""
    items = ((album or {}).get("tracks") or {}).get("items") or []
    this_track = next((item for item in items if item.get("id") == row.get("spotify_track_id")), None)
    artists = (this_track or album or {}).get("artists") or []
    genres = []
    for artist in artists:
        if artist.get("id"):
            genres += (lookups.spotify_artist(artist["id"]) or {}).get("genres") or []
    return _unique(genres)[:MAX_GENRES]


def gather_tags(row: dict, lookups: Lookups) -> TrackTags:
    """Every tag of the track: Spotify data at hand, album and artist lookups, MusicBrainz credits."""
    album = lookups.spotify_album(row.get("album_id"))
    recording, release = lookups.musicbrainz_match(row, album_upc(album))
    credits = Credits()
    recording_id = release_id = None
    mb = lookups.musicbrainz
    if recording is not None:
        recording_id = recording["id"]
        full_recording = mb.recording(recording_id) or recording
        full_release = mb.release(release["id"]) if release else None
        release_id = release["id"] if full_release else None
        credits = extract_credits(full_recording, full_release)
    genres = spotify_genres(row, album, lookups) or credits.genres
    if not genres and recording is not None:
        credited = [part.get("artist") or {} for part in recording.get("artist-credit") or []]
        if credited and credited[0].get("id"):
            genres = extract_genres([mb.artist(credited[0]["id"]) or {}])
    numbers = numbering(row, album)
    artists = track_artists(row)
    return TrackTags(
        title=row["title"],
        artist=", ".join(artists),
        artists=artists,
        album=row.get("album") or "",
        album_artist=row.get("album_artist") or "",
        track_number=row.get("track_number"),
        track_total=numbers.track_total,
        disc_number=numbers.disc_number,
        disc_total=numbers.disc_total,
        date=row.get("release_date") or "",
        genres=genres,
        composers=credits.composers,
        lyricists=credits.lyricists,
        producers=credits.producers,
        isrc=row.get("isrc") or "",
        copyright=copyright_text(album),
        label=credits.label or (album or {}).get("label") or "",
        musicbrainz_recording_id=recording_id,
        musicbrainz_release_id=release_id,
    )


def tag_track(row: dict, lookups: Lookups, folders: LibraryFolders) -> dict:
    """Gather and write the track's tags in one save; the track_metadata row of the outcome."""
    now = lookups.cache.now()
    result: dict[str, Any] = {"wanted_key": row["wanted_key"], "path": row["path"], "updated_at": now}
    path = library_file(folders, row)
    lookups.take_spotify_gap()  # only what this track misses counts
    try:
        check_audio_file(path)
        tags = gather_tags(row, lookups)
        write_tags(path, tags)
    except (TaggingError, ServiceError, SpotifyError, OSError) as error:
        if escapes_item(error):
            raise  # a 5xx or an outage: the step's retry policy tries again, not a day's cool-down
        return {**result, "status": "failed", "reason": str(error), "next_attempt_at": now + FAILURE_COOLDOWN}
    spotify_gap = lookups.take_spotify_gap()
    if spotify_gap:  # written without genres / copyright / disc totals: a later run completes the tags
        result.update(status="partial", reason=f"tagged without Spotify ({spotify_gap})",
                      next_attempt_at=now + FAILURE_COOLDOWN)
    else:
        result.update(status="tagged", reason=None, next_attempt_at=None)
    return {
        **result, "genres": tags.genres, "composers": tags.composers,
        "lyricists": tags.lyricists, "producers": tags.producers, "isrc": tags.isrc or None,
        "copyright": tags.copyright or None, "label": tags.label or None,
        "musicbrainz_recording_id": tags.musicbrainz_recording_id,
        "musicbrainz_release_id": tags.musicbrainz_release_id, "fields_written": tags.filled_fields(),
    }


METADATA_COLUMNS = (
    "wanted_key", "path", "status", "reason", "genres", "composers", "lyricists", "producers", "isrc",
    "copyright", "label", "musicbrainz_recording_id", "musicbrainz_release_id", "fields_written",
    "next_attempt_at", "updated_at",
)


@asset(
    group_name="enrichment",
    deps=[AssetKey("library_tracks")],
    retry_policy=NETWORK_RETRY,
    automation_condition=AutomationCondition.eager(),
    description="Tags written into every library file: names, numbers, date, genre, composer, lyricist, "
    "producer, ISRC, copyright, label (Spotify + MusicBrainz).",
)
def track_metadata(
    context: AssetExecutionContext,
    spotify: SpotifyResource,
    musicbrainz: MusicBrainzResource,
    database: HarmonyDatabase,
    folders: LibraryFolders,
) -> MaterializeResult:
    cache = HttpCache(database.path)
    mb = musicbrainz.get_client(cache)
    lookups = Lookups(cache, spotify, mb, context.log)
    preview = []
    counts: dict[str, int] = defaultdict(int)
    for row in tracks_due(database, "track_metadata", cache.now()):
        with retry_on_short_rate_limit():
            result = tag_track(row, lookups, folders)
        save_row(database, "track_metadata", {c: result.get(c) for c in METADATA_COLUMNS})
        counts[result["status"]] += 1
        if result["status"] != "tagged":
            context.log.warning(f"{track_label(row)}: {result['reason']}")
        preview.append({
            "track": track_label(row), "status": result["status"], "genre": ", ".join(result.get("genres") or []),
            "composer": ", ".join(result.get("composers") or []), "producer": ", ".join(result.get("producers") or []),
            "label": result.get("label"), "reason": result.get("reason"),
        })
    return MaterializeResult(metadata={
        "tagged": counts["tagged"],
        "partial": counts["partial"],
        "failed": counts["failed"],
        "spotify_requests": lookups.spotify_requests,
        "musicbrainz_requests": mb.requests_made,
        "tracks": MetadataValue.md(markdown_table(preview)),
    })


# --- artwork ---------------------------------------------------------------------------------------
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


def embed_track_art(row: dict, art: AlbumArt, folders: LibraryFolders, min_edge: int) -> dict:
    """Embed the album's image unless the file already holds one good enough; the track_artwork row."""
    path = library_file(folders, row)
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


@asset(
    group_name="enrichment",
    deps=[AssetKey("library_tracks")],
    retry_policy=NETWORK_RETRY,
    automation_condition=AutomationCondition.eager(),
    description="The largest cover (Cover Art Archive original or Spotify) embedded in every file, cover.jpg "
    "next to it; low-resolution embeds replaced.",
)
def track_artwork(
    context: AssetExecutionContext,
    spotify: SpotifyResource,
    musicbrainz: MusicBrainzResource,
    coverart: CoverArtResource,
    database: HarmonyDatabase,
    folders: LibraryFolders,
    pipeline: PipelineSettings,
) -> MaterializeResult:
    cache = HttpCache(database.path)
    caa = coverart.get_client(cache)
    mb = musicbrainz.get_client(cache)
    lookups = Lookups(cache, spotify, mb, context.log)
    by_album: dict[str, list[dict]] = defaultdict(list)
    for row in tracks_due(database, "track_artwork", cache.now()):
        by_album[album_key(row)].append(row)
    counts: dict[str, int] = defaultdict(int)
    previews, table = [], []
    for key, rows in by_album.items():
        now = cache.now()
        try:
            with retry_on_short_rate_limit():
                art = find_album_art(rows, lookups, caa, folders.artwork_cache, pipeline.artwork_max_bytes,
                                     context.log)
        except (ServiceError, SpotifyError, OSError) as error:
            if escapes_item(error):
                raise
            art, failure = None, f"artwork lookup failed: {error}"
        else:
            failure = None
        spotify_gap = lookups.take_spotify_gap()
        embedded = 0
        for row in rows:
            base = {"wanted_key": row["wanted_key"], "path": row["path"], "album_key": key, "updated_at": now}
            if art is None and failure:
                result = {**base, "status": "failed", "reason": failure, "next_attempt_at": now + FAILURE_COOLDOWN}
            elif art is None and spotify_gap:  # Spotify's image may exist: look again as after a failure
                result = {**base, "status": "missing", "reason": f"no cover found without Spotify ({spotify_gap})",
                          "next_attempt_at": now + FAILURE_COOLDOWN}
            elif art is None:
                result = {**base, "status": "missing", "reason": "no cover found",
                          "next_attempt_at": now + MISS_COOLDOWN}
            else:
                base.update(source=art.source, url=art.url, width=art.info.width, height=art.info.height,
                            bytes=art.info.bytes, cache_path=str(art.cache_path))
                try:
                    result = {**base, **embed_track_art(row, art, folders, pipeline.artwork_min_edge)}
                    write_cover_file(library_file(folders, row).parent, art.original)
                except (TaggingError, ArtworkError, OSError) as error:
                    result = {**base, "status": "failed", "reason": str(error),
                              "next_attempt_at": now + FAILURE_COOLDOWN}
                else:
                    if not art.complete:  # Spotify's image may be larger: a later run weighs it
                        result.update(reason=f"chosen without Spotify's candidate ({spotify_gap})",
                                      next_attempt_at=now + FAILURE_COOLDOWN)
            embedded += result["status"] == "embedded"
            counts[result["status"]] += 1
            save_row(database, "track_artwork", {c: result.get(c) for c in ARTWORK_COLUMNS})
            table.append({"track": track_label(row), "status": result["status"], "source": result.get("source"),
                          "size": f"{result.get('width')}x{result.get('height')}" if art else None,
                          "reason": result.get("reason")})
        if art is not None and embedded:
            with database.connect() as conn:
                storage.record_activity(conn, "artwork_embedded", {
                    "album": rows[0].get("album"), "source": art.source, "width": art.info.width,
                    "height": art.info.height, "tracks": embedded})
            if len(previews) < PREVIEWS:
                caption = f"{rows[0].get('album') or key}: {art.source} {art.info.width}x{art.info.height}"
                previews.append(f"![{caption}]({thumbnail_data_uri(art.original)}) {caption}")
    return MaterializeResult(metadata={
        "embedded": counts["embedded"],
        "kept": counts["kept"],
        "missing": counts["missing"],
        "failed": counts["failed"],
        "albums": len(by_album),
        "preview": MetadataValue.md("\n\n".join(previews) or "(no cover embedded in this run)"),
        "tracks": MetadataValue.md(markdown_table(table)),
    })


# --- lyrics ----------------------------------------------------------------------------------------
def file_length_s(path: Path, row: dict) -> float | None:
    """The file's own length (what a player shows), else Spotify's duration."""
    try:
        audio = mutagen.File(path)
    except mutagen.MutagenError:
        audio = None
    if audio is not None and audio.info and audio.info.length:
        return float(audio.info.length)
    return row["duration_ms"] / 1000 if row.get("duration_ms") else None


def find_lyrics(row: dict, length_s: float | None, lrclib: LrclibClient) -> LyricsRecord | None:
    """get-cached, then get, each under every artist form (all credited artists, then each alone),
    then search by the main artist; a synced (or instrumental) record ends the hunt early."""
    artists, title, album = track_artists(row), row["title"], row.get("album")
    records: list[LyricsRecord] = []
    found = None
    for lookup in (lrclib.get_cached, lrclib.get):
        for artist in artist_forms(artists):
            found = lookup(title, artist, album, length_s)
            if found:
                records.append(LyricsRecord.from_json(found))
                break
        if found:
            break
    chosen = choose_record(records, artists, title, album, length_s)
    if chosen and (chosen.synced_lyrics or chosen.instrumental):
        return chosen
    # Search matches the artist's words anywhere in the record's artist: the main artist alone finds
    # records stored under every credited artist as well as under the main one.
    records += [LyricsRecord.from_json(record) for record in lrclib.search(title, artists[0])]
    return choose_record(records, artists, title, album, length_s)


def lyrics_for_track(row: dict, lrclib: LrclibClient, folders: LibraryFolders,
                     now: datetime) -> tuple[dict, str | None]:
    """Find and write the track's lyrics; (track_lyrics row, .lrc text or None)."""
    path = library_file(folders, row)
    result: dict[str, Any] = {"wanted_key": row["wanted_key"], "path": row["path"], "updated_at": now,
                              "reason": None, "next_attempt_at": None}
    try:
        check_audio_file(path)
        length_s = file_length_s(path, row)
        result["duration_s"] = length_s
        record = find_lyrics(row, length_s, lrclib)
        outcome = lyrics_outcome(record, ", ".join(track_artists(row)), row["title"], row.get("album"), length_s)
        if outcome.kind == LyricsKind.SYNCED:
            sidecar = write_lrc_sidecar(path, outcome.lrc_text)
            result["lrc_path"] = sidecar.relative_to(folders.library).as_posix()
        if outcome.plain_text:  # USLT / LYRICS / ©lyr, for players that do not read a .lrc (synced too)
            write_tags(path, TrackTags(plain_lyrics=outcome.plain_text))
    except (TaggingError, ServiceError, OSError) as error:
        if escapes_item(error):
            raise
        return {**result, "status": "failed", "reason": str(error), "next_attempt_at": now + FAILURE_COOLDOWN}, None
    result.update(status=outcome.kind.value, lrclib_id=outcome.record_id)
    if outcome.kind == LyricsKind.MISSING:
        result.update(reason="no matching LRCLIB record", next_attempt_at=now + MISS_COOLDOWN)
    return result, outcome.lrc_text


LYRICS_COLUMNS = (
    "wanted_key", "path", "status", "reason", "lrclib_id", "lrc_path", "duration_s", "next_attempt_at", "updated_at",
)


@asset(
    group_name="enrichment",
    deps=[AssetKey("library_tracks")],
    retry_policy=NETWORK_RETRY,
    automation_condition=AutomationCondition.eager(),
    description="LRCLIB lyrics matched on artist, title, album and the file's length: synced as a .lrc "
    "sidecar, plain in the tags, instrumentals recorded; misses retried after a cool-down.",
)
def track_lyrics(
    context: AssetExecutionContext,
    lrclib: LrclibResource,
    database: HarmonyDatabase,
    folders: LibraryFolders,
) -> MaterializeResult:
    cache = HttpCache(database.path)
    client = lrclib.get_client(cache)
    counts: dict[str, int] = defaultdict(int)
    table, snippet = [], None
    for row in tracks_due(database, "track_lyrics", cache.now()):
        result, lrc_text = lyrics_for_track(row, client, folders, cache.now())
        activity = None
        if result["status"] in (LyricsKind.SYNCED, LyricsKind.PLAIN):
            activity = ("lyrics_generated", {"track": track_label(row), "kind": result["status"],
                                             "lrc": result.get("lrc_path")})
        save_row(database, "track_lyrics", {c: result.get(c) for c in LYRICS_COLUMNS}, activity)
        counts[result["status"]] += 1
        if result["status"] == "failed":
            context.log.warning(f"{track_label(row)}: {result['reason']}")
        if lrc_text and snippet is None:
            snippet = f"{track_label(row)}\n\n```\n" + "\n".join(lrc_text.splitlines()[:SNIPPET_LINES]) + "\n```"
        table.append({"track": track_label(row), "lyrics": result["status"], "lrc": result.get("lrc_path"),
                      "reason": result.get("reason")})
    return MaterializeResult(metadata={
        **{kind.value: counts[kind.value] for kind in LyricsKind},
        "failed": counts["failed"],
        "lrclib_requests": client.requests_made,
        "snippet": MetadataValue.md(snippet or "(no synced lyrics written in this run)"),
        "tracks": MetadataValue.md(markdown_table(table)),
    })


def wiring(settings, workers):
    """track_metadata always; track_artwork with ENABLE_ARTWORK, track_lyrics with ENABLE_LYRICS; their
    automation sensor and nightly schedule; the MusicBrainz, Cover Art Archive and LRCLIB resources."""
    from dagster import Definitions

    from sensors.enrichment import build_enrichment_automation_sensor, build_enrichment_schedule

    enrichment_assets = [track_metadata]
    if settings.enable_artwork:
        enrichment_assets.append(track_artwork)
    if settings.enable_lyrics:
        enrichment_assets.append(track_lyrics)
    return Definitions(
        assets=enrichment_assets,
        sensors=[build_enrichment_automation_sensor(enrichment_assets, workers)],
        schedules=[build_enrichment_schedule(enrichment_assets, workers)],
        resources={
            "coverart": CoverArtResource(url=settings.coverart_url),
            "lrclib": LrclibResource(url=settings.lrclib_url),
        },
    )
