"""Lazy image windows around flags, for the before/after chips of the buyer map."""

from __future__ import annotations

import math

import geopandas as gpd
import numpy as np
import xarray as xr

RGB = ("B04", "B03", "B02")


def flag_windows(
    cube: xr.Dataset,
    flags: gpd.GeoDataFrame,
    *,
    min_px: int = 32,
    max_px: int = 120,
) -> dict[str, xr.DataArray]:
    """RGB windows ``("time", "y", "x", "band")`` around each flag's footprint (lazy).

    Parameters
    ----------
    cube
        Reflectance with ``B04``, ``B03``, ``B02`` on one grid (``rio.crs``), dims
        ``("time", "y", "x")``.
    flags
        Flags (any CRS) with ``flag_id``; flags outside the cube get no window.
    min_px, max_px
        Window edge in pixels: at least ``min_px`` (context around small scars), at most
        ``max_px`` (larger footprints are subsampled, not cut).
    """
    if flags.empty or not all(b in cube for b in RGB):
        return {}
    rgb = xr.concat([cube[b] for b in RGB], dim="band").transpose("time", "y", "x", "band")
    xs, ys = cube["x"].values, cube["y"].values
    res = float(abs(xs[1] - xs[0])) if xs.size > 1 else 10.0
    out: dict[str, xr.DataArray] = {}
    for fid, geom in zip(flags["flag_id"], flags.to_crs(cube.rio.crs).geometry, strict=True):
        if geom is None or geom.is_empty:
            continue
        minx, miny, maxx, maxy = geom.bounds
        cx, cy = (minx + maxx) / 2, (miny + maxy) / 2
        half = max(maxx - minx, maxy - miny, min_px * res) / 2 * 1.2
        ix = np.flatnonzero((xs >= cx - half) & (xs <= cx + half))
        iy = np.flatnonzero((ys >= cy - half) & (ys <= cy + half))
        if ix.size < 2 or iy.size < 2:
            continue
        step = max(1, math.ceil(max(ix.size, iy.size) / max_px))
        out[str(fid)] = rgb.isel(x=slice(ix[0], ix[-1] + 1, step), y=slice(iy[0], iy[-1] + 1, step))
    return out
