"""The user's own library: `library_scan` (group `catalog`) finds what is already there, so wanted tracks
it satisfies never reach Soulseek; `playlist_files` (group `enrichment`) writes an .m3u8 per synced
playlist for the media server; `library_upgrades` (group `acquisition`, only with a HARMONY_QUALITY
cutoff) replaces files below the cutoff by better ones. The work lives in harmony_pipeline.library.scan,
playlist_files and upgrades.
"""

from pathlib import Path


from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetSelection,
    AutomationCondition,
    AutomationConditionSensorDefinition,
    MaterializeResult,
    MetadataValue,
    asset,
)

from assets.common import NETWORK_RETRY, activity_metadata, table_preview
from harmony_pipeline.http_cache import HttpCache
from harmony_pipeline.library.scan import scan_library
from harmony_pipeline.library.playlist_files import write_playlist_files
from harmony_pipeline.library.quality import parse_quality
from harmony_pipeline.library.upgrades import UpgradeSetup, run_upgrades
from resources.acoustid import AcoustIdResource
from resources.database import HarmonyDatabase, LibraryFolders, PipelineSettings
from resources.musicbrainz import MusicBrainzResource
from resources.slskd import SlskdResource

OWNERS = ["team:library"]


@asset(
    group_name="catalog",
    kinds={"python", "duckdb"},
    owners=OWNERS,
    tags={"concern": "library"},
    description="Audio files already in HARMONY_LIBRARY_DIR and HARMONY_EXTRA_LIBRARY_DIRS, identified by "
                "ISRC or artist + title + length; read only, incremental by size + mtime.",
)
def library_scan(context: AssetExecutionContext, database: HarmonyDatabase,
                 folders: LibraryFolders) -> MaterializeResult:
    # Materialized on every run, changed or not: a step that yielded nothing would make Dagster skip
    # wanted_tracks after it in the same run (the playlist sync job).
    report = scan_library(database, folders.library_roots)
    for folder in report.missing_roots:
        if folder == str(folders.library.absolute()):
            context.log.info(f"{folder} does not exist yet: nothing imported there so far")
        else:  # an extra folder that existed when the settings were loaded: an unmounted share?
            context.log.warning(f"library folder {folder} is not there; what was found in it before is kept")
    context.log.info(f"{report.files} audio files, {report.read} read, {report.removed} gone, "
                     f"{report.seconds:.2f}s")
    sample = [{"file": r["path"], "artist": r["artist"], "title": r["title"], "isrc": r["isrc"],
               "identified_by": r["identified_by"], "error": r["error"]} for r in report.changed_rows[:30]]
    return MaterializeResult(metadata={
        "changed": report.changed,
        "files": report.files,
        "read": report.read,
        "unchanged": report.unchanged,
        "removed": report.removed,
        "unreadable": report.unreadable,
        "identified": sum(1 for r in report.changed_rows if r["identified_by"] != "none"),
        "missing_folders": MetadataValue.json(report.missing_roots),
        "seconds": round(report.seconds, 3),
        "changed_files": table_preview(sample),
    })


@asset(
    group_name="enrichment",
    kinds={"python", "duckdb"},
    owners=OWNERS,
    tags={"concern": "library"},
    deps=[AssetKey("playlist_tracks"), AssetKey("library_tracks"), library_scan],
    output_required=False,
    # Also before the pipeline imported anything (library_tracks materializes only when it imports):
    # playlists of tracks adopted from the user's own folders are written all the same.
    automation_condition=AutomationCondition.eager().without(~AutomationCondition.any_deps_missing()),
    description="One .m3u8 per synced playlist (HARMONY_PLAYLIST_DIR, default <library>/Playlists): the "
                "playlist's tracks in the library, in playlist order, paths relative to the playlist file.",
)
def playlist_files(context: AssetExecutionContext, database: HarmonyDatabase, folders: LibraryFolders,
                   pipeline: PipelineSettings):
    report = write_playlist_files(database, folders.library, folders.playlists, pipeline.playlists)
    if not report.written and not report.removed:
        context.log.info(f"{report.unchanged} playlist files already up to date")
        return
    yield MaterializeResult(metadata={
        "written": len(report.written),
        "unchanged": report.unchanged,
        "removed": len(report.removed),
        "folder": str(folders.playlists),
        "playlists": table_preview(report.summary),
    })


@asset(
    group_name="acquisition",
    kinds={"soulseek", "acoustid", "duckdb"},
    owners=OWNERS,
    tags={"concern": "library"},
    deps=[AssetKey("library_tracks")],
    retry_policy=NETWORK_RETRY,
    output_required=False,
    description="Library files below the HARMONY_QUALITY cutoff searched again at a low priority and replaced "
                "by better correct files (tags, cover and lyrics kept).",
)
def library_upgrades(context: AssetExecutionContext, slskd: SlskdResource, acoustid: AcoustIdResource,
                     musicbrainz: MusicBrainzResource, database: HarmonyDatabase, folders: LibraryFolders,
                     pipeline: PipelineSettings):
    if not folders.downloads_dir:  # never take a library file for a finished download
        context.log.warning("SLSKD_DOWNLOADS_DIR is not set: no upgrade can be downloaded")
        return
    client = slskd.get_client()
    cache = HttpCache(database.path)
    setup = UpgradeSetup(
        database=database, client=client, profile=parse_quality(pipeline.quality or ""),
        search=lambda text: client.search(text, timeout_ms=slskd.search_timeout_ms, poll_seconds=slskd.poll_seconds),
        library_root=folders.library, downloads_dir=Path(folders.downloads_dir),
        remote_downloads_dir=folders.remote_downloads_dir, quarantine_dir=folders.quarantine,
        search_limit=pipeline.search_limit, search_window_seconds=pipeline.search_window_seconds, log=context.log,
        verifier=acoustid.get_verifier(musicbrainz.get_client(cache), cache))
    report = run_upgrades(setup)
    if report.deferred:
        context.log.info(f"upgrade searches wait: {report.deferred}")
    if not report.did_something:
        return
    yield MaterializeResult(metadata={
        "searched": report.searched, "enqueued": report.enqueued, "no_better": report.no_better,
        "replaced": len(report.replaced), "failed": len(report.failed), "old_files_removed": len(report.removed),
        "upgrades": table_preview(report.replaced + report.failed),
        **activity_metadata(context, database),
    })


def wiring(settings, workers):
    from dagster import Definitions, ScheduleDefinition, define_asset_job

    # playlist_files follows every playlist sync, import and scan (declarative automation).
    sensor = AutomationConditionSensorDefinition(
        "playlist_files_automation_sensor", target=AssetSelection.assets(playlist_files),
        default_status=workers.sensor_status,
        description="Rewrites the .m3u8 playlists after a playlist sync, an import or a library scan.")
    assets, jobs, schedules = [library_scan, playlist_files], [], []
    if settings.quality and parse_quality(settings.quality).cutoff is not None:
        job = define_asset_job("library_upgrade_job", selection=[library_upgrades],
                               description="Replace library files below the quality cutoff.")
        assets.append(library_upgrades)
        jobs.append(job)
        schedules.append(ScheduleDefinition(
            name="library_upgrade_schedule", job=job, cron_schedule="7 * * * *",
            default_status=workers.schedule_status,
            description="Hourly: settle upgrade downloads, search a few tracks below the quality cutoff."))
    return Definitions(assets=assets, jobs=jobs, schedules=schedules, sensors=[sensor])
