"""Small real audio and image files for tagging and artwork tests.

MP3, FLAC and Ogg (Vorbis, Opus) are encoded by libsndfile through soundfile, so they decode with
real decoders. No AAC encoder is available, so the M4A file is a structurally valid MPEG-4 container
(ftyp, moov with one `soun` track described by an `mp4a` + `esds` sample entry, empty mdat): enough
for mutagen to open it as MP4, read its duration and write tags.
"""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
import soundfile
from PIL import Image

SECONDS = 1.0
_FORMATS = {
    # suffix: (libsndfile format, subtype, sample rate)
    ".mp3": ("MP3", "MPEG_LAYER_III", 44100),
    ".flac": ("FLAC", "PCM_16", 44100),
    ".ogg": ("OGG", "VORBIS", 44100),
    ".opus": ("OGG", "OPUS", 48000),
}


def _tone(sample_rate: int, seconds: float) -> np.ndarray:
    times = np.arange(int(sample_rate * seconds)) / sample_rate
    return 0.2 * np.sin(2 * np.pi * 440.0 * times)


def write_encoded(path: Path, seconds: float = SECONDS) -> Path:
    """Encode a 440 Hz tone into `path`; the format follows the suffix (.mp3 .flac .ogg .opus)."""
    container, subtype, sample_rate = _FORMATS[path.suffix]
    soundfile.write(path, _tone(sample_rate, seconds), sample_rate, format=container, subtype=subtype)
    return path


def _atom(name: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + name + payload


def _full_atom(name: bytes, payload: bytes, version: int = 0, flags: int = 0) -> bytes:
    return _atom(name, struct.pack(">I", (version << 24) | flags) + payload)


def _descriptor(tag: int, payload: bytes) -> bytes:
    return bytes([tag, len(payload)]) + payload  # every payload here is < 128 bytes


def _esds(sample_rate_index: int = 4, channels: int = 1) -> bytes:
    # AudioSpecificConfig: AAC LC (object type 2), sampling frequency index, channel configuration.
    config = (2 << 11) | (sample_rate_index << 7) | (channels << 3)
    decoder_specific = _descriptor(0x05, struct.pack(">H", config))
    decoder_config = _descriptor(
        0x04,
        bytes([0x40, 0x15]) + b"\x00\x00\x00" + struct.pack(">II", 128000, 128000) + decoder_specific,
    )
    es_descriptor = _descriptor(0x03, struct.pack(">HB", 1, 0) + decoder_config + _descriptor(0x06, b"\x02"))
    return _full_atom(b"esds", es_descriptor)


def m4a_bytes(seconds: float = SECONDS, sample_rate: int = 44100) -> bytes:
    """A minimal MPEG-4 audio container that mutagen opens as MP4 with the given duration."""
    duration = int(seconds * sample_rate)
    matrix = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
    mvhd = _full_atom(
        b"mvhd",
        struct.pack(">IIII", 0, 0, sample_rate, duration)
        + struct.pack(">IH", 0x10000, 0x100)
        + b"\x00" * 10
        + matrix
        + b"\x00" * 24
        + struct.pack(">I", 2),
    )
    tkhd = _full_atom(
        b"tkhd",
        struct.pack(">IIIII", 0, 0, 1, 0, duration)
        + b"\x00" * 8
        + struct.pack(">hhhH", 0, 0, 0x100, 0)
        + matrix
        + struct.pack(">II", 0, 0),
        flags=7,
    )
    mdhd = _full_atom(b"mdhd", struct.pack(">IIIIHH", 0, 0, sample_rate, duration, 0x55C4, 0))
    hdlr = _full_atom(b"hdlr", struct.pack(">I", 0) + b"soun" + b"\x00" * 12 + b"SoundHandler\x00")
    mp4a = _atom(
        b"mp4a",
        b"\x00" * 6
        + struct.pack(">H", 1)
        + b"\x00" * 8
        + struct.pack(">HHHHI", 1, 16, 0, 0, sample_rate << 16)
        + _esds(),
    )
    stbl = _atom(
        b"stbl",
        _full_atom(b"stsd", struct.pack(">I", 1) + mp4a)
        + _full_atom(b"stts", struct.pack(">I", 0))
        + _full_atom(b"stsc", struct.pack(">I", 0))
        + _full_atom(b"stsz", struct.pack(">II", 0, 0))
        + _full_atom(b"stco", struct.pack(">I", 0)),
    )
    dinf = _atom(b"dinf", _full_atom(b"dref", struct.pack(">I", 1) + _full_atom(b"url ", b"", flags=1)))
    minf = _atom(b"minf", _full_atom(b"smhd", struct.pack(">HH", 0, 0)) + dinf + stbl)
    trak = _atom(b"trak", tkhd + _atom(b"mdia", mdhd + hdlr + minf))
    ftyp = _atom(b"ftyp", b"M4A " + struct.pack(">I", 0) + b"M4A mp42isom")
    return ftyp + _atom(b"moov", mvhd + trak) + _atom(b"mdat", b"")


def write_m4a(path: Path, seconds: float = SECONDS) -> Path:
    path.write_bytes(m4a_bytes(seconds))
    return path


def write_audio(path: Path, seconds: float = SECONDS) -> Path:
    """Write a small audio file whose format follows the suffix: .mp3 .flac .ogg .opus .m4a."""
    if path.suffix == ".m4a":
        return write_m4a(path, seconds)
    return write_encoded(path, seconds)


AUDIO_SUFFIXES = (".mp3", ".flac", ".ogg", ".opus", ".m4a")


def write_all_formats(folder: Path, stem: str = "track") -> dict[str, Path]:
    """One file per supported format in `folder`, keyed by suffix."""
    folder.mkdir(parents=True, exist_ok=True)
    return {suffix: write_audio(folder / f"{stem}{suffix}") for suffix in AUDIO_SUFFIXES}


def image_bytes(width: int, height: int, image_format: str = "JPEG", quality: int = 90) -> bytes:
    """A gradient image of exactly width x height pixels (gradients keep JPEG sizes realistic)."""
    x = np.linspace(0, 255, width, dtype=np.float64)
    y = np.linspace(0, 255, height, dtype=np.float64)
    pixels = np.stack(
        [np.add.outer(y, x) / 2, np.tile(x, (height, 1)), np.tile(y[:, None], (1, width))], axis=-1
    ).astype(np.uint8)
    buffer = io.BytesIO()
    options = {"quality": quality} if image_format == "JPEG" else {}
    Image.fromarray(pixels, "RGB").save(buffer, format=image_format, **options)
    return buffer.getvalue()
