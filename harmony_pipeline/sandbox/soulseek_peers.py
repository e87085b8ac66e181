"""Soulseek peers for the sandbox's slskd: shares generated from the catalog, and search over them.

`PeerNetwork(catalog, seed)` builds about forty peers whose shares hold, per catalog recording
(tracks that share an ISRC are one recording):
- whole album folders (with `.cue`/`.log`/`.jpg`/`.nfo` files next to the audio);
- loose copies in varied path styles (`Artist - Title.mp3`, VA compilations, scene names, CD1 folders)
  and qualities (FLAC 16/24-bit, MP3 320/256/192/V0, m4a, 96 kbps), some without any attributes,
  some on busy peers (no free slot, long queue);
- decoys: live, remix/extended, radio edit, instrumental/karaoke, acoustic, covers, the same title by
  another artist, wrong durations, locked copies, `..` paths and non-audio files named after the track.

Every file remembers the ground truth (`SharedFile.track_id`, `SharedFile.kind`), so tests can check
that the pipeline downloaded the right recordings. Some recordings have no correct file at all and
some only locked copies (`tracks_without_correct_file`, `locked_only_track_ids`); which ones is fixed
by the seed, and the catalog's acquisition playlist always contains a few of both.

Search follows Soulseek: the text is split on whitespace and lower-cased, single-character terms are
dropped, a leading `-` excludes a term, and a file matches when every other term occurs in its full
path.
"""

from __future__ import annotations

import random
import re
import string
import unicodedata
from dataclasses import dataclass, field
from typing import Any, Iterator

from harmony_pipeline.sandbox.catalog import SUFFIXES, Album, Catalog, Track

MAX_FILES_PER_RESPONSE = 100  # peers cap what they send back for one search
PEER_COUNT = 40

# Share behaviours some peers always show when a file is downloaded from them.
PEER_BEHAVIOURS = ["rejects", "rejects", "errors", "stalls", "corrupts"]

# Spotify suffixes that name another version (the files must carry the version, the original is wrong).
VERSION_SUFFIXES = {
    " - Live": ["(Live)", "[Live]", "(Live at the Roundhouse)"],
    " - Radio Edit": ["(Radio Edit)", "[Radio Edit]"],
    " - Acoustic Version": ["(Acoustic Version)", "(Acoustic)"],
    " - Single Version": ["(Single Version)"],
}
# Spotify suffixes that keep the recording (files may or may not carry them).
SAME_RECORDING_SUFFIXES = {
    " - Remastered 2011": ["(Remastered 2011)", "(2011 Remaster)"],
    " - 2015 Remaster": ["(2015 Remaster)", "[Remastered]"],
    " - Mono": ["(Mono)"],
}
assert set(VERSION_SUFFIXES) | set(SAME_RECORDING_SUFFIXES) == set(SUFFIXES)

DECOY_ARTISTS = [
    "The Cover Collective", "Midnight Karaoke Stars", "Ella Brandt", "Studio Session Players", "Kid Halcyon",
    "Tribute Nation", "Lo-Fi Study Beats", "Marcus Vey", "Sunset Strings Quartet", "DJ Parallax",
]
REMIX_TAGS = ["(Remix)", "(Extended Mix)", "(Club Mix)", "(DJ Parallax Remix)", "(12in Version)", "(Dub Mix)"]
GROUPS = ["FATHEAD", "JUST", "MOD", "DDC", "YARD", "PTC"]
NAME_PARTS = ["vinyl", "crate", "night", "owl", "bass", "echo", "static", "lofi", "groove", "needle",
              "tape", "wave", "flac", "mp3", "kai", "jonas", "mira", "sven", "tuna", "orbit"]
SPECIAL_USERNAMES = ["night owl 77", "Łukasz_flac", "crate.digger"]  # a space and non-ASCII in URLs


@dataclass(frozen=True)
class Quality:
    extension: str
    bit_rate: tuple[int, int]  # kbps range
    bit_depth: int | None = None
    sample_rate: int = 44100
    vbr: bool = False


