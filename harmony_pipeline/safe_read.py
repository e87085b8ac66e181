"""Reading submitted files without trusting them, and showing their text without leaking it.

A submission is read through one open descriptor: its type and size are taken from that descriptor
(`fstat`), never from the name, and at most `limit + 1` bytes are read in bounded chunks, so a FIFO,
`/dev/zero` or a /proc file (which report size 0) cannot grow memory past the limit. Inbox files are
also opened without following symbolic links and must be regular files with no other hard link:
a link dropped into the inbox never makes the pipeline read a file outside it.
"""

from __future__ import annotations

import errno
import os
import re
import stat

CHUNK_BYTES = 256 * 1024
PREVIEW_CHARS = 60


class ReadRefused(Exception):
    """The file is not read: not a regular file, a link, or larger than the limit. The message says why."""


def read_capped(fd: int, limit: int, name: str) -> bytes:
    """At most `limit` bytes from `fd`; ReadRefused as soon as byte `limit + 1` arrives."""
    chunks: list[bytes] = []
    total = 0
    while True:
        chunk = os.read(fd, min(CHUNK_BYTES, limit + 1 - total))
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        total += len(chunk)
        if total > limit:
            raise ReadRefused(f"{name} is larger than the limit of {_size(limit)}")


def read_submission(path: str | os.PathLike[str], limit: int, *, inbox: bool = False) -> bytes:
    """The bytes of a submitted file, at most `limit`.

    `inbox=True`: no symbolic link is followed, the open never blocks (a FIFO is refused, not waited
    on) and only a regular file with a single hard link is read. On the command line a link or FIFO
    the user names is read as `cat` would, still capped at the limit.
    OSError for a file that cannot be opened or read; ReadRefused for one that is not read on purpose.
    """
    name = os.fspath(path)
    flags = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)
    if inbox:
        flags |= os.O_NOFOLLOW | os.O_NONBLOCK
    try:
        fd = os.open(name, flags)
    except OSError as error:
        if inbox and error.errno == errno.ELOOP:  # what O_NOFOLLOW answers for a link
            raise ReadRefused(f"{name} is a symbolic link; copy the file itself into the inbox") from None
        raise
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise IsADirectoryError(21, "Is a directory", name)
        if inbox and not stat.S_ISREG(info.st_mode):
            raise ReadRefused(f"{name} is not a regular file ({_kind(info.st_mode)})")
        if inbox and info.st_nlink > 1:
            raise ReadRefused(f"{name} has {info.st_nlink} hard links; copy the file itself into the inbox")
        if stat.S_ISREG(info.st_mode) and info.st_size > limit:  # refused without reading it
            raise ReadRefused(f"{name} is too large ({info.st_size:,} bytes); the limit is {_size(limit)}")
        if inbox:
            os.set_blocking(fd, True)
        return read_capped(fd, limit, name)
    finally:
        os.close(fd)


def _size(limit: int) -> str:
    return f"{limit // 1048576} MiB ({limit:,} bytes)" if limit >= 1048576 else f"{limit:,} bytes"


def _kind(mode: int) -> str:
    for test, kind in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISLNK, "a symbolic link")):
        if test(mode):
            return kind
    return "not a plain file"


_UNPRINTABLE_RE = re.compile(r"[^\S ]+|[\x00-\x1f\x7f-\x9f\u2028\u2029\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")


def preview(text: object, limit: int = PREVIEW_CHARS) -> str:
    """A short, single-line, printable rendering of untrusted text, for logs and metadata."""
    text = _UNPRINTABLE_RE.sub(" ", str(text))
    text = "".join(char if char.isprintable() else "?" for char in text)
    text = re.sub(r" {2,}", " ", text).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"
