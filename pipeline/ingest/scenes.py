"""Scene sources: one small protocol, several readers.

``SceneSource.load(aoi, period, *, bands, resolution, chunks) -> xr.Dataset`` returns one
lazy float32 variable per band with dims ``("time", "y", "x")`` on the AOI's UTM grid:
reflectance 0-1 (scale and offset applied per scene and recorded in the ``scale`` /
``offset`` coordinates), mask bands (SCL, CLM, IS_DATA, dataMask) as their class values,
nodata as NaN, and ``scene_id`` / acquisition ``time`` coordinates along ``time``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import rasterio
import rioxarray  # noqa: F401  (registers the .rio accessor on the returned Dataset)
import xarray as xr
from rasterio.errors import RasterioIOError
from rasterio.warp import transform_bounds

from pipeline.core.errors import NoDataError, PipelineError, RasterError
from pipeline.core.geometry import utm_crs_for
from pipeline.core.periods import Period
from pipeline.core.records import Aoi
from pipeline.ingest.grid import FileRead, GridSpec, check_complete, lazy_read, on_same_grid
from pipeline.ingest.paths import resolve_input

log = logging.getLogger(__name__)

#: Bands holding classes or flags, never scaled to reflectance.
MASK_BANDS = frozenset({"SCL", "CLM", "IS_DATA", "dataMask"})
DEFAULT_RESOLUTION_M = 10.0
OnError = Literal["raise", "skip"]


@dataclass(frozen=True, kw_only=True)
class SceneSpec:
    """One scene of a local source (an index entry): one multi-band file, or one file per
    band, plus optional mask files."""

    scene_id: str
    """Stable id of the scene (product id or file stem)."""
    path: Path | None = None
    """GeoTIFF / COG with one band per spectral band; None when every band has its own file."""
    band_paths: Mapping[str, Path] = field(default_factory=dict)
    """Band name -> single-band file (per-band layouts and mask files: CLM, IS_DATA, SCL)."""
    band_names: tuple[str, ...] = ()
    """Names of the bands of ``path`` in order, when its band descriptions do not say."""
    datetime: datetime | None = None
    """Acquisition time (UTC, naive); None when the source did not record it."""
    scale: float | None = None
    """Reflectance = DN * scale + offset; None = from the file (scales / ``scale_factor``)."""
    offset: float | None = None
    """Per-scene offset (L2A baseline >= 04.00 carries BOA_ADD_OFFSET -0.1); None = file's."""

    @property
    def files(self) -> set[Path]:
        """Every file of the scene (the multi-band file and the per-band / mask files)."""
        return {p for p in [self.path, *self.band_paths.values()] if p is not None}

    @classmethod
    def from_mapping(cls, entry: Mapping[str, Any], *, root: Path) -> SceneSpec:
        """Build from an AOI ``inputs.scenes`` entry or a JSON index; paths relative to ``root``."""
        path = resolve_input(str(entry["path"]), root=root) if entry.get("path") else None
        bands = {str(k): resolve_input(str(v), root=root) for k, v in (entry.get("bands") or {}).items()}
        when = entry.get("datetime")
        if path is None and not bands:
            raise RasterError(f"Scene entry {dict(entry)} has neither 'path' nor 'bands'. Give one.")
        stem = path.stem if path is not None else next(iter(bands.values())).stem
        return cls(
            scene_id=str(entry.get("scene_id") or stem),
            path=path,
            band_paths=bands,
            band_names=tuple(entry.get("band_names") or ()),
            datetime=datetime.fromisoformat(str(when)).replace(tzinfo=None) if when else None,
            scale=float(entry["scale"]) if entry.get("scale") is not None else None,
            offset=float(entry["offset"]) if entry.get("offset") is not None else None,
        )


class SceneSource(Protocol):
    """What every imagery source offers (local folder, Sentinel Hub, STAC)."""

    def load(
        self,
        aoi: Aoi,
        period: Period | None,
        *,
        bands: Sequence[str],
        resolution: float | None = None,
        chunks: int = 512,
    ) -> xr.Dataset:
        """Lazy cube for the AOI and period on its UTM grid, dims ``("time", "y", "x")``."""
        ...


@dataclass(frozen=True)
class _Opened:
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


