"""Exports: GeoParquet 1.1, RFC 7946 GeoJSON, CSV with WKT, impact statistics, atomic writes."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyarrow.parquet as pq
import pytest
import shapely

from pipeline.core.atomic import write_with
from pipeline.report.csvsafe import csv_cell, csv_unguard
from pipeline.report.exports import impact_table, write_csv, write_geojson, write_geoparquet


def test_geoparquet_has_1_1_metadata_readable_by_pyarrow(flags: gpd.GeoDataFrame, tmp_path: Path) -> None:
    path = write_geoparquet(flags.to_crs(32622), tmp_path / "flags.parquet")
    geo = json.loads(pq.read_schema(path).metadata[b"geo"])
    assert geo["version"] == "1.1.0"
    col = geo["columns"][geo["primary_column"]]
    assert col["encoding"] == "WKB"
    assert "covering" in col  # bbox column for spatial filtering (GeoParquet 1.1)
    back = gpd.read_parquet(path)
    assert back.crs.to_epsg() == 4326  # written in EPSG:4326 whatever came in
    # same shapes (rings may start elsewhere or be re-wound counter-clockwise)
    assert back.geometry.normalize().geom_equals_exact(flags.geometry.normalize(), tolerance=1e-7).all()


def test_geojson_is_rfc7946_lon_lat(flags: gpd.GeoDataFrame, tmp_path: Path) -> None:
    path = write_geojson(flags.to_crs(3857), tmp_path / "flags.geojson")
    doc = json.loads(path.read_text())
    assert doc["type"] == "FeatureCollection" and "crs" not in doc
    first = doc["features"][0]
    centre = shapely.geometry.shape(first["geometry"]).centroid
    # lon first: the flag at (-51.767, 0.933) must not come back as (0.933, -51.767)
    assert centre.x == pytest.approx(-51.767, abs=1e-4) and centre.y == pytest.approx(0.933, abs=1e-4)
    assert first["properties"]["flag_id"] == "aaaa000000000001"


def test_csv_wkt_round_trips(flags: gpd.GeoDataFrame, tmp_path: Path) -> None:
    path = write_csv(flags, tmp_path / "flags.csv")
    table = pd.read_csv(path)
    geoms = shapely.from_wkt(table["wkt"])
    assert len(table) == len(flags)
    assert all(g.equals_exact(h, 1e-6) for g, h in zip(geoms, flags.geometry, strict=True))


def test_impact_table_sums_match_independent_totals(
    flags: gpd.GeoDataFrame, detections: gpd.GeoDataFrame
) -> None:
    table = impact_table(flags, detections)
    by_rule = table[(table["table"] == "flags") & (table["group_by"] == "rule_id")]
    real = flags[flags["rule_id"] != "compliant"]
    assert by_rule["area_ha"].sum() == pytest.approx(real["area_ha"].sum())
    assert set(by_rule["group"]) == set(real["rule_id"])
    det = table[table["table"] == "detections"].set_index("group")
    assert det.loc["mining_deforestation,2020", "count"] == 2
    assert det.loc["mining_deforestation,2020", "area_ha"] == pytest.approx(10.25)


def test_failed_write_leaves_the_old_file_and_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    target.write_text("old\n")

    def broken(tmp: Path) -> None:
        tmp.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_with(target, broken)
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]


@pytest.mark.parametrize(
    ("cell", "written"),
    [
        ("=1+1", "'=1+1"),
        ("+1+2", "'+1+2"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\nx"),  # a bare CR would end the row in a reader; LF is quoted by the writer
        ("-12.5", "-12.5"),  # a number held as text is no formula
        ("+3e5", "+3e5"),
        ("Mina =1", "Mina =1"),
        ("a\u202eb\x00", "a\\u202eb\\u0000"),
        (-12.5, -12.5),
        (None, None),
    ],
)
def test_csv_cells_are_spreadsheet_safe(cell: object, written: object) -> None:
    assert csv_cell(cell) == written
    # `map --run` reads licence_history.csv back: writing it again guards nothing twice
    assert csv_cell(csv_unguard(written)) == written


def test_unguard_takes_off_only_our_quote() -> None:
    assert csv_unguard("'=1+1") == "=1+1" and csv_unguard("'\tx") == "\tx"
    assert csv_unguard("'tis") == "'tis" and csv_unguard("'") == "'" and csv_unguard(3) == 3


def test_csv_keeps_numeric_columns_numeric(flags: gpd.GeoDataFrame, tmp_path: Path) -> None:
    hostile = flags.assign(site_id='=HYPERLINK("http://x.test")', area_ha=-1.5)
    table = pd.read_csv(write_csv(hostile, tmp_path / "flags.csv"))
    assert (table["site_id"] == '\'=HYPERLINK("http://x.test")').all()
    assert table["area_ha"].dtype.kind == "f" and (table["area_ha"] == -1.5).all()
