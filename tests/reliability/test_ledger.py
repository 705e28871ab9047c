"""Case 5, tampered ledger row: tests/comply/test_audit.py proves `ledger verify` names an
edited, deleted or re-hashed row. Here: a tampered row stays detected after later runs
append to the chain (a nightly run never launders an edit), and nothing is lost."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import geopandas as gpd
import pytest
from pyproj import CRS
from shapely.geometry import box

from pipeline.cli.main import main
from pipeline.core.config import ComplyParams
from pipeline.core.periods import parse_period
from pipeline.core.records import WGS84, Aoi
from pipeline.state.audit import StateStore, track_flags

UTM = CRS.from_epsg(32622)
X0, Y0 = 500_000.0, 100_000.0


def _flags(**sizes: float) -> gpd.GeoDataFrame:
    geoms = [
        box(X0 + 5000 * (ord(k) - 65), Y0, X0 + 5000 * (ord(k) - 65) + s, Y0 + 100) for k, s in sizes.items()
    ]
    frame = {
        "flag_id": list(sizes),
        "rule_id": "unregistered_mining",
        "site_id": None,
        "reason": "r",
        "status": "new",
    }
    return gpd.GeoDataFrame(frame, geometry=geoms, crs=UTM).to_crs(WGS84)


AOI = Aoi(
    aoi_id="t",
    name="T",
    designation="reserve",
    country="BR",
    geometry=gpd.GeoSeries([box(X0 - 1e4, Y0 - 1e4, X0 + 3e4, Y0 + 1e4)], crs=UTM).to_crs(WGS84).iloc[0],
    protected=True,
)


def _period(db: Path, label: str, frame: gpd.GeoDataFrame) -> None:
    track_flags(
        frame, aoi=AOI, period=parse_period(label), params=ComplyParams(), run_id=label, state_path=db
    )


def test_an_edit_stays_detected_after_later_runs_append(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "state.sqlite"
    _period(db, "2019", _flags(A=100, B=100))
    _period(db, "2020", _flags(A=400, C=100))
    with StateStore(db) as store:
        rows = store.ledger_rows()
    assert len(rows) >= 4
    victim = next(r for r in rows if r["flag_id"] == "A" and r["new_status"] == "worsening")
    with sqlite3.connect(db) as con:  # hide the worsening: the evidence a buyer would act on
        con.execute("UPDATE audit_ledger SET new_status = 'ongoing' WHERE seq = ?", (victim["seq"],))
    _period(db, "2021", _flags(A=400, C=100))
    _period(db, "2022", _flags(C=300))

    assert main(["ledger", "verify", "--state-db", str(db)]) == 1
    out = capsys.readouterr().out
    assert f"BROKEN row {victim['seq']}: row {victim['seq']} was edited" in out and "NOT intact" in out
    with StateStore(db) as store:
        n, _, problems = store.verify_ledger()
        after = store.ledger_rows()
    assert [p.seq for p in problems] == [victim["seq"]]  # only the edit, the appends chain fine
    assert n == len(after) > len(rows)
    assert [r["row_hash"] for r in after[: len(rows)] if r["seq"] != victim["seq"]] == [
        r["row_hash"] for r in rows if r["seq"] != victim["seq"]
    ]
