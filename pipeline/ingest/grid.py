"""The output pixel grid of an AOI and the lazy, block-wise reader onto it.

Every source returns its cube on one grid per AOI: the AOI's UTM CRS, a fixed resolution,
bounds snapped outwards to whole pixels. A file already on that grid is read window by
window (no resampling); any other file goes through a ``WarpedVRT`` per chunk. Reads happen
only when dask computes a chunk, each chunk opens the file itself (``lock=False``: rasterio
datasets are not shared between threads), so the graph pickles to distributed workers.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import rasterio
from affine import Affine
from dask.base import tokenize
from pyproj import CRS
from rasterio.enums import MaskFlags, Resampling
from rasterio.errors import RasterioError
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from pipeline.core.errors import RasterError

#: GDAL settings applied around every chunk read (so they hold on every dask worker too).
GDAL_ENV: dict[str, Any] = {
    "GDAL_CACHEMAX": 256,  # MB per worker process
    "GDAL_NUM_THREADS": "1",  # dask already runs one read per core
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    "VSI_CACHE": "TRUE",
}


@dataclass(frozen=True, kw_only=True)
class GridSpec:
    """A north-up pixel grid: CRS, affine transform and size (pixels)."""

    crs: CRS
    """Projected CRS of the grid (the AOI's UTM zone)."""
    transform: Affine
    """Pixel-corner affine transform, metres."""
    width: int
    """Columns."""
    height: int
    """Rows."""

    @property
    def resolution(self) -> tuple[float, float]:
        """(x, y) pixel size in CRS units, both positive."""
        return abs(self.transform.a), abs(self.transform.e)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(left, bottom, right, top) in the grid CRS."""
        left, top = self.transform.c, self.transform.f
        return left, top + self.transform.e * self.height, left + self.transform.a * self.width, top

    def coords(self) -> tuple[np.ndarray, np.ndarray]:
        """Pixel-centre coordinates (y, x) in the grid CRS."""
        t = self.transform
        xs = t.c + t.a * (np.arange(self.width) + 0.5)
        ys = t.f + t.e * (np.arange(self.height) + 0.5)
        return ys, xs

    @classmethod
    def covering(
        cls,
        bounds: tuple[float, float, float, float],
        *,
        crs: CRS,
        resolution: tuple[float, float],
        anchor: tuple[float, float] = (0.0, 0.0),
    ) -> GridSpec:
        """Smallest grid with pixels of ``resolution`` whose edges fall on ``anchor`` + k x
        resolution and that covers ``bounds`` (left, bottom, right, top, in ``crs``)."""
        rx, ry = resolution
        ax, ay = anchor
        left = ax + math.floor((bounds[0] - ax) / rx + 1e-9) * rx
        right = ax + math.ceil((bounds[2] - ax) / rx - 1e-9) * rx
        bottom = ay + math.floor((bounds[1] - ay) / ry + 1e-9) * ry
        top = ay + math.ceil((bounds[3] - ay) / ry - 1e-9) * ry
        width = max(1, round((right - left) / rx))
        height = max(1, round((top - bottom) / ry))
        return cls(crs=crs, transform=Affine(rx, 0.0, left, 0.0, -ry, top), width=width, height=height)


@dataclass(frozen=True, kw_only=True)
class FileRead:
    """How to read some bands of one file onto a grid (picklable, no open handles)."""

    path: str
    """File path or GDAL URL."""
    indexes: tuple[int, ...]
    """1-based band indexes in the file, in output order."""
    scale: tuple[float, ...]
    """Per band: value = DN * scale + offset (1.0 / 0.0 for masks)."""
    offset: tuple[float, ...]
    nodata: float | None
    """The file's nodata value (read as NaN); None = every pixel inside the file is valid."""
    direct: tuple[int, int] | None
    """(col, row) of the grid origin in the file when the file is on the grid itself
    (same CRS, resolution and pixel edges): then no resampling at all."""
    resampling: str = "nearest"


def on_same_grid(crs: Any, transform: Affine, grid: GridSpec) -> tuple[int, int] | None:
    """(col, row) offset of ``grid`` inside a file of ``crs`` and ``transform`` (from its
    header) when they share CRS, resolution and pixel edges (within 1 % of a pixel), else None."""
    if crs is None or CRS.from_user_input(crs) != grid.crs:
        return None
    st, gt = transform, grid.transform
    if st.b != 0 or st.d != 0 or not np.allclose([st.a, st.e], [gt.a, gt.e], rtol=1e-6):
        return None
    col = (gt.c - st.c) / st.a
    row = (gt.f - st.f) / st.e
    if abs(col - round(col)) > 0.01 or abs(row - round(row)) > 0.01:
        return None
    return round(col), round(row)


def chunk_edges(length: int, *, chunk: int, block: int, shift: int) -> tuple[int, ...]:
    """Split ``length`` pixels into chunks of ``chunk`` (a multiple of ``block``) whose
    boundaries fall on the file's block boundaries (``shift`` = grid offset in the file), so
    no COG block is decoded by two chunks."""
    chunk = max(block, (chunk // block) * block)
    first = (chunk - shift % chunk) % chunk or chunk
    edges = []
    done = 0
    step = min(first, length)
    while done < length:
        edges.append(step)
        done += step
        step = min(chunk, length - done)
    return tuple(edges)


def read_window(spec: FileRead, grid: GridSpec, window: Window) -> np.ndarray:
    """Read ``window`` of ``grid`` from the file: float32 ``(band, y, x)``, NaN = no data.

    Raises
    ------
    RasterError
        The file cannot be read (truncated, corrupt, gone): the message names the file.
    """
    h, w = int(window.height), int(window.width)
    out = np.full((len(spec.indexes), h, w), np.nan, dtype=np.float32)
    try:
        with rasterio.Env(**GDAL_ENV), rasterio.open(spec.path) as src:
            if spec.direct is not None:
                c0 = spec.direct[0] + int(window.col_off)
                r0 = spec.direct[1] + int(window.row_off)
                cs, rs = max(c0, 0), max(r0, 0)
                ce, re_ = min(c0 + w, src.width), min(r0 + h, src.height)
                if ce <= cs or re_ <= rs:
                    return out
                win = Window(cs, rs, ce - cs, re_ - rs)
                dn = src.read(list(spec.indexes), window=win)
                valid = _valid_from_masks(src, spec, dn, win)
                ys, xs = slice(rs - r0, re_ - r0), slice(cs - c0, ce - c0)
            else:
                opts: dict[str, Any] = (
                    {"nodata": spec.nodata} if spec.nodata is not None else {"add_alpha": True}
                )
                with WarpedVRT(
                    src,
                    crs=grid.crs,
                    transform=grid.transform,
                    width=grid.width,
                    height=grid.height,
                    resampling=Resampling[spec.resampling],
                    **opts,
                ) as vrt:
                    dn = vrt.read(list(spec.indexes), window=window)
                    valid = vrt.read_masks(spec.indexes[0], window=window) > 0
                ys, xs = slice(0, h), slice(0, w)
    except RasterioError as exc:
        raise RasterError(
            f"Reading {spec.path} failed ({exc}). The file is truncated or corrupt: download it again."
        ) from exc
    if spec.nodata is not None and not math.isnan(spec.nodata):
        valid &= (dn != spec.nodata).all(axis=0)
    scale = np.asarray(spec.scale, dtype=np.float32)[:, None, None]
    offset = np.asarray(spec.offset, dtype=np.float32)[:, None, None]
    values = dn.astype(np.float32) * scale + offset
    out[:, ys, xs] = np.where(valid[None], values, np.float32(np.nan))
    return out


def _valid_from_masks(src: rasterio.DatasetReader, spec: FileRead, dn: np.ndarray, win: Window) -> np.ndarray:
    """Validity of a direct read. A nodata value is compared in memory; only a real mask
    (internal/.msk or alpha) is read from the file, since GDAL's nodata mask would decode
    every block a second time."""
    flags = src.mask_flag_enums[spec.indexes[0] - 1]
    if MaskFlags.per_dataset in flags or MaskFlags.alpha in flags:
        return np.asarray(src.read_masks(spec.indexes[0], window=win) > 0)
    return np.ones(dn.shape[1:], dtype=bool)


def _read_block(spec: FileRead, grid: GridSpec, block_info: dict[Any, Any] | None = None) -> np.ndarray:
    assert block_info is not None
    (_, _), (r0, r1), (c0, c1) = block_info[None]["array-location"]
    return read_window(spec, grid, Window(c0, r0, c1 - c0, r1 - r0))


def lazy_read(
    spec: FileRead,
    grid: GridSpec,
    *,
    chunks: int,
    block: tuple[int, int] = (256, 256),
) -> da.Array:
    """Dask array ``(band, y, x)`` float32 of the file on ``grid``; nothing is read yet.

    Chunks are multiples of the file's ``block`` (rows, cols) and, when the file is on the
    grid, start on its block boundaries.
    """
    shift_c, shift_r = spec.direct if spec.direct is not None else (0, 0)
    ych = chunk_edges(grid.height, chunk=chunks, block=block[0], shift=shift_r)
    xch = chunk_edges(grid.width, chunk=chunks, block=block[1], shift=shift_c)
    stamp = os.stat(spec.path).st_mtime_ns if os.path.exists(spec.path) else 0
    name = "read-" + tokenize(spec, grid, ych, xch, stamp)
    return da.map_blocks(
        _read_block,
        spec,
        grid,
        chunks=((len(spec.indexes),), ych, xch),
        dtype=np.float32,
        meta=np.empty((0, 0, 0), dtype=np.float32),
        name=name,
    )


def check_complete(src: rasterio.DatasetReader, path: Path | str) -> None:
    """Cheap truncation check of a local TIFF: the last block of the last band must end
    inside the file (reads only the header; a cut download fails here, not mid-run).

    Raises
    ------
    RasterError
        The file is shorter than its own block index says.
    """
    if src.driver != "GTiff" or not os.path.exists(path):
        return
    size = os.path.getsize(path)
    rows = math.ceil(src.height / src.block_shapes[0][0])
    cols = math.ceil(src.width / src.block_shapes[0][1])
    bands: Sequence[int] = (src.count,) if src.profile.get("interleave") == "band" else (1,)
    for bidx in bands:
        off = src.get_tag_item(f"BLOCK_OFFSET_{cols - 1}_{rows - 1}", "TIFF", bidx=bidx)
        length = src.get_tag_item(f"BLOCK_SIZE_{cols - 1}_{rows - 1}", "TIFF", bidx=bidx)
        if off and length and int(off) + int(length) > size:
            raise RasterError(
                f"{path} is truncated: its last block ends at byte {int(off) + int(length):,} but the "
                f"file has {size:,} bytes. Download or copy it again."
            )
