"""Comply on the real data: AMW mining polygons x SIGMINE Amapá titles, AMW x Munduruku territory.

Expected hectares are computed here independently with plain geopandas overlays in an
equal-area CRS of the test's own, with overlapping titles dissolved.
"""

from __future__ import annotations

import glob
import json
import sys
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest

from pipeline.comply import evaluate
from pipeline.comply.impact import impact_tables
from pipeline.comply.lifecycle import STATUSES
from pipeline.comply.registry import to_mine_sites
from pipeline.comply.scorecard import site_scorecards
from pipeline.core.config import ComplyParams
from pipeline.core.periods import parse_period
from pipeline.core.records import Aoi
from pipeline.ingest.aoi import load_aoi
from pipeline.ingest.vectors import format_spec, read_external_detections, read_registry
from pipeline.state.audit import StateStore, track_flags

EXTRACTION = ["CONCESSÃO DE LAVRA", "LAVRA GARIMPEIRA", "LICENCIAMENTO", "REGISTRO DE EXTRAÇÃO"]
PERIODS = ["2018", "2019", "2020", "2021", "2022", "2023", "2024", "2025Q2", "2025Q3"]
REL = 0.001  # 0.1 %
pytestmark = pytest.mark.filterwarnings("ignore:`keep_geom_type=True` in overlay resulted")


def _laea(geom: object) -> str:
    c = geom.centroid  # type: ignore[attr-defined]
    return f"+proj=laea +lat_0={c.y} +lon_0={c.x} +datum=WGS84 +units=m"


def _amw(sample_data: Path, clip: str) -> gpd.GeoDataFrame:
    files = sorted(glob.glob(str(sample_data / f"detections/{clip}/*.geojson")))
    return gpd.GeoDataFrame(pd.concat([gpd.read_file(f) for f in files], ignore_index=True), crs=4326)


@pytest.fixture(scope="module")
def amapa(sample_data: Path, aoi_dir: Path) -> tuple[Aoi, gpd.GeoDataFrame, gpd.GeoDataFrame, list[int]]:
    aoi = load_aoi(aoi_dir / "amapa-gold.geojson", sample_data=sample_data, max_km2=1e6)
    raw = read_registry(sample_data / "registry/sigmine_amapa_2021.geojson", fmt="sigmine")
    sites, report = to_mine_sites(raw, spec=format_spec("registry", "sigmine"), aois=aoi.to_frame())
    det = read_external_detections(sample_data / "detections/amw_amapa/amw_mining_amapa_*.geojson", fmt="amw")
    det = det[det.intersects(aoi.geometry)]
    return aoi, sites, det, [r.row for r in report.rejected]


