"""Case 5, tampered ledger row: tests/comply/test_audit.py proves `ledger verify` names an
edited, deleted or re-hashed row. Here: a tampered row stays detected after later runs
append to the chain (a nightly run never launders an edit), and nothing is lost."""

from __future__ import annotations

import json
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

from .relhelp import reserve_site, write_detections

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


# ---- issue 15, case 10: a tamperer who re-chains, truncates or wipes -------------------


def _four_periods(db: Path) -> list[dict[str, object]]:
    _period(db, "2019", _flags(A=100, B=100))
    _period(db, "2020", _flags(A=400, C=100))
    _period(db, "2021", _flags(A=400, C=100))
    _period(db, "2022", _flags(C=300))
    with StateStore(db) as store:
        return store.ledger_rows()


def _rechain(db: Path, start: int) -> None:
    """Recompute every row hash from ``start`` on and move the head: what a tamperer who
    read this code does after editing a row."""
    with sqlite3.connect(db) as con:
        con.row_factory = sqlite3.Row
        rows = [dict(r) for r in con.execute("SELECT * FROM audit_ledger ORDER BY seq")]
        prev = GENESIS
        for r in rows:
            if r["seq"] >= start:
                values = [r[k] for k in ("seq", "recorded_at", "aoi_id", "period", "run_id", "flag_id")]
                values += [r[k] for k in ("event", "old_status", "new_status", "detail")]
                if r.get("data") is not None:
                    values.append(r["data"])
                h = row_hash(prev, values)
                con.execute(
                    "UPDATE audit_ledger SET prev_hash = ?, row_hash = ? WHERE seq = ?", (prev, h, r["seq"])
                )
                r["row_hash"] = h
            prev = r["row_hash"]
        last = rows[-1]["seq"] if rows else 0
        con.execute("UPDATE audit_ledger_head SET seq = ?, row_hash = ? WHERE id = 1", (last, prev))


def _edit_then_rechain(db: Path, rows: list[dict[str, object]]) -> None:
    victim = next(r for r in rows if r["flag_id"] == "A" and r["new_status"] == "worsening")
    with sqlite3.connect(db) as con:
        con.execute("UPDATE audit_ledger SET new_status = 'ongoing' WHERE seq = ?", (victim["seq"],))
    _rechain(db, int(victim["seq"]))  # type: ignore[arg-type]


def _truncate_and_fix_head(db: Path, rows: list[dict[str, object]]) -> None:
    keep = len(rows) // 2
    with sqlite3.connect(db) as con:
        con.execute("DELETE FROM audit_ledger WHERE seq > ?", (keep,))
    _rechain(db, keep + 1)


def _wipe_all(db: Path, rows: list[dict[str, object]]) -> None:
    with sqlite3.connect(db) as con:
        con.execute("DELETE FROM audit_ledger")
        con.execute("DELETE FROM audit_ledger_head")


def _append_a_suppression(db: Path, rows: list[dict[str, object]]) -> None:
    """A well-chained `suppress` event added at the end (and the head moved): the ledger is
    where suppressions come from, so this is the row a tamperer would forge."""
    last = rows[-1]
    seq = int(last["seq"]) + 1  # type: ignore[call-overload]
    values = [seq, "2026-01-01T00:00:00+00:00", "t", None, None, "C", "suppress", "ongoing", "suppressed"]
    values += ["by mallory: not mining (footprint 9.00 ha)"]
    h = row_hash(str(last["row_hash"]), values)
    with sqlite3.connect(db) as con:
        con.execute(
            "INSERT INTO audit_ledger (seq, recorded_at, aoi_id, period, run_id, flag_id, event, old_status, "
            "new_status, detail, prev_hash, row_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (*values, last["row_hash"], h),
        )
        con.execute("UPDATE audit_ledger_head SET seq = ?, row_hash = ? WHERE id = 1", (seq, h))


