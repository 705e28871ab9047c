"""Block-wise detection (chunk pieces -> assembled codes -> polygons) equals the whole-array
path: same polygons, areas and statistics, on numpy and dask, with components crossing
chunk seams."""

from __future__ import annotations

import dask
import dask.array as da
import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from affine import Affine
from pyproj import CRS
from scipy import ndimage

from pipeline.core.config import DetectParams
from pipeline.detect.classify import PixelClassifier, fit_pixel_classifier
from pipeline.detect.features import DEFAULT_FEATURES
from pipeline.detect.pieces import assemble_pieces, gather_pieces, vectorize_labelled
from pipeline.detect.scene import scene_detections, scene_products
from pipeline.detect.scene_blocks import assemble_scene, scene_detections_sparse, scene_pieces
from pipeline.detect.vectorize import vectorize_mask, vectorize_sparse
from pipeline.ingest.training import class_order
from pipeline.state.models import load_turbidity_calibration

UTM = CRS.from_epsg(32721)
TRANSFORM = Affine(10, 0, 500_000, 0, -10, 9_300_000)


def _seamy_mask() -> np.ndarray:
    """Components that cross the 32 px chunk seams: a ring around a 4-chunk corner, a
    diagonal line touching only corner to corner (8-connectivity) across a seam, a snake
    through several chunks, and small specks below the MMU."""
    rng = np.random.default_rng(3)
    mask = np.zeros((96, 100), dtype=bool)
    mask[20:44, 20:44] = True
    mask[26:38, 26:38] = False  # ring around the corner (32, 32)
    for i in range(16):
        mask[60 + i, 24 + i] = True  # diagonal through (64, 28)... crossing the row seam at 64
    mask[58:62, 20:26] = True  # makes the diagonal's component big enough
    mask[70:74, 10:95] = True  # snake through three column chunks
    mask[74:90, 90:94] = True
    mask[5:7, 62:65] = True  # speck across the column seam 64
    mask[58:64, 58:64] = mask[64:70, 64:70] = True  # two blobs meeting only at the corner (64, 64)
    mask[26:32, 96:100] = mask[32:38, 89:96] = True  # ... and only at the anti-diagonal (32, 96)
    mask |= rng.random(mask.shape) < 0.01
    return mask


def _values(shape: tuple[int, int]) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(5)
    a = rng.normal(0.3, 0.2, shape).astype(np.float32)
    a[rng.random(shape) < 0.05] = np.nan
    return {"a": a, "b": rng.integers(0, 50, shape).astype(np.float64)}


@pytest.mark.parametrize("backend", ["numpy", "dask"])
def test_blockwise_vectorise_equals_whole_array(backend: str) -> None:
    mask = _seamy_mask()
    vals = _values(mask.shape)
    expected = vectorize_mask(
        mask,
        transform=TRANSFORM,
        crs=UTM,
        area_crs=UTM,
        min_area_ha=0.05,
        stats={"a": vals["a"]},
        reduce={"b_max": (vals["b"], "max")},
    )
    assert len(expected) >= 3  # the ring, the diagonal and the snake survive the MMU

    codes = mask.astype(np.uint8)
    label = {1: 1}
    if backend == "dask":
        inputs = {
            "a": (da.from_array(vals["a"], chunks=32), 1),
            "b": (da.from_array(vals["b"], chunks=32), 1),
        }
        pieces = gather_pieces(da.from_array(codes, chunks=32), inputs, label=label)
        assert isinstance(pieces, da.Array) and pieces.shape == (3, 4)
        (pieces,) = dask.compute(pieces)
    else:
        pieces = gather_pieces(codes, {"a": (vals["a"], 1), "b": (vals["b"], 1)}, label=label)
    parts = assemble_pieces(pieces, label_within=label)
    np.testing.assert_array_equal(parts.values["a"], vals["a"][mask])  # C order restored
    np.testing.assert_array_equal(parts.positions[1], np.flatnonzero(mask))
    whole, _ = ndimage.label(mask, structure=np.ones((3, 3)))
    np.testing.assert_array_equal(parts.labels[1], whole[mask])  # seams joined, same numbering
    assert parts.counts[1] == mask.sum() and parts.counts[0] == (~mask).sum()
    got = vectorize_labelled(
        parts.labels[1],
        parts.positions[1],
        shape=parts.shape,
        transform=TRANSFORM,
        crs=UTM,
        area_crs=UTM,
        min_area_ha=0.05,
        stats={"a": parts.values["a"]},
        reduce={"b_max": (parts.values["b"], "max")},
    )
    pd.testing.assert_frame_equal(
        pd.DataFrame(got.drop(columns="geometry")), expected.drop(columns="geometry")
    )
    assert got.geometry.geom_equals_exact(expected.geometry, tolerance=0).all()
    # the ring keeps its hole although it was gathered from the four chunks around (32, 32)
    assert any(len(g.interiors) >= 1 for g in got.geometry)


