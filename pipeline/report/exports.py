"""Exports of flags and detections: GeoParquet, RFC 7946 GeoJSON, CSV with WKT."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from pipeline.records import WGS84
from pipeline.report.atomic import write_text, write_with


def _plain(value: Any) -> Any:
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
                "properties": {k: _plain(v) for k, v in rec.items()},
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
            out[col] = out[col].map(_plain)
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
    """CSV with the geometry as WKT in column ``wkt`` (EPSG:4326), atomically."""
    f = _stringify_dates(frame.to_crs(WGS84))
    table = pd.DataFrame(f.drop(columns=f.geometry.name))
    table["wkt"] = f.geometry.to_wkt(rounding_precision=6)
    return write_text(target, table.to_csv(index=False, lineterminator="\n"))
