"""The Spotify emulator driven by the real, unchanged spotipy client over loopback HTTP."""

from __future__ import annotations

import base64
import hashlib
import io
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import spotipy
from PIL import Image
from spotipy.cache_handler import MemoryCacheHandler
from spotipy.oauth2 import SpotifyClientCredentials, SpotifyOAuth, SpotifyOauthError, SpotifyPKCE

from harmony_pipeline.sandbox.catalog import build_catalog
from harmony_pipeline.sandbox.server import Fault, serve
from harmony_pipeline.sandbox.spotify import SpotifyEmulator

REDIRECT_URI = "http://127.0.0.1:8888/callback"


@pytest.fixture(scope="module")
def catalog():
    return build_catalog(7)


@pytest.fixture
def server(catalog):
    running = serve(SpotifyEmulator(catalog))
    yield running
    running.stop()


@pytest.fixture
def emulator(server) -> SpotifyEmulator:
    return server.emulator


def api_client(server, token: str, **options) -> spotipy.Spotify:
    client = spotipy.Spotify(auth=token, **options)
    client.prefix = f"{server.base_url}/v1/"
    return client


@pytest.fixture
def user_client(server, emulator):
    return api_client(server, emulator.issue_access_token(emulator.catalog.me))


def test_client_credentials_flow(server, emulator, catalog):
    class Credentials(SpotifyClientCredentials):
        OAUTH_TOKEN_URL = f"{server.base_url}/api/token"

    auth = Credentials(emulator.client_id, emulator.client_secret, cache_handler=MemoryCacheHandler())
    client = spotipy.Spotify(auth_manager=auth)
    client.prefix = f"{server.base_url}/v1/"
    track = next(iter(catalog.tracks.values()))
    assert client.track(track.id)["external_ids"]["isrc"] == track.isrc

    token_request = emulator.requests()[0]
    assert token_request.path == "/api/token" and token_request.body == b"grant_type=client_credentials"
    expected = base64.b64encode(f"{emulator.client_id}:{emulator.client_secret}".encode()).decode()
    assert token_request.headers["Authorization"] == f"Basic {expected}"
    assert emulator.requests()[1].headers["Authorization"].startswith("Bearer ")

    wrong = Credentials(emulator.client_id, "not-the-secret", cache_handler=MemoryCacheHandler())
    with pytest.raises(SpotifyOauthError) as raised:
        wrong.get_access_token(as_dict=False)
    assert raised.value.error == "invalid_client"


def test_app_token_cannot_read_user_data(server, emulator, catalog):
    client = api_client(server, emulator.issue_access_token(None))
    with pytest.raises(spotipy.SpotifyException) as raised:
        client.playlist_items(catalog.small_playlist_id)
    assert raised.value.http_status == 403


def test_refresh_token_flow_reads_the_user(server, emulator, catalog):
    class OAuth(SpotifyOAuth):
        OAUTH_TOKEN_URL = f"{server.base_url}/api/token"
        OAUTH_AUTHORIZE_URL = f"{server.base_url}/authorize"

    auth = OAuth(emulator.client_id, emulator.client_secret, REDIRECT_URI, cache_handler=MemoryCacheHandler())
    token_info = auth.refresh_access_token(emulator.user_refresh_token)
    assert token_info["refresh_token"] == emulator.user_refresh_token  # kept when the answer omits it
    assert token_info["expires_in"] == emulator.token_lifetime
    assert api_client(server, token_info["access_token"]).me()["id"] == catalog.me

    with pytest.raises(SpotifyOauthError) as raised:
        auth.refresh_access_token("revoked-token")
    assert raised.value.error == "invalid_grant"


def test_authorization_code_with_pkce(server, emulator, catalog):
    class Pkce(SpotifyPKCE):
        OAUTH_TOKEN_URL = f"{server.base_url}/api/token"
        OAUTH_AUTHORIZE_URL = f"{server.base_url}/authorize"

    auth = Pkce(emulator.client_id, REDIRECT_URI, scope="playlist-read-private", state="xyz",
                cache_handler=MemoryCacheHandler(), open_browser=False)
    answer = requests.get(auth.get_authorize_url(), allow_redirects=False, timeout=5)
    assert answer.status_code == 302
    location = urlsplit(answer.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT_URI
    query = parse_qs(location.query)
    assert query["state"] == ["xyz"]
    token = auth.get_access_token(query["code"][0], check_cache=False)
    assert api_client(server, token).me()["id"] == catalog.me

    # A code is bound to its challenge: a wrong verifier is refused.
    verifier = "v" * 64
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    answer = requests.get(f"{server.base_url}/authorize", allow_redirects=False, timeout=5, params={
        "client_id": emulator.client_id, "response_type": "code", "redirect_uri": REDIRECT_URI,
        "code_challenge_method": "S256", "code_challenge": challenge})
    code = parse_qs(urlsplit(answer.headers["Location"]).query)["code"][0]
    refused = requests.post(f"{server.base_url}/api/token", timeout=5, data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI,
        "client_id": emulator.client_id, "code_verifier": "w" * 64})
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"


