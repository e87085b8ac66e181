import errno
import os
import tempfile
from pathlib import Path, PurePosixPath

import numpy as np
import pytest
import soundfile

from harmony_pipeline.acquisition import library_import
from harmony_pipeline.acquisition.library_import import (
    AudioCheckError,
    check_download,
    expected_download_path,
    find_downloaded_file,
    import_into_library,
    inspect_audio,
    map_remote_path,
    quarantine,
)

HOSTILE_REMOTE_NAMES = [
    "..\\..\\x.mp3",
    "@@a\\..\\..\\evil.mp3",
    "@@a/../../evil.mp3",
    "..",
    "@@a\\Music\\..\\..",
    "@@a\\.\\x.mp3",
    "\\\\server\\share\\..\\x.mp3",
]


def write_audio(path: Path, seconds: float, sample_rate: int = 44100) -> Path:
    """A real encoded sine tone (MP3 or FLAC by suffix)."""
    times = np.arange(int(sample_rate * seconds)) / sample_rate
    tone = (0.2 * np.sin(2 * np.pi * 440 * times)).astype("float32")
    fmt = {".mp3": "MP3", ".flac": "FLAC"}[path.suffix]
    soundfile.write(path, tone, sample_rate, format=fmt)
    return path


def all_files(root: Path) -> set[Path]:
    return {path for path in root.rglob("*")}


# --- slskd paths ---------------------------------------------------------------------------


def test_map_remote_path_replaces_the_container_prefix(tmp_path):
    downloads = tmp_path / "downloads"
    mapped = map_remote_path("/app/downloads/2019 - Album/03 - Title.flac", "/app/downloads", downloads)
    assert mapped == downloads.resolve() / "2019 - Album" / "03 - Title.flac"
    assert map_remote_path("/app/downloads/x.flac", "/app/downloads/", downloads) == downloads.resolve() / "x.flac"


def test_map_remote_path_identity_when_both_dirs_are_the_same(tmp_path):
    downloads = tmp_path / "downloads"
    local = downloads / "Album" / "01 - Sigur Rós.flac"
    assert map_remote_path(str(local), str(downloads), downloads) == local.resolve()


def test_map_remote_path_from_a_windows_host(tmp_path):
    mapped = map_remote_path("C:\\slskd\\downloads\\Album\\01.flac", "C:\\slskd\\downloads", tmp_path)
    assert mapped == tmp_path.resolve() / "Album" / "01.flac"


@pytest.mark.parametrize(
    "reported",
    [
        "/app/downloads/../../etc/passwd",
        "/app/downloads/Album/../../x.flac",
        "/app/other/x.flac",
        "/app/downloadsX/x.flac",
        "/app/downloads",
        "relative/x.flac",
    ],
)
def test_map_remote_path_refuses_paths_outside(tmp_path, reported):
    with pytest.raises(ValueError):
        map_remote_path(reported, "/app/downloads", tmp_path / "downloads")


def test_expected_download_path_uses_the_remote_parent_folder(tmp_path):
    path = expected_download_path(tmp_path, "@@abcde\\Music\\Artist\\2019 - Album\\03 - Title.flac")
    assert path == tmp_path.resolve() / "2019 - Album" / "03 - Title.flac"
    assert expected_download_path(tmp_path, "x.mp3") == tmp_path.resolve() / "x.mp3"
    with_nul = expected_download_path(tmp_path, "@@a\\Al\0bum\\t.mp3")
    assert with_nul.parent.name == "Al_bum"


@pytest.mark.parametrize("remote", HOSTILE_REMOTE_NAMES)
def test_hostile_remote_names_stay_inside_downloads(tmp_path, remote):
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    path = expected_download_path(downloads, remote)
    assert path.is_relative_to(downloads.resolve())
    assert path != downloads.resolve()
    assert ".." not in path.relative_to(downloads.resolve()).parts
    assert find_downloaded_file(downloads, remote) is None


def test_empty_remote_name_refused(tmp_path):
    with pytest.raises(ValueError):
        expected_download_path(tmp_path, "\\\\")


def test_find_downloaded_file_prefers_the_expected_path(tmp_path):
    remote = "@@peer\\Music\\Album\\03 - Title.flac"
    folder = tmp_path / "Album"
    folder.mkdir()
    (folder / "03 - Title_639012345678901234.flac").write_bytes(b"renamed")
    (folder / "03 - Title.flac").write_bytes(b"expected")
    assert find_downloaded_file(tmp_path, remote) == (folder / "03 - Title.flac").resolve()


