"""AcoustID emulator (`/v2/lookup`) over the sandbox catalog, and the audio the sandbox's slskd serves.

Audio: every recording has its own audio, a quiet melody whose notes derive from the recording's
key, so Chromaprint tells recordings apart as it does real music. A correct copy of a catalog track
carries its canonical recording's melody; a decoy (live, remix, cover, …) carries a melody of its
own; the scripted slskd outcome "WrongAudio" serves a correctly named file whose audio is another
catalog recording of about the same length (a cover with equal length, a compilation with shifted
numbers); "Silent" serves an all-zero file.

Lookup (AcoustID web service v2, JSON): GET query or POST form (gzip bodies too, as pyacoustid sends)
with `client`, `duration`, `fingerprint` (compressed, as fpcalc prints it), `meta`, `format=json`.
The fingerprint is compared with fingerprints that `fpcalc` computes from the audio of every
recording slskd has served so far (bit errors of aligned 32-bit items, best of a few offsets).
Answers:
  200 {"status": "ok", "results": [{"id": <acoustid>, "score": 0.97,
                                    "recordings": [{"id": <MusicBrainz recording id>}]}]}
  results are empty for an unknown or silent fingerprint; a catalog track that MusicBrainz does not
  know (no `recording`) gives a result without `recordings`.
  400 {"status": "error", "error": {"code": 4, "message": "invalid API key"}} (2: missing parameter,
  3: invalid fingerprint).
"""

from __future__ import annotations

import gzip
import hashlib
import subprocess
import threading
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import numpy as np
import soundfile

from harmony_pipeline.sandbox.audio import SAMPLE_RATES
from harmony_pipeline.sandbox.catalog import Catalog
from harmony_pipeline.sandbox.server import Emulator, Request, Response, json_response

SANDBOX_API_KEY = "sandbox-acoustid-key"
_AMPLITUDE = 0.001  # as quiet as the sandbox's other audio (about -60 dBFS)
_NOTE_SECONDS = 0.4
_REFERENCE_SECONDS = 125  # fpcalc reads the first 120 s
# Same recording: ~0.99 across MP3/FLAC; different recordings: ~0.55 (chance).
_MATCH_SIMILARITY = 0.8
_MAX_OFFSET = 3
_NAMESPACE = uuid.UUID("6f1c1d2e-5b0a-4f57-9a39-acd1d0000000")

# Audio keys slskd served, per catalog (one sandbox = one catalog): the emulator compares with these.
_served: dict[int, dict[str, float]] = {}
_served_lock = threading.Lock()