@pytest.mark.parametrize(
    "attack",
    [_edit_then_rechain, _truncate_and_fix_head, _wipe_all, _append_a_suppression],
    ids=lambda f: f.__name__[1:],
)
def test_a_rewritten_ledger_no_longer_matches_its_anchored_heads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], attack: object
) -> None:
    db = tmp_path / "state.sqlite"
    rows = _four_periods(db)
    assert main(["ledger", "verify", "--state-db", str(db)]) == 0
    capsys.readouterr()
    attack(db, rows)  # type: ignore[operator]
    with StateStore(db) as store:  # the chain inside the file is consistent again ...
        chain = store.ledger_rows()
    prev = GENESIS
    for r in chain:
        assert r["prev_hash"] == prev
        prev = r["row_hash"]
    # ... but the heads anchored outside it at each run say otherwise
    assert main(["ledger", "verify", "--state-db", str(db)]) == 1
    out = capsys.readouterr().out
    assert "NOT intact" in out and "ledger-heads" in out, out


def test_a_row_slipped_into_comply_suppressions_silences_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "state.sqlite"
    _period(db, "2019", _flags(A=100, B=100))
    with sqlite3.connect(db) as con:  # no `flags suppress`, no ledger event
        con.execute(
            "INSERT INTO comply_suppressions VALUES ('A', 't', 'not mining', 'mallory', 1000.0, "
            "'2020-01-01T00:00:00+00:00', 1, NULL, NULL)"
        )
    res = track_flags(
        _flags(A=400, B=100),
        aoi=AOI,
        period=parse_period("2020"),
        params=ComplyParams(),
        run_id="2020",
        state_path=db,
    )
    assert res.flags.set_index("flag_id").loc["A", "status"] == "worsening"  # was: suppressed
    assert main(["ledger", "verify", "--state-db", str(db)]) == 1
    out = capsys.readouterr().out
    assert "comply_suppressions" in out and "NOT intact" in out
    # a real suppression is a ledger event and still holds
    assert main(["flags", "suppress", "B", "--reason", "river beach", "--state-db", str(db)]) == 0
    res = track_flags(
        _flags(A=400, B=100),
        aoi=AOI,
        period=parse_period("2021"),
        params=ComplyParams(),
        run_id="2021",
        state_path=db,
    )
    assert res.flags.set_index("flag_id").loc["B", "status"] == "suppressed"
    with StateStore(db) as store:
        assert [r["event"] for r in store.ledger_rows() if r["flag_id"] == "B"][-2:] == ["suppress", "status"]


def test_each_run_json_carries_the_anchored_head_and_a_rewritten_ledger_stops_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = reserve_site(tmp_path)
    assert main(argv) == 0
    db = tmp_path / "out" / "asm-monitor.sqlite"
    run = json.loads((tmp_path / "out" / "rel-reserve" / "run.json").read_text())
    with StateStore(db) as store:
        n, head, problems = store.verify_ledger()
    assert problems == [] and n == 2
    assert run["ledger_head"]["row_hash"] == head and run["ledger_head"]["seq"] == n
    heads = db.with_name(db.name + ".ledger-heads").read_text().splitlines()
    assert json.loads(heads[-1])["row_hash"] == head
    # a tamperer rewrites the chain: the next night refuses to run on it, and sends nothing
    with sqlite3.connect(db) as con:
        con.execute("UPDATE audit_ledger SET detail = 'nothing to see' WHERE seq = 1")
    _rechain(db, 1)
    write_detections(tmp_path / "data", "2025", [(0, 0, 500)])
    argv[argv.index("2024")] = "2025"
    outbox = sorted(p.name for p in (tmp_path / "out" / "rel-reserve" / "alerts" / "outbox").iterdir())
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert str(db) in err and "ledger-heads" in err
    assert json.loads((tmp_path / "out" / "rel-reserve" / "run.json").read_text())["period"] == "2024"
    assert (
        sorted(p.name for p in (tmp_path / "out" / "rel-reserve" / "alerts" / "outbox").iterdir()) == outbox
    )
