"""Block-wise reduction of a code raster: what vectorising a whole tile needs, chunk by chunk.

Each chunk's task reduces its rasters to a :class:`Piece`: the uint8 codes' histogram, the
values of other rasters at the selected (usually few) pixels, and for each mask bit the
chunk's own 8-connected component labels at those pixels plus the labels along its four
edges. :func:`assemble_pieces` restores the whole grid's C order, joins components that
touch across chunk seams (edges and corners) with a union-find over the edge labels, and
numbers components in raster-scan order of their first pixel, exactly like
``scipy.ndimage.label`` of the whole mask. :func:`vectorize_labelled` then traces each
component from its own pixel coordinates: no whole-tile label (int32) or float raster is
ever built.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import dask.array as da
import geopandas as gpd
import numpy as np
from affine import Affine
from pyproj import CRS
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from pipeline.detect.vectorize import frame_from_components

_EIGHT = np.ones((3, 3), dtype=bool)


@dataclass(frozen=True)
class Piece:
    """One chunk's share of a code raster reduced block by block (see :func:`gather_pieces`)."""

    row: int
    """First row of the chunk in the whole grid (px)."""
    col: int
    """First column of the chunk in the whole grid (px)."""
    shape: tuple[int, int]
    """Chunk shape ``(y, x)`` in px."""
    counts: np.ndarray
    """Histogram of the chunk's uint8 codes (256 bins, int64)."""
    bits: dict[str, int]
    """Name -> the code bits that select its pixels."""
    values: dict[str, np.ndarray]
    """Name -> 1-D values at the chunk's pixels where ``codes & bits[name]`` is set, C order."""
    local: dict[int, np.ndarray]
    """Flat (C order) index in the chunk of each selected pixel, per distinct ``bits``."""
    labels: dict[int, tuple[int, np.ndarray, tuple[np.ndarray, ...]]]
    """Mask bit -> (number of chunk-local components, local label of each pixel selected by
    ``label_within[bit]``, labels along the (top, bottom, left, right) edges)."""


def make_piece(
    codes: np.ndarray,
    arrays: Mapping[str, tuple[np.ndarray, int]],
    *,
    label: Mapping[int, int] | None = None,
    row: int = 0,
    col: int = 0,
) -> np.ndarray:
    """The :class:`Piece` of one chunk (in a ``(1, 1)`` object array, i.e. a dask block).

    ``arrays`` maps name -> ``(array, bits)``, gathered where ``codes & bits`` is set;
    ``label`` maps a mask bit -> the gather bits its labels are reported at (a superset).
    """
    codes = np.asarray(codes, dtype=np.uint8)
    selected: dict[int, np.ndarray] = {}
    for b in {*(b for _, b in arrays.values()), *(label or {}).values()}:
        selected[b] = (codes & np.uint8(b)) != 0
    values = {name: np.asarray(arr)[selected[b]] for name, (arr, b) in arrays.items()}
    labels: dict[int, tuple[int, np.ndarray, tuple[np.ndarray, ...]]] = {}
    for bit, within in (label or {}).items():
        lab, n = ndimage.label((codes & np.uint8(bit)) != 0, structure=_EIGHT)
        edges = (lab[0].copy(), lab[-1].copy(), lab[:, 0].copy(), lab[:, -1].copy())
        labels[bit] = (int(n), lab[selected[within]], edges)
    piece = Piece(
        row=row,
        col=col,
        shape=(int(codes.shape[0]), int(codes.shape[1])),
        counts=np.bincount(codes.ravel(), minlength=256).astype(np.int64),
        bits={k: b for k, (_, b) in arrays.items()},
        values=values,
        local={b: np.flatnonzero(m) for b, m in selected.items()},
        labels=labels,
    )
    out = np.empty((1, 1), dtype=object)
    out[0, 0] = piece
    return out


def _piece_block(
    codes: np.ndarray,
    *arrays: np.ndarray,
    names: tuple[str, ...],
    bits: tuple[int, ...],
    label: tuple[tuple[int, int], ...],
    block_info: dict[Any, Any] | None = None,
) -> np.ndarray:
    (r0, _), (c0, _) = block_info[0]["array-location"] if block_info else ((0, 0), (0, 0))
    named = dict(zip(names, zip(arrays, bits, strict=True), strict=True))
    return make_piece(codes, named, label=dict(label), row=int(r0), col=int(c0))


