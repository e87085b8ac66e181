"""The sandbox's generated music catalog: plain data every emulator reads.

`build_catalog(seed=7)` returns the same `Catalog` for the same seed (about 30 artists, 60 releases,
600 tracks, built in a few tens of milliseconds). Ids look like the real services' ids: Spotify
base62 (22 characters), MusicBrainz UUIDs, ISRCs, UPCs with a valid check digit.

What lives where:
- `Artist` / `Album` / `Track`: the Spotify side (names, ids, dates, ISRC/UPC, copyrights, genres).
- `Track.recording` (`MbRecording`, None when MusicBrainz does not know the ISRC), `Album.release`
  (`MbRelease`) and `Artist.mbid`/`mb_genres`: the MusicBrainz side, including the work with its
  composers/lyricists and producer credits (on the recording, or only on the release).
- `Track.lyrics` (`Lyrics`): what LRCLIB knows (synced, plain only, instrumental, or nothing).
- `Album.cover` (`CoverArt`, None when the Cover Art Archive has no image): the CAA front image.
  Spotify album images (640/300/64) always exist; `spotify_image_ids(album)` gives their ids.
- `Playlist` / `User`: playlists of the authorised user `catalog.me` and of others.

Mutations (`add_playlist_track`, `remove_playlist_track`, `add_album`) hold `catalog.lock`;
emulators reading several related objects may hold it too.
"""

from __future__ import annotations

import hashlib
import random
import threading
import uuid
from dataclasses import dataclass, field
from typing import Callable

BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

# Spotify CDN image id prefixes per size (api-contracts §4.1).
SPOTIFY_IMAGE_PREFIXES = {640: "ab67616d0000b273", 300: "ab67616d00001e02", 64: "ab67616d00004851"}
CAA_FRONT_SIZE = 1500


# ------------------------------------------------------------------------------------------------
# Data
# ------------------------------------------------------------------------------------------------
@dataclass
class Person:
    """A MusicBrainz artist credited in a relationship (composer, lyricist, producer)."""

    mbid: str
    name: str
    sort_name: str


@dataclass
class Work:
    """A MusicBrainz work: the composition behind a recording."""

    mbid: str
    title: str
    iswc: str
    composers: list[Person]
    lyricists: list[Person]  # empty for instrumentals


@dataclass
class MbRecording:
    """The MusicBrainz recording a Spotify track corresponds to (via its ISRC)."""

    mbid: str
    title: str  # MusicBrainz title: no Spotify " - Remastered 2011" style suffix
    length_ms: int | None  # MusicBrainz may not know the length
    work: Work | None
    producers: list[Person]  # recording-level producer credits; empty when only on the release
    genres: list[str]
    tags: list[str]


@dataclass
class MbRelease:
    """The MusicBrainz release (and its release group) an album corresponds to."""

    mbid: str
    release_group_mbid: str
    title: str
    status: str  # "Official"
    country: str
    barcode: str  # equals the album's UPC
    label: str
    catalog_number: str
    producers: list[Person]  # release-level producer credits
    genres: list[str]  # release-group genres


@dataclass
class CoverArt:
    """The Cover Art Archive front image of a release (JPEG, `width`×`height`)."""

    image_id: str  # numeric string, as CAA image ids are
    width: int = CAA_FRONT_SIZE
    height: int = CAA_FRONT_SIZE


@dataclass
class Lyrics:
    """What LRCLIB holds for a track. `kind`: "synced" (synced + plain), "plain", "instrumental"."""

    lrclib_id: int
    kind: str
    synced: str | None  # LRC text, "[mm:ss.xx] line" per line
    plain: str | None
    duration_s: float  # LRCLIB's duration, within ±1 s of the track's


@dataclass
class Artist:
    id: str
    name: str
    sort_name: str
    genres: list[str]  # Spotify genres; often empty
    mbid: str
    mb_genres: list[str]
    script: str = "latin"  # writing system of the name: "latin", "japanese" or "cyrillic"
    album_ids: list[str] = field(default_factory=list)  # in creation order


