"""Issue 18 item 1: a detection's mined area (AMW ``Mined area (ha)``) is apportioned to the
flag pieces that touch it by their share of the detection's footprint, never copied whole."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pytest
from shapely.geometry import box

from pipeline.comply import evaluate
from pipeline.comply.registry import to_mine_sites
from pipeline.core.config import ComplyParams
from pipeline.core.records import Aoi
from pipeline.ingest.aoi import load_aoi
from pipeline.ingest.vectors import format_spec, read_external_detections, read_registry

pytestmark = pytest.mark.filterwarnings("ignore:`keep_geom_type=True` in overlay resulted")


@pytest.fixture(scope="module")
def amapa_flags(sample_data: Path, aoi_dir: Path) -> tuple[Aoi, gpd.GeoDataFrame, gpd.GeoDataFrame]:
    aoi = load_aoi(aoi_dir / "amapa-gold.geojson", sample_data=sample_data, max_km2=1e6)
    raw = read_registry(sample_data / "registry/sigmine_amapa_2021.geojson", fmt="sigmine")
    sites, _ = to_mine_sites(raw, spec=format_spec("registry", "sigmine"), aois=aoi.to_frame())
    det = read_external_detections(sample_data / "detections/amw_amapa/amw_mining_amapa_*.geojson", fmt="amw")
    det = det[det.intersects(aoi.geometry)]
    flags = evaluate(det, aoi=aoi, sites=sites, params=ComplyParams(), run_id="t")
    return aoi, det, flags


def test_flag_mined_area_never_exceeds_polygon_when_detections_ratio_is_at_most_one(
    amapa_flags: tuple[Aoi, gpd.GeoDataFrame, gpd.GeoDataFrame],
) -> None:
    aoi, det, flags = amapa_flags
    eq = det.to_crs(aoi.equal_area_crs)
    ratio = (eq["mined_area_ha"] / (eq.area / 1e4)).set_axis(eq["detection_id"])
    checked = 0
    for f in flags[flags["detection_ids"] != ""].itertuples():
        ids = str(f.detection_ids).split(",")
        if (ratio.loc[ids] <= 1).all():
            checked += 1
            assert float(f.mined_area_ha) <= float(f.area_ha) * 1.0001 + 1e-3, f.flag_id
    assert checked > 200


def test_mined_area_over_flags_at_most_over_detections(
    amapa_flags: tuple[Aoi, gpd.GeoDataFrame, gpd.GeoDataFrame],
) -> None:
    _, det, flags = amapa_flags
    # a hectare in two non-extraction titles is in both flags (each holder is asked): count
    # every rule apart, each partitions its own mining
    for rule, part in flags[flags["rule_id"] != "activity_without_valid_licence"].groupby("rule_id"):
        assert part["mined_area_ha"].sum() <= det["mined_area_ha"].sum() + 1e-6, rule
    assert flags["mined_area_ha"].sum() < 1.2 * det["mined_area_ha"].sum()


def test_a_detection_split_by_two_titles_shares_its_mined_area_by_area() -> None:
    aoi = Aoi(
        aoi_id="t",
        name="T",
        designation="reserve",
        country="BR",
        protected=False,
        geometry=box(-51.2, 0.8, -50.8, 1.2),
    )
    # one 0.02 x 0.01 degree detection, the west quarter inside an exploration permit
    det = gpd.GeoDataFrame(
        {
            "detection_id": ["d1"],
            "kind": ["mining_deforestation"],
            "period": ["2024"],
            "first_seen": ["2024-12-31"],
            "last_seen": ["2024-12-31"],
            "mined_area_ha": [100.0],
        },
        geometry=[box(-51.0, 1.0, -50.98, 1.01)],
        crs=4326,
    )
    sites = gpd.GeoDataFrame(
        {
            "site_id": ["1/2020"],
            "name": ["P"],
            "licence_status": ["active"],
            "licence_kind": ["exploration permit"],
            "phase": ["AUTORIZAÇÃO DE PESQUISA"],
            "allows_extraction": [False],
            "licence_valid_from": [None],
            "licence_valid_to": [None],
        },
        geometry=[box(-51.01, 0.99, -50.995, 1.02)],
        crs=4326,
    )
    flags = evaluate(det, aoi=aoi, sites=sites, params=ComplyParams(min_flag_area_ha=0), run_id="t")
    by_rule = flags.set_index("rule_id")["mined_area_ha"]
    assert by_rule["activity_without_valid_licence"] == pytest.approx(25.0, rel=0.01)
    assert by_rule["unregistered_mining"] == pytest.approx(75.0, rel=0.01)
