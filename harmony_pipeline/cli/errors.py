"""The errors `harmony` turns into one line on stderr.

Command modules raise CommandError for a reason of their own and let everything else escape; the
entry point (harmony_pipeline.cli.main) gives a DuckDB error (locked, corrupt or truncated file), a
file that is missing or cannot be read, a refused submission or a lack of memory one line and exit
code 2, whichever command met it. This module imports nothing of the project, so the command modules
and cli/main.py can both import it.
"""

from __future__ import annotations

import sys

FAILURE_EXIT_CODE = 2


class CommandError(Exception):
    """A one-line reason shown to the user; exit code 1 (or `code`)."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


def one_line(error: BaseException) -> str | None:
    """The line to print for an error a command let escape; None for an unexpected one (a bug, which
    keeps its traceback)."""
    duckdb = sys.modules.get("duckdb")  # loaded whenever a DuckDB error can exist
    if duckdb is not None and isinstance(error, duckdb.Error):
        return _database_line(error)
    if isinstance(error, OSError):
        return f"{error.filename}: {error.strerror or error}" if error.filename else str(error.strerror or error)
    if isinstance(error, MemoryError):
        return "out of memory"
    refused = sys.modules.get("harmony_pipeline.safe_read")
    if refused is not None and isinstance(error, refused.ReadRefused):
        return str(error)
    return None


def _database_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    for prefix in ("IO Error: ", "Catalog Error: ", "Serialization Error: ", "Internal Error: "):
        text = text.removeprefix(prefix)
    lowered = text.lower()
    if "lock" in lowered and ("conflicting" in lowered or "could not set" in lowered):
        holder = text[text.find("(PID"):text.find(")", text.find("(PID")) + 1] if "(PID" in text else ""
        path = text.split('"')[1] if text.count('"') >= 2 else "the database"
        return (f"the database {path} is locked by another process {holder}".rstrip()
                + "; it was still locked after waiting; try again when that process has finished")
    if "not a valid duckdb database" in lowered or "corrupt" in lowered or "could not read enough bytes" in lowered:
        return f"the database is damaged or truncated ({text.split(' See also')[0]}); restore it or move it aside"
    return f"database error: {text.split(' See also')[0]}"
