"""LocalFolderSource on the real scenes: grid, values, scale/offset, indexes, chunks, laziness."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import dask
import geopandas as gpd
import numpy as np
import pytest
import rasterio
import rasterio.warp
from affine import Affine
from rasterio.warp import Resampling, reproject
from shapely.geometry import box

from pipeline.core.periods import parse_period
from pipeline.core.records import Aoi
from pipeline.detect.clouds import valid_fraction, valid_mask
from pipeline.detect.composite import composite
from pipeline.ingest.aoi import load_aoi
from pipeline.ingest.index import index_by_pattern, index_folder, index_stac_items
from pipeline.ingest.scenes import LocalFolderSource, SceneSpec

SLO = "imagery/eopatch_slovenia"


def aoi_of(bounds: tuple[float, float, float, float], crs: Any, aoi_id: str = "t") -> Aoi:
    geom = gpd.GeoSeries([box(*bounds)], crs=crs).to_crs(4326).iloc[0]
    return Aoi(aoi_id=aoi_id, name=aoi_id, designation="test", country="XX", geometry=geom)


@pytest.fixture
def slovenia(sample_data: Path) -> tuple[Path, Aoi]:
    folder = sample_data / SLO
    with rasterio.open(folder / "s2_l1c_20150711.tif") as src:
        return folder, aoi_of(tuple(src.bounds), src.crs, "slovenia")


def _raising_scheduler(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("something computed while only a graph should have been built")


def test_trombetas_lands_on_the_utm_grid_with_scale_and_offset(aoi_dir: Path, sample_data: Path) -> None:
    aoi = load_aoi(aoi_dir / "trombetas.geojson", sample_data=sample_data)
    spec = SceneSpec.from_mapping(aoi.inputs["scenes"][0], root=sample_data)
    cube = LocalFolderSource([spec]).load(aoi, None, bands=["B04", "B08"])
    assert cube["B04"].dims == ("time", "y", "x") and cube["B04"].dtype == np.float32
    assert cube.rio.crs.to_epsg() == 32721 and cube.rio.resolution() == (10.0, -10.0)
    assert float(cube["scale"][0]) == 1e-4 and float(cube["offset"][0]) == pytest.approx(-0.1)
    assert list(cube["scene_id"].values) == ["trombetas_s2_l2a"]
    # independent reference: GDAL warp of the file onto the same grid, then DN * 1e-4 - 0.1
    t = cube.rio.transform()
    with rasterio.open(spec.path) as src:
        dst = np.zeros((cube.sizes["y"], cube.sizes["x"]), dtype=np.uint16)
        reproject(
            rasterio.band(src, 4),
            dst,
            dst_transform=t,
            dst_crs=cube.rio.crs,
            resampling=Resampling.nearest,
            src_nodata=0,
            dst_nodata=0,
        )
    want = np.where(dst > 0, dst * 1e-4 - 0.1, np.nan)
    got = cube["B04"].isel(time=0).values
    assert np.isfinite(got).mean() > 0.95
    np.testing.assert_allclose(got, want, atol=1e-6, equal_nan=True)


def test_slovenia_folder_indexed_by_file_name_on_its_native_grid(slovenia: tuple[Path, Aoi]) -> None:
    folder, aoi = slovenia
    scenes = index_folder(folder)
    assert [s.scene_id for s in scenes] == [
        f"s2_l1c_{d}" for d in ("20150711", "20150731", "20150820", "20150830", "20150909")
    ]
    assert set(scenes[0].band_paths) == {"CLM", "IS_DATA"}
    # times from the files' ACQUISITION_TIME tags, equal to the series' timestamps.json
    stamps = json.loads((folder / "timestamps.json").read_text())[:5]
    assert [s.datetime.isoformat() for s in scenes if s.datetime] == stamps
    cube = LocalFolderSource(scenes).load(aoi, parse_period("2015-07"), bands=["B04", "B10", "CLM"])
    assert cube.sizes == {"time": 2, "y": 101, "x": 100}  # July only
    with rasterio.open(folder / "s2_l1c_20150731.tif") as src:
        raw = src.read(11).astype(np.float64)  # B10
        assert cube.rio.transform().almost_equals(src.transform)  # no resampling at all
    np.testing.assert_allclose(cube["B10"].isel(time=1).values, raw * 1e-4, rtol=1e-6)
    with rasterio.open(folder / "clm_20150731.tif") as src:
        np.testing.assert_array_equal(cube["CLM"].isel(time=1).values, src.read(1))


def test_one_file_per_band_and_stac_items_give_the_same_cube(
    tmp_path: Path, slovenia: tuple[Path, Aoi]
) -> None:
    folder, aoi = slovenia
    scene = folder / "s2_l1c_20150909.tif"
    with rasterio.open(scene) as src:
        profile = {**src.profile, "count": 1}
        for name in ("B04", "B08"):
            with rasterio.open(tmp_path / f"S2A_T33TVM_20150909_{name}.tif", "w", **profile) as dst:
                dst.write(src.read(src.descriptions.index(name) + 1), 1)
    per_band = index_by_pattern(tmp_path)
    assert len(per_band) == 1 and set(per_band[0].band_paths) == {"B04", "B08"}
    item = {
        "type": "Feature",
        "stac_version": "1.0.0",
        "id": "S2_20150909",
        "properties": {"datetime": "2015-09-09T10:00:17Z"},
        "assets": {
            "bands": {
                "href": str(scene),
                "roles": ["data"],
                "eo:bands": [{"name": n} for n in rasterio.open(scene).descriptions],
                "raster:bands": [{"scale": 0.0001, "offset": 0.0}],
            }
        },
    }
    (tmp_path / "stac").mkdir()
    (tmp_path / "stac" / "S2_20150909.json").write_text(json.dumps(item))
    stac = index_stac_items(tmp_path / "stac")
    multi = [s for s in index_folder(folder) if s.scene_id.endswith("20150909")]
    cubes = [LocalFolderSource(idx).load(aoi, None, bands=["B04", "B08"]) for idx in (per_band, stac, multi)]
    for other in cubes[1:]:
        np.testing.assert_array_equal(cubes[0]["B08"].values, other["B08"].values)
    assert str(stac[0].datetime) == "2015-09-09 10:00:17"


def test_chunks_follow_the_cog_blocks(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    path = tmp_path / "tile_20200105.tif"
    t = Affine(10, 0, 600000, 0, -10, 9900000)
    profile = {
        "driver": "GTiff",
        "width": 1024,
        "height": 1024,
        "count": 2,
        "dtype": "uint16",
        "crs": "EPSG:32721",
        "transform": t,
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
        "compress": "deflate",
        "nodata": 0,
    }
    data = rng.integers(1, 10000, (2, 1024, 1024), dtype=np.uint16)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        dst.descriptions = ("B04", "B08")
    # an AOI starting 100 px into the file: the first chunk must end on the file's block edge
    aoi = aoi_of((601000, 9890000, 608000, 9899000), "EPSG:32721")
    cube = LocalFolderSource(index_folder(tmp_path)).load(aoi, None, bands=["B04"], chunks=500)
    col0 = round((cube.rio.transform().c - 600000) / 10)
    edges = np.cumsum((0, *cube["B04"].chunks[2]))[:-1] + col0
    assert (edges[1:] % 256 == 0).all() and set(cube["B04"].chunks[2][1:-1]) <= {256}
    got = cube["B04"].isel(time=0).values
    row0 = round((9900000 - cube.rio.transform().f) / 10)
    want = data[0, row0 : row0 + got.shape[0], col0 : col0 + got.shape[1]] * np.float32(1e-4)
    np.testing.assert_array_equal(got, want)


def test_load_masks_and_composites_build_graphs_only(slovenia: tuple[Path, Aoi]) -> None:
    folder, aoi = slovenia
    with dask.config.set(scheduler=_raising_scheduler):
        cube = LocalFolderSource(index_folder(folder)).load(aoi, None, bands=["B04", "B08", "CLM", "IS_DATA"])
        ndvi = (cube["B08"] - cube["B04"]) / (cube["B08"] + cube["B04"])
        valid = valid_mask(cube, bands=["B04", "B08"], cloud=cube["CLM"] == 1, buffer_px=2)
        frac = valid_fraction(valid)
        comp = composite(ndvi, valid, freq="MS", percentile=25)
    assert all(v.chunks is not None for v in (*cube.data_vars.values(), frac, *comp.data_vars.values()))
    with pytest.raises(AssertionError, match="computed"), dask.config.set(scheduler=_raising_scheduler):
        frac.values  # noqa: B018 -- proves the guard really fires


def test_static_stac_catalog_written_from_the_local_scenes(
    tmp_path: Path, slovenia: tuple[Path, Aoi]
) -> None:
    from pipeline.ingest.stac import StacSource

    folder, aoi = slovenia
    links = []
    for scene in index_folder(folder):
        assert scene.path is not None and scene.datetime is not None
        with rasterio.open(scene.path) as src:
            w, s, e, n = rasterio.warp.transform_bounds(src.crs, "EPSG:4326", *src.bounds)
            names = list(src.descriptions)
        item = {
            "type": "Feature",
            "stac_version": "1.0.0",
            "id": scene.scene_id,
            "bbox": [w, s, e, n],
            "geometry": box(w, s, e, n).__geo_interface__,
            "properties": {"datetime": scene.datetime.isoformat() + "Z"},
            "assets": {
                "data": {
                    "href": str(scene.path),
                    "roles": ["data"],
                    "eo:bands": [{"name": b} for b in names],
                },
                "CLM": {"href": str(scene.band_paths["CLM"]), "roles": ["cloud"]},
            },
            "links": [],
        }
        (tmp_path / "items").mkdir(exist_ok=True)
        (tmp_path / "items" / f"{scene.scene_id}.json").write_text(json.dumps(item))
        links.append({"rel": "item", "href": f"items/{scene.scene_id}.json"})
    (tmp_path / "catalog.json").write_text(
        json.dumps(
            {"type": "Catalog", "id": "slo", "stac_version": "1.0.0", "description": "t", "links": links}
        )
    )
    cube = StacSource(tmp_path / "catalog.json").load(aoi, parse_period("2015-08"), bands=["B04", "CLM"])
    assert list(cube["scene_id"].values) == ["s2_l1c_20150820", "s2_l1c_20150830"]
    ref = LocalFolderSource(index_folder(folder)).load(aoi, parse_period("2015-08"), bands=["B04", "CLM"])
    np.testing.assert_array_equal(cube["B04"].values, ref["B04"].values)
    np.testing.assert_array_equal(cube["CLM"].values, ref["CLM"].values)