def gather_pieces(
    codes: Any, values: Mapping[str, tuple[Any, int]], *, label: Mapping[int, int] | None = None
) -> Any:
    """Per chunk: the uint8 codes' histogram, the values of other rasters at selected
    pixels and the chunk's component labels, lazily for dask.

    Parameters
    ----------
    codes
        2-D uint8 array ``(y, x)``, numpy or dask; bit flags and/or small class codes.
    values
        Name -> ``(array, bits)``: arrays on the same grid (and chunks), gathered where
        ``codes & bits`` is non-zero.
    label
        Mask bit -> gather bits: label the 8-connected components of ``codes & bit`` and
        report them at the pixels the gather bits select (they must include the mask).

    Returns
    -------
    numpy or dask array of dtype object
        One :class:`Piece` per chunk, shape ``(n_row_chunks, n_col_chunks)`` (``(1, 1)``
        for numpy input). Compute it, then :func:`assemble_pieces`.
    """
    names = tuple(values)
    bits = tuple(int(b) for _, b in values.values())
    pairs = tuple((int(k), int(v)) for k, v in (label or {}).items())
    if any(not 0 < b < 256 for b in (*bits, *(x for p in pairs for x in p))):
        raise ValueError(f"bits must select uint8 flags (1..255), got {bits} and labels {pairs}.")
    arrays = [a for a, _ in values.values()]
    if not isinstance(codes, da.Array):
        return make_piece(np.asarray(codes), dict(values), label=dict(pairs))
    arrays = [da.asarray(a).rechunk(codes.chunks) for a in arrays]
    return da.map_blocks(
        _piece_block,
        codes,
        *arrays,
        names=names,
        bits=bits,
        label=pairs,
        chunks=tuple((1,) * len(c) for c in codes.chunks),
        dtype=object,
        meta=np.empty((0, 0), dtype=object),
    )


@dataclass(frozen=True)
class Assembled:
    """Computed pieces put back together (see :func:`assemble_pieces`)."""

    shape: tuple[int, int]
    """Whole grid ``(y, x)`` in px."""
    counts: np.ndarray
    """Histogram of the codes (256 bins)."""
    values: dict[str, np.ndarray]
    """Name -> values at ``codes & bits != 0`` in the whole grid's C order: exactly
    ``full_array[(codes & bits) != 0]``."""
    positions: dict[int, np.ndarray]
    """Bits -> flat C-order index in the whole grid of each selected pixel (ascending)."""
    labels: dict[int, np.ndarray]
    """Mask bit -> component label (1..n, numbered like ``ndimage.label`` of the whole
    mask; 0 = not in the mask) of each pixel the label's gather bits select."""


def _seam_pairs(grid: list[list[Any]], bit: int, offsets: dict[tuple[int, int], int]) -> np.ndarray:
    """(global label, global label) pairs that touch across chunk seams (8-connectivity)."""
    pairs = []

    def link(a: np.ndarray, b: np.ndarray, oa: int, ob: int) -> None:
        ok = (a > 0) & (b > 0)
        if ok.any():
            pairs.append(np.column_stack([a[ok] + oa, b[ok] + ob]))

    rows, cols = len(grid), len(grid[0])
    for i in range(rows):
        for j in range(cols):
            p = grid[i][j]
            _, bottom, _, right = p.labels[bit][2]
            o = offsets[i, j]
            if j + 1 < cols:  # right neighbour: row r touches rows r-1, r, r+1
                q_left = grid[i][j + 1].labels[bit][2][2]
                oq = offsets[i, j + 1]
                link(right, q_left, o, oq)
                link(right[1:], q_left[:-1], o, oq)
                link(right[:-1], q_left[1:], o, oq)
            if i + 1 < rows:  # neighbour below: column c touches columns c-1, c, c+1
                q_top = grid[i + 1][j].labels[bit][2][0]
                oq = offsets[i + 1, j]
                link(bottom, q_top, o, oq)
                link(bottom[1:], q_top[:-1], o, oq)
                link(bottom[:-1], q_top[1:], o, oq)
            if i + 1 < rows and j + 1 < cols:  # corners: diagonal neighbours
                link(bottom[-1:], grid[i + 1][j + 1].labels[bit][2][0][:1], o, offsets[i + 1, j + 1])
            if i + 1 < rows and j > 0:
                link(bottom[:1], grid[i + 1][j - 1].labels[bit][2][0][-1:], o, offsets[i + 1, j - 1])
    return np.concatenate(pairs) if pairs else np.empty((0, 2), dtype=np.int64)


