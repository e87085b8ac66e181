"""MusicBrainz web service (`/ws/2`) emulator over the sandbox catalog (api-contracts.md §5).

Routes (JSON only: `fmt=json` or `Accept: application/json`):
- `GET /ws/2/isrc/{isrc}` — recordings carrying the ISRC.
- `GET /ws/2/recording/{mbid}` — one recording with artist, work and work-level relations.
- `GET /ws/2/release/{mbid}` — release-level relations, label info, media with tracks.
- `GET /ws/2/release-group/{mbid}`, `GET /ws/2/artist/{mbid}` — for the genre fallback.
- `GET /ws/2/recording?query=…` — Lucene-style search (`isrc:`, `recording:"…"`, `artist:"…"`, AND).

The edge rules of the real service apply before any route: no `User-Agent` → 403; more than
`rate_limit` requests per second from one client → 503 (a token bucket per client address; loopback
clients all share 127.0.0.1, `X-Forwarded-For` tells simulated clients apart). The limit can be
switched at runtime with `POST /_sandbox/rate-limit {"per_second": 1.0}` (`null` turns it off).

Tracks whose ISRC MusicBrainz does not know (`Track.recording is None`) still exist in MusicBrainz
as bare recordings without ISRC, relations or genres, so the ISRC lookup misses but a title/artist
search finds them — the fallback path the contract describes.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
import unicodedata
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable

from harmony_pipeline.sandbox.catalog import Album, Artist, Catalog, MbRecording, Person, Track
from harmony_pipeline.sandbox.server import Emulator, Request, Response, json_response

HELP = "For usage, please see: https://musicbrainz.org/development/mmd"
RATE_LIMIT_MESSAGE = (
    "Your requests are exceeding the allowable rate limit. "
    "Please see https://musicbrainz.org/doc/MusicBrainz_API/Rate_Limiting for more information."
)
USER_AGENT_MESSAGE = (
    "Your requests are being blocked because they lack a User-Agent header identifying your application. "
    "Please see https://musicbrainz.org/doc/MusicBrainz_API/Rate_Limiting for more information."
)

# Relationship type ids as the real server reports them.
TYPE_IDS = {
    "recording-producer": "5c0ceac3-feb4-41f0-868d-dc06f6e27fc0",
    "release-producer": "8bf377ba-8d71-4ecc-97f2-7bb2d8a2a75f",
    "mix": "3e3102e1-1896-4f50-b5b2-dd9824e46efe",
    "performance": "a3005666-a872-32c3-ad06-98af558e99b0",
    "composer": "d59d99ea-23d4-4a80-b066-edca32ee158f",
    "lyricist": "3e48faba-ec01-47fd-8e89-30e81161661c",
}
STATUS_OFFICIAL_ID = "4e304316-386d-3409-af2e-78857eec5cfe"
FORMAT_DIGITAL_ID = "907a28d9-b3b2-3ef6-89a8-7b18d91d4794"
PRIMARY_TYPE_IDS = {"Album": "f529b476-6e62-324f-b0aa-1f3e33d313fc", "Single": "d6038452-8ee0-3f68-affc-2de9a1ede0b9"}
TEXT_REPRESENTATION = {
    "latin": {"language": "eng", "script": "Latn"},
    "japanese": {"language": "jpn", "script": "Jpan"},
    "cyrillic": {"language": "rus", "script": "Cyrl"},
}
COUNTRY_NAMES = {
    "US": "United States", "GB": "United Kingdom", "SE": "Sweden", "NO": "Norway", "IS": "Iceland",
    "JP": "Japan", "RU": "Russia", "FR": "France", "DE": "Germany", "ES": "Spain", "BR": "Brazil",
}

ISRC_PATTERN = re.compile(r"^[A-Z]{2}[A-Z0-9]{3}[0-9]{7}$")
MBID_PATTERN = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.IGNORECASE)

# Accepted `inc` values per resource (musicbrainz-server WS/2 definitions).
_RELATION_INCS = {
    "area-rels", "artist-rels", "event-rels", "genre-rels", "instrument-rels", "label-rels", "place-rels",
    "recording-rels", "release-rels", "release-group-rels", "series-rels", "url-rels", "work-rels",
}
_COMMON_INCS = {"aliases", "annotation", "tags", "user-tags", "genres", "user-genres", "ratings", "user-ratings"}
VALID_INCS: dict[str, set[str]] = {
    "isrc": _COMMON_INCS | _RELATION_INCS
    | {"artists", "artist-credits", "releases", "release-groups", "isrcs", "media", "discids", "work-level-rels"},
    "recording": _COMMON_INCS | _RELATION_INCS
    | {"artists", "artist-credits", "releases", "release-groups", "isrcs", "media", "discids", "work-level-rels"},
    "release": _COMMON_INCS | _RELATION_INCS
    | {"artists", "artist-credits", "labels", "recordings", "release-groups", "media", "discids", "isrcs",
       "recording-level-rels", "work-level-rels", "release-group-level-rels"},
    "release-group": _COMMON_INCS | _RELATION_INCS | {"artists", "artist-credits", "releases", "media"},
    "artist": _COMMON_INCS | _RELATION_INCS
    | {"recordings", "releases", "release-groups", "works", "various-artists", "media", "discids"},
}

SEARCH_FIELDS = {
    "recording": "title", "recordingaccent": "title", "artist": "artist", "artistname": "artist",
    "creditname": "artist", "isrc": "isrc", "release": "release", "rid": "rid", "reid": "reid", "arid": "arid",
}
_QUERY_TERM = re.compile(r'(?:(\w+):)?(?:"([^"]*)"|(\S+))')


def _stable_int(*parts: str) -> int:
    return int.from_bytes(hashlib.sha256("\x1f".join(parts).encode("utf-8")).digest()[:8], "big")


def _derived_mbid(*parts: str) -> str:
    """An MBID for an entity the catalog does not model (tracks, labels, genres), stable across runs."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "harmony-sandbox:" + ":".join(parts)))