# --- audio ----------------------------------------------------------------------------------------
def melody(key: str, duration_s: float, sample_rate: int) -> np.ndarray:
    """A quiet melody of `duration_s` seconds whose notes (two octaves above A3) derive from `key`."""
    seed = int(hashlib.sha256(key.encode("utf-8")).hexdigest()[:12], 16)
    frames = round(duration_s * sample_rate)
    note_frames = max(1, int(_NOTE_SECONDS * sample_rate))
    notes = np.random.default_rng(seed).integers(0, 24, size=frames // note_frames + 1)
    frequencies = np.repeat(220.0 * 2 ** (notes / 12), note_frames)[:frames]
    phase = 2 * np.pi * np.cumsum(frequencies) / sample_rate  # continuous phase: no clicks
    return (_AMPLITUDE * np.sin(phase)).astype(np.float32)


def write_melody(path: Path, fmt: str, duration_s: float, key: str | None) -> Path:
    """`fmt` ("mp3"/"flac") audio of `key`'s melody, or digital silence when `key` is None."""
    rate = SAMPLE_RATES[fmt]
    signal = melody(key, duration_s, rate) if key else np.zeros(round(duration_s * rate), np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "mp3":
        with soundfile.SoundFile(path, "w", rate, 1, "MPEG_LAYER_III", format="MP3",
                                 bitrate_mode="VARIABLE", compression_level=0.5) as sound:
            sound.write(signal)
    else:
        soundfile.write(path, signal, rate, subtype="PCM_16", format="FLAC")
    return path


def recording_key(track_id: str) -> str:
    return f"recording:{track_id}"


def _canonical(catalog: Catalog, track_id: str) -> str:
    """The first track with the same ISRC: album and single copies are one recording."""
    isrc = catalog.tracks[track_id].isrc.upper()
    return next(t.id for t in catalog.tracks.values() if t.isrc.upper() == isrc)


def other_recording(catalog: Catalog, track_id: str) -> str:
    """The catalog track (with a MusicBrainz recording) closest in length to `track_id`, another recording."""
    named = catalog.tracks[track_id]
    others = [t for t in catalog.tracks.values()
              if t.recording is not None and t.isrc.upper() != named.isrc.upper()]
    return _canonical(catalog, min(others, key=lambda t: (abs(t.duration_ms - named.duration_ms), t.id)).id)


def served_audio_key(catalog: Catalog, shared: Any, outcome: str, filename: str) -> str | None:
    """Whose audio a served file carries; None for silence."""
    if outcome == "Silent":
        return None
    named = shared.track_id or shared.imitates if shared is not None else None
    if outcome == "WrongAudio" and named in catalog.tracks:
        return recording_key(other_recording(catalog, named))
    if shared is not None and shared.track_id in catalog.tracks:
        return recording_key(_canonical(catalog, shared.track_id))
    if shared is not None:
        return f"other:{shared.kind}:{shared.imitates}"  # a decoy is a recording of its own
    return f"other:unshared:{filename}"


def write_served_audio(path: Path, fmt: str, duration_s: float, catalog: Catalog | None, shared: Any,
                       outcome: str, filename: str) -> None:
    """The audio slskd writes for a finished download; remembered for the AcoustID emulator."""
    key = served_audio_key(catalog, shared, outcome, filename) if catalog is not None else f"other:{filename}"
    if key is not None and catalog is not None:
        with _served_lock:
            _served.setdefault(id(catalog), {})[key] = duration_s
    write_melody(path, fmt, duration_s, key)


# --- fingerprints ---------------------------------------------------------------------------------
def decode(fingerprint: str) -> np.ndarray:
    """The 32-bit items of a compressed fingerprint (ValueError when it is not one)."""
    import chromaprint  # pyacoustid's binding of libchromaprint

    try:
        values, _ = chromaprint.decode_fingerprint(fingerprint.encode("ascii"))
    except Exception as error:  # the binding raises its own FingerprintError
        raise ValueError(str(error)) from None
    if not values:
        raise ValueError("empty fingerprint")
    return np.array(values, dtype=np.int64).astype(np.uint32)


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Share of matching bits between aligned items, at the best of a few offsets."""
    best = 0.0
    for offset in range(-_MAX_OFFSET, _MAX_OFFSET + 1):
        x, y = a[max(0, offset):], b[max(0, -offset):]
        size = min(len(x), len(y))
        if size < 10:
            continue
        bits = np.unpackbits((x[:size] ^ y[:size]).view(np.uint8)).sum()
        best = max(best, 1.0 - bits / (32 * size))
    return best


def fpcalc_raw(path: Path) -> np.ndarray:
    output = subprocess.run(["fpcalc", "-raw", str(path)], capture_output=True, text=True, check=True).stdout
    line = next(line for line in output.splitlines() if line.startswith("FINGERPRINT="))
    return np.array([int(v) for v in line.split("=", 1)[1].split(",")], dtype=np.int64).astype(np.uint32)


# --- the emulator ---------------------------------------------------------------------------------
class AcoustIdEmulator(Emulator):
    name = "acoustid"

    def __init__(self, catalog: Catalog, work_dir: Path, api_key: str = SANDBOX_API_KEY) -> None:
        super().__init__()
        self.catalog = catalog
        self.work_dir = Path(work_dir)
        self.api_key = api_key
        self._references: dict[str, np.ndarray] = {}
        self._reference_lock = threading.Lock()
        self.decoys: list[tuple[str, str, str, str]] = []  # planted by create_emulator's options
        with _served_lock:  # a new sandbox: nothing served yet (an earlier catalog may have had this id)
            _served[id(catalog)] = {}
        self.add_route("GET", "/v2/lookup", self._lookup)
        self.add_route("POST", "/v2/lookup", self._lookup)

    def error_response(self, status: int, message: str) -> Response:
        return json_response({"status": "error", "error": {"code": 0, "message": message}}, status)

    @staticmethod
    def _error(code: int, message: str) -> Response:
        return json_response({"status": "error", "error": {"code": code, "message": message}}, 400)

    @staticmethod
    def _parameters(request: Request) -> dict[str, str]:
        params = dict(request.query)
        if request.method == "POST" and request.body:
            body = request.body
            if (request.headers.get("Content-Encoding") or "").lower() == "gzip":
                body = gzip.decompress(body)
            params.update({k: v[0] for k, v in parse_qs(body.decode("utf-8"), keep_blank_values=True).items()})
        return params

    def reference(self, key: str) -> np.ndarray:
        """fpcalc's items for `key`'s audio, from a FLAC file rendered like the served ones (cached)."""
        with self._reference_lock:
            if key not in self._references:
                name = hashlib.sha256(key.encode()).hexdigest()[:16] + ".flac"
                path = write_melody(self.work_dir / name, "flac", _REFERENCE_SECONDS, key)
                self._references[key] = fpcalc_raw(path)
                path.unlink(missing_ok=True)
            return self._references[key]

    def mbid_of(self, key: str) -> str | None:
        """The MusicBrainz recording of an audio key (a decoy's is one no catalog ISRC names)."""
        kind, _, ident = key.partition(":")
        if kind == "recording":
            track = self.catalog.tracks.get(ident)
            return track.recording.mbid if track and track.recording else None
        return str(uuid.uuid5(_NAMESPACE, key))

    def _lookup(self, request: Request) -> Response:
        params = self._parameters(request)
        for name in ("client", "duration", "fingerprint"):
            if not params.get(name):
                return self._error(2, f'missing required parameter "{name}"')
        if params["client"] != self.api_key:
            return self._error(4, "invalid API key")
        try:
            duration = float(params["duration"])
            query = decode(params["fingerprint"])
        except ValueError:
            return self._error(3, "invalid fingerprint")
        results = []
        if len(set(query.tolist())) > 1:  # silence matches nothing
            with _served_lock:
                served = dict(_served.get(id(self.catalog), {}))
            for key, served_duration in served.items():
                if abs(served_duration - duration) > 7:  # AcoustID only compares tracks of similar length
                    continue
                score = similarity(query, self.reference(key))
                if score >= _MATCH_SIMILARITY:
                    results.append((score, key))
        meta = set(params.get("meta", "").replace("+", " ").split())
        body = []
        for score, key in sorted(results, reverse=True):
            result: dict[str, Any] = {"id": str(uuid.uuid5(_NAMESPACE, "track:" + key)), "score": round(score, 6)}
            mbid = self.mbid_of(key)
            if mbid and meta & {"recordingids", "recordings"}:
                result["recordings"] = [{"id": mbid}]
            body.append(result)
        return json_response({"status": "ok", "results": body})


# --- sandbox plug-in hooks (harmony_pipeline/sandbox/__init__.py) --------------------------------
def plant_decoys(sandbox: Any, wrong_audio_tracks: int, silent_tracks: int) -> list[tuple[str, str, str, str]]:
    """On the first tracks of the acquisition playlist, every correct copy but one serves another
    recording's audio (`wrong_audio_tracks`) or silence (`silent_tracks`) under its correct name.

    Returns (outcome, track id, username, filename) of each planted file.
    """
    slskd = sandbox.emulator("slskd")
    peers, catalog = slskd.peers, sandbox.catalog
    playlist = catalog.playlists.get(catalog.acquisition_playlist_id)
    planted: list[tuple[str, str, str, str]] = []
    plan = ["WrongAudio"] * wrong_audio_tracks + ["Silent"] * silent_tracks
    for track in catalog.playlist_tracks(playlist) if playlist else []:
        if not plan:
            break
        copies = [(u, f) for u, f in peers.correct_files(track.id)
                  if peers.peers[u].behaviour == "ok" and peers.find(u, f).extension in ("flac", "mp3")]
        if track.recording is None or len(copies) < 2:
            continue
        outcome = plan.pop(0)
        for username, filename in copies[:-1]:  # one honest copy is left to find
            slskd.script_outcome(outcome, username=username, filename=filename, times=None)
            planted.append((outcome, track.id, username, filename))
    return planted


def create_emulator(sandbox: Any) -> AcoustIdEmulator:
    """Options: `acoustid_api_key`; `acoustid_wrong_audio_tracks` and `acoustid_silent_tracks` (default 0)
    plant decoys on the acquisition playlist (`plant_decoys`), listed in the emulator's `decoys`."""
    emulator = AcoustIdEmulator(sandbox.catalog, Path(sandbox.root_dir) / "acoustid",
                                sandbox.options.get("acoustid_api_key", SANDBOX_API_KEY))
    wrong = int(sandbox.options.get("acoustid_wrong_audio_tracks", 0))
    silent = int(sandbox.options.get("acoustid_silent_tracks", 0))
    if (wrong or silent) and "slskd" in sandbox.servers:
        emulator.decoys = plant_decoys(sandbox, wrong, silent)
    return emulator


def environment(sandbox: Any, base_url: str) -> dict[str, str]:
    """ACOUSTID_URL is the base without `/v2`, like https://api.acoustid.org."""
    emulator = sandbox.emulator("acoustid")
    return {"ACOUSTID_URL": base_url, "ACOUSTID_API_KEY": emulator.api_key}
