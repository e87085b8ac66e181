"""Every environment variable of the configuration contract (design.md §4), parsed and validated once.

An invalid value stops loading with a message naming the variable and the form it expects. Secrets are
kept on the settings object for the resources and never appear in `describe()` or in `repr()`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

DEFAULT_PATH_TEMPLATE = "{albumartist}/{album}/{disc_prefix}{track:02d} - {title}"
TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off", ""}


class SettingsError(ValueError):
    """A configuration value is missing or malformed; the message names the variable."""


@dataclass(frozen=True)
class SearchLimit:
    searches: int
    window_seconds: int

    def __str__(self) -> str:
        return f"{self.searches}/{self.window_seconds}"


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    duckdb_path: Path
    library_dir: Path
    inbox_dir: Path
    path_template: str
    playlists: tuple[str, ...]
    watchlist: tuple[str, ...]
    spotify_redirect_uri: str
    spotify_auth_url: str
    spotify_api_url: str
    spotify_token_url: str
    slskd_url: str
    slskd_downloads_dir: Path | None
    slskd_remote_downloads_dir: str | None
    lrclib_url: str
    musicbrainz_url: str
    coverart_url: str
    enable_artwork: bool
    enable_lyrics: bool
    artwork_max_bytes: int
    artwork_min_edge: int
    disable_workers: bool
    retry_max_attempts: int
    retry_base_seconds: float
    retry_jitter_pct: float
    watchlist_interval: int
    sensor_interval_seconds: int
    slskd_search_limit: SearchLimit
    acoustid_url: str = "https://api.acoustid.org"
    extra_library_dirs: tuple[Path, ...] = ()  # scanned, never written
    playlist_dir: Path | None = None  # the .m3u8 files; None: <library>/Playlists
    quality: str | None = None  # HARMONY_QUALITY, normalised (harmony_pipeline/library/quality.py)
    # Secrets: excluded from repr and from describe().
    spotify_client_id: str | None = field(default=None, repr=False)
    spotify_client_secret: str | None = field(default=None, repr=False)
    spotify_refresh_token: str | None = field(default=None, repr=False)
    slskd_api_key: str | None = field(default=None, repr=False)
    acoustid_api_key: str | None = field(default=None, repr=False)

    SECRET_FIELDS = frozenset(
        {"spotify_client_id", "spotify_client_secret", "spotify_refresh_token", "slskd_api_key", "acoustid_api_key"}
    )

    @property
    def token_cache_path(self) -> Path:
        return self.data_dir / "spotify_token.json"

    @property
    def artwork_cache_dir(self) -> Path:
        return self.data_dir / "artwork"

    @property
    def playlist_files_dir(self) -> Path:
        return self.playlist_dir or self.library_dir / "Playlists"

    @property
    def quarantine_dir(self) -> Path:
        return self.data_dir / "quarantine"

    def describe(self) -> dict[str, str]:
        """Non-secret settings as strings, for logs and `harmony status`."""
        return {
            f.name: str(getattr(self, f.name))
            for f in fields(self)
            if f.name not in self.SECRET_FIELDS
        }


def _text(env: Mapping[str, str], name: str, default: str | None = None) -> str | None:
    value = env.get(name)
    if value is None or value.strip() == "":
        return default
    return value.strip()


def _bool(env: Mapping[str, str], name: str, default: bool = False) -> bool:
    raw = env.get(name)
    if raw is None:
        return default
    word = raw.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise SettingsError(f"{name}={raw!r}: expected a boolean (1/0, true/false, yes/no, on/off)")


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = _text(env, name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r}: expected a whole number") from None
    if value < minimum:
        raise SettingsError(f"{name}={raw!r}: expected a whole number >= {minimum}")
    return value


def _float(env: Mapping[str, str], name: str, default: float, minimum: float = 0.0) -> float:
    raw = _text(env, name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r}: expected a number") from None
    if value < minimum:
        raise SettingsError(f"{name}={raw!r}: expected a number >= {minimum}")
    return value


def _jitter(env: Mapping[str, str], name: str, default: float) -> float:
    value = _float(env, name, default)
    if value <= 1:
        return value
    if value <= 100:  # "20" is read as a percentage, as the original backend did
        return value / 100
    raise SettingsError(f"{name}={value}: expected a fraction (0.2) or a percentage (20) of jitter")


def _url(env: Mapping[str, str], name: str, default: str) -> str:
    value = _text(env, name, default)
    assert value is not None
    if not re.match(r"^https?://[^/\s]+", value):
        raise SettingsError(f"{name}={value!r}: expected an http:// or https:// URL")
    return value


def _search_limit(env: Mapping[str, str], name: str, default: str) -> SearchLimit:
    raw = _text(env, name, default)
    assert raw is not None
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", raw)
    if not match or int(match.group(1)) < 1 or int(match.group(2)) < 1:
        raise SettingsError(f"{name}={raw!r}: expected SEARCHES/SECONDS, e.g. 34/220")
    return SearchLimit(int(match.group(1)), int(match.group(2)))


def _id_list(env: Mapping[str, str], name: str, kind: str) -> tuple[str, ...]:
    from harmony_pipeline.spotify.ids import parse_spotify_id

    raw = _text(env, name, "") or ""
    ids: list[str] = []
    for part in raw.split(","):
        if not part.strip():
            continue
        try:
            if kind == "playlist" and part.strip().lower() == "liked":
                spotify_id = "liked"  # the user's Liked Songs (/me/tracks)
            else:
                spotify_id = parse_spotify_id(part.strip(), kind)
        except ValueError as error:
            raise SettingsError(f"{name}: {error}") from None
        if spotify_id not in ids:
            ids.append(spotify_id)
    return tuple(ids)


def _path_template(env: Mapping[str, str], name: str) -> str:
    from harmony_pipeline.library.paths import validate_template

    template = _text(env, name, DEFAULT_PATH_TEMPLATE)
    assert template is not None
    try:
        validate_template(template)
    except ValueError as error:
        raise SettingsError(f"{name}={template!r}: {error}") from None
    return template


def _folder_list(env: Mapping[str, str], name: str, library: Path) -> tuple[Path, ...]:
    """Absolute folders separated by ':' (as in PATH); each an existing folder apart from the library."""
    raw = _text(env, name, "") or ""
    folders: list[Path] = []
    for part in raw.split(os.pathsep):
        if not part.strip():
            continue
        folder = Path(part.strip()).expanduser().absolute()
        if not folder.is_dir():
            raise SettingsError(f"{name}: {part.strip()!r} is not a folder (list folders separated by '{os.pathsep}')")
        if folder.is_relative_to(library) or library.is_relative_to(folder):
            raise SettingsError(f"{name}: {part.strip()!r} overlaps HARMONY_LIBRARY_DIR ({library}); "
                                "list only folders outside it")
        if folder not in folders:
            folders.append(folder)
    return tuple(folders)


def _quality(env: Mapping[str, str], name: str) -> str | None:
    from harmony_pipeline.library.quality import parse_quality

    raw = _text(env, name)
    if raw is None:
        return None
    try:
        return str(parse_quality(raw))
    except ValueError as error:
        raise SettingsError(f"{name}={raw!r}: {error} (e.g. flac>mp3:320>mp3:256;min_bitrate=192)") from None


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read and validate the whole configuration; raises SettingsError naming the bad variable."""
    env = os.environ if env is None else env
    data_dir = Path(_text(env, "HARMONY_DATA_DIR", "./.harmony") or "./.harmony").expanduser().absolute()
    downloads = _text(env, "SLSKD_DOWNLOADS_DIR")
    playlist_dir = _text(env, "HARMONY_PLAYLIST_DIR")
    library_dir = Path(_text(env, "HARMONY_LIBRARY_DIR", "./library") or "").expanduser().absolute()
    return Settings(
        data_dir=data_dir,
        duckdb_path=Path(_text(env, "HARMONY_DUCKDB_PATH", str(data_dir / "harmony.duckdb")) or "")
        .expanduser()
        .absolute(),
        library_dir=library_dir,
        inbox_dir=Path(_text(env, "HARMONY_INBOX_DIR", str(data_dir / "inbox")) or "").expanduser().absolute(),
        path_template=_path_template(env, "HARMONY_PATH_TEMPLATE"),
        playlists=_id_list(env, "HARMONY_PLAYLISTS", "playlist"),
        watchlist=_id_list(env, "HARMONY_WATCHLIST", "artist"),
        spotify_redirect_uri=_url(env, "SPOTIFY_REDIRECT_URI", "http://127.0.0.1:8888/callback"),
        spotify_auth_url=_url(env, "SPOTIFY_AUTH_URL", "https://accounts.spotify.com/authorize"),
        spotify_api_url=_url(env, "SPOTIFY_API_URL", "https://api.spotify.com/v1/"),
        spotify_token_url=_url(env, "SPOTIFY_TOKEN_URL", "https://accounts.spotify.com/api/token"),
        slskd_url=_url(env, "SLSKD_URL", "http://localhost:5030"),
        slskd_downloads_dir=Path(downloads).expanduser().absolute() if downloads else None,
        slskd_remote_downloads_dir=_text(
            env, "SLSKD_REMOTE_DOWNLOADS_DIR", str(Path(downloads).expanduser().absolute()) if downloads else None),
        lrclib_url=_url(env, "LRCLIB_URL", "https://lrclib.net"),
        musicbrainz_url=_url(env, "MUSICBRAINZ_URL", "https://musicbrainz.org"),
        coverart_url=_url(env, "COVERART_URL", "https://coverartarchive.org"),
        enable_artwork=_bool(env, "ENABLE_ARTWORK"),
        enable_lyrics=_bool(env, "ENABLE_LYRICS"),
        artwork_max_bytes=_int(env, "ARTWORK_MAX_BYTES", 10_485_760, minimum=1024),
        artwork_min_edge=_int(env, "ARTWORK_MIN_EDGE", 1000, minimum=1),
        disable_workers=_bool(env, "HARMONY_DISABLE_WORKERS"),
        retry_max_attempts=_int(env, "RETRY_MAX_ATTEMPTS", 10, minimum=1),
        retry_base_seconds=_float(env, "RETRY_BASE_SECONDS", 60.0, minimum=0.001),
        retry_jitter_pct=_jitter(env, "RETRY_JITTER_PCT", 0.2),
        watchlist_interval=_int(env, "WATCHLIST_INTERVAL", 86_400, minimum=1),
        sensor_interval_seconds=_int(env, "HARMONY_SENSOR_INTERVAL_SECONDS", 60, minimum=1),
        slskd_search_limit=_search_limit(env, "SLSKD_SEARCH_LIMIT", "34/220"),
        acoustid_url=_url(env, "ACOUSTID_URL", "https://api.acoustid.org"),
        extra_library_dirs=_folder_list(env, "HARMONY_EXTRA_LIBRARY_DIRS", library_dir),
        playlist_dir=Path(playlist_dir).expanduser().absolute() if playlist_dir else None,
        quality=_quality(env, "HARMONY_QUALITY"),
        spotify_client_id=_text(env, "SPOTIFY_CLIENT_ID"),
        spotify_client_secret=_text(env, "SPOTIFY_CLIENT_SECRET"),
        spotify_refresh_token=_text(env, "SPOTIFY_REFRESH_TOKEN"),
        slskd_api_key=_text(env, "SLSKD_API_KEY"),
        acoustid_api_key=_text(env, "ACOUSTID_API_KEY"),
    )