def test_find_downloaded_file_falls_back_to_the_newest_slskd_rename(tmp_path):
    remote = "@@peer\\Music\\Album\\03 - Title.flac"
    folder = tmp_path / "Album"
    folder.mkdir()
    older = folder / "03 - Title_639012345678901234.flac"
    newer = folder / "03 - Title_639012345699999999.flac"
    for index, path in enumerate([older, newer]):
        path.write_bytes(b"x")
        os.utime(path, (1_700_000_000 + index, 1_700_000_000 + index))
    # neither another track sharing the prefix nor another format is taken
    (folder / "03 - Title (Live).flac").write_bytes(b"x")
    (folder / "03 - Title_1.mp3").write_bytes(b"x")
    os.utime(folder / "03 - Title (Live).flac", (1_800_000_000, 1_800_000_000))
    assert find_downloaded_file(tmp_path, remote) == newer.resolve()


def test_find_downloaded_file_none_when_missing(tmp_path):
    assert find_downloaded_file(tmp_path, "@@peer\\Album\\01.flac") is None
    (tmp_path / "Album").mkdir()
    (tmp_path / "Album" / "02.flac").write_bytes(b"x")
    assert find_downloaded_file(tmp_path, "@@peer\\Album\\01.flac") is None


# --- audio checks ----------------------------------------------------------------------------


def test_inspect_real_mp3_and_flac(tmp_path):
    mp3 = inspect_audio(write_audio(tmp_path / "tone.mp3", 2.0))
    assert mp3.format == "mp3"
    assert mp3.sample_rate == 44100
    assert abs(mp3.duration_seconds - 2.0) < 0.1
    assert mp3.bitrate_kbps and 8 <= mp3.bitrate_kbps <= 320

    flac = inspect_audio(write_audio(tmp_path / "tone.flac", 3.0, sample_rate=48000))
    assert flac.format == "flac"
    assert flac.sample_rate == 48000
    assert abs(flac.duration_seconds - 3.0) < 0.01
    assert flac.bitrate_kbps and flac.bitrate_kbps > 0


@pytest.mark.parametrize(
    "name, content, reason",
    [
        ("empty.mp3", b"", "empty"),
        ("text.mp3", b"<html>not found</html>" * 50, "not a readable audio file"),
        ("text.txt", b"just some words\n" * 50, "not a recognised audio format"),
    ],
)
def test_inspect_refuses_non_audio(tmp_path, name, content, reason):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(AudioCheckError, match=reason):
        inspect_audio(path)


def test_inspect_refuses_a_truncated_flac(tmp_path):
    good = write_audio(tmp_path / "good.flac", 1.0)
    broken = tmp_path / "broken.flac"
    broken.write_bytes(good.read_bytes()[:20])
    with pytest.raises(AudioCheckError, match="broken.flac"):
        inspect_audio(broken)


def test_inspect_refuses_a_missing_file(tmp_path):
    with pytest.raises(AudioCheckError, match="cannot be read"):
        inspect_audio(tmp_path / "gone.flac")


def test_check_download_duration(tmp_path):
    path = write_audio(tmp_path / "tone.flac", 4.0)
    assert check_download(path, 4000).format == "flac"
    assert check_download(path, 6500).duration_seconds == pytest.approx(4.0, abs=0.01)  # 2.5 s off
    assert check_download(path, None).format == "flac"
    with pytest.raises(AudioCheckError, match=r"duration 4s differs from expected 8s by more than 3s"):
        check_download(path, 8000)
    with pytest.raises(AudioCheckError, match=r"by more than 1s"):
        check_download(path, 6000, tolerance_s=1)


# --- import and quarantine -------------------------------------------------------------------


@pytest.fixture
def dirs(tmp_path):
    downloads, library = tmp_path / "downloads", tmp_path / "library"
    downloads.mkdir()
    library.mkdir()
    return downloads, library


def test_import_moves_the_file_into_new_folders(dirs):
    downloads, library = dirs
    source = write_audio(downloads / "03 - Title.flac", 1.0)
    content = source.read_bytes()
    landed = import_into_library(source, library, PurePosixPath("Sigur Rós/Ágætis byrjun/03 - Starálfur.flac"))
    assert landed == library.resolve() / "Sigur Rós" / "Ágætis byrjun" / "03 - Starálfur.flac"
    assert landed.read_bytes() == content
    assert not source.exists()
    assert all_files(downloads) == set()
    assert inspect_audio(landed).format == "flac"


def test_reimport_of_identical_content_does_not_duplicate(dirs):
    downloads, library = dirs
    relative = PurePosixPath("A/B/01 - T.mp3")
    first = write_audio(downloads / "first.mp3", 1.0)
    payload = first.read_bytes()
    landed = import_into_library(first, library, relative)
    again = downloads / "again.mp3"
    again.write_bytes(payload)
    assert import_into_library(again, library, relative) == landed
    assert not again.exists()
    assert all_files(library / "A" / "B") == {library / "A" / "B" / "01 - T.mp3"}


