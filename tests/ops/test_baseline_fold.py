"""The baseline fold (pipeline.detect.baseline_fold) and its store (pipeline.state.baselines) on
real Sentinel-2 of a gold mine (gm0685 of imagery/gold_mining_patches): dates A (before),
then B, C, D (the after composite, seen again), folded in one go or stopped and resumed
through the stored COG."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pytest
import rasterio
import xarray as xr
from affine import Affine
from pyproj import CRS
from servers.scenes import SceneLibrary

from pipeline.core.config import load_settings
from pipeline.detect.baseline_fold import BANDS, empty_state, fold_step, state_rows_inputs
from pipeline.detect.mining_change import MiningDetector
from pipeline.ops.detector_model import mining_detector
from pipeline.state.baselines import find_baselines, load_state, save_state

DAYS = (date(2018, 12, 31), date(2023, 12, 31), date(2024, 6, 30), date(2024, 12, 31))


def _view(path: Path, *, chunks: int | None) -> tuple[xr.Dataset, Affine, CRS]:
    with rasterio.open(path) as src:
        dn, transform, crs = src.read().astype(np.float32), src.transform, CRS.from_user_input(src.crs)
    dn[:, (dn == 0).all(axis=0)] = np.nan
    h, w = dn.shape[1:]
    coords = {
        "y": transform.f + transform.e * (np.arange(h) + 0.5),
        "x": transform.c + transform.a * (np.arange(w) + 0.5),
    }
    view = xr.Dataset({b: (("y", "x"), dn[i] * 1e-4) for i, b in enumerate(BANDS)}, coords=coords)
    return (view.chunk({"y": chunks, "x": chunks}) if chunks else view), transform, crs


@pytest.fixture(scope="module")
def detector(sample_data: Path) -> MiningDetector:
    return mining_detector(load_settings(None, cli={"sample_data": sample_data}))[0]


def _fold(
    state: xr.Dataset, views: list[xr.Dataset], days: tuple[date, ...], detector: MiningDetector
) -> dict[str, np.ndarray]:
    for view, day in zip(views, days, strict=True):
        state = fold_step(state, view, day=day, detector=detector)
    done = state.compute()
    return {k: np.asarray(v.values) for k, v in done.data_vars.items()}


@pytest.mark.parametrize("chunks", [None, 24])
def test_probable_until_seen_again_n_times(
    gold_patches: SceneLibrary, detector: MiningDetector, chunks: int | None
) -> None:
    a, _, _ = _view(gold_patches.get("gm0685", "t0").path, chunks=chunks)
    b, _, _ = _view(gold_patches.get("gm0685", "t1").path, chunks=chunks)
    state = empty_state(a, steps=1)
    got = []
    for n in range(1, 5):
        done = _fold(state, [a, b, b, b][:n], DAYS[:n], detector)
        rows = state_rows_inputs(done, confirm_after=2)
        got.append((int(rows["mining"].sum()), int(rows["dates"]["confirmed"][rows["mining"]].sum())))
    mined = got[1][0]
    # A alone: baseline only; B: ~9 ha new, probable; C: seen once more; D: twice -> confirmed (N = 2)
    assert got[0] == (0, 0)
    assert 500 <= mined <= 1500, got
    assert got[1:] == [(mined, 0), (mined, 0), (mined, mined)], got
    first = state_rows_inputs(done, confirm_after=2)["dates"]["first_seen"][rows["mining"]]
    assert set(first.tolist()) == {float((DAYS[1] - date(1970, 1, 1)).days)}


def test_a_stored_state_resumes_to_the_same_state(
    gold_patches: SceneLibrary, detector: MiningDetector, tmp_path: Path
) -> None:
    scene = gold_patches.get("gm0685", "t0")
    a, transform, crs = _view(scene.path, chunks=None)
    b, _, _ = _view(gold_patches.get("gm0685", "t1").path, chunks=None)
    whole = _fold(empty_state(a, steps=2), [a, a, b, b], DAYS, detector)
    half = _fold(empty_state(a, steps=2), [a, a], DAYS[:2], detector)
    day = {"date": str(DAYS[1]), "scenes": ["A"], "valid_px": 1, "baseline_px": 1}
    save_state(
        tmp_path, aoi_id="x", state=half, crs=crs, transform=transform, footprint=scene.footprint, dates=[day]
    )
    (stored,) = find_baselines(tmp_path, aoi_id="x", footprint=scene.footprint)
    loaded = load_state(stored, steps=2)
    resumed = _fold(loaded.assign_coords(y=a["y"], x=a["x"]), [b, b], DAYS[2:], detector)
    for k in whole:
        np.testing.assert_array_equal(whole[k], resumed[k], err_msg=k)
    assert int((whole["current"] == 1).sum()) > 500  # the comparison after two baseline dates found the mine
