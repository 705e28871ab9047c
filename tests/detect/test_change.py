"""Change detection on synthetic stacks and the real MapBiomas Lourenço series."""

from __future__ import annotations

from pathlib import Path

import dask.array as da
import numpy as np
import pandas as pd
import pytest
import rasterio
import xarray as xr
from affine import Affine
from pyproj import CRS
from rasterio.windows import Window

from pipeline.core.errors import ConfigError, RasterError
from pipeline.detect.change import (
    STATUS_CONFIRMED,
    STATUS_PROBABLE,
    change_polygons,
    clean_mask,
    detect_change,
    remap_classes,
)
from pipeline.detect.landcover import BARE, FOREST, MASKED, NODATA, OTHER_VEG, WATER_TURBID
from pipeline.ingest.training import map_legend

UTM = CRS.from_epsg(32722)
T10 = Affine(10, 0, 600_000, 0, -10, 9_800_000)


def _stack(seq: list[list[int]]) -> xr.DataArray:
    """One pixel row per sequence: dims (time, y=1, x=len(seq))."""
    arr = np.array(seq, dtype=np.uint8).T[:, None, :]
    times = pd.date_range("2019-01-01", periods=arr.shape[0], freq="MS")
    return xr.DataArray(arr, dims=("time", "y", "x"), coords={"time": times})


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(RasterError, match="'time' dimension"):
        detect_change(xr.DataArray(np.ones((2, 2), np.uint8), dims=("y", "x")))
    with pytest.raises(ConfigError, match="baseline_steps"):
        detect_change(_stack([[1, 3]]), baseline_steps=2)
    undated = _stack([[1, 3, 3]]).assign_coords(time=pd.to_datetime(["2020", "2019", "2021"]))
    with pytest.raises(RasterError, match="increasing"):
        detect_change(undated)


def test_probable_confirmed_clouds_and_dates() -> None:
    F, B, C, T, V = FOREST, BARE, MASKED, WATER_TURBID, OTHER_VEG
    stack = _stack(
        [
            [F, F, B, F, F],  # seen once: probable
            [F, B, C, B, F],  # cloud neither confirms nor refutes: confirmed by the 2nd hit
            [F, C, T, C, T],  # turbid pond, confirmed
            [V, B, B, B, B],  # not forest in the baseline: never a candidate
            [NODATA, B, B, B, B],  # no baseline observation
            [F, F, F, F, F],
        ]
    )
    out = detect_change(stack, baseline_steps=1, confirm_after=1)
    status = out["status"].values[0]
    assert status.tolist() == [STATUS_PROBABLE, STATUS_CONFIRMED, STATUS_CONFIRMED, 0, 0, 0]
    times = stack["time"].values
    assert out["first_seen"].values[0, 1] == times[1] and out["last_seen"].values[0, 1] == times[3]
    assert out["n_hits"].values[0].tolist() == [1, 2, 2, 0, 0, 0]
    assert np.isnat(out["first_seen"].values[0, 5])
    strict = detect_change(stack, confirm_after=2)["status"].values[0]
    assert strict[1] == STATUS_PROBABLE


def test_change_numpy_equals_dask() -> None:
    rng = np.random.default_rng(5)
    codes = rng.choice(
        [FOREST, OTHER_VEG, BARE, MASKED, WATER_TURBID], size=(6, 37, 41), p=[0.6, 0.1, 0.15, 0.1, 0.05]
    )
    codes[0] = np.where(rng.random((37, 41)) < 0.8, FOREST, OTHER_VEG)
    times = pd.date_range("2018-01-01", periods=6, freq="YS")
    eager = detect_change(
        xr.DataArray(codes, dims=("time", "y", "x"), coords={"time": times}), confirm_after=2
    )
    lazy = detect_change(
        xr.DataArray(
            da.from_array(codes, chunks=(2, 16, 16)), dims=("time", "y", "x"), coords={"time": times}
        ),
        confirm_after=2,
    )
    assert isinstance(lazy["status"].data, da.Array)
    for name in eager:
        np.testing.assert_array_equal(eager[name].values, lazy[name].values)
    a = clean_mask(eager["status"] > 0, radius_px=1)
    b = clean_mask(lazy["status"] > 0, radius_px=1)
    np.testing.assert_array_equal(a.values, b.values)


def test_clean_mask_removes_speckle_keeps_blocks() -> None:
    m = np.zeros((30, 30), bool)
    m[5:15, 5:15] = True
    m[9, 9] = False  # pinhole
    m[25, 25] = True  # speckle
    out = clean_mask(xr.DataArray(m, dims=("y", "x")), radius_px=1).values
    assert out[5:15, 5:15].all() and not out[25, 25] and out.sum() == 100