def test_import_collision_with_other_content_is_numbered(dirs):
    downloads, library = dirs
    relative = PurePosixPath("A/B/01 - T.flac")
    one = write_audio(downloads / "one.flac", 1.0)
    two = write_audio(downloads / "two.flac", 2.0)
    first = import_into_library(one, library, relative)
    second = import_into_library(two, library, relative)
    assert second == first.with_name("01 - T (2).flac")
    assert inspect_audio(first).duration_seconds == pytest.approx(1.0, abs=0.01)
    assert inspect_audio(second).duration_seconds == pytest.approx(2.0, abs=0.01)


def test_importing_a_file_onto_itself_keeps_it(dirs):
    _, library = dirs
    inside = library / "A" / "x.flac"
    inside.parent.mkdir()
    inside.write_bytes(b"data")
    assert import_into_library(inside, library, PurePosixPath("A/x.flac")) == inside.resolve()
    assert inside.read_bytes() == b"data"


@pytest.mark.parametrize("relative", ["../escape.flac", "A/../../escape.flac", "/tmp/escape.flac"])
def test_import_never_writes_outside_the_library(tmp_path, dirs, relative):
    downloads, library = dirs
    source = downloads / "x.flac"
    source.write_bytes(b"data")
    before = all_files(tmp_path)
    with pytest.raises(ValueError):
        import_into_library(source, library, PurePosixPath(relative))
    assert all_files(tmp_path) == before
    assert source.read_bytes() == b"data"


def test_import_refuses_a_symlinked_folder_leading_out(tmp_path, dirs):
    downloads, library = dirs
    outside = tmp_path / "outside"
    outside.mkdir()
    (library / "Artist").symlink_to(outside, target_is_directory=True)
    source = downloads / "x.flac"
    source.write_bytes(b"data")
    with pytest.raises(ValueError):
        import_into_library(source, library, PurePosixPath("Artist/x.flac"))
    assert all_files(outside) == set()


def test_import_of_a_missing_source(dirs):
    downloads, library = dirs
    with pytest.raises(FileNotFoundError):
        import_into_library(downloads / "gone.flac", library, PurePosixPath("A/gone.flac"))
    assert all_files(library) == set()


def test_import_across_filesystems_copies_then_removes_the_source(dirs):
    if not Path("/dev/shm").is_dir() or not os.access("/dev/shm", os.W_OK):
        pytest.skip("no second filesystem at /dev/shm")
    _, library = dirs
    with tempfile.TemporaryDirectory(dir="/dev/shm") as other:
        if os.stat(other).st_dev == os.stat(library).st_dev:
            pytest.skip("/dev/shm is on the same filesystem here")
        source = write_audio(Path(other) / "tone.flac", 1.0)
        os.chmod(source, 0o644)
        payload = source.read_bytes()
        landed = import_into_library(source, library, PurePosixPath("A/B/t.flac"))
        assert not source.exists()
    assert landed.read_bytes() == payload
    assert landed.stat().st_mode & 0o777 == 0o644
    assert all_files(library) == {library / "A", library / "A" / "B", library / "A" / "B" / "t.flac"}


def test_failed_cross_filesystem_copy_leaves_no_partial_file(dirs, monkeypatch):
    downloads, library = dirs
    source = downloads / "x.flac"
    source.write_bytes(b"data" * 1000)
    real_replace = os.replace

    def replace_without_rename_across_devices(src, dst):
        if Path(src) == source:
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(library_import.os, "replace", replace_without_rename_across_devices)
    with pytest.raises(OSError, match="No space"):
        import_into_library(source, library, PurePosixPath("A/x.flac"))
    monkeypatch.setattr(library_import.os, "replace", real_replace)
    assert all_files(library) == {library / "A"}  # the temporary copy is gone
    assert source.read_bytes() == b"data" * 1000


def test_quarantine_moves_the_file_aside_with_its_reason(tmp_path, dirs):
    downloads, _ = dirs
    source = downloads / "03 - Title.mp3"
    source.write_bytes(b"<html>")
    quarantine_dir = tmp_path / "quarantine"
    moved = quarantine(source, quarantine_dir, "not a readable audio file")
    assert moved == quarantine_dir.resolve() / "03 - Title.mp3"
    assert moved.read_bytes() == b"<html>"
    assert not source.exists()
    note = quarantine_dir / "03 - Title.mp3.reason.txt"
    assert note.read_text(encoding="utf-8").startswith("not a readable audio file\n")

    second = downloads / "03 - Title.mp3"
    second.write_bytes(b"<html> again")
    moved_again = quarantine(second, quarantine_dir, "duration 10s differs from expected 200s by more than 3s")
    assert moved_again.name == "03 - Title (2).mp3"
    assert "duration 10s" in (quarantine_dir / "03 - Title (2).mp3.reason.txt").read_text(encoding="utf-8")
    assert note.read_text(encoding="utf-8").startswith("not a readable audio file\n")
