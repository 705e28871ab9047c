"""Issue 19: ``mining_in_protected_area`` takes the area's protection category into its
severity, and combines with the title rules (mining in a reserve inside an exploration permit
is both: said once, not twice). Real data: Floresta Estadual do Amapá (a sustainable-use state
forest, CNUC 0000.16.0885), its SIGMINE titles and Amazon Mining Watch's polygons."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import geopandas as gpd
import pytest

from pipeline.comply import evaluate
from pipeline.comply.registry import to_mine_sites
from pipeline.core.config import ComplyParams
from pipeline.core.records import KIND_MINING, Aoi
from pipeline.ingest.aoi import load_aoi
from pipeline.ingest.vectors import external_detections_within, format_spec, read_registry
from pipeline.report.i18n import catalogue
from pipeline.report.reasons import reason_text

Flota = tuple[Aoi, gpd.GeoDataFrame, gpd.GeoDataFrame]
pytestmark = pytest.mark.filterwarnings("ignore:`keep_geom_type=True` in overlay resulted")
MINING_RULES = {"mining_in_protected_area", "activity_without_valid_licence", "clearing_outside_licence",
                "unregistered_mining"}  # fmt: skip


@pytest.fixture(scope="module")
def flota(sample_data: Path, aoi_dir: Path) -> Flota:
    aoi = load_aoi(aoi_dir / "flota-amapa.geojson", sample_data=sample_data)
    raw = read_registry(sample_data / "registry/sigmine_amapa_2021.geojson", fmt="sigmine")
    sites, _ = to_mine_sites(raw, spec=format_spec("registry", "sigmine"), aois=aoi.to_frame())
    det = external_detections_within(
        sample_data / "detections/amw_basin/amw_mining_amazon_*.geojson", fmt="amw", within=aoi.geometry
    ).assign(aoi_id=aoi.aoi_id)
    return aoi, det, sites


def _flags(flota: Flota, **change: Any) -> gpd.GeoDataFrame:
    aoi, det, sites = flota
    return evaluate(
        det, aoi=dataclasses.replace(aoi, **change), sites=sites, params=ComplyParams(), run_id="t"
    )


def test_flota_is_the_sustainable_use_reserve_the_data_readme_describes(flota: Flota) -> None:
    aoi, det, _ = flota
    assert aoi.protection == "sustainable_use"
    assert aoi.area_km2 == pytest.approx(23_688, rel=0.005)  # CNUC: 23,688 km²
    assert len(det) == 218  # README: 218 AMW polygons intersect it


def test_each_hectare_of_mining_in_the_reserve_is_flagged_once(flota: Flota) -> None:
    aoi, det, _ = flota
    flags = _flags(flota)
    mining = flags[flags["rule_id"].isin(MINING_RULES)].to_crs(aoi.equal_area_crs)
    area = gpd.GeoSeries([aoi.geometry], crs=4326).to_crs(aoi.equal_area_crs).iloc[0]
    inside = mining.geometry.intersection(area)
    own = inside[(mining["rule_id"] == "mining_in_protected_area").to_numpy()].union_all()
    titled_ground = inside[(mining["rule_id"] != "mining_in_protected_area").to_numpy()].union_all()
    # the protected-area flags and the title flags never cover the same ground (overlapping
    # titles are each flagged for their own ground, as outside protected areas) ...
    assert own.intersection(titled_ground).area < 1.0  # m²
    assert own.area > 0
    # ... and together they cover all mining inside the reserve
    truth = det[det["kind"] == KIND_MINING].to_crs(aoi.equal_area_crs).union_all().intersection(area)
    assert inside.union_all().area == pytest.approx(truth.area, rel=1e-3)
    # title findings inside the reserve carry the protected-area finding (both sentences)
    titled = mining[mining["rule_id"] != "mining_in_protected_area"]
    in_reserve = (titled.geometry.intersection(area).area > 1.0).to_numpy()
    assert in_reserve.sum() > 50
    assert (titled["also_rule"][in_reserve] == "mining_in_protected_area").all()
    assert titled["also_rule"][~in_reserve].isna().all()  # title flags wholly outside it
    titled = titled[in_reserve]
    one = titled.iloc[0]
    assert "inside Floresta Estadual do Amapá (state forest, sustainable use)" in one["reason"]
    assert one["reason"].count(" ha of mining") == 2
    pt = reason_text(one.to_dict(), cat=catalogue("pt"))
    assert "Floresta Estadual do Amapá" in pt and "mineração" in pt and " ha of " not in pt


def test_severity_follows_the_protection_category(flota: Flota) -> None:
    by_category = {}
    for category in ("sustainable_use", "strict", "indigenous", None):
        flags = _flags(flota, protection=category)
        own = flags[flags["rule_id"] == "mining_in_protected_area"]
        assert len(own) >= 1, category
        by_category[category] = set(own["severity"])
        clearing = flags[(flags["rule_id"] == "clearing_outside_licence") & flags["also_rule"].notna()]
        assert len(clearing), category
        # a medium title rule inside a strictly protected area becomes high
        assert set(clearing["severity"]) == ({"high"} if category != "sustainable_use" else {"medium"})
    assert by_category == {"sustainable_use": {"medium"}, "strict": {"high"}, "indigenous": {"high"},
                           None: {"high"}}  # fmt: skip


def test_outside_a_protected_area_nothing_is_combined(flota: Flota) -> None:
    flags = _flags(flota, protected=False)
    assert "mining_in_protected_area" not in set(flags["rule_id"])
    assert flags["also_rule"].isna().all()
