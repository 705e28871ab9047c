"""Spectral indices with one code path for numpy- and dask-backed arrays.

Inputs are reflectance (0-1) ``xr.DataArray``s on the same grid, any dims (typically
``("time", "y", "x")``); outputs are float32 with the same dims, NaN where an input is NaN
or the denominator is zero.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from pipeline.core.errors import RasterError


def _check_same_grid(*arrays: xr.DataArray) -> None:
    first = arrays[0]
    for other in arrays[1:]:
        if other.dims != first.dims or other.shape != first.shape:
            raise RasterError(
                f"Bands are on different grids: {dict(first.sizes)} vs {dict(other.sizes)}. "
                "Resample them to one resolution before computing indices."
            )


def nd_kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a.astype(np.float32, copy=False)
    b = b.astype(np.float32, copy=False)
    den = a + b
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(den != 0, (a - b) / den, np.float32(np.nan))
    return out.astype(np.float32, copy=False)


def normalized_difference(a: xr.DataArray, b: xr.DataArray, *, name: str) -> xr.DataArray:
    """``(a - b) / (a + b)``, lazily for dask inputs."""
    _check_same_grid(a, b)
    out = xr.apply_ufunc(nd_kernel, a, b, dask="parallelized", output_dtypes=[np.float32])
    return out.rename(name)


def ndvi(nir: xr.DataArray, red: xr.DataArray, *, name: str = "ndvi") -> xr.DataArray:
    """Normalized Difference Vegetation Index (S2: B08, B04)."""
    return normalized_difference(nir, red, name=name)


def ndwi(green: xr.DataArray, nir: xr.DataArray, *, name: str = "ndwi") -> xr.DataArray:
    """McFeeters (1996) Normalized Difference Water Index (S2: B03, B08)."""
    return normalized_difference(green, nir, name=name)


def mndwi(green: xr.DataArray, swir1: xr.DataArray, *, name: str = "mndwi") -> xr.DataArray:
    """Modified NDWI, Xu (2006) (S2: B03, B11); separates water from built-up better."""
    return normalized_difference(green, swir1, name=name)


def ndti(red: xr.DataArray, green: xr.DataArray, *, name: str = "ndti") -> xr.DataArray:
    """Normalized Difference Turbidity Index, Lacaux et al. (2007) (S2: B04, B03)."""
    return normalized_difference(red, green, name=name)


def bsi_kernel(blue: np.ndarray, red: np.ndarray, nir: np.ndarray, swir1: np.ndarray) -> np.ndarray:
    return nd_kernel(swir1.astype(np.float32) + red, nir.astype(np.float32) + blue)


def bsi(
    blue: xr.DataArray,
    red: xr.DataArray,
    nir: xr.DataArray,
    swir1: xr.DataArray,
    *,
    name: str = "bsi",
) -> xr.DataArray:
    """Bare Soil Index ``((SWIR1 + R) - (NIR + B)) / ((SWIR1 + R) + (NIR + B))``
    (S2: B02, B04, B08, B11)."""
    _check_same_grid(blue, red, nir, swir1)
    out = xr.apply_ufunc(bsi_kernel, blue, red, nir, swir1, dask="parallelized", output_dtypes=[np.float32])
    return out.rename(name)


def ndre(nir: xr.DataArray, red_edge: xr.DataArray, *, name: str = "ndre") -> xr.DataArray:
    """Normalized Difference Red Edge, Gitelson & Merzlyak (1994) (S2: B8A, B05).

    Saturates later than NDVI over dense canopy, so it separates intact forest from
    degraded or regrowing vegetation that NDVI calls equal.
    """
    return normalized_difference(nir, red_edge, name=name)


def _ratio_minus_one(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a.astype(np.float32, copy=False)
    b = b.astype(np.float32, copy=False)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(b != 0, a / b - np.float32(1.0), np.float32(np.nan))
    return out.astype(np.float32, copy=False)


def cire(nir: xr.DataArray, red_edge: xr.DataArray, *, name: str = "cire") -> xr.DataArray:
    """Red-edge chlorophyll index ``NIR / RE - 1``, Gitelson et al. (2003) (S2: B8A or
    B07 over B05); NaN where the red-edge band is zero."""
    _check_same_grid(nir, red_edge)
    out = xr.apply_ufunc(_ratio_minus_one, nir, red_edge, dask="parallelized", output_dtypes=[np.float32])
    return out.rename(name)