@dataclass
class Album:
    id: str
    name: str
    album_type: str  # "album" | "single" | "compilation"
    artist_ids: list[str]
    release_date: str  # "2019-03-01", "2019-03" or "2019" according to the precision
    release_date_precision: str  # "day" | "month" | "year"
    upc: str
    label: str
    copyrights: list[tuple[str, str]]  # (text, type) with type "C" or "P"
    track_ids: list[str]  # in disc/track order
    release: MbRelease
    cover: CoverArt | None  # None: the Cover Art Archive has no image for this release
    disc_count: int = 1


@dataclass
class Track:
    id: str
    name: str  # Spotify title, possibly with a suffix (" - Remastered 2011") or "(feat. X)"
    artist_ids: list[str]  # main artist first, featured artists after
    album_id: str
    disc_number: int
    track_number: int
    duration_ms: int
    isrc: str
    explicit: bool
    recording: MbRecording | None  # None: MusicBrainz does not know this ISRC
    lyrics: Lyrics | None  # None: LRCLIB has nothing


@dataclass
class User:
    id: str
    display_name: str


@dataclass
class PlaylistEntry:
    """One playlist slot. `kind`: "track", "local" (is_local file) or "unavailable" (item null)."""

    kind: str
    track_id: str | None
    added_at: str
    added_by: str
    local_name: str = ""  # "Artist - Title" of a local file


@dataclass
class Playlist:
    id: str
    name: str
    description: str
    owner_id: str
    collaborative: bool
    public: bool
    entries: list[PlaylistEntry]
    collaborators: list[str] = field(default_factory=list)
    version: int = 1  # bumped by every modification; snapshot_id derives from it

    @property
    def snapshot_id(self) -> str:
        digest = hashlib.sha256(f"{self.id}:{self.version}".encode()).hexdigest()
        return "AAAA" + "".join(BASE62[int(digest[i : i + 2], 16) % 62] for i in range(0, 48, 2))


@dataclass
class Catalog:
    seed: int
    artists: dict[str, Artist]
    albums: dict[str, Album]
    tracks: dict[str, Track]
    users: dict[str, User]
    playlists: dict[str, Playlist]
    me: str  # id of the authorised user
    # Named playlists for tests and the demo (ids into `playlists`).
    big_playlist_id: str = ""  # owned, more than 50 entries incl. a local file and an unavailable item
    acquisition_playlist_id: str = ""  # owned, 40 tracks for an end-to-end acquisition run
    small_playlist_id: str = ""  # owned, 5 tracks
    collaborative_playlist_id: str = ""  # owned by someone else, `me` collaborates
    foreign_playlist_id: str = ""  # owned by someone else, not collaborative: /items is 403
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    _generator: _Generator | None = field(default=None, repr=False)

    # -- lookups --------------------------------------------------------------------------------
    def owned_playlist_ids(self) -> list[str]:
        return [p.id for p in self.playlists.values() if p.owner_id == self.me]

    def can_read_items(self, playlist: Playlist, user_id: str) -> bool:
        """Development-mode rule: only owners and collaborators may list a playlist's items."""
        return playlist.owner_id == user_id or (playlist.collaborative and user_id in playlist.collaborators)

    def tracks_by_isrc(self, isrc: str) -> list[Track]:
        return [t for t in self.tracks.values() if t.isrc.upper() == isrc.upper()]

    def album_tracks(self, album: Album) -> list[Track]:
        return [self.tracks[track_id] for track_id in album.track_ids]

    def track_artists(self, track: Track) -> list[Artist]:
        return [self.artists[artist_id] for artist_id in track.artist_ids]

    def album_artists(self, album: Album) -> list[Artist]:
        return [self.artists[artist_id] for artist_id in album.artist_ids]

    def find_recording(self, mbid: str) -> Track | None:
        """The first track whose MusicBrainz recording has `mbid`."""
        return next((t for t in self.tracks.values() if t.recording and t.recording.mbid == mbid), None)

    def find_release(self, mbid: str) -> Album | None:
        return next((a for a in self.albums.values() if a.release.mbid == mbid), None)

    def find_release_group(self, mbid: str) -> Album | None:
        return next((a for a in self.albums.values() if a.release.release_group_mbid == mbid), None)

    def find_cover(self, image_id: str) -> Album | None:
        return next((a for a in self.albums.values() if a.cover and a.cover.image_id == image_id), None)

    def find_lyrics(self, lrclib_id: int) -> Track | None:
        return next((t for t in self.tracks.values() if t.lyrics and t.lyrics.lrclib_id == lrclib_id), None)

    def playlist_tracks(self, playlist: Playlist) -> list[Track]:
        """The playlist's real tracks (local files and unavailable items left out)."""
        return [self.tracks[e.track_id] for e in playlist.entries if e.kind == "track" and e.track_id]

    # -- mutations ------------------------------------------------------------------------------
    def add_playlist_track(self, playlist_id: str, track_id: str, added_at: str = "2026-11-24T12:00:00Z") -> None:
        with self.lock:
            playlist = self.playlists[playlist_id]
            playlist.entries.append(PlaylistEntry("track", track_id, added_at, self.me))
            playlist.version += 1

    def remove_playlist_track(self, playlist_id: str, track_id: str) -> None:
        """Remove every occurrence of `track_id`, as Spotify's remove-items call does."""
        with self.lock:
            playlist = self.playlists[playlist_id]
            playlist.entries = [e for e in playlist.entries if e.track_id != track_id]
            playlist.version += 1

    def add_album(
        self,
        artist_id: str,
        *,
        name: str | None = None,
        album_type: str = "album",
        track_count: int = 8,
        release_date: str = "2026-11-20",
    ) -> Album:
        """A new release for `artist_id` (the watchlist's "new release"), with tracks and MB data."""
        assert self._generator is not None, "catalog not made by build_catalog()"
        with self.lock:
            artist = self.artists[artist_id]
            return self._generator.make_album(
                artist,
                name=name or self._generator.album_title(artist),
                album_type=album_type,
                track_count=track_count,
                release_date=(release_date, "day"),
            )


