"""Cloud and validity masks, per scene, lazily (pure: no I/O, no compute).

- L2A: the Scene Classification Layer (SCL) of Sen2Cor: cloud shadow (3), cloud medium /
  high probability (8, 9) and thin cirrus (10) are cloud; no data (0) and saturated or
  defective (1) are invalid.
- L1C: s2cloudless (``S2PixelCloudDetector``; its LightGBM model ships in the wheel) run
  block by block on the 10 bands it needs (B01 B02 B04 B05 B08 B8A B09 B10 B11 B12, TOA
  reflectance 0-1), then its own smoothing (mean over a disk) and threshold.
- A dilation buffer grows every cloud by ``buffer_px`` pixels (cloud edges and thin
  shadows are the usual leak into change detection).

All functions take and return ``xarray.DataArray`` with dims ``("time", "y", "x")`` and work
the same on numpy and dask data (``map_blocks`` / ``map_overlap`` with ``meta`` given).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr
from scipy import ndimage

from pipeline.core.errors import NoDataError

log = logging.getLogger(__name__)

#: SCL classes that are cloud or cloud shadow.
SCL_CLOUD = (3, 8, 9, 10)
#: SCL classes that carry no usable observation.
SCL_NODATA = (0, 1)
#: Bands s2cloudless needs, in its order.
S2CLOUDLESS_BANDS = ("B01", "B02", "B04", "B05", "B08", "B8A", "B09", "B10", "B11", "B12")


def _disk(radius: int) -> np.ndarray:
    y, x = np.ogrid[-radius : radius + 1, -radius : radius + 1]
    return np.asarray(x * x + y * y <= radius * radius)


def _spatial(func: Any, arr: xr.DataArray, *, depth: int, dtype: Any) -> xr.DataArray:
    """Apply ``func(ndarray (time, y, x)) -> ndarray`` with a ``depth``-pixel halo on dask."""
    data = arr.data
    if isinstance(data, da.Array):
        out = data.map_overlap(
            func,
            depth={0: 0, 1: depth, 2: depth},
            boundary="none",
            dtype=dtype,
            meta=np.empty((0, 0, 0), dtype),
        )
    else:
        out = func(np.asarray(data))
    return arr.copy(data=out)


def _dilate_np(mask: np.ndarray, radius: int) -> np.ndarray:
    struct = _disk(radius)[None]
    return np.asarray(ndimage.binary_dilation(mask.astype(bool), structure=struct))


def dilate(mask: xr.DataArray, *, buffer_px: int) -> xr.DataArray:
    """Grow True pixels of ``mask`` (bool, ``("time", "y", "x")``) by a disk of ``buffer_px``
    pixels in y/x (never across time)."""
    if mask.dims != ("time", "y", "x"):
        raise ValueError(f"mask dims must be ('time', 'y', 'x'), got {mask.dims}")
    if buffer_px <= 0:
        return mask.astype(bool)
    return _spatial(lambda a: _dilate_np(a, buffer_px), mask, depth=buffer_px, dtype=bool).rename("cloud")


def scl_cloud(scl: xr.DataArray, *, classes: Sequence[int] = SCL_CLOUD) -> xr.DataArray:
    """True where the SCL class (L2A) is cloud or cloud shadow; NaN SCL is not cloud."""
    return scl.isin(list(classes)).rename("cloud")


def scl_valid(scl: xr.DataArray, *, nodata: Sequence[int] = SCL_NODATA) -> xr.DataArray:
    """True where SCL holds an observation (not no-data, not saturated/defective, not NaN)."""
    return (scl.notnull() & ~scl.isin(list(nodata))).rename("valid")


@functools.lru_cache(maxsize=1)
def _detector() -> Any:
    from s2cloudless import S2PixelCloudDetector

    # the library's own post-processing is replaced by ours (dask-aware, halo-correct)
    return S2PixelCloudDetector(threshold=0.4, all_bands=False, average_over=None, dilation_size=None)


def _proba_block(stack: np.ndarray) -> np.ndarray:
    """(band, time, y, x) reflectance -> (time, y, x) cloud probability, NaN where any band is."""
    data = np.moveaxis(stack, 0, -1)
    nan = np.isnan(data).any(axis=-1)
    proba = _detector().get_cloud_probability_maps(np.nan_to_num(data, nan=0.0))
    return np.where(nan, np.float32(np.nan), proba).astype(np.float32)


def s2cloudless_probability(ds: xr.Dataset) -> xr.DataArray:
    """Cloud probability 0-1 of each pixel (L1C TOA reflectance), lazily per block.

    Parameters
    ----------
    ds
        Has variables B01 B02 B04 B05 B08 B8A B09 B10 B11 B12, float reflectance 0-1,
        dims ``("time", "y", "x")``.

    Returns
    -------
    xr.DataArray
        float32 ``("time", "y", "x")``, NaN where any input band is NaN.
    """
    missing = [b for b in S2CLOUDLESS_BANDS if b not in ds]
    if missing:
        raise ValueError(
            f"s2cloudless needs bands {list(S2CLOUDLESS_BANDS)}; missing {missing}. L2A products "
            "have no B10: use the SCL band (scl_cloud) for L2A."
        )
    stacked = xr.concat([ds[b].astype("float32") for b in S2CLOUDLESS_BANDS], dim="band")
    stacked = stacked.transpose("band", "time", "y", "x")
    data = stacked.data
    if isinstance(data, da.Array):
        data = data.rechunk({0: -1})
        out = data.map_blocks(
            _proba_block, drop_axis=0, dtype=np.float32, meta=np.empty((0, 0, 0), np.float32)
        )
    else:
        out = _proba_block(np.asarray(data))
    template = ds[S2CLOUDLESS_BANDS[0]]
    return xr.DataArray(out, dims=("time", "y", "x"), coords=template.coords, name="cloud_probability")


def _smooth_threshold_np(proba: np.ndarray, radius: int, threshold: float) -> np.ndarray:
    if radius > 0:
        kernel = _disk(radius).astype(np.float32)
        kernel /= kernel.sum()
        filled = np.nan_to_num(proba, nan=0.0)
        proba = np.stack([ndimage.convolve(p, kernel, mode="nearest") for p in filled])
    return np.asarray(proba > threshold)


def cloud_from_probability(
    proba: xr.DataArray, *, threshold: float = 0.4, average_over: int = 4
) -> xr.DataArray:
    """s2cloudless' mask rule: mean probability over a disk of ``average_over`` px above
    ``threshold`` (the library's defaults for 10 m: 0.4 and 4 px)."""
    return _spatial(
        lambda a: _smooth_threshold_np(a, average_over, threshold), proba, depth=average_over, dtype=bool
    ).rename("cloud")


def valid_mask(
    ds: xr.Dataset,
    *,
    bands: Sequence[str],
    cloud: xr.DataArray | None = None,
    buffer_px: int = 0,
) -> xr.DataArray:
    """Clear, valid observations: every band in ``bands`` present, the product's own data
    mask (``IS_DATA`` / ``dataMask`` / SCL) says data, and not within ``buffer_px`` of a cloud.

    Returns
    -------
    xr.DataArray
        bool ``("time", "y", "x")``.
    """
    valid = ds[bands[0]].notnull()
    for band in bands[1:]:
        valid = valid & ds[band].notnull()
    for flag in ("IS_DATA", "dataMask"):
        if flag in ds:
            valid = valid & (ds[flag] == 1)
    if "SCL" in ds:
        valid = valid & scl_valid(ds["SCL"])
    if cloud is not None:
        valid = valid & ~dilate(cloud.fillna(False).astype(bool), buffer_px=buffer_px)
    return valid.rename("valid")


def valid_fraction(valid: xr.DataArray, *, footprint: xr.DataArray | None = None) -> xr.DataArray:
    """Fraction (0-1) of clear valid pixels per time step, over ``footprint`` (bool
    ``("y", "x")``, e.g. the AOI polygon rasterised) or the whole grid."""
    if footprint is not None:
        return ((valid & footprint).sum(("y", "x")) / footprint.sum()).rename("valid_fraction")
    return valid.mean(("y", "x")).rename("valid_fraction")


def usable(
    fractions: Sequence[float] | np.ndarray,
    *,
    scene_ids: Sequence[str],
    min_valid_fraction: float,
    where: str,
) -> np.ndarray:
    """Which scenes to keep, given their (computed) valid fractions; the others are logged
    with their reason.

    Raises
    ------
    NoDataError
        No scene reaches ``min_valid_fraction``: the AOI/period has no usable observation.
    """
    values = np.asarray(fractions, dtype=float)
    keep = values >= min_valid_fraction
    for sid, frac, ok in zip(scene_ids, values, keep, strict=True):
        if not ok:
            log.info(
                "%s: skipping scene %s: %.1f %% clear valid pixels < min_valid_fraction %.1f %%",
                where,
                sid,
                100 * frac,
                100 * min_valid_fraction,
            )
    if not keep.any():
        best = f"{100 * np.nanmax(values):.1f} %" if values.size and np.isfinite(values).any() else "none"
        raise NoDataError(
            f"{where}: no usable scene: all {values.size} are below min_valid_fraction "
            f"{100 * min_valid_fraction:.0f} % clear (best {best}). Widen the period or lower "
            "ingest.min_valid_fraction."
        )
    return keep