def test_sparse_values_must_match_the_mask() -> None:
    mask = _seamy_mask()
    with pytest.raises(ValueError, match="pass values\\[mask\\]"):
        vectorize_sparse(
            mask,
            transform=TRANSFORM,
            crs=UTM,
            area_crs=UTM,
            min_area_ha=0.5,
            stats={"a": np.zeros(mask.shape)},
        )
    with pytest.raises(ValueError, match="bits"):
        gather_pieces(mask.astype(np.uint8), {"a": (np.zeros(mask.shape), 0)})


FOREST = {"blue": 0.02, "green": 0.04, "red": 0.025, "nir": 0.32, "swir1": 0.15}
BARE = {"blue": 0.08, "green": 0.11, "red": 0.14, "nir": 0.20, "swir1": 0.30}
WATER = {"blue": 0.05, "green": 0.07, "red": 0.09, "nir": 0.04, "swir1": 0.01}


def _model() -> PixelClassifier:
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


def _cube(dask_backed: bool, n_time: int) -> xr.Dataset:
    forest = {"blue": 0.02, "green": 0.04, "red": 0.025, "nir": 0.32, "swir1": 0.15}
    bare = {"blue": 0.08, "green": 0.11, "red": 0.14, "nir": 0.20, "swir1": 0.30}
    water = {"blue": 0.05, "green": 0.07, "red": 0.09, "nir": 0.04, "swir1": 0.01}
    rng = np.random.default_rng(11)
    shape = (n_time, 70, 90)
    data = {}
    for b in forest:
        a = np.full(shape, forest[b], np.float32) + rng.normal(0, 0.003, shape).astype(np.float32)
        a[-2:, 20:45, 20:45] = bare[b]  # a clearing across the chunk corner (32, 32)
        a[-1, 5:12, 28:60] = bare[b]  # a newer one across a column seam
        a[:, 50:58, :] = water[b]  # a turbid river through every column chunk
        a[-1, 40:45, 60:70] = np.nan  # a cloud
        data[b] = (("time", "y", "x"), da.from_array(a, chunks=(1, 32, 32)) if dask_backed else a)
    times = pd.date_range("2021-01-01", periods=n_time, freq="QS")
    return xr.Dataset(data, coords={"time": times})


@pytest.mark.parametrize("with_model", [False, True])
@pytest.mark.parametrize("n_time", [1, 4])
@pytest.mark.parametrize("backend", ["numpy", "dask"])
def test_scene_blockwise_equals_whole_array_path(backend: str, n_time: int, with_model: bool) -> None:
    model = _model() if with_model else None
    params = DetectParams(change_confirm_after=1)
    cal = load_turbidity_calibration()
    cube = _cube(backend == "dask", n_time)
    products = scene_products(cube, params=params, model=model, calibration=cal)
    (dense,) = dask.compute({k: products[k].data for k in products.data_vars})
    expected = scene_detections(dense, transform=TRANSFORM, crs=UTM, area_crs=UTM, min_area_ha=0.3)
    assert set(expected["kind"]) == {"mining_deforestation", "turbidity"}

    (pieces,) = dask.compute(scene_pieces(cube, params=params, model=model, calibration=cal))
    rasters = assemble_scene(pieces)
    got = scene_detections_sparse(rasters, transform=TRANSFORM, crs=UTM, area_crs=UTM, min_area_ha=0.3)
    assert list(got.columns) == list(expected.columns)
    pd.testing.assert_frame_equal(
        pd.DataFrame(got.drop(columns="geometry")), expected.drop(columns="geometry")
    )
    assert isinstance(got, gpd.GeoDataFrame) and got.crs == expected.crs
    assert got.geometry.geom_equals_exact(expected.geometry, tolerance=0).all()
    # the evidence run.py reports, against the dense rasters
    lc = dense["landcover"]
    np.testing.assert_array_equal(rasters.class_counts(), np.bincount(lc.ravel(), minlength=8))
    fnu = dense["turbidity_fnu"]
    water = (lc == 4) | (lc == 5)
    assert rasters.water_median("turbidity_fnu") == float(np.median(fnu[water & np.isfinite(fnu)]))
    cal_fnu = dense["turbidity_cal_fnu"]
    assert rasters.water_median("turbidity_cal_fnu") == float(
        np.median(cal_fnu[water & np.isfinite(cal_fnu)])
    )


@pytest.mark.parametrize("n_time", [1, 4])
def test_building_scene_pieces_computes_nothing(n_time: int) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the block-wise graph computed something while being built")

    cube = _cube(True, n_time)
    with dask.config.set(scheduler=refuse):
        pieces = scene_pieces(
            cube, params=DetectParams(), model=_model(), calibration=load_turbidity_calibration()
        )
    assert isinstance(pieces, da.Array) and pieces.dtype == object and pieces.shape == (3, 3)
