"""Per-territory mined area computed the way Amazon Mining Watch publishes it (each polygon's
``Mined area (ha)`` apportioned by the share of the polygon inside the territory) against
AMW's own published figures (``boundaries/amw_statistics/``), for every one of the 237
mining-affected indigenous territories of the basin and every period (issue 19).

Independent figures: the published statistics were computed by AMW from its full-resolution
polygons; we compute ours from the simplified polygons shipped in ``detections/amw_basin/``
with the pipeline's own impact tables (:func:`pipeline.comply.impact.impact_tables`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.comply.impact import impact_tables
from pipeline.core.config import load_settings
from pipeline.ingest.aoi import load_aois
from pipeline.ingest.vectors import external_detections_within

REPO = Path(__file__).resolve().parents[2]
#: (aoi_id, period, published ha, ours) per territory-period, and ours by register id and period
Compared = tuple[list[tuple[str, str, float, float]], dict[str, dict[str, float]]]


def _label(admin_year: int) -> str:
    return str(admin_year // 100) if admin_year % 100 == 0 else f"{admin_year // 100}Q{admin_year % 100}"


@pytest.fixture(scope="module")
def compared() -> Compared:
    settings = load_settings()
    stats = settings.sample_data / "boundaries" / "amw_statistics" / "indigenous_territories_yearly.json"
    if not stats.is_file():
        pytest.skip(f"{stats} is not in the sample data")
    loaded = load_aois([REPO / "aoi" / "amazon-indigenous-territories.geojson"], settings=settings)
    assert len(loaded.aois) == 237 and not loaded.failures
    published = {
        (r["id"], _label(int(r["admin_year"]))): float(r["intersected_area_ha"])
        for r in json.loads(stats.read_text())
        if r["intersected_area_ha"] is not None
    }
    pattern = settings.sample_data / "detections" / "amw_basin" / "amw_mining_amazon_*.geojson"
    rows, ours_by_aoi = [], {}
    for aoi in loaded.aois:
        found = external_detections_within(pattern, fmt="amw", within=aoi.geometry).assign(aoi_id=aoi.aoi_id)
        summary = impact_tables(found, aoi=aoi).summary
        ours = dict(zip(summary["period"], summary["amw_method_mined_ha"], strict=True))
        ours_by_aoi[str(aoi.wdpa_id)] = ours
        for (tid, period), value in published.items():
            if tid == aoi.wdpa_id:
                rows.append((aoi.aoi_id, period, value, float(ours.get(period, 0.0) or 0.0)))
    return rows, ours_by_aoi


def test_kayapo_2018_reproduces_the_published_figure(compared: Compared) -> None:
    _, ours = compared
    assert ours["BR23001_0"]["2018"] == pytest.approx(4280.83, abs=0.5)  # AMW: 4,280.8 ha


def test_amw_method_matches_the_published_statistics_for_95_percent(compared: Compared) -> None:
    rows, _ = compared
    above = [r for r in rows if r[2] > 10]
    off = [r for r in above if abs(r[3] - r[2]) > 0.01 * r[2]]
    share = 1 - len(off) / len(above)
    # 373 of 387 territory-periods above 10 ha (96.4 %); the rest: see the issue 19 note
    assert len(above) > 300
    assert share >= 0.95, (share, off)


def test_no_mining_where_amw_published_none(compared: Compared) -> None:
    rows, _ = compared
    zero = [r for r in rows if r[2] == 0.0]
    assert zero and all(r[3] < 0.5 for r in zero), [r for r in zero if r[3] >= 0.5]
