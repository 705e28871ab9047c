"""The demo flow end to end on the real data, checked against independent computations."""

from __future__ import annotations

import glob
import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
from shapely.geometry import box

import pipeline
from pipeline.cli.main import main

REPO = Path(__file__).resolve().parents[1]

EXTRACTION_PHASES = {"CONCESSÃO DE LAVRA", "LAVRA GARIMPEIRA", "LICENCIAMENTO", "REGISTRO DE EXTRAÇÃO"}


@pytest.fixture(scope="module")
def demo_out(tmp_path_factory: pytest.TempPathFactory, sample_data: Path) -> Path:
    out = tmp_path_factory.mktemp("demo")
    code = main(["--sample-data", str(sample_data), "demo", "--out", str(out), "--scheduler", "threads"])
    assert code == 0
    return out


def _laea(geom_frame: gpd.GeoDataFrame) -> str:
    c = geom_frame.to_crs(4326).union_all().centroid
    return f"+proj=laea +lat_0={c.y} +lon_0={c.x} +datum=WGS84 +units=m"


def _aoi_geom(sample_data: Path, aoi_dir: Path, aoi_id: str) -> gpd.GeoDataFrame:
    doc = json.loads((aoi_dir / f"{aoi_id}.geojson").read_text())
    if doc["geometry"]:
        return gpd.GeoDataFrame.from_features([doc], crs=4326)
    ref = doc["properties"]["boundary"]
    frame = gpd.read_file(sample_data / ref["path"])
    for k, v in ref["match"].items():
        frame = frame[frame[k] == v]
    return frame.to_crs(4326)


@pytest.mark.parametrize("aoi_id", ["trombetas", "amapa-gold", "munduruku"])
def test_every_output_is_written_and_consistent(demo_out: Path, aoi_id: str) -> None:
    d = demo_out / aoi_id
    for name in ("map.html", "flags.geojson", "flags.parquet", "flags.csv", "detections.parquet", "run.json"):
        assert (d / name).is_file() and (d / name).stat().st_size > 0, name
    assert (d / "alerts" / "outbox").is_dir()
    gj = json.loads((d / "flags.geojson").read_text())
    pq = gpd.read_parquet(d / "flags.parquet")
    csv = pd.read_csv(d / "flags.csv")
    assert len(gj["features"]) == len(pq) == len(csv)
    assert "crs" not in gj  # RFC 7946
    run = json.loads((d / "run.json").read_text())
    assert run["aoi_id"] == aoi_id and run["status"] == "ok"
    assert all(len(fp) == 64 for fp in run["inputs"].values()) and run["inputs"]
    alerts = list((d / "alerts" / "outbox").glob("*.json"))
    assert len(alerts) == run["counts"]["alerts"]
    if len(pq):
        assert pq["flag_id"].is_unique
        assert set(pq["status"]) == {"new"}


def test_munduruku_flags_match_independent_overlay(demo_out: Path, sample_data: Path, aoi_dir: Path) -> None:
    territory = _aoi_geom(sample_data, aoi_dir, "munduruku")
    amw = pd.concat(
        [gpd.read_file(f) for f in sorted(glob.glob(str(sample_data / "detections/amw_munduruku/*.geojson")))]
    )
    crs = _laea(territory)
    inside = amw.to_crs(crs).union_all().intersection(territory.to_crs(crs).union_all())
    expected_ha = inside.area / 1e4
    flags = gpd.read_parquet(demo_out / "munduruku" / "flags.parquet")
    assert set(flags["rule_id"]) == {"mining_in_protected_area"}
    got_ha = flags.to_crs(crs).union_all().area / 1e4
    assert expected_ha > 10_000  # thousands of hectares of garimpo in the territory
    # flags drop pieces under 0.1 ha; nothing else may differ
    assert got_ha == pytest.approx(expected_ha, rel=0.005)
    assert flags["area_ha"].sum() == pytest.approx(got_ha, rel=0.005)


def test_amapa_registry_flags_match_independent_overlay(
    demo_out: Path, sample_data: Path, aoi_dir: Path
) -> None:
    aoi = _aoi_geom(sample_data, aoi_dir, "amapa-gold")
    crs = _laea(aoi)
    titles = gpd.read_file(sample_data / "registry/sigmine_amapa_2021.geojson").to_crs(crs)
    amw = pd.concat(
        [gpd.read_file(f) for f in sorted(glob.glob(str(sample_data / "detections/amw_amapa/*.geojson")))]
    ).to_crs(crs)
    amw = amw[amw.intersects(aoi.to_crs(crs).union_all())]
    mining = amw.union_all()
    extraction = titles[titles["FASE"].isin(EXTRACTION_PHASES)].union_all()
    other = titles[~titles["FASE"].isin(EXTRACTION_PHASES)].union_all()
    outside_any = mining.difference(titles.union_all()).area / 1e4
    in_non_extraction = mining.difference(extraction).intersection(other).area / 1e4

    flags = gpd.read_parquet(demo_out / "amapa-gold" / "flags.parquet").to_crs(crs)
    rules = set(flags["rule_id"])
    assert {"activity_without_valid_licence", "unregistered_mining", "compliant"} <= rules
    awvl = flags[flags["rule_id"] == "activity_without_valid_licence"].union_all().area / 1e4
    outside = (
        flags[flags["rule_id"].isin(["unregistered_mining", "clearing_outside_licence"])].union_all().area
        / 1e4
    )
    assert awvl == pytest.approx(in_non_extraction, rel=0.01)
    assert outside == pytest.approx(outside_any, rel=0.01)
    # every awvl flag names a title whose phase forbids extraction
    sites = gpd.read_parquet(demo_out / "amapa-gold" / "sites.parquet").set_index("site_id")
    for sid in flags.loc[flags["rule_id"] == "activity_without_valid_licence", "site_id"]:
        assert not sites.loc[sid, "allows_extraction"]
    html = (demo_out / "amapa-gold" / "map.html").read_text()
    top = flags.sort_values("area_ha", ascending=False)["site_id"].dropna().head(5)
    for sid in top:
        assert sid in html


