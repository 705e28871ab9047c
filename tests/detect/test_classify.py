"""Pixel classifier: features, lazy prediction, polygon splits, real labelled scenes."""

from __future__ import annotations

from pathlib import Path

import dask.array as da
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from pipeline.core.errors import ConfigError, ModelError
from pipeline.detect.classify import (
    classify_pixels,
    cross_validate_by_polygon,
    fit_pixel_classifier,
    predict_labels,
    split_polygons,
)
from pipeline.detect.evaluate import accuracy_report
from pipeline.detect.features import DEFAULT_FEATURES, feature_stack, required_bands
from pipeline.detect.landcover import BUILT_UP, CLASS_CODES, FOREST, MASKED, NODATA, WATER_CLEAR, WATER_TURBID
from pipeline.ingest.training import TrainingDataset, class_order, read_labelled_pixels


def test_unknown_feature_is_refused() -> None:
    with pytest.raises(ConfigError, match="Unknown feature 'evi'"):
        required_bands(["ndvi", "evi"])


def test_feature_stack_hand_values() -> None:
    b = {"blue": np.array([0.1]), "red": np.array([0.2]), "nir": np.array([0.4]), "swir1": np.array([0.3])}
    got = feature_stack(b, ["red", "ndvi", "bsi"])
    np.testing.assert_allclose(got[:, 0], [0.2, (0.4 - 0.2) / 0.6, (0.5 - 0.5) / 1.0], atol=1e-6)
    assert got.dtype == np.float32


def test_unmapped_labels_are_refused() -> None:
    frame = pd.DataFrame(
        {"red": [0.1, 0.2], "nir": [0.3, 0.1], "label": ["forest", "pasture"], "polygon_id": [0, 1]}
    )
    with pytest.raises(ModelError, match=r"\['pasture'\].*classes.toml"):
        fit_pixel_classifier(frame, features=("red", "nir"), classes=class_order(), sensor="sentinel2")


@pytest.fixture(scope="module")
def trombetas(sample_data: Path) -> tuple[pd.DataFrame, object, pd.DataFrame]:
    ds = TrainingDataset.from_config("trombetas_s2", root=sample_data)
    return read_labelled_pixels(ds)


def test_polygon_split_never_shares_a_polygon(trombetas: tuple) -> None:
    pixels, _, polygons = trombetas
    train, test = split_polygons(polygons[["polygon_id", "label"]], test_fraction=0.3, seed=1)
    assert not set(train) & set(test)
    assert set(train) | set(test) == set(polygons["polygon_id"])
    labels = polygons.set_index("polygon_id")["label"]
    assert set(labels[test]) == set(labels[train]) == {"forest", "built_up", "water", "bare_mining"}
    # pixels follow their polygon: no pixel of a test polygon is in the train set
    assert not set(pixels[pixels["polygon_id"].isin(train)].index) & set(
        pixels[pixels["polygon_id"].isin(test)].index
    )


def test_real_trombetas_polygon_cv_beats_chance(trombetas: tuple) -> None:
    pixels, _, _ = trombetas
    y_true, y_pred = cross_validate_by_polygon(
        pixels, features=DEFAULT_FEATURES, classes=class_order(), sensor="sentinel2"
    )
    rep = accuracy_report(y_true, y_pred, classes=class_order())
    assert rep["n"] == len(pixels)
    assert rep["overall_accuracy"] > 0.85
    assert rep["per_class"]["forest"]["recall"] > 0.95  # forest is the easy class
    assert rep["per_class"]["bare_mining"]["recall"] > 0.4  # tailings vs wet sediment is not


def test_same_code_trains_on_landsat5(sample_data: Path) -> None:
    ds = TrainingDataset.from_config("tucurui_l5", root=sample_data)
    pixels, _, polygons = read_labelled_pixels(ds)
    assert set(polygons["source_class"]) == {"cleared", "forest", "water", "fallen_dry"}
    train, test = split_polygons(polygons[["polygon_id", "label"]], seed=0)
    model = fit_pixel_classifier(
        pixels[pixels["polygon_id"].isin(train)],
        features=DEFAULT_FEATURES,
        classes=class_order(),
        sensor=ds.sensor,
    )
    held = pixels[pixels["polygon_id"].isin(test)]
    cube = {b: xr.DataArray(held[b].to_numpy()[None, :], dims=("y", "x")) for b in model.bands}
    pred = classify_pixels(cube, model=model)["landcover"].values[0]
    # block prediction (leaf lookup) agrees with the estimator's own predict_proba argmax
    expected = np.array([CLASS_CODES[c] for c in predict_labels(model, held)], dtype=np.uint8)
    np.testing.assert_array_equal(pred, expected)
    assert np.mean(pred[held["label"].to_numpy() == "forest"] == FOREST) > 0.9


def test_numpy_equals_dask_and_masks(trombetas: tuple) -> None:
    pixels, scene, _ = trombetas
    model = fit_pixel_classifier(pixels, features=DEFAULT_FEATURES, classes=class_order(), sensor="sentinel2")
    bands = {k: v.copy() for k, v in scene.bands.items()}
    bands["red"][0, 0] = np.nan
    mask = np.zeros_like(bands["red"], dtype=bool)
    mask[5:9, 5:9] = True
    eager = classify_pixels(
        {k: xr.DataArray(v, dims=("y", "x")) for k, v in bands.items()},
        model=model,
        turbid_fnu_min=20.0,
        mask=xr.DataArray(mask, dims=("y", "x")),
    )
    lazy = classify_pixels(
        {k: xr.DataArray(da.from_array(v, chunks=64), dims=("y", "x")) for k, v in bands.items()},
        model=model,
        turbid_fnu_min=20.0,
        mask=xr.DataArray(da.from_array(mask, chunks=64), dims=("y", "x")),
    )
    assert isinstance(lazy["landcover"].data, da.Array)
    np.testing.assert_array_equal(eager["landcover"].values, lazy["landcover"].values)
    np.testing.assert_array_equal(eager["probability"].values, lazy["probability"].values)
    codes = eager["landcover"].values
    assert codes[0, 0] == NODATA and (codes[5:9, 5:9] == MASKED).all()
    # the town is built-up, not mining, and a real scene has clear water
    assert (codes == BUILT_UP).mean() > 0.03 and (codes == WATER_CLEAR).mean() > 0.05
    assert set(np.unique(codes)) <= {NODATA, FOREST, 2, 3, WATER_CLEAR, WATER_TURBID, BUILT_UP, MASKED}
