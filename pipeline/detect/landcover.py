"""A first, index-based land-cover map: forest, other vegetation, bare ground, water.

Rules (thresholds in :class:`pipeline.core.config.DetectParams`):

* water: MNDWI > ``water_mndwi_min``; turbid water when its FNU > ``turbid_fnu_min``;
* bare/disturbed ground: NDVI <= ``bare_ndvi_max`` and BSI >= ``bare_bsi_min``;
* forest: NDVI >= ``ndvi_forest_min``; everything else with data is other vegetation.

This is the baseline the scikit-learn classifier (detect/classify.py) must beat. It cannot
tell a town's roofs from a tailings pond's dried sediment: both are bare ground.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from pipeline.core.config import DetectParams

NODATA, FOREST, OTHER_VEG, BARE, WATER_CLEAR, WATER_TURBID, BUILT_UP, MASKED = 0, 1, 2, 3, 4, 5, 6, 7
CLASS_NAMES = {
    NODATA: "nodata",
    FOREST: "forest",
    OTHER_VEG: "other_vegetation",
    BARE: "bare_mining",
    WATER_CLEAR: "water_clear",
    WATER_TURBID: "water_turbid",
    BUILT_UP: "built_up",
    MASKED: "masked",
}
#: Class name -> code, for the classifier's classes ("water" is split by FNU afterwards).
CLASS_CODES = {name: code for code, name in CLASS_NAMES.items()} | {"water": WATER_CLEAR}
#: Codes that are an observation of the ground (not nodata, not cloud / shadow).
VALID_CODES = (FOREST, OTHER_VEG, BARE, WATER_CLEAR, WATER_TURBID, BUILT_UP)


def classify_kernel(
    ndvi: np.ndarray,
    mndwi: np.ndarray,
    bsi: np.ndarray,
    fnu: np.ndarray,
    ndvi_forest_min: float,
    bare_ndvi_max: float,
    bare_bsi_min: float,
    water_mndwi_min: float,
    turbid_fnu_min: float,
) -> np.ndarray:
    out = np.full(ndvi.shape, OTHER_VEG, dtype=np.uint8)
    out[ndvi >= ndvi_forest_min] = FOREST
    out[(ndvi <= bare_ndvi_max) & (bsi >= bare_bsi_min)] = BARE
    water = mndwi > water_mndwi_min
    out[water] = WATER_CLEAR
    out[water & (fnu > turbid_fnu_min)] = WATER_TURBID
    out[np.isnan(ndvi) | np.isnan(mndwi)] = NODATA
    return out


def classify_indices(
    ndvi: xr.DataArray,
    mndwi: xr.DataArray,
    bsi: xr.DataArray,
    fnu: xr.DataArray,
    *,
    params: DetectParams,
) -> xr.DataArray:
    """Class codes (uint8, see ``CLASS_NAMES``) with the inputs' dims, lazily for dask."""
    out = xr.apply_ufunc(
        classify_kernel,
        ndvi,
        mndwi,
        bsi,
        fnu,
        params.ndvi_forest_min,
        params.bare_ndvi_max,
        params.bare_bsi_min,
        params.water_mndwi_min,
        params.turbid_fnu_min,
        dask="parallelized",
        output_dtypes=[np.uint8],
    )
    out.attrs["classes"] = ",".join(f"{k}={v}" for k, v in CLASS_NAMES.items())
    return out.rename("landcover")