def test_polygons_apply_mmu_and_dates() -> None:
    status = np.zeros((40, 40), np.uint8)
    status[2:12, 2:12] = STATUS_CONFIRMED  # 100 px x 100 m2 = 1 ha
    status[30:33, 30:33] = STATUS_PROBABLE  # 0.09 ha < MMU
    first = np.full(status.shape, np.datetime64("NaT", "ns"))
    first[2:12, 2:12] = np.datetime64("2020-03-01", "ns")
    first[2, 2] = np.datetime64("2019-06-01", "ns")
    last = np.where(status > 0, np.datetime64("2021-01-01", "ns"), np.datetime64("NaT", "ns"))
    out = change_polygons(status, first, last, transform=T10, crs=UTM, area_crs=UTM, min_area_ha=0.5)
    assert len(out) == 1
    row = out.iloc[0]
    assert row["area_ha"] == pytest.approx(1.0)
    assert str(row["first_seen"]) == "2019-06-01" and str(row["last_seen"]) == "2021-01-01"
    assert row["confidence"] == "confirmed" and out.crs.to_epsg() == 4326


def test_real_mapbiomas_lourenco_series(sample_data: Path) -> None:
    folder = sample_data / "detections" / "mapbiomas_lourenco"
    years = list(range(1985, 2021, 5))
    window = Window(400, 400, 500, 500)
    layers = []
    for y in years:
        with rasterio.open(folder / f"mapbiomas_c6_lourenco_{y}.tif") as src:
            layers.append(src.read(1, window=window))
            transform, crs = src.window_transform(window), src.crs
    raw = np.stack(layers)
    times = pd.to_datetime([f"{y}-07-01" for y in years])
    source = xr.DataArray(
        da.from_array(raw, chunks=(1, 250, 250)), dims=("time", "y", "x"), coords={"time": times}
    )
    ours = remap_classes(source, legend=map_legend("mapbiomas_c6"))
    out = detect_change(ours, baseline_steps=1, confirm_after=1).compute()
    # independent expectation, straight from the MapBiomas codes: forest (3) in 1985, then
    # mining (30) in some later year; first_seen = first such year
    forest0 = raw[0] == 3
    mined = raw[1:] == 30
    expected = forest0 & mined.any(axis=0)
    assert expected.sum() > 100  # the real mine expanded into forest
    np.testing.assert_array_equal(out["status"].values > 0, expected)
    first_idx = mined.argmax(axis=0) + 1
    np.testing.assert_array_equal(out["first_seen"].values[expected], times.values[first_idx[expected]])
    confirmed = expected & (mined.sum(axis=0) >= 2)
    np.testing.assert_array_equal(out["status"].values == STATUS_CONFIRMED, confirmed)
    poly = change_polygons(
        out["status"].values,
        out["first_seen"].values,
        out["last_seen"].values,
        transform=transform,
        crs=CRS.from_user_input(crs),
        area_crs=CRS.from_user_input(crs),
        min_area_ha=0.5,
    )
    assert len(poly) >= 1 and poly["area_ha"].min() >= 0.5
    assert poly["area_ha"].sum() <= expected.sum() * 0.0893 * 1.01  # never more than the changed pixels


def test_real_multidate_s2_with_clouds(sample_data: Path) -> None:
    """Real Sentinel-2 NDVI series with real cloud masks (eo-learn Slovenia patch): cloudy
    dates neither start nor confirm a change; checked against a plain per-pixel loop."""
    import json

    folder = sample_data / "imagery" / "eopatch_slovenia"
    stamps = pd.to_datetime(json.loads((folder / "timestamps.json").read_text()))
    with rasterio.open(folder / "ndvi.tif") as src:
        ndvi = src.read(window=Window(40, 40, 24, 24))
    with rasterio.open(folder / "cloud_mask.tif") as src:
        cloud = src.read(window=Window(40, 40, 24, 24)).astype(bool)
    keep = ~pd.Index(stamps).duplicated()  # the series has one date twice
    ndvi, cloud, stamps = ndvi[keep], cloud[keep], stamps[keep]
    codes = np.where(ndvi >= 0.6, FOREST, np.where(ndvi < 0.25, BARE, OTHER_VEG)).astype(np.uint8)
    codes[cloud] = MASKED
    stack = xr.DataArray(codes, dims=("time", "y", "x"), coords={"time": stamps})
    out = detect_change(stack, baseline_steps=3, confirm_after=2)
    status = out["status"].values
    first = out["first_seen"].values
    for r in range(codes.shape[1]):
        for c in range(codes.shape[2]):
            seq = codes[:, r, c]
            base = [v for v in seq[:3] if v != MASKED]
            hits = (
                [i for i in range(3, len(seq)) if seq[i] == BARE]
                if base and all(v == FOREST for v in base)
                else []
            )
            want = 0 if not hits else STATUS_CONFIRMED if len(hits) - 1 >= 2 else STATUS_PROBABLE
            assert status[r, c] == want, (r, c)
            if hits:
                assert first[r, c] == stamps.values[hits[0]] and not cloud[hits[0], r, c]
    assert (status > 0).any() and cloud.any()
