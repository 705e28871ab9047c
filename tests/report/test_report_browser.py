"""The map in a real headless Chromium, offline: renders, one marker per flag, no script
from data runs, template syntax in names shows as text, ``#flag-<id>`` opens that flag, and
the tiles note shows."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import geopandas as gpd
import pytest

from pipeline.report.map import write_map
from pipeline.report.scorecard import scorecard_links

pytestmark = pytest.mark.browser
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if CHROMIUM is None:
        pytest.skip("no Chromium on PATH: install Debian's chromium package (make browser) to run map tests")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


class Visit:
    """A page with every non-file, non-loopback request blocked and events recorded."""

    def __init__(self, browser: Any, url: str) -> None:
        self.blocked: list[str] = []
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        self.page = browser.new_page(viewport={"width": 1280, "height": 800})
        self.page.route("**/*", self._route)
        self.page.on("dialog", self._dialog)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.goto(url)
        self.page.wait_for_selector(".leaflet-container")
        self.page.wait_for_timeout(800)

    def _route(self, route: Any) -> None:
        url = route.request.url
        if url.startswith(("file:", "data:", "http://127.0.0.1", "http://localhost")):
            route.continue_()
        else:
            self.blocked.append(url)
            route.abort()

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()


def test_synthetic_map_with_hostile_names_runs_no_script(
    browser: Any,
    tmp_path: Path,
    aoi_frame: gpd.GeoDataFrame,
    detections: gpd.GeoDataFrame,
    flags: gpd.GeoDataFrame,
    sites: gpd.GeoDataFrame,
) -> None:
    path = write_map(
        tmp_path / "map.html",
        aoi=aoi_frame,
        detections=detections,
        flags=flags,
        sites=sites,
        title="<img src=x onerror=alert(7)>",
        # a payload that leaves a trace instead of a dialog: checked through window.__pwned
        attribution='<img src=x onerror="window.__pwned=1">',
        lang="pt",
        scorecards=scorecard_links(sites),
    )
    v = Visit(browser, path.as_uri())
    page = v.page
    # open every popup and tooltip that carries a hostile string
    for fid in flags["flag_id"]:
        page.evaluate(f"window.asmFlags['{fid}'].openPopup()")
    page.evaluate(
        "document.querySelectorAll('path.leaflet-interactive').forEach(e => e.dispatchEvent(new MouseEvent('mouseover', {bubbles: true})))"
    )
    page.wait_for_timeout(300)
    assert v.dialogs == [] and v.errors == []
    assert page.locator("img[src='x']").count() == 0
    assert page.evaluate("typeof window.__pwned") == "undefined"
    first = flags["flag_id"].iloc[0]
    page.evaluate(f"window.asmFlags['{first}'].openPopup()")
    popup = page.locator(".leaflet-popup-content", has_text=first).inner_text()
    assert "<img src=x onerror=alert(1)>" in popup  # shown as text
    assert page.locator("path.asm-flag").count() == len(flags)
    assert page.locator("#asm-tiles-note").is_visible()  # tiles were blocked
    assert v.blocked and all("tile" in u for u in v.blocked)
    page.screenshot(path=str(tmp_path / "synthetic.png"))
    page.close()


#: Jinja, HTML and JS payloads as a SIGMINE holder or AOI name could carry them
# (tests/reliability/test_injection.py renders the full set through every writer)
TEMPLATE_PAYLOADS = " ".join(
    [
        "{{ 7*7 }}",
        "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
        "{% raw %}",
        "{#",
        "</script><script>window.__pwned=1</script>",
        '"><img src=x onerror="window.__pwned=1">',
        "`${window.__pwned=1}`",
    ]
)


def test_template_payloads_show_as_text_in_chromium(
    browser: Any,
    tmp_path: Path,
    aoi_frame: gpd.GeoDataFrame,
    detections: gpd.GeoDataFrame,
    flags: gpd.GeoDataFrame,
    sites: gpd.GeoDataFrame,
) -> None:
    sid = "100/" + TEMPLATE_PAYLOADS
    sites = sites.assign(site_id=sites["site_id"].replace("100/2001", sid), name=TEMPLATE_PAYLOADS)
    flags = flags.assign(site_id=flags["site_id"].replace("100/2001", sid))
    flags.loc[flags["site_id"] == sid, "site_name"] = TEMPLATE_PAYLOADS
    title = "AOI " + TEMPLATE_PAYLOADS
    path = write_map(
        tmp_path / "map.html",
        aoi=aoi_frame.assign(name=title),
        detections=detections,
        flags=flags,
        sites=sites,
        title=title,
        attribution=TEMPLATE_PAYLOADS,
        lang="es",
        scorecards=scorecard_links(sites),
    )
    v = Visit(browser, path.as_uri())
    page = v.page
    page.evaluate(
        "document.querySelectorAll('path.leaflet-interactive').forEach(e => e.dispatchEvent(new MouseEvent('mouseover', {bubbles: true})))"
    )
    for fid in flags["flag_id"]:
        page.evaluate(f"window.asmFlags['{fid}'].openPopup()")
    first = flags["flag_id"].iloc[0]
    page.evaluate(f"window.asmFlags['{first}'].openPopup()")
    page.wait_for_timeout(300)
    assert v.dialogs == [] and v.errors == []
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.locator("img[src='x']").count() == 0
    # the reader sees the names as they were written: not 49, not the output of `id`
    assert page.title() == title
    legend = page.locator("#asm-legend").inner_text()
    popup = page.locator(".leaflet-popup-content").inner_text()
    tips = "\n".join(page.locator(".leaflet-tooltip").all_inner_texts())
    for shown in (legend, popup, tips):
        assert TEMPLATE_PAYLOADS in shown
        assert "uid=" not in shown
    assert title in legend and title in tips  # the AOI name: heading and outline tooltip
    assert sid in popup and sid in tips  # the site id: flag popup and site tooltip
    page.screenshot(path=str(tmp_path / "payloads.png"))
    page.close()


def test_real_map_renders_offline_with_one_marker_per_flag(
    browser: Any, real_run: Path, tmp_path: Path
) -> None:
    flags = json.loads((real_run / "flags.geojson").read_text())["features"]
    v = Visit(browser, (real_run / "map.html").as_uri())
    page = v.page
    assert page.locator(".leaflet-container").count() == 1
    assert page.locator("path.asm-flag").count() == len(flags) > 100
    assert page.locator("[id^='flag-']").count() == len(flags)
    assert page.locator(".leaflet-control-layers").count() == 1
    assert page.locator(".leaflet-control-scale").count() == 1
    assert page.locator("#asm-legend").is_visible()
    assert v.errors == [] and v.dialogs == []
    assert not [u for u in v.blocked if "tile" not in u]  # nothing but basemap tiles went out
    page.screenshot(path=str(tmp_path / "amapa-gold.png"))
    shutil.copy(tmp_path / "amapa-gold.png", real_run / "map-screenshot.png")
    page.close()


def test_flag_anchor_opens_that_flags_popup(browser: Any, real_run: Path) -> None:
    flags = json.loads((real_run / "flags.geojson").read_text())["features"]
    fid = flags[-1]["properties"]["flag_id"]
    v = Visit(browser, (real_run / "map.html").as_uri() + f"#flag-{fid}")
    content = v.page.locator(".leaflet-popup-content")
    assert content.count() == 1
    assert fid in content.inner_text()
    v.page.close()