# ------------------------------------------------------------------------------------------------
# Generation
# ------------------------------------------------------------------------------------------------
# (name, script) — invented names covering the cases that break naive pipelines.
ARTIST_NAMES: list[tuple[str, str]] = [
    ("Sólveig Rós", "latin"),
    ("RX/TX", "latin"),
    ("Bl!ss", "latin"),
    ("The Midnight Ferns", "latin"),
    ("青い森", "japanese"),
    ("Кино Север", "cyrillic"),
    ("Renée Château", "latin"),
    ("Hüsker Kraft", "latin"),
    ("The Lantern Society", "latin"),
    ("星野ミカ", "japanese"),
    ("Mariana & the Tides", "latin"),
    ("Øystein Dahl", "latin"),
    ("Zoë Marchetti", "latin"),
    ("Los Hermanos Peña", "latin"),
    ("Звёздный Путь", "cyrillic"),
    ("Clara Wendt", "latin"),
    ("Elliot Park", "latin"),
    ("Nova Lindqvist", "latin"),
    ("The Velvet Static", "latin"),
    ("Jonas Ferreira", "latin"),
    ("Maya Okafor", "latin"),
    ("Hollow Pines", "latin"),
    ("Saint Ophelia", "latin"),
    ("Dr. Rhythm", "latin"),
    ("Aurora Vale", "latin"),
    ("佐藤海斗", "japanese"),
    ("Ильяна", "cyrillic"),
    ("Ché Álvarez", "latin"),
    ("Lumière Nord", "latin"),
    ("The Paper Satellites", "latin"),
]