QUALITIES: dict[str, Quality] = {
    "flac16": Quality("flac", (750, 1100), 16),
    "flac24": Quality("flac", (1900, 3200), 24, 96000),
    "mp3_320": Quality("mp3", (320, 320)),
    "mp3_256": Quality("mp3", (256, 256)),
    "mp3_192": Quality("mp3", (192, 192)),
    "mp3_v0": Quality("mp3", (220, 260), vbr=True),
    "m4a": Quality("m4a", (256, 256)),
    "mp3_96": Quality("mp3", (96, 96)),
}
QUALITY_WEIGHTS = {"flac16": 30, "flac24": 8, "mp3_320": 30, "mp3_256": 7, "mp3_192": 8, "mp3_v0": 10, "m4a": 5}
NON_AUDIO_SIZES = {"cue": (900, 8000), "log": (3000, 12000), "jpg": (60_000, 900_000), "nfo": (800, 6000),
                   "m3u": (200, 2000), "sfv": (200, 1500), "txt": (100, 3000)}


@dataclass
class SharedFile:
    """One file in a peer's share, with the attributes the peer reports and the ground truth."""

    filename: str  # backslash-separated virtual path, the enqueue key
    size: int
    duration_s: int  # real length of the audio a download writes (0 for non-audio)
    kind: str  # "target", "target:low_bitrate", "decoy:live", "locked", "hostile", "non_audio", …
    track_id: str | None  # canonical catalog track this file is a recording of (None: none / other song)
    imitates: str | None = None  # canonical track a decoy, locked, `..` or non-audio file is named after
    attributes: dict[str, Any] = field(default_factory=dict)  # bitRate, length, … (absent = not sent)
    extension_field: str = ""  # what the peer sends as `extension` (often "")
    locked: bool = False

    @property
    def extension(self) -> str:
        name = self.filename.rsplit("\\", 1)[-1]
        return name.rsplit(".", 1)[-1].lower() if "." in name else ""

    @property
    def is_correct(self) -> bool:
        return self.kind.startswith("target") and not self.locked and self.track_id is not None

    def to_json(self) -> dict[str, Any]:
        return {"filename": self.filename, "size": self.size, "code": 1, "extension": self.extension_field,
                **self.attributes, "isLocked": False}  # slskd never sets isLocked, even for locked files


@dataclass
class Peer:
    username: str
    root: str
    upload_speed: int  # bytes/s
    has_free_upload_slot: bool
    queue_length: int
    sends_attributes: bool
    sends_extension: bool
    behaviour: str  # "ok", "rejects", "errors", "stalls", "corrupts"
    files: list[SharedFile] = field(default_factory=list)
    locked_files: list[SharedFile] = field(default_factory=list)


@dataclass(frozen=True)
class SearchTerms:
    include: tuple[str, ...]
    exclude: tuple[str, ...]


def parse_search_text(text: str) -> SearchTerms:
    """Soulseek's tokenising: lower-case, single characters dropped, `-term` excludes."""
    include: list[str] = []
    exclude: list[str] = []
    for token in text.lower().split():
        target = exclude if token.startswith("-") else include
        token = token.lstrip("-")
        if len(token) > 1:
            target.append(token)
    return SearchTerms(tuple(include), tuple(exclude))


def path_matches(path_lower: str, terms: SearchTerms) -> bool:
    return bool(terms.include) and all(t in path_lower for t in terms.include) and not any(
        t in path_lower for t in terms.exclude
    )


# ------------------------------------------------------------------------------------------------
# Name rendering: how peers spell things
# ------------------------------------------------------------------------------------------------
_WINDOWS_INVALID = re.compile(r'[<>:"/\\|?*]')


def windows_safe(name: str, rng: random.Random) -> str:
    """Peers on Windows cannot keep `?`, `:`, `/` … in names; they drop or replace them."""
    name = name.replace(":", rng.choice([" -", "_", ""])).replace("/", rng.choice(["-", "_", " - "]))
    return re.sub(r"\s+", " ", _WINDOWS_INVALID.sub(rng.choice(["", "_"]), name)).strip(" .")


