"""The analyst API's own arithmetic (pipeline.analyst.api, pipeline.analyst.tuning), against independent
computations; the notebooks exercise the wrappers end to end (tests/test_notebooks.py)."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
from affine import Affine
from shapely.geometry import Point

import pipeline
from pipeline.analyst.analysis import _profile
from pipeline.analyst.tuning import _scores, drop_small_patches
from pipeline.core.errors import ConfigError, DataNotFoundError
from pipeline.detect.rivers import reach_turbidity


def test_lazy_api_attributes_resolve_and_unknown_ones_fail() -> None:
    for name in pipeline.__all__:
        assert getattr(pipeline, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'detect_aio'"):
        pipeline.detect_aio  # noqa: B018


def test_scores_match_sklearn() -> None:
    from sklearn.metrics import f1_score, precision_score, recall_score

    rng = np.random.default_rng(3)
    truth = rng.random(500) < 0.3
    pred = rng.random(500) < 0.4
    got = _scores(pred, truth)
    assert got["precision"] == pytest.approx(precision_score(truth, pred))
    assert got["recall"] == pytest.approx(recall_score(truth, pred))
    assert got["f1"] == pytest.approx(f1_score(truth, pred))
    assert got["detected_px"] == pred.sum() and got["reference_px"] == truth.sum()


def test_scores_without_detections_are_nan_not_zero() -> None:
    got = _scores(np.zeros(4, bool), np.array([True, False, True, False]))
    assert np.isnan(got["precision"]) and got["recall"] == 0.0


def test_drop_small_patches_uses_8_connectivity_and_area() -> None:
    mask = np.zeros((6, 6), bool)
    mask[0, 0] = mask[1, 1] = True  # diagonal: one 2-px patch under 8-connectivity
    mask[4:6, 3:6] = True  # 6 px
    ha = np.full(6, 0.25)  # 50 m pixels
    out = drop_small_patches(mask, pixel_ha=ha, min_area_ha=0.5)
    assert out[0, 0] and out[1, 1] and out[4:6, 3:6].all()
    out = drop_small_patches(mask, pixel_ha=ha, min_area_ha=0.75)
    assert not out[:2, :2].any() and out[4:6, 3:6].all()
    assert drop_small_patches(mask, pixel_ha=ha, min_area_ha=2.0).sum() == 0


def test_profile_agrees_with_reach_turbidity() -> None:
    # a 10 m grid with an east-flowing river whose turbidity rises downstream (x)
    h, w = 20, 200
    transform = Affine(10, 0, 500000, 0, -10, 9000000)
    water = np.zeros((h, w), bool)
    water[5:15, :] = True
    cols = np.arange(w)
    fnu = np.where(water, np.broadcast_to(cols * 0.5, (h, w)), np.nan)
    site = gpd.GeoDataFrame({"site_id": ["s"]}, geometry=[Point(501000, 8999900)], crs="EPSG:32721")
    prof = _profile(fnu, water, site, transform=transform, azimuth=90.0, half=500.0, bin_m=100.0)
    # bin centred 250 m downstream holds columns 120..129 (x 501200..501300)
    row = prof[prof["distance_m"] == 250.0].iloc[0]
    assert row["median_fnu"] == pytest.approx(np.median(np.arange(120, 130) * 0.5))
    assert row["pixels"] == 100
    up = prof[prof["distance_m"] < 0]["median_fnu"]
    down = prof[prof["distance_m"] > 0]["median_fnu"]
    assert up.max() < down.min()
    reach = reach_turbidity(
        fnu,
        water,
        site,
        transform=transform,
        crs="EPSG:32721",
        reach_m=500.0,
        gap_m=0.0,
        flow_azimuth_deg=90.0,
    ).iloc[0]
    assert reach["upstream_fnu"] < prof["median_fnu"].median() < reach["downstream_fnu"]


def test_sweep_refuses_unknown_setting(sample_data: Path) -> None:
    settings = pipeline.load_settings(sample_data=sample_data)
    with pytest.raises(ConfigError, match="bare_ndvi_mx"):
        pipeline.sweep_index_rules({"bare_ndvi_mx": [0.3]}, settings=settings)


def test_state_functions_name_the_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match="run_aoi"):
        pipeline.ledger(tmp_path)


def test_sweep_index_rules_on_real_labels(sample_data: Path) -> None:
    """MMU can only remove detections: recall never rises as the MMU grows."""
    settings = pipeline.load_settings(sample_data=sample_data)
    table = pipeline.sweep_index_rules(
        {"bare_ndvi_max": [0.4], "min_area_ha": [0.0, 0.5, 2.0]}, settings=settings
    )
    assert list(table["detected_px"]) == sorted(table["detected_px"], reverse=True)
    assert list(table["recall"]) == sorted(table["recall"], reverse=True)
    assert (table["reference_px"] == 204).all()  # dryout pixels of trombetas_labels
