"""Temporal composites of valid observations, per period (pure, lazy).

For each period (month, quarter, year... any pandas offset alias given to ``freq``) and each
pixel: the median and a chosen percentile of the observations that are valid (clear, with
data), and how many valid observations there were. A pixel with no valid observation in a
period is NaN in the median / percentile and 0 in the count.
"""

from __future__ import annotations

import dask.array as da
import numpy as np
import xarray as xr

#: Month-start anchored quarters (Jan-Mar, Apr-Jun...) as pandas spells them.
QUARTER = "QS-JAN"
MONTH = "MS"


def composite(
    values: xr.DataArray,
    valid: xr.DataArray,
    *,
    freq: str = QUARTER,
    percentile: float = 25.0,
) -> xr.Dataset:
    """Per-period median, ``percentile`` and valid count of ``values``.

    Parameters
    ----------
    values
        Observations, dims ``("time", "y", "x")`` (e.g. NDVI, reflectance 0-1), numpy or dask.
    valid
        bool, same dims: True where the observation is clear and valid.
    freq
        Period length as a pandas offset alias: ``"MS"`` months, ``"QS-JAN"`` calendar
        quarters, ``"YS"`` years.
    percentile
        0-100, e.g. 25 for a darker-than-median (shadow/haze-robust) composite.

    Returns
    -------
    xr.Dataset
        ``median`` and ``p<percentile>`` (float32) and ``count`` (int16), dims
        ``("time", "y", "x")`` where ``time`` is the start of each period that has at least
        one acquisition.
    """
    if values.dims != ("time", "y", "x") or valid.dims != values.dims:
        raise ValueError(f"values and valid need dims ('time', 'y', 'x'); got {values.dims}, {valid.dims}")
    if not 0 <= percentile <= 100:
        raise ValueError(f"percentile must be within 0..100, got {percentile}")
    masked = values.where(valid.astype(bool)).astype(np.float32)
    if isinstance(masked.data, da.Array):
        # a pixel's whole series in one chunk: per-period quantiles need it
        masked = masked.chunk({"time": -1})
    groups = masked.resample(time=freq)
    median = groups.median("time", skipna=True).astype(np.float32)
    pct = (
        groups.quantile(percentile / 100.0, dim="time", skipna=True).drop_vars("quantile").astype(np.float32)
    )
    count = masked.notnull().resample(time=freq).sum("time").astype(np.int16)
    # drop periods without any acquisition (resample creates empty bins in between)
    has_scene = masked["time"].resample(time=freq).count() > 0
    keep = np.asarray(has_scene.values)
    name = f"p{percentile:g}"
    out = xr.Dataset({"median": median, name: pct, "count": count}).isel(time=keep)
    out["median"].attrs["long_name"] = f"median of valid observations per {freq} period"
    out[name].attrs["long_name"] = f"{percentile:g}th percentile of valid observations per {freq} period"
    out["count"].attrs["long_name"] = "number of valid observations"
    return out