def strip_diacritics(text: str) -> str:
    letters = {"Ø": "O", "ø": "o", "Æ": "AE", "æ": "ae", "ß": "ss", "Ł": "L", "ł": "l"}  # no NFKD decomposition
    text = text.translate(str.maketrans(letters))
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


def artist_spelling(name: str, rng: random.Random) -> str:
    """Mostly the name as is; sometimes without accents, `X, The`, `and` for `&`, `AC_DC` for `AC/DC`."""
    roll = rng.random()
    if roll < 0.55:
        return name
    variants = [strip_diacritics(name), name.replace("&", "and"), name.replace("/", rng.choice(["_", "-", ""]))]
    if name.startswith("The "):
        variants += [f"{name[4:]}, The", name[4:]]
    return rng.choice(variants)


def scene_name(text: str) -> str:
    ascii_text = strip_diacritics(text)
    return re.sub(r"[^A-Za-z0-9]+", "_", ascii_text).strip("_") or "VA"


# ------------------------------------------------------------------------------------------------
# The network
# ------------------------------------------------------------------------------------------------
@dataclass
class _Recording:
    """What every copy of one catalog recording shares: names, durations, version tags."""

    track: Track  # canonical catalog track
    album: Album
    artist: str
    featured: list[str]
    base_title: str  # without Spotify suffix and "(feat. …)"
    version_tags: list[str]  # non-empty: the wanted track is itself a version; files must carry a tag
    optional_tags: list[str]  # remaster/mono tags files may carry
    duration_s: int
    year: str