def _fold(text: str) -> str:
    """Lower-case, accents removed: what the search index compares."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def _tokens(text: str) -> list[str]:
    return re.findall(r"\w+", _fold(text))


@dataclass
class _Bucket:
    tokens: float
    updated: float


class TokenBucket:
    """Per-client token buckets: `per_second` refill, at most `burst` tokens."""

    def __init__(self, per_second: float | None, burst: int = 1) -> None:
        self.per_second = per_second
        self.burst = burst
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def allow(self, client: str) -> bool:
        if not self.per_second:
            return True
        now = time.monotonic()
        with self._lock:
            bucket = self._buckets.setdefault(client, _Bucket(float(self.burst), now))
            bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.updated) * self.per_second)
            bucket.updated = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return True
            return False

    def reset(self) -> None:
        with self._lock:
            self._buckets.clear()


def _error(message: str, status: int) -> Response:
    return json_response({"error": message, "help": HELP}, status)


class MusicBrainzEmulator(Emulator):
    name = "musicbrainz"

    def __init__(self, catalog: Catalog, *, rate_limit: float | None = 1.0, burst: int = 1) -> None:
        super().__init__()
        self.catalog = catalog
        self.limiter = TokenBucket(rate_limit, burst)
        self._albums_index: dict[str, list[Album]] = {}
        self._albums_index_size = -1
        routes: list[tuple[str, Callable[[Request], Response]]] = [
            ("/ws/2/isrc/{isrc}", self.isrc_lookup),
            ("/ws/2/recording/{mbid}", self.recording_lookup),
            ("/ws/2/recording", self.recording_search),
            ("/ws/2/release/{mbid}", self.release_lookup),
            ("/ws/2/release-group/{mbid}", self.release_group_lookup),
            ("/ws/2/artist/{mbid}", self.artist_lookup),
        ]
        for template, handler in routes:
            self.add_route("GET", template, self._edge(handler))

    def set_rate_limit(self, per_second: float | None) -> None:
        self.limiter.per_second = per_second
        self.limiter.reset()

    def error_response(self, status: int, message: str) -> Response:
        return _error(message, status)

    # -- edge rules ---------------------------------------------------------------------------
    def _edge(self, handler: Callable[[Request], Response]) -> Callable[[Request], Response]:
        """User-Agent, rate limit and format checks the real service applies before any lookup."""

        def guarded(request: Request) -> Response:
            if not request.headers.get("User-Agent", "").strip():
                return _error(USER_AGENT_MESSAGE, 403)
            client = request.headers.get("X-Forwarded-For", "").split(",")[0].strip() or "127.0.0.1"
            if not self.limiter.allow(client):
                return _error(RATE_LIMIT_MESSAGE, 503)
            wants_json = request.query.get("fmt") == "json" or (
                "fmt" not in request.query and "application/json" in request.headers.get("Accept", "")
            )
            if not wants_json:
                # The real default is MMD XML; the sandbox only speaks JSON.
                return _error("This emulator only serves JSON: add fmt=json or Accept: application/json.", 406)
            return handler(request)

        return guarded

    def _admin(self, request: Request) -> Response:
        if request.path[len("/_sandbox/") :].rstrip("/") == "rate-limit":
            if request.method == "POST":
                self.set_rate_limit((request.json() or {}).get("per_second"))
            return json_response({"per_second": self.limiter.per_second, "burst": self.limiter.burst})
        return super()._admin(request)

    @staticmethod
    def _includes(request: Request, resource: str) -> set[str] | Response:
        """The `inc` values (`+`-separated, which arrives as spaces), or a 400 for an invalid one."""
        includes = set(re.split(r"[\s+]+", request.query.get("inc", "").strip())) - {""}
        for inc in sorted(includes):
            if inc not in VALID_INCS[resource]:
                return _error(f"{inc} is not a valid inc parameter for the {resource} resource.", 400)
        return includes

    # -- routes -------------------------------------------------------------------------------
    def isrc_lookup(self, request: Request) -> Response:
        isrc = request.params["isrc"].upper()
        if not ISRC_PATTERN.match(isrc):
            return _error("Invalid isrc.", 400)
        includes = self._includes(request, "isrc")
        if isinstance(includes, Response):
            return includes
        with self.catalog.lock:
            recordings: dict[str, Track] = {}
            for track in self.catalog.tracks_by_isrc(isrc):
                if track.recording is not None:
                    recordings.setdefault(track.recording.mbid, track)
            if not recordings:
                return _error("Not Found", 404)
            body = {
                "isrc": isrc,
                "recordings": [self._recording(track, includes) for track in recordings.values()],
            }
        return json_response(body)

    def recording_lookup(self, request: Request) -> Response:
        mbid = request.params["mbid"].lower()
        if not MBID_PATTERN.match(mbid):
            return _error("Invalid mbid.", 400)
        includes = self._includes(request, "recording")
        if isinstance(includes, Response):
            return includes
        with self.catalog.lock:
            track = self._track_for_recording(mbid)
            if track is None:
                return _error("Not Found", 404)
            return json_response(self._recording(track, includes))

    def release_lookup(self, request: Request) -> Response:
        mbid = request.params["mbid"].lower()
        if not MBID_PATTERN.match(mbid):
            return _error("Invalid mbid.", 400)
        includes = self._includes(request, "release")
        if isinstance(includes, Response):
            return includes
        with self.catalog.lock:
            album = self.catalog.find_release(mbid)
            if album is None:
                return _error("Not Found", 404)
            return json_response(self._release(album, includes, full=True))

    def release_group_lookup(self, request: Request) -> Response:
        mbid = request.params["mbid"].lower()
        if not MBID_PATTERN.match(mbid):
            return _error("Invalid mbid.", 400)
        includes = self._includes(request, "release-group")
        if isinstance(includes, Response):
            return includes
        with self.catalog.lock:
            album = self.catalog.find_release_group(mbid)
            if album is None:
                return _error("Not Found", 404)
            body = self._release_group(album, includes)
            if includes & {"artists", "artist-credits"}:
                body["artist-credit"] = self._artist_credit(self.catalog.album_artists(album))
            if "releases" in includes:
                body["releases"] = [self._release(album, set(), full=False)]
        return json_response(body)

    def artist_lookup(self, request: Request) -> Response:
        mbid = request.params["mbid"].lower()
        if not MBID_PATTERN.match(mbid):
            return _error("Invalid mbid.", 400)
        includes = self._includes(request, "artist")
        if isinstance(includes, Response):
            return includes
        with self.catalog.lock:
            artist = next((a for a in self.catalog.artists.values() if a.mbid == mbid), None)
            if artist is None:
                return _error("Not Found", 404)
            body = {**self._artist(artist), "type": "Group" if artist.name.startswith("The ") else "Person"}
            body.update(self._genres_and_tags(artist.mbid, artist.mb_genres, [], includes))
        return json_response(body)

    def recording_search(self, request: Request) -> Response:
        query = request.query.get("query", "").strip()
        if not query:
            return _error("Missing required parameter: query.", 400)
        try:
            limit = min(max(int(request.query.get("limit", 25)), 1), 100)
            offset = max(int(request.query.get("offset", 0)), 0)
        except ValueError:
            return _error("Invalid limit or offset.", 400)
        conditions = _parse_query(query)
        with self.catalog.lock:
            scored: list[tuple[float, Track]] = []
            seen: set[str] = set()
            for track in self.catalog.tracks.values():
                mbid = self._recording_mbid(track)
                if mbid in seen:
                    continue
                seen.add(mbid)
                score = _match_score(conditions, self._search_fields(track))
                if score > 0:
                    scored.append((score, track))
            scored.sort(key=lambda item: -item[0])
            best = scored[0][0] if scored else 1.0
            page = [
                {"score": round(100 * score / best), **self._search_hit(track)}
                for score, track in scored[offset : offset + limit]
            ]
        body = {
            "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            "count": len(scored),
            "offset": offset,
            "recordings": page,
        }
        return json_response(body)

    # -- catalog → MusicBrainz JSON -------------------------------------------------------------
    def _recording_mbid(self, track: Track) -> str:
        if track.recording is not None:
            return track.recording.mbid
        return _derived_mbid("recording", track.isrc)

    def _track_for_recording(self, mbid: str) -> Track | None:
        track = self.catalog.find_recording(mbid)
        if track is None:
            track = next(
                (t for t in self.catalog.tracks.values() if t.recording is None and self._recording_mbid(t) == mbid),
                None,
            )
        return track

    def _albums_with(self, track: Track) -> list[Album]:
        """Every release carrying `track`'s recording (an album and the single taken from it)."""
        return self._albums_by_recording().get(self._recording_mbid(track), [])

    def _albums_by_recording(self) -> dict[str, list[Album]]:
        """Recording MBID → releases, rebuilt when the catalog grows (`add_album`)."""
        size = len(self.catalog.tracks)
        if self._albums_index_size != size:
            index: dict[str, list[Album]] = {}
            for track in self.catalog.tracks.values():
                albums = index.setdefault(self._recording_mbid(track), [])
                album = self.catalog.albums[track.album_id]
                if all(known is not album for known in albums):
                    albums.append(album)
            self._albums_index, self._albums_index_size = index, size
        return self._albums_index

    @staticmethod
    def _artist(artist: Artist) -> dict[str, Any]:
        return {"id": artist.mbid, "name": artist.name, "sort-name": artist.sort_name, "disambiguation": ""}

    def _artist_credit(self, artists: list[Artist]) -> list[dict[str, Any]]:
        credit = []
        for index, artist in enumerate(artists):
            joinphrase = "" if index == len(artists) - 1 else (" feat. " if index == 0 else " & ")
            credit.append({"name": artist.name, "joinphrase": joinphrase, "artist": self._artist(artist)})
        return credit

    @staticmethod
    def _person_relation(person: Person, rel_type: str, type_id: str, target_credit: str = "") -> dict[str, Any]:
        return {
            "type": rel_type,
            "type-id": type_id,
            "target-type": "artist",
            "direction": "backward",
            "attributes": [],
            "attribute-ids": {},
            "attribute-values": {},
            "artist": {
                "id": person.mbid, "name": person.name, "sort-name": person.sort_name,
                "disambiguation": "", "type": "Person",
            },
            "target-credit": target_credit,
            "source-credit": "",
            "begin": None,
            "end": None,
            "ended": False,
        }

    @staticmethod
    def _credited_as(person: Person, context: str) -> str:
        """Some credits name the person differently ("A. Lindgren"); most leave target-credit empty."""
        if _stable_int("credit", context, person.mbid) % 5:
            return ""
        first, _, last = person.name.partition(" ")
        return f"{first[0]}. {last}"

    def _recording_relations(self, recording: MbRecording, includes: set[str]) -> list[dict[str, Any]]:
        relations: list[dict[str, Any]] = []
        if "artist-rels" in includes:
            for person in recording.producers:
                credit = self._credited_as(person, recording.mbid)
                relations.append(self._person_relation(person, "producer", TYPE_IDS["recording-producer"], credit))
            # A mix credit on some recordings, so clients must filter by relation type.
            people = recording.producers + (recording.work.composers if recording.work else [])
            if people and _stable_int("mix", recording.mbid) % 5 < 2:
                mixer = people[_stable_int("mixer", recording.mbid) % len(people)]
                relations.append(self._person_relation(mixer, "mix", TYPE_IDS["mix"]))
        if "work-rels" in includes and recording.work is not None:
            work = recording.work
            work_body: dict[str, Any] = {
                "id": work.mbid, "title": work.title, "iswcs": [work.iswc], "type": "Song",
                "type-id": "f061270a-2fd6-32f1-a641-f0f8676d14e6", "language": None, "languages": [],
                "attributes": [], "disambiguation": "",
            }
            if {"work-level-rels", "artist-rels"} <= includes:
                work_body["relations"] = [
                    self._person_relation(p, "composer", TYPE_IDS["composer"], self._credited_as(p, work.mbid))
                    for p in work.composers
                ] + [
                    self._person_relation(p, "lyricist", TYPE_IDS["lyricist"], self._credited_as(p, work.mbid))
                    for p in work.lyricists
                ]
            relations.append({
                "type": "performance", "type-id": TYPE_IDS["performance"], "target-type": "work",
                "direction": "forward", "attributes": [], "attribute-ids": {}, "attribute-values": {},
                "work": work_body, "target-credit": "", "source-credit": "", "begin": None, "end": None,
                "ended": False,
            })
        return relations

    @staticmethod
    def _genres_and_tags(owner: str, genres: list[str], tags: list[str], includes: set[str]) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if "genres" in includes:
            body["genres"] = [
                {"id": _derived_mbid("genre", name), "name": name, "count": 1 + _stable_int(owner, name) % 6,
                 "disambiguation": ""}
                for name in genres
            ]
        if "tags" in includes:
            # Genres are tags too on MusicBrainz; folksonomy tags come on top.
            body["tags"] = [{"name": name, "count": 1 + _stable_int(owner, name) % 6} for name in genres + tags]
        return body

    def _recording(self, track: Track, includes: set[str], *, with_releases: bool = True) -> dict[str, Any]:
        recording = track.recording
        albums = self._albums_with(track)
        body: dict[str, Any] = {
            "id": self._recording_mbid(track),
            "title": recording.title if recording else track.name,
            "length": recording.length_ms if recording else track.duration_ms,
            "video": False,
            "disambiguation": "",
            "first-release-date": min(album.release_date for album in albums),
        }
        if includes & {"artists", "artist-credits"}:
            body["artist-credit"] = self._artist_credit(self.catalog.track_artists(track))
        if "isrcs" in includes:
            body["isrcs"] = [track.isrc] if recording else []
        if with_releases and "releases" in includes:
            body["releases"] = [self._release(album, includes & {"artists", "artist-credits"}) for album in albums]
        if recording is not None and includes & _RELATION_INCS:
            body["relations"] = self._recording_relations(recording, includes)
        if recording is not None:
            body.update(self._genres_and_tags(recording.mbid, recording.genres, recording.tags, includes))
        return body

    def _release_group(self, album: Album, includes: set[str]) -> dict[str, Any]:
        primary = "Single" if album.album_type == "single" else "Album"
        body: dict[str, Any] = {
            "id": album.release.release_group_mbid,
            "title": album.name,
            "primary-type": primary,
            "primary-type-id": PRIMARY_TYPE_IDS[primary],
            "secondary-types": ["Compilation"] if album.album_type == "compilation" else [],
            "secondary-type-ids": [],
            "first-release-date": album.release_date,
            "disambiguation": "",
        }
        body.update(self._genres_and_tags(album.release.release_group_mbid, album.release.genres, [], includes))
        return body

    def _release(self, album: Album, includes: set[str], *, full: bool = False) -> dict[str, Any]:
        release = album.release
        main_artist = self.catalog.artists[album.artist_ids[0]]
        body: dict[str, Any] = {
            "id": release.mbid,
            "title": release.title,
            "status": release.status,
            "status-id": STATUS_OFFICIAL_ID,
            "date": album.release_date,
            "country": release.country,
            "release-events": [{
                "date": album.release_date,
                "area": {
                    "id": _derived_mbid("area", release.country),
                    "name": COUNTRY_NAMES.get(release.country, release.country),
                    "sort-name": COUNTRY_NAMES.get(release.country, release.country),
                    "iso-3166-1-codes": [release.country],
                    "disambiguation": "",
                },
            }],
            "barcode": release.barcode,
            "disambiguation": "",
            "packaging": "None",
            "packaging-id": "119eba76-b343-3e02-a292-f0f00644bb9b",
            "quality": "normal",
            "text-representation": TEXT_REPRESENTATION[main_artist.script],
        }
        if includes & {"artists", "artist-credits"}:
            body["artist-credit"] = self._artist_credit(self.catalog.album_artists(album))
        if not full:
            return body
        body["asin"] = None
        body["cover-art-archive"] = {
            "artwork": album.cover is not None, "count": 1 if album.cover else 0,
            "front": album.cover is not None, "back": False, "darkened": False,
        }
        if "labels" in includes:
            body["label-info"] = [{
                "catalog-number": release.catalog_number,
                "label": {
                    "id": _derived_mbid("label", release.label), "name": release.label,
                    "sort-name": release.label, "disambiguation": "", "label-code": None,
                    "type": "Original Production",
                },
            }]
        if "release-groups" in includes:
            body["release-group"] = self._release_group(album, includes)
        if includes & {"recordings", "media"}:
            body["media"] = self._media(album, includes)
        if "artist-rels" in includes:
            body["relations"] = [
                self._person_relation(p, "producer", TYPE_IDS["release-producer"], self._credited_as(p, release.mbid))
                for p in release.producers
            ]
        body.update(self._genres_and_tags(release.mbid, release.genres, [], includes))
        return body

    def _media(self, album: Album, includes: set[str]) -> list[dict[str, Any]]:
        # Relations of each track's recording come only with recording-level-rels.
        recording_includes = set(includes) - {"releases"}
        if "recording-level-rels" not in includes:
            recording_includes -= _RELATION_INCS
        media = []
        for disc in range(1, album.disc_count + 1):
            tracks = [t for t in self.catalog.album_tracks(album) if t.disc_number == disc]
            medium: dict[str, Any] = {
                "position": disc, "title": "", "format": "Digital Media", "format-id": FORMAT_DIGITAL_ID,
                "track-count": len(tracks), "track-offset": 0,
            }
            if "recordings" in includes:
                medium["tracks"] = [
                    {
                        "id": _derived_mbid("track", album.release.mbid, str(disc), str(t.track_number)),
                        "number": str(t.track_number),
                        "position": t.track_number,
                        "title": t.recording.title if t.recording else t.name,
                        "length": t.duration_ms,
                        "recording": self._recording(t, recording_includes, with_releases=False),
                        **(
                            {"artist-credit": self._artist_credit(self.catalog.track_artists(t))}
                            if includes & {"artists", "artist-credits"} else {}
                        ),
                    }
                    for t in tracks
                ]
            media.append(medium)
        return media

    # -- search ---------------------------------------------------------------------------------
    def _search_fields(self, track: Track) -> dict[str, list[str]]:
        artists = self.catalog.track_artists(track)
        albums = self._albums_with(track)
        return {
            "title": _tokens(track.recording.title if track.recording else track.name),
            "artist": [token for artist in artists for token in _tokens(artist.name)],
            "isrc": [track.isrc.lower()] if track.recording else [],
            "release": [token for album in albums for token in _tokens(album.name)],
            "rid": [self._recording_mbid(track)],
            "reid": [album.release.mbid for album in albums],
            "arid": [artist.mbid for artist in artists],
        }

    def _search_hit(self, track: Track) -> dict[str, Any]:
        body = self._recording(track, {"artist-credits", "isrcs"}, with_releases=False)
        body["releases"] = []
        for album in self._albums_with(track):
            release = self._release(album, set())
            album_track = next(t for t in self.catalog.album_tracks(album) if self._recording_mbid(t) == body["id"])
            disc_tracks = [t for t in self.catalog.album_tracks(album) if t.disc_number == album_track.disc_number]
            release["release-group"] = self._release_group(album, set())
            release["track-count"] = len(album.track_ids)
            release["media"] = [{
                "position": album_track.disc_number, "format": "Digital Media",
                "track": [{
                    "id": _derived_mbid("track", album.release.mbid, str(album_track.disc_number),
                                        str(album_track.track_number)),
                    "number": str(album_track.track_number), "title": body["title"], "length": album_track.duration_ms,
                }],
                "track-count": len(disc_tracks),
                "track-offset": album_track.track_number - 1,
            }]
            body["releases"].append(release)
        return body


