"""Flag lifecycle (pure) and its persistence in the SQLite state store."""

from __future__ import annotations

import logging
from pathlib import Path

import geopandas as gpd
import pytest
from pyproj import CRS
from shapely.geometry import box

from pipeline.comply.lifecycle import FlagState, advance, status_counts
from pipeline.core.config import ComplyParams
from pipeline.core.periods import parse_period
from pipeline.core.records import WGS84, Aoi
from pipeline.state.audit import StateStore, track_flags

UTM = CRS.from_epsg(32622)
X0, Y0 = 500_000.0, 100_000.0
PARAMS = ComplyParams(worsening_growth_pct=20.0, resolve_after_periods=2)


def flags(**footprints: tuple[float, float]) -> gpd.GeoDataFrame:
    """Flags named by id, each a w x h metre box at its own place (ids A, B, ...)."""
    geoms, ids = [], []
    for fid, (w, h) in sorted(footprints.items()):
        x = X0 + 5000 * (ord(fid) - ord("A"))  # each id keeps its place
        geoms.append(box(x, Y0, x + w, Y0 + h))
        ids.append(fid)
    frame = gpd.GeoDataFrame(
        {
            "flag_id": ids,
            "rule_id": "unregistered_mining",
            "site_id": None,
            "area_ha": [g.area / 1e4 for g in geoms],
            "reason": [f"mining at {f}" for f in ids],
        },
        geometry=geoms,
        crs=UTM,
    )
    return frame.to_crs(WGS84)


def step(
    frame: gpd.GeoDataFrame, prev: dict[str, FlagState], period: str, **kw: object
) -> tuple[dict[str, str], dict[str, FlagState], object]:
    res = advance(frame, prev, aoi_id="t", period=period, crs=UTM, params=PARAMS, **kw)  # type: ignore[arg-type]
    return dict(zip(res.flags["flag_id"], res.flags["status"], strict=True)), res.states, res


def test_new_ongoing_worsening_resolved_and_reopened() -> None:
    s1, st1, _ = step(flags(A=(100, 100)), {}, "2019")
    assert s1 == {"A": "new"}
    # a rerun of the same period from the same previous state gives the same result
    assert step(flags(A=(100, 100)), {}, "2019")[0] == s1
    s2, st2, _ = step(flags(A=(100, 100), B=(100, 100)), st1, "2020")
    assert s2 == {"A": "ongoing", "B": "new"}
    # A grows 1.0 -> 1.3 ha (+30 % > 20 %); B 1.0 -> 1.1 ha (+10 %)
    s3, st3, r3 = step(flags(A=(100, 130), B=(100, 110)), st2, "2021")
    assert s3 == {"A": "worsening", "B": "ongoing"}
    growth = dict(zip(r3.flags["flag_id"], r3.flags["growth_pct"], strict=True))
    assert growth["A"] == pytest.approx(30.0, abs=0.1) and growth["B"] == pytest.approx(10.0, abs=0.1)
    assert st3["A"].area_ha == pytest.approx(1.3, rel=1e-3)
    s4, st4, _ = step(flags(B=(100, 110)), st3, "2022")
    assert s4 == {"A": "ongoing", "B": "ongoing"}  # A not seen for one period: still open
    assert st4["A"].missed == 1
    s5, st5, r5 = step(flags(B=(100, 110)), st4, "2023")
    assert s5 == {"A": "resolved", "B": "ongoing"}
    assert r5.flags.set_index("flag_id").loc["A", "reason"].startswith("Resolved: not seen for 2 period(s)")
    s6, st6, _ = step(flags(B=(100, 110)), st5, "2024")
    assert s6 == {"B": "ongoing"}  # resolved flags are reported once
    s7, st7, r7 = step(flags(A=(50, 50), B=(100, 110)), st6, "2025")
    assert s7["A"] == "new"
    assert [h[:2] for h in st7["A"].history] == [
        ("2019", "new"),
        ("2020", "ongoing"),
        ("2021", "worsening"),
        ("2022", "ongoing"),
        ("2023", "resolved"),
        ("2025", "new"),
    ]
    # a reopened flag starts a new footprint
    assert st7["A"].area_ha == pytest.approx(0.25, rel=1e-3)
    assert r7.flags.set_index("flag_id").loc["A", "history"].endswith("2023:resolved;2025:new")


def test_growth_is_measured_on_the_union_of_footprints_not_their_sum() -> None:
    _, st1, _ = step(flags(A=(100, 100)), {}, "2019")
    # the same scar reported again (a full-snapshot source): no growth
    s2, st2, _ = step(flags(A=(100, 100)), st1, "2020")
    assert s2 == {"A": "ongoing"} and st2["A"].area_ha == pytest.approx(1.0, rel=1e-3)


