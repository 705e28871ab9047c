"""The JSON of an AOI file: size, encoding, GeoJSON structure and the types of its properties.

Every problem is an :class:`~pipeline.core.errors.AoiError` naming the file and the fix, never
a traceback: a JSON array or string at the top level, a ``crs`` that is not an object,
properties of the wrong type, ``"protected": "false"`` (a string, not a boolean), an id with a
trailing newline, NaN coordinates or bytes that are not UTF-8.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from shapely.errors import GEOSException
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from pipeline.core.errors import AoiError
from pipeline.core.records import PROTECTION_CATEGORIES
from pipeline.ingest.aoi_inputs import json_kind

#: An AOI id is a folder name: matched in full (``re.fullmatch``), so no trailing newline.
AOI_ID_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
REQUIRED = ("aoi_id", "name", "designation", "country")
#: Default of ``Settings.max_aoi_file_mb``.
MAX_FILE_MB = 20.0
_WGS84_NAMES = {
    "urn:ogc:def:crs:OGC:1.3:CRS84",
    "urn:ogc:def:crs:OGC::CRS84",
    "urn:ogc:def:crs:EPSG::4326",
    "EPSG:4326",
}


def check_crs(doc: dict[str, Any], where: str) -> None:
    """Refuse a ``crs`` member that is not an object or names anything but WGS 84 lon/lat."""
    crs = doc.get("crs")
    if crs is None:
        return  # RFC 7946: no member means WGS 84 lon/lat
    props = crs.get("properties") if isinstance(crs, dict) else None
    name = props.get("name", "") if isinstance(props, dict) else None
    if not isinstance(name, str):
        raise AoiError(
            f"{where}: 'crs' must be an object like "
            '{"type": "name", "properties": {"name": "EPSG:4326"}}, got '
            f"{json_kind(crs)} {crs!r}. Remove the member (GeoJSON is EPSG:4326) or fix it."
        )
    if name not in _WGS84_NAMES:
        raise AoiError(
            f"{where}: declares CRS '{name}', but AOIs must be in EPSG:4326 (lon/lat). "
            "Reproject it, e.g. `ogr2ogr -t_srs EPSG:4326 out.geojson in.geojson`."
        )


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON (RFC 8259)")


def _parse_json(path: Path, *, where: str, max_file_mb: float) -> Any:
    """The file's JSON value: bounded in size, UTF-8, no NaN / Infinity."""
    try:
        size = path.stat().st_size
    except FileNotFoundError as exc:
        raise AoiError(f"{where} does not exist. Check the path (see `asm-monitor aoi list`).") from exc
    if size > max_file_mb * 1e6:
        raise AoiError(
            f"{where} is {size / 1e6:,.2f} MB, above the limit of {max_file_mb:g} MB "
            "(setting max_aoi_file_mb). Simplify the outline (e.g. `ogr2ogr -simplify 0.0001 "
            'out.geojson in.geojson`), reference a boundary file in the sample data with "boundary": '
            '{"path": ..., "match": {...}}, or raise max_aoi_file_mb if this size is intended.'
        )
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise AoiError(
            f"{where} is not UTF-8 text (RFC 8259): byte 0x{raw[exc.start]:02x} on line {line}. "
            "Re-save it as UTF-8, e.g. `iconv -f latin1 -t utf-8 IN > OUT`."
        ) from exc
    try:
        return json.loads(text, parse_constant=_no_constant)
    except ValueError as exc:  # JSONDecodeError, and NaN / Infinity
        if "RFC 8259" in str(exc):
            raise AoiError(
                f"{where}: {exc}; every coordinate must be a finite number. Fix the geometry."
            ) from exc
        raise AoiError(f"{where} is not valid JSON ({exc}). Fix the syntax.") from exc