def test_authorize_rejects_localhost_redirect(server, emulator):
    answer = requests.get(f"{server.base_url}/authorize", allow_redirects=False, timeout=5, params={
        "client_id": emulator.client_id, "response_type": "code", "redirect_uri": "http://localhost:8888/cb"})
    assert answer.status_code == 400


def test_paging_a_big_playlist_follows_absolute_next_urls(server, user_client, catalog):
    playlist = catalog.playlists[catalog.big_playlist_id]
    page = user_client.playlist_items(playlist.id, limit=50)
    entries = list(page["items"])
    while page["next"]:
        assert page["next"].startswith(f"{server.base_url}/v1/playlists/{playlist.id}/items?")
        page = user_client.next(page)
        entries.extend(page["items"])
    assert len(entries) == len(playlist.entries) > 50
    track_ids = [e["item"]["id"] for e in entries if e["item"] and not e["is_local"]]
    assert track_ids == [e.track_id for e in playlist.entries if e.kind == "track"]
    assert sum(e["is_local"] for e in entries) == 1
    assert sum(e["item"] is None for e in entries) == 1


def test_playlist_object_embeds_items_and_filters_fields(server, user_client, catalog):
    playlist = catalog.playlists[catalog.big_playlist_id]
    data = user_client.playlist(playlist.id)
    assert data["snapshot_id"] == playlist.snapshot_id
    assert data["items"]["limit"] == 100 and len(data["items"]["items"]) == 100
    assert data["items"]["next"] == f"{server.base_url}/v1/playlists/{playlist.id}/items?offset=100&limit=100"
    assert "item" in data["items"]["items"][0] and "tracks" not in data

    cheap = user_client.playlist(playlist.id, fields="snapshot_id,name,owner(id)")
    assert cheap == {"snapshot_id": playlist.snapshot_id, "name": playlist.name, "owner": {"id": catalog.me}}


def test_snapshot_changes_when_the_playlist_changes(user_client, catalog):
    playlist_id = catalog.small_playlist_id
    before = user_client.playlist(playlist_id, fields="snapshot_id")["snapshot_id"]
    added = next(t for t in catalog.tracks if t not in {e.track_id for e in catalog.playlists[playlist_id].entries})
    catalog.add_playlist_track(playlist_id, added)
    try:
        assert user_client.playlist(playlist_id, fields="snapshot_id")["snapshot_id"] != before
        assert added in [e["item"]["id"] for e in user_client.playlist_items(playlist_id)["items"]]
    finally:
        catalog.remove_playlist_track(playlist_id, added)


def test_legacy_shape_switch(catalog):
    with serve(SpotifyEmulator(catalog, legacy_shape=True)) as running:
        client = api_client(running, running.emulator.issue_access_token(catalog.me))
        data = client.playlist(catalog.small_playlist_id)
        assert "items" not in data and "track" in data["tracks"]["items"][0]


def test_not_owned_playlist_metadata_but_403_on_items(user_client, catalog):
    foreign = user_client.playlist(catalog.foreign_playlist_id)
    assert foreign["owner"]["id"] != catalog.me and "items" not in foreign
    with pytest.raises(spotipy.SpotifyException) as raised:
        user_client.playlist_items(catalog.foreign_playlist_id)
    assert raised.value.http_status == 403
    shared = user_client.playlist_items(catalog.collaborative_playlist_id)
    assert shared["total"] == len(catalog.playlists[catalog.collaborative_playlist_id].entries)


@pytest.mark.parametrize(
    "call",
    [
        lambda client, c: client.playlist_items(c.big_playlist_id, limit=51),
        lambda client, c: client.search("a", limit=11),
        lambda client, c: client.artist_albums(next(iter(c.artists))),  # spotipy's default limit=20
    ],
    ids=["playlist-items-51", "search-11", "artist-albums-20"],
)
def test_dev_mode_limits_answer_400_invalid_limit(user_client, catalog, call):
    with pytest.raises(spotipy.SpotifyException) as raised:
        call(user_client, catalog)
    assert raised.value.http_status == 400 and "Invalid limit" in raised.value.msg


