"""Open one local scene lazily on a grid: its bands as float32 reflectance (or mask classes).

The headers say where each band lives and how to scale it; the pixels are read block by block
only when the cube is computed (:func:`pipeline.ingest.grid.lazy_read`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import rioxarray  # noqa: F401  (registers the .rio accessor on the returned Dataset)
import xarray as xr
from rasterio.warp import transform_bounds

from pipeline.core.errors import NoDataError, RasterError
from pipeline.core.records import Aoi
from pipeline.ingest.grid import FileRead, GridSpec, lazy_read, on_same_grid
from pipeline.ingest.scene_headers import FileHeader, HeaderKey, choose_grid, header_key, read_header
from pipeline.ingest.scene_spec import MASK_BANDS, SceneSpec

log = logging.getLogger(__name__)


def _scale_offset(spec: SceneSpec, head: FileHeader, band: str, index: int) -> tuple[float, float]:
    """Index value first, then the file's own scale/offset; integer DN without either are
    Sentinel-2 style x 10000."""
    if band in MASK_BANDS:
        return 1.0, 0.0
    scale = spec.scale if spec.scale is not None else head.scales[index - 1]
    if spec.scale is None and scale == 1.0 and np.issubdtype(np.dtype(head.dtype), np.integer):
        scale = 1e-4
    offset = spec.offset if spec.offset is not None else head.offsets[index - 1]
    return float(scale), float(offset)


def _file_reads(
    spec: SceneSpec, bands: Sequence[str], headers: Mapping[Path, FileHeader], grid: GridSpec
) -> list[tuple[FileRead, tuple[str, ...], tuple[int, int]]]:
    """Group the wanted bands by the file they live in: one read per file and chunk."""
    per_file: dict[Path, list[tuple[str, int]]] = {}
    for band in bands:
        if band in spec.band_paths:
            per_file.setdefault(spec.band_paths[band], []).append((band, 1))
            continue
        head = headers.get(spec.path) if spec.path is not None else None
        if head is None or band not in head.names:
            have = sorted({*spec.band_paths, *(head.names if head else ())} - {""})
            raise RasterError(
                f"Scene {spec.scene_id} lacks band {band!r}; it has {have}. Name the bands in the "
                "file's descriptions or give 'band_names' / 'bands' in the scene index."
            )
        assert spec.path is not None
        per_file.setdefault(spec.path, []).append((band, head.names.index(band) + 1))
    out = []
    for path, wanted in per_file.items():
        head = headers[path]
        idx = tuple(i for _, i in wanted)
        names = tuple(b for b, _ in wanted)

        pairs = [_scale_offset(spec, head, b, i) for b, i in wanted]
        scale, offset = tuple(p[0] for p in pairs), tuple(p[1] for p in pairs)
        direct = on_same_grid(head.crs, head.transform, grid)
        read = FileRead(
            path=str(path), indexes=idx, scale=scale, offset=offset, nodata=head.nodata, direct=direct
        )
        out.append((read, names, head.block))
    return out


def _check_scene(spec: SceneSpec, headers: Mapping[Path, FileHeader], grid: GridSpec, aoi: Aoi) -> None:
    for path in spec.files:
        head = headers[path]
        if head.crs is None:
            raise RasterError(
                f"Scene {spec.scene_id}: {path} has no CRS. Set it, e.g. "
                "`gdal_edit.py -a_srs EPSG:32721 FILE`, or rewrite it with rio.write_crs()."
            )
        gl, gb, gr, gt = transform_bounds(grid.crs, head.crs, *grid.bounds, densify_pts=21)
        sl, sb, sr, st = head.bounds
        if min(gr, sr) <= max(gl, sl) or min(gt, st) <= max(gb, sb):
            raise NoDataError(
                f"Scene {spec.scene_id} ({path}, bounds {tuple(round(v, 4) for v in head.bounds)} in "
                f"{head.crs}) does not overlap AOI '{aoi.aoi_id}'. Check the scene index or the AOI geometry."
            )


def open_scene(
    spec: SceneSpec,
    aoi: Aoi,
    *,
    bands: Sequence[str],
    grid: GridSpec | None = None,
    resolution: float | None = None,
    chunks: int = 512,
    headers: Mapping[HeaderKey, FileHeader] | None = None,
) -> xr.Dataset:
    """Open one scene lazily on the AOI's UTM grid (or ``grid``).

    ``headers`` are file headers the caller already read, keyed by :func:`header_key`
    (the others are read here).

    Returns
    -------
    xr.Dataset
        One float32 variable per band, dims ``("time", "y", "x")`` with time of length 1,
        coords ``scene_id``, ``scale``, ``offset`` along time; NaN where there is no data.

    Raises
    ------
    RasterError
        Unreadable, truncated or corrupt file, missing CRS, or missing bands (the message
        lists the bands the scene has).
    NoDataError
        The scene does not overlap the AOI.
    """
    known = headers or {}
    heads = {}
    for p in spec.files:
        key = header_key(spec, path=p)
        heads[p] = known[key] if key in known else read_header(p, names=key[1])
    if grid is None:
        grid = choose_grid(aoi, headers=list(heads.values()), resolution=resolution)
    _check_scene(spec, heads, grid, aoi)
    ys, xs = grid.coords()
    data: dict[str, xr.DataArray] = {}
    scales: dict[str, float] = {}
    offsets: dict[str, float] = {}
    for read, names, block in _file_reads(spec, bands, heads, grid):
        arr = lazy_read(read, grid, chunks=chunks, block=block)
        for i, name in enumerate(names):
            scales[name], offsets[name] = read.scale[i], read.offset[i]
            data[name] = xr.DataArray(
                arr[i][None],
                dims=("time", "y", "x"),
                attrs={"units": "class" if name in MASK_BANDS else "reflectance (0-1)"},
            )
    when = np.datetime64(spec.datetime, "ns") if spec.datetime else np.datetime64("NaT", "ns")
    refl = [b for b in bands if b not in MASK_BANDS]
    ds = xr.Dataset(
        {b: data[b] for b in bands},
        coords={
            "time": [when],
            "y": ys,
            "x": xs,
            "scene_id": ("time", [spec.scene_id]),
            "scale": ("time", [scales[refl[0]] if refl else math.nan]),
            "offset": ("time", [offsets[refl[0]] if refl else math.nan]),
        },
    )
    ds = ds.rio.write_crs(grid.crs).rio.write_transform(grid.transform)
    ds.attrs.update({"resolution_m": grid.resolution[0], "scales": str(scales), "offsets": str(offsets)})
    # one line per scene and per load: detail for -v, not the night's summary
    log.debug(
        "scene %s: %dx%d px on %s, bands %s, scale %s offset %s",
        spec.scene_id,
        grid.width,
        grid.height,
        grid.crs.to_string(),
        list(bands),
        scales.get(refl[0]) if refl else None,
        offsets.get(refl[0]) if refl else None,
    )
    return ds