def _parse_query(query: str) -> list[tuple[str, list[str], bool]]:
    """`recording:"T" AND artist:"A"` → [(field, tokens, is_phrase)]; unfielded terms search titles.

    Boolean operators are read as AND, which is what clients of this pipeline send.
    """
    conditions = []
    for field_name, phrase, word in _QUERY_TERM.findall(query):
        if not phrase and word in {"AND", "OR", "NOT", "&&", "||"}:
            continue
        field = SEARCH_FIELDS.get(field_name.lower(), "title") if field_name else "title"
        text = phrase if phrase else word
        values = [text.lower()] if field in {"isrc", "rid", "reid", "arid"} else _tokens(text)
        if values:
            conditions.append((field, values, bool(phrase)))
    return conditions


def _match_score(conditions: list[tuple[str, list[str], bool]], fields: dict[str, list[str]]) -> float:
    """0 when a condition fails; otherwise higher when the matched fields have fewer extra words."""
    if not conditions:
        return 0.0
    score = 1.0
    for field, wanted, is_phrase in conditions:
        have = fields[field]
        if is_phrase:
            found = any(have[i : i + len(wanted)] == wanted for i in range(len(have) - len(wanted) + 1))
        else:
            found = all(token in have for token in wanted)
        if not found:
            return 0.0
        score *= len(wanted) / max(len(have), len(wanted))
    return score


def create_emulator(sandbox: Any) -> MusicBrainzEmulator:
    """Sandbox plug-in hook; options: `musicbrainz_rate_limit` (requests/second, None or 0 = off),
    `musicbrainz_burst`."""
    return MusicBrainzEmulator(
        sandbox.catalog,
        rate_limit=sandbox.options.get("musicbrainz_rate_limit", 1.0),
        burst=int(sandbox.options.get("musicbrainz_burst", 1)),
    )


def environment(sandbox: Any, base_url: str) -> dict[str, str]:
    """`MUSICBRAINZ_URL` (design.md §4): the base without `/ws/2`, like https://musicbrainz.org."""
    return {"MUSICBRAINZ_URL": base_url}
