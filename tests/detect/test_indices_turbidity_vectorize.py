from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import xarray as xr
from affine import Affine
from pyproj import CRS

from pipeline.core.errors import RasterError
from pipeline.detect.indices import bsi, mndwi, ndti, ndvi, ndwi
from pipeline.detect.turbidity import dogliotti_fnu, nechad_fnu
from pipeline.detect.vectorize import vectorize_mask


def _bands(seed: int = 7) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = {b: rng.uniform(0.0, 0.4, size=(2, 40, 30)).astype(np.float32) for b in ("b", "g", "r", "n", "s")}
    out["r"][0, 0, 0] = np.nan
    out["n"][0, 1, 1] = 0.0
    out["r"][0, 1, 1] = 0.0  # zero denominator -> NaN
    return out


def _xr(arr: np.ndarray, dask_backed: bool) -> xr.DataArray:
    data = da.from_array(arr, chunks=(1, 16, 16)) if dask_backed else arr
    return xr.DataArray(data, dims=("time", "y", "x"))


CASES = {
    "ndvi": (lambda d: ndvi(d["n"], d["r"]), lambda a: (a["n"] - a["r"]) / (a["n"] + a["r"])),
    "ndwi": (lambda d: ndwi(d["g"], d["n"]), lambda a: (a["g"] - a["n"]) / (a["g"] + a["n"])),
    "mndwi": (lambda d: mndwi(d["g"], d["s"]), lambda a: (a["g"] - a["s"]) / (a["g"] + a["s"])),
    "ndti": (lambda d: ndti(d["r"], d["g"]), lambda a: (a["r"] - a["g"]) / (a["r"] + a["g"])),
    "bsi": (
        lambda d: bsi(d["b"], d["r"], d["n"], d["s"]),
        lambda a: ((a["s"] + a["r"]) - (a["n"] + a["b"])) / ((a["s"] + a["r"]) + (a["n"] + a["b"])),
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_index_numpy_equals_dask_equals_reference(name: str) -> None:
    fn, ref = CASES[name]
    raw = _bands()
    eager = fn({k: _xr(v, False) for k, v in raw.items()})
    lazy = fn({k: _xr(v, True) for k, v in raw.items()})
    assert isinstance(lazy.data, da.Array)  # still lazy
    assert eager.dtype == lazy.dtype == np.float32
    with np.errstate(divide="ignore", invalid="ignore"):
        expected = ref({k: v.astype(np.float64) for k, v in raw.items()})
    expected[~np.isfinite(expected)] = np.nan
    np.testing.assert_array_equal(eager.values, lazy.values)
    np.testing.assert_allclose(eager.values, expected, rtol=1e-5, atol=1e-6, equal_nan=True)
    if name in {"ndvi", "ndti", "bsi"}:  # they read the red band, NaN at [0, 0, 0]
        assert np.isnan(eager.values[0, 0, 0])


def test_indices_refuse_mismatched_grids() -> None:
    a = xr.DataArray(np.ones((3, 4)), dims=("y", "x"))
    b = xr.DataArray(np.ones((3, 5)), dims=("y", "x"))
    with pytest.raises(RasterError, match=r"different grids.*Resample"):
        ndvi(a, b)


def test_dogliotti_hand_values() -> None:
    red = np.array([0.02, 0.06, 0.10, 0.17], dtype=np.float32)
    nir = np.array([0.01, 0.03, 0.05, 0.08], dtype=np.float32)
    got = dogliotti_fnu(xr.DataArray(red), xr.DataArray(nir)).values
    t_red = lambda p: 228.1 * p / (1 - p / 0.1641)  # noqa: E731
    t_nir = lambda p: 3078.9 * p / (1 - p / 0.2112)  # noqa: E731
    w = (0.06 - 0.05) / 0.02
    expected = [t_red(0.02), (1 - w) * t_red(0.06) + w * t_nir(0.03), t_nir(0.05), t_nir(0.08)]
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    lazy = dogliotti_fnu(
        xr.DataArray(da.from_array(red, chunks=2)), xr.DataArray(da.from_array(nir, chunks=2))
    )
    np.testing.assert_array_equal(lazy.values, got)
    # saturated reflectance gives no retrieval rather than a negative turbidity
    assert np.isnan(nechad_fnu(xr.DataArray(np.array([0.2], dtype=np.float32))).values[0])


def test_vectorize_area_mmu_and_stats() -> None:
    utm = CRS.from_epsg(32721)
    transform = Affine(10, 0, 500_000, 0, -10, 9_300_000)
    mask = np.zeros((100, 100), dtype=bool)
    mask[10:30, 10:30] = True  # 400 px x 100 m2 = 4 ha
    mask[50:52, 50:52] = True  # 4 px = 0.04 ha, below MMU
    mask[70:80, 60:70] = True  # 1 ha
    values = np.full(mask.shape, 2.0)
    values[10:20, 10:30] = 4.0
    frame = vectorize_mask(
        mask, transform=transform, crs=utm, area_crs=utm, min_area_ha=0.5, stats={"v": values}
    )
    assert frame.crs.to_epsg() == 4326
    assert sorted(frame["area_ha"].round(6)) == [1.0, 4.0]
    big = frame.loc[frame["area_ha"].idxmax()]
    assert big["mean_v"] == pytest.approx(3.0) and big["n_pixels"] == 400
    assert vectorize_mask(
        np.zeros((5, 5), bool), transform=transform, crs=utm, area_crs=utm, min_area_ha=0
    ).empty
