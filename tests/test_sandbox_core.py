"""Sandbox framework, catalog, images and audio: real HTTP on loopback, real files read back."""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import mutagen
import pytest
import requests
import soundfile
from PIL import Image

from harmony_pipeline.sandbox import EMULATOR_MODULES, Sandbox, export_lines
from harmony_pipeline.sandbox.audio import write_audio, write_corrupt_audio
from harmony_pipeline.sandbox.catalog import build_catalog
from harmony_pipeline.sandbox.images import jpeg_bytes, png_bytes
from harmony_pipeline.sandbox.server import Emulator, Fault, Request, Response, json_response, serve

REPO_ROOT = Path(__file__).resolve().parents[1]


class EchoEmulator(Emulator):
    name = "echo"

    def __init__(self) -> None:
        super().__init__()
        self.add_route("GET", "/things/{thing_id}", self.thing)
        self.add_route("POST", "/things", self.create)
        self.add_route("GET", "/Users/{name}", self.thing, case_insensitive=True)

    def thing(self, request: Request) -> Response:
        return json_response({"params": request.params, "query": request.query})

    def create(self, request: Request) -> Response:
        return json_response({"received": request.json()}, 201)


@pytest.fixture
def echo():
    running = serve(EchoEmulator())
    yield running
    running.stop()


def test_routes_decode_path_fields_and_tolerate_trailing_slash(echo):
    answer = requests.get(f"{echo.base_url}/things/peer%20one/?limit=5", timeout=5)
    assert answer.status_code == 200
    assert answer.json() == {"params": {"thing_id": "peer one"}, "query": {"limit": "5"}}
    assert requests.get(f"{echo.base_url}/users/Alice", timeout=5).json()["params"] == {"name": "Alice"}
    assert requests.get(f"{echo.base_url}/THINGS/x", timeout=5).status_code == 404  # case-sensitive route
    assert requests.delete(f"{echo.base_url}/things/x", timeout=5).status_code == 405


def test_request_log_records_method_path_query_headers_body_and_status(echo):
    requests.post(f"{echo.base_url}/things?dry=1", json={"a": 1}, headers={"X-API-Key": "k"}, timeout=5)
    [entry] = echo.emulator.requests()
    assert (entry.method, entry.path, entry.query, entry.status) == ("POST", "/things", {"dry": "1"}, 201)
    assert entry.headers["X-API-Key"] == "k"
    assert entry.body == b'{"a": 1}'
    echo.emulator.clear_requests()
    assert echo.emulator.requests() == []


def test_fault_fires_given_number_of_times_with_retry_after(echo):
    echo.emulator.add_fault(Fault(pattern=r"^/things/", status=429, retry_after=7, times=2))
    statuses = [requests.get(f"{echo.base_url}/things/1", timeout=5) for _ in range(3)]
    assert [r.status_code for r in statuses] == [429, 429, 200]
    assert statuses[0].headers["Retry-After"] == "7"
    assert [e.status for e in echo.emulator.requests()] == [429, 429, 200]


def test_fault_limited_to_method_and_pattern(echo):
    echo.emulator.add_fault(Fault(pattern=r"^/things$", status=503, method="POST"))
    assert requests.get(f"{echo.base_url}/things/1", timeout=5).status_code == 200
    assert requests.post(f"{echo.base_url}/things", json={}, timeout=5).status_code == 503
    assert requests.post(f"{echo.base_url}/things", json={}, timeout=5).status_code == 503  # always


def test_delay_fault_slows_a_reply_past_the_client_timeout(echo):
    echo.emulator.add_fault(Fault(pattern="/things/slow", delay=1.0, times=1))
    with pytest.raises(requests.Timeout):
        requests.get(f"{echo.base_url}/things/slow", timeout=0.2)
    assert requests.get(f"{echo.base_url}/things/slow", timeout=5).status_code == 200


