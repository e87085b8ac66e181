from __future__ import annotations

import base64
import io
from pathlib import Path

import mutagen
import numpy as np
import pytest
import soundfile
from audio_fixtures import AUDIO_SUFFIXES, image_bytes, write_audio
from mutagen.flac import FLAC, Picture
from mutagen.id3 import APIC, ID3, PictureType
from mutagen.mp4 import MP4, MP4Cover
from PIL import Image

from harmony_pipeline.enrichment.artwork import (
    ArtworkCandidate,
    ArtworkError,
    ImageInfo,
    choose_largest,
    embed_cover,
    existing_cover,
    existing_cover_bytes,
    measure_image,
    prepare_embed,
    should_replace_embed,
    thumbnail_data_uri,
    write_cover_file,
)
from harmony_pipeline.enrichment.tagging import TaggingError


def _pillow_size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as image:
        return image.size


def _raw_embedded(path: Path) -> list[tuple[int, str, bytes]]:
    """(picture type, mime, data) of every embedded picture, read with mutagen's own API."""
    audio = mutagen.File(path)
    if path.suffix == ".mp3":
        return [(frame.type, frame.mime, frame.data) for frame in ID3(path).getall("APIC")]
    if path.suffix == ".m4a":
        return [
            (
                PictureType.COVER_FRONT,
                "image/jpeg" if c.imageformat == MP4Cover.FORMAT_JPEG else "image/png",
                bytes(c),
            )
            for c in MP4(path).tags.get("covr", [])
        ]
    if path.suffix == ".flac":
        return [(p.type, p.mime, p.data) for p in FLAC(path).pictures]
    blocks = [Picture(base64.b64decode(b)) for b in audio.tags.get("metadata_block_picture", [])]
    return [(p.type, p.mime, p.data) for p in blocks]


def test_largest_measured_image_wins_even_when_declared_sizes_lie() -> None:
    spotify = image_bytes(640, 640)
    caa_thumbnail_of_small_original = image_bytes(600, 600)
    itunes = image_bytes(1400, 1400)
    measured = [
        (
            ArtworkCandidate("coverartarchive", "http://caa/front-1200", 1200, 1200),
            measure_image(caa_thumbnail_of_small_original),
        ),
        (ArtworkCandidate("spotify", "http://spotify/640", 640, 640), measure_image(spotify)),
        (ArtworkCandidate("itunes", "http://itunes/3000x3000bb.jpg", 3000, 3000), measure_image(itunes)),
    ]

    candidate, info = choose_largest(measured, max_bytes=10 * 1024 * 1024)

    assert candidate.source == "itunes"
    assert (info.width, info.height) == (1400, 1400)


def test_images_over_the_byte_limit_are_skipped_and_ties_go_to_the_reliable_source() -> None:
    big = measure_image(image_bytes(1200, 1200, "PNG"))
    same_size = measure_image(image_bytes(640, 640))
    measured = [
        (ArtworkCandidate("itunes", "http://itunes/big"), big),
        (ArtworkCandidate("spotify", "http://spotify/640"), same_size),
        (ArtworkCandidate("coverartarchive", "http://caa/front"), same_size),
    ]

    candidate, info = choose_largest(measured, max_bytes=big.bytes - 1)

    assert candidate.source == "coverartarchive"
    assert info == same_size
    assert choose_largest(measured, max_bytes=100) is None
    assert choose_largest([], max_bytes=10**7) is None