def test_trombetas_detections_against_plain_numpy(demo_out: Path, sample_data: Path) -> None:
    with rasterio.open(sample_data / "imagery/trombetas_s2_l2a.tif") as src:
        names = list(src.descriptions)
        dn = src.read().astype(np.float64)
    r = {n: (dn[i] - 1000) / 10000 for i, n in enumerate(names)}
    ndvi = (r["B08"] - r["B04"]) / (r["B08"] + r["B04"])
    mndwi = (r["B03"] - r["B11"]) / (r["B03"] + r["B11"])
    bsi = ((r["B11"] + r["B04"]) - (r["B08"] + r["B02"])) / ((r["B11"] + r["B04"]) + (r["B08"] + r["B02"]))
    bare = (ndvi <= 0.3) & (bsi >= -0.05) & ~(mndwi > 0)
    px_ha = (8.983152841214912e-05 * 111_320) ** 2 * np.cos(np.radians(1.47)) / 1e4
    bare_ha = bare.sum() * px_ha

    # the demo's default detector: one date of a town is never gold mining
    det = gpd.read_parquet(demo_out / "trombetas" / "detections.parquet")
    assert (det["kind"] != "mining_deforestation").all()
    assert (det["kind"] == "turbidity").any()
    # the documented index-rules baseline, through the analyst API, against plain numpy
    aoi = pipeline.load_aoi(
        REPO / "aoi" / "trombetas.geojson", settings=pipeline.load_settings(sample_data=sample_data)
    )
    found = pipeline.detect_aoi(
        aoi, settings=pipeline.load_settings(sample_data=sample_data), detector="index-rules"
    )
    mining = found.frame[found.frame["kind"] == "mining_deforestation"]
    assert len(mining) >= 3
    assert (mining["area_ha"] >= 0.5).all()  # minimum mapping unit
    # polygons >= MMU keep most of the bare pixels but never more than exist
    assert 0.5 * bare_ha < mining["area_ha"].sum() <= 1.01 * bare_ha
    assert (mining["mean_ndvi"] < 0.3).all()
    assert found.evidence["class_fractions"]["forest"] > 0.5  # mostly forest, as the scene shows
    run = json.loads((demo_out / "trombetas" / "run.json").read_text())
    assert 0 < run["evidence"]["water_median_fnu"] < 100


def test_rerun_is_byte_identical(demo_out: Path, sample_data: Path, tmp_path: Path) -> None:
    code = main(
        [
            "--sample-data",
            str(sample_data),
            "run",
            "--aoi",
            "munduruku",
            "--out",
            str(tmp_path),
            "--scheduler",
            "threads",
        ]
    )
    assert code == 0
    for name in ("flags.geojson", "flags.csv", "detections.geojson"):
        assert (tmp_path / "munduruku" / name).read_bytes() == (demo_out / "munduruku" / name).read_bytes(), (
            name
        )


def test_imagery_flags_of_the_demo_lie_on_labelled_mining_sites(demo_out: Path, sample_data: Path) -> None:
    """Flags from our own detector in the territories with real site imagery: each one on a
    site labelled mining, none on the natural-change sites (3 in Yanomami)."""
    from pipeline.ingest.site_patches import read_site_index

    rows = []
    for site in read_site_index(sample_data / "imagery" / "gold_mining_patches"):
        with rasterio.open(site.after) as src:
            outline = gpd.GeoSeries([box(*src.bounds)], crs=src.crs).to_crs(4326).iloc[0]
        rows.append({"sample_id": site.sample_id, "mining": site.mining, "geometry": outline})
    boxes = gpd.GeoDataFrame(rows, crs=4326)
    imagery_flags = 0
    for aoi_id in ("kayapo", "yanomami", "munduruku"):
        det = gpd.read_parquet(demo_out / aoi_id / "detections.parquet")
        ours = det[det["source"] == "asm-monitor gold-mining detector"]
        flags = gpd.read_parquet(demo_out / aoi_id / "flags.parquet")
        ids = set(ours["detection_id"])
        imagery_flags += sum(any(i in str(d) for i in ids) for d in flags["detection_ids"])
        hit = gpd.sjoin(ours.to_crs(4326), boxes, predicate="intersects")
        assert len(ours) == 0 or set(hit["mining"]) == {1}, hit[["detection_id", "sample_id", "mining"]]
    assert imagery_flags >= 10  # Kayapó alone: 17 flags from imagery in the demo
