"""new_release_sensor: checks due watchlist artists for new releases and requests one acquisition run.

Each tick takes at most ARTISTS_PER_TICK due artists (unpaused, past their next due time, higher
priority first) and asks Spotify for the first page of each one's albums and singles: when its
`total` is the count seen at the last check and every id on it is known, the artist is unchanged
(one request, however long the discography); otherwise the other pages are read too. A paused artist
costs nothing. A release is new when its id is not in artist_releases. Artists with new releases (or
never checked, or with releases whose tracks could not be read yet) go into ONE run of the watchlist
job, restricted to them through run config, which also carries the new release ids so the run does
not list the albums again.

The sensor writes the "checked" state itself (last check, next due time, errors) in one short DuckDB
transaction after its Spotify requests: an unchanged artist then needs no run at all, and a failing
artist is pushed back alone. An artist handed to a run is held back only for the first back-off step:
the run's artist_releases asset records its releases (known, new, to acquire; new_release_detected)
and moves its next check on, so that table keeps its lineage and a failed run does not hide a release
for a whole interval. The cursor holds a summary of the last tick (shown in the UI); DuckDB stays the
source of truth.
"""

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from dagster import (
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    sensor,
)

from harmony_pipeline import storage
from harmony_pipeline.service_errors import stops_asking
from harmony_pipeline.watchlist import releases as rules
from harmony_pipeline.wiring import Workers
from resources.database import HarmonyDatabase, PipelineSettings
from resources.spotify import SpotifyResource
from harmony_pipeline.spotify.client import SpotifyApi, SpotifyError, SpotifyNotAuthorised, SpotifyNotFound
from sensors.run_health import active_runs

ARTISTS_PER_TICK = 5


@dataclass
class ArtistCheck:
    artist_id: str
    name: str | None
    releases: int = 0
    new_releases: list[dict] = field(default_factory=list)  # {"id", "name", "album_type", "release_date"}
    first_check: bool = False
    unread_releases: bool = False
    error: str | None = None
    rate_limited_until: datetime | None = None

    @property
    def needs_run(self) -> bool:
        return self.error is None and bool(self.new_releases or self.unread_releases)


def read_albums(api: SpotifyApi, artist: dict, known: set[str]) -> tuple[int, list[dict]]:
    """(releases on Spotify, albums read): the first page alone when it shows nothing new."""
    first = api.artist_albums_page(artist["artist_id"])
    page = first.get("items") or []
    if first.get("total") == artist["release_count"] and all(a.get("id") in known for a in page):
        return first["total"], page
    albums = list(api.pages(first))
    return len(albums), albums


def check_artists(api: SpotifyApi, due: list[dict], known: dict[str, set[str]],
                  unread: set[str]) -> list[ArtistCheck]:
    """One albums listing per due artist. A Spotify error concerns that artist only; a rate limit or
    an authorisation failure (app-wide) ends the tick and leaves the remaining artists due."""
    checks = []
    for artist in due:
        artist_id = artist["artist_id"]
        check = ArtistCheck(artist_id, artist["name"], first_check=artist["baseline_at"] is None,
                            unread_releases=artist_id in unread)
        checks.append(check)
        try:
            check.releases, albums = read_albums(api, artist, known.get(artist_id, set()))
        except SpotifyError as error:
            check.error = "unknown artist (Spotify 404)" if isinstance(error, SpotifyNotFound) else str(error)
            check.rate_limited_until = getattr(error, "until", None)
            if stops_asking(error):  # a rate limit or a refused login: no point asking for the others
                break
            continue
        check.name = check.name or rules.artist_name_from_albums(artist_id, albums)
        new_ids = set(rules.new_release_ids(albums, known.get(artist_id, set())))
        check.new_releases = [
            {"id": a["id"], "name": a.get("name"), "album_type": a.get("album_type"),
             "release_date": a.get("release_date")}
            for a in albums if a.get("id") in new_ids
        ]
    return checks


def save_checks(database: HarmonyDatabase, checks: list[ArtistCheck], interval_seconds: int) -> None:
    now = storage.utcnow()
    with database.connect() as conn, storage.transaction(conn):
        for check in checks:
            if check.error:
                rules.record_check_error(conn, check.artist_id, now, interval_seconds, check.error,
                                         not_before=check.rate_limited_until)
                continue
            # An artist handed to a run gets its next check from the run's artist_releases; should the
            # run fail before that, the artist is checked again after the first back-off step.
            wait = rules.error_delay(1, interval_seconds) if check.needs_run else timedelta(seconds=interval_seconds)
            rules.record_check(conn, check.artist_id, now, now + wait, release_count=check.releases,
                               name=check.name)


def build_new_release_sensor(job, workers: Workers, interval_seconds: int):
    @sensor(
        name="new_release_sensor",
        job=job,
        minimum_interval_seconds=interval_seconds,
        default_status=workers.sensor_status,
        description="Checks due watchlist artists for new releases; requests one acquisition run for them.",
    )
    def new_release_sensor(context: SensorEvaluationContext, spotify: SpotifyResource,
                           database: HarmonyDatabase, pipeline: PipelineSettings):
        active = active_runs(context.instance, job.name, context.log)
        if active:
            return SensorResult(skip_reason=f"a watchlist run is in progress ({active[0].run_id[:8]})")
        now = storage.utcnow()
        with database.connect() as conn, storage.transaction(conn):
            rules.sync_env_artists(conn, pipeline.watchlist, now)
            due = rules.due_artists(rules.load_artists(conn), now, ARTISTS_PER_TICK)
            due_ids = [a["artist_id"] for a in due]
            known = rules.known_release_ids(conn, due_ids)
            unread = rules.artists_with_unread_releases(conn, due_ids)
        if not due:
            return SensorResult(skip_reason="no watchlist artist is due")
        try:
            api = spotify.get_api()
        except SpotifyNotAuthorised as error:
            return SensorResult(skip_reason=f"Spotify not configured: {error}")

        checks = check_artists(api, due, known, unread)
        save_checks(database, checks, pipeline.watchlist_interval)

        to_run = [c for c in checks if c.needs_run]
        summary = {
            "checked_at": now.isoformat(), "checked": len(checks),
            "errors": sum(1 for c in checks if c.error),
            "new_releases": sum(len(c.new_releases) for c in to_run if not c.first_check),
            "first_checks": sum(1 for c in to_run if c.first_check),
            "run_for": [c.artist_id for c in to_run],
        }
        cursor = json.dumps(summary)
        for check in checks:
            if check.error:
                context.log.warning(f"watchlist artist {check.name or check.artist_id}: {check.error}")
        if not to_run:
            return SensorResult(skip_reason=f"{len(checks)} artists checked; no new releases", cursor=cursor)
        names = ", ".join(c.name or c.artist_id for c in to_run)
        context.log.info(f"requesting a watchlist run for {names}")
        return SensorResult(
            run_requests=[RunRequest(
                run_key=f"watchlist-{now.isoformat()}",
                run_config={"ops": {"artist_releases": {"config": {
                    "artist_ids": summary["run_for"],
                    # An artist checked before is not listed again by the run: it reads these albums.
                    "new_release_ids": {c.artist_id: [r["id"] for r in c.new_releases]
                                        for c in to_run if not c.first_check},
                }}}},
                tags={"harmony/trigger": "new_release_sensor",
                      "harmony/new_releases": str(summary["new_releases"]),
                      "harmony/artists": str(len(to_run))},
            )],
            cursor=cursor,
        )

    return new_release_sensor