def test_admin_routes_switch_faults_and_read_the_log_from_outside(echo):
    admin = f"{echo.base_url}/_sandbox"
    listed = requests.post(f"{admin}/faults", json={"pattern": "/things", "status": 500}, timeout=5).json()
    assert listed[0]["status"] == 500
    assert requests.get(f"{echo.base_url}/things/1", timeout=5).status_code == 500
    requests.post(f"{admin}/faults", json={"clear": True}, timeout=5)
    assert requests.get(f"{admin}/faults", timeout=5).json() == []
    assert requests.get(f"{echo.base_url}/things/1", timeout=5).status_code == 200
    log = requests.get(f"{admin}/requests", timeout=5).json()
    assert [(e["path"], e["status"]) for e in log] == [("/things/1", 500), ("/things/1", 200)]
    assert requests.post(f"{admin}/latency", json={"seconds": 0.25}, timeout=5).json() == {"seconds": 0.25}
    assert echo.emulator.latency == 0.25
    requests.delete(f"{admin}/requests", timeout=5)
    assert echo.emulator.requests() == []


def test_stop_closes_listener_and_kept_alive_connections():
    running = serve(EchoEmulator())
    session = requests.Session()
    assert session.get(f"{running.base_url}/things/1", timeout=5).status_code == 200
    running.stop()
    assert not running.thread.is_alive()
    with pytest.raises(requests.ConnectionError):
        session.get(f"{running.base_url}/things/1", timeout=2)


def test_catalog_is_deterministic_and_varied():
    catalog = build_catalog(7)
    again = build_catalog(7)
    assert list(catalog.tracks) == list(again.tracks)
    assert [t.isrc for t in catalog.tracks.values()] == [t.isrc for t in again.tracks.values()]
    assert list(build_catalog(8).tracks) != list(catalog.tracks)

    assert len(catalog.artists) == 30 and 50 <= len(catalog.albums) <= 70 and 500 <= len(catalog.tracks) <= 700
    assert {a.script for a in catalog.artists.values()} == {"latin", "japanese", "cyrillic"}
    assert any("/" in a.name for a in catalog.artists.values())
    assert any(a.name.startswith("The ") and a.sort_name.endswith(", The") for a in catalog.artists.values())
    assert any(not a.genres for a in catalog.artists.values()) and any(a.genres for a in catalog.artists.values())
    assert any(a.disc_count == 2 for a in catalog.albums.values())
    assert {a.album_type for a in catalog.albums.values()} >= {"album", "single"}
    assert {a.release_date_precision for a in catalog.albums.values()} == {"day", "month", "year"}
    assert any(len(t.artist_ids) > 1 and "feat." in t.name for t in catalog.tracks.values())
    assert any(" - Remaster" in t.name for t in catalog.tracks.values())
    assert all(150_000 <= t.duration_ms <= 330_000 for t in catalog.tracks.values())
    kinds = Counter(t.lyrics.kind if t.lyrics else None for t in catalog.tracks.values())
    assert kinds.keys() == {"synced", "plain", "instrumental", None}
    assert any(a.cover is None for a in catalog.albums.values()) and any(a.cover for a in catalog.albums.values())
    assert any(t.recording is None for t in catalog.tracks.values())
    # Producer credits sometimes only on the release.
    assert any(t.recording and not t.recording.producers for t in catalog.tracks.values())
    # A single shares its recording's ISRC with the album track.
    assert any(len(catalog.tracks_by_isrc(t.isrc)) > 1 for t in catalog.tracks.values())


def test_catalog_playlists_and_mutations():
    catalog = build_catalog(7)
    big = catalog.playlists[catalog.big_playlist_id]
    assert len(big.entries) > 50 and {e.kind for e in big.entries} == {"track", "local", "unavailable"}
    assert len(catalog.playlist_tracks(catalog.playlists[catalog.acquisition_playlist_id])) == 40
    foreign = catalog.playlists[catalog.foreign_playlist_id]
    assert not catalog.can_read_items(foreign, catalog.me)
    assert catalog.can_read_items(catalog.playlists[catalog.collaborative_playlist_id], catalog.me)

    small = catalog.playlists[catalog.small_playlist_id]
    before = small.snapshot_id
    new_track = next(t for t in catalog.tracks.values() if t.id not in {e.track_id for e in small.entries})
    catalog.add_playlist_track(small.id, new_track.id)
    assert small.snapshot_id != before and small.entries[-1].track_id == new_track.id
    catalog.remove_playlist_track(small.id, new_track.id)
    assert new_track.id not in {e.track_id for e in small.entries}

    artist = next(iter(catalog.artists.values()))
    album = catalog.add_album(artist.id, name="Brand New Day", track_count=3)
    assert artist.album_ids[-1] == album.id and album.release_date == "2026-11-20"
    assert [catalog.tracks[t].track_number for t in album.track_ids] == [1, 2, 3]


