"""Real, decodable audio files (a quiet tone) for the sandbox's slskd downloads and for tests.

Sample rates are chosen for speed and size, not fidelity: a 240 s file takes ~0.25 s to encode
(MP3, 8 kHz mono VBR, ~240 kB) or ~0.05 s (FLAC, 22.05 kHz mono 16-bit, ~1.3 MB). mutagen reads
the exact duration of both. (Ogg Vorbis via this libsndfile build crashes the process, and Opus is
~10× slower, so only MP3 and FLAC are offered.)
"""

from __future__ import annotations

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
