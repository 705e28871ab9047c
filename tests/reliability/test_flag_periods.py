"""Issue 15, cases 2 and 3: a flag's lifecycle across nightly incremental runs.

Case 2: a new Amazon Mining Watch quarter arriving under the nightly `run --all` wiped the
flags (night 2 ran period `<today>/<today>`: 0 detections, only `compliant` flags).
Case 3: every flag was announced `new` again on the second night, because the first run's
period `all` sorted as 9999-12-31 and the next night found no state before it.

The lifecycle is ordered by the evidence dates, never by how a period is named, and an
incremental night gives the flags a `--full` run gives on the same inputs.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections import Counter
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
from pyproj import CRS
from shapely.geometry import box

from pipeline.cli.main import main
from pipeline.core.config import ComplyParams
from pipeline.core.periods import Period, parse_period
from pipeline.core.records import WGS84, Aoi
from pipeline.state.audit import StateStore, track_flags

AOI_ID = "amapa-gold"
#: what identifies a flag and what it found, whatever its history (status, run id)
SAME = ["flag_id", "rule_id", "site_id", "severity", "detection_ids", "area_ha"]


@dataclass
class Nights:
    night1: gpd.GeoDataFrame
    night2: gpd.GeoDataFrame
    full_fresh: gpd.GeoDataFrame
    full_after: gpd.GeoDataFrame
    run1: dict
    run2: dict
    ledger: list[dict]
    outbox: list[str]
    q3_rows: int


def _cli(data: Path, aois: Path, out: Path, *extra: str) -> None:
    argv = ["--sample-data", str(data), "--aoi-dir", str(aois), "run", "--all", "--out", str(out)]
    assert main([*argv, "--scheduler", "threads", "--no-progress", *extra]) == 0


def _flags(out: Path) -> gpd.GeoDataFrame:
    return gpd.read_parquet(out / AOI_ID / "flags.parquet").sort_values("flag_id").reset_index(drop=True)


@pytest.fixture(scope="module")
def nights(tmp_path_factory: pytest.TempPathFactory, sample_data: Path, aoi_dir: Path) -> Nights:
    """amapa-gold run nightly (`run --all`, no --period, as cron does): night 1 with the AMW
    files up to 2025Q2, night 2 after the 2025Q3 file arrived; and `--full` over every file,
    once into a fresh folder and once onto the state the two nights left."""
    root = tmp_path_factory.mktemp("nights")
    data, aois = root / "data", root / "aoi"
    amw = data / "detections" / "amw_amapa"
    amw.mkdir(parents=True)
    (data / "registry").mkdir()
    shutil.copy(sample_data / "registry" / "sigmine_amapa_2021.geojson", data / "registry")
    q3 = sample_data / "detections" / "amw_amapa" / "amw_mining_amapa_2025Q3.geojson"
    for f in sorted((sample_data / "detections" / "amw_amapa").glob("*.geojson")):
        if f != q3:
            shutil.copy(f, amw)
    aois.mkdir()
    shutil.copy(aoi_dir / f"{AOI_ID}.geojson", aois)
    nightly = root / "nightly"
    _cli(data, aois, nightly)
    night1 = _flags(nightly)
    run1 = json.loads((nightly / AOI_ID / "run.json").read_text())
    shutil.copy(q3, amw)  # the quarter is published months late
    _cli(data, aois, nightly)
    night2 = _flags(nightly)
    run2 = json.loads((nightly / AOI_ID / "run.json").read_text())
    with sqlite3.connect(nightly / "asm-monitor.sqlite") as con:
        con.row_factory = sqlite3.Row
        ledger = [dict(r) for r in con.execute("SELECT * FROM audit_ledger ORDER BY seq")]
    outbox = sorted(p.name for p in (nightly / AOI_ID / "alerts" / "outbox").glob("*.json"))
    fresh = root / "full"
    _cli(data, aois, fresh, "--full")
    full_fresh = _flags(fresh)
    _cli(data, aois, nightly, "--full")
    full_after = _flags(nightly)
    q3_rows = len(json.loads(q3.read_text())["features"])
    return Nights(night1, night2, full_fresh, full_after, run1, run2, ledger, outbox, q3_rows)


def _problems(flags: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    return flags[flags["rule_id"] != "compliant"]


def test_a_late_amw_quarter_keeps_every_earlier_flag(nights: Nights) -> None:
    """Case 2: night 2 processes the new quarter without wiping what night 1 found."""
    before, after = _problems(nights.night1), _problems(nights.night2).set_index("flag_id")
    assert len(before) > 200  # 274 problem flags (407 with compliant sites) on night 1
    kept = after.loc[after.index.intersection(before["flag_id"])]
    # every earlier flag is still there, seen, and neither re-opened nor resolved
    assert len(kept) == len(before)
    assert kept["seen"].astype(bool).all()
    assert set(kept["status"]) <= {"ongoing", "worsening"}
    # the quarter's detections were read (they were cut off by the `<today>/<today>` window)
    c1, c2 = nights.run1["counts"], nights.run2["counts"]
    assert c2["detections"] > c1["detections"]
    assert c2["flagged_ha"] >= c1["flagged_ha"] > 0
    assert nights.run2["period"] != f"{date.today()}/{date.today()}"


def test_no_flag_is_announced_new_twice(nights: Nights) -> None:
    """Case 3: `None -> new` at most once per flag in the ledger, one `new` alert per flag."""
    opened = Counter(
        r["flag_id"] for r in nights.ledger if r["event"] == "status" and r["old_status"] is None
    )
    assert opened and max(opened.values()) == 1, opened.most_common(3)
    new_alerts = Counter(name.split("-new-")[0] for name in nights.outbox if "-new-" in name)
    assert new_alerts and max(new_alerts.values()) == 1
    # night 2 opened only flags night 1 did not have
    night1 = set(nights.night1["flag_id"])
    assert not night1 & set(nights.night2.loc[nights.night2["status"] == "new", "flag_id"])


def _same(a: gpd.GeoDataFrame, b: gpd.GeoDataFrame, columns: list[str]) -> None:
    left, right = a[columns].reset_index(drop=True), b[columns].reset_index(drop=True)
    pd.testing.assert_frame_equal(left, right, check_dtype=False)


def test_incremental_and_full_give_the_same_flags(nights: Nights) -> None:
    """Case 3: the nightly incremental run and `--full` over the same inputs agree: the
    same flags with the same findings in a fresh folder (where every flag is new), and the
    same statuses too on the state the nights left."""
    _same(nights.night2, nights.full_fresh, SAME)
    assert set(nights.full_fresh["status"]) == {"new"}
    _same(nights.night2, nights.full_after, [*SAME, "status", "opened_period", "history"])


# ---- the lifecycle itself, whatever the periods are called ---------------------------

UTM = CRS.from_epsg(32622)
X0, Y0 = 500_000.0, 100_000.0
AOI = Aoi(
    aoi_id="t",
    name="T",
    designation="reserve",
    country="BR",
    geometry=gpd.GeoSeries([box(X0 - 1e4, Y0 - 1e4, X0 + 3e4, Y0 + 1e4)], crs=UTM).to_crs(WGS84).iloc[0],
    protected=True,
)


def _step(sizes: dict[str, float], seen: date) -> gpd.GeoDataFrame:
    geoms = [
        box(X0 + 5000 * (ord(k) - 65), Y0, X0 + 5000 * (ord(k) - 65) + s, Y0 + 100) for k, s in sizes.items()
    ]
    frame = {
        "flag_id": list(sizes),
        "rule_id": "unregistered_mining",
        "site_id": None,
        "reason": "r",
        "status": "new",
        "first_seen": seen,
        "last_seen": seen,
    }
    return gpd.GeoDataFrame(frame, geometry=geoms, crs=UTM).to_crs(WGS84)


NIGHT1 = _step({"A": 100, "B": 100}, date(2024, 12, 31))
NIGHT2 = _step({"A": 400, "C": 100}, date(2025, 9, 30))


@pytest.mark.parametrize(
    "labels",
    [
        (None, None),  # `run --all --full` twice, the second time with the late quarter
        (None, "2018-12-31/2026-11-24"),  # first nightly run, then an incremental window
        ("2024", "2025Q3"),
        ("2018/2024", "2025"),
        ("2024-12-31", "2025-07-01/2025-12-31"),
    ],
)
def test_the_lifecycle_never_depends_on_the_period_name(
    tmp_path: Path, labels: tuple[str | None, str | None]
) -> None:
    db = tmp_path / "state.sqlite"
    results = []
    for label, frame in zip(labels, (NIGHT1, NIGHT2), strict=True):
        period: Period | None = parse_period(label) if label else None
        res = track_flags(frame, aoi=AOI, period=period, params=ComplyParams(), run_id="r", state_path=db)
        results.append(res.flags.set_index("flag_id"))
    assert results[1]["status"].to_dict() == {"A": "worsening", "C": "new", "B": "ongoing"}
    # A was first seen on night 1's evidence, not re-dated to night 2's
    assert str(results[1].loc["A", "first_seen"])[:10] == "2024-12-31"
    with StateStore(db) as store:
        rows = store.ledger_rows()
        assert store.verify_ledger()[2] == []
    opened = Counter(r["flag_id"] for r in rows if r["old_status"] is None)
    assert opened == {"A": 1, "B": 1, "C": 1}


def test_a_run_over_everything_stored_by_an_earlier_version_is_placed_by_its_evidence(
    tmp_path: Path,
) -> None:
    """State files in service hold the first nightly run as ``all`` from 0001-01-01 to
    9999-12-31 (after every other period): they are placed at their evidence on open, so the
    next night continues from them instead of announcing every flag again."""
    db = tmp_path / "state.sqlite"
    track_flags(NIGHT1, aoi=AOI, period=None, params=ComplyParams(), run_id="r1", state_path=db)
    with sqlite3.connect(db) as con:  # what the earlier version wrote for `period=None`
        con.execute(
            "UPDATE comply_flag_state SET period = 'all', period_start = '0001-01-01', period_end = '9999-12-31'"
        )
    res = track_flags(
        NIGHT2,
        aoi=AOI,
        period=parse_period("2025-07-01/2026-11-24"),
        params=ComplyParams(),
        run_id="r2",
        state_path=db,
    )
    assert res.flags.set_index("flag_id")["status"].to_dict() == {
        "A": "worsening",
        "C": "new",
        "B": "ongoing",
    }
    with sqlite3.connect(db) as con:
        ends = dict(con.execute("SELECT DISTINCT period, period_end FROM comply_flag_state").fetchall())
    assert ends == {"all": "2024-12-31", "2025-09-30/2025-09-30": "2025-09-30"}
