"""Connected components of a mask -> polygons with area (ha) and evidence statistics.

Built for whole Sentinel-2 tiles (1.2e8 px): components are labelled once, components that
cannot reach the minimum mapping unit are dropped by pixel count before any polygon is
traced, each remaining component is traced inside its own bounding box, and per-polygon
statistics use ``np.bincount`` (one pass) rather than per-label loops.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio.features
from affine import Affine
from pyproj import CRS
from scipy import ndimage
from shapely.geometry import shape as shape_of
from shapely.ops import unary_union

from pipeline.core.records import WGS84

REDUCTIONS = ("mean", "median", "min", "max", "sum")
# Pixel-count prefilter margin: UTM scale error and geographic pixel-area variation within a
# scene stay far below 20 %, and the exact area filter runs afterwards anyway.
_PREFILTER_MARGIN = 0.8


def _pixel_area_ha(transform: Affine, crs: CRS, area_crs: CRS, shape_yx: tuple[int, int]) -> float:
    """Approximate area of one pixel in ``area_crs`` (ha), at the grid's centre."""
    from pyproj import Transformer
    from shapely.geometry import Polygon

    r, c = shape_yx[0] // 2, shape_yx[1] // 2
    corners = [transform * (c + dc, r + dr) for dc, dr in ((0, 0), (1, 0), (1, 1), (0, 1))]
    if CRS.from_user_input(crs) != CRS.from_user_input(area_crs):
        project = Transformer.from_crs(crs, area_crs, always_xy=True)
        corners = [project.transform(x, y) for x, y in corners]
    return float(Polygon(corners).area) / 1e4


def vectorize_mask(
    mask: np.ndarray,
    *,
    transform: Affine,
    crs: CRS,
    area_crs: CRS,
    min_area_ha: float,
    stats: Mapping[str, np.ndarray] | None = None,
    reduce: Mapping[str, tuple[np.ndarray, str]] | None = None,
) -> gpd.GeoDataFrame:
    """Polygons of the 8-connected components of ``mask``.

    Parameters
    ----------
    mask
        2-D boolean array ``(y, x)`` on the grid given by ``transform`` / ``crs``.
    area_crs
        Equal-area (or UTM) CRS in metres where ``area_ha`` is measured; never degrees.
    min_area_ha
        Minimum mapping unit; smaller components are dropped.
    stats
        Arrays on the same grid; each gives ``mean_<name>`` and ``median_<name>`` columns
        (NaN-aware; the median resists the saturated pixels of a retrieval).
    reduce
        ``column -> (array, how)`` with ``how`` one of ``mean``, ``median``, ``min``,
        ``max``, ``sum``: one NaN-aware column per entry, named exactly ``column`` (e.g.
        ``first_seen`` as the minimum day number of the polygon).

    Returns
    -------
    GeoDataFrame
        EPSG:4326, columns ``component``, ``area_ha``, ``n_pixels``, ``mean_*``, geometry.
    """
    mask = np.asarray(mask, dtype=bool)
    return vectorize_sparse(
        mask,
        transform=transform,
        crs=crs,
        area_crs=area_crs,
        min_area_ha=min_area_ha,
        stats={k: np.asarray(v)[mask] for k, v in (stats or {}).items()} if stats else None,
        reduce={k: (np.asarray(v)[mask], how) for k, (v, how) in reduce.items()} if reduce else None,
    )


def vectorize_sparse(
    mask: np.ndarray,
    *,
    transform: Affine,
    crs: CRS,
    area_crs: CRS,
    min_area_ha: float,
    stats: Mapping[str, np.ndarray] | None = None,
    reduce: Mapping[str, tuple[np.ndarray, str]] | None = None,
) -> gpd.GeoDataFrame:
    """:func:`vectorize_mask` with the statistics given only at the mask's pixels.

    Same result as ``vectorize_mask(mask, stats={k: full[k]})`` when each value array here
    is ``full[k][mask]`` (1-D, the mask's pixels in C order): the float rasters of a whole
    tile never have to exist, only their values inside the (usually small) mask.
    """
    for column, (_, how) in (reduce or {}).items():
        if how not in REDUCTIONS:
            raise ValueError(f"reduce '{column}': unknown reduction '{how}'; use one of {REDUCTIONS}.")
    mask = np.asarray(mask, dtype=bool)
    n_mask = int(np.count_nonzero(mask))
    for name, values in [*(stats or {}).items(), *((k, v) for k, (v, _) in (reduce or {}).items())]:
        if np.shape(values) != (n_mask,):
            raise ValueError(
                f"'{name}' holds {np.shape(values)} values for {n_mask} mask pixels; pass values[mask]."
            )
    labels, count = ndimage.label(mask, structure=np.ones((3, 3), dtype=int))
    slices = ndimage.find_objects(labels) if count else []

    def window(i: int) -> tuple[tuple[slice, slice], np.ndarray]:
        sl = slices[i - 1]
        return (sl[0], sl[1]), labels[sl] == i

    return frame_from_components(
        labels[mask],
        count,
        window,
        shape=(int(mask.shape[0]), int(mask.shape[1])),
        transform=transform,
        crs=crs,
        area_crs=area_crs,
        min_area_ha=min_area_ha,
        stats=stats,
        reduce=reduce,
    )


