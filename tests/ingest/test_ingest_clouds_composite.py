"""Cloud masks (SCL, s2cloudless, dilation) and composites on real data, numpy == dask."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import dask.array as da
import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
import rasterio.features
import xarray as xr
from scipy import ndimage
from shapely.geometry import box

from pipeline.core.records import Aoi
from pipeline.detect.clouds import (
    S2CLOUDLESS_BANDS,
    cloud_from_probability,
    dilate,
    s2cloudless_probability,
    scl_cloud,
    scl_valid,
    usable,
    valid_fraction,
    valid_mask,
)
from pipeline.detect.composite import composite
from pipeline.ingest.aoi import load_aoi
from pipeline.ingest.index import index_folder
from pipeline.ingest.scenes import LocalFolderSource, SceneSpec

SLO = "imagery/eopatch_slovenia"


def aoi_of(bounds: tuple[float, float, float, float], crs: object) -> Aoi:
    geom = gpd.GeoSeries([box(*bounds)], crs=crs).to_crs(4326).iloc[0]
    return Aoi(aoi_id="t", name="t", designation="test", country="XX", geometry=geom)


@pytest.fixture(scope="module")
def slovenia_l1c(sample_data: Path) -> xr.Dataset:
    folder = sample_data / SLO
    with rasterio.open(folder / "s2_l1c_20150711.tif") as src:
        aoi = aoi_of(tuple(src.bounds), src.crs)
    return LocalFolderSource(index_folder(folder)).load(
        aoi, None, bands=[*S2CLOUDLESS_BANDS, "CLM", "IS_DATA"]
    )


def _cube(arr: np.ndarray) -> xr.DataArray:
    return xr.DataArray(arr, dims=("time", "y", "x"))


def test_scl_classes() -> None:
    scl = np.array([[[0, 1, 3, 4], [8, 9, 10, 11]]], dtype=np.float32)
    assert scl_cloud(_cube(scl)).values.tolist() == [[[False, False, True, False], [True, True, True, False]]]
    assert scl_valid(_cube(scl)).values.tolist() == [[[False, False, True, True], [True, True, True, True]]]


def test_dilation_matches_scipy_across_chunk_borders() -> None:
    rng = np.random.default_rng(3)
    mask = rng.random((2, 90, 70)) > 0.995
    got_np = dilate(_cube(mask), buffer_px=3).values
    got_da = dilate(_cube(da.from_array(mask, chunks=(1, 25, 20))), buffer_px=3).values
    y, x = np.ogrid[-3:4, -3:4]
    ref = np.stack([ndimage.binary_dilation(m, structure=x * x + y * y <= 9) for m in mask])
    np.testing.assert_array_equal(got_np, ref)
    np.testing.assert_array_equal(got_da, ref)
    assert ref.sum() > 10 * mask.sum()


def test_s2cloudless_on_the_real_l1c_scenes_agrees_with_their_clm(
    sample_data: Path, slovenia_l1c: xr.Dataset
) -> None:
    proba = s2cloudless_probability(slovenia_l1c)
    assert isinstance(proba.data, da.Array)
    p = proba.values
    # numpy backend gives the same probabilities
    np.testing.assert_allclose(s2cloudless_probability(slovenia_l1c.compute()).values, p, atol=1e-6)
    with rasterio.open(sample_data / SLO / "cloud_probability.tif") as src:
        stored = src.read()[:5]
    assert np.abs(p - stored).mean() < 0.03  # eo-learn's stored s2cloudless output, same dates
    mask = cloud_from_probability(proba, threshold=0.4, average_over=4).values
    clm = slovenia_l1c["CLM"].values == 1
    agreement = (mask == clm).mean(axis=(1, 2))
    assert (agreement > 0.99).all(), agreement
    assert clm[1].all() and clm[2].all() and not clm[0].any()  # 07-31 and 08-20 fully cloudy
    frac = valid_fraction(
        valid_mask(slovenia_l1c, bands=["B04"], cloud=cloud_from_probability(proba), buffer_px=2)
    )
    keep = usable(
        frac.values, scene_ids=list(slovenia_l1c["scene_id"].values), min_valid_fraction=0.1, where="slo"
    )
    assert keep.tolist() == [True, False, False, True, True]


def test_s2cloudless_on_the_trombetas_river(aoi_dir: Path, sample_data: Path) -> None:
    """L2A has no B10, so s2cloudless cannot run as designed. With B10 set to a clear-sky
    TOA cirrus value (0.002) on this BOA scene, the river and creeks are not called cloud."""
    aoi = load_aoi(aoi_dir / "trombetas.geojson", sample_data=sample_data)
    spec = SceneSpec.from_mapping(aoi.inputs["scenes"][0], root=sample_data)
    bands = [b for b in S2CLOUDLESS_BANDS if b != "B10"]
    ds = LocalFolderSource([spec]).load(aoi, None, bands=bands)
    with pytest.raises(ValueError, match="no B10: use the SCL"):
        s2cloudless_probability(ds)
    p = s2cloudless_probability(ds.assign(B10=xr.full_like(ds["B01"], 0.002))).isel(time=0).values
    labels = gpd.read_file(sample_data / "imagery/trombetas_labels.geojson").to_crs(ds.rio.crs)
    water = rasterio.features.geometry_mask(
        labels[labels["class"] == "water"].geometry,
        out_shape=p.shape,
        transform=ds.rio.transform(),
        invert=True,
    )
    assert water.sum() > 400
    assert np.nanmean(p[water] > 0.4) < 0.01 and np.nanmean(p[water]) < 0.05


def _slovenia_series(sample_data: Path) -> tuple[np.ndarray, np.ndarray, pd.DatetimeIndex]:
    folder = sample_data / SLO
    with rasterio.open(folder / "ndvi.tif") as src:
        ndvi = src.read()
    with rasterio.open(folder / "cloud_mask.tif") as src:
        cloud = src.read()
    times = pd.DatetimeIndex(json.loads((folder / "timestamps.json").read_text()))
    return ndvi, cloud, times


@pytest.mark.parametrize("backend", ["numpy", "dask"])
def test_quarterly_composite_of_the_real_68_dates_matches_numpy(sample_data: Path, backend: str) -> None:
    ndvi, cloud, times = _slovenia_series(sample_data)
    assert ndvi.shape[0] == 68 and 0.2 < cloud.mean() < 0.8
    values = xr.DataArray(ndvi, dims=("time", "y", "x"), coords={"time": times})
    valid = xr.DataArray(cloud == 0, dims=values.dims, coords=values.coords)
    if backend == "dask":
        values, valid = (
            values.chunk({"time": 7, "y": 40, "x": 40}),
            valid.chunk({"time": 7, "y": 40, "x": 40}),
        )
    out = composite(values, valid, freq="QS-JAN", percentile=25).compute()
    quarters = times.to_period("Q")
    expected_q = sorted(set(quarters))
    assert [pd.Timestamp(t).to_period("Q") for t in out["time"].values] == expected_q
    for i, q in enumerate(expected_q):
        sel = np.asarray(quarters == q)
        masked = np.where(cloud[sel] == 0, ndvi[sel], np.nan)
        count = (cloud[sel] == 0).sum(axis=0)
        with (
            np.errstate(all="ignore"),
            pytest.warns(RuntimeWarning) if (count == 0).any() else contextlib.nullcontext(),
        ):
            med = np.nanmedian(masked, axis=0)
            p25 = np.nanpercentile(masked, 25, axis=0)
        np.testing.assert_array_equal(out["count"].values[i], count)
        np.testing.assert_allclose(out["median"].values[i], med, rtol=1e-6, equal_nan=True)
        np.testing.assert_allclose(out["p25"].values[i], p25, rtol=1e-5, atol=1e-6, equal_nan=True)
    assert out["count"].dtype == np.int16 and int(out["count"].sum()) == int((cloud == 0).sum())
