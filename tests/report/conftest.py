"""Small synthetic report inputs (AOI, sites, detections, flags) with hostile strings, and
one real run of the amapa-gold AOI on the sample data."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import geopandas as gpd
import pytest
from shapely.geometry import Point, box

from pipeline.cli.main import main
from pipeline.comply.flags import FLAG_COLUMNS

XSS = "<img src=x onerror=alert(1)>"
TEMPLATE_XSS = "`${alert(2)}`</script><script>alert(3)</script>\\"


@pytest.fixture
def aoi_frame() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"aoi_id": ["test-aoi"], "name": ["Test <b>AOI</b>"], "designation": ["reserve"], "country": ["BR"]},
        geometry=[box(-51.8, 0.9, -51.6, 1.1)],
        crs=4326,
    )


@pytest.fixture
def sites() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {
            "site_id": ["100/2001", "200/2002", "300/2003"],
            "name": [XSS, "Mina Boa", "Lavra 3"],
            "operator": [TEMPLATE_XSS, "Coop. Ouro", "Ouro & Cia"],
            "licence_status": ["active", "active", "expired"],
            "licence_kind": ["exploration permit", "mining concession", "mining concession"],
            "allows_extraction": [False, True, True],
            "phase": ["AUTORIZAÇÃO DE PESQUISA", "CONCESSÃO DE LAVRA", "CONCESSÃO DE LAVRA"],
            "mineral": ["OURO", "OURO", "OURO"],
            "registry": ["test", "test", "test"],
        },
        geometry=[
            box(-51.78, 0.92, -51.74, 0.96),
            box(-51.70, 1.00, -51.66, 1.04),
            box(-51.65, 0.92, -51.62, 0.95),
        ],
        crs=4326,
    )


@pytest.fixture
def detections() -> gpd.GeoDataFrame:
    rows = [
        ("d1", "2019", -51.77, 0.93, 12.5),
        ("d2", "2020", -51.765, 0.935, 7.25),
        ("d3", "2020", -51.73, 0.95, 3.0),
        ("d4", "2021", -51.68, 1.02, 1.5),
    ]
    return gpd.GeoDataFrame(
        {
            "detection_id": [r[0] for r in rows],
            "kind": ["mining_deforestation"] * 4,
            "aoi_id": ["test-aoi"] * 4,
            "area_ha": [r[4] for r in rows],
            "first_seen": [f"{r[1]}-12-31" for r in rows],
            "last_seen": [f"{r[1]}-12-31" for r in rows],
            "period": [r[1] for r in rows],
            "confidence": ["probable"] * 4,
            "source": ["test"] * 4,
            "mined_area_ha": [float("nan")] * 4,
        },
        geometry=[Point(r[2], r[3]).buffer(0.003) for r in rows],
        crs=4326,
    )


def _flag(
    fid: str,
    rule: str,
    sev: str,
    status: str,
    site: str | None,
    dets: str,
    ha: float,
    lon: float,
    lat: float,
    name: str | None = None,
) -> dict[str, object]:
    return {
        "flag_id": fid,
        "rule_id": rule,
        "rule_version": "1",
        "rulebook_version": "test",
        "severity": sev,
        "status": status,
        "aoi_id": "test-aoi",
        "site_id": site,
        "site_name": name,
        "licence_status": "active" if site else None,
        "licence_kind": "exploration permit" if site else None,
        "detection_ids": dets,
        "area_ha": ha,
        "mined_area_ha": float("nan"),
        "first_seen": "2019-12-31",
        "last_seen": "2020-12-31",
        "periods": "2019,2020",
        "reason": f"{ha} ha of mining at {name or 'no site'} {XSS}",
        "clause": "OECD DDG Annex II: illegal extraction",
        "lon": lon,
        "lat": lat,
        "run_id": "test-run",
        "geometry": Point(lon, lat).buffer(0.002),
    }


@pytest.fixture
def flags() -> gpd.GeoDataFrame:
    rows = [
        _flag(
            "aaaa000000000001",
            "activity_without_valid_licence",
            "high",
            "new",
            "100/2001",
            "d1,d2",
            19.75,
            -51.767,
            0.933,
            XSS,
        ),
        _flag(
            "aaaa000000000002",
            "clearing_outside_licence",
            "medium",
            "worsening",
            "100/2001",
            "d3",
            3.0,
            -51.73,
            0.95,
            XSS,
        ),
        _flag("aaaa000000000003", "unregistered_mining", "high", "ongoing", None, "", 4.0, -51.61, 1.08),
        _flag(
            "aaaa000000000004", "compliant", "info", "new", "200/2002", "d4", 1.5, -51.68, 1.02, "Mina Boa"
        ),
        _flag(
            "aaaa000000000005", "mining_in_protected_area", "high", "resolved", None, "", 2.0, -51.79, 1.09
        ),
    ]
    frame = gpd.GeoDataFrame(rows, geometry="geometry", crs=4326)
    # columns the comply stage adds later (thresholds, ...) stay empty here
    return gpd.GeoDataFrame(frame.reindex(columns=[*FLAG_COLUMNS, "geometry"]), geometry="geometry", crs=4326)


@pytest.fixture(scope="session")
def real_run(tmp_path_factory: pytest.TempPathFactory, sample_data: Path) -> Path:
    """One real pipeline run of amapa-gold (registry + AMW detections): OUT_DIR/amapa-gold."""
    out = tmp_path_factory.mktemp("report-run")
    code = main(
        [
            "--sample-data",
            str(sample_data),
            "run",
            "--aoi",
            "amapa-gold",
            "--out",
            str(out),
            "--scheduler",
            "threads",
        ]
    )
    assert code == 0
    return out / "amapa-gold"


@pytest.fixture
def offline_page() -> Iterator[Callable[[Path], Any]]:
    """Opens a local page in headless Chromium with every non-file request refused (skips
    when Chromium or Playwright is missing); returns the Playwright page."""
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(chromium).exists():
        pytest.skip("no Chromium")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])

        def open_page(path: Path) -> Any:
            page = browser.new_page()
            local = ("file:", "data:")
            page.route("**/*", lambda r: r.continue_() if r.request.url.startswith(local) else r.abort())
            page.goto(path.as_uri())
            return page

        try:
            yield open_page
        finally:
            browser.close()
