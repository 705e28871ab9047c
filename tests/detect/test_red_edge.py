"""Red-edge indices: numpy == dask == hand-computed reference."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import xarray as xr

from pipeline.core.errors import RasterError
from pipeline.detect.indices import cire, ndre


def test_mismatched_grids_are_refused() -> None:
    with pytest.raises(RasterError, match="different grids"):
        cire(xr.DataArray(np.ones((2, 3)), dims=("y", "x")), xr.DataArray(np.ones((3, 3)), dims=("y", "x")))


@pytest.mark.parametrize(
    ("fn", "ref"),
    [(ndre, lambda n, r: (n - r) / (n + r)), (cire, lambda n, r: n / r - 1)],
)
def test_red_edge_numpy_dask_reference(fn: object, ref: object) -> None:
    rng = np.random.default_rng(4)
    nir = rng.uniform(0.05, 0.5, (3, 20, 17)).astype(np.float32)
    re = rng.uniform(0.02, 0.3, (3, 20, 17)).astype(np.float32)
    re[0, 0, 0] = 0.0
    nir[0, 0, 0] = 0.0  # 0 / 0 -> NaN for both
    eager = fn(xr.DataArray(nir, dims=("time", "y", "x")), xr.DataArray(re, dims=("time", "y", "x")))  # type: ignore[operator]
    lazy = fn(  # type: ignore[operator]
        xr.DataArray(da.from_array(nir, chunks=(1, 8, 8)), dims=("time", "y", "x")),
        xr.DataArray(da.from_array(re, chunks=(1, 8, 8)), dims=("time", "y", "x")),
    )
    assert isinstance(lazy.data, da.Array) and lazy.dtype == np.float32
    np.testing.assert_array_equal(eager.values, lazy.values)
    with np.errstate(divide="ignore", invalid="ignore"):
        expected = ref(nir.astype(np.float64), re.astype(np.float64))  # type: ignore[operator]
    expected[~np.isfinite(expected)] = np.nan
    np.testing.assert_allclose(eager.values, expected, rtol=1e-5, atol=1e-6, equal_nan=True)
    assert np.isnan(eager.values[0, 0, 0])
