import os
import unicodedata
from dataclasses import replace
from pathlib import Path, PurePosixPath

import pytest

from harmony_pipeline.library.paths import (
    TrackNaming,
    render_library_path,
    resolve_inside,
    safe_component,
    same_content,
    unique_destination,
    validate_template,
)

DEFAULT_TEMPLATE = "{albumartist}/{album}/{disc_prefix}{track:02d} - {title}"
FORBIDDEN = set('<>:"/\\|?*')
RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)), *(f"LPT{i}" for i in range(1, 10))}

NAMING = TrackNaming(
    albumartist="Sigur Rós", artist="Sigur Rós", album="Ágætis byrjun", year=1999,
    disc=1, disc_total=1, track=3, title="Starálfur",
)


def assert_portable(path: PurePosixPath) -> None:
    for part in path.parts:
        assert part and part not in (".", "..")
        assert not FORBIDDEN & set(part), part
        assert all(ord(ch) >= 32 for ch in part), part
        assert part == part.rstrip(". "), part
        assert not part.startswith(".")
        assert part.split(".")[0].upper() not in RESERVED, part
        assert len(part.encode("utf-8")) <= 255
        assert unicodedata.is_normalized("NFC", part)


def test_default_template_keeps_unicode():
    path = render_library_path(DEFAULT_TEMPLATE, NAMING, ".flac")
    assert path == PurePosixPath("Sigur Rós/Ágætis byrjun/03 - Starálfur.flac")


@pytest.mark.parametrize(
    "artist, album, title",
    [
        ("宇多田ヒカル", "初恋", "誓い"),
        ("Кино", "Группа крови", "Спокойная ночь"),
    ],
)
def test_non_latin_scripts_kept(artist, album, title):
    naming = replace(NAMING, albumartist=artist, artist=artist, album=album, title=title)
    path = render_library_path(DEFAULT_TEMPLATE, naming, "mp3")
    assert path.parts == (artist, album, f"03 - {title}.mp3")


def test_decomposed_unicode_is_stored_composed():
    naming = replace(NAMING, albumartist="Sigur Ro\u0301s")
    path = render_library_path(DEFAULT_TEMPLATE, naming, "flac")
    assert path.parts[0] == "Sigur R\u00f3s"


def test_slash_in_a_value_stays_one_folder():
    naming = replace(NAMING, albumartist="AC/DC", artist="AC/DC", album="Back in Black", title="Hells Bells")
    path = render_library_path(DEFAULT_TEMPLATE, naming, "flac")
    assert path.parts == ("AC_DC", "Back in Black", "03 - Hells Bells.flac")
    naming = replace(naming, album="Live\\Dirty")
    assert render_library_path(DEFAULT_TEMPLATE, naming, "flac").parts[1] == "Live_Dirty"


@pytest.mark.parametrize("hostile", ["../../x", "..", "/etc/passwd", "..\\..\\x", "./.hidden"])
def test_traversal_in_values_never_leaves_the_template_folders(hostile):
    naming = replace(NAMING, albumartist=hostile, album=hostile, title=hostile)
    path = render_library_path("{albumartist}/{album}/{title}", naming, "flac")
    assert len(path.parts) == 3
    assert_portable(path)


@pytest.mark.parametrize("name", ["CON", "nul", "Aux", "COM1", "lpt9"])
def test_reserved_device_names_are_altered(name):
    naming = replace(NAMING, albumartist=name, album=name, title=name)
    path = render_library_path("{albumartist}/{album}/{title}", naming, "flac")
    assert_portable(path)
    assert path.parts[0].startswith(name)


def test_reserved_name_hidden_behind_trailing_dot_and_space():
    assert safe_component("NUL .").upper() != "NUL"
    assert_portable(PurePosixPath(safe_component("NUL .")))


def test_trailing_dots_and_spaces_removed_and_forbidden_characters_replaced():
    naming = replace(NAMING, albumartist="Mr. Big...  ", album='What? <Why>: "Now" | *', title="Tab\there")
    path = render_library_path(DEFAULT_TEMPLATE, naming, "flac")
    assert path.parts[0] == "Mr. Big"
    assert path.parts[1] == "What_ _Why__ _Now_ _ _"
    assert path.parts[2] == "03 - Tab here.flac"
    assert_portable(path)


def test_overlong_name_cut_to_255_bytes_on_a_character_boundary_keeping_extension():
    title = "a" + "日本語" * 100  # 1 + 900 bytes
    naming = replace(NAMING, title=title, album="ж" * 200)  # 400 bytes
    path = render_library_path(DEFAULT_TEMPLATE, naming, ".flac")
    file_name = path.parts[-1]
    assert file_name.endswith(".flac")
    assert len(file_name.encode()) <= 255
    # no room was left for another whole character (each is 3 bytes)
    assert len(file_name.encode()) > 255 - 3
    assert file_name.startswith("03 - a日本語")
    assert path.parts[1] == "ж" * 127  # 254 bytes: a 128th would make 256
    assert_portable(path)


def test_disc_prefix_only_on_multi_disc_albums():
    single = render_library_path(DEFAULT_TEMPLATE, replace(NAMING, disc=1, disc_total=1), "flac")
    multi = render_library_path(DEFAULT_TEMPLATE, replace(NAMING, disc=2, disc_total=2), "flac")
    unknown_total = render_library_path(DEFAULT_TEMPLATE, replace(NAMING, disc=2, disc_total=0), "flac")
    assert single.name == "03 - Starálfur.flac"
    assert multi.name == "2-03 - Starálfur.flac"
    assert unknown_total.name == "2-03 - Starálfur.flac"


