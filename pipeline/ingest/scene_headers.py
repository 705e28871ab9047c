"""File headers of local scenes, and the AOI grid the scenes are read onto.

A header is read once, eagerly, so a missing, truncated or unnamed file fails before any
lazy graph is built; the grid keeps the files' own pixels when they already lie in the
AOI's UTM zone, so nothing is resampled that need not be.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.errors import RasterioIOError

from pipeline.core.errors import RasterError
from pipeline.core.geometry import utm_crs_for
from pipeline.core.records import Aoi
from pipeline.ingest.grid import GridSpec, check_complete
from pipeline.ingest.scene_spec import DEFAULT_RESOLUTION_M, SceneSpec

#: What one header read depends on: the file and the band names the scene gives it.
HeaderKey = tuple[Path, tuple[str, ...]]


@dataclass(frozen=True)
class FileHeader:
    """What the header of one file says (read once, eagerly, to fail early and clearly)."""

    path: Path
    names: tuple[str, ...]
    crs: Any
    bounds: tuple[float, float, float, float]
    res: tuple[float, float]
    transform: Any
    block: tuple[int, int]
    nodata: float | None
    dtype: str
    scales: tuple[float, ...]
    offsets: tuple[float, ...]


def read_header(path: Path, *, names: Sequence[str] = ()) -> FileHeader:
    """Read the header of one scene file; ``names`` are its band names when the index gives them.

    Raises
    ------
    RasterError
        The file is missing, truncated or not a GeoTIFF, or ``names`` does not match its
        band count.
    """
    try:
        with rasterio.open(path) as src:
            check_complete(src, path)
            tags = src.tags()
            file_scales = [float(s) for s in src.scales]
            file_offsets = [float(o) for o in src.offsets]
            if all(s == 1.0 for s in file_scales) and "scale_factor" in tags:
                file_scales = [float(tags["scale_factor"])] * src.count
            if all(o == 0.0 for o in file_offsets) and "add_offset" in tags:
                file_offsets = [float(tags["add_offset"])] * src.count
            descriptions = tuple(d or "" for d in src.descriptions)
            if names and len(names) != src.count:
                raise RasterError(
                    f"{path} has {src.count} bands but the scene index names {len(names)} ({list(names)}). "
                    "Fix 'band_names' in the index."
                )
            return FileHeader(
                path=path,
                names=tuple(names) or descriptions,
                crs=src.crs,
                bounds=tuple(src.bounds),
                res=src.res,
                transform=src.transform,
                block=src.block_shapes[0],
                nodata=src.nodata,
                dtype=src.dtypes[0],
                scales=tuple(file_scales),
                offsets=tuple(file_offsets),
            )
    except RasterioIOError as exc:
        raise RasterError(
            f"Scene file {path} cannot be read ({exc}). It is missing, truncated or not a GeoTIFF: "
            "download it again."
        ) from exc


def _aoi_bounds(aoi: Aoi, crs: Any) -> tuple[float, float, float, float]:
    b = aoi.to_frame().to_crs(crs).total_bounds
    return float(b[0]), float(b[1]), float(b[2]), float(b[3])


def aoi_grid(aoi: Aoi, *, resolution: float, anchor: tuple[float, float] = (0.0, 0.0)) -> GridSpec:
    """The AOI's UTM grid at ``resolution`` metres, edges on ``anchor`` + k x resolution."""
    crs = utm_crs_for(aoi.geometry)
    return GridSpec.covering(
        _aoi_bounds(aoi, crs), crs=crs, resolution=(resolution, resolution), anchor=anchor
    )


def header_key(spec: SceneSpec, *, path: Path) -> HeaderKey:
    """A file and the band names the scene gives it: what one header read depends on."""
    return path, spec.band_names if path == spec.path else ()


def choose_grid(aoi: Aoi, *, headers: Sequence[FileHeader], resolution: float | None) -> GridSpec:
    """The grid to read the scenes onto: the files' own pixels when all lie in the AOI's UTM
    zone at one resolution and none was asked for, else :func:`aoi_grid` at ``resolution``
    (default 10 m)."""
    crs = utm_crs_for(aoi.geometry)
    native = [h for h in headers if h.crs is not None and rasterio.crs.CRS.from_user_input(h.crs) == crs]
    if resolution is None and headers and len(native) == len(headers):
        # every file already in the AOI's zone: keep its pixels (no resampling at all)
        first = native[0]
        if all(np.allclose(h.res, first.res) for h in native):
            anchor = (first.transform.c, first.transform.f)
            return GridSpec.covering(_aoi_bounds(aoi, crs), crs=crs, resolution=first.res, anchor=anchor)
    return aoi_grid(aoi, resolution=resolution or DEFAULT_RESOLUTION_M)
