"""Issue 17 item 5: river statistics in the run. Where an AOI has river lines, imagery (a
water mask) and registered sites, ``run`` measures turbidity upstream and downstream of each
site on a river and ``turbidity_downstream`` can fire; where one is missing, ``run.json``
says the rule was not evaluated and why.

Firing: a whole CLI run over a scene written in memory with a seeded generator (a 100 m wide
river flowing west to east, clear upstream of a registered title and carrying a sediment
plume downstream of it). The expected medians are Dogliotti et al. (2015)'s formula worked by
hand from the reflectances written, not the pipeline's kernel. Not evaluated: real runs of
amapa-gold (SIGMINE Amapá + AMW; no imagery) with and without the real RAISG river lines."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from pyproj import Transformer
from rasterio.transform import from_origin

from pipeline.cli.main import main
from pipeline.core.errors import AoiError
from pipeline.ingest.aoi import load_aoi

RAISG = "boundaries/raisg_illegal_mining_rivers_2022.geojson"
EPSG = 32721  # UTM 21S, near Porto Trombetas
X0, Y0 = 400_000.0, 9_835_000.0  # north-west corner of the scene (m)
W, H = 200, 100  # 2 km x 1 km at 10 m
#: reflectance (blue, green, red, nir, swir1): forest, clear river, turbid plume
FOREST = (0.02, 0.05, 0.03, 0.35, 0.15)
CLEAR = (0.015, 0.06, 0.02, 0.01, 0.005)
PLUME = (0.04, 0.09, 0.10, 0.03, 0.01)


def _dogliotti(red: float, nir: float) -> float:
    """Dogliotti et al. 2015, eq. 1-2: red (A 228.1, C 0.1641) below 0.05, NIR (A 3078.9,
    C 0.2112) above 0.07."""
    a, c, rho = (228.1, 0.1641, red) if red < 0.05 else (3078.9, 0.2112, nir)
    return a * rho / (1 - rho / c)


def _lonlat(x: float, y: float) -> tuple[float, float]:
    return Transformer.from_crs(EPSG, 4326, always_xy=True).transform(x, y)


def _world(root: Path, *, plume: bool = True) -> Path:
    """Sample data under ``root``: the scene, the river line (west to east along the channel),
    one registered title on the north bank at x = 1 km; returns the AOI folder."""
    rng = np.random.default_rng(17)
    bands = np.empty((5, H, W), dtype=np.float64)
    bands[:] = np.array(FOREST)[:, None, None]
    river = slice(45, 55)  # rows: a 100 m wide channel
    bands[:, river, :] = np.array(CLEAR)[:, None, None]
    if plume:
        bands[:, river, 105:] = np.array(PLUME)[:, None, None]  # the plume starts just below the site
    dn = np.clip(np.round(bands * 10000 + rng.normal(0, 2, bands.shape)), 1, 65535).astype("uint16")
    (root / "data" / "imagery").mkdir(parents=True)
    with rasterio.open(
        root / "data" / "imagery" / "river.tif", "w", driver="GTiff", width=W, height=H, count=5,
        dtype="uint16", crs=f"EPSG:{EPSG}", transform=from_origin(X0, Y0, 10, 10), nodata=0,
    ) as dst:  # fmt: skip
        dst.write(dn)
        dst.descriptions = ("B02", "B03", "B04", "B08", "B11")
    ymid = Y0 - 500
    line = {"type": "Feature", "properties": {"nombre": "Rio Teste"},
            "geometry": {"type": "LineString", "coordinates": [_lonlat(X0 + 20, ymid), _lonlat(X0 + W * 10 - 20, ymid)]}}  # fmt: skip
    (root / "data" / "rivers").mkdir()
    (root / "data" / "rivers" / "rivers.geojson").write_text(
        json.dumps({"type": "FeatureCollection", "features": [line]})
    )
    lon, lat = _lonlat(X0 + 1000, Y0 - 420)  # 30 m north of the channel
    (root / "data" / "registry").mkdir()
    (root / "data" / "registry" / "titles.csv").write_text(
        "site_id,name,operator,licence_status,licence_valid_from,licence_valid_to,mineral,lon,lat,radius_m\n"
        f"T-1,Lavra do Rio,Op A,active,2020-01-01,2030-12-31,gold,{lon},{lat},40\n"
    )
    ring = [_lonlat(X0 + 10, Y0 - 10), _lonlat(X0 + W * 10 - 10, Y0 - 10),
            _lonlat(X0 + W * 10 - 10, Y0 - H * 10 + 10), _lonlat(X0 + 10, Y0 - H * 10 + 10)]  # fmt: skip
    aoi = {
        "type": "Feature",
        "properties": {
            "aoi_id": "rio-teste", "name": "Rio Teste", "designation": "mining district", "country": "Brazil",
            "wdpa_id": None, "protected": False,
            "inputs": {
                "scenes": [{"path": "imagery/river.tif", "datetime": "2024-07-01", "scale": 0.0001}],
                "registry": {"path": "registry/titles.csv", "format": "native"},
                "rivers": {"path": "rivers/rivers.geojson", "name_field": "nombre", "reach_m": 600, "gap_m": 50,
                           "max_offset_m": 200},
            },
        },
        "geometry": {"type": "Polygon", "coordinates": [[*ring, ring[0]]]},
    }  # fmt: skip
    (root / "aoi").mkdir()
    (root / "aoi" / "rio-teste.geojson").write_text(json.dumps(aoi))
    cfg = root / "asm.toml"
    cfg.write_text('[detect]\ndetector = "index-rules"\n')
    return root / "aoi"


def _run(root: Path, aoi_dir: Path, aoi_id: str, data: Path, *extra: str) -> dict:
    argv = ["--sample-data", str(data), "--aoi-dir", str(aoi_dir), "run", "--aoi", aoi_id, "--out",
            str(root / "out"), "--scheduler", "synchronous", "--no-progress"]  # fmt: skip
    assert main([*extra, *argv]) == 0
    return json.loads((root / "out" / aoi_id / "run.json").read_text())


def test_a_plume_below_a_title_fires_turbidity_downstream(tmp_path: Path) -> None:
    aoi_dir = _world(tmp_path)
    summary = _run(tmp_path, aoi_dir, "rio-teste", tmp_path / "data", "--config", str(tmp_path / "asm.toml"))
    assert summary["rules_not_evaluated"] == {}
    assert summary["evidence"]["rivers"] == {
        "river_lines": 1,
        "sites": 1,
        "sites_on_a_river": 1,
        "sites_measured": 1,
    }
    assert summary["counts"]["flags_by_rule"].get("turbidity_downstream") == 1
    flags = gpd.read_parquet(tmp_path / "out" / "rio-teste" / "flags.parquet")
    hot = flags[flags["rule_id"] == "turbidity_downstream"].iloc[0]
    args = json.loads(hot["reason_args"])
    up, down = _dogliotti(CLEAR[2], CLEAR[3]), _dogliotti(PLUME[2], PLUME[3])  # 5.2 and 107.6 FNU
    assert hot["site_id"] == "T-1"
    assert args["upstream_fnu"] == pytest.approx(up, rel=0.05)
    assert args["downstream_fnu"] == pytest.approx(down, rel=0.05)
    assert args["ratio"] == pytest.approx(down / up, rel=0.1)
    assert "downstream of site T-1 is 10" in hot["reason"]


def test_the_same_river_without_a_plume_is_measured_and_does_not_fire(tmp_path: Path) -> None:
    aoi_dir = _world(tmp_path, plume=False)
    summary = _run(tmp_path, aoi_dir, "rio-teste", tmp_path / "data", "--config", str(tmp_path / "asm.toml"))
    assert summary["rules_not_evaluated"] == {}
    assert summary["evidence"]["rivers"]["sites_measured"] == 1
    assert "turbidity_downstream" not in summary["counts"]["flags_by_rule"]


def test_without_rivers_or_imagery_run_json_says_why_the_rule_was_not_evaluated(
    tmp_path: Path, sample_data: Path, aoi_dir: Path
) -> None:
    # the real amapa-gold AOI: a registry and AMW detections, no river lines
    plain = _run(tmp_path / "a", aoi_dir, "amapa-gold", sample_data)
    assert plain["rules_not_evaluated"] == {
        "turbidity_downstream": "no river lines: the AOI file has no inputs.rivers (river centre lines)"
    }
    # the same AOI with the real RAISG rivers: still no imagery, so no water mask
    doc = json.loads((aoi_dir / "amapa-gold.geojson").read_text())
    doc["properties"]["inputs"]["rivers"] = {"path": RAISG, "name_field": "nombre"}
    folder = tmp_path / "aoi"
    folder.mkdir()
    (folder / "amapa-gold.geojson").write_text(json.dumps(doc))
    with_rivers = _run(tmp_path / "b", folder, "amapa-gold", sample_data)
    why = with_rivers["rules_not_evaluated"]["turbidity_downstream"]
    assert why.startswith("no imagery, so no water mask or turbidity")
    assert with_rivers["counts"]["flags_by_rule"] == plain["counts"]["flags_by_rule"]  # nothing else changed


def test_real_raisg_rivers_far_from_the_trombetas_scene_are_named(tmp_path: Path, sample_data: Path) -> None:
    """The RAISG file (32 rivers, none near Porto Trombetas) with a title on the Trombetas river."""
    from pipeline.core.config import Settings
    from pipeline.ops.river_stats import river_statistics

    aoi = load_aoi(Path(__file__).resolve().parents[2] / "aoi" / "trombetas.geojson", sample_data=sample_data)
    aoi = type(aoi)(**{**aoi.__dict__, "inputs": {**aoi.inputs, "rivers": {"path": RAISG}}})
    sites = gpd.GeoDataFrame({"site_id": ["X"]}, geometry=gpd.points_from_xy([-56.36], [-1.462]), crs=4326)
    out = river_statistics(
        aoi, sites=sites, root=sample_data, settings=Settings(sample_data=sample_data), period=None
    )
    assert out.stats is None
    assert out.not_evaluated == f"none of the river lines of {RAISG} comes within 500 m of the AOI"
    assert out.evidence == {"river_lines": 0, "sites": 1}


@pytest.mark.parametrize(
    ("rivers", "message"),
    [
        ({"path": RAISG, "direction": "upstream"}, "inputs.rivers.direction must be"),
        ({"path": RAISG, "reach_m": 0}, "inputs.rivers.reach_m must be a number > 0"),
        ({"path": RAISG, "reach": 10}, "unknown key(s) ['reach']"),
        ({"path": "../../etc/passwd"}, "leaves the sample-data folder"),
    ],
)
def test_bad_river_inputs_are_refused_naming_the_fix(
    tmp_path: Path, sample_data: Path, aoi_dir: Path, rivers: dict, message: str
) -> None:
    doc = json.loads((aoi_dir / "amapa-gold.geojson").read_text())
    doc["properties"]["inputs"]["rivers"] = rivers
    path = tmp_path / "amapa-gold.geojson"
    path.write_text(json.dumps(doc))
    with pytest.raises(AoiError, match=re.escape(message)):
        load_aoi(path, sample_data=sample_data)


def test_a_river_file_of_points_is_refused(tmp_path: Path, sample_data: Path) -> None:
    from pipeline.ingest.rivers import read_rivers

    src = sample_data / "detections" / "raisg_illegal_mining_points_2022.geojson"
    shutil.copy(src, tmp_path / "points.geojson")
    box = gpd.GeoSeries.from_xy([-60.0], [-10.0], crs=4326).buffer(20).iloc[0]
    with pytest.raises(AoiError, match="river features must be lines"):
        read_rivers(tmp_path / "points.geojson", spec={}, within=box, crs="EPSG:32720")
