"""The whole detection graph: lazy (computes nothing) and equal on numpy and dask."""

from __future__ import annotations

from typing import Any

import dask
import dask.array as da
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from affine import Affine
from pyproj import CRS

from pipeline.core.config import DetectParams
from pipeline.core.errors import RasterError
from pipeline.detect.classify import fit_pixel_classifier
from pipeline.detect.features import DEFAULT_FEATURES
from pipeline.detect.scene import scene_detections, scene_products
from pipeline.ingest.training import class_order
from pipeline.state.models import load_turbidity_calibration

FOREST = {"blue": 0.02, "green": 0.04, "red": 0.025, "nir": 0.32, "swir1": 0.15}
BARE = {"blue": 0.08, "green": 0.11, "red": 0.14, "nir": 0.20, "swir1": 0.30}
WATER = {"blue": 0.05, "green": 0.07, "red": 0.09, "nir": 0.04, "swir1": 0.01}


def _cube(dask_backed: bool, n_time: int = 4) -> xr.Dataset:
    rng = np.random.default_rng(11)
    shape = (n_time, 64, 72)
    data = {}
    for b in FOREST:
        a = np.full(shape, FOREST[b], np.float32) + rng.normal(0, 0.003, shape).astype(np.float32)
        a[1:, 10:30, 10:30] = BARE[b]  # clearing from the 2nd date on
        a[:, 50:58, :] = WATER[b]  # a turbid river
        a[2, 40:45, 60:70] = np.nan  # a cloud
        data[b] = (("time", "y", "x"), da.from_array(a, chunks=(1, 32, 32)) if dask_backed else a)
    times = pd.date_range("2021-01-01", periods=n_time, freq="QS")
    return xr.Dataset(data, coords={"time": times})


def _model() -> Any:
    rng = np.random.default_rng(0)
    rows = []
    for pid, (label, mu) in enumerate([("forest", FOREST), ("bare_mining", BARE), ("water", WATER)] * 2):
        frame = pd.DataFrame({b: v + rng.normal(0, 0.004, 80) for b, v in mu.items()})
        rows.append(frame.assign(label=label, polygon_id=pid))
    return fit_pixel_classifier(
        pd.concat(rows, ignore_index=True),
        features=DEFAULT_FEATURES,
        classes=class_order(),
        sensor="sentinel2",
    )


def _refuse(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("the detection graph computed something while being built")


def test_missing_bands_are_refused() -> None:
    with pytest.raises(RasterError, match="swir1"):
        scene_products(_cube(False).drop_vars("swir1"), params=DetectParams())


@pytest.mark.parametrize("with_model", [False, True])
def test_building_the_graph_computes_nothing(with_model: bool) -> None:
    model = _model() if with_model else None
    cube = _cube(True)
    with dask.config.set(scheduler=_refuse):
        products = scene_products(
            cube, params=DetectParams(), model=model, calibration=load_turbidity_calibration()
        )
    assert all(isinstance(v.data, da.Array) for v in products.data_vars.values())
    with pytest.raises(AssertionError, match="computed something"), dask.config.set(scheduler=_refuse):
        products["mining"].values  # noqa: B018  (the guard does fire on a real compute)


@pytest.mark.parametrize("with_model", [False, True])
def test_numpy_equals_dask_and_finds_the_clearing(with_model: bool) -> None:
    model = _model() if with_model else None
    params = DetectParams(change_confirm_after=1)
    cal = load_turbidity_calibration()
    eager = scene_products(_cube(False), params=params, model=model, calibration=cal)
    lazy = scene_products(_cube(True), params=params, model=model, calibration=cal)
    (computed,) = dask.compute({k: lazy[k].data for k in lazy.data_vars})
    for name in eager.data_vars:
        np.testing.assert_array_equal(eager[name].values, computed[name], err_msg=name)
    utm = CRS.from_epsg(32721)
    found = scene_detections(
        computed, transform=Affine(10, 0, 500_000, 0, -10, 9_000_000), crs=utm, area_crs=utm, min_area_ha=0.5
    )
    mining = found[found["kind"] == "mining_deforestation"]
    assert len(mining) == 1
    row = mining.iloc[0]
    assert row["area_ha"] == pytest.approx(4.0)  # 20 x 20 px of 100 m2
    assert row["confidence"] == "confirmed" and str(row["first_seen"]) == "2021-04-01"
    assert row["ndvi_drop"] > 0.5 and row["mean_ndvi_before"] > 0.8
    turbid = found[found["kind"] == "turbidity"]
    assert len(turbid) == 1 and turbid.iloc[0]["median_turbidity_fnu"] > 20
    if with_model:
        assert 0.5 < row["mean_probability"] <= 1.0