def test_amapa_impact_matches_independent_overlay(
    amapa: tuple[Aoi, gpd.GeoDataFrame, gpd.GeoDataFrame, list[int]], sample_data: Path, aoi_dir: Path
) -> None:
    aoi, sites, det, rejected = amapa
    table = impact_tables(det, aoi=aoi, sites=sites)
    total = table.summary.set_index("period").loc["total"]

    # --- independent: raw files, own CRS, the titles comply kept (its report names the rest)
    zone = gpd.GeoDataFrame.from_features(
        [json.loads((aoi_dir / "amapa-gold.geojson").read_text())], crs=4326
    )
    crs = _laea(zone.union_all())
    titles = gpd.read_file(sample_data / "registry/sigmine_amapa_2021.geojson")
    titles = titles.drop(index=[r - 1 for r in rejected]).to_crs(crs)
    amw = _amw(sample_data, "amw_amapa").to_crs(crs)
    mined = gpd.overlay(amw.dissolve()[["geometry"]], zone.to_crs(crs)[["geometry"]], how="intersection")
    ha = lambda f: float(f.area.sum() / 1e4)  # noqa: E731
    dissolved = titles.dissolve()[["geometry"]]
    expected = {
        "mined_ha": ha(mined),
        "in_titles_ha": ha(gpd.overlay(mined, dissolved, how="intersection")),
        "in_extraction_titles_ha": ha(
            gpd.overlay(
                mined, titles[titles["FASE"].isin(EXTRACTION)].dissolve()[["geometry"]], how="intersection"
            )
        ),
        "outside_titles_ha": ha(gpd.overlay(mined, dissolved, how="difference")),
    }
    for key, value in expected.items():
        assert total[key] == pytest.approx(value, rel=REL), key
    assert expected["mined_ha"] > 30_000 and expected["in_extraction_titles_ha"] > 1_500

    # by FASE: each hectare to the first phase covering it (extraction phases first), no double count
    phases = table.by_phase[table.by_phase["period"] == "total"].set_index("phase")["ha"]
    order = sorted(EXTRACTION) + sorted(set(titles["FASE"]) - set(EXTRACTION))
    left = mined
    for phase in order:
        cover = titles[titles["FASE"] == phase].dissolve()[["geometry"]]
        if cover.empty:
            continue
        piece = gpd.overlay(left, cover, how="intersection")
        assert phases.get(phase, 0.0) == pytest.approx(ha(piece), rel=REL, abs=0.01), phase
        left = gpd.overlay(left, cover, how="difference")
    assert phases.sum() == pytest.approx(total["in_titles_ha"], rel=1e-9)

    # per period: AMW files are disjoint, so each year's new hectares are that file's footprint
    per = table.summary.set_index("period")
    amw24 = amw[amw["year"] == 202400].dissolve()[["geometry"]]
    assert per.loc["2024", "mined_ha"] == pytest.approx(
        ha(gpd.overlay(amw24, zone.to_crs(crs)[["geometry"]], how="intersection")), rel=REL
    )
    assert per.loc[PERIODS, "mined_ha"].sum() == pytest.approx(total["mined_ha"], rel=1e-6)
    sys.stdout.write(
        "\n" + table.summary.drop(columns=["zone_name", "zone_designation"]).round(1).to_string() + "\n"
    )


def test_munduruku_impact_matches_independent_overlay(sample_data: Path, aoi_dir: Path) -> None:
    aoi = load_aoi(aoi_dir / "munduruku.geojson", sample_data=sample_data, max_km2=1e6)
    det = read_external_detections(
        sample_data / "detections/amw_munduruku/amw_mining_munduruku_*.geojson", fmt="amw"
    )
    others = gpd.read_file(sample_data / "boundaries/indigenous_territories_amw.geojson")
    zones = others.rename(columns={"id": "zone_id", "name_field": "name", "status_field": "designation"})
    table = impact_tables(det, aoi=aoi, zones=zones)
    got = table.summary[table.summary["period"] == "total"].set_index("zone_id")["mined_ha"]

    territory = gpd.read_file(sample_data / "boundaries/yanomami_munduruku.geojson")
    territory = territory[territory["name"] == "Munduruku"]
    crs = _laea(territory.union_all())
    amw = _amw(sample_data, "amw_munduruku").to_crs(crs).dissolve()[["geometry"]]
    inside = gpd.overlay(amw, territory.to_crs(crs)[["geometry"]], how="intersection")
    assert got[aoi.aoi_id] == pytest.approx(inside.area.sum() / 1e4, rel=REL)
    assert got[aoi.aoi_id] > 10_000
    for z in zones.itertuples():
        poly = gpd.GeoDataFrame(geometry=[z.geometry], crs=4326).to_crs(aoi.equal_area_crs)
        want = gpd.overlay(amw.to_crs(aoi.equal_area_crs), poly, how="intersection").area.sum() / 1e4
        assert got[str(z.zone_id)] == pytest.approx(want, rel=REL, abs=0.01), z.name
    # AMW's published "mined area" is smaller than the footprint of its simplified outlines
    sys.stdout.write(
        "\n"
        + pd.DataFrame(
            {
                "footprint_ha": got.drop(aoi.aoi_id),
                "amw_published_ha": zones.set_index("zone_id")["mining_affected_area_ha"],
            }
        )
        .round(1)
        .to_string()
        + "\n"
    )