SPOTIFY_GENRES = [
    "indie pop", "dream pop", "shoegaze", "post-rock", "synthwave", "art pop", "j-pop", "city pop",
    "russian rock", "nordic folk", "chamber pop", "alt-country", "latin pop", "neo soul", "trip hop",
    "hard rock", "electropop", "singer-songwriter", "ambient", "jazz fusion",
]
MB_GENRES = [
    "pop", "rock", "electronic", "folk", "ambient", "jazz", "synth-pop", "post-rock", "indie rock",
    "soul", "hip hop", "classical", "dream pop", "j-pop",
]
MB_TAGS = ["atmospheric", "melancholic", "energetic", "female vocalist", "male vocalist", "live", "catchy"]
LABELS = [
    "Northbound Records", "Fjord Music AS", "Kitsune Sounds", "Aurora Audio Ltd", "Polar Night Recordings",
    "Casa Peña Discos", "Moskva Zvuk", "Green Room Music", "Tidewater Records", "Lantern House",
]
COUNTRIES = ["US", "GB", "SE", "NO", "IS", "JP", "RU", "FR", "DE", "ES", "BR"]

WORDS_LATIN = [
    "Golden", "Hour", "Paper", "Moons", "Silver", "Lines", "Northern", "Lights", "Quiet", "Storm", "Glass",
    "Houses", "Wild", "Hearts", "Electric", "Dreams", "Summer", "Rain", "Hollow", "Ground", "Velvet",
    "Morning", "Echoes", "River", "Stone", "Neon", "Gardens", "Last", "Train", "Falling", "Stars", "Blue",
    "Harbour", "Midnight", "Signals", "Ocean", "Drive", "Winter", "Songs", "Distant", "Shores",
]
WORDS_JAPANESE = ["夜明け", "の", "歌", "青い", "空", "星", "降る", "街", "夏", "恋", "風", "花火", "東京", "雨"]
WORDS_CYRILLIC = ["Белая", "ночь", "Звезда", "Город", "Река", "Зима", "Солнце", "Ветер", "Песня", "Море"]
TITLE_SPECIALS = [
    "Don't Stop Now", "What's Left?", "Rock 'n' Roll Heart", "Part I / Part II", "Who Knows?",
    "Intro: The Beginning", "Ça Plane Pour Nous", "Señorita Luna", "Coração", "100% Real",
    "Ashes & Embers", "Over... and Over", "Sweet Dreams (Are Made of This Night)", "C'est la Vie",
]
SUFFIXES = [" - Remastered 2011", " - 2015 Remaster", " - Live", " - Radio Edit", " - Acoustic Version",
            " - Single Version", " - Mono"]
LYRIC_LINES = [
    "I've been walking down this empty road", "Waiting for the morning light", "Tell me what you're thinking of",
    "We were young and we were free", "Every star is falling now", "Hold on, hold on to me",
    "The city sleeps beneath the rain", "I can hear the ocean call", "Don't let the silence win",
    "Take my hand and don't look back", "Somewhere in the afterglow", "All the lights are turning blue",
    "We could run until the dawn", "Say my name like you mean it", "Nothing ever stays the same",
]
FIRST_NAMES = ["Anna", "Björn", "Carlos", "Daria", "Erik", "Fumiko", "Gustav", "Hana", "Ivan", "Julia",
               "Kenji", "Lars", "Marta", "Nils", "Olga", "Pedro", "Rosa", "Sven", "Tomás", "Yuki"]
LAST_NAMES = ["Lindgren", "Okafor", "Sato", "Petrov", "García", "Nyström", "Moreau", "Kowalski", "Haugen",
              "Ivanova", "Tanaka", "Berg", "Costa", "Dubois", "Eriksen"]


def _base62_id(rng: random.Random) -> str:
    return "".join(rng.choice(BASE62) for _ in range(22))


def _mbid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _upc(rng: random.Random) -> str:
    digits = [rng.randrange(10) for _ in range(11)]
    odd, even = sum(digits[0::2]), sum(digits[1::2])
    return "".join(map(str, digits)) + str((10 - (odd * 3 + even) % 10) % 10)


def _isrc(rng: random.Random, country: str, year: int) -> str:
    registrant = "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") for _ in range(3))
    return f"{country}{registrant}{year % 100:02d}{rng.randrange(100000):05d}"


def _sort_name(name: str) -> str:
    return f"{name[4:]}, The" if name.startswith("The ") else name


def _lrc_time(seconds: float) -> str:
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes):02d}:{rest:05.2f}"