def test_year_and_format_specs():
    template = "{artist}/{year} - {album}/{disc:02d}.{track:03d} {title}"
    path = render_library_path(template, NAMING, "ogg")
    assert path == PurePosixPath("Sigur Rós/1999 - Ágætis byrjun/01.003 Starálfur.ogg")
    no_year = render_library_path("{artist}/{year}/{album}/{title}", replace(NAMING, year=None), "ogg")
    assert no_year == PurePosixPath("Sigur Rós/Ágætis byrjun/Starálfur.ogg")


def test_album_artist_falls_back_to_artist_never_unknown():
    naming = replace(NAMING, albumartist="", artist="Björk")
    assert render_library_path(DEFAULT_TEMPLATE, naming, "flac").parts[0] == "Björk"
    naming = replace(NAMING, albumartist="Various Artists", artist="")
    assert render_library_path("{artist}/{title}", naming, "flac").parts[0] == "Various Artists"


def test_empty_values_get_fallbacks():
    naming = TrackNaming(albumartist="", artist=" ", album="", year=None, disc=0, disc_total=0, track=7, title="")
    path = render_library_path(DEFAULT_TEMPLATE, naming, "mp3")
    assert path == PurePosixPath("Unknown Artist/Unknown Album/07 - Track 07.mp3")


def test_file_name_that_renders_empty_falls_back_to_title():
    path = render_library_path("{artist}/{year}", replace(NAMING, year=None), "mp3")
    assert path == PurePosixPath("Sigur Rós/Starálfur.mp3")


@pytest.mark.parametrize("extension", ["", ".", "fl/ac", "../x", ".verylongextension"])
def test_bad_extension_refused(extension):
    with pytest.raises(ValueError):
        render_library_path(DEFAULT_TEMPLATE, NAMING, extension)


def test_validate_template_accepts_the_default_and_all_placeholders():
    validate_template(DEFAULT_TEMPLATE)
    validate_template("{artist}/{year}/{album} ({albumartist})/{disc}-{track} {title}")


@pytest.mark.parametrize(
    "template, message",
    [
        ("{Artist}/{title}", "unknown placeholder {Artist}"),
        ("{albumartist}/{album}/{tracknumber} - {title}", "unknown placeholder {tracknumber}"),
        ("{title.upper}", "unknown placeholder {title.upper}"),
        ("{}", "unknown placeholder {}"),
        ("/music/{title}", "must be relative"),
        ("{artist}//{title}", "empty path component"),
        ("{artist}/", "empty path component"),
        ("../{title}", "may not contain '..'"),
        ("{title", "expected '}'"),
        ("{title:02d}", "does not render"),
        ("", "empty"),
    ],
)
def test_validate_template_refuses(template, message):
    with pytest.raises(ValueError) as caught:
        validate_template(template)
    assert message in str(caught.value)


def test_resolve_inside(tmp_path):
    root = tmp_path / "library"
    root.mkdir()
    target = resolve_inside(root, PurePosixPath("A/B/c.flac"))
    assert target == root.resolve() / "A" / "B" / "c.flac"
    for escape in ["../x.flac", "A/../../x.flac", "/etc/passwd", "."]:
        with pytest.raises(ValueError):
            resolve_inside(root, escape)


def test_resolve_inside_refuses_a_symlink_leading_out(tmp_path):
    root = tmp_path / "library"
    root.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "link").symlink_to(outside, target_is_directory=True)
    with pytest.raises(ValueError, match="outside"):
        resolve_inside(root, "link/x.flac")


def test_unique_destination_numbers_collisions(tmp_path):
    target = tmp_path / "03 - Title.flac"
    assert unique_destination(target) == target
    target.write_bytes(b"one")
    second = unique_destination(target)
    assert second == tmp_path / "03 - Title (2).flac"
    second.write_bytes(b"two")
    assert unique_destination(target) == tmp_path / "03 - Title (3).flac"


def test_unique_destination_finds_identical_content(tmp_path):
    target = tmp_path / "t.flac"
    target.write_bytes(b"one")
    (tmp_path / "t (2).flac").write_bytes(b"two")
    incoming = tmp_path / "incoming.flac"
    incoming.write_bytes(b"two")
    assert unique_destination(target, same_as=incoming) == tmp_path / "t (2).flac"
    incoming.write_bytes(b"six")  # same size, other bytes
    assert unique_destination(target, same_as=incoming) == tmp_path / "t (3).flac"


def test_unique_destination_keeps_long_names_within_255_bytes(tmp_path):
    name = "é" * 125 + ".flac"  # 255 bytes
    target = tmp_path / name
    target.write_bytes(b"x")
    numbered = unique_destination(target)
    assert numbered.name.endswith(" (2).flac")
    assert len(numbered.name.encode()) <= 255
    numbered.write_bytes(b"y")  # the filesystem accepts it
    assert numbered.exists()


def test_same_content(tmp_path):
    a, b, c = (tmp_path / n for n in "abc")
    a.write_bytes(b"payload")
    b.write_bytes(b"payload")
    c.write_bytes(b"payloaD")
    assert same_content(a, b)
    assert not same_content(a, c)
    assert not same_content(a, Path(os.devnull))