def test_real_years_as_successive_periods_drive_the_lifecycle(
    amapa: tuple[Aoi, gpd.GeoDataFrame, gpd.GeoDataFrame, list[int]], tmp_path: Path
) -> None:
    aoi, sites, det, _ = amapa
    params = ComplyParams()
    db = tmp_path / "state.sqlite"
    counts: dict[str, dict[str, int]] = {}
    last = None
    for label in PERIODS:
        period = parse_period(label)
        part = det[[period.start <= d <= period.end for d in det["last_seen"]]]
        flags = evaluate(part, aoi=aoi, sites=sites, params=params, run_id=label)
        last = track_flags(flags, aoi=aoi, period=period, params=params, run_id=label, state_path=db)
        real = last.flags[last.flags["rule_id"] != "compliant"]
        counts[label] = {s: int((real["status"] == s).sum()) for s in STATUSES if s != "suppressed"}
        counts[label]["open_unseen"] = int((~real["seen"].astype(bool) & (real["status"] == "ongoing")).sum())
    table = pd.DataFrame(counts).T
    sys.stdout.write("\nlifecycle of non-compliant flags, amapa-gold\n" + table.to_string() + "\n")
    assert (
        table.loc["2018", "new"] > 50 and table.loc["2018", ["ongoing", "worsening", "resolved"]].sum() == 0
    )
    later = table.loc[PERIODS[1:]]
    assert (later["new"] > 0).all() and (later["worsening"] > 0).all()
    assert later["ongoing"].sum() > 0 and later["resolved"].sum() > 0
    assert table.loc["2019", "resolved"] == 0  # nothing can resolve before two periods have passed

    # running the last period again changes nothing and appends nothing
    with StateStore(db) as store:
        n_rows, _, problems = store.verify_ledger()
    assert problems == [] and n_rows > 500
    flags = evaluate(det[det["period"] == "2025Q3"], aoi=aoi, sites=sites, params=params, run_id="again")
    again = track_flags(
        flags, aoi=aoi, period=parse_period("2025Q3"), params=params, run_id="again", state_path=db
    )
    assert last is not None
    pd.testing.assert_series_equal(
        again.flags.set_index("flag_id")["status"], last.flags.set_index("flag_id")["status"]
    )
    with StateStore(db) as store:
        assert len(store.ledger_rows()) == n_rows

    # scorecard: the title with the most mining, checked against its own overlay
    card = site_scorecards(
        sites, det, crs=aoi.equal_area_crs, near_m=params.near_site_m, flags=last.flags, states=last.states
    )
    top = card.sites.sort_values("inside_title_ha", ascending=False).iloc[0]
    title = sites.set_index("site_id").loc[[top["site_id"]]]
    crs = aoi.equal_area_crs
    mined = det.to_crs(crs).dissolve()[["geometry"]]
    want = gpd.overlay(mined, title.to_crs(crs)[["geometry"]], how="intersection").area.sum() / 1e4
    assert top["inside_title_ha"] == pytest.approx(want, rel=REL)
    dist = card.disturbance[card.disturbance["site_id"] == top["site_id"]]
    assert dist["cumulative_inside_ha"].iloc[-1] == pytest.approx(want, rel=REL)
    assert top["first_evidence"] <= top["last_evidence"]
    assert sum(top[f"flags_{s}"] for s in STATUSES) == len(
        last.flags[last.flags["site_id"] == top["site_id"]]
    )
    sys.stdout.write(
        f"\ntop title {top['site_id']} ({top['phase']}): {top['inside_title_ha']:.1f} ha inside\n"
    )