class _Generator:
    """Draws every random choice from one seeded `random.Random`, so a seed fixes the catalog."""

    def __init__(self, rng: random.Random, catalog: Catalog) -> None:
        self.rng = rng
        self.catalog = catalog
        self.people = [
            Person(_mbid(rng), f"{first} {last}", f"{last}, {first}")
            for first, last in zip(FIRST_NAMES, rng.sample(LAST_NAMES * 2, len(FIRST_NAMES)))
        ]
        self.used_titles: set[tuple[str, str]] = set()

    # -- names ----------------------------------------------------------------------------------
    def _words(self, script: str, count: int) -> str:
        if script == "japanese":
            return "".join(self.rng.sample(WORDS_JAPANESE, count))
        pool = WORDS_CYRILLIC if script == "cyrillic" else WORDS_LATIN
        return " ".join(self.rng.sample(pool, count))

    def _unique(self, artist: Artist, make: Callable[[], str]) -> str:
        """A title this artist has not used yet (duplicates would make matching tests ambiguous)."""
        title = make()
        while (artist.id, title) in self.used_titles:
            title = make()
        self.used_titles.add((artist.id, title))
        return title

    def album_title(self, artist: Artist) -> str:
        return self._unique(artist, lambda: self._words(artist.script, self.rng.choice((1, 2, 2, 3))))

    def track_title(self, artist: Artist) -> str:
        def make() -> str:
            if artist.script == "latin" and self.rng.random() < 0.12:
                return self.rng.choice(TITLE_SPECIALS)
            return self._words(artist.script, self.rng.choice((1, 2, 2, 3)))

        return self._unique(artist, make)

    # -- entities -------------------------------------------------------------------------------
    def make_artist(self, name: str, script: str) -> Artist:
        rng = self.rng
        genres = rng.sample(SPOTIFY_GENRES, rng.choice((0, 0, 1, 2, 3)))  # often empty, as in dev mode
        mb_genres = rng.sample(MB_GENRES, rng.choice((0, 1, 2)))
        artist = Artist(_base62_id(rng), name, _sort_name(name), genres, _mbid(rng), mb_genres, script)
        self.catalog.artists[artist.id] = artist
        return artist

    def _release_date(self) -> tuple[str, str]:
        rng = self.rng
        year = rng.randint(1968, 2026)
        roll = rng.random()
        if year < 1980 and roll < 0.5:
            return str(year), "year"
        if roll < 0.1:
            return f"{year}-{rng.randint(1, 12):02d}", "month"
        return f"{year}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}", "day"

    def make_album(
        self,
        artist: Artist,
        *,
        name: str,
        album_type: str,
        track_count: int,
        release_date: tuple[str, str] | None = None,
        disc_count: int = 1,
        reuse_tracks: list[Track] | None = None,
    ) -> Album:
        """An album with `track_count` tracks per disc; `reuse_tracks` copies recordings (singles)."""
        rng = self.rng
        date, precision = release_date or self._release_date()
        year = int(date[:4])
        label = rng.choice(LABELS)
        country = rng.choice(COUNTRIES)
        producers_on_release_only = rng.random() < 0.3
        release = MbRelease(
            mbid=_mbid(rng),
            release_group_mbid=_mbid(rng),
            title=name,
            status="Official",
            country=country,
            barcode="",
            label=label,
            catalog_number=f"{label[:3].upper()}{rng.randint(100, 9999)}",
            producers=rng.sample(self.people, rng.choice((1, 1, 2))),
            genres=rng.sample(MB_GENRES, rng.choice((0, 1, 2))),
        )
        album = Album(
            id=_base62_id(rng),
            name=name,
            album_type=album_type,
            artist_ids=[artist.id],
            release_date=date,
            release_date_precision=precision,
            upc=_upc(rng),
            label=label,
            copyrights=[(f"© {year} {label}", "C"), (f"℗ {year} {label}", "P")],
            track_ids=[],
            release=release,
            cover=CoverArt(str(rng.randrange(10**9, 4 * 10**10))) if rng.random() < 0.85 else None,
            disc_count=disc_count,
        )
        release.barcode = album.upc
        self.catalog.albums[album.id] = album
        artist.album_ids.append(album.id)
        if reuse_tracks:
            for number, original in enumerate(reuse_tracks, start=1):
                self._add_track(album, artist, 1, number, country, year, producers_on_release_only, original)
        else:
            for disc in range(1, disc_count + 1):
                for number in range(1, track_count + 1):
                    self._add_track(album, artist, disc, number, country, year, producers_on_release_only)
        return album

    def _add_track(
        self,
        album: Album,
        artist: Artist,
        disc: int,
        number: int,
        country: str,
        year: int,
        producers_on_release_only: bool,
        original: Track | None = None,
    ) -> Track:
        rng = self.rng
        if original is not None:
            # The same recording on a single and an album: same ISRC, same MB data, new Spotify id.
            track = Track(
                _base62_id(rng), original.name, list(original.artist_ids), album.id, disc, number,
                original.duration_ms, original.isrc, original.explicit, original.recording, original.lyrics,
            )
        else:
            base_title = self.track_title(artist)
            artist_ids = [artist.id]
            name = base_title
            roll = rng.random()
            if roll < 0.1:
                featured = rng.choice([a for a in self.catalog.artists.values() if a.id != artist.id])
                artist_ids.append(featured.id)
                name = f"{base_title} (feat. {featured.name})"
            elif roll < 0.22:
                name = base_title + rng.choice(SUFFIXES)
            duration_ms = rng.randint(150_000, 330_000)
            instrumental = rng.random() < 0.08
            track = Track(
                id=_base62_id(rng),
                name=name,
                artist_ids=artist_ids,
                album_id=album.id,
                disc_number=disc,
                track_number=number,
                duration_ms=duration_ms,
                isrc=_isrc(rng, country, year),
                explicit=rng.random() < 0.1,
                recording=self._recording(base_title, duration_ms, instrumental, producers_on_release_only),
                lyrics=self._lyrics(duration_ms, instrumental),
            )
        self.catalog.tracks[track.id] = track
        album.track_ids.append(track.id)
        return track

    def _recording(
        self, title: str, duration_ms: int, instrumental: bool, producers_on_release_only: bool
    ) -> MbRecording | None:
        rng = self.rng
        if rng.random() < 0.06:
            return None
        work = Work(
            mbid=_mbid(rng),
            title=title,
            iswc=f"T-{rng.randrange(1000):03d}.{rng.randrange(1000):03d}.{rng.randrange(1000):03d}-{rng.randrange(10)}",
            composers=rng.sample(self.people, rng.choice((1, 1, 2))),
            lyricists=[] if instrumental else rng.sample(self.people, rng.choice((0, 1, 1))),
        )
        return MbRecording(
            mbid=_mbid(rng),
            title=title,
            length_ms=None if rng.random() < 0.05 else duration_ms + rng.randint(-800, 800),
            work=None if rng.random() < 0.08 else work,
            producers=[] if producers_on_release_only else rng.sample(self.people, rng.choice((1, 1, 2))),
            genres=rng.sample(MB_GENRES, rng.choice((0, 1, 2))),
            tags=rng.sample(MB_TAGS, rng.choice((0, 1, 2))),
        )

    def _lyrics(self, duration_ms: int, instrumental: bool) -> Lyrics | None:
        rng = self.rng
        lrclib_id = rng.randrange(100_000, 30_000_000)
        duration_s = round(duration_ms / 1000 + rng.uniform(-0.9, 0.9), 1)
        if instrumental:
            return Lyrics(lrclib_id, "instrumental", None, None, duration_s)
        roll = rng.random()
        if roll < 0.1:
            return None
        lines: list[tuple[float, str]] = []
        moment = rng.uniform(8, 22)
        while moment < duration_ms / 1000 - 8:
            text = "" if rng.random() < 0.06 else rng.choice(LYRIC_LINES)  # empty line: instrumental gap
            lines.append((moment, text))
            moment += rng.uniform(2.5, 6.5)
        plain = "\n".join(text for _, text in lines)
        if roll < 0.25:
            return Lyrics(lrclib_id, "plain", None, plain, duration_s)
        synced = "\n".join(f"[{_lrc_time(at)}] {text}" for at, text in lines)
        return Lyrics(lrclib_id, "synced", synced, plain, duration_s)


