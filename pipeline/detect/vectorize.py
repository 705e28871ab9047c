"""Connected components of a mask -> polygons with area (ha) and evidence statistics.

Built for whole Sentinel-2 tiles (1.2e8 px): components are labelled once, components that
cannot reach the minimum mapping unit are dropped by pixel count before any polygon is
traced, each remaining component is traced inside its own bounding box, and per-polygon
statistics use ``np.bincount`` (one pass) rather than per-label loops.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import dask.array as da
import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio.features
from affine import Affine
from pyproj import CRS
from scipy import ndimage
from shapely.geometry import shape
from shapely.ops import unary_union

from pipeline.records import WGS84

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
    tile never have to exist, only their values inside the (usually small) mask, as
    :func:`gather_pieces` / :func:`assemble_pieces` collect them chunk by chunk.
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
    columns = ["component", "area_ha", "n_pixels"]
    for k in stats or {}:
        columns += [f"mean_{k}", f"median_{k}"]
    columns += list(reduce or {})
    labels, count = ndimage.label(mask, structure=np.ones((3, 3), dtype=int))
    # labels of the mask's pixels only: bincount of the full label raster would cast all of
    # it to int64 (1 GB on a Sentinel-2 tile)
    mask_labels = labels[mask]
    n_all = np.bincount(mask_labels, minlength=count + 1)[1:]
    px_ha = _pixel_area_ha(transform, crs, area_crs, mask.shape) if count else 0.0
    index = np.flatnonzero(n_all * px_ha >= _PREFILTER_MARGIN * min_area_ha) + 1
    if index.size == 0:
        return gpd.GeoDataFrame({c: [] for c in columns}, geometry=[], crs=WGS84)
    slices = ndimage.find_objects(labels)
    polys = []
    for i in index:
        sl = slices[i - 1]
        window = labels[sl] == i
        local = transform * Affine.translation(sl[1].start, sl[0].start)
        parts = [
            shape(g)
            for g, _ in rasterio.features.shapes(
                window.astype(np.uint8), mask=window, transform=local, connectivity=8
            )
        ]
        polys.append(parts[0] if len(parts) == 1 else unary_union(parts))
    del labels
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


# --- Block-wise reduction: what vectorising needs, collected chunk by chunk -----------------


@dataclass(frozen=True)
class Piece:
    """One chunk's share of a code raster reduced block by block (see :func:`gather_pieces`)."""

    row: int
    """First row of the chunk in the whole grid (px)."""
    col: int
    """First column of the chunk in the whole grid (px)."""
    codes: np.ndarray
    """The chunk of the uint8 code raster, ``(y, x)``."""
    counts: np.ndarray
    """Histogram of ``codes`` (256 bins, int64)."""
    values: dict[str, np.ndarray]
    """Name -> 1-D values at the chunk's pixels where ``codes & bits[name]`` is set, C order."""


def _piece_block(
    codes: np.ndarray,
    *arrays: np.ndarray,
    names: tuple[str, ...],
    bits: tuple[int, ...],
    block_info: dict[Any, Any] | None = None,
) -> np.ndarray:
    codes = np.asarray(codes, dtype=np.uint8)
    (r0, _), (c0, _) = block_info[0]["array-location"] if block_info else ((0, 0), (0, 0))
    selected: dict[int, np.ndarray] = {}
    values = {}
    for name, b, arr in zip(names, bits, arrays, strict=True):
        if b not in selected:
            selected[b] = (codes & np.uint8(b)) != 0
        values[name] = np.asarray(arr)[selected[b]]
    counts = np.bincount(codes.ravel(), minlength=256).astype(np.int64)
    out = np.empty((1, 1), dtype=object)
    out[0, 0] = Piece(row=int(r0), col=int(c0), codes=codes, counts=counts, values=values)
    return out


def gather_pieces(codes: Any, values: Mapping[str, tuple[Any, int]]) -> Any:
    """Per chunk: the uint8 code raster, its histogram and the values of other rasters at
    selected pixels, lazily for dask.

    The big float rasters of a tile (indices, probabilities, dates) are reduced inside
    each chunk's task to the few pixels that vectorising needs, so only the uint8 codes
    (1 byte / px) and those values ever reach the caller.

    Parameters
    ----------
    codes
        2-D uint8 array ``(y, x)``, numpy or dask; bit flags and/or small class codes.
    values
        Name -> ``(array, bits)``: arrays on the same grid (and chunks), gathered where
        ``codes & bits`` is non-zero.

    Returns
    -------
    numpy or dask array of dtype object
        One :class:`Piece` per chunk, shape ``(n_row_chunks, n_col_chunks)`` (``(1, 1)``
        for numpy input). Compute it, then :func:`assemble_pieces`.
    """
    names = tuple(values)
    bits = tuple(int(b) for _, b in values.values())
    if any(not 0 < b < 256 for b in bits):
        raise ValueError(f"bits must select uint8 flags (1..255), got {bits}.")
    arrays = [a for a, _ in values.values()]
    if not isinstance(codes, da.Array):
        return _piece_block(np.asarray(codes), *[np.asarray(a) for a in arrays], names=names, bits=bits)
    arrays = [da.asarray(a).rechunk(codes.chunks) for a in arrays]
    return da.map_blocks(
        _piece_block,
        codes,
        *arrays,
        names=names,
        bits=bits,
        chunks=tuple((1,) * len(c) for c in codes.chunks),
        dtype=object,
        meta=np.empty((0, 0), dtype=object),
    )


@dataclass(frozen=True)
class Assembled:
    """Computed pieces put back together (see :func:`assemble_pieces`)."""

    codes: np.ndarray
    """The whole uint8 code raster ``(y, x)``."""
    counts: np.ndarray
    """Histogram of ``codes`` (256 bins)."""
    values: dict[str, np.ndarray]
    """Name -> values at ``codes & bits != 0`` in the whole grid's C order: exactly
    ``full_array[(codes & bits) != 0]``."""


def assemble_pieces(pieces: np.ndarray, *, bits: Mapping[str, int]) -> Assembled:
    """Whole code raster and globally ordered values from computed :func:`gather_pieces`.

    ``bits`` is the same name -> bits mapping given to :func:`gather_pieces`.
    """
    flat = [p for p in np.asarray(pieces, dtype=object).ravel()]
    height = max(p.row + p.codes.shape[0] for p in flat)
    width = max(p.col + p.codes.shape[1] for p in flat)
    codes = np.empty((height, width), dtype=np.uint8)
    for p in flat:
        codes[p.row : p.row + p.codes.shape[0], p.col : p.col + p.codes.shape[1]] = p.codes
    order: dict[int, np.ndarray] = {}
    for b in set(bits.values()):
        # position of every gathered pixel in the whole grid; sorting by it restores the
        # C order a whole-array gather would give (so sums add up in the same order)
        where = []
        for p in flat:
            local = np.flatnonzero((p.codes & np.uint8(b)) != 0)
            rows, cols = np.divmod(local, p.codes.shape[1])
            where.append((rows + p.row) * width + (cols + p.col))
        order[b] = np.argsort(np.concatenate(where) if where else np.empty(0, np.int64), kind="stable")
    values = {name: np.concatenate([p.values[name] for p in flat])[order[b]] for name, b in bits.items()}
    counts = np.sum([p.counts for p in flat], axis=0)
    return Assembled(codes=codes, counts=counts, values=values)