def test_suppression_holds_until_the_evidence_changes_materially() -> None:
    from pipeline.comply.lifecycle import Suppression

    _, st1, _ = step(flags(A=(100, 100)), {}, "2019")
    sup = {"A": Suppression("A", "cloud shadow on a road", "ana", st1["A"].area_ha, "2020-01-02")}
    s2, st2, r2 = step(flags(A=(100, 110)), st1, "2020", suppressions=sup)
    assert s2 == {"A": "suppressed"} and not r2.lifted
    assert r2.flags["suppression_reason"].iloc[0] == "cloud shadow on a road"
    s3, st3, _ = step(flags(B=(10, 10)), st2, "2021", suppressions=sup)
    assert s3["A"] == "suppressed"  # not seen: the suppression holds
    s4, _, r4 = step(flags(A=(100, 125)), st3, "2022", suppressions=sup)
    assert s4["A"] == "worsening" and r4.lifted == ["A"]
    assert "Suppression lifted: footprint grew from 1.0 ha to 1.2 ha" in r4.flags["reason"].iloc[0]


def test_suppression_made_between_runs_holds_when_the_flag_is_not_seen() -> None:
    from pipeline.comply.lifecycle import Suppression

    _, st1, _ = step(flags(A=(100, 100)), {}, "2024")
    # the analyst suppresses A after the 2024 run; A is not detected in 2025Q2
    sup = {"A": Suppression("A", "false positive: river beach", "ana", st1["A"].area_ha, "2025-01-10")}
    s2, _, r2 = step(flags(B=(10, 10)), st1, "2025Q2", suppressions=sup)
    assert s2["A"] == "suppressed"
    assert r2.flags.set_index("flag_id").loc["A", "suppression_reason"] == "false positive: river beach"


def _aoi() -> Aoi:
    geom = gpd.GeoSeries([box(X0 - 1e4, Y0 - 1e4, X0 + 3e4, Y0 + 1e4)], crs=UTM).to_crs(WGS84).iloc[0]
    return Aoi(aoi_id="t", name="T", designation="reserve", country="BR", geometry=geom, protected=True)


def test_state_store_makes_reruns_idempotent_and_fresh_files_new(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "state.sqlite"
    periods = {p: parse_period(p) for p in ("2019", "2020", "2021")}
    seq = {
        "2019": flags(A=(100, 100)),
        "2020": flags(A=(100, 150), B=(100, 100)),
        "2021": flags(B=(100, 100)),
    }
    out = {}
    for label, frame in seq.items():
        res = track_flags(
            frame, aoi=_aoi(), period=periods[label], params=PARAMS, run_id=label, state_path=db
        )
        out[label] = dict(zip(res.flags["flag_id"], res.flags["status"], strict=True))
    assert out == {
        "2019": {"A": "new"},
        "2020": {"A": "worsening", "B": "new"},
        "2021": {"A": "ongoing", "B": "ongoing"},
    }
    with StateStore(db) as store:
        rows_before = len(store.ledger_rows())
        assert store.verify_ledger()[2] == []
    # the same period again: same statuses, nothing appended to the ledger
    again = track_flags(
        seq["2021"], aoi=_aoi(), period=periods["2021"], params=PARAMS, run_id="x", state_path=db
    )
    assert dict(zip(again.flags["flag_id"], again.flags["status"], strict=True)) == out["2021"]
    with StateStore(db) as store:
        assert len(store.ledger_rows()) == rows_before
        hist = store.flag_history("A")
        # UTM grid metres are 0.9996 true metres: the equal-area hectares are 0.08 % larger
        assert [h[:2] for h in hist] == [("2019", "new"), ("2020", "worsening"), ("2021", "ongoing")]
        assert [h[2] for h in hist] == pytest.approx([1.0, 1.5, 1.5], rel=1e-3)
    # an earlier period re-run after later ones: computed from its own past, with a warning
    with caplog.at_level(logging.WARNING):
        old = track_flags(
            seq["2020"], aoi=_aoi(), period=periods["2020"], params=PARAMS, run_id="y", state_path=db
        )
    assert dict(zip(old.flags["flag_id"], old.flags["status"], strict=True)) == out["2020"]
    assert "re-run after later periods (2021)" in caplog.text
    fresh = track_flags(
        seq["2021"],
        aoi=_aoi(),
        period=periods["2021"],
        params=PARAMS,
        run_id="z",
        state_path=tmp_path / "new.sqlite",
    )
    assert set(fresh.flags["status"]) == {"new"}
    assert status_counts(fresh.flags)["new"] == 1
