"""What the user sees: the Dagster UI over the real code location, after one materialization against the
sandbox. A GraphQL test proves the webserver loads the code location; browser tests open the UI in
headless Chromium (Debian's /usr/bin/chromium driven by playwright) and save screenshots.

Screenshots go to a temporary folder, or to HARMONY_SCREENSHOT_DIR when set:
    HARMONY_SCREENSHOT_DIR=docs/screenshots .venv/bin/pytest -m browser tests/test_ui_browser.py
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import pipeline_environment, settle_acquisition, missing_prerequisite
from test_definitions import design_graph
from ui_server import graphql, prepare_dagster_home, webserver

from harmony_pipeline.sandbox import Sandbox

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]
HISTORY_ASSETS = ["spotify_playlists", "playlist_tracks", "wanted_tracks", "soulseek_matches", "downloads",
                  "library_tracks", "track_metadata", "track_artwork", "track_lyrics"]
# The suite runs on two busy cores: waits are generous, never a reason for a test to fail.
WAIT_MS = 120_000


class UI:
    def __init__(self, base_url: str, env: dict[str, str], settings) -> None:
        self.base_url = base_url
        self.env = env
        self.settings = settings


def _materialize_history(env: dict[str, str], dagster_home: Path) -> None:
    """One run of playlists, acquisition and enrichment, so the UI has history to show."""
    from dagster import DagsterInstance, materialize

    from harmony_pipeline.definitions import collect_wiring
    from harmony_pipeline.settings import load_settings

    with pytest.MonkeyPatch.context() as patch:
        for name, value in {**env, "DAGSTER_HOME": str(dagster_home)}.items():
            patch.setenv(name, value)
        wiring = collect_wiring(load_settings())
        with DagsterInstance.get() as instance:
            result = materialize([*wiring.assets, *wiring.asset_checks], resources=wiring.resources,
                                 instance=instance, selection=HISTORY_ASSETS, raise_on_error=False)
            assert result.success, "the history run failed"
            # The follow-up runs download_transfer_sensor would request, then enrichment of what they imported.
            settle_acquisition(instance)
            result = materialize([*wiring.assets, *wiring.asset_checks], resources=wiring.resources,
                                 instance=instance, selection=HISTORY_ASSETS[-3:], raise_on_error=False)
        assert result.success, "the enrichment run failed"


@pytest.fixture(scope="module")
def ui(tmp_path_factory) -> Iterator[UI]:
    from harmony_pipeline.settings import load_settings

    root = tmp_path_factory.mktemp("ui")
    with Sandbox(root / "sandbox", slskd_search_seconds=0.2, slskd_transfer_step_seconds=0.02) as sandbox:
        catalog = sandbox.catalog
        smallest = min(catalog.owned_playlist_ids(), key=lambda p: len(catalog.playlist_tracks(catalog.playlists[p])))
        env = pipeline_environment(sandbox, root, HARMONY_PLAYLISTS=smallest,
                                   ENABLE_ARTWORK="1", ENABLE_LYRICS="1",
                                   HARMONY_DISABLE_WORKERS="1")
        dagster_home = prepare_dagster_home(root / "dagster_home")
        _materialize_history(env, dagster_home)
        with webserver(env, dagster_home, root / "webserver.log") as base_url:
            # A fresh instance: nobody dismissed the community dialog; dagster.yaml (`nux: enabled: false`)
            # keeps it away, as on a new user's `make demo`.
            assert graphql(base_url, "{ shouldShowNux }")["shouldShowNux"] is False
            assert not (dagster_home / ".nux").exists()
            yield UI(base_url, env, load_settings(env))


# design.md §3 with ENABLE_ARTWORK and ENABLE_LYRICS on, as the `ui` fixture sets them.
EXPECTED_GROUPS, EXPECTED_DEPENDENCIES = design_graph(artwork=True, lyrics=True)


NEWEST_MATERIALIZATION = """query($path: [String!]!) { assetOrError(assetKey: {path: $path}) {
  ... on Asset { assetMaterializations(limit: 1) { runId } } } }"""
ASSET_NODES = """{ assetNodes { assetKey { path } dependencyKeys { path } groupName } }"""
WORKERS = """{ workspaceOrError { ... on Workspace { locationEntries { name locationOrLoadError {
  ... on RepositoryLocation { repositories { name
    sensors { name sensorState { status } }
    schedules { name scheduleState { status } } } }
  ... on PythonError { message } } } } } }"""


def test_graphql_sees_the_design_asset_graph(ui):
    nodes = graphql(ui.base_url, ASSET_NODES)["assetNodes"]
    groups = {"/".join(n["assetKey"]["path"]): n["groupName"] for n in nodes}
    deps = {"/".join(n["assetKey"]["path"]): {"/".join(d["path"]) for d in n["dependencyKeys"]} for n in nodes}
    assert groups == EXPECTED_GROUPS
    assert deps == EXPECTED_DEPENDENCIES

    entries = graphql(ui.base_url, WORKERS)["workspaceOrError"]["locationEntries"]
    repositories = [r for e in entries for r in e["locationOrLoadError"]["repositories"]]
    sensors = {s["name"]: s["sensorState"]["status"] for r in repositories for s in r["sensors"]}
    schedules = {s["name"]: s["scheduleState"]["status"] for r in repositories for s in r["schedules"]}
    assert "download_transfer_sensor" in sensors and "playlist_sync_schedule" in schedules
    # HARMONY_DISABLE_WORKERS=1: every worker is loaded and shown stopped.
    assert set(sensors.values()) == {"STOPPED"} and set(schedules.values()) == {"STOPPED"}


def _screenshot_dir(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("HARMONY_SCREENSHOT_DIR") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        missing_prerequisite("Debian's chromium is not installed (/usr/bin/chromium); .ci/install-browser installs it")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1920, "height": 1000})
    opened = context.new_page()
    opened.set_default_timeout(WAIT_MS)
    opened.set_default_navigation_timeout(WAIT_MS)
    yield opened
    context.close()


def _open(page, url: str) -> None:
    """Open a UI page and wait for its navigation bar."""
    page.goto(url)
    page.get_by_role("navigation").first.wait_for()


def _no_dialog(page) -> None:
    """Nothing covers the page: no open dialog, no community invitation."""
    page.wait_for_timeout(1500)  # the invitation, when enabled, opens right after the first render
    assert page.get_by_role("dialog").count() == 0
    assert page.get_by_text("Join the Dagster community").count() == 0


def test_lineage_shows_every_group(ui, page, tmp_path):
    _open(page, f"{ui.base_url}/asset-groups")
    for group in sorted(set(EXPECTED_GROUPS.values())):
        page.get_by_text(group, exact=True).first.wait_for()
    _no_dialog(page)
    page.keyboard.press("Alt+e")  # "Expand all groups"; the choice is kept, the reload fits the graph
    page.reload()
    for asset in EXPECTED_GROUPS:
        page.get_by_text(asset, exact=True).first.wait_for()
    page.wait_for_timeout(1500)  # let the graph settle its layout before the picture
    page.screenshot(path=_screenshot_dir(tmp_path) / "lineage.png")


def test_asset_page_shows_materialization_metadata(ui, page, tmp_path):
    _open(page, f"{ui.base_url}/assets/spotify_playlists?view=events")
    import duckdb

    with duckdb.connect(str(ui.settings.duckdb_path), read_only=True) as conn:
        stored = conn.execute("SELECT count(*) FROM spotify_playlists").fetchone()[0]
    row = page.locator("tr", has=page.get_by_text("playlists", exact=True)).first
    row.wait_for()
    assert row.locator("td").nth(1).inner_text().strip() == str(stored) and stored > 0
    page.get_by_text("spotify_requests", exact=True).first.wait_for()
    page.wait_for_timeout(1000)
    page.screenshot(path=_screenshot_dir(tmp_path) / "spotify_playlists_materialization.png", full_page=True)


def test_cover_preview(ui, page, tmp_path):
    _open(page, f"{ui.base_url}/assets/track_artwork?view=events")
    page.get_by_text("[Show Markdown]").first.click()  # long markdown opens in a dialog
    page.locator("img[src^='data:image']").first.wait_for()
    page.wait_for_timeout(1000)
    page.screenshot(path=_screenshot_dir(tmp_path) / "track_artwork_cover_preview.png", full_page=True)


def test_newest_soulseek_matches_shows_the_decisions_table(ui, page, tmp_path):
    import duckdb

    with duckdb.connect(str(ui.settings.duckdb_path), read_only=True) as conn:
        decided = conn.execute(
            "SELECT w.artist || ' – ' || w.title, m.status FROM soulseek_matches m JOIN wanted_tracks w "
            "USING (wanted_key) ORDER BY m.decided_at DESC, w.artist, w.title").fetchall()
    assert decided, "the history run decided nothing"
    newest = graphql(ui.base_url, NEWEST_MATERIALIZATION, {"path": ["soulseek_matches"]})
    run_id = newest["assetOrError"]["assetMaterializations"][0]["runId"]
    _open(page, f"{ui.base_url}/assets/soulseek_matches?view=events")
    _no_dialog(page)
    page.get_by_text(f"Materialized in run {run_id[:8]}").first.wait_for()  # the newest event is the one shown
    # The decisions table is rendered inline in the metadata (short markdown is not behind a dialog).
    table = page.locator("table").filter(has=page.locator("th", has_text="decision")).last
    table.wait_for()
    headers = [h.strip() for h in table.locator("th").all_inner_texts()]
    assert headers == ["track", "decision", "score", "file", "reasons"]
    rows = table.locator("tbody tr")
    assert rows.count() == len(decided)
    first_track, first_status = decided[0]
    row = table.locator("tr", has=page.get_by_text(first_track, exact=True)).first
    row.wait_for()
    assert first_status in row.inner_text()
    page.wait_for_timeout(1000)
    page.screenshot(path=_screenshot_dir(tmp_path) / "soulseek_matches_decisions.png", full_page=True)
