"""The hash-chained audit ledger and the ``flags`` / ``ledger`` commands, on a real SQLite file."""

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
from pipeline.state.audit import GENESIS, StateStore, row_hash, track_flags

UTM = CRS.from_epsg(32622)
X0, Y0 = 500_000.0, 100_000.0
PARAMS = ComplyParams(worsening_growth_pct=20.0, resolve_after_periods=2)


def _flags(**sizes: float) -> gpd.GeoDataFrame:
    geoms = [
        box(X0 + 5000 * (ord(k) - 65), Y0, X0 + 5000 * (ord(k) - 65) + s, Y0 + 100) for k, s in sizes.items()
    ]
    return gpd.GeoDataFrame(
        {
            "flag_id": list(sizes),
            "rule_id": "unregistered_mining",
            "site_id": None,
            "reason": "r",
            "status": "new",
        },
        geometry=geoms,
        crs=UTM,
    ).to_crs(WGS84)


def _aoi() -> Aoi:
    geom = gpd.GeoSeries([box(X0 - 1e4, Y0 - 1e4, X0 + 3e4, Y0 + 1e4)], crs=UTM).to_crs(WGS84).iloc[0]
    return Aoi(aoi_id="t", name="T", designation="reserve", country="BR", geometry=geom, protected=True)


@pytest.fixture
def ledger_db(tmp_path: Path) -> Path:
    db = tmp_path / "asm-monitor.sqlite"
    for label, frame in [
        ("2019", _flags(A=100, B=100)),
        ("2020", _flags(A=150, C=100)),
        ("2021", _flags(C=100)),
        ("2022", _flags(C=200)),
    ]:
        track_flags(frame, aoi=_aoi(), period=parse_period(label), params=PARAMS, run_id=label, state_path=db)
    return db


def test_every_status_change_is_chained(ledger_db: Path) -> None:
    with StateStore(ledger_db) as store:
        rows = store.ledger_rows()
        n, head, problems = store.verify_ledger()
    events = [(r["period"], r["flag_id"], r["old_status"], r["new_status"]) for r in rows]
    assert events == [
        ("2019", "A", None, "new"),
        ("2019", "B", None, "new"),
        ("2020", "A", "new", "worsening"),
        ("2020", "C", None, "new"),
        ("2020", "B", "new", "ongoing"),
        ("2021", "C", "new", "ongoing"),
        ("2021", "A", "worsening", "ongoing"),
        ("2021", "B", "ongoing", "resolved"),
        ("2022", "C", "ongoing", "worsening"),
        ("2022", "A", "ongoing", "resolved"),
    ]
    assert problems == [] and n == len(rows) == 10
    # the chain is recomputable by hand: genesis, then each row over the previous hash
    prev = GENESIS
    for r in rows:
        fields = [r[k] for k in ("seq", "recorded_at", "aoi_id", "period", "run_id", "flag_id")]
        fields += [r[k] for k in ("event", "old_status", "new_status", "detail")]
        assert r["prev_hash"] == prev and row_hash(prev, fields) == r["row_hash"]
        prev = r["row_hash"]
    assert head == prev


def _sql(db: Path, statement: str) -> None:
    with sqlite3.connect(db) as conn:
        conn.execute(statement)


def test_ledger_verify_cli_passes_on_an_intact_ledger(
    ledger_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["ledger", "verify", "--state-db", str(ledger_db)]) == 0
    assert "10 rows, hash chain intact" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("tamper", "named"),
    [
        ("UPDATE audit_ledger SET new_status = 'resolved' WHERE seq = 3", "BROKEN row 3: row 3 was edited"),
        ("UPDATE audit_ledger SET detail = detail || ' ' WHERE seq = 7", "BROKEN row 7: row 7 was edited"),
        ("DELETE FROM audit_ledger WHERE seq = 5", "BROKEN row 6: rows 5..5 are missing (deleted)"),
        ("DELETE FROM audit_ledger WHERE seq = 10", "BROKEN row 10: row 10 (the head) is missing"),
        ("DELETE FROM audit_ledger WHERE seq = 1", "BROKEN row 2: rows 1..1 are missing"),
    ],
)
def test_ledger_verify_names_the_edited_or_deleted_row(
    ledger_db: Path, tamper: str, named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _sql(ledger_db, tamper)
    assert main(["ledger", "verify", "--state-db", str(ledger_db)]) == 1
    out = capsys.readouterr().out
    assert named in out and "NOT intact" in out


def test_a_row_rehashed_by_the_editor_still_breaks_the_next_link(ledger_db: Path) -> None:
    with StateStore(ledger_db) as store:
        r = store.ledger_rows()[3]
    fields = [
        r[k] for k in ("seq", "recorded_at", "aoi_id", "period", "run_id", "flag_id", "event", "old_status")
    ]
    forged = row_hash(r["prev_hash"], [*fields, "ongoing", r["detail"]])
    _sql(ledger_db, f"UPDATE audit_ledger SET new_status = 'ongoing', row_hash = '{forged}' WHERE seq = 4")
    with StateStore(ledger_db) as store:
        problems = store.verify_ledger()[2]
    assert [(p.seq, p.message) for p in problems] == [(5, "row 5: previous-row hash does not match row 4")]


def test_suppress_cli_holds_the_flag_and_is_ledgered(
    ledger_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(ledger_db)
    assert main(["flags", "suppress", "C", "--reason", "  ", "--state-db", db]) == 1
    assert main(["flags", "suppress", "nope", "--reason", "x", "--state-db", db]) == 1
    assert (
        main(
            [
                "flags",
                "suppress",
                "C",
                "--reason",
                "river beach, not a pit",
                "--analyst",
                "ana",
                "--state-db",
                db,
            ]
        )
        == 0
    )
    capsys.readouterr()
    # next period: C seen with the same footprint -> suppressed; then grows 2 ha -> 2.6 ha (+30 %) -> back
    res = track_flags(
        _flags(C=200),
        aoi=_aoi(),
        period=parse_period("2023"),
        params=PARAMS,
        run_id="2023",
        state_path=ledger_db,
    )
    assert res.flags.set_index("flag_id").loc["C", "status"] == "suppressed"
    res = track_flags(
        _flags(C=260),
        aoi=_aoi(),
        period=parse_period("2024"),
        params=PARAMS,
        run_id="2024",
        state_path=ledger_db,
    )
    assert res.flags.set_index("flag_id").loc["C", "status"] == "worsening" and res.lifted == ["C"]
    with StateStore(ledger_db) as store:
        events = [(r["event"], r["flag_id"], r["new_status"]) for r in store.ledger_rows()[10:]]
        assert store.suppressions("t") == {}
        assert store.verify_ledger()[2] == []
    assert events == [
        ("suppress", "C", "suppressed"),
        ("status", "C", "suppressed"),
        ("status", "C", "worsening"),
        ("lift", "C", "worsening"),
    ]
    assert main(["flags", "history", "C", "--state-db", db]) == 0
    out = capsys.readouterr().out
    assert "2023       suppressed" in out and "river beach, not a pit" in out
    assert main(["flags", "list", "--status", "worsening", "--state-db", db]) == 0
    assert "1 flags" in capsys.readouterr().out
