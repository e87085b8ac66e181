"""The `harmony` command. Each subcommand is a thin shell over plain functions; bad input exits
non-zero with a one-line reason (2 for usage and configuration errors). One error path for every
command: what a command lets escape (a locked or damaged database, a file that cannot be read) is
turned into one line and exit code 2 here (harmony_pipeline.cli.errors)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from harmony_pipeline.cli.errors import FAILURE_EXIT_CODE, CommandError, one_line
from harmony_pipeline.settings import Settings, SettingsError, load_settings


EXAMPLES = """examples:
  harmony spotify login                      authorise your Spotify account (PKCE, loopback redirect)
  harmony ingest my-list.txt exportify.csv   queue tracks from text, CSV or JSON files
  cat list.txt | harmony ingest -            the same from standard input
  harmony watch add spotify:artist:ID        watch an artist for new releases
  harmony watch add --with-discography URL   … and acquire the back catalogue too
  harmony watch list                         the watched artists
  harmony status                             workers, queues, recent activity, last materializations
  harmony status --json || alert             one JSON object; exit 1 when a worker is stale or a download dead-lettered
  harmony dead-letter list                   dead-lettered downloads with their last error
  harmony dead-letter requeue --all          try them again
  harmony library scan                       find the music already in the library folders
  harmony sandbox                            start the offline emulators and print their environment
  harmony --demo status                      the same commands against the running `make demo`
"""


def _cmd_sandbox(args: argparse.Namespace, settings: Settings | None) -> int:
    from harmony_pipeline.sandbox import run_forever

    root = Path(args.root).absolute()
    run_forever(root, port_base=args.port_base, env_file=Path(args.env_file) if args.env_file else None)
    return 0


def _cmd_spotify_login(args: argparse.Namespace, settings: Settings | None) -> int:
    from harmony_pipeline.spotify.login import login

    assert settings is not None
    login(settings, open_browser=not args.no_browser, echo=print)
    return 0


def _use_demo() -> None:
    from harmony_pipeline.demo import DemoError, use_demo_environment

    try:
        use_demo_environment()
    except DemoError as error:
        raise CommandError(str(error), code=2) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="harmony",
        description="Harmony Pipeline: music acquisition and library enrichment on Dagster + DuckDB.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quiet", "-q", action="store_true", help="print only results and errors")
    parser.add_argument("--demo", action="store_true",
                        help="act on the running `make demo` (its .demo/env: instance, database, sandbox)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    spotify = commands.add_parser("spotify", help="Spotify account: `harmony spotify login`")
    spotify_commands = spotify.add_subparsers(dest="spotify_command", metavar="ACTION", required=True)
    login = spotify_commands.add_parser("login", help="authorization code + PKCE on the loopback redirect")
    login.add_argument("--no-browser", action="store_true", help="only print the URL to open")
    login.set_defaults(handler=_cmd_spotify_login, needs_settings=True)

    sandbox = commands.add_parser("sandbox", help="start the offline emulators; prints their environment")
    sandbox.add_argument("--root", default=".harmony/sandbox", help="folder for the sandbox's files")
    sandbox.add_argument("--port-base", type=int, default=None, help="fixed ports from this number on")
    sandbox.add_argument("--env-file", default=None, help="also write the environment to this file")
    sandbox.set_defaults(handler=_cmd_sandbox, needs_settings=False)

    for register in _extra_commands():
        register(commands)
    return parser


def _extra_commands() -> list[Callable[[argparse._SubParsersAction], None]]:
    """Subcommands defined next to the code they drive (ingest, watch, status, dead-letter)."""
    from harmony_pipeline import status
    from harmony_pipeline.cli import dead_letter, ingest as ingest_cli, library as library_cli, watch as watch_cli

    return [ingest_cli.register_cli, watch_cli.register_cli, status.register_cli, dead_letter.register_cli,
            library_cli.register_cli]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        if args.demo:
            _use_demo()
        settings = load_settings() if args.needs_settings else None
        return int(args.handler(args, settings) or 0)
    except SettingsError as error:
        print(f"harmony: configuration error: {error}", file=sys.stderr)
        return 2
    except CommandError as error:
        print(f"harmony: {error}", file=sys.stderr)
        return error.code
    except KeyboardInterrupt:
        print("harmony: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `harmony … | head`: the reader had enough; no traceback, no flush error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception as error:  # every command shares this path (MemoryError is an Exception too)
        line = one_line(error)
        if line is None:
            raise
        print(f"harmony: {line}", file=sys.stderr)
        return FAILURE_EXIT_CODE


if __name__ == "__main__":
    sys.exit(main())
