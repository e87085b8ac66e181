"""Real, decodable audio files (a quiet tone) for the sandbox's slskd downloads and for tests.

Sample rates are chosen for speed and size, not fidelity: a 240 s file takes ~0.25 s to encode
(MP3, 8 kHz mono VBR, ~240 kB) or ~0.05 s (FLAC, 22.05 kHz mono 16-bit, ~1.3 MB). mutagen reads
the exact duration of both. (Ogg Vorbis via this libsndfile build crashes the process, and Opus is
~10× slower, so only MP3 and FLAC are offered.)
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import soundfile

SAMPLE_RATES = {"mp3": 8000, "flac": 22050}
_AMPLITUDE = 0.001  # quiet: about -60 dBFS
_TONE_HZ = 440.0


def _tone(duration_s: float, sample_rate: int) -> np.ndarray:
    samples = np.arange(round(duration_s * sample_rate), dtype=np.float32)
    return (_AMPLITUDE * np.sin(2 * np.pi * _TONE_HZ / sample_rate * samples)).astype(np.float32)


def write_audio(path: Path | str, fmt: str, duration_s: float, *, sample_rate: int | None = None) -> Path:
    """Write a quiet mono tone of `duration_s` seconds as `fmt` ("mp3" or "flac") to `path`."""
    fmt = fmt.lower()
    if fmt not in SAMPLE_RATES:
        raise ValueError(f"unsupported audio format {fmt!r}; expected one of {sorted(SAMPLE_RATES)}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rate = sample_rate or SAMPLE_RATES[fmt]
    signal = _tone(duration_s, rate)
    if fmt == "mp3":
        # VBR writes a Xing header, so readers get the exact duration without scanning frames.
        with soundfile.SoundFile(
            path, "w", rate, 1, "MPEG_LAYER_III", format="MP3", bitrate_mode="VARIABLE", compression_level=0.5
        ) as sound_file:
            sound_file.write(signal)
    else:
        soundfile.write(path, signal, rate, subtype="PCM_16", format="FLAC")
    return path


def write_corrupt_audio(path: Path | str) -> Path:
    """Bytes that carry an audio file's name but no decodable stream (no MP3 sync, no `fLaC`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"This file was truncated by the peer and holds no audio.\n" * 512)
    return path


# --- M4A: a structurally valid MPEG-4 audio container (no samples) that mutagen reads ---------
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


def m4a_bytes(seconds: float, sample_rate: int = 44100) -> bytes:
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




def write_m4a(path: Path | str, duration_s: float) -> Path:
    """An .m4a file mutagen opens as MP4/AAC with `duration_s` (the sandbox has no AAC encoder)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(m4a_bytes(duration_s))
    return path