def frame_from_components(
    mask_labels: np.ndarray,
    count: int,
    window: Callable[[int], tuple[tuple[slice, slice], np.ndarray]],
    *,
    shape: tuple[int, int],
    transform: Affine,
    crs: CRS,
    area_crs: CRS,
    min_area_ha: float,
    stats: Mapping[str, np.ndarray] | None,
    reduce: Mapping[str, tuple[np.ndarray, str]] | None,
) -> gpd.GeoDataFrame:
    """Polygons, areas and statistics of labelled components.

    ``mask_labels`` is the label (1..count) of each mask pixel in C order, the value
    arrays are at the same pixels, and ``window(i)`` gives component ``i``'s bounding box
    and its boolean footprint inside it.
    """
    for column, (_, how) in (reduce or {}).items():
        if how not in REDUCTIONS:
            raise ValueError(f"reduce '{column}': unknown reduction '{how}'; use one of {REDUCTIONS}.")
    columns = ["component", "area_ha", "n_pixels"]
    for k in stats or {}:
        columns += [f"mean_{k}", f"median_{k}"]
    columns += list(reduce or {})
    # labels of the mask's pixels only: bincount of a full label raster would cast all of
    # it to int64 (1 GB on a Sentinel-2 tile)
    n_all = np.bincount(mask_labels, minlength=count + 1)[1:]
    px_ha = _pixel_area_ha(transform, crs, area_crs, shape) if count else 0.0
    index = np.flatnonzero(n_all * px_ha >= _PREFILTER_MARGIN * min_area_ha) + 1
    if index.size == 0:
        return gpd.GeoDataFrame({c: [] for c in columns}, geometry=[], crs=WGS84)
    polys = []
    for i in index:
        (rows, cols), footprint = window(int(i))
        local = transform * Affine.translation(cols.start, rows.start)
        parts = [
            shape_of(g)
            for g, _ in rasterio.features.shapes(
                footprint.astype(np.uint8), mask=footprint, transform=local, connectivity=8
            )
        ]
        polys.append(parts[0] if len(parts) == 1 else unary_union(parts))
    frame = gpd.GeoDataFrame({"component": index, "n_pixels": n_all[index - 1]}, geometry=polys, crs=crs)
    frame["area_ha"] = frame.to_crs(area_crs).area.to_numpy() / 1e4
    keep = frame["area_ha"].to_numpy() >= min_area_ha
    # per-pixel statistics only over the components that survive the MMU
    lut = np.zeros(count + 1, dtype=np.int32)
    lut[index[keep]] = np.arange(1, keep.sum() + 1)
    frame = frame[keep].reset_index(drop=True)
    n_keep = len(frame)
    slot = lut[mask_labels]
    inside = slot > 0
    lab = slot[inside]
    for name, values in (stats or {}).items():
        arr = np.asarray(values)[inside].astype(np.float64)
        valid = ~np.isnan(arr)
        sums = np.bincount(lab[valid], weights=arr[valid], minlength=n_keep + 1)[1:]
        counts = np.bincount(lab[valid], minlength=n_keep + 1)[1:]
        with np.errstate(invalid="ignore", divide="ignore"):
            frame[f"mean_{name}"] = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
        medians = pd.Series(arr[valid]).groupby(lab[valid]).median()
        frame[f"median_{name}"] = medians.reindex(np.arange(1, n_keep + 1)).to_numpy()
    for column, (values, how) in (reduce or {}).items():
        arr = np.asarray(values)[inside].astype(np.float64)
        grouped = pd.Series(arr).groupby(lab).agg(how)
        frame[column] = grouped.reindex(np.arange(1, n_keep + 1)).to_numpy()
    if frame.empty:
        return gpd.GeoDataFrame({c: [] for c in columns}, geometry=[], crs=WGS84)
    return frame.to_crs(WGS84)[[*columns, "geometry"]].reset_index(drop=True)
