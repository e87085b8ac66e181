"""`harmony watch add|remove|set|list`: manage the watchlist (artists checked for new releases).

    harmony watch add spotify:artist:ID [--with-discography] [--priority N] [--pause]
    harmony watch set ARTIST [--priority N] [--pause | --resume]
    harmony watch remove ARTIST
    harmony watch list [--json]

ARTIST is an id, URI or open.spotify.com URL; `set` and `remove` also take the name `watch list` shows
(a name several watched artists share is refused, listing them). `add` asks Spotify for the artist first (one GET
/artists/{id}), so a mistyped id is refused instead of failing every check.
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime

from harmony_pipeline import storage
from harmony_pipeline.watchlist import releases as rules
from harmony_pipeline.settings import Settings
from harmony_pipeline.spotify.ids import parse_spotify_id


def _command_error(message: str) -> Exception:
    from harmony_pipeline.cli.errors import CommandError

    return CommandError(message)


def _artist_id(text: str) -> str:
    try:
        return parse_spotify_id(text, "artist")
    except ValueError as error:
        raise _command_error(str(error)) from None


def _spotify(settings: Settings):
    from harmony_pipeline.spotify.client import SpotifyConnection  # spotipy only when Spotify is asked

    return SpotifyConnection.from_settings(settings)


def _label(row: dict) -> str:
    return f"{row['name'] or '?'} ({row['artist_id']})"


def _echo(args: argparse.Namespace, text: str) -> None:
    if not args.quiet:
        print(text)


def cmd_add(args: argparse.Namespace, settings: Settings) -> int:
    from harmony_pipeline.spotify.client import SpotifyError, SpotifyNotFound

    artist_id = _artist_id(args.artist)
    with storage.connect(settings.duckdb_path) as conn, storage.transaction(conn):
        rules.sync_env_artists(conn, settings.watchlist, storage.utcnow())
        existing = rules.get_artist(conn, artist_id)
    if existing:
        origin = "from HARMONY_WATCHLIST" if existing["source"] == "env" else \
            f"since {existing['added_at']:%Y-%m-%d}"
        raise _command_error(f"{_label(existing)} is already watched ({origin})")
    try:
        artist = _spotify(settings).get_api().artist(artist_id)
    except SpotifyNotFound:
        raise _command_error(f"unknown artist: Spotify has no artist {artist_id}") from None
    except SpotifyError as error:
        raise _command_error(f"could not look the artist up on Spotify: {error}") from None
    with storage.connect(settings.duckdb_path) as conn, storage.transaction(conn):
        if rules.get_artist(conn, artist_id):
            raise _command_error(f"{artist.get('name')} ({artist_id}) is already watched")
        rules.insert_artist(conn, artist_id, name=artist.get("name"), source="cli", now=storage.utcnow(),
                            priority=args.priority, paused=args.pause, with_discography=args.with_discography)
        storage.record_activity(conn, "watchlist_artist_added", {
            "artist": artist.get("name"), "artist_id": artist_id, "with_discography": args.with_discography})
    first_check = "its back catalogue will be acquired" if args.with_discography else \
        "its existing releases are recorded as known at the first check"
    _echo(args, f"watching {artist.get('name')} ({artist_id}), priority {args.priority}"
                f"{', paused' if args.pause else ''}: {first_check}")
    return 0


def _watched_artist(conn, settings: Settings, text: str) -> dict:
    """The watched artist named by an id, URI, URL or its name (env artists synced first), or a one-line
    error when it is not watched or the name fits several."""
    from harmony_pipeline.cli.listing import Ambiguous, find_by_name

    rules.sync_env_artists(conn, settings.watchlist, storage.utcnow())
    try:
        row = rules.get_artist(conn, parse_spotify_id(text, "artist"))
    except ValueError:
        row = None
    if row is None:
        try:
            row = find_by_name(text, rules.load_artists(conn), "artist_id", ["name"])
        except Ambiguous as error:
            raise _command_error(str(error)) from None
    if row is None:
        raise _command_error(f"{text} is not on the watchlist (see `harmony watch list`)")
    return row


def cmd_set(args: argparse.Namespace, settings: Settings) -> int:
    if args.priority is None and args.paused is None:
        raise _command_error("nothing to change: give --priority N, --pause or --resume")
    with storage.connect(settings.duckdb_path) as conn, storage.transaction(conn):
        artist_id = _watched_artist(conn, settings, args.artist)["artist_id"]
        if args.priority is not None:
            conn.execute("UPDATE watchlist_artists SET priority = ? WHERE artist_id = ?", [args.priority, artist_id])
        if args.paused is not None:
            conn.execute("UPDATE watchlist_artists SET paused = ? WHERE artist_id = ?", [args.paused, artist_id])
        row = rules.get_artist(conn, artist_id)
    _echo(args, f"{_label(row)}: priority {row['priority']}, {'paused' if row['paused'] else 'active'}")
    return 0


def cmd_remove(args: argparse.Namespace, settings: Settings) -> int:
    with storage.connect(settings.duckdb_path) as conn, storage.transaction(conn):
        row = _watched_artist(conn, settings, args.artist)
        artist_id = row["artist_id"]
        if row["source"] == "env":
            raise _command_error(f"{_label(row)} comes from HARMONY_WATCHLIST; remove it there")
        rules.remove_artist(conn, artist_id)
        storage.record_activity(conn, "watchlist_artist_removed", {"artist": row["name"], "artist_id": artist_id})
    _echo(args, f"no longer watching {_label(row)}")
    return 0


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    with storage.connect(settings.duckdb_path) as conn, storage.transaction(conn):
        rules.sync_env_artists(conn, settings.watchlist, storage.utcnow())
        artists = rules.load_artists(conn)
        counts = dict(conn.execute(
            "SELECT artist_id, count(*) FILTER (WHERE is_new) FROM artist_releases GROUP BY artist_id").fetchall())
    if args.json:
        print(json.dumps([{**a, "new_releases": counts.get(a["artist_id"], 0)} for a in artists], default=str,
                         ensure_ascii=False, indent=2))
        return 0
    if not artists:
        _echo(args, "the watchlist is empty: `harmony watch add ARTIST`")
        return 0
    from harmony_pipeline.cli.listing import print_rows

    print_rows(["artist", "id", "source", "priority", "state", "last check", "next due", "new", "last error"],
               [(a["name"] or "?", a["artist_id"], a["source"], a["priority"], "paused" if a["paused"] else "active",
                 _when(a["last_checked_at"]), "-" if a["paused"] else _when(a["next_due_at"], "now"),
                 counts.get(a["artist_id"], 0), a["last_error"] or "") for a in artists],
               no_wrap=["id"])
    return 0


def _when(value: datetime | None, missing: str = "never") -> str:
    return f"{value:%Y-%m-%d %H:%M}" if value else missing


def register_cli(subparsers: argparse._SubParsersAction) -> None:
    watch = subparsers.add_parser("watch", help="manage the watchlist: artists checked for new releases")
    actions = watch.add_subparsers(dest="watch_command", metavar="ACTION", required=True)

    add = actions.add_parser("add", help="watch an artist (id, URI or URL)")
    add.add_argument("artist")
    add.add_argument("--with-discography", action="store_true",
                     help="also acquire the releases that exist now (default: only releases that appear later)")
    add.add_argument("--priority", type=int, default=0, help="higher is checked first (default 0)")
    add.add_argument("--pause", action="store_true", help="add it paused (not checked until resumed)")
    add.set_defaults(handler=cmd_add, needs_settings=True)

    change = actions.add_parser("set", help="change an artist's priority or pause it")
    change.add_argument("artist", help="id, URI, URL or the name `watch list` shows")
    change.add_argument("--priority", type=int, default=None)
    state = change.add_mutually_exclusive_group()
    state.add_argument("--pause", dest="paused", action="store_const", const=True, default=None)
    state.add_argument("--resume", dest="paused", action="store_const", const=False)
    change.set_defaults(handler=cmd_set, needs_settings=True)

    remove = actions.add_parser("remove", help="stop watching an artist (its releases are forgotten)")
    remove.add_argument("artist", help="id, URI, URL or the name `watch list` shows")
    remove.set_defaults(handler=cmd_remove, needs_settings=True)

    listing = actions.add_parser("list", help="watched artists with their last and next check")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(handler=cmd_list, needs_settings=True)
