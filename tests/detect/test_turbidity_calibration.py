"""Turbidity calibration on the real La Toma matchups and per-site river reaches."""

from __future__ import annotations

from pathlib import Path

import dask.array as da
import geopandas as gpd
import numpy as np
import pytest
import xarray as xr
from affine import Affine
from pyproj import CRS
from scipy.stats import spearmanr
from shapely.geometry import LineString, Point

from pipeline.cli.main import main
from pipeline.core.errors import ConfigError, RasterError
from pipeline.detect.rivers import reach_turbidity
from pipeline.detect.turbidity import TurbidityCalibration, calibrated_fnu, fit_turbidity_calibration
from pipeline.ingest.training import read_turbidity_matchups
from pipeline.state.models import load_turbidity_calibration

MATCHUPS = "turbidity/sameep_la_toma_matchups_2017_2019.csv"


def test_malformed_calibration_is_refused() -> None:
    with pytest.raises(ValueError, match="predictors"):
        TurbidityCalibration.from_dict(
            {"predictors": ["ndti", "evi"], "coefficients": [1, 2], "intercept": 0}
        )


def test_fit_on_2017_2018_beats_red_band_on_2019(sample_data: Path) -> None:
    frame, _ = read_turbidity_matchups(sample_data / MATCHUPS)
    train = (frame["date"].dt.year <= 2018).to_numpy()
    cal = fit_turbidity_calibration(frame, train=train)
    test = frame[~train]
    pred = cal.predict({b: test[b].to_numpy() for b in ("red", "green", "nir")})
    rho = spearmanr(pred, test["turbidity"]).statistic
    red_only = spearmanr(test["red"], test["turbidity"]).statistic
    assert cal.metrics["test_spearman"] == pytest.approx(rho, abs=1e-4)
    assert cal.metrics["n_test"] == len(test) == 46  # no matchup lost to saturation
    assert rho > red_only and rho > 0.74
    rmse = float(np.sqrt(np.mean((pred - test["turbidity"]) ** 2)))
    assert cal.metrics["test_rmse"] == pytest.approx(rmse, abs=0.01)


def test_calibrated_fnu_numpy_equals_dask() -> None:
    cal = load_turbidity_calibration()
    rng = np.random.default_rng(2)
    bands = {b: rng.uniform(0.01, 0.2, size=(30, 20)).astype(np.float32) for b in cal.bands()}
    eager = calibrated_fnu({k: xr.DataArray(v, dims=("y", "x")) for k, v in bands.items()}, calibration=cal)
    lazy = calibrated_fnu(
        {k: xr.DataArray(da.from_array(v, chunks=8), dims=("y", "x")) for k, v in bands.items()},
        calibration=cal,
    )
    np.testing.assert_array_equal(eager.values, lazy.values)
    by_hand = np.exp(
        cal.intercept
        + sum(
            c
            * (
                (bands["red"] - bands["green"]) / (bands["red"] + bands["green"])
                if p == "ndti"
                else np.log(bands["red"])
            )
            for p, c in zip(cal.predictors, cal.coefficients, strict=True)
        )
    )
    np.testing.assert_allclose(eager.values, by_hand, rtol=1e-4)


def test_cli_writes_a_calibration_the_loader_reads(sample_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "cal.json"
    assert main(["calibrate-turbidity", str(sample_data / MATCHUPS), "--out", str(out)]) == 0
    cal = load_turbidity_calibration(out)
    assert cal.fitted_on["file"] == "sameep_la_toma_matchups_2017_2019.csv"
    assert cal == load_turbidity_calibration()  # the shipped default is this fit


T = Affine(10, 0, 500_000, 0, -10, 9_000_000)
UTM = CRS.from_epsg(32721)


def _river() -> tuple[np.ndarray, np.ndarray, gpd.GeoDataFrame]:
    fnu = np.full((100, 400), np.nan)
    water = np.zeros((100, 400), bool)
    water[40:50] = True
    water[80:90, :] = True  # a second, unconnected channel with other values
    cols = np.arange(400)
    fnu[40:50] = np.where(cols < 200, 5.0, 80.0)
    fnu[80:90] = 500.0
    site = gpd.GeoDataFrame(
        {"site_id": ["s1", "far"]}, geometry=[Point(502_000, 8_999_550), Point(502_000, 8_990_000)], crs=UTM
    )
    return fnu, water, site


def test_reach_needs_direction_and_metres() -> None:
    fnu, water, sites = _river()
    with pytest.raises(ConfigError, match="exactly one"):
        reach_turbidity(fnu, water, sites, transform=T, crs=UTM)
    with pytest.raises(RasterError, match="projected"):
        reach_turbidity(fnu, water, sites, transform=T, crs=CRS.from_epsg(4326), flow_azimuth_deg=90)


def test_reach_upstream_downstream_by_azimuth_and_line() -> None:
    fnu, water, sites = _river()
    by_az = reach_turbidity(fnu, water, sites, transform=T, crs=UTM, flow_azimuth_deg=90, reach_m=1000)
    assert list(by_az.columns[:3]) == ["site_id", "upstream_fnu", "downstream_fnu"]
    s1 = by_az.set_index("site_id").loc["s1"]
    assert s1["upstream_fnu"] == 5.0 and s1["downstream_fnu"] == 80.0
    assert s1["upstream_px"] == 10 * 90  # 1000 m reach minus the 100 m gap, 10 rows wide
    assert np.isnan(by_az.set_index("site_id").loc["far", "upstream_fnu"])  # no river nearby
    reversed_flow = reach_turbidity(fnu, water, sites, transform=T, crs=UTM, flow_azimuth_deg=270)
    assert reversed_flow.iloc[0]["upstream_fnu"] == 80.0
    line = LineString([(500_000, 8_999_550), (504_000, 8_999_550)])
    by_line = reach_turbidity(fnu, water, sites, transform=T, crs=UTM, river=line, reach_m=1000)
    assert by_line.iloc[0]["upstream_fnu"] == 5.0 and by_line.iloc[0]["downstream_fnu"] == 80.0
