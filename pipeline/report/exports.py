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


def to_geojson_text(frame: gpd.GeoDataFrame) -> str:
    """RFC 7946 FeatureCollection (EPSG:4326, lon/lat, no ``crs`` member), 6 decimals,
    keys in a fixed order so reruns are byte-identical."""
    f = frame.to_crs(WGS84)
    features = []
    for rec, geom in zip(f.drop(columns=f.geometry.name).to_dict("records"), f.geometry, strict=True):
        features.append(
            {
                "type": "Feature",
                "properties": {k: plain(v) for k, v in rec.items()},
                "geometry": json.loads(gpd.GeoSeries([geom]).to_json(to_wgs84=False, drop_id=True))[
                    "features"
                ][0]["geometry"]
                if geom is not None
                else None,
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
    """GeoParquet 1.1 (geopandas writes the ``geo`` metadata), atomically."""
    data = _stringify_dates(frame.to_crs(WGS84))
    return write_with(
        target,
        lambda tmp: data.to_parquet(tmp, index=False, schema_version="1.1.0", write_covering_bbox=True),
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


def impact_table(flags: gpd.GeoDataFrame, detections: gpd.GeoDataFrame) -> pd.DataFrame:
    """Per-AOI impact statistics in long form: one row per (table, group) with counts and
    hectares, e.g. flags by rule / severity / status and detections by kind and period.

    Hectares are sums of the per-row ``area_ha`` the run computed (overlapping titles can
    share hectares, so flag sums may exceed the union reported in run.json).
    """
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


def write_impact_csv(flags: gpd.GeoDataFrame, detections: gpd.GeoDataFrame, target: Path) -> Path:
    """:func:`impact_table` as CSV (spreadsheet-safe cells), atomically."""
    return write_text(target, csv_text(impact_table(flags, detections)))
