"""Which process is working on something, and whether that process still lives.

A row mid-transition (a transfer being enqueued, a file being moved into the library) and a Dagster
run carry the token of the process doing the work. When that process is gone (kill -9, OOM, reboot),
the next process finishes or undoes the work at once instead of waiting for a timeout.
"""

from __future__ import annotations

import hashlib
import os
import socket
from datetime import datetime, timedelta, timezone
from functools import cache
from pathlib import Path

# A token from another machine cannot be checked: it is taken as dead once this old.
FOREIGN_CLAIM_TIMEOUT = timedelta(hours=1)


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat), None if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: count fields after its closing one.
    return stat[stat.rindex(")") + 2:].split()[19]


@cache
def process_token() -> str:
    """host:pid:start — unique to this process, even when the pid is reused later."""
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{_start_time(pid) or '?'}"


def claim_is_live(token: str | None, claimed_at: datetime | None = None) -> bool:
    """Whether the process that wrote `token` still runs (this host), or may still run (another host)."""
    if not token:
        return False
    host, _, rest = token.partition(":")
    pid_text, _, start = rest.partition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        if claimed_at is None:
            return True
        return datetime.now(timezone.utc) - claimed_at < FOREIGN_CLAIM_TIMEOUT
    pid = int(pid_text)
    current = _start_time(pid)
    if current is None:
        try:  # no /proc: at least ask whether the pid exists
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return start == "?"
    return start in ("?", current)


def _host_hash() -> str:
    return hashlib.sha1(socket.gethostname().encode("utf-8")).hexdigest()[:6]


@cache
def file_claim_tag() -> str:
    """A short form of the process token for file names: host hash, pid and start time, dot-separated."""
    pid = os.getpid()
    return f"{_host_hash()}.{pid}.{_start_time(pid) or 0}"


def file_claim_is_live(tag: str) -> bool | None:
    """Whether the process that wrote `tag` still runs; None when it ran on another host (unknowable)."""
    host, _, rest = tag.partition(".")
    pid, _, start = rest.partition(".")
    if host != _host_hash() or not pid.isdigit():
        return None
    return claim_is_live(f"{socket.gethostname()}:{pid}:{start if start != '0' else '?'}")