def test_synced_lyrics_have_increasing_timestamps_inside_the_track():
    catalog = build_catalog(7)
    track = next(t for t in catalog.tracks.values() if t.lyrics and t.lyrics.kind == "synced")
    stamps = []
    for line in track.lyrics.synced.splitlines():
        minutes, seconds = line[1:9].split(":")
        stamps.append(int(minutes) * 60 + float(seconds))
    assert stamps == sorted(stamps) and 0 < stamps[0] and stamps[-1] < track.duration_ms / 1000


@pytest.mark.parametrize(("maker", "image_format"), [(jpeg_bytes, "JPEG"), (png_bytes, "PNG")])
def test_images_have_requested_dimensions_and_are_deterministic(maker, image_format):
    data = maker(640, 300, "album-1")
    with Image.open(io.BytesIO(data)) as image:
        assert (image.format, image.size) == (image_format, (640, 300))
    assert maker(640, 300, "album-1") == data
    assert maker(640, 300, "album-2") != data


@pytest.mark.parametrize("fmt", ["mp3", "flac"])
def test_written_audio_decodes_with_the_requested_duration(tmp_path, fmt):
    path = write_audio(tmp_path / f"tone.{fmt}", fmt, 37)
    assert abs(mutagen.File(path).info.length - 37) <= 1
    assert abs(soundfile.info(str(path)).duration - 37) <= 1


def test_corrupt_audio_does_not_decode(tmp_path):
    path = write_corrupt_audio(tmp_path / "broken.mp3")
    assert path.stat().st_size > 0
    with pytest.raises(mutagen.MutagenError):
        mutagen.File(path)


def _free_port_range(count: int) -> int:
    """The first of `count` consecutive loopback ports that were all free a moment ago (other processes on
    the machine take ports too: one free port says nothing of its neighbours)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = probe.getsockname()[1]
        if base + count > 65535:
            continue
        probes = []
        try:
            for port in range(base, base + count):
                sock = socket.socket()
                probes.append(sock)
                sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for sock in probes:
                sock.close()
    raise AssertionError("no range of free loopback ports found")


def test_sandbox_env_and_fixed_ports(tmp_path):
    with Sandbox(tmp_path) as sandbox:
        env = sandbox.env
        assert env["SPOTIFY_API_URL"] == sandbox.url("spotify") + "/v1/"
        assert requests.get(env["SPOTIFY_API_URL"] + "me", timeout=5).status_code == 401
    with pytest.raises(requests.ConnectionError):
        requests.get(env["SPOTIFY_API_URL"] + "me", timeout=2)

    port_base = _free_port_range(len(EMULATOR_MODULES))
    with Sandbox(tmp_path, port_base=port_base) as sandbox:
        assert sandbox.url("spotify") == f"http://127.0.0.1:{port_base}"
    assert "export HARMONY_PLAYLISTS=" in export_lines(env)


def test_run_forever_writes_env_file_and_stops_on_sigterm(tmp_path):
    env_file = tmp_path / "sandbox.env"
    code = "import sys; from harmony_pipeline.sandbox import run_forever; run_forever(sys.argv[1], env_file=sys.argv[2])"
    process = subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path / "root"), str(env_file)],
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        start_new_session=True,
    )
    try:
        for _ in range(200):
            if env_file.exists() and env_file.stat().st_size:
                break
            time.sleep(0.05)
        exports = dict(line.removeprefix("export ").split("=", 1) for line in env_file.read_text().splitlines())
        assert requests.get(exports["SPOTIFY_API_URL"] + "me", timeout=5).status_code == 401
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