def test_measure_image_rejects_non_images_truncated_and_unsupported_types() -> None:
    jpeg = image_bytes(300, 200)
    gif = io.BytesIO()
    Image.new("RGB", (10, 10)).save(gif, format="GIF")

    assert measure_image(jpeg) == ImageInfo(300, 200, "image/jpeg", len(jpeg))
    with pytest.raises(ArtworkError):
        measure_image(b"<html>503 Service Unavailable</html>")
    with pytest.raises(ArtworkError):
        measure_image(jpeg[: len(jpeg) // 2])
    with pytest.raises(ArtworkError, match="GIF"):
        measure_image(gif.getvalue())


@pytest.fixture(scope="module")
def prepared_cover() -> tuple[bytes, ImageInfo]:
    return prepare_embed(image_bytes(2000, 1500, "PNG"))


@pytest.mark.parametrize("suffix", AUDIO_SUFFIXES)
def test_cover_is_embedded_once_per_format_with_real_dimensions(
    tmp_path: Path, suffix: str, prepared_cover: tuple[bytes, ImageInfo]
) -> None:
    path = write_audio(tmp_path / f"track{suffix}")
    length_before = mutagen.File(path).info.length
    samples_before = None if suffix == ".m4a" else soundfile.read(path)[0]
    embedded, info = prepared_cover

    embed_cover(path, image_bytes(300, 300), "image/jpeg")
    embed_cover(path, embedded, info.mime)

    [(picture_type, mime, data)] = _raw_embedded(path)
    assert picture_type == PictureType.COVER_FRONT
    assert mime == "image/jpeg"
    assert data == embedded
    assert _pillow_size(data) == (1500, 1125)
    assert existing_cover(path) == ImageInfo(1500, 1125, "image/jpeg", len(embedded))
    assert existing_cover_bytes(path) == embedded
    assert mutagen.File(path).info.length == pytest.approx(length_before)
    if samples_before is not None:
        assert np.array_equal(soundfile.read(path)[0], samples_before)


def test_png_cover_is_embedded_as_png_when_asked(tmp_path: Path) -> None:
    path = write_audio(tmp_path / "track.m4a")
    png = image_bytes(500, 400, "PNG")
    embed_cover(path, png, "image/png")
    assert MP4(path).tags["covr"][0].imageformat == MP4Cover.FORMAT_PNG
    assert existing_cover(path) == ImageInfo(500, 400, "image/png", len(png))


def test_embed_rejects_unsupported_mime_and_corrupt_audio(tmp_path: Path) -> None:
    with pytest.raises(ArtworkError):
        embed_cover(write_audio(tmp_path / "track.flac"), b"GIF89a", "image/gif")
    corrupt = tmp_path / "corrupt.m4a"
    corrupt.write_bytes(b"\x00\x00\x00\x08junk" * 10)
    with pytest.raises(TaggingError):
        embed_cover(corrupt, image_bytes(10, 10), "image/jpeg")


def test_no_embed_reads_as_none_and_front_cover_is_preferred(tmp_path: Path) -> None:
    path = write_audio(tmp_path / "track.mp3")
    assert existing_cover(path) is None
    id3 = ID3()
    id3.add(
        APIC(
            encoding=3,
            mime="image/jpeg",
            type=PictureType.COVER_BACK,
            desc="back",
            data=image_bytes(100, 100),
        )
    )
    id3.add(
        APIC(
            encoding=3,
            mime="image/jpeg",
            type=PictureType.COVER_FRONT,
            desc="front",
            data=image_bytes(700, 500),
        )
    )
    id3.save(path)

    info = existing_cover(path)

    assert (info.width, info.height) == (700, 500)


def test_replacement_rule_by_shorter_edge() -> None:
    small = ImageInfo(640, 640, "image/jpeg", 120_000)
    wide_but_short = ImageInfo(1600, 900, "image/jpeg", 400_000)
    good = ImageInfo(1200, 1200, "image/jpeg", 300_000)
    larger = ImageInfo(1400, 1400, "image/jpeg", 500_000)

    assert should_replace_embed(None, small)
    assert should_replace_embed(small, larger)
    assert should_replace_embed(wide_but_short, larger)
    assert not should_replace_embed(good, larger)
    assert not should_replace_embed(small, ImageInfo(600, 600, "image/jpeg", 90_000))
    assert not should_replace_embed(small, larger, min_edge=600)


def test_replacement_rule_by_bytes_when_dimensions_unknown(tmp_path: Path) -> None:
    path = write_audio(tmp_path / "track.mp3")
    id3 = ID3()
    id3.add(
        APIC(encoding=3, mime="image/webp", type=PictureType.COVER_FRONT, desc="", data=b"\x00" * 100_000)
    )
    id3.save(path)
    undecodable = existing_cover(path)
    assert undecodable == ImageInfo(None, None, "image/webp", 100_000)

    candidate = ImageInfo(1400, 1400, "image/jpeg", 400_000)
    assert should_replace_embed(undecodable, candidate)
    assert not should_replace_embed(ImageInfo(None, None, "image/jpeg", 200_000), candidate)
    assert not should_replace_embed(undecodable, ImageInfo(500, 500, "image/jpeg", 60_000))


def test_low_resolution_embed_is_replaced_end_to_end(tmp_path: Path) -> None:
    path = write_audio(tmp_path / "track.flac")
    embed_cover(path, image_bytes(640, 640), "image/jpeg")
    better, better_info = prepare_embed(image_bytes(1100, 1100))

    assert should_replace_embed(existing_cover(path), better_info)
    embed_cover(path, better, better_info.mime)
    assert not should_replace_embed(existing_cover(path), ImageInfo(3000, 3000, "image/jpeg", 2_000_000))
    assert [(p.width, p.height) for p in FLAC(path).pictures] == [(1100, 1100)]


def test_prepare_embed_keeps_small_jpeg_bytes_and_shrinks_large_images() -> None:
    small_jpeg = image_bytes(1200, 1200)
    assert prepare_embed(small_jpeg) == (small_jpeg, measure_image(small_jpeg))

    shrunk, info = prepare_embed(image_bytes(2400, 1600))
    assert (info.width, info.height, info.mime) == (1500, 1000, "image/jpeg")
    assert _pillow_size(shrunk) == (1500, 1000)


def test_transparent_png_is_flattened_onto_white() -> None:
    buffer = io.BytesIO()
    Image.new("RGBA", (50, 50), (255, 0, 0, 0)).save(buffer, format="PNG")
    embedded, info = prepare_embed(buffer.getvalue())
    with Image.open(io.BytesIO(embedded)) as image:
        assert info.mime == "image/jpeg"
        assert all(channel > 240 for channel in image.convert("RGB").getpixel((25, 25)))


def test_thumbnail_data_uri_is_a_small_jpeg_keeping_aspect() -> None:
    uri = thumbnail_data_uri(image_bytes(1200, 600), size=96)
    prefix = "data:image/jpeg;base64,"
    assert uri.startswith(prefix)
    with Image.open(io.BytesIO(base64.b64decode(uri[len(prefix) :]))) as image:
        assert (image.format, image.size) == ("JPEG", (96, 48))
    with pytest.raises(ArtworkError):
        thumbnail_data_uri(b"<html>not found</html>")


def test_original_is_kept_as_cover_file(tmp_path: Path) -> None:
    jpeg = image_bytes(1600, 1600)
    png = image_bytes(800, 800, "PNG")
    assert write_cover_file(tmp_path, jpeg) == tmp_path / "cover.jpg"
    assert write_cover_file(tmp_path, png) == tmp_path / "cover.png"
    assert (tmp_path / "cover.jpg").read_bytes() == jpeg
    assert (tmp_path / "cover.png").read_bytes() == png
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cover.jpg", "cover.png"]