def _inspect(path: Path, *, names: Sequence[str] = ()) -> _Opened:
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
            return _Opened(
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


def _header_key(spec: SceneSpec, path: Path) -> tuple[Path, tuple[str, ...]]:
    """A file and the band names the scene gives it: what one header read depends on."""
    return path, spec.band_names if path == spec.path else ()


def _choose_grid(aoi: Aoi, headers: Sequence[_Opened], resolution: float | None) -> GridSpec:
    crs = utm_crs_for(aoi.geometry)
    native = [h for h in headers if h.crs is not None and rasterio.crs.CRS.from_user_input(h.crs) == crs]
    if resolution is None and headers and len(native) == len(headers):
        # every file already in the AOI's zone: keep its pixels (no resampling at all)
        first = native[0]
        if all(np.allclose(h.res, first.res) for h in native):
            anchor = (first.transform.c, first.transform.f)
            return GridSpec.covering(_aoi_bounds(aoi, crs), crs=crs, resolution=first.res, anchor=anchor)
    return aoi_grid(aoi, resolution=resolution or DEFAULT_RESOLUTION_M)


def _scale_offset(spec: SceneSpec, head: _Opened, band: str, index: int) -> tuple[float, float]:
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
    spec: SceneSpec, bands: Sequence[str], headers: Mapping[Path, _Opened], grid: GridSpec
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


def _check_scene(spec: SceneSpec, headers: Mapping[Path, _Opened], grid: GridSpec, aoi: Aoi) -> None:
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
    headers: Mapping[tuple[Path, tuple[str, ...]], _Opened] | None = None,
) -> xr.Dataset:
    """Open one scene lazily on the AOI's UTM grid (or ``grid``).

    ``headers`` are file headers the caller already read, keyed by :func:`_header_key`
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
        key = _header_key(spec, p)
        heads[p] = known[key] if key in known else _inspect(p, names=key[1])
    if grid is None:
        grid = _choose_grid(aoi, list(heads.values()), resolution)
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
    log.info(
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


def aoi_footprint(aoi: Aoi, cube: xr.Dataset | xr.DataArray) -> xr.DataArray:
    """bool ``("y", "x")`` on the cube's grid: True for pixels whose centre is in the AOI
    (numpy; the grid is small next to the cube, and valid fractions should count only these)."""
    from rasterio.features import geometry_mask

    shapes = aoi.to_frame().to_crs(cube.rio.crs).geometry
    inside = geometry_mask(
        shapes, out_shape=(cube.sizes["y"], cube.sizes["x"]), transform=cube.rio.transform(), invert=True
    )
    return xr.DataArray(inside, dims=("y", "x"), coords={"y": cube["y"], "x": cube["x"]}, name="aoi")


def stack_scenes(parts: Sequence[xr.Dataset]) -> xr.Dataset:
    """Stack per-scene datasets along time, sorted; parts sharing a ``scene_id`` (tiles of
    one acquisition) are merged into one time step, the first non-NaN value winning."""
    by_id: dict[str, xr.Dataset] = {}
    for part in parts:
        sid = str(part["scene_id"].values[0])
        by_id[sid] = part if sid not in by_id else by_id[sid].fillna(part)
    merged = list(by_id.values())
    if len(merged) == 1:
        return merged[0]
    out = xr.concat(merged, dim="time", join="exact", combine_attrs="drop_conflicts").sortby("time")
    return out.rio.write_crs(merged[0].rio.crs)


class LocalFolderSource:
    """Scenes from an index (AOI ``inputs.scenes``, a folder's file names or STAC items),
    read lazily from disk onto the AOI's UTM grid.

    Parameters
    ----------
    scenes
        The index; build it with :func:`pipeline.ingest.index.index_folder` for a folder.
    on_error
        ``raise`` (default): a scene that is corrupt or misses the AOI stops the load.
        ``skip``: it is logged with its reason and left out (an empty result still raises
        :class:`NoDataError`).
    """

    def __init__(self, scenes: Sequence[SceneSpec], *, on_error: OnError = "raise") -> None:
        self.scenes = list(scenes)
        self.on_error = on_error

    def select(self, period: Period | None) -> list[SceneSpec]:
        """Scenes in ``period`` (undated scenes always count: their date is unknown)."""
        return [
            s
            for s in self.scenes
            if period is None or s.datetime is None or period.contains(s.datetime.date())
        ]

    def load(
        self,
        aoi: Aoi,
        period: Period | None,
        *,
        bands: Sequence[str],
        resolution: float | None = None,
        chunks: int = 512,
    ) -> xr.Dataset:
        """Stack the scenes of the period along time on one grid (see :func:`open_scene`).

        Raises
        ------
        NoDataError
            No scene in the period, or (with ``on_error="skip"``) none usable.
        """
        chosen = self.select(period)
        if not chosen:
            raise NoDataError(
                f"No scene of AOI '{aoi.aoi_id}' falls in period {period} ({len(self.scenes)} indexed). "
                "Choose another period or add scenes."
            )
        # each header is read once; a file that fails is read again (and fails) in open_scene,
        # which skips or raises for its scene
        headers: dict[tuple[Path, tuple[str, ...]], _Opened] = {}
        for s in chosen:
            for p in s.files:
                key = _header_key(s, p)
                try:
                    headers[key] = _inspect(p, names=key[1])
                except PipelineError:
                    if self.on_error == "raise":
                        raise
        grid = _choose_grid(aoi, list(headers.values()), resolution)
        parts, skipped = [], []
        for spec in chosen:
            try:
                parts.append(open_scene(spec, aoi, bands=bands, grid=grid, chunks=chunks, headers=headers))
            except PipelineError as exc:
                if self.on_error == "raise":
                    raise
                log.warning("skipping scene %s: %s", spec.scene_id, exc)
                skipped.append(f"{spec.scene_id}: {exc}")
        if not parts:
            raise NoDataError(f"AOI '{aoi.aoi_id}', period {period}: no usable scene. " + " | ".join(skipped))
        return stack_scenes(parts)
