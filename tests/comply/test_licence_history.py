"""Licence history: each distinct licence state of a site is recorded once, run after run,
and the scorecard shows it oldest first."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import geopandas as gpd
import pandas as pd
from shapely.geometry import box

from pipeline.report.scorecard import site_slug, write_scorecards
from pipeline.state.licence_history import HISTORY_COLUMNS, record_licences


def _sites(phase_a: str = "AUTORIZAÇÃO DE PESQUISA", event_a: str | None = "2017-06-05") -> gpd.GeoDataFrame:
    allows = phase_a == "CONCESSÃO DE LAVRA"
    return gpd.GeoDataFrame(
        {
            "site_id": ["858075/2001", "850001/2010"],
            "name": ["858075/2001", "850001/2010"],
            "operator": ["Coop. Ouro", "Mineração <b>X</b>"],
            "phase": [phase_a, "REQUERIMENTO DE PESQUISA"],
            "licence_status": ["active", "pending"],
            "licence_kind": ["mining concession" if allows else "exploration permit", "application"],
            "allows_extraction": [allows, False],
            "last_event_date": [pd.Timestamp(event_a) if event_a else None, None],
            "last_event": [f"event of {event_a}" if event_a else None, None],
        },
        geometry=[box(-51.7, 0.9, -51.6, 1.0), box(-51.5, 0.9, -51.4, 1.0)],
        crs=4326,
    )


def _rows(db: Path) -> int:
    with sqlite3.connect(db) as con:
        return int(con.execute("SELECT count(*) FROM registry_licence_history").fetchone()[0])


def test_an_unchanged_registry_adds_nothing(tmp_path: Path) -> None:
    db = tmp_path / "state.sqlite"
    first = record_licences(db, aoi_id="a", sites=_sites(), run_id="r1", today="2026-11-20")
    again = record_licences(db, aoi_id="a", sites=_sites(), run_id="r2", today="2026-11-21")
    assert _rows(db) == 2
    pd.testing.assert_frame_equal(first, again)
    assert list(first.columns) == HISTORY_COLUMNS
    assert set(first["first_run_id"]) == {"r1"} and set(first["first_recorded"]) == {"2026-11-20"}


def test_a_phase_change_is_a_second_row_oldest_first(tmp_path: Path) -> None:
    db = tmp_path / "state.sqlite"
    record_licences(db, aoi_id="a", sites=_sites(), run_id="r1", today="2026-11-20")
    later = _sites("CONCESSÃO DE LAVRA", "2026-11-01")
    hist = record_licences(db, aoi_id="a", sites=later, run_id="r2", today="2026-11-22")
    mine = hist[hist["site_id"] == "858075/2001"]
    assert list(mine["phase"]) == ["AUTORIZAÇÃO DE PESQUISA", "CONCESSÃO DE LAVRA"]
    assert list(mine["event_date"]) == ["2017-06-05", "2026-11-01"]
    assert list(mine["allows_extraction"]) == [False, True]
    assert list(mine["first_run_id"]) == ["r1", "r2"]
    # the other site did not change; another AOI's history is separate
    assert (hist["site_id"] == "850001/2010").sum() == 1
    assert len(record_licences(db, aoi_id="b", sites=_sites(), run_id="r3")) == 2


def test_scorecard_shows_the_history_and_writes_its_csv(tmp_path: Path) -> None:
    db = tmp_path / "state.sqlite"
    record_licences(db, aoi_id="a", sites=_sites(), run_id="r1", today="2026-11-20")
    sites = _sites("CONCESSÃO DE LAVRA", "2026-11-01")
    hist = record_licences(db, aoi_id="a", sites=sites, run_id="r2", today="2026-11-22")
    flags = gpd.GeoDataFrame(
        {"flag_id": [], "rule_id": [], "status": [], "site_id": [], "severity": [], "detection_ids": []},
        geometry=[],
        crs=4326,
    )
    dets = gpd.GeoDataFrame(
        {"detection_id": [], "period": [], "area_ha": [], "kind": []}, geometry=[], crs=4326
    )
    out = write_scorecards(
        tmp_path / "sc",
        sites=sites,
        flags=flags,
        detections=dets,
        aoi_name="A",
        lang="pt",
        licences=hist,
    )
    page = (tmp_path / "sc" / f"{site_slug('858075/2001')}.html").read_text()
    assert "Histórico do título" in page
    older, newer = page.index("event of 2017-06-05"), page.index("event of 2026-11-01")
    assert older < newer and "2026-11-20" in page and "2026-11-22" in page
    written = pd.read_csv(out["licence_history.csv"], dtype=str)
    assert len(written) == 3 and set(written["site_id"]) == {"858075/2001", "850001/2010"}
    other = (tmp_path / "sc" / f"{site_slug('850001/2010')}.html").read_text()
    assert "<b>X</b>" not in other and "&lt;b&gt;X&lt;/b&gt;" in other


def test_a_return_to_an_earlier_state_is_a_new_row(tmp_path: Path) -> None:
    db = tmp_path / "state.sqlite"
    sites = _sites(event_a=None)
    for day, status in (("2026-01-01", "active"), ("2026-02-01", "suspended"), ("2026-03-01", "active")):
        hist = record_licences(
            db, aoi_id="a", sites=sites.assign(licence_status=[status, "pending"]), run_id=day, today=day
        )
    mine = hist[hist["site_id"] == "858075/2001"]
    assert list(mine["licence_status"]) == ["active", "suspended", "active"]
    assert list(mine["first_recorded"]) == ["2026-01-01", "2026-02-01", "2026-03-01"]


def test_a_blank_permission_is_not_a_permission(tmp_path: Path) -> None:
    sites = _sites().assign(allows_extraction=[float("nan"), None])
    hist = record_licences(tmp_path / "s.sqlite", aoi_id="a", sites=sites, run_id="r")
    assert not hist["allows_extraction"].any()