def test_removed_batch_endpoints_answer_403(user_client, catalog):
    with pytest.raises(spotipy.SpotifyException) as raised:
        user_client.tracks(list(catalog.tracks)[:2])
    assert raised.value.http_status == 403


def test_track_and_album_shapes_with_real_images(user_client, catalog):
    album = next(a for a in catalog.albums.values() if a.disc_count == 2)
    track = catalog.tracks[album.track_ids[-1]]
    data = user_client.track(track.id)
    assert data["external_ids"] == {"isrc": track.isrc}
    assert (data["disc_number"], data["duration_ms"]) == (2, track.duration_ms)
    assert data["album"]["release_date_precision"] == album.release_date_precision
    sizes = []
    for image in data["album"]["images"]:
        with Image.open(io.BytesIO(requests.get(image["url"], timeout=5).content)) as picture:
            assert picture.format == "JPEG"
            sizes.append((picture.size, (image["width"], image["height"])))
    assert sizes == [((s, s), (s, s)) for s in (640, 300, 64)]

    full = user_client.album(album.id)
    assert {c["type"] for c in full["copyrights"]} == {"C", "P"}
    assert full["external_ids"]["upc"] == album.upc and "label" not in full
    page = user_client.album_tracks(album.id, limit=7)
    ids = [t["id"] for t in page["items"]]
    while page["next"]:
        page = user_client.next(page)
        ids.extend(t["id"] for t in page["items"])
    assert ids == album.track_ids


def test_artist_and_artist_albums_paging(user_client, catalog):
    artist = max(catalog.artists.values(), key=lambda a: len(a.album_ids))
    assert user_client.artist(artist.id)["genres"] == artist.genres
    page = user_client.artist_albums(artist.id, include_groups="album,single", limit=1)
    seen = [a["id"] for a in page["items"]]
    while page["next"]:
        assert "include_groups=album%2Csingle" in page["next"]
        page = user_client.next(page)
        seen.extend(a["id"] for a in page["items"])
    assert sorted(seen) == sorted(artist.album_ids)


def test_search_filters(user_client, catalog):
    shared_isrc = next(t.isrc for t in catalog.tracks.values() if len(catalog.tracks_by_isrc(t.isrc)) > 1)
    found = user_client.search(f"isrc:{shared_isrc}", type="track", limit=10)["tracks"]["items"]
    assert sorted(t["id"] for t in found) == sorted(t.id for t in catalog.tracks_by_isrc(shared_isrc))

    track = next(t for t in catalog.tracks.values() if catalog.artists[t.artist_ids[0]].name == "Sólveig Rós")
    album = catalog.albums[track.album_id]
    query = f'track:"{track.name}" artist:"Solveig Ros" album:"{album.name}"'  # accents are not needed
    found = user_client.search(query, type="track", limit=10)["tracks"]["items"]
    assert [t["id"] for t in found] == [track.id]
    assert user_client.search('track:"no such title anywhere"', type="track")["tracks"]["total"] == 0


def test_invalid_and_expired_tokens_answer_401(server, emulator):
    for token in ("not-a-token", emulator.issue_access_token(emulator.catalog.me)):
        emulator.expire_access_tokens()
        answer = requests.get(f"{server.base_url}/v1/me", headers={"Authorization": f"Bearer {token}"}, timeout=5)
        assert answer.status_code == 401
        assert answer.json()["error"]["status"] == 401
    assert answer.json()["error"]["message"] == "The access token expired"


def test_429_with_retry_after_reaches_a_client_without_retries(server, emulator, catalog):
    emulator.add_fault(Fault(pattern=r"^/v1/search", status=429, retry_after=42, times=1))
    client = api_client(server, emulator.issue_access_token(catalog.me), retries=0,
                        status_forcelist=(500, 502, 503, 504))
    with pytest.raises(spotipy.SpotifyException) as raised:
        client.search("a", type="track")
    assert raised.value.http_status == 429 and raised.value.headers["Retry-After"] == "42"
    assert client.search("a", type="track", limit=3)["tracks"]["limit"] == 3


def test_spotipy_retries_an_injected_5xx_and_the_log_shows_both_attempts(server, emulator, catalog):
    emulator.add_fault(Fault(pattern=r"^/v1/me$", status=503, times=1))
    client = api_client(server, emulator.issue_access_token(catalog.me))
    assert client.me()["id"] == catalog.me
    assert [(e.path, e.status) for e in emulator.requests()] == [("/v1/me/", 503), ("/v1/me/", 200)]