class PeerNetwork:
    """Deterministic peers and shares for `catalog`; `search()` answers like the Soulseek network."""

    def __init__(self, catalog: Catalog, seed: int = 7, *, peer_count: int = PEER_COUNT) -> None:
        self.catalog = catalog
        self.seed = seed
        self.peers: dict[str, Peer] = {}
        self._files: dict[tuple[str, str], SharedFile] = {}
        self._canonical: dict[str, str] = {}  # ISRC -> canonical track id
        self.scenarios: dict[str, str] = {}  # canonical track id -> "normal" | "no_correct_file" | "locked_only"
        with catalog.lock:
            self._make_peers(peer_count)
            recordings = self._recordings()
            self._assign_scenarios(recordings)
            for album in catalog.albums.values():
                self._share_album_folders(album, recordings)
            for recording in recordings.values():
                self._share_track_copies(recording)
        self._search_index = [
            (peer, [(f, f.filename.lower()) for f in peer.files], [(f, f.filename.lower()) for f in peer.locked_files])
            for peer in self.peers.values()
        ]
        # Formats no peer offers yet (as if shared later): left out of search answers until released.
        self.withheld_extensions: set[str] = set()

    def withhold(self, *extensions: str) -> None:
        self.withheld_extensions = {e.lower() for e in extensions}

    def release(self) -> None:
        """The withheld files appear: peers have shared them since."""
        self.withheld_extensions = set()

    # -- ground truth ---------------------------------------------------------------------------
    def find(self, username: str, filename: str) -> SharedFile | None:
        return self._files.get((username, filename))

    def is_correct(self, username: str, filename: str) -> str | None:
        """The canonical catalog track id when this file is a correct pick, else None."""
        shared = self.find(username, filename)
        return shared.track_id if shared is not None and shared.is_correct else None

    def canonical_track_id(self, track_id: str) -> str:
        """Tracks with the same ISRC (album and single) are one recording; the first one names it."""
        return self._canonical[self.catalog.tracks[track_id].isrc.upper()]

    def copies_track(self, username: str, filename: str, track_id: str) -> bool:
        """True when the file is a correct pick for catalog track `track_id` (single/album aware)."""
        correct = self.is_correct(username, filename)
        return correct is not None and correct == self.canonical_track_id(track_id)

    def scenario(self, track_id: str) -> str:
        return self.scenarios[self.canonical_track_id(track_id)]

    @property
    def tracks_without_correct_file(self) -> set[str]:
        """Catalog track ids (every alias) with no correct unlocked file anywhere (locked-only included)."""
        return {t.id for t in self.catalog.tracks.values() if self.scenario(t.id) != "normal"}

    @property
    def locked_only_track_ids(self) -> set[str]:
        return {t.id for t in self.catalog.tracks.values() if self.scenario(t.id) == "locked_only"}

    def correct_files(self, track_id: str) -> list[tuple[str, str]]:
        canonical = self.canonical_track_id(track_id)
        return [key for key, f in self._files.items() if f.is_correct and f.track_id == canonical]

    def all_files(self) -> Iterator[tuple[Peer, SharedFile]]:
        for peer in self.peers.values():
            for shared in peer.files + peer.locked_files:
                yield peer, shared

    # -- search ---------------------------------------------------------------------------------
    def search(self, search_text: str) -> list[dict[str, Any]]:
        """Responses (slskd shape, without `token`) of every peer with a matching file."""
        terms = parse_search_text(search_text)
        if not terms.include:
            return []
        responses = []
        withheld = self.withheld_extensions
        for peer, files, locked in self._search_index:
            matched = [f for f, lower in files if path_matches(lower, terms)
                       and f.extension not in withheld][:MAX_FILES_PER_RESPONSE]
            matched_locked = [f for f, lower in locked if path_matches(lower, terms)
                              and f.extension not in withheld][:MAX_FILES_PER_RESPONSE]
            if matched or matched_locked:
                responses.append({
                    "username": peer.username,
                    "hasFreeUploadSlot": peer.has_free_upload_slot,
                    "uploadSpeed": peer.upload_speed,
                    "queueLength": peer.queue_length,
                    "fileCount": len(matched),
                    "lockedFileCount": len(matched_locked),
                    "files": [f.to_json() for f in matched],
                    "lockedFiles": [f.to_json() for f in matched_locked],
                })
        # Responses arrive in network order, not in share order.
        random.Random(f"{self.seed}:order:{search_text}").shuffle(responses)
        return responses

    # -- generation: peers ----------------------------------------------------------------------
    def _make_peers(self, count: int) -> None:
        rng = random.Random(f"{self.seed}:peers")
        names = list(SPECIAL_USERNAMES)
        while len(names) < count:
            first, second = rng.sample(NAME_PARTS, 2)
            name = rng.choice([f"{first}{second}", f"{first}_{second}{rng.randint(1, 99)}",
                               f"{first.capitalize()}{rng.randint(1960, 2005)}", f"{second}{first}fan"])
            if name not in names:
                names.append(name)
        rng.shuffle(names)
        behaviours = PEER_BEHAVIOURS + ["ok"] * (count - len(PEER_BEHAVIOURS))
        for index, name in enumerate(names):
            busy = rng.random() < 0.2
            root = rng.choice([
                "@@" + "".join(rng.choice(string.ascii_lowercase) for _ in range(5)) + rng.choice(
                    ["\\Music", "\\Shared\\Music", "\\Audio", "", "\\Downloads\\complete"]),
                "Music", "!SHARE", "flac", f"C:\\Users\\{name.split()[0]}\\Music",
            ])
            self.peers[name] = Peer(
                username=name,
                root=root,
                upload_speed=rng.randint(40_000, 12_000_000),
                has_free_upload_slot=not busy,
                queue_length=rng.randint(20, 400) if busy else rng.choice([0, 0, 0, 1, 3]),
                sends_attributes=rng.random() > 0.12,
                sends_extension=rng.random() < 0.5,
                behaviour=behaviours[index],
            )

    def _busy_peers(self) -> list[Peer]:
        return [p for p in self.peers.values() if not p.has_free_upload_slot]

    # -- generation: recordings and scenarios ---------------------------------------------------
    def _recordings(self) -> dict[str, _Recording]:
        recordings: dict[str, _Recording] = {}
        for track in self.catalog.tracks.values():
            isrc = track.isrc.upper()
            if isrc in self._canonical:
                continue
            self._canonical[isrc] = track.id
            album = self.catalog.albums[track.album_id]
            artists = self.catalog.track_artists(track)
            title = re.sub(r" \(feat\. [^)]*\)$", "", track.name)
            version_tags: list[str] = []
            optional_tags: list[str] = []
            for suffix, tags in VERSION_SUFFIXES.items():
                if title.endswith(suffix):
                    title, version_tags = title[: -len(suffix)], tags
            for suffix, tags in SAME_RECORDING_SUFFIXES.items():
                if title.endswith(suffix):
                    title, optional_tags = title[: -len(suffix)], tags
            recordings[track.id] = _Recording(
                track, album, artists[0].name, [a.name for a in artists[1:]], title, version_tags,
                optional_tags, round(track.duration_ms / 1000), album.release_date[:4],
            )
        for track in self.catalog.tracks.values():  # aliases (same ISRC) point at the canonical track
            self._canonical.setdefault(track.isrc.upper(), track.id)
        return recordings

    def _assign_scenarios(self, recordings: dict[str, _Recording]) -> None:
        """About 6 % of recordings have no correct file and 3 % only locked ones; the acquisition
        playlist always holds two of the first kind and one of the second."""
        def order(track_id: str) -> float:
            return random.Random(f"{self.seed}:scenario:{track_id}").random()

        for track_id in recordings:
            roll = order(track_id)
            self.scenarios[track_id] = "no_correct_file" if roll < 0.06 else "locked_only" if roll < 0.09 else "normal"
        playlist = self.catalog.playlists.get(self.catalog.acquisition_playlist_id)
        if playlist is None:
            return
        wanted = sorted({self.canonical_track_id(t.id) for t in self.catalog.playlist_tracks(playlist)}, key=order)
        special = [t for t in wanted if self.scenarios[t] != "normal"]
        for track_id in wanted[:3]:
            if len(special) >= 3:
                break
            if track_id not in special:
                special.append(track_id)
        for track_id in special:
            self.scenarios[track_id] = "normal"
        for index, track_id in enumerate(special[:3]):
            self.scenarios[track_id] = "locked_only" if index == 2 else "no_correct_file"

    # -- generation: files ----------------------------------------------------------------------
    def _add(self, peer: Peer, shared: SharedFile, *, attributes: dict[str, Any] | None = None) -> None:
        if (peer.username, shared.filename) in self._files:
            return  # two generators produced the same path on one peer: keep the first
        if peer.sends_attributes and attributes:
            shared.attributes = attributes
        shared.extension_field = shared.extension if peer.sends_extension else ""
        (peer.locked_files if shared.locked else peer.files).append(shared)
        self._files[(peer.username, shared.filename)] = shared

    def _audio(
        self, peer: Peer, path: str, quality_name: str, duration_s: int, kind: str, track_id: str | None,
        rng: random.Random, *, imitates: str | None = None, locked: bool = False, advertise: bool = True,
    ) -> None:
        quality = QUALITIES[quality_name]
        bit_rate = rng.randint(*quality.bit_rate)
        size = bit_rate * 125 * duration_s + rng.randint(2_000, 60_000)
        attributes: dict[str, Any] = {"bitRate": bit_rate, "sampleRate": quality.sample_rate, "length": duration_s}
        if quality.bit_depth:
            attributes["bitDepth"] = quality.bit_depth
        attributes["isVariableBitRate"] = quality.vbr
        shared = SharedFile(f"{path}.{quality.extension}", size, duration_s, kind, track_id, imitates or track_id,
                            locked=locked)
        self._add(peer, shared, attributes=attributes if advertise else None)

    def _non_audio(
        self, peer: Peer, path: str, extension: str, rng: random.Random, imitates: str | None = None
    ) -> None:
        low, high = NON_AUDIO_SIZES[extension]
        self._add(peer, SharedFile(f"{path}.{extension}", rng.randint(low, high), 0, "non_audio", None, imitates))

    def _quality(self, rng: random.Random) -> str:
        return rng.choices(list(QUALITY_WEIGHTS), weights=list(QUALITY_WEIGHTS.values()))[0]

    def _title(self, recording: _Recording, rng: random.Random, *, featured: bool = True) -> str:
        """How one copy spells the title: version tag always, remaster tag and featuring sometimes."""
        title = recording.base_title
        if recording.version_tags:
            title += " " + rng.choice(recording.version_tags)
        elif recording.optional_tags and rng.random() < 0.4:
            title += " " + rng.choice(recording.optional_tags)
        if featured and recording.featured and rng.random() < 0.6:
            title += f" ({rng.choice(['feat.', 'ft.', 'featuring'])} {', '.join(recording.featured)})"
        return windows_safe(title, rng)

    def _jitter(self, recording: _Recording, rng: random.Random) -> int:
        return recording.duration_s + rng.choice([-1, 0, 0, 0, 1])

    def _share_album_folders(self, album: Album, recordings: dict[str, _Recording]) -> None:
        rng = random.Random(f"{self.seed}:album:{album.id}")
        copies = rng.choice([0, 1, 1]) if album.album_type == "single" else rng.choice([1, 2, 2, 3])
        artist_name = self.catalog.album_artists(album)[0].name
        year = album.release_date[:4]
        for peer in rng.sample(list(self.peers.values()), copies):
            artist = windows_safe(artist_spelling(artist_name, rng), rng)
            name = windows_safe(album.name, rng)
            quality = self._quality(rng)
            label = "FLAC" if QUALITIES[quality].extension == "flac" else "MP3"
            style = rng.choice(["year_album", "album_year_format", "az", "scene", "numbered_artist", "discography"])
            folder = {
                "year_album": f"{peer.root}\\{artist}\\{year} - {name}",
                "album_year_format": f"{peer.root}\\{artist} - {name} ({year}) [{label}]",
                "az": f"{peer.root}\\{strip_diacritics(artist)[:1].upper() or '#'}\\{artist}\\{name} ({year})",
                "scene": f"{peer.root}\\{scene_name(artist)}-{scene_name(name)}-WEB-{year}-{rng.choice(GROUPS)}",
                "numbered_artist": f"{peer.root}\\{artist}\\{name}",
                "discography": f"{peer.root}\\{artist} Discography\\({year}) {name}",
            }[style]
            folder = folder.lstrip("\\")
            for track_id in album.track_ids:
                track = self.catalog.tracks[track_id]
                canonical = self.canonical_track_id(track_id)
                if self.scenarios[canonical] != "normal":
                    continue  # recordings without a correct copy are missing from every folder
                recording = recordings[canonical]
                title = self._title(recording, rng)
                number = f"{track.track_number:02d}"
                disc_folder = folder
                if album.disc_count > 1:
                    disc_folder += f"\\{rng.choice(['CD', 'Disc '])}{track.disc_number}"
                if album.disc_count > 1:
                    number = f"{track.disc_number}-{number}"
                file_name = {
                    "scene": f"{number}-{scene_name(artist).lower()}-{scene_name(title).lower()}",
                    "numbered_artist": f"{number} {artist} - {title}",
                    "discography": f"{number}. {title}",
                }.get(style, f"{number} - {title}")
                self._audio(peer, f"{disc_folder}\\{file_name}", quality, self._jitter(recording, rng), "target",
                            canonical, rng)
            extras = ["jpg"] + (["cue", "log"] if label == "FLAC" else [])
            extras += ["nfo", "sfv"] if style == "scene" else []
            for extension in extras:
                stem = rng.choice(["cover", "folder"]) if extension == "jpg" else f"{artist} - {name}"
                self._non_audio(peer, f"{folder}\\{stem}", extension, rng)

    def _share_track_copies(self, recording: _Recording) -> None:
        canonical = recording.track.id
        rng = random.Random(f"{self.seed}:track:{canonical}")
        scenario = self.scenarios[canonical]
        peers = list(self.peers.values())
        if scenario == "normal":
            for _ in range(rng.randint(1, 3)):
                self._loose_copy(rng.choice(peers), recording, self._quality(rng), "target", rng)
            if rng.random() < 0.3:
                self._loose_copy(rng.choice(peers), recording, "mp3_96", "target:low_bitrate", rng)
            if rng.random() < 0.25:
                self._loose_copy(rng.choice(peers), recording, self._quality(rng), "target:no_attributes", rng,
                                 advertise=False)
            if rng.random() < 0.3 and self._busy_peers():
                self._loose_copy(rng.choice(self._busy_peers()), recording, self._quality(rng), "target:busy", rng)
            if rng.random() < 0.25:
                self._loose_copy(rng.choice(peers), recording, self._quality(rng), "locked", rng, locked=True)
            if rng.random() < 0.15:
                self._hostile_copy(rng.choice(peers), recording, rng)
            if rng.random() < 0.3:
                self._non_audio_named(rng.choice(peers), recording, rng)
            decoys = rng.sample(self._decoy_kinds(recording), rng.randint(2, 5))
        elif scenario == "locked_only":
            for _ in range(rng.randint(1, 2)):
                self._loose_copy(rng.choice(peers), recording, self._quality(rng), "locked", rng, locked=True)
            decoys = rng.sample(self._decoy_kinds(recording), rng.randint(0, 2))
        else:
            flavour = rng.choice(
                ["versions", "wrong_duration", "other_artist", "hostile", "non_audio", "empty", "mixed"]
            )
            decoys = {
                "versions": rng.sample(self._decoy_kinds(recording, versions_only=True), 3),
                "wrong_duration": ["wrong_duration", "wrong_duration"],
                "other_artist": ["cover", "same_title"],
                "mixed": ["wrong_duration", "live", "cover"],
            }.get(flavour, [])
            if flavour in ("hostile", "mixed"):
                self._hostile_copy(rng.choice(peers), recording, rng)
            if flavour in ("non_audio", "mixed"):
                self._non_audio_named(rng.choice(peers), recording, rng)
            if flavour == "mixed":
                self._loose_copy(rng.choice(peers), recording, self._quality(rng), "locked", rng, locked=True)
        for kind in decoys:
            self._decoy(rng.choice(peers), recording, kind, rng)

    def _loose_copy(
        self, peer: Peer, recording: _Recording, quality: str, kind: str, rng: random.Random, *,
        locked: bool = False, advertise: bool = True,
    ) -> None:
        artist = windows_safe(artist_spelling(recording.artist, rng), rng)
        if recording.featured and rng.random() < 0.3:
            artist += f" feat. {windows_safe(recording.featured[0], rng)}"
        title = self._title(recording, rng)
        album = windows_safe(recording.album.name, rng)
        number = f"{recording.track.track_number:02d}"
        style = rng.choice(["artist_title", "singles", "bare", "va", "discography", "multi_disc", "scene"])
        path = {
            "artist_title": f"{peer.root}\\{artist} - {title}",
            "singles": f"{peer.root}\\Singles\\{recording.year}\\{artist} - {title}",
            "bare": f"{peer.root}\\{artist}\\{title}",
            "va": f"{peer.root}\\Compilations\\VA - {rng.choice(['Summer Hits', 'Indie Essentials', 'Now Playing'])} "
                  f"({rng.randint(2000, 2026)})\\{rng.randint(1, 30):02d}. {artist} - {title}",
            "discography": f"{peer.root}\\Downloads\\complete\\{artist} Discography"
                           f"\\({recording.year}) {album}\\{number}. {title}",
            "multi_disc": f"{peer.root}\\{artist}\\{album} (Deluxe Edition)\\CD1\\1-{number} {title}",
            "scene": f"{peer.root}\\{scene_name(artist)}-{scene_name(title)}-WEB-{recording.year}-{rng.choice(GROUPS)}"
                     f"\\01-{scene_name(artist).lower()}-{scene_name(title).lower()}",
        }[style].lstrip("\\")
        duration = self._jitter(recording, rng)
        self._audio(peer, path, quality, duration, kind, recording.track.id, rng, locked=locked, advertise=advertise)

    def _hostile_copy(self, peer: Peer, recording: _Recording, rng: random.Random) -> None:
        name = f"{windows_safe(recording.artist, rng)} - {self._title(recording, rng)}"
        path = rng.choice(
            [f"..\\..\\{name}", f"{peer.root}\\..\\..\\..\\{name}", f"{peer.root}\\{name}\\..\\..\\{name}"]
        )
        self._audio(peer, path.lstrip("\\"), self._quality(rng), self._jitter(recording, rng), "hostile", None, rng,
                    imitates=recording.track.id)

    def _non_audio_named(self, peer: Peer, recording: _Recording, rng: random.Random) -> None:
        name = f"{windows_safe(recording.artist, rng)} - {self._title(recording, rng, featured=False)}"
        self._non_audio(peer, f"{peer.root}\\{name}".lstrip("\\"), rng.choice(["nfo", "txt", "jpg", "cue", "m3u"]), rng,
                         recording.track.id)

    def _decoy_kinds(self, recording: _Recording, *, versions_only: bool = False) -> list[str]:
        versions = ["live", "live_folder", "remix", "radio_edit", "instrumental", "karaoke", "acoustic", "demo"]
        if recording.version_tags:
            # The wanted track is a version: the original studio recording is the decoy, and the
            # wanted kind of version is not one.
            versions = [v for v in versions if not any(v.split("_")[0] in t.lower() for t in recording.version_tags)]
            versions.append("original")
        if versions_only:
            return versions
        return versions + ["cover", "same_title", "wrong_duration", "reprise"]

    def _decoy(self, peer: Peer, recording: _Recording, kind: str, rng: random.Random) -> None:
        artist = windows_safe(artist_spelling(recording.artist, rng), rng)
        base = windows_safe(recording.base_title, rng)
        title = self._title(recording, rng, featured=False)
        duration = recording.duration_s
        root = peer.root
        year = recording.year
        other = rng.choice(DECOY_ARTISTS)
        path, length = {
            "live": (f"{root}\\{artist} - {base} {rng.choice(['(Live)', '[Live]', '(Live at Wembley)'])}",
                     duration + rng.choice([0, rng.randint(5, 40)])),
            "live_folder": (f"{root}\\{artist} - Live ({year})\\{rng.randint(1, 14):02d} - {base}",
                            duration + rng.choice([0, rng.randint(-20, 40)])),
            "remix": (f"{root}\\{artist} - {base} {rng.choice(REMIX_TAGS)}", duration + rng.randint(60, 200)),
            "radio_edit": (f"{root}\\{artist} - {base} {rng.choice(['(Radio Edit)', '(Single Edit)', '(Edit)'])}",
                           max(60, duration - rng.randint(15, 60))),
            "instrumental": (f"{root}\\{artist} - {base} (Instrumental)", duration + rng.choice([-1, 0, 1])),
            "karaoke": (f"{root}\\Karaoke Hits Vol. {rng.randint(1, 9)}\\{artist} - {base} "
                        f"{rng.choice(['(Karaoke Version)', '[Karaoke]'])}", duration + rng.choice([-1, 0, 1])),
            "acoustic": (f"{root}\\{artist} - {base} {rng.choice(['(Acoustic)', '(Acoustic Version)', '(Unplugged)'])}",
                         duration + rng.choice([-1, 1]) * rng.randint(12, 40)),
            "demo": (f"{root}\\{artist}\\Demos\\{base} (Demo)", duration + rng.randint(-40, 40)),
            "original": (f"{root}\\{artist} - {base}", duration + rng.choice([-1, 1]) * rng.randint(15, 60)),
            "cover": (f"{root}\\{other} - {base} {rng.choice([f'({artist} cover)', f'(Originally by {artist})', ''])}"
                      if rng.random() < 0.5 else f"{root}\\Tribute to {artist}\\{other} - {base}",
                      rng.randint(150, 330)),
            "same_title": (f"{root}\\Similar to {artist}\\{other} - {base}", rng.randint(150, 330)),
            "wrong_duration": (f"{root}\\{artist} - {title}", rng.choice([
                duration + rng.choice([-1, 1]) * rng.randint(15, 90), rng.randint(30, 60)])),
            "reprise": (f"{root}\\{artist}\\{windows_safe(recording.album.name, rng)}\\{base} (Reprise)",
                        rng.randint(60, 120)),
        }[kind]
        if abs(length - duration) <= 10 and kind in ("original", "wrong_duration", "radio_edit"):
            length = duration + 30  # these decoys are defined by a length more than 10 s off
        self._audio(peer, path.lstrip("\\"), self._quality(rng), max(20, length), f"decoy:{kind}", None, rng,
                    imitates=recording.track.id)
