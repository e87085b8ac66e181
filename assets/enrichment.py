"""Enrichment (group `enrichment`): tags, artwork and lyrics written into the library files.

Each asset takes a batch: every library track without a row yet, whose file was imported again since,
or whose miss / failure cool-down has passed (the nightly enrichment_schedule picks those up).
External answers go through the DuckDB response cache (harmony_pipeline/http_cache.py), so tracks
sharing an album or artist, and later runs, ask nothing again. The work lives in
harmony_pipeline.enrichment (metadata_flow, artwork_flow, lyrics_flow); these assets read the batch,
call it, save a row per track and describe what happened.
"""

from collections import defaultdict

from dagster import AssetExecutionContext, AssetKey, AutomationCondition, MaterializeResult, MetadataValue, asset

from assets.common import NETWORK_RETRY, retry_on_short_rate_limit, row_count, table_preview
from harmony_pipeline.enrichment.artwork import thumbnail_data_uri
from harmony_pipeline.enrichment.artwork_flow import ARTWORK_COLUMNS, ArtworkSetup, album_artwork, album_key, record_embedded
from harmony_pipeline.enrichment.batch import row_result, save_row, track_label, tracks_due
from harmony_pipeline.enrichment.lookups import Lookups
from harmony_pipeline.enrichment.lyrics import LyricsKind
from harmony_pipeline.enrichment.lyrics_flow import LYRICS_COLUMNS, lyrics_for_track
from harmony_pipeline.enrichment.metadata_flow import METADATA_COLUMNS, tag_track
from harmony_pipeline.http_cache import HttpCache
from resources.coverart import CoverArtResource
from resources.database import HarmonyDatabase, LibraryFolders, PipelineSettings
from resources.lrclib import LrclibResource
from resources.musicbrainz import MusicBrainzResource
from resources.spotify import SpotifyResource

PREVIEWS = 4  # cover thumbnails shown in the materialization metadata
SNIPPET_LINES = 8
OWNERS = ["team:enrichment"]


def _joined(values: list[str] | None) -> str:
    return ", ".join(values or [])


@asset(
    group_name="enrichment",
    deps=[AssetKey("library_tracks")],
    retry_policy=NETWORK_RETRY,
    automation_condition=AutomationCondition.eager(),
    kinds={"spotify", "musicbrainz", "duckdb"},
    owners=OWNERS,
    tags={"concern": "enrichment"},
    description="Tags written into every library file: names, numbers, date, genre, composer, lyricist, "
    "producer, ISRC, copyright, label (Spotify + MusicBrainz).",
)
def track_metadata(
    context: AssetExecutionContext,
    spotify: SpotifyResource,
    musicbrainz: MusicBrainzResource,
    database: HarmonyDatabase,
    folders: LibraryFolders,
) -> MaterializeResult:
    cache = HttpCache(database.path)
    mb = musicbrainz.get_client(cache)
    lookups = Lookups(cache, spotify, mb, context.log)
    preview = []
    counts: dict[str, int] = defaultdict(int)
    for row in tracks_due(database, "track_metadata", cache.now()):
        with retry_on_short_rate_limit():
            result = tag_track(row, lookups, folders.library)
        save_row(database, "track_metadata", row_result(result, METADATA_COLUMNS))
        counts[result["status"]] += 1
        if result["status"] != "tagged":
            context.log.warning(f"{track_label(row)}: {result['reason']}")
        preview.append({"track": track_label(row), "status": result["status"], "genre": _joined(result.get("genres")),
                        "composer": _joined(result.get("composers")), "producer": _joined(result.get("producers")),
                        "label": result.get("label"), "reason": result.get("reason")})
    return MaterializeResult(metadata={
        **{status: counts[status] for status in ("tagged", "partial", "failed")},
        "spotify_requests": lookups.spotify_requests,
        "musicbrainz_requests": mb.requests_made,
        "tracks": table_preview(preview),
        **row_count(database, "track_metadata"),
    })


