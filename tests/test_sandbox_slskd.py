"""The sandbox's slskd emulator, over real HTTP on loopback."""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Iterator

import mutagen
import pytest
import requests

from harmony_pipeline.sandbox.catalog import Catalog, Track, build_catalog
from harmony_pipeline.sandbox.server import serve
from harmony_pipeline.sandbox.slskd import SEARCH_BUSY_MESSAGE, SlskdEmulator, local_destination
from harmony_pipeline.sandbox.soulseek_peers import Peer, PeerNetwork, SharedFile, parse_search_text

API_KEY = "test-api-key-0123456789"
EXPECTED_WALK = ["Requested", "Queued, Remotely", "Initializing", "InProgress", "Completed, Succeeded"]


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return build_catalog(seed=7)


@pytest.fixture(scope="module")
def network(catalog: Catalog) -> PeerNetwork:
    return PeerNetwork(catalog, seed=7)


@pytest.fixture()
def slskd(catalog: Catalog, network: PeerNetwork, tmp_path: Path) -> Iterator[SlskdEmulator]:
    emulator = SlskdEmulator(
        catalog, tmp_path / "downloads", api_key=API_KEY, peers=network,
        search_seconds=0.15, search_post_seconds=0.0, transfer_step_seconds=0.02,
    )
    with serve(emulator):
        yield emulator
    emulator.close()