def read_feature(path: Path, *, max_file_mb: float = MAX_FILE_MB) -> dict[str, Any]:
    """The one GeoJSON Feature of an AOI file (a FeatureCollection may wrap it)."""
    where = f"AOI file {path}"
    doc = _parse_json(Path(path), where=where, max_file_mb=max_file_mb)
    if not isinstance(doc, dict):
        raise AoiError(
            f"{where}: top level is {json_kind(doc)}; an AOI file is a GeoJSON Feature object "
            '{"type": "Feature", "properties": {...}, "geometry": {...}}.'
        )
    check_crs(doc, where)
    if doc.get("type") == "FeatureCollection":
        features = doc.get("features") or []
        if not isinstance(features, list) or len(features) != 1:
            count = len(features) if isinstance(features, list) else json_kind(features)
            raise AoiError(f"{where}: holds {count} features; an AOI file holds one.")
        doc = features[0]
    if not isinstance(doc, dict) or doc.get("type") != "Feature":
        kind = doc.get("type") if isinstance(doc, dict) else json_kind(doc)
        raise AoiError(f"{where}: must be a GeoJSON Feature, got type {kind!r}.")
    if doc.get("properties") is not None and not isinstance(doc["properties"], dict):
        raise AoiError(
            f"{where}: 'properties' must be an object {{...}}, got {json_kind(doc['properties'])}. "
            "Put aoi_id, name, designation and country in it."
        )
    return doc


def check_properties(props: dict[str, Any], *, where: str) -> str:
    """Refuse missing or mistyped properties or an unsafe ``aoi_id``; returns the id."""
    missing = [key for key in REQUIRED if props.get(key) in (None, "")]
    if missing:
        raise AoiError(f"{where}: missing properties {missing}. Add them to 'properties'.")
    for key in REQUIRED:
        if not isinstance(props[key], str):
            raise AoiError(
                f"{where}: property '{key}' must be text, got {json_kind(props[key])} {props[key]!r}. "
                f'Write it as a string, e.g. "{key}": "..."'
            )
    aoi_id = props["aoi_id"]
    if not AOI_ID_RE.fullmatch(aoi_id):
        raise AoiError(
            f"{where}: aoi_id {aoi_id!r} is not safe as a folder name. Use lower-case letters, "
            "digits, '-' and '_' (e.g. 'munduruku')."
        )
    wdpa = props.get("wdpa_id")
    if wdpa is not None and (isinstance(wdpa, bool) or not isinstance(wdpa, str | int)):
        raise AoiError(f"{where}: 'wdpa_id' must be text or a number (or null), got {wdpa!r}. Fix it.")
    protected = props.get("protected", False)
    if not isinstance(protected, bool):
        raise AoiError(
            f"{where}: 'protected' must be JSON true or false (no quotes), got {protected!r}. "
            'Write "protected": true or "protected": false.'
        )
    _check_names(props.get("names"), where=where)
    category = props.get("protection")
    if category is not None and category not in PROTECTION_CATEGORIES:
        raise AoiError(
            f"{where}: 'protection' must be one of {', '.join(PROTECTION_CATEGORIES)} (or left out), "
            f"got {category!r}. strict = full protection (Brazil: PI), sustainable_use = US, "
            "indigenous = an indigenous territory."
        )
    return aoi_id


def _check_names(names: Any, *, where: str) -> None:
    if names is None:
        return
    if not isinstance(names, dict) or not all(
        isinstance(k, str) and re.fullmatch(r"[a-z]{2}", k) and isinstance(v, str) and v.strip()
        for k, v in names.items()
    ):
        raise AoiError(
            f"{where}: 'names' must map two-letter language codes to text, e.g. "
            f'{{"pt": "Terra Indígena Munduruku", "es": "Territorio Indígena Munduruku"}}; got {names!r}.'
        )


def feature_shape(doc: dict[str, Any], where: str) -> BaseGeometry:
    """The drawn geometry, parsed, with finite coordinates."""
    if not isinstance(doc["geometry"], dict):
        raise AoiError(
            f"{where}: 'geometry' must be a GeoJSON geometry object, got "
            f"{json_kind(doc['geometry'])} {doc['geometry']!r}. Fix the GeoJSON."
        )
    try:
        geom = shape(doc["geometry"])
        coords = shapely.get_coordinates(geom)
    except (ValueError, TypeError, AttributeError, KeyError, IndexError, GEOSException) as exc:
        raise AoiError(f"{where}: geometry cannot be parsed ({exc}). Fix the GeoJSON.") from exc
    if not np.isfinite(coords).all():
        raise AoiError(f"{where}: coordinates are not finite (NaN or overflow). Fix the geometry.")
    return geom
