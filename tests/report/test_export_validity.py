"""Issue 18 item 5: every export of a real run is valid for clients we did not write.

GeoJSON: RFC 7946 section 3.1.6 winding (exterior rings counter-clockwise, holes clockwise),
valid geometries (OGC simple features), at most 7 decimals. GeoParquet: the ``geo`` metadata
checked against the GeoParquet 1.1 JSON schema (format-specs/schema.json, with the PROJJSON
reference relaxed to an object so the check needs no network), valid WKB geometries, and a
declared bbox covering only where every row group carries its column statistics (what
geoparquet-validator reads), including for an empty frame.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import geopandas as gpd
import jsonschema
import pyarrow.parquet as pq
import pytest
import shapely
from shapely.geometry import shape

from pipeline.comply.flags import FLAG_COLUMNS
from pipeline.report.exports import write_geojson, write_geoparquet

_BBOX_PART = {"type": "array", "items": [{"type": "string"}, {"type": "string"}], "additionalItems": False}
GEOPARQUET_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["version", "primary_column", "columns"],
    "properties": {
        "version": {"type": "string", "enum": ["1.0.0", "1.1.0"]},
        "primary_column": {"type": "string", "minLength": 1},
        "columns": {
            "type": "object",
            "minProperties": 1,
            "patternProperties": {
                ".+": {
                    "type": "object",
                    "required": ["encoding", "geometry_types"],
                    "properties": {
                        "encoding": {"const": "WKB"},
                        "geometry_types": {
                            "type": "array",
                            "uniqueItems": True,
                            "items": {
                                "type": "string",
                                "pattern": "^(GeometryCollection|(Multi)?(Point|LineString|Polygon))( Z)?$",
                            },
                        },
                        "crs": {"oneOf": [{"type": "object"}, {"type": "null"}]},
                        "edges": {"enum": ["planar", "spherical"]},
                        "orientation": {"const": "counterclockwise"},
                        "bbox": {"type": "array", "items": {"type": "number"}, "minItems": 4, "maxItems": 6},
                        "covering": {
                            "type": "object",
                            "properties": {
                                "bbox": {
                                    "type": "object",
                                    "required": ["xmin", "xmax", "ymin", "ymax"],
                                    "additionalProperties": _BBOX_PART,
                                }
                            },
                        },
                    },
                }
            },
        },
    },
}


def _signed_area(ring: list[list[float]]) -> float:
    return sum(x0 * y1 - x1 * y0 for (x0, y0, *_), (x1, y1, *_) in itertools.pairwise(ring)) / 2


def _polygons(geom: dict[str, Any]) -> list[list[list[list[float]]]]:
    if geom["type"] == "Polygon":
        return [geom["coordinates"]]
    if geom["type"] == "MultiPolygon":
        return list(geom["coordinates"])
    if geom["type"] == "GeometryCollection":
        return [p for g in geom["geometries"] for p in _polygons(g)]
    return []


def _decimals(value: Any) -> int:
    if isinstance(value, list):
        return max((_decimals(v) for v in value), default=0)
    text = repr(float(value))
    return len(text.split(".")[1]) if "." in text and "e" not in text else 0


def geojson_problems(path: Path) -> list[str]:
    """What a strict RFC 7946 client would object to in ``path``."""
    doc = json.loads(path.read_text(encoding="utf-8"))
    problems = []
    for i, feature in enumerate(doc["features"]):
        geom = feature["geometry"]
        if geom is None:
            continue
        if not shape(geom).is_valid:
            problems.append(f"{path.name}#{i}: invalid ({shapely.is_valid_reason(shape(geom))})")
        for poly in _polygons(geom):
            if _signed_area(poly[0]) < 0:
                problems.append(f"{path.name}#{i}: exterior ring clockwise")
            if any(_signed_area(hole) > 0 for hole in poly[1:]):
                problems.append(f"{path.name}#{i}: hole counter-clockwise")
        if _decimals(geom.get("coordinates", [])) > 7:
            problems.append(f"{path.name}#{i}: more than 7 decimals")
    return problems


def geoparquet_problems(path: Path) -> list[str]:
    """What a GeoParquet 1.1 validator would object to in ``path``."""
    meta = pq.ParquetFile(path).metadata
    geo = json.loads(meta.metadata[b"geo"])
    problems = [
        f"{path.name}: {e.message}" for e in jsonschema.Draft7Validator(GEOPARQUET_SCHEMA).iter_errors(geo)
    ]
    column = geo["columns"][geo["primary_column"]]
    covering = column.get("covering", {}).get("bbox")
    if covering:
        names = {".".join(v) for v in covering.values()}
        for i in range(meta.num_row_groups):
            rg = meta.row_group(i)
            for j in range(rg.num_columns):
                col = rg.column(j)
                if col.path_in_schema in names and not (col.statistics and col.statistics.has_min_max):
                    problems.append(f"{path.name}: row group {i} has no statistics for {col.path_in_schema}")
    frame = gpd.read_parquet(path)
    if len(frame) and not column["geometry_types"]:
        problems.append(f"{path.name}: geometry_types empty")
    bad = frame[~frame.geometry.is_valid]
    problems += [f"{path.name}: {len(bad)} invalid geometries"] if len(bad) else []
    return problems


def test_every_geojson_export_of_a_real_run_is_rfc7946_and_valid(real_run: Path) -> None:
    files = sorted(real_run.glob("*.geojson"))
    assert {p.name for p in files} >= {"flags.geojson", "detections.geojson", "aoi.geojson"}
    problems = [p for f in files for p in geojson_problems(f)]
    assert not problems, f"{len(problems)} problems, first: {problems[:5]}"


def test_every_geoparquet_export_of_a_real_run_validates(real_run: Path) -> None:
    files = sorted(real_run.glob("*.parquet"))
    assert {p.name for p in files} >= {"flags.parquet", "detections.parquet", "sites.parquet"}
    problems = [p for f in files for p in geoparquet_problems(f)]
    assert not problems, problems[:5]


def test_empty_exports_validate(tmp_path: Path) -> None:
    empty = gpd.GeoDataFrame(columns=[*FLAG_COLUMNS, "geometry"], geometry="geometry", crs=4326)
    assert geoparquet_problems(write_geoparquet(empty, tmp_path / "flags.parquet")) == []
    assert geojson_problems(write_geojson(empty, tmp_path / "flags.geojson")) == []


def test_export_winds_repairs_and_rounds(tmp_path: Path) -> None:
    # clockwise exterior, counter-clockwise hole, a bowtie, 15 decimals
    cw = shapely.Polygon(
        [(0, 0), (0, 1), (1, 1), (1, 0)], holes=[[(0.2, 0.2), (0.8, 0.2), (0.8, 0.8), (0.2, 0.8)]]
    )
    bowtie = shapely.Polygon([(0, 0), (1, 1), (1, 0), (0, 1)])
    fine = shapely.Polygon([(0.123456789012345, 0), (1, 0), (1, 1)])
    frame = gpd.GeoDataFrame({"id": [1, 2, 3]}, geometry=[cw, bowtie, fine], crs=4326)
    assert geojson_problems(write_geojson(frame, tmp_path / "x.geojson")) == []
    assert geoparquet_problems(write_geoparquet(frame, tmp_path / "x.parquet")) == []
    back = gpd.read_file(tmp_path / "x.geojson")
    assert back.geometry.area.iloc[0] == pytest.approx(0.64)
    assert back.geometry.area.iloc[1] == pytest.approx(0.5)  # the bowtie's two triangles, kept