class Client:
    def __init__(self, emulator: SlskdEmulator) -> None:
        self.api = emulator.api_url + "/api/v0"
        self.session = requests.Session()
        self.session.headers["X-API-Key"] = API_KEY

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.session.get(self.api + path, timeout=10, **kwargs)

    def post(self, path: str, body: Any) -> requests.Response:
        return self.session.post(self.api + path, json=body, timeout=10)

    def delete(self, path: str, **kwargs: Any) -> requests.Response:
        return self.session.delete(self.api + path, timeout=10, **kwargs)

    def search(self, text: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Start a search, poll until complete, return the final Search and its responses."""
        search_id = str(uuid.uuid4())
        assert self.post("/searches", {"id": search_id, "searchText": text}).status_code == 200
        state = self.wait_search(search_id)
        return state, self.get(f"/searches/{search_id}/responses").json()

    def wait_search(self, search_id: str) -> dict[str, Any]:
        for _ in range(500):
            state = self.get(f"/searches/{search_id}").json()
            if state["isComplete"]:
                return state
            time.sleep(0.01)
        raise AssertionError("search never completed")

    def wait_transfer(self, username: str, transfer_id: str) -> tuple[dict[str, Any], list[str]]:
        """Poll until the transfer completes; return it and the states seen on the way."""
        seen: list[str] = []
        for _ in range(1000):
            transfer = self.get(f"/transfers/downloads/{username}/{transfer_id}").json()
            if not seen or seen[-1] != transfer["state"]:
                seen.append(transfer["state"])
            if transfer["state"].startswith("Completed"):
                return transfer, seen
            time.sleep(0.01)
        raise AssertionError("transfer never completed")

    def enqueue(self, username: str, files: list[dict[str, Any]]) -> requests.Response:
        return self.post(f"/transfers/downloads/{username}", files)

    def enqueue_one(self, peer: Peer, shared: SharedFile, size: int | None = None) -> dict[str, Any]:
        response = self.enqueue(peer.username, [{"filename": shared.filename, "size": size or shared.size}])
        assert response.status_code == 201
        return response.json()["enqueued"][0]


@pytest.fixture()
def client(slskd: SlskdEmulator) -> Client:
    return Client(slskd)


def pick_file(network: PeerNetwork, *, kind: str = "target", extension: str = "flac", behaviour: str = "ok",
              skip: int = 0) -> tuple[Peer, SharedFile]:
    candidates = [
        (peer, shared) for peer, shared in network.all_files()
        if shared.kind == kind and shared.extension == extension and peer.behaviour == behaviour
        and peer.has_free_upload_slot and not shared.locked
    ]
    candidates.sort(key=lambda candidate: candidate[1].duration_s)  # short files write fastest
    return candidates[skip]


def plain_track(catalog: Catalog, network: PeerNetwork) -> tuple[Track, str]:
    """A track with correct copies whose artist and title are plain ASCII words, and its search text."""
    for _, shared in network.all_files():
        if not shared.is_correct:
            continue
        track = catalog.tracks[shared.track_id]
        text = f"{catalog.track_artists(track)[0].name} {track.name}"
        if re.fullmatch(r"[A-Za-z ]+", text):
            return track, text
    raise AssertionError("no plain track")


def album_search_text(catalog: Catalog, track_id: str) -> str:
    track = catalog.tracks[track_id]
    return f"{catalog.track_artists(track)[0].name} {catalog.albums[track.album_id].name}"


# -- auth, routes ------------------------------------------------------------------------------
def test_requests_without_the_api_key_get_401_with_an_empty_body(slskd: SlskdEmulator) -> None:
    url = slskd.api_url + "/api/v0/application"
    missing = requests.get(url, timeout=5)
    wrong = requests.get(url, headers={"X-API-Key": "nope"}, timeout=5)
    assert (missing.status_code, missing.content) == (401, b"")
    assert wrong.status_code == 401 and wrong.headers["WWW-Authenticate"] == "Bearer"


def test_routes_are_case_insensitive_and_tolerate_a_trailing_slash(client: Client, slskd: SlskdEmulator) -> None:
    response = client.session.get(slskd.api_url + "/API/V0/Server/", timeout=5)
    assert response.status_code == 200
    assert response.json()["state"] == "Connected, LoggedIn"
    assert client.get("/application").json()["version"]["current"] == slskd.version


def test_environment_points_at_the_emulator(slskd: SlskdEmulator) -> None:
    env = slskd.environment()
    assert env["SLSKD_URL"] == slskd.base_url and not env["SLSKD_URL"].endswith("/api/v0")
    assert env["SLSKD_API_KEY"] == API_KEY
    assert Path(env["SLSKD_DOWNLOADS_DIR"]) == slskd.downloads_dir
    assert env["SLSKD_REMOTE_DOWNLOADS_DIR"] == "/app/downloads"


# -- searches ----------------------------------------------------------------------------------
def test_search_runs_then_times_out_with_responses_only_at_completion(
    client: Client, catalog: Catalog, network: PeerNetwork
) -> None:
    track_id = next(t for t in catalog.tracks if network.scenario(t) == "normal")
    search_id = str(uuid.uuid4())
    started = client.post("/searches", {"id": search_id, "searchText": album_search_text(catalog, track_id)})
    assert started.status_code == 200
    body = started.json()
    assert (body["id"], body["state"], body["isComplete"], body["responseCount"]) == (search_id, "InProgress", False, 0)
    assert "endedAt" not in body
    assert client.get(f"/searches/{search_id}/responses").json() == []

    final = client.wait_search(search_id)
    responses = client.get(f"/searches/{search_id}/responses").json()
    assert final["state"] == "Completed, TimedOut" and "endedAt" in final
    assert final["responseCount"] == len(responses) > 0
    assert final["fileCount"] == sum(len(r["files"]) for r in responses)
    assert final["responses"] == []
    with_responses = client.get(f"/searches/{search_id}", params={"includeResponses": "True"}).json()
    assert with_responses["responses"] == responses
    assert all(r["token"] == final["token"] for r in responses)
    assert search_id in [s["id"] for s in client.get("/searches").json()]
    assert client.delete(f"/searches/{search_id}").status_code == 204
    assert client.get(f"/searches/{search_id}").status_code == 404
    assert client.delete(f"/searches/{search_id}").status_code == 404


def test_stopping_a_search_cancels_it(client: Client, slskd: SlskdEmulator) -> None:
    slskd.search_seconds = 30
    search_id = client.post("/searches", {"searchText": "Midnight Ferns"}).json()["id"]
    assert client.session.put(f"{client.api}/searches/{search_id}", timeout=5).status_code == 200
    state = client.get(f"/searches/{search_id}").json()
    assert (state["state"], state["isComplete"]) == ("Completed, Cancelled", True)
    assert client.session.put(f"{client.api}/searches/{uuid.uuid4()}", timeout=5).status_code == 404


def test_search_errors_are_json_strings(client: Client, slskd: SlskdEmulator) -> None:
    blank = client.post("/searches", {"searchText": "  "})
    assert blank.status_code == 400 and isinstance(blank.json(), str)
    slskd.busy_next_search_post()
    busy = client.post("/searches", {"searchText": "Storm"})
    assert (busy.status_code, busy.json()) == (429, SEARCH_BUSY_MESSAGE)
    assert client.post("/searches", {"searchText": "Storm"}).status_code == 200
    slskd.logged_in = False
    assert client.post("/searches", {"searchText": "Storm"}).status_code == 409
    assert client.get("/server").json()["isLoggedIn"] is False


def test_a_second_search_post_while_one_is_processed_gets_429(client: Client, slskd: SlskdEmulator) -> None:
    slskd.search_post_seconds = 0.5
    first: list[int] = []
    worker = threading.Thread(
        target=lambda: first.append(client.post("/searches", {"searchText": "Storm"}).status_code)
    )
    worker.start()
    second_client = Client(slskd)
    statuses = set()
    while worker.is_alive() and 429 not in statuses:
        statuses.add(second_client.post("/searches", {"searchText": "Rain"}).status_code)
    worker.join()
    # Whichever POST took the semaphore first succeeded; the other was refused while it was held.
    assert {200, 429} <= statuses | set(first)


def test_search_text_is_tokenised_like_soulseek() -> None:
    terms = parse_search_text("The  Midnight x FERNS -live -a")
    assert terms.include == ("the", "midnight", "ferns")
    assert terms.exclude == ("live",)


def test_search_matches_every_term_in_the_full_path_and_honours_exclusions(
    client: Client, catalog: Catalog, network: PeerNetwork
) -> None:
    track, plain_text = plain_track(catalog, network)
    artist = catalog.track_artists(track)[0].name
    text = plain_text.upper() + " x"
    _, responses = client.search(text)
    terms = parse_search_text(text)
    paths = [f["filename"].lower() for r in responses for f in r["files"] + r["lockedFiles"]]
    assert paths and all(all(term in path for term in terms.include) for path in paths)
    _, without_live = client.search(f"{artist} -live")
    excluded = [f["filename"] for r in without_live for f in r["files"]]
    assert excluded and not any("live" in name.lower() for name in excluded)


def test_a_track_search_returns_correct_copies_and_decoys(
    client: Client, catalog: Catalog, network: PeerNetwork
) -> None:
    track, text = plain_track(catalog, network)
    _, responses = client.search(text)
    verdicts = [network.is_correct(r["username"], f["filename"]) for r in responses for f in r["files"]]
    assert track.id in verdicts
    assert None in verdicts  # decoys, other songs or non-audio files
    assert all("isLocked" in f and f["isLocked"] is False for r in responses for f in r["lockedFiles"])


def test_the_network_holds_every_kind_of_decoy(network: PeerNetwork) -> None:
    kinds = {shared.kind for _, shared in network.all_files()}
    for kind in ["live", "live_folder", "remix", "radio_edit", "instrumental", "karaoke", "acoustic", "cover",
                 "same_title", "wrong_duration"]:
        assert f"decoy:{kind}" in kinds
    assert {"target:low_bitrate", "target:no_attributes", "target:busy", "locked", "hostile", "non_audio"} <= kinds
    files = [shared for _, shared in network.all_files()]
    assert any(not f.attributes and f.kind.startswith("target") for f in files)
    assert {f.extension for f in files} >= {"flac", "mp3", "m4a", "cue", "log", "jpg", "nfo"}
    assert any(f.attributes.get("bitDepth") == 24 for f in files)
    hostile = [f.filename for f in files if f.kind == "hostile"]
    assert hostile and all("..\\" in name for name in hostile)


def test_length_decoys_are_more_than_ten_seconds_off(catalog: Catalog, network: PeerNetwork) -> None:
    length_kinds = ("decoy:radio_edit", "decoy:wrong_duration", "decoy:original")
    decoys = [f for _, f in network.all_files() if f.kind in length_kinds]
    assert decoys
    for shared in decoys:
        wanted = catalog.tracks[shared.imitates].duration_ms / 1000
        assert abs(shared.duration_s - wanted) > 10
        assert shared.attributes.get("length", shared.duration_s) == shared.duration_s


def test_correct_copies_are_within_two_seconds(catalog: Catalog, network: PeerNetwork) -> None:
    for peer, shared in network.all_files():
        if network.is_correct(peer.username, shared.filename):
            assert abs(shared.duration_s - catalog.tracks[shared.track_id].duration_ms / 1000) <= 2


def test_album_search_returns_whole_folders(client: Client, catalog: Catalog, network: PeerNetwork) -> None:
    album = next(a for a in catalog.albums.values() if a.album_type == "album"
                 and all(network.scenario(t) == "normal" for t in a.track_ids))
    artist = catalog.album_artists(album)[0].name
    _, responses = client.search(f"{artist} {album.name}")
    per_peer = [{network.is_correct(r["username"], f["filename"]) for f in r["files"]} for r in responses]
    assert any(set(album.track_ids) <= found for found in per_peer)


def test_some_tracks_have_no_correct_file_and_some_only_locked_copies(
    client: Client, catalog: Catalog, network: PeerNetwork
) -> None:
    acquisition = catalog.playlist_tracks(catalog.playlists[catalog.acquisition_playlist_id])
    missing = [t for t in acquisition if t.id in network.tracks_without_correct_file]
    locked_only = [t for t in acquisition if t.id in network.locked_only_track_ids]
    assert len(missing) >= 3 and len(locked_only) >= 1
    for track in missing:
        assert network.correct_files(track.id) == []
    locked_track = locked_only[0]
    locked = [shared for _, shared in network.all_files()
              if shared.locked and shared.kind == "locked" and shared.track_id == locked_track.id]
    assert locked
    assert PeerNetwork(catalog, seed=7).tracks_without_correct_file == network.tracks_without_correct_file


# -- transfers ---------------------------------------------------------------------------------
def test_a_download_walks_the_states_and_writes_a_real_file(
    client: Client, slskd: SlskdEmulator, network: PeerNetwork
) -> None:
    slskd.transfer_step_seconds = 0.1  # slow enough for the poll to see the states on the way
    peer, shared = pick_file(network)
    enqueued = client.enqueue_one(peer, shared)
    assert enqueued["state"] == "Requested" and enqueued["filename"] == shared.filename
    transfer, seen = client.wait_transfer(peer.username, enqueued["id"])
    assert seen == [state for state in EXPECTED_WALK if state in seen] and len(seen) >= 3
    assert transfer["state"] == "Completed, Succeeded"
    assert transfer["bytesTransferred"] == transfer["size"] and transfer["percentComplete"] == 100
    assert "endedAt" in transfer and "exception" not in transfer

    parts = shared.filename.split("\\")
    on_disk = slskd.downloads_dir / parts[-2] / parts[-1]
    audio = mutagen.File(on_disk)
    assert audio is not None and abs(audio.info.length - shared.attributes["length"]) < 1

    listing = client.get("/transfers/downloads/").json()
    user = next(u for u in listing if u["username"] == peer.username)
    directory = user["directories"][0]
    assert directory["directory"] == shared.filename.rsplit("\\", 1)[0]
    assert directory["files"][0]["id"] == enqueued["id"]
    assert client.get(f"/transfers/downloads/{peer.username}").json()["username"] == peer.username


def test_a_wrong_duration_decoy_really_has_the_wrong_duration(
    client: Client, slskd: SlskdEmulator, network: PeerNetwork
) -> None:
    peer, shared = pick_file(network, kind="decoy:wrong_duration", extension="mp3")
    transfer, _ = client.wait_transfer(peer.username, client.enqueue_one(peer, shared)["id"])
    assert transfer["state"] == "Completed, Succeeded"
    event = next(json.loads(e["data"]) for e in client.get("/events").json() if e["type"] == "DownloadFileComplete")
    local = slskd.downloads_dir / Path(event["localFilename"]).relative_to("/app/downloads")
    assert abs(mutagen.File(local).info.length - shared.duration_s) < 1


def test_download_events_name_the_file_as_slskd_sees_it(
    client: Client, slskd: SlskdEmulator, network: PeerNetwork
) -> None:
    files = [pick_file(network, skip=index) for index in range(2)]
    for peer, shared in files:
        client.wait_transfer(peer.username, client.enqueue_one(peer, shared)["id"])
    response = client.get("/events", params={"offset": 0, "limit": 100})
    events = response.json()
    completions = [e for e in events if e["type"] == "DownloadFileComplete"]
    assert int(response.headers["X-Total-Count"]) == len(events) >= 2
    newest_first = [json.loads(e["data"])["remoteFilename"] for e in completions[:2]]
    assert newest_first == [files[1][1].filename, files[0][1].filename]
    for event in completions:
        data = json.loads(event["data"])
        assert isinstance(event["data"], str) and data["localFilename"].startswith("/app/downloads/")
        assert (slskd.downloads_dir / Path(data["localFilename"]).relative_to("/app/downloads")).is_file()
    assert len(client.get("/events", params={"offset": 1, "limit": 1}).json()) == 1


@pytest.mark.parametrize(
    ("version", "failed_entry"), [("0.23.3", None), ("0.24.1", "name"), ("0.25.1", "name"), ("0.26.0", {})]
)
def test_enqueue_answers_201_in_each_version_style_without_duplicating(
    client: Client, slskd: SlskdEmulator, network: PeerNetwork, version: str, failed_entry: Any
) -> None:
    slskd.version = version
    slskd.script_outcome("TimedOut", times=None)  # keep the first copy queued
    peer, shared = pick_file(network)
    files = [{"filename": shared.filename, "size": shared.size, "extra": "ignored"}]
    first, second = client.enqueue(peer.username, files), client.enqueue(peer.username, files)
    assert (first.status_code, second.status_code) == (201, 201)
    if failed_entry is None:
        assert first.content == second.content == b""
    else:
        assert len(first.json()["enqueued"]) == 1 and second.json()["enqueued"] == []
        assert second.json()["failed"] == [shared.filename if failed_entry == "name" else {}]
        transfer = first.json()["enqueued"][0]
        assert ("startOffset" in transfer) == (version < "0.26") and ("attempts" in transfer) == (version >= "0.25")
    user = client.get(f"/transfers/downloads/{peer.username}").json()
    assert sum(d["fileCount"] for d in user["directories"]) == 1


def test_scripted_and_peer_failures(client: Client, slskd: SlskdEmulator, network: PeerNetwork) -> None:
    peer, shared = pick_file(network)
    slskd.script_outcome("Rejected", username=peer.username, filename=shared.filename)
    rejected, _ = client.wait_transfer(peer.username, client.enqueue_one(peer, shared)["id"])
    assert (rejected["state"], rejected["exception"]) == ("Completed, Rejected", "File not shared.")

    admin = requests.post(slskd.base_url + "/_sandbox/slskd/outcomes", json={"outcome": "Errored"}, timeout=5)
    assert admin.status_code == 200 and admin.json()[0]["outcome"] == "Errored"
    errored, _ = client.wait_transfer(peer.username, client.enqueue_one(peer, shared)["id"])
    assert errored["state"] == "Completed, Errored" and errored["exception"]
    assert errored["bytesTransferred"] < errored["size"]

    aborted, _ = client.wait_transfer(peer.username, client.enqueue_one(peer, shared, size=shared.size + 1)["id"])
    assert aborted["state"] == "Completed, Aborted"

    rejecting_peer, rejecting_file = pick_file(network, behaviour="rejects", extension="mp3")
    by_peer, _ = client.wait_transfer(rejecting_peer.username, client.enqueue_one(rejecting_peer, rejecting_file)["id"])
    assert by_peer["state"] == "Completed, Rejected"
    assert not any(slskd.downloads_dir.rglob("*.*"))


def test_a_corrupt_download_does_not_decode(client: Client, slskd: SlskdEmulator, network: PeerNetwork) -> None:
    peer, shared = pick_file(network)
    slskd.script_outcome("Corrupt")
    transfer, _ = client.wait_transfer(peer.username, client.enqueue_one(peer, shared)["id"])
    assert transfer["state"] == "Completed, Succeeded"
    written = [p for p in slskd.downloads_dir.rglob("*") if p.is_file()]
    assert len(written) == 1
    try:
        audio = mutagen.File(written[0])
    except mutagen.MutagenError:
        audio = None
    assert audio is None


def test_enqueue_errors(client: Client, network: PeerNetwork) -> None:
    peer, shared = pick_file(network)
    hostile_peer, hostile = next((p, f) for p, f in network.all_files() if f.kind == "hostile")
    assert client.enqueue(peer.username, []).status_code == 400
    refused = client.enqueue(hostile_peer.username, [{"filename": hostile.filename, "size": hostile.size}])
    assert refused.status_code == 400 and isinstance(refused.json(), str)
    offline = client.enqueue("nobody-here", [{"filename": shared.filename, "size": shared.size}])
    assert offline.status_code == 500 and isinstance(offline.json(), str)
    assert client.get("/transfers/downloads/nobody-here").status_code == 404
    assert client.get(f"/transfers/downloads/{peer.username}/not-a-guid").status_code == 400
    assert client.get(f"/transfers/downloads/{peer.username}/{uuid.uuid4()}").status_code == 404


def test_cancel_remove_and_clear_completed(client: Client, slskd: SlskdEmulator, network: PeerNetwork) -> None:
    peer, shared = pick_file(network)
    slskd.script_outcome("TimedOut")
    slskd.transfer_step_seconds = 30  # stays queued until cancelled
    transfer_id = client.enqueue_one(peer, shared)["id"]
    path = f"/transfers/downloads/{peer.username}/{transfer_id}"
    assert client.delete(path, params={"remove": "False"}).status_code == 204
    cancelled = client.get(path).json()
    assert cancelled["state"] == "Completed, Cancelled" and cancelled["removed"] is False
    assert client.delete(path, params={"remove": "true"}).status_code == 204
    assert client.get("/transfers/downloads").json() == []
    assert len(client.get("/transfers/downloads", params={"includeRemoved": "TRUE"}).json()) == 1
    assert client.delete(f"/transfers/downloads/{peer.username}/{uuid.uuid4()}").status_code == 404
    assert client.delete("/transfers/downloads/all/completed").status_code == 204


def test_user_names_with_spaces_and_accents_travel_in_the_path(client: Client, network: PeerNetwork) -> None:
    peer = network.peers["night owl 77"]
    shared = peer.files[0]
    transfer = client.enqueue_one(peer, shared)
    assert client.get(f"/transfers/downloads/{peer.username}/{transfer['id']}").json()["username"] == "night owl 77"


# -- local file names --------------------------------------------------------------------------
@pytest.mark.parametrize("remote", [
    "..\\..\\x.mp3",
    "@@abc\\Music\\..\\..\\..\\etc\\passwd.mp3",
    "@@abc\\..\\..",
    "@@abc\\Music\\AC/DC\\..\\..\\/etc/shadow.flac",
    "x.mp3",
    "\\\\server\\share\\.\\track.flac",
])
def test_local_names_never_leave_the_downloads_folder(tmp_path: Path, remote: str) -> None:
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    target = local_destination(downloads, remote)
    assert target.resolve().is_relative_to(downloads.resolve())
    assert target.parent in (downloads, downloads / target.parent.name)


def test_a_name_collision_is_renamed_with_ticks(client: Client, slskd: SlskdEmulator, network: PeerNetwork) -> None:
    peer, shared = pick_file(network)
    for _ in range(2):
        client.wait_transfer(peer.username, client.enqueue_one(peer, shared)["id"])
    events = [json.loads(e["data"]) for e in client.get("/events").json() if e["type"] == "DownloadFileComplete"]
    second, first = (Path(e["localFilename"]) for e in events)
    assert first.name == shared.filename.rsplit("\\", 1)[-1]
    assert second.stem.startswith(first.stem + "_") and second.stem.rsplit("_", 1)[1].isdigit()
    assert second.suffix == first.suffix


def test_the_sandbox_starts_it_and_exports_its_environment(tmp_path: Path) -> None:
    from harmony_pipeline.sandbox import Sandbox

    with Sandbox(tmp_path, slskd_version="0.26.0", slskd_api_key=API_KEY) as sandbox:
        emulator = sandbox.emulator("slskd")
        assert isinstance(emulator, SlskdEmulator) and emulator.version == "0.26.0"
        env = sandbox.env
        assert env["SLSKD_URL"] == sandbox.url("slskd") and env["SLSKD_API_KEY"] == API_KEY
        assert Path(env["SLSKD_DOWNLOADS_DIR"]).is_dir() and env["SLSKD_REMOTE_DOWNLOADS_DIR"] == "/app/downloads"
        server = requests.get(env["SLSKD_URL"] + "/api/v0/server", headers={"X-API-Key": API_KEY}, timeout=5)
        assert server.json()["isLoggedIn"] is True
        emulator.close()
