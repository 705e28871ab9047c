"""Load and validate AOI definitions.

An AOI file is a GeoJSON Feature whose properties hold ``aoi_id``, ``name``,
``designation``, ``country``, optional ``wdpa_id`` and ``protected``, and ``inputs`` (what to
read for it). The geometry is either drawn in the file or taken from a feature of a larger
boundary file with ``"boundary": {"path": ..., "match": {"name": "Munduruku"}}`` (the path is
relative to the sample-data folder), so no boundary data is copied into the repo.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import shapely
from pyogrio.errors import DataSourceError
from shapely.errors import GEOSException
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry

from pipeline.core.config import Settings
from pipeline.core.errors import AoiError, ConfigError, PipelineError
from pipeline.core.geometry import (
    geodesic_area_km2,
    ring_jumps_antimeridian,
    split_antimeridian,
    utm_crs_for,
    utm_zones,
)
from pipeline.core.records import Aoi
from pipeline.ingest.aoi_doc import AOI_ID_RE as AOI_ID_RE
from pipeline.ingest.aoi_doc import MAX_FILE_MB, check_properties, feature_shape, read_feature
from pipeline.ingest.aoi_inputs import check_boundary, check_inputs
from pipeline.ingest.paths import resolve_input
from pipeline.ingest.site_patches import with_site_scenes
from pipeline.ingest.sources import with_source

log = logging.getLogger(__name__)


def _check_coordinates(geom: BaseGeometry, where: str) -> None:
    minx, miny, maxx, maxy = geom.bounds
    if -90 <= minx and maxx <= 90 and (miny < -90 or maxy > 90) and -180 <= miny <= 180:
        raise AoiError(
            f"{where}: latitudes out of range ({miny:.4f}..{maxy:.4f}) while longitudes fit "
            "in -90..90: the coordinates look like (lat, lon). GeoJSON is (lon, lat): swap them."
        )
    if minx < -180 or maxx > 180 or miny < -90 or maxy > 90:
        raise AoiError(
            f"{where}: coordinates out of lon/lat range (bounds {geom.bounds}). The file is "
            "probably in a projected CRS: reproject it to EPSG:4326."
        )


def _check_geometry(geom: BaseGeometry, *, where: str, repair: bool) -> BaseGeometry:
    if geom.is_empty:
        raise AoiError(f"{where}: geometry is empty. Draw a polygon or fix the boundary match.")
    if geom.geom_type not in {"Polygon", "MultiPolygon"}:
        raise AoiError(f"{where}: geometry is a {geom.geom_type}; an AOI must be a (Multi)Polygon.")
    if not geom.is_valid:
        reason = shapely.is_valid_reason(geom)
        if not repair:
            raise AoiError(
                f"{where}: invalid geometry ({reason}). Fix the ring in the file, or load "
                "with repair=True (`aoi validate --repair`) to apply shapely.make_valid."
            )
        log.warning("%s: repairing invalid geometry (%s) with make_valid", where, reason)
        fixed = shapely.make_valid(geom)
        polys = [g for g in getattr(fixed, "geoms", [fixed]) if g.geom_type in {"Polygon", "MultiPolygon"}]
        geom = shapely.unary_union(polys)
        if geom.is_empty:
            raise AoiError(f"{where}: repair left no polygon area. Redraw the AOI.")
    return geom


def _boundary_geometry(spec: dict[str, Any], *, root: Path, where: str) -> BaseGeometry:
    path = resolve_input(str(spec["path"]), root=root)  # confined by check_boundary
    try:
        frame = gpd.read_file(path)
    except (DataSourceError, OSError, ValueError) as exc:
        raise AoiError(f"{where}: boundary file {path} cannot be read ({exc}). Check the file.") from exc
    if frame.crs is not None and frame.crs.to_epsg() != 4326:
        frame = frame.to_crs(4326)
    match = dict(spec.get("match") or {})
    sel = frame
    for column, value in match.items():
        if column not in sel.columns:
            raise AoiError(
                f"{where}: boundary file {path} has no column '{column}'. "
                f"Columns: {', '.join(map(str, frame.columns))}."
            )
        sel = sel[sel[column] == value]
    if len(sel) != 1:
        raise AoiError(
            f"{where}: boundary match {match} selects {len(sel)} features in {path}; "
            "it must select exactly one. Make the match more specific."
        )
    return sel.geometry.iloc[0]


def _aoi_geometry(
    doc: dict[str, Any],
    *,
    props: dict[str, Any],
    sample_data: Path,
    where: str,
    repair: bool,
    allow_absolute: bool = False,
) -> BaseGeometry:
    """The AOI's (Multi)Polygon in EPSG:4326, drawn in the file or matched in a boundary file,
    split at the antimeridian and checked (or repaired)."""
    if doc.get("geometry"):
        geom = feature_shape(doc, where)
    elif props.get("boundary"):
        spec = check_boundary(props["boundary"], root=sample_data, allow_absolute=allow_absolute, where=where)
        geom = _boundary_geometry(dict(spec), root=sample_data, where=where)
    else:
        raise AoiError(f"{where}: no geometry and no 'boundary' reference. Give one of them.")
    _check_coordinates(geom, where)
    if isinstance(geom, Polygon | MultiPolygon) and ring_jumps_antimeridian(geom):
        # unambiguous: no AOI edge really spans half the globe, so split as RFC 7946 asks
        log.warning("%s: polygon drawn across the antimeridian; splitting it at 180°", where)
        geom = split_antimeridian(geom)
    try:
        geom = _check_geometry(geom, where=where, repair=repair)
    except GEOSException as exc:
        raise AoiError(f"{where}: GEOS cannot process the geometry ({exc}). Fix or redraw it.") from exc
    zones = utm_zones(geom)
    if len(zones) > 1:
        log.warning(
            "%s spans UTM zones %s; rasters use zone %s of its centre (scale error < 0.1 %% "
            "within 3° of the zone edge)",
            where,
            zones,
            utm_crs_for(geom).to_string(),
        )
    return geom


def _check_area(geom: BaseGeometry, *, where: str, max_km2: float) -> None:
    area = geodesic_area_km2(geom)
    if area > max_km2:
        raise AoiError(
            f"{where}: area {area:,.0f} km² exceeds the limit of {max_km2:,.0f} km². Split the "
            "AOI, or raise max_aoi_km2 in the config if this size is intended."
        )


def load_aoi(
    path: Path,
    *,
    sample_data: Path,
    repair: bool = False,
    max_km2: float = 200_000.0,
    max_file_mb: float = MAX_FILE_MB,
    allow_absolute_paths: bool = False,
) -> Aoi:
    """Read and validate one AOI definition.

    Parameters
    ----------
    path
        GeoJSON Feature (or a FeatureCollection with exactly one feature), UTF-8.
    sample_data
        Folder that ``boundary.path`` and ``inputs`` are relative to (and must stay in).
    repair
        Repair an invalid geometry with ``shapely.make_valid`` instead of refusing it.
    max_km2
        Largest accepted area (km^2, equal-area).
    max_file_mb
        Largest accepted file (MB; ``Settings.max_aoi_file_mb``).
    allow_absolute_paths
        Accept input paths outside ``sample_data`` (``ingest.allow_absolute_paths``).

    Raises
    ------
    AoiError
        With the fix in the message: unreadable or oversized file, bad JSON, bad id, types,
        CRS, coordinates, geometry, size, or an input path outside the sample data.
    """
    doc = read_feature(path, max_file_mb=max_file_mb)
    props: dict[str, Any] = dict(doc.get("properties") or {})
    aoi_id = check_properties(props, where=f"AOI file {path}")
    where = f"AOI '{aoi_id}' ({path})"
    inputs = check_inputs(
        props.get("inputs"), root=sample_data, allow_absolute=allow_absolute_paths, where=where
    )
    geom = _aoi_geometry(
        doc,
        props=props,
        sample_data=sample_data,
        where=where,
        repair=repair,
        allow_absolute=allow_absolute_paths,
    )
    inputs = with_site_scenes(inputs, sample_data=sample_data, within=geom)
    aoi = Aoi(
        aoi_id=aoi_id,
        name=props["name"],
        designation=props["designation"],
        country=props["country"],
        wdpa_id=(str(props["wdpa_id"]) if props.get("wdpa_id") else None),
        protected=props.get("protected", False),
        geometry=geom,
        inputs=inputs,
        source_path=str(path),
    )
    _check_area(geom, where=where, max_km2=max_km2)
    return aoi


def load_aoi_file(path: Path, *, settings: Settings, repair: bool = False) -> Aoi:
    """:func:`load_aoi` with the limits and the data folder of ``settings``; an AOI whose scenes
    come from a remote source carries the ingest settings (:func:`~pipeline.ingest.sources.with_source`)."""
    aoi = load_aoi(
        path,
        sample_data=settings.sample_data,
        repair=repair,
        max_km2=settings.max_aoi_km2,
        max_file_mb=settings.max_aoi_file_mb,
        allow_absolute_paths=settings.ingest.allow_absolute_paths,
    )
    return dataclasses.replace(aoi, inputs=with_source(aoi.inputs, settings=settings))


def list_aoi_files(aoi_dir: Path) -> list[Path]:
    """AOI definition files in ``aoi_dir``, sorted by name (symlinks included: see
    :func:`load_aois`)."""
    return sorted(p for p in Path(aoi_dir).glob("*.geojson") if p.is_file())


@dataclass(frozen=True)
class AoiLoadFailure:
    """An AOI file that could not be loaded: that AOI's failure, not the night's."""

    path: Path
    """The file."""
    message: str
    """What is wrong and how to fix it."""

    @property
    def name(self) -> str:
        """How the failure is named in the run ledger and the summary: the file name
        (``.geojson`` included, so it never collides with a valid ``aoi_id``)."""
        return self.path.name


@dataclass(frozen=True)
class LoadedAois:
    """The AOIs of a set of files, and the files that failed."""

    aois: list[Aoi]
    failures: list[AoiLoadFailure]


def _outside_aoi_dir(path: Path, settings: Settings) -> str | None:
    folder = Path(settings.aoi_dir).resolve()
    if settings.ingest.allow_absolute_paths or Path(path).parent.resolve() != folder:
        return None  # a file named on purpose, not one found in the AOI folder
    target = Path(path).resolve()
    if target.is_relative_to(folder):
        return None
    return (
        f"AOI file {path} is a symlink to {target}, outside the AOI folder {settings.aoi_dir}. "
        "Copy the file into the folder instead, or set ingest.allow_absolute_paths = true."
    )


def load_aois(files: Sequence[Path], *, settings: Settings) -> LoadedAois:
    """Load every file; a bad file is recorded as that AOI's failure and the others go on.

    Raises
    ------
    ConfigError
        Two files define the same ``aoi_id`` (their outputs and ledger rows would collide);
        both files are named.
    """
    aois: list[Aoi] = []
    failures: list[AoiLoadFailure] = []
    seen: dict[str, Path] = {}
    for path in files:
        try:
            problem = _outside_aoi_dir(path, settings)
            if problem:
                raise AoiError(problem)
            aoi = load_aoi_file(path, settings=settings)
        except PipelineError as exc:
            log.error("%s", exc)
            failures.append(AoiLoadFailure(Path(path), str(exc)))
            continue
        except Exception as exc:  # a bug on one file must not stop the night's other AOIs
            log.exception("AOI file %s could not be loaded", path)
            failures.append(AoiLoadFailure(Path(path), f"AOI file {path}: {type(exc).__name__}: {exc}"))
            continue
        if aoi.aoi_id in seen:
            raise ConfigError(
                f"aoi_id '{aoi.aoi_id}' is defined twice: in {seen[aoi.aoi_id]} and in {path}. "
                "Give each AOI file its own aoi_id (or remove one of the files)."
            )
        seen[aoi.aoi_id] = Path(path)
        aois.append(aoi)
    return LoadedAois(aois=aois, failures=failures)
