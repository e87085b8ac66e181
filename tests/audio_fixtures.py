"""Small real audio and image files for tagging and artwork tests.

MP3, FLAC and Ogg (Vorbis, Opus) are encoded by libsndfile through soundfile, so they decode with
real decoders. No AAC encoder is available, so the M4A file is a structurally valid MPEG-4 container
(ftyp, moov with one `soun` track described by an `mp4a` + `esds` sample entry, empty mdat): enough
for mutagen to open it as MP4, read its duration and write tags.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import soundfile
from PIL import Image

from harmony_pipeline.sandbox.audio import m4a_bytes

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
