"""Load and validate AOI definitions.

An AOI file is a GeoJSON Feature whose properties hold ``aoi_id``, ``name``,
``designation``, ``country``, optional ``wdpa_id`` and ``protected``, and ``inputs`` (what to
read for it). The geometry is either drawn in the file or taken from a feature of a larger
boundary file with ``"boundary": {"path": ..., "match": {"name": "Munduruku"}}`` (the path is
relative to the sample-data folder), so no boundary data is copied into the repo.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import geopandas as gpd
import shapely
from shapely.geometry import MultiPolygon, Polygon, shape
from shapely.geometry.base import BaseGeometry

from pipeline.core.errors import AoiError
from pipeline.core.geometry import (
    geodesic_area_km2,
    ring_jumps_antimeridian,
    split_antimeridian,
    utm_crs_for,
    utm_zones,
)
from pipeline.core.records import Aoi
from pipeline.ingest.paths import resolve_input

log = logging.getLogger(__name__)

AOI_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
REQUIRED = ("aoi_id", "name", "designation", "country")
_WGS84_NAMES = {
    "urn:ogc:def:crs:OGC:1.3:CRS84",
    "urn:ogc:def:crs:OGC::CRS84",
    "urn:ogc:def:crs:EPSG::4326",
    "EPSG:4326",
}


def _check_crs(doc: dict[str, Any], where: str) -> None:
    crs = doc.get("crs")
    if crs is None:
        return  # RFC 7946: no member means WGS 84 lon/lat
    name = (crs.get("properties") or {}).get("name", "")
    if name not in _WGS84_NAMES:
        raise AoiError(
            f"{where}: declares CRS '{name}', but AOIs must be in EPSG:4326 (lon/lat). "
            "Reproject it, e.g. `ogr2ogr -t_srs EPSG:4326 out.geojson in.geojson`."
        )


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
    path = resolve_input(str(spec["path"]), root=root)
    frame = gpd.read_file(path)
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


def _read_feature(path: Path) -> dict[str, Any]:
    """The one GeoJSON Feature of an AOI file (a FeatureCollection may wrap it)."""
    where = f"AOI file {path}"
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise AoiError(f"{where} does not exist. Check the path (see `asm-monitor aoi list`).") from exc
    except json.JSONDecodeError as exc:
        raise AoiError(f"{where} is not valid JSON ({exc}). Fix the syntax.") from exc
    _check_crs(doc, where)
    if doc.get("type") == "FeatureCollection":
        features = doc.get("features") or []
        if len(features) != 1:
            raise AoiError(f"{where}: holds {len(features)} features; an AOI file holds one.")
        doc = features[0]
    if doc.get("type") != "Feature":
        raise AoiError(f"{where}: must be a GeoJSON Feature, got type {doc.get('type')!r}.")
    return doc


def _check_properties(props: dict[str, Any], *, where: str) -> str:
    """Refuse missing required properties or an unsafe ``aoi_id``; returns the id."""
    missing = [key for key in REQUIRED if not props.get(key)]
    if missing:
        raise AoiError(f"{where}: missing properties {missing}. Add them to 'properties'.")
    aoi_id = str(props["aoi_id"])
    if not AOI_ID_RE.match(aoi_id):
        raise AoiError(
            f"{where}: aoi_id {aoi_id!r} is not safe as a folder name. Use lower-case letters, "
            "digits, '-' and '_' (e.g. 'munduruku')."
        )
    return aoi_id


def _aoi_geometry(
    doc: dict[str, Any], *, props: dict[str, Any], sample_data: Path, where: str, repair: bool
) -> BaseGeometry:
    """The AOI's (Multi)Polygon in EPSG:4326, drawn in the file or matched in a boundary file,
    split at the antimeridian and checked (or repaired)."""
    if doc.get("geometry"):
        try:
            geom = shape(doc["geometry"])
        except (ValueError, TypeError, AttributeError, KeyError) as exc:
            raise AoiError(f"{where}: geometry cannot be parsed ({exc}). Fix the GeoJSON.") from exc
    elif props.get("boundary"):
        geom = _boundary_geometry(props["boundary"], root=sample_data, where=where)
    else:
        raise AoiError(f"{where}: no geometry and no 'boundary' reference. Give one of them.")
    _check_coordinates(geom, where)
    if isinstance(geom, Polygon | MultiPolygon) and ring_jumps_antimeridian(geom):
        # unambiguous: no AOI edge really spans half the globe, so split as RFC 7946 asks
        log.warning("%s: polygon drawn across the antimeridian; splitting it at 180°", where)
        geom = split_antimeridian(geom)
    geom = _check_geometry(geom, where=where, repair=repair)
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
) -> Aoi:
    """Read and validate one AOI definition.

    Parameters
    ----------
    path
        GeoJSON Feature (or a FeatureCollection with exactly one feature).
    sample_data
        Folder that ``boundary.path`` and ``inputs`` are relative to.
    repair
        Repair an invalid geometry with ``shapely.make_valid`` instead of refusing it.
    max_km2
        Largest accepted area (km^2, equal-area).

    Raises
    ------
    AoiError
        With the fix in the message: bad id, CRS, coordinates, geometry or size.
    """
    doc = _read_feature(path)
    props: dict[str, Any] = dict(doc.get("properties") or {})
    aoi_id = _check_properties(props, where=f"AOI file {path}")
    where = f"AOI '{aoi_id}' ({path})"
    geom = _aoi_geometry(doc, props=props, sample_data=sample_data, where=where, repair=repair)
    aoi = Aoi(
        aoi_id=aoi_id,
        name=str(props["name"]),
        designation=str(props["designation"]),
        country=str(props["country"]),
        wdpa_id=(str(props["wdpa_id"]) if props.get("wdpa_id") else None),
        protected=bool(props.get("protected", False)),
        geometry=geom,
        inputs=dict(props.get("inputs") or {}),
        source_path=str(path),
    )
    _check_area(geom, where=where, max_km2=max_km2)
    return aoi


def list_aoi_files(aoi_dir: Path) -> list[Path]:
    """AOI definition files in ``aoi_dir``, sorted by name."""
    return sorted(p for p in Path(aoi_dir).glob("*.geojson") if p.is_file())
