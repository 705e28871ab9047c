"""Exports of flags and detections: GeoParquet, RFC 7946 GeoJSON, CSV with WKT.

CSV cells are spreadsheet-safe (:mod:`pipeline.report.csvsafe`): a site id or name starting
with ``=``, ``+``, ``-`` or ``@`` is written with a leading ``'``, numbers as they are.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from shapely.geometry import mapping
from shapely.geometry.base import BaseGeometry

from pipeline.core.atomic import write_text, write_with
from pipeline.core.records import WGS84
from pipeline.report.csvsafe import csv_text


def plain(value: Any) -> Any:
    """A cell value as plain JSON/CSV: floats rounded to 6 decimals (NaN -> None), numpy
    scalars as Python ones, timestamps as ISO dates."""
    if isinstance(value, float | np.floating):
        return None if np.isnan(value) else round(float(value), 6)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, pd.Timestamp | np.datetime64):
        return None if pd.isna(value) else pd.Timestamp(value).date().isoformat()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if value is pd.NA or value is pd.NaT:
        return None
    return value


#: GeoJSON coordinate decimals: 1e-7 degree is about 1 cm, finer than any source we read
GEOJSON_DECIMALS = 7


def clean_geometries(frame: gpd.GeoDataFrame, *, grid: float | None = None) -> gpd.GeoDataFrame:
    """``frame`` in EPSG:4326 with every geometry valid (``make_valid``, polygons kept
    polygonal), optionally snapped to a ``grid`` (degrees) without losing validity, and
    polygons wound as RFC 7946 asks: exterior rings counter-clockwise, holes clockwise."""
    f = frame.to_crs(WGS84)
    geoms = f.geometry.to_numpy()
    present = ~shapely.is_missing(geoms)
    fixed = geoms.copy()
    fixed[present] = shapely.make_valid(geoms[present], method="structure", keep_collapsed=False)
    if grid is not None:
        fixed[present] = shapely.set_precision(fixed[present], grid)
    fixed[present] = shapely.orient_polygons(fixed[present], exterior_cw=False)
    return f.set_geometry(gpd.GeoSeries(fixed, index=f.index, crs=WGS84), crs=WGS84)


def _rounded(coords: Any, digits: int) -> Any:
    if isinstance(coords, float | int):
        return round(float(coords), digits)
    return [_rounded(c, digits) for c in coords]


def geojson_geometry(geom: BaseGeometry | None, *, digits: int = GEOJSON_DECIMALS) -> dict[str, Any] | None:
    """A geometry as an RFC 7946 geometry object with ``digits`` decimals (None stays None)."""
    if geom is None or geom.is_empty:
        return None
    if geom.geom_type == "GeometryCollection":
        parts = [geojson_geometry(g, digits=digits) for g in geom.geoms]
        return {"type": "GeometryCollection", "geometries": parts}
    doc = mapping(geom)
    return {"type": doc["type"], "coordinates": _rounded(doc["coordinates"], digits)}


def to_geojson_text(frame: gpd.GeoDataFrame) -> str:
    """RFC 7946 FeatureCollection (EPSG:4326, lon/lat, no ``crs`` member): valid geometries
    wound counter-clockwise (:func:`clean_geometries`), 7 decimals, keys in a fixed order so
    reruns are byte-identical."""
    f = clean_geometries(frame, grid=10.0**-GEOJSON_DECIMALS)
    features = []
    for rec, geom in zip(f.drop(columns=f.geometry.name).to_dict("records"), f.geometry, strict=True):
        features.append(
            {
                "type": "Feature",
                "properties": {k: plain(v) for k, v in rec.items()},
                "geometry": geojson_geometry(geom),
            }
        )
    doc = {"type": "FeatureCollection", "features": features}
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"), allow_nan=False) + "\n"


def _stringify_dates(frame: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    out = frame.copy()
    for col in out.columns:
        if col == out.geometry.name:
            continue
        if out[col].dtype == object and out[col].map(lambda v: hasattr(v, "isoformat")).any():
            out[col] = out[col].map(plain)
    return out


def write_geoparquet(frame: gpd.GeoDataFrame, target: Path) -> Path:
    """GeoParquet 1.1 (geopandas writes the ``geo`` metadata) of valid, counter-clockwise
    geometries, atomically. The bbox covering column is written only when there are rows:
    an empty file has no column statistics for a reader to use it by."""
    data = _stringify_dates(clean_geometries(frame))
    covering = len(data) > 0
    return write_with(
        target,
        lambda tmp: data.to_parquet(tmp, index=False, schema_version="1.1.0", write_covering_bbox=covering),
    )


def write_geojson(frame: gpd.GeoDataFrame, target: Path) -> Path:
    """RFC 7946 GeoJSON, atomically."""
    return write_text(target, to_geojson_text(frame))


def write_csv(frame: gpd.GeoDataFrame, target: Path) -> Path:
    """CSV with the geometry as WKT in column ``wkt`` (EPSG:4326), spreadsheet-safe cells,
    atomically."""
    f = _stringify_dates(frame.to_crs(WGS84))
    table = pd.DataFrame(f.drop(columns=f.geometry.name))
    table["wkt"] = f.geometry.to_wkt(rounding_precision=6)
    return write_text(target, csv_text(table))


def impact_table(
    flags: gpd.GeoDataFrame, detections: gpd.GeoDataFrame, *, figures: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Per-AOI counts and hectares in long form: one row per (table, group).

    ``figures`` is comply's :func:`~pipeline.comply.figures.figure_table`: flags by rule /
    severity / status, each area the union of the group's footprints, and the run's total
    (``table`` = ``totals``), the same figures run.json, the index page and the map show.
    Without it the flag rows are plain sums of ``area_ha`` (overlapping titles counted twice).
    Detections by kind and period follow.
    """
    rows: list[dict[str, Any]] = []
    if figures is not None:
        for rec in figures.to_dict("records"):
            total = rec["group_by"] == "total"
            rows.append(
                {
                    "table": "totals" if total else "flags",
                    "group_by": "" if total else rec["group_by"],
                    "group": rec["group"],
                    "count": int(rec["count"]),
                    "area_ha": round(float(rec["area_ha"]), 4),
                    "mined_area_ha": round(float(rec["mined_area_ha"]), 4),
                }
            )
    else:
        rows += _flag_sums(flags)
    if len(detections):
        det = pd.DataFrame(detections.drop(columns=detections.geometry.name))
        det["period"] = det["period"].fillna("").astype(str)
        for (kind, period), g in det.groupby(["kind", "period"]):
            rows.append(
                {
                    "table": "detections",
                    "group_by": "kind,period",
                    "group": f"{kind},{period}",
                    "count": len(g),
                    "area_ha": round(float(g["area_ha"].sum()), 4),
                    "mined_area_ha": round(float(pd.to_numeric(g["mined_area_ha"]).sum()), 4),
                }
            )
    return pd.DataFrame(rows, columns=["table", "group_by", "group", "count", "area_ha", "mined_area_ha"])


def _flag_sums(flags: gpd.GeoDataFrame) -> list[dict[str, Any]]:
    """Flag rows as plain per-row sums (no figures given)."""
    rows: list[dict[str, Any]] = []
    real = flags[flags["rule_id"] != "compliant"] if len(flags) else flags
    for by in ("rule_id", "severity", "status"):
        for key, g in real.groupby(by) if len(real) else []:
            rows.append(
                {
                    "table": "flags",
                    "group_by": by,
                    "group": key,
                    "count": len(g),
                    "area_ha": round(float(g["area_ha"].sum()), 4),
                    "mined_area_ha": round(float(pd.to_numeric(g["mined_area_ha"]).sum()), 4),
                }
            )
    return rows


def write_impact_csv(
    flags: gpd.GeoDataFrame,
    detections: gpd.GeoDataFrame,
    target: Path,
    *,
    figures: pd.DataFrame | None = None,
) -> Path:
    """:func:`impact_table` as CSV (spreadsheet-safe cells), atomically."""
    return write_text(target, csv_text(impact_table(flags, detections, figures=figures)))
