"""The geometry of an AOI: drawn in its file or matched in a boundary file, in lon/lat range,
valid (or repaired), split at the antimeridian, and within the size limit."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import geopandas as gpd
import shapely
from pyogrio.errors import DataSourceError
from shapely.errors import GEOSException
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry

from pipeline.core.errors import AoiError
from pipeline.core.geometry import (
    geodesic_area_km2,
    ring_jumps_antimeridian,
    split_antimeridian,
    utm_crs_for,
    utm_zones,
)
from pipeline.ingest.aoi_doc import feature_shape
from pipeline.ingest.aoi_inputs import check_boundary
from pipeline.ingest.paths import resolve_input

log = logging.getLogger(__name__)


def check_coordinates(geom: BaseGeometry, where: str) -> None:
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


def check_geometry(geom: BaseGeometry, *, where: str, repair: bool) -> BaseGeometry:
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


def read_boundaries(path: Path, *, what: str, where: str) -> gpd.GeoDataFrame:
    """A boundary / register file in EPSG:4326, or an :class:`AoiError` naming it."""
    try:
        frame = gpd.read_file(path)
    except (DataSourceError, OSError, ValueError) as exc:
        raise AoiError(f"{where}: {what} {path} cannot be read ({exc}). Check the file.") from exc
    return frame.to_crs(4326) if frame.crs is not None and frame.crs.to_epsg() != 4326 else frame


def _boundary_geometry(spec: dict[str, Any], *, root: Path, where: str) -> BaseGeometry:
    path = resolve_input(str(spec["path"]), root=root)  # confined by check_boundary
    frame = read_boundaries(path, what="boundary file", where=where)
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


def aoi_geometry(
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
        # a register's own outline may be invalid upstream: the AOI file opts in to repairing it
        repair = repair or spec.get("repair") is True
    else:
        raise AoiError(f"{where}: no geometry and no 'boundary' reference. Give one of them.")
    check_coordinates(geom, where)
    if isinstance(geom, Polygon | MultiPolygon) and ring_jumps_antimeridian(geom):
        # unambiguous: no AOI edge really spans half the globe, so split as RFC 7946 asks
        log.warning("%s: polygon drawn across the antimeridian; splitting it at 180°", where)
        geom = split_antimeridian(geom)
    try:
        geom = check_geometry(geom, where=where, repair=repair)
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


def check_area(geom: BaseGeometry, *, where: str, max_km2: float) -> None:
    area = geodesic_area_km2(geom)
    if area > max_km2:
        raise AoiError(
            f"{where}: area {area:,.0f} km² exceeds the limit of {max_km2:,.0f} km². Split the "
            "AOI, or raise max_aoi_km2 in the config if this size is intended."
        )
