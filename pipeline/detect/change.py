"""Forest -> mining change detection on a stack of classified dates.

A pixel is a candidate when it was forest in the baseline and a later valid observation
shows bare / mining ground or a turbid pond. It is ``probable`` on first sight and
``confirmed`` once the change is seen again in at least ``confirm_after`` later valid
observations (cloudy or nodata dates neither confirm nor refute). Candidate masks are
cleaned morphologically (opening removes isolated pixels, closing fills pinholes) and
polygons smaller than the minimum mapping unit are dropped when vectorised.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import dask.array as da
import geopandas as gpd
import numpy as np
import xarray as xr
from affine import Affine
from pyproj import CRS
from scipy import ndimage

from pipeline.core.errors import ConfigError, RasterError
from pipeline.core.records import CONFIRMED, PROBABLE
from pipeline.detect.landcover import BARE, CLASS_CODES, FOREST, NODATA, OTHER_VEG, VALID_CODES, WATER_TURBID
from pipeline.detect.vectorize import vectorize_mask

NONE, STATUS_PROBABLE, STATUS_CONFIRMED = 0, 1, 2


def _remap_block(source: np.ndarray, table: np.ndarray) -> np.ndarray:
    return table[np.clip(source, 0, len(table) - 1).astype(np.intp)]


def remap_classes(
    source: xr.DataArray, *, legend: Mapping[int, str], other: str = "other_vegetation"
) -> xr.DataArray:
    """Recode an external land-cover map (e.g. MapBiomas) to our class codes, lazily.

    Parameters
    ----------
    source
        Integer class codes (any dims), e.g. MapBiomas Collection 6 uint16.
    legend
        Source code -> our class name (``classes.toml`` ``[maps.NAME]``, via
        :func:`pipeline.ingest.training.map_legend`); ``"nodata"`` marks no observation.
    other
        Our class for codes the legend does not list (valid, never forest nor mining).
    """
    bad = sorted({v for v in legend.values()} - set(CLASS_CODES))
    if bad:
        raise ConfigError(f"Legend maps to unknown classes {bad}; use {sorted(CLASS_CODES)}.")
    if not np.issubdtype(source.dtype, np.integer):
        raise RasterError(f"Class map must hold integer codes, got {source.dtype}. Read it without scaling.")
    size = max(int(np.iinfo(source.dtype).max), max(legend, default=0)) + 1
    table = np.full(min(size, 1 << 16), CLASS_CODES.get(other, OTHER_VEG), dtype=np.uint8)
    for code, name in legend.items():
        if code < len(table):
            table[code] = CLASS_CODES[name]
    out = xr.apply_ufunc(
        _remap_block, source, kwargs={"table": table}, dask="parallelized", output_dtypes=[np.uint8]
    )
    return out.rename("landcover")


def _change_block(
    classes: np.ndarray,
    *,
    times: np.ndarray,
    baseline_steps: int,
    confirm_after: int,
    targets: tuple[int, ...],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    valid = np.isin(classes, VALID_CODES)
    base, base_valid = classes[..., :baseline_steps], valid[..., :baseline_steps]
    forest = base_valid.any(axis=-1) & ((base == FOREST) | ~base_valid).all(axis=-1)
    hit = np.isin(classes[..., baseline_steps:], targets) & forest[..., None]
    seen = hit.any(axis=-1)
    n_hits = hit.sum(axis=-1)
    m = hit.shape[-1]
    first = baseline_steps + hit.argmax(axis=-1)
    last = baseline_steps + (m - 1 - hit[..., ::-1].argmax(axis=-1))
    nat = np.datetime64("NaT", "ns")
    first_seen = np.where(seen, times[np.minimum(first, len(times) - 1)], nat)
    last_seen = np.where(seen, times[np.minimum(last, len(times) - 1)], nat)
    status = np.where(seen, np.where(n_hits - 1 >= confirm_after, STATUS_CONFIRMED, STATUS_PROBABLE), NONE)
    return (
        status.astype(np.uint8),
        first_seen.astype("datetime64[ns]"),
        last_seen.astype("datetime64[ns]"),
        n_hits.astype(np.uint16),
    )


def detect_change(
    landcover: xr.DataArray,
    *,
    baseline_steps: int = 1,
    confirm_after: int = 1,
    targets: Sequence[int] = (BARE, WATER_TURBID),
) -> xr.Dataset:
    """Per-pixel forest -> mining change over a time series of class maps, lazily.

    Parameters
    ----------
    landcover
        uint8 class codes, dims ``("time", "y", "x")`` with a datetime ``time`` coordinate
        sorted ascending; ``nodata`` / ``masked`` codes are not observations. Chunk ``time``
        as one chunk (done here).
    baseline_steps
        The first ``baseline_steps`` dates form the baseline: a pixel is baseline forest
        when every valid baseline observation is forest (and there is at least one).
    confirm_after
        Later valid observations that must repeat the change for ``confirmed``.
    targets
        Class codes that count as mining (default bare/mining ground and turbid water).

    Returns
    -------
    xr.Dataset
        ``status`` (uint8: 0 none, 1 probable, 2 confirmed), ``first_seen`` / ``last_seen``
        (datetime64[ns], NaT where none) and ``n_hits`` (uint16), dims ``("y", "x")``.
    """
    if "time" not in landcover.dims:
        raise RasterError(f"Change detection needs a 'time' dimension; got dims {landcover.dims}.")
    n = landcover.sizes["time"]
    if not 1 <= baseline_steps < n:
        raise ConfigError(f"baseline_steps must be 1..{n - 1} for {n} dates, got {baseline_steps}.")
    if confirm_after < 0:
        raise ConfigError(f"confirm_after must be >= 0, got {confirm_after}.")
    times = np.asarray(landcover["time"].values).astype("datetime64[ns]")
    if np.isnat(times).any() or (np.diff(times.astype(np.int64)) <= 0).any():
        raise RasterError(
            "Change detection needs dated, strictly increasing 'time'. Sort and date the stack."
        )
    if isinstance(landcover.data, da.Array):
        landcover = landcover.chunk({"time": -1})
    outs = xr.apply_ufunc(
        _change_block,
        landcover,
        input_core_dims=[["time"]],
        output_core_dims=[[], [], [], []],
        kwargs={
            "times": times,
            "baseline_steps": baseline_steps,
            "confirm_after": confirm_after,
            "targets": tuple(int(t) for t in targets),
        },
        dask="parallelized",
        output_dtypes=[np.uint8, "datetime64[ns]", "datetime64[ns]", np.uint16],
    )
    names = ("status", "first_seen", "last_seen", "n_hits")
    return xr.Dataset(dict(zip(names, outs, strict=True)))


def _clean_block(mask: np.ndarray, radius: int) -> np.ndarray:
    structure = np.ones((3, 3), dtype=bool)
    out = ndimage.binary_opening(mask, structure=structure, iterations=radius)
    return np.asarray(ndimage.binary_closing(out, structure=structure, iterations=radius), dtype=bool)


def clean_mask(mask: xr.DataArray, *, radius_px: int = 1) -> xr.DataArray:
    """Morphological opening then closing of a boolean ``("y", "x")`` mask, lazily.

    Dask chunks overlap by ``4 * radius_px + 1`` pixels (opening and closing each reach
    ``2 * radius_px``) so results equal the numpy ones.
    """
    if mask.dims[-2:] != ("y", "x") or mask.ndim != 2:
        raise RasterError(f"clean_mask needs a 2-D ('y', 'x') mask, got {mask.dims}.")
    if radius_px <= 0:
        return mask.astype(bool)
    data = mask.data.astype(bool)
    if isinstance(data, da.Array):
        depth = 4 * radius_px + 1
        out = data.map_overlap(_clean_block, depth=depth, boundary="none", dtype=bool, radius=radius_px)
    else:
        out = _clean_block(np.asarray(data), radius_px)
    return mask.copy(data=out).rename("mask")


def epoch_days(times: np.ndarray) -> np.ndarray:
    out = times.astype("datetime64[D]").astype("int64").astype("float64")
    out[np.isnat(times)] = np.nan
    return out


def change_polygons(
    status: np.ndarray,
    first_seen: np.ndarray,
    last_seen: np.ndarray,
    *,
    transform: Affine,
    crs: CRS,
    area_crs: CRS,
    min_area_ha: float = 0.5,
    stats: Mapping[str, np.ndarray] | None = None,
) -> gpd.GeoDataFrame:
    """Polygons of computed change rasters (after ``clean_mask``), with dates and confidence.

    ``first_seen`` is the earliest and ``last_seen`` the latest date in the polygon;
    ``confidence`` is ``confirmed`` when most of its pixels are confirmed. Returns EPSG:4326
    with the :func:`vectorize_mask` columns plus ``first_seen``, ``last_seen``,
    ``confirmed_fraction``, ``confidence``.
    """
    days = {"first_seen": epoch_days(first_seen), "last_seen": epoch_days(last_seen)}
    frame = vectorize_mask(
        status > NONE,
        transform=transform,
        crs=crs,
        area_crs=area_crs,
        min_area_ha=min_area_ha,
        stats=stats,
        reduce={
            "first_seen": (days["first_seen"], "min"),
            "last_seen": (days["last_seen"], "max"),
            "confirmed_fraction": ((status == STATUS_CONFIRMED).astype(np.float64), "mean"),
        },
    )
    for col in ("first_seen", "last_seen"):
        frame[col] = [None if np.isnan(d) else np.datetime64(int(d), "D").item() for d in frame[col]]
    frame["confidence"] = np.where(frame["confirmed_fraction"] >= 0.5, CONFIRMED, PROBABLE)
    return frame


__all__ = [
    "NODATA",
    "change_polygons",
    "clean_mask",
    "detect_change",
    "remap_classes",
]
