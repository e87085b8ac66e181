"""`harmony ingest FILE… | -`: FREE ingest straight into DuckDB (no Dagster run needed).

Every input is read before anything is recorded, so a missing, unreadable or oversized file stops the
command with a one-line reason (from the shared error path in harmony_pipeline.cli.errors) and records
nothing. Each input is read through one descriptor and capped at MAX_SUBMISSION_BYTES whatever it
is (a FIFO, /dev/zero, a /proc file), then parsed and recorded as it goes, so memory holds the text
and one chunk of items. Output: `line N: reason` for each skipped line (prefixed by the file name when
several are given), then `accepted A, skipped S`. The inbox sensor requests the backfill run for what
was recorded.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rich.console import Console
from rich.progress import MofNCompleteColumn, Progress, TextColumn

from harmony_pipeline import storage
from harmony_pipeline.cli.errors import FAILURE_EXIT_CODE, CommandError
from harmony_pipeline.ingest.parser import MAX_SUBMISSION_BYTES, IngestError, ParsedSubmission, iter_submission
from harmony_pipeline.ingest.store import SubmissionOutcome, record_submission
from harmony_pipeline.safe_read import ReadRefused, read_submission
from harmony_pipeline.settings import Settings

STDIN = "-"


def register_cli(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "ingest", help="FREE ingest of text, CSV or JSON files (or - for standard input)",
        description="Record wanted tracks from text lines, CSV (Exportify too), JSON or Spotify links. "
                    "Lines that cannot be read are listed with their reason.")
    parser.add_argument("files", nargs="+", metavar="FILE", help="files to ingest; - reads standard input")
    parser.add_argument("--json", action="store_true",
                        help="print the report as one JSON object (per file: accepted, skipped lines with reasons)")
    parser.set_defaults(handler=run_ingest, needs_settings=True)


def _read_input(name: str) -> bytes:
    """The input's bytes; OSError escapes to the shared error path."""
    try:
        if name == STDIN:  # a bounded read: at most one byte past the limit
            data = sys.stdin.buffer.read(MAX_SUBMISSION_BYTES + 1)
            if len(data) > MAX_SUBMISSION_BYTES:
                raise ReadRefused(f"standard input is larger than the limit of {MAX_SUBMISSION_BYTES // 1048576} MiB")
            return data
        return read_submission(name, MAX_SUBMISSION_BYTES)
    except ReadRefused as refused:
        raise CommandError(str(refused), FAILURE_EXIT_CODE) from None


def _parse(name: str, data: bytes) -> ParsedSubmission:
    try:
        return iter_submission(data, None if name == STDIN else Path(name).name, deduplicate=False)
    except IngestError as error:
        raise CommandError(f"{name}: {error}", FAILURE_EXIT_CODE) from None


def run_ingest(args: argparse.Namespace, settings: Settings) -> int:
    names: list[str] = args.files
    if names.count(STDIN) > 1:
        raise CommandError("standard input (-) can be read only once")
    inputs = [_read_input(name) for name in names]

    console = Console(stderr=True)
    outcomes: list[SubmissionOutcome] = []
    with Progress(TextColumn("{task.description}"), MofNCompleteColumn(), console=console,
                  transient=True, disable=args.quiet) as progress:
        task = progress.add_task("recording items", total=None)
        with storage.connect(settings.duckdb_path) as conn:
            # One thread: recording is sequential, and every DuckDB thread keeps buffers of its own.
            conn.execute("SET threads = 1")
            for index, name in enumerate(names):
                parsed = _parse(name, inputs[index])
                inputs[index] = b""  # the bytes are let go once decoded
                source = "stdin" if name == STDIN else Path(name).name
                progress.update(task, description=f"recording {source}")
                outcomes.append(record_submission(conn, parsed, source,
                                                  progress=lambda n: progress.advance(task, n)))
                del parsed

    if args.json:
        print(json.dumps(_json_report(names, outcomes), ensure_ascii=False))
        return 0
    several = len(outcomes) > 1
    for name, outcome in zip(names, outcomes):
        if not args.quiet:
            for note in outcome.notes:
                console.print(f"{name}: note: {note}", markup=False, highlight=False)
        for line in outcome.report_lines(prefix=f"{name}: " if several else ""):
            print(line)
    accepted = sum(o.accepted for o in outcomes)
    skipped = sum(o.skipped_count for o in outcomes)
    print(f"accepted {accepted}, skipped {skipped}")
    return 0


def _json_report(names: list[str], outcomes: list[SubmissionOutcome]) -> dict:
    """The report `harmony ingest --json` prints: each file's outcome and the totals."""
    files = [{"file": name, "accepted": outcome.accepted, "skipped": outcome.skipped_count,
              "skipped_lines": [{"line": s.line_number, "reason": s.reason} for s in outcome.skipped],
              "not_listed": outcome.not_listed, "notes": list(outcome.notes)}
             for name, outcome in zip(names, outcomes)]
    return {"files": files, "accepted": sum(f["accepted"] for f in files),
            "skipped": sum(f["skipped"] for f in files)}
