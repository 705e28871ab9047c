"""Bad input: each gives a clear PipelineError child that names the fix."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from affine import Affine
from shapely.geometry import box

from pipeline.core.errors import AoiError, NoDataError, RasterError
from pipeline.core.geometry import crosses_antimeridian, geodesic_area_km2, utm_crs_for, utm_zones
from pipeline.core.records import Aoi
from pipeline.detect.clouds import usable, valid_fraction, valid_mask
from pipeline.ingest.aoi import load_aoi
from pipeline.ingest.index import index_folder
from pipeline.ingest.scenes import LocalFolderSource, SceneSpec


def aoi_of(bounds: tuple[float, float, float, float], crs: Any, aoi_id: str = "t") -> Aoi:
    geom = gpd.GeoSeries([box(*bounds)], crs=crs).to_crs(4326).iloc[0]
    return Aoi(aoi_id=aoi_id, name=aoi_id, designation="test", country="XX", geometry=geom)


T = Affine(10, 0, 600000, 0, -10, 9900000)
AOI = aoi_of((600500, 9899000, 601500, 9899500), "EPSG:32721")


def _tif(path: Path, data: np.ndarray, **over: Any) -> Path:
    profile = {
        "driver": "GTiff",
        "width": data.shape[2],
        "height": data.shape[1],
        "count": data.shape[0],
        "dtype": data.dtype.name,
        "crs": "EPSG:32721",
        "transform": T,
        "nodata": 0,
        **over,
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        dst.descriptions = tuple(["B04", "B08", "B11", "B12"][: data.shape[0]])
    return path


def _data(rng_seed: int = 1, shape: tuple[int, int, int] = (2, 300, 300)) -> np.ndarray:
    return np.random.default_rng(rng_seed).integers(1, 10000, shape, dtype=np.uint16)


def _load(path: Path, bands: tuple[str, ...] = ("B04", "B08"), **spec: Any) -> Any:
    return LocalFolderSource([SceneSpec(scene_id="s", path=path, **spec)]).load(AOI, None, bands=bands)


def test_corrupt_file_is_a_raster_error(tmp_path: Path) -> None:
    bad = tmp_path / "x.tif"
    bad.write_bytes(np.random.default_rng(0).bytes(5000))
    with pytest.raises(RasterError, match=r"cannot be read.*download it again"):
        _load(bad)


def test_truncated_cog_is_caught_before_any_pixel_is_read(tmp_path: Path) -> None:
    path = _tif(tmp_path / "t.tif", _data(shape=(2, 1024, 1024)), driver="COG", compress="deflate")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(RasterError, match=r"truncated.*last block ends at byte"):
        _load(path)


def test_wrong_band_names_and_count(tmp_path: Path) -> None:
    path = _tif(tmp_path / "b.tif", _data())
    with pytest.raises(RasterError, match=r"lacks band 'B03'; it has \['B04', 'B08'\]"):
        _load(path, bands=("B03",))
    with pytest.raises(RasterError, match=r"has 2 bands but the scene index names 3"):
        _load(path, band_names=("B02", "B03", "B04"))


def test_missing_crs(tmp_path: Path) -> None:
    path = _tif(tmp_path / "c.tif", _data(), crs=None)
    with pytest.raises(RasterError, match=r"has no CRS.*gdal_edit"):
        _load(path)


def test_scene_not_overlapping_the_aoi(tmp_path: Path) -> None:
    path = _tif(tmp_path / "far.tif", _data(), transform=Affine(10, 0, 700000, 0, -10, 9800000))
    with pytest.raises(NoDataError, match=r"does not overlap AOI 't'"):
        _load(path)
    # with the skip policy the next scene still counts; with nothing left it is still no data
    src = LocalFolderSource([SceneSpec(scene_id="far", path=path)], on_error="skip")
    with pytest.raises(NoDataError, match=r"no usable scene.*far: Scene far"):
        src.load(AOI, None, bands=["B04"])


def test_all_nodata_and_all_cloud_are_no_data(tmp_path: Path, sample_data: Path) -> None:
    empty = _tif(tmp_path / "e.tif", np.zeros((2, 300, 300), dtype=np.uint16))
    cube = _load(empty)
    frac = valid_fraction(valid_mask(cube, bands=["B04", "B08"])).values
    assert frac.tolist() == [0.0]
    with pytest.raises(NoDataError, match=r"no usable scene.*best 0.0 %.*min_valid_fraction"):
        usable(frac, scene_ids=["e"], min_valid_fraction=0.1, where="AOI 't'")
    # the real fully-cloudy Slovenia dates (2015-07-31, 2015-08-20) through their CLM masks
    folder = sample_data / "imagery/eopatch_slovenia"
    scenes = [s for s in index_folder(folder) if s.scene_id[-4:] in {"0731", "0820"}]
    with rasterio.open(scenes[0].path) as src:
        aoi = aoi_of(tuple(src.bounds), src.crs)
    cube = LocalFolderSource(scenes).load(aoi, None, bands=["B04", "CLM", "IS_DATA"])
    frac = valid_fraction(valid_mask(cube, bands=["B04"], cloud=cube["CLM"] == 1)).values
    assert frac.max() == 0.0
    with pytest.raises(NoDataError, match=r"all 2 are below"):
        usable(frac, scene_ids=list(cube["scene_id"].values), min_valid_fraction=0.1, where="slovenia")


def _aoi_file(tmp_path: Path, coords: list[Any], kind: str = "Polygon") -> Path:
    doc = {
        "type": "Feature",
        "properties": {"aoi_id": "fiji", "name": "F", "designation": "reserve", "country": "FJ"},
        "geometry": {"type": kind, "coordinates": coords},
    }
    path = tmp_path / "a.geojson"
    path.write_text(json.dumps(doc))
    return path


def test_antimeridian_aoi_drawn_across_180_is_split_and_measured(tmp_path: Path, sample_data: Path) -> None:
    ring = [[179.5, -16.5], [-179.5, -16.5], [-179.5, -16.0], [179.5, -16.0], [179.5, -16.5]]
    aoi = load_aoi(_aoi_file(tmp_path, [ring]), sample_data=sample_data)
    assert aoi.geometry.geom_type == "MultiPolygon" and crosses_antimeridian(aoi.geometry)
    # the same two half-degree boxes away from 180 (edges are geodesics, so same vertices)
    ref = sum(geodesic_area_km2(box(x, -16.5, x + 0.5, -16.0)) for x in (10.0, 10.5))
    assert geodesic_area_km2(aoi.geometry) == pytest.approx(ref, rel=1e-9)
    assert 5900 < ref < 5930  # ~106.7 km x 55.3 km
    assert utm_crs_for(aoi.geometry).to_epsg() in {32701, 32760} and utm_zones(aoi.geometry) == [60, 1]


def test_rfc7946_split_aoi_and_a_raster_across_180(tmp_path: Path, sample_data: Path) -> None:
    parts = [
        [[[179.8, -16.2], [180.0, -16.2], [180.0, -16.0], [179.8, -16.0], [179.8, -16.2]]],
        [[[-180.0, -16.2], [-179.9, -16.2], [-179.9, -16.0], [-180.0, -16.0], [-180.0, -16.2]]],
    ]
    aoi = load_aoi(_aoi_file(tmp_path, parts, "MultiPolygon"), sample_data=sample_data)
    crs = utm_crs_for(aoi.geometry)
    assert crs.to_epsg() == 32760  # centre ~179.93 E (a plain centroid would say ~0 E, zone 31)
    # a real raster in that zone covering the AOI loads and fills the grid
    with rasterio.open(sample_data / "imagery/trombetas_s2_l2a.tif") as src:
        block = src.read(window=((0, 237), (0, 237)))
    bounds = aoi.to_frame().to_crs(crs).total_bounds
    res = (bounds[2] - bounds[0] + 200) / 237
    t = Affine(res, 0, bounds[0] - 100, 0, -res, bounds[3] + 100)
    path = tmp_path / "fiji_20200101.tif"
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=237,
        height=237,
        count=12,
        dtype="uint16",
        crs=crs,
        transform=t,
        nodata=0,
    ) as dst:
        dst.write(block)
        dst.descriptions = tuple(rasterio.open(sample_data / "imagery/trombetas_s2_l2a.tif").descriptions)
    cube = LocalFolderSource(index_folder(tmp_path)).load(aoi, None, bands=["B04"], resolution=100.0)
    assert cube.rio.crs == crs and np.isfinite(cube["B04"].values).mean() > 0.99


def test_unsafe_or_invalid_aoi_still_refused(tmp_path: Path, sample_data: Path) -> None:
    with pytest.raises(AoiError, match="look like"):
        load_aoi(
            _aoi_file(tmp_path, [[[-6.0, -120.0], [-5.9, -120.0], [-5.9, -119.9], [-6.0, -120.0]]]),
            sample_data=sample_data,
        )
