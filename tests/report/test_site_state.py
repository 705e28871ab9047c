"""Issue 18 item 2: a site's scorecard never contradicts itself. Licence state and observed
activity are two lines; ``compliant`` only when both are fine; no empty chart heading;
illegal mining is never drawn in the colour of legal mining."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pandas as pd

from pipeline.report.scorecard import site_slug, write_scorecards
from pipeline.report.sites import site_states

LEGAL_GREEN = "#27ae60"


def _write(tmp_path: Path, sites: gpd.GeoDataFrame, flags: gpd.GeoDataFrame, det: gpd.GeoDataFrame) -> None:
    write_scorecards(tmp_path, sites=sites, flags=flags, detections=det, aoi_name="A", lang="en")


def test_title_without_mining_that_does_not_allow_extraction_is_neither_compliant_nor_invalid(
    tmp_path: Path, flags: gpd.GeoDataFrame, detections: gpd.GeoDataFrame, sites: gpd.GeoDataFrame
) -> None:
    # 300/2003: expired concession, no flag, no mining near it
    assert site_states(sites, flags)[2] == "no_extraction_allowed"
    _write(tmp_path, sites, flags, detections)
    page = (tmp_path / f"{site_slug('300/2003')}.html").read_text()
    assert "compliant" not in page.lower()
    assert "Hectares disturbed over time" not in page  # nothing to chart: no heading
    assert "Licence: mining concession, expired: no extraction allowed" in page
    assert "Mining observed: none in 2019–2021" in page
    row = pd.read_csv(tmp_path / "sites.csv").set_index("site_id").loc["300/2003"]
    assert row["state"] == "no_extraction_allowed" and row["mining_observed"] == "none"
    assert row["licence_state"] == "no_extraction_allowed"


def test_flagged_exploration_permit_reads_as_two_lines_and_draws_no_green(
    tmp_path: Path, flags: gpd.GeoDataFrame, detections: gpd.GeoDataFrame, sites: gpd.GeoDataFrame
) -> None:
    _write(tmp_path, sites, flags, detections)
    page = (tmp_path / f"{site_slug('100/2001')}.html").read_text()
    assert "Licence: exploration permit, no extraction allowed" in page
    assert "Mining observed: 22.75 ha in 2019, 2020" in page
    assert "compliant" not in page.lower()
    svg = page[page.index("<svg") : page.index("</svg>")]
    assert LEGAL_GREEN not in svg  # mining inside an exploration permit is illegal
    good = (tmp_path / f"{site_slug('200/2002')}.html").read_text()
    assert "Licence: mining concession, extraction allowed" in good
    assert "compliant" in good.lower()
    assert LEGAL_GREEN in good[good.index("<svg") : good.index("</svg>")]
