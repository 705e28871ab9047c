"""Scene sources: one small protocol, several readers.

``SceneSource.load(aoi, period, *, bands, chunks) -> xr.Dataset`` returns one lazy variable
per band with dims ``("time", "y", "x")``, float32 reflectance 0-1 (scale and offset applied
per scene), nodata as NaN, and ``scene_id`` / acquisition ``time`` coordinates.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import rasterio
import rioxarray
import xarray as xr
from rasterio.errors import RasterioIOError
from rasterio.windows import from_bounds

from pipeline.errors import NoDataError, RasterError
from pipeline.ingest.paths import resolve_input
from pipeline.periods import Period
from pipeline.records import Aoi

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class SceneSpec:
    """One scene file of a local folder source (an index entry)."""

    path: Path
    """GeoTIFF / COG with one band per spectral band (band descriptions name them)."""
    scene_id: str
    """Stable id of the scene (product id or file stem)."""
    datetime: datetime | None = None
    """Acquisition time; None when the source did not record it."""
    scale: float = 1e-4
    """Reflectance = DN * scale + offset."""
    offset: float = 0.0
    """Per-scene offset (L2A processing baseline >= 04.00 carries BOA_ADD_OFFSET -0.1)."""

    @classmethod
    def from_mapping(cls, entry: dict[str, Any], *, root: Path) -> SceneSpec:
        """Build from an AOI ``inputs.scenes`` entry; ``path`` relative to ``root``."""
        path = resolve_input(str(entry["path"]), root=root)
        when = entry.get("datetime")
        return cls(
            path=path,
            scene_id=str(entry.get("scene_id") or path.stem),
            datetime=datetime.fromisoformat(when) if when else None,
            scale=float(entry.get("scale", 1e-4)),
            offset=float(entry.get("offset", 0.0)),
        )


class SceneSource(Protocol):
    """What every imagery source offers (local folder, Sentinel Hub, STAC)."""

    def load(
        self,
        aoi: Aoi,
        period: Period | None,
        *,
        bands: Sequence[str],
        chunks: int = 512,
    ) -> xr.Dataset:
        """Lazy reflectance cube for the AOI and period, dims ``("time", "y", "x")``."""
        ...


def _aligned_chunks(requested: int, block: int) -> int:
    """Round the chunk edge to a multiple of the file's block edge so no block is read twice."""
    return max(block, (requested // block) * block)


def open_scene(spec: SceneSpec, aoi: Aoi, *, bands: Sequence[str], chunks: int = 512) -> xr.Dataset:
    """Open one scene lazily, clipped to the AOI's bounding box.

    Returns
    -------
    xr.Dataset
        One float32 variable per band, dims ``("time", "y", "x")`` with time of length 1,
        in the scene's own CRS (``rio.crs``), NaN where the file has nodata.

    Raises
    ------
    RasterError
        Unreadable or corrupt file, missing CRS, or missing bands (the message lists the
        bands the file has).
    NoDataError
        The scene does not overlap the AOI.
    """
    try:
        with rasterio.open(spec.path) as src:
            names = list(src.descriptions)
            crs = src.crs
            block = src.block_shapes[0][0] if src.block_shapes else 256
            nodata = src.nodata
            aoi_bounds = tuple(aoi.to_frame().to_crs(crs).total_bounds) if crs else (0.0, 0.0, 0.0, 0.0)
            if crs is not None:
                window = from_bounds(*aoi_bounds, transform=src.transform).round_offsets().round_lengths()
                overlap = window.intersection(rasterio.windows.Window(0, 0, src.width, src.height))
                if overlap.width <= 0 or overlap.height <= 0:
                    raise NoDataError(
                        f"Scene {spec.scene_id} ({spec.path}) does not overlap AOI '{aoi.aoi_id}'. "
                        "Check the scene index or the AOI geometry."
                    )
    except RasterioIOError as exc:
        raise RasterError(
            f"Scene {spec.path} cannot be read ({exc}). The file is missing or corrupt: download it again."
        ) from exc
    except rasterio.errors.WindowError as exc:
        raise NoDataError(
            f"Scene {spec.scene_id} does not overlap AOI '{aoi.aoi_id}'. Check the scene index."
        ) from exc
    if crs is None:
        raise RasterError(
            f"Scene {spec.path} has no CRS. Set it, e.g. `gdal_edit.py -a_srs EPSG:32621 FILE`."
        )
    missing = [b for b in bands if b not in names]
    if missing:
        raise RasterError(
            f"Scene {spec.path} lacks bands {missing}; it has {names}. Name the bands in the "
            "file's descriptions or map them in the scene index."
        )
    edge = _aligned_chunks(chunks, block)
    arr = rioxarray.open_rasterio(spec.path, chunks={"band": 1, "y": edge, "x": edge}, lock=False)
    assert isinstance(arr, xr.DataArray)
    arr = arr.rio.clip_box(*aoi_bounds, allow_one_dimensional_raster=True)
    arr = arr.assign_coords(band=names)
    when = (
        np.datetime64(spec.datetime.replace(tzinfo=None), "ns")
        if spec.datetime
        else np.datetime64("NaT", "ns")
    )
    out = {}
    for name in bands:
        dn = arr.sel(band=name, drop=True)
        refl = dn.astype("float32") * np.float32(spec.scale) + np.float32(spec.offset)
        if nodata is not None:
            refl = refl.where(dn != nodata)
        out[name] = refl.expand_dims(time=[when]).astype("float32")
    ds = xr.Dataset(out)
    ds = ds.assign_coords(scene_id=("time", [spec.scene_id]))
    ds = ds.rio.write_crs(crs)
    ds.attrs.update(
        {"scale_applied": spec.scale, "offset_applied": spec.offset, "units": "reflectance (0-1)"}
    )
    log.info("scene %s: %s px, bands %s, chunks %d", spec.scene_id, dict(arr.sizes), list(bands), edge)
    return ds


class LocalFolderSource:
    """Scenes listed in an index (the AOI's ``inputs.scenes``), read lazily from disk."""

    def __init__(self, scenes: Sequence[SceneSpec]) -> None:
        self.scenes = list(scenes)

    def load(
        self,
        aoi: Aoi,
        period: Period | None,
        *,
        bands: Sequence[str],
        chunks: int = 512,
    ) -> xr.Dataset:
        """Concatenate the scenes in the period (undated scenes always count) along time."""
        chosen = [
            s
            for s in self.scenes
            if period is None or s.datetime is None or period.contains(s.datetime.date())
        ]
        if not chosen:
            raise NoDataError(f"No scene of AOI '{aoi.aoi_id}' falls in period {period}.")
        parts = [open_scene(s, aoi, bands=bands, chunks=chunks) for s in chosen]
        if len(parts) == 1:
            return parts[0]
        return xr.concat(parts, dim="time", join="outer").sortby("time")
