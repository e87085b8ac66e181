"""The user's own library: `library_scan` (group `catalog`) finds what is already there, so wanted tracks
it satisfies never reach Soulseek; `playlist_files` (group `enrichment`) writes an .m3u8 per synced
playlist for the media server. The work lives in harmony_pipeline.library_scan and playlist_files.
"""

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

from assets.common import markdown_table
from harmony_pipeline.library_scan import scan_library
from harmony_pipeline.playlist_files import write_playlist_files
from resources.database import HarmonyDatabase, LibraryFolders, PipelineSettings


@asset(
    group_name="catalog",
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
        "changed_files": MetadataValue.md(markdown_table(sample)),
    })


@asset(
    group_name="enrichment",
    deps=[AssetKey("playlist_tracks"), AssetKey("library_tracks"), library_scan],
    output_required=False,
    automation_condition=AutomationCondition.eager(),
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
        "playlists": MetadataValue.md(markdown_table(report.summary)),
    })


def wiring(settings, workers):
    from harmony_pipeline.wiring import Wiring

    # playlist_files follows every playlist sync, import and scan (declarative automation).
    sensor = AutomationConditionSensorDefinition(
        "playlist_files_automation_sensor", target=AssetSelection.assets(playlist_files),
        default_status=workers.sensor_status,
        description="Rewrites the .m3u8 playlists after a playlist sync, an import or a library scan.")
    return Wiring(assets=[library_scan, playlist_files], sensors=[sensor])