def spotify_image_ids(album: Album) -> dict[int, str]:
    """The Spotify CDN image id of `album`'s cover per size (640, 300, 64)."""
    tail = hashlib.sha256(album.id.encode()).hexdigest()[:24]
    return {size: prefix + tail for size, prefix in SPOTIFY_IMAGE_PREFIXES.items()}


def _added_at(rng: random.Random) -> str:
    return f"2026-{rng.randint(1, 10):02d}-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:00Z"


def _make_playlist(
    rng: random.Random,
    catalog: Catalog,
    name: str,
    owner: str,
    tracks: list[Track],
    *,
    description: str = "",
    public: bool = False,
    collaborators: list[str] | None = None,
) -> Playlist:
    entries = [PlaylistEntry("track", t.id, _added_at(rng), owner) for t in tracks]
    playlist = Playlist(
        _base62_id(rng), name, description, owner, bool(collaborators), public, entries, collaborators or []
    )
    catalog.playlists[playlist.id] = playlist
    return playlist


def build_catalog(seed: int = 7, *, artist_count: int = 30) -> Catalog:
    rng = random.Random(seed)
    me, other = User("harmony_listener", "Harmony Listener"), User("other_listener", "Other Listener")
    catalog = Catalog(seed, {}, {}, {}, {me.id: me, other.id: other}, {}, me.id)
    generator = catalog._generator = _Generator(rng, catalog)

    artists = [generator.make_artist(name, script) for name, script in ARTIST_NAMES[:artist_count]]
    for index, artist in enumerate(artists):
        album_count = 1 + index % 2
        for album_index in range(album_count):
            # The first artist's second album is a two-disc deluxe edition.
            two_discs = index == 1 and album_index == 1
            title = generator.album_title(artist) + (" (Deluxe Edition)" if two_discs else "")
            album = generator.make_album(
                artist,
                name=title,
                album_type="compilation" if index == 5 and album_index == 1 else "album",
                track_count=10 if two_discs else rng.randint(9, 15),
                disc_count=2 if two_discs else 1,
            )
            if index % 2 == 0:
                # A single released from the album: the same recording(s) under another Spotify id.
                lead = catalog.tracks[album.track_ids[0]]
                generator.make_album(artist, name=lead.name, album_type="single", track_count=1, reuse_tracks=[lead])

    all_tracks = list(catalog.tracks.values())
    big = _make_playlist(rng, catalog, "Road Trip Mix", me.id, rng.sample(all_tracks, 118),
                         description="Everything for the long drive", public=True)
    # A local file and an unavailable item, which clients must skip.
    big.entries.insert(17, PlaylistEntry("local", None, _added_at(rng), me.id, "Local Band - Garage Demo"))
    big.entries.insert(63, PlaylistEntry("unavailable", None, _added_at(rng), me.id))
    # The acquisition playlist spans the hard cases: every script and punctuation in artist names.
    per_artist = [catalog.tracks[catalog.albums[a.album_ids[0]].track_ids[1]] for a in artists]
    acquisition_tracks = per_artist + rng.sample([t for t in all_tracks if t not in per_artist], 40 - len(per_artist))
    acquisition = _make_playlist(rng, catalog, "Acquisition Test", me.id, acquisition_tracks,
                                 description="Forty tracks across every kind of name")
    small = _make_playlist(rng, catalog, "Small Favourites", me.id, rng.sample(all_tracks, 5))
    collaborative = _make_playlist(rng, catalog, "Shared Party Queue", other.id, rng.sample(all_tracks, 12),
                                   collaborators=[me.id])
    foreign = _make_playlist(rng, catalog, "Other Listener's Picks", other.id, rng.sample(all_tracks, 15),
                             public=True)
    catalog.big_playlist_id, catalog.acquisition_playlist_id = big.id, acquisition.id
    catalog.small_playlist_id, catalog.collaborative_playlist_id = small.id, collaborative.id
    catalog.foreign_playlist_id = foreign.id
    return catalog