@asset(
    group_name="enrichment",
    deps=[AssetKey("library_tracks")],
    retry_policy=NETWORK_RETRY,
    automation_condition=AutomationCondition.eager(),
    kinds={"coverartarchive", "spotify", "musicbrainz", "duckdb"},
    owners=OWNERS,
    tags={"concern": "enrichment"},
    description="The largest cover (Cover Art Archive original or Spotify) embedded in every file, cover.jpg "
    "next to it; low-resolution embeds replaced.",
)
def track_artwork(
    context: AssetExecutionContext,
    spotify: SpotifyResource,
    musicbrainz: MusicBrainzResource,
    coverart: CoverArtResource,
    database: HarmonyDatabase,
    folders: LibraryFolders,
    pipeline: PipelineSettings,
) -> MaterializeResult:
    cache = HttpCache(database.path)
    lookups = Lookups(cache, spotify, musicbrainz.get_client(cache), context.log)
    setup = ArtworkSetup(coverart.get_client(cache), folders.artwork_cache, folders.library,
                         pipeline.artwork_max_bytes, pipeline.artwork_min_edge)
    by_album: dict[str, list[dict]] = defaultdict(list)
    for row in tracks_due(database, "track_artwork", cache.now()):
        by_album[album_key(row)].append(row)
    counts: dict[str, int] = defaultdict(int)
    previews, table = [], []
    for key, rows in by_album.items():
        with retry_on_short_rate_limit():
            art, results = album_artwork(rows, key, lookups, setup, cache.now(), context.log)
        for row, result in zip(rows, results):
            counts[result["status"]] += 1
            save_row(database, "track_artwork", row_result(result, ARTWORK_COLUMNS))
            table.append({"track": track_label(row), "status": result["status"], "source": result.get("source"),
                          "size": f"{result.get('width')}x{result.get('height')}" if art else None,
                          "reason": result.get("reason")})
        embedded = sum(result["status"] == "embedded" for result in results)
        if art is not None and embedded:
            record_embedded(database, rows[0].get("album"), art, embedded)
            if len(previews) < PREVIEWS:
                caption = f"{rows[0].get('album') or key}: {art.source} {art.info.width}x{art.info.height}"
                previews.append(f"![{caption}]({thumbnail_data_uri(art.original)}) {caption}")
    return MaterializeResult(metadata={
        **{status: counts[status] for status in ("embedded", "kept", "missing", "failed")},
        "albums": len(by_album),
        "preview": MetadataValue.md("\n\n".join(previews) or "(no cover embedded in this run)"),
        "tracks": table_preview(table),
        **row_count(database, "track_artwork"),
    })


@asset(
    group_name="enrichment",
    deps=[AssetKey("library_tracks")],
    retry_policy=NETWORK_RETRY,
    automation_condition=AutomationCondition.eager(),
    kinds={"lrclib", "duckdb"},
    owners=OWNERS,
    tags={"concern": "enrichment"},
    description="LRCLIB lyrics matched on artist, title, album and the file's length: synced as a .lrc "
    "sidecar, plain in the tags, instrumentals recorded; misses retried after a cool-down.",
)
def track_lyrics(
    context: AssetExecutionContext,
    lrclib: LrclibResource,
    database: HarmonyDatabase,
    folders: LibraryFolders,
) -> MaterializeResult:
    cache = HttpCache(database.path)
    client = lrclib.get_client(cache)
    counts: dict[str, int] = defaultdict(int)
    table, snippet = [], None
    for row in tracks_due(database, "track_lyrics", cache.now()):
        result, lrc_text = lyrics_for_track(row, client, folders.library, cache.now())
        activity = None
        if result["status"] in (LyricsKind.SYNCED, LyricsKind.PLAIN):
            activity = ("lyrics_generated", {"track": track_label(row), "kind": result["status"],
                                             "lrc": result.get("lrc_path")})
        save_row(database, "track_lyrics", row_result(result, LYRICS_COLUMNS), activity)
        counts[result["status"]] += 1
        if result["status"] == "failed":
            context.log.warning(f"{track_label(row)}: {result['reason']}")
        if lrc_text and snippet is None:
            snippet = f"{track_label(row)}\n\n```\n" + "\n".join(lrc_text.splitlines()[:SNIPPET_LINES]) + "\n```"
        table.append({"track": track_label(row), "lyrics": result["status"], "lrc": result.get("lrc_path"),
                      "reason": result.get("reason")})
    return MaterializeResult(metadata={
        **{kind.value: counts[kind.value] for kind in LyricsKind},
        "failed": counts["failed"],
        "lrclib_requests": client.requests_made,
        "snippet": MetadataValue.md(snippet or "(no synced lyrics written in this run)"),
        "tracks": table_preview(table),
        **row_count(database, "track_lyrics"),
    })


def wiring(settings, workers):
    """track_metadata always; track_artwork with ENABLE_ARTWORK, track_lyrics with ENABLE_LYRICS; their
    automation sensor and nightly schedule; the MusicBrainz, Cover Art Archive and LRCLIB resources."""
    from dagster import Definitions

    from sensors.enrichment import build_enrichment_automation_sensor, build_enrichment_schedule

    enrichment_assets = [track_metadata]
    if settings.enable_artwork:
        enrichment_assets.append(track_artwork)
    if settings.enable_lyrics:
        enrichment_assets.append(track_lyrics)
    return Definitions(
        assets=enrichment_assets,
        sensors=[build_enrichment_automation_sensor(enrichment_assets, workers)],
        schedules=[build_enrichment_schedule(enrichment_assets, workers)],
        resources={
            "coverart": CoverArtResource(url=settings.coverart_url),
            "lrclib": LrclibResource(url=settings.lrclib_url),
        },
    )
