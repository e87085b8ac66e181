"""Is a finished download the wanted recording? Checked after the download, before the import.

1. The audio is decoded (soundfile) where the format allows: a file that is silent (all zeros or
   below -80 dBFS throughout) or stops before its header's length (truncated) is rejected.
2. A Chromaprint fingerprint is computed once per file with `fpcalc` (pyacoustid runs it).
3. With ACOUSTID_API_KEY set, the fingerprint is looked up at ACOUSTID_URL (`/v2/lookup`) and the
   MusicBrainz recordings AcoustID returns are compared with the wanted track's, which come from its
   ISRC (`/ws/2/isrc`, the lookup credits use too). A confident answer naming only other recordings
   is a mismatch; the caller quarantines the file and blocks that peer's file.

Anything that cannot be decided (no key, no ISRC, MusicBrainz or AcoustID silent or down, no fpcalc)
passes as "unverified": verification never stops an import it cannot judge. `verify_download` is the
one entry point; it raises `VerificationError` (an `AudioCheckError`) for a rejected file and returns a
`Verdict` otherwise. It opens no DuckDB connection of its own.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import acoustid
import mutagen
import numpy as np
import soundfile

from harmony_pipeline.http_cache import HIT_TTL, HttpCache
from harmony_pipeline.acquisition.library_import import AudioCheckError

logger = logging.getLogger(__name__)

DEFAULT_ACOUSTID_URL = "https://api.acoustid.org"
# Peak below -80 dBFS over the whole file: nothing audible was recorded.
SILENCE_PEAK = 10 ** (-80 / 20)
# Decoded audio shorter than this share of the header's length: the file was cut off.
TRUNCATED_SHARE = 0.97
# An MP3 whose bytes fall this far below its header's bit rate × length lost its tail (decoders pad it).
MP3_TRUNCATED_SHARE = 0.85
# A result at or above MIN_SCORE that names the wanted recording verifies the file. A mismatch needs more:
# the best result at or above MISMATCH_SCORE, and the wanted recording in no result at all (AcoustID often
# links one audio to several MusicBrainz recordings; any of them being the ISRC's clears the file).
MIN_SCORE = 0.8
MISMATCH_SCORE = 0.9
LOOKUP_META = "recordingids"
LOOKUP_CACHE_SERVICE = "acoustid"
_BLOCK_FRAMES = 1 << 16


class VerificationError(AudioCheckError):
    """The file is rejected: silent, truncated, or another recording. `verdict` says which."""

    def __init__(self, verdict: Verdict):
        super().__init__(verdict.label)
        self.verdict = verdict


@dataclass(frozen=True)
class Verdict:
    status: str  # verified | unverified | mismatch | silent | truncated
    reason: str
    score: float | None = None  # the AcoustID score the decision rests on
    recording_ids: tuple[str, ...] = ()  # MusicBrainz recordings AcoustID named

    @property
    def label(self) -> str:
        """One line for the `downloads.verification` column and logs."""
        return f"{self.status}: {self.reason}"

    @property
    def rejected(self) -> bool:
        return self.status in ("mismatch", "silent", "truncated")


@dataclass(frozen=True)
class Fingerprint:
    duration: float
    fingerprint: str  # compressed, base64 (what fpcalc prints and AcoustID takes)

    @property
    def key(self) -> str:
        """Cache key of a lookup: the fingerprint and the whole seconds AcoustID is sent."""
        return hashlib.sha256(f"{int(self.duration)}:{self.fingerprint}".encode()).hexdigest()


# --- decoding ------------------------------------------------------------------------------------
def check_decoded_audio(path: Path) -> tuple[bool, Verdict | None]:
    """(decoded here, a `silent`/`truncated` verdict or None when the audio is fine).

    soundfile (libsndfile) decodes FLAC, WAV, AIFF, Ogg and MP3; other formats are left to fpcalc.
    """
    try:
        sound = soundfile.SoundFile(str(path))
    except (soundfile.LibsndfileError, RuntimeError, TypeError):
        return False, None
    return True, _decoded_problem(path, sound)


def _decoded_problem(path: Path, sound: soundfile.SoundFile) -> Verdict | None:
    peak, decoded = 0.0, 0
    with sound:
        header_frames, rate = sound.frames, sound.samplerate
        try:
            for block in sound.blocks(_BLOCK_FRAMES, dtype="float32", always_2d=True):
                decoded += len(block)
                if len(block):
                    peak = max(peak, float(np.abs(block).max()))
        except (soundfile.LibsndfileError, RuntimeError) as error:
            return Verdict("truncated", f"decoding stopped after {decoded / rate:.0f}s: {error}")
    if header_frames > 0 and decoded < TRUNCATED_SHARE * header_frames:
        return Verdict("truncated", f"{decoded / rate:.0f}s of audio, the header says {header_frames / rate:.0f}s")
    if decoded == 0 or peak < SILENCE_PEAK:
        return Verdict("silent", "no audible sample in the file" if peak == 0 else
                       f"peak {20 * np.log10(peak):.0f} dBFS: silence")
    return _mp3_tail_missing(path)


def _mp3_tail_missing(path: Path) -> Verdict | None:
    """libsndfile pads a cut MP3 to the length its Xing header promises; the byte count tells."""
    try:
        audio = mutagen.File(path)
    except (mutagen.MutagenError, OSError):
        return None
    if type(audio).__name__ != "MP3" or not audio.info.bitrate or not audio.info.length:
        return None
    expected = audio.info.bitrate / 8 * audio.info.length
    size = path.stat().st_size
    if size < MP3_TRUNCATED_SHARE * expected:
        return Verdict("truncated", f"{size} bytes where {audio.info.length:.0f}s at "
                       f"{audio.info.bitrate // 1000} kbps need about {expected:.0f}")
    return None


def _is_silent_fingerprint(fingerprint: str) -> bool:
    """Chromaprint of silence is one value repeated; used for formats soundfile cannot decode."""
    if not acoustid.have_chromaprint:
        return False
    import chromaprint  # pyacoustid's ctypes binding, present when have_chromaprint

    values, _ = chromaprint.decode_fingerprint(fingerprint.encode())
    return len(values) > 2 and len(set(values)) == 1


# --- fingerprints --------------------------------------------------------------------------------
class Fingerprinter:
    """fpcalc through pyacoustid, once per file: results are kept by path, size and modification time."""

    def __init__(self) -> None:
        self._known: dict[tuple[str, int, int], Fingerprint] = {}
        self._lock = threading.Lock()
        self.computed = 0  # fpcalc runs, for tests and the timing figure

    def fingerprint(self, path: Path) -> Fingerprint:
        """Raises acoustid.FingerprintGenerationError (NoBackendError without fpcalc)."""
        stat = path.stat()
        key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
        with self._lock:
            if key in self._known:
                return self._known[key]
        duration, value = acoustid.fingerprint_file(str(path), force_fpcalc=True)
        result = Fingerprint(float(duration), value.decode("ascii") if isinstance(value, bytes) else value)
        with self._lock:
            self.computed += 1
            self._known[key] = result
        return result


# --- AcoustID ------------------------------------------------------------------------------------
class AcoustIdError(RuntimeError):
    """AcoustID could not answer (unreachable, an error status, a refused key); the message is safe to log."""


class AcoustIdClient:
    """`/v2/lookup` through pyacoustid (its own limiter keeps to AcoustID's 3 requests per second).

    Answers are cached per fingerprint: in memory and, with `cache`, in the response cache file under a
    hash of the fingerprint (never the key). Failures are not cached.
    """

    _base_lock = threading.Lock()

    def __init__(self, api_key: str, base_url: str = DEFAULT_ACOUSTID_URL, cache: HttpCache | None = None,
                 timeout: float = 15.0):
        self._api_key = api_key
        self.base_url = base_url.rstrip("/")
        self.cache = cache
        self.timeout = timeout
        self._answers: dict[str, dict] = {}
        self.requests_made = 0

    def lookup(self, fingerprint: Fingerprint) -> dict:
        """AcoustID's JSON answer (`{"status": "ok", "results": [...]}`); AcoustIdError when there is none."""
        key = fingerprint.key
        if key not in self._answers:
            if self.cache is None:
                self._answers[key] = self._request(fingerprint)
            else:
                self._answers[key] = self.cache.remember(LOOKUP_CACHE_SERVICE, key,
                                                         lambda: self._request(fingerprint), HIT_TTL)
        return self._answers[key]

    def _request(self, fingerprint: Fingerprint) -> dict:
        # pyacoustid keeps its endpoint in a module global; the lock keeps set-and-call together.
        with self._base_lock:
            acoustid.set_base_url(self.base_url + "/v2/")
            self.requests_made += 1
            try:
                answer = acoustid.lookup(self._api_key, fingerprint.fingerprint, fingerprint.duration,
                                         meta=LOOKUP_META, timeout=self.timeout)
            except acoustid.WebServiceError as error:
                raise AcoustIdError(f"AcoustID unreachable or refused: {error.message}") from None
        if not isinstance(answer, dict) or answer.get("status") != "ok":
            message = (answer.get("error") or {}).get("message") if isinstance(answer, dict) else None
            raise AcoustIdError(f"AcoustID answered an error: {message or 'no status'}")
        return answer


def scored_recordings(answer: dict) -> list[tuple[float, set[str]]]:
    """(score, MusicBrainz recording ids) of every result that names recordings, best first."""
    scored = []
    for result in answer.get("results") or []:
        recordings = {r["id"] for r in result.get("recordings") or [] if isinstance(r, dict) and r.get("id")}
        if recordings:
            scored.append((float(result.get("score") or 0), recordings))
    return sorted(scored, key=lambda item: -item[0])


def judge(answer: dict, expected: set[str], isrc: str, min_score: float = MIN_SCORE) -> Verdict:
    """The verdict on AcoustID's answer for the recordings of the wanted ISRC (`mismatch` is not raised here)."""
    scored = scored_recordings(answer)
    matching = [(score, ids & expected) for score, ids in scored if ids & expected]
    if matching and matching[0][0] >= min_score:
        score, ids = matching[0]
        return Verdict("verified", f"AcoustID {score:.2f}: recording {sorted(ids)[0]}", score,
                       tuple(sorted(set().union(*(ids for _, ids in scored)))))
    if not scored or scored[0][0] < min_score:
        return Verdict("unverified", "AcoustID does not know this audio")
    best, found = scored[0]
    if matching or best < MISMATCH_SCORE:
        return Verdict("unverified", f"AcoustID {best:.2f} is not sure: recording {sorted(found)[0]}", best,
                       tuple(sorted(found)))
    return Verdict("mismatch", f"AcoustID {best:.2f} says recording {sorted(found)[0]}, "
                   f"the ISRC {isrc} is {sorted(expected)[0]}", best, tuple(sorted(found)))


# --- the verifier --------------------------------------------------------------------------------
class Verifier:
    """Everything `verify_download` needs; build it once per process (`from_settings`)."""

    def __init__(self, acoustid_client: AcoustIdClient | None = None, musicbrainz: Any = None,
                 fingerprinter: Fingerprinter | None = None, min_score: float = MIN_SCORE):
        self.acoustid = acoustid_client
        self.musicbrainz = musicbrainz  # enrichment.musicbrainz.MusicBrainzClient (cached ISRC lookups)
        self.fingerprinter = fingerprinter or Fingerprinter()
        self.min_score = min_score
        self._recordings: dict[str, set[str] | None] = {}  # per ISRC; failures are not kept

    def wanted_recordings(self, isrc: str | None) -> set[str] | None:
        """MusicBrainz recording ids of the ISRC; None when that cannot be known."""
        if not isrc or self.musicbrainz is None:
            return None
        if isrc in self._recordings:
            return self._recordings[isrc]
        try:
            answer = self.musicbrainz.isrc(isrc)
        except Exception as error:  # MusicBrainz down: the file is judged unverified, not rejected
            logger.warning("MusicBrainz ISRC lookup failed: %s", error)
            return None
        ids = {r["id"] for r in (answer or {}).get("recordings") or [] if r.get("id")}
        self._recordings[isrc] = ids or None
        return ids or None


def verify_download(path: Path, wanted: Mapping[str, Any] | None, verifier: Verifier | None) -> Verdict:
    """The verdict on a finished download of `wanted` (a `wanted_tracks` row: its `isrc` is used).

    Raises VerificationError for a silent, truncated or mismatching file; returns a verified or
    unverified Verdict otherwise. `verifier` None: the local checks only (decoding, fingerprint).
    """
    verifier = verifier or _LOCAL_ONLY
    decoded, problem = check_decoded_audio(path)
    if problem is not None:
        raise VerificationError(problem)
    try:
        fingerprint = verifier.fingerprinter.fingerprint(path)
    except acoustid.NoBackendError:
        return Verdict("unverified", "fpcalc is not installed (libchromaprint-tools)")
    except acoustid.FingerprintGenerationError as error:
        return Verdict("unverified", f"fpcalc could not decode the file ({error})")
    # A steady tone also fingerprints as one repeated value: only undecoded formats are judged this way.
    if not decoded and _is_silent_fingerprint(fingerprint.fingerprint):
        raise VerificationError(Verdict("silent", "the fingerprint is that of silence"))
    if verifier.acoustid is None:
        return Verdict("unverified", "no ACOUSTID_API_KEY")
    isrc = (wanted or {}).get("isrc")
    expected = verifier.wanted_recordings(isrc)
    if expected is None:
        return Verdict("unverified", "no MusicBrainz recording for the ISRC" if isrc else "no ISRC")
    try:
        answer = verifier.acoustid.lookup(fingerprint)
    except AcoustIdError as error:
        return Verdict("unverified", str(error))
    verdict = judge(answer, expected, isrc, verifier.min_score)
    if verdict.rejected:
        raise VerificationError(verdict)
    return verdict


_LOCAL_ONLY = Verifier()


def verification_counts(conn: Any) -> dict[str, int]:
    """Downloads by verdict, for materialization metadata: verified / unverified files taken, and files
    rejected as mismatch / silent / truncated (their sources are in `blocked_candidates`)."""
    counts = dict.fromkeys(("verified", "unverified", "mismatch", "silent", "truncated"), 0)
    rows = conn.execute(
        "SELECT split_part(verification, ':', 1), count(*) FROM downloads WHERE verification IS NOT NULL GROUP BY 1 "
        "UNION ALL SELECT split_part(reason, ':', 1), count(*) FROM blocked_candidates GROUP BY 1").fetchall()
    for status, count in rows:
        if status in counts:
            counts[status] += count
    return counts


def main(argv: list[str] | None = None) -> int:
    """`python -m harmony_pipeline.acquisition.audio_verification FILE…`: each file's verdict (decoding and fingerprint,
    plus AcoustID when ACOUSTID_API_KEY is set and `--isrc` given) and the seconds it took."""
    import argparse
    import time

    parser = argparse.ArgumentParser(description=main.__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--isrc", help="the wanted recording's ISRC")
    args = parser.parse_args(argv)
    key = os.environ.get("ACOUSTID_API_KEY")
    verifier = Verifier(AcoustIdClient(key, os.environ.get("ACOUSTID_URL", DEFAULT_ACOUSTID_URL)) if key else None)
    if key and args.isrc:
        from harmony_pipeline.enrichment.musicbrainz import MIN_INTERVAL_SECONDS, MusicBrainzClient, shared_limiter

        url = os.environ.get("MUSICBRAINZ_URL", "https://musicbrainz.org")
        verifier.musicbrainz = MusicBrainzClient(url, shared_limiter(url, MIN_INTERVAL_SECONDS))
    total = 0.0
    for path in args.files:
        started = time.perf_counter()
        try:
            verdict = verify_download(path, {"isrc": args.isrc}, verifier)
        except VerificationError as rejected:
            verdict = rejected.verdict
        except AudioCheckError as error:
            verdict = Verdict("unreadable", str(error))
        elapsed = time.perf_counter() - started
        total += elapsed
        print(f"{elapsed:6.3f}s  {path.name}: {verdict.label}")
    print(f"audio-verification: files={len(args.files)} seconds_per_file={total / len(args.files):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