def assemble_pieces(pieces: np.ndarray, *, label_within: Mapping[int, int] | None = None) -> Assembled:
    """Globally ordered values and whole-mask component labels from computed pieces.

    ``label_within`` is the ``label`` mapping given to :func:`gather_pieces`.
    """
    grid_arr = np.asarray(pieces, dtype=object)
    if grid_arr.ndim != 2:
        grid_arr = grid_arr.reshape(1, 1)
    grid = [[grid_arr[i, j] for j in range(grid_arr.shape[1])] for i in range(grid_arr.shape[0])]
    flat = [p for r in grid for p in r]
    bits = flat[0].bits
    height = sum(r[0].shape[0] for r in grid)
    width = sum(p.shape[1] for p in grid[0])
    order: dict[int, np.ndarray] = {}
    positions: dict[int, np.ndarray] = {}
    for b in flat[0].local:
        # restore the C order a whole-array gather would give (so sums add up in the same
        # order): within one row of chunks, pixels concatenated chunk by chunk are in C order
        # once stably sorted by their row alone (a radix sort on uint16 rows)
        orders, where, start = [], [], 0
        for band in grid:
            rows, pos = [], []
            for p in band:
                r, c = np.divmod(p.local[b], p.shape[1])
                rows.append(r)
                pos.append((r + p.row) * width + (c + p.col))
            key = np.concatenate(rows)
            by_row = np.argsort(
                key.astype(np.uint16 if band[0].shape[0] <= 1 << 16 else np.int64), kind="stable"
            )
            orders.append(by_row + start)
            where.append(np.concatenate(pos)[by_row])
            start += len(key)
        order[b] = np.concatenate(orders)
        positions[b] = np.concatenate(where)
    values = {name: np.concatenate([p.values[name] for p in flat])[order[b]] for name, b in bits.items()}
    labels = {}
    for bit, within in (label_within or {}).items():
        offsets, total = {}, 0
        for i, r in enumerate(grid):
            for j, p in enumerate(r):
                offsets[i, j] = total
                total += p.labels[bit][0]
        pairs = _seam_pairs(grid, bit, offsets)
        graph = coo_matrix(
            (np.ones(len(pairs), dtype=np.int8), (pairs[:, 0], pairs[:, 1])), shape=(total + 1, total + 1)
        )
        _, root = connected_components(graph, directed=False)
        lab = np.concatenate(
            [
                np.where(p.labels[bit][1] > 0, p.labels[bit][1] + offsets[i, j], 0)
                for (i, j), p in _cells(grid)
            ]
        )[order[within]]
        comp = root[lab]
        # number components by their first pixel in raster-scan order, as ndimage.label does
        inside = lab > 0
        n_roots = int(root.max()) + 1 if len(root) else 1
        first = np.full(n_roots, np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(first, comp[inside], np.flatnonzero(inside))  # O(n), no sort of the pixels
        uniq = np.flatnonzero(first != np.iinfo(np.int64).max)
        rank = np.empty(len(uniq), dtype=np.int64)
        rank[np.argsort(first[uniq], kind="stable")] = np.arange(1, len(uniq) + 1)
        number = np.zeros(n_roots, dtype=np.int32)
        number[uniq] = rank
        labels[bit] = np.where(inside, number[comp], 0).astype(np.int32)
    counts = np.sum([p.counts for p in flat], axis=0)
    return Assembled(shape=(height, width), counts=counts, values=values, positions=positions, labels=labels)


def _cells(grid: list[list[Any]]) -> list[tuple[tuple[int, int], Any]]:
    return [((i, j), p) for i, r in enumerate(grid) for j, p in enumerate(r)]


def vectorize_labelled(
    labels: np.ndarray,
    positions: np.ndarray,
    *,
    shape: tuple[int, int],
    transform: Affine,
    crs: CRS,
    area_crs: CRS,
    min_area_ha: float,
    stats: Mapping[str, np.ndarray] | None = None,
    reduce: Mapping[str, tuple[np.ndarray, str]] | None = None,
) -> gpd.GeoDataFrame:
    """:func:`pipeline.detect.vectorize.vectorize_mask` from labelled mask pixels.

    Parameters
    ----------
    labels
        Component label (1..n, ``ndimage.label`` numbering) of each mask pixel, 1-D in the
        grid's C order.
    positions
        Flat C-order index of each of those pixels in the ``shape`` grid.
    stats, reduce
        As for ``vectorize_mask``, but 1-D values at the same pixels.

    Returns
    -------
    GeoDataFrame
        The rows ``vectorize_mask`` gives for the whole mask.
    """
    labels = np.asarray(labels)
    count = int(labels.max()) if labels.size else 0
    by_label = np.argsort(labels, kind="stable")
    starts = np.searchsorted(labels[by_label], np.arange(1, count + 2))
    rows, cols = np.divmod(np.asarray(positions)[by_label], shape[1])

    def window(i: int) -> tuple[tuple[slice, slice], np.ndarray]:
        r, c = rows[starts[i - 1] : starts[i]], cols[starts[i - 1] : starts[i]]
        r0, c0 = int(r.min()), int(c.min())
        win = np.zeros((int(r.max()) - r0 + 1, int(c.max()) - c0 + 1), dtype=bool)
        win[r - r0, c - c0] = True
        return (slice(r0, r0 + win.shape[0]), slice(c0, c0 + win.shape[1])), win

    return frame_from_components(
        labels,
        count,
        window,
        shape=shape,
        transform=transform,
        crs=crs,
        area_crs=area_crs,
        min_area_ha=min_area_ha,
        stats=stats,
        reduce=reduce,
    )


__all__: Sequence[str] = (
    "Assembled",
    "Piece",
    "assemble_pieces",
    "gather_pieces",
    "make_piece",
    "vectorize_labelled",
)
