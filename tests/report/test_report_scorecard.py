"""Site scorecards: content, escaping, hectares per period against an independent sum."""

from __future__ import annotations

import csv
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest

from pipeline.cli.main import main
from pipeline.report.scorecard import site_slug, trend, write_scorecards


def test_slugs_are_safe_and_distinct() -> None:
    a, b = site_slug("858075/2001"), site_slug("858075-2001")
    assert a != b and a.startswith("858075-2001-")
    assert site_slug("../../etc/passwd").replace("-", "").isalnum()


def test_trend_matches_a_hand_count(flags: gpd.GeoDataFrame, detections: gpd.GeoDataFrame) -> None:
    t = trend(pd.DataFrame(flags.drop(columns="geometry")), pd.DataFrame(detections.drop(columns="geometry")))
    t = t.set_index(["site_id", "period"])
    # site 100/2001: d1 (2019, 12.5 ha) and d2 (2020, 7.25 ha) inside (awvl); d3 (2020, 3 ha) outside
    assert t.loc[("100/2001", "2019"), "inside_ha"] == pytest.approx(12.5)
    assert t.loc[("100/2001", "2020"), "inside_ha"] == pytest.approx(7.25)
    assert t.loc[("100/2001", "2020"), "outside_ha"] == pytest.approx(3.0)
    assert t.loc[("200/2002", "2021"), "inside_ha"] == pytest.approx(1.5)


def test_scorecards_html_and_csv(
    tmp_path: Path, flags: gpd.GeoDataFrame, detections: gpd.GeoDataFrame, sites: gpd.GeoDataFrame
) -> None:
    out = write_scorecards(
        tmp_path,
        sites=sites,
        flags=flags,
        detections=detections,
        aoi_name="Test AOI",
        lang="fr",
    )
    page = (tmp_path / f"{site_slug('100/2001')}.html").read_text()
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "<html lang='fr'>" in page and "Fiche du site" in page
    # the clause in the reader's language (the flag's own English text is in the CSV)
    assert "Guide OCDE sur le devoir de diligence pour les minerais, annexe II (extraction illégale" in page
    # no licence history recorded: the registry's current state is the one row
    assert "Historique du titre" in page
    assert page.count("AUTORIZAÇÃO DE PESQUISA") >= 2  # licence table + history row
    assert "../map.html#flag-aaaa000000000001" in page and "../map.html#flag-aaaa000000000002" in page
    assert page.count("<svg") == 1 and page.count("<rect") == 4  # 2 periods x inside/outside
    assert "nouveau (1)" in page and "en aggravation (1)" in page
    compliant = (tmp_path / f"{site_slug('200/2002')}.html").read_text()
    assert "conforme" in compliant.lower()
    rows = list(csv.DictReader((tmp_path / f"{site_slug('100/2001')}.csv").open()))
    assert sorted(r["flag_id"] for r in rows) == ["aaaa000000000001", "aaaa000000000002"]
    summary = pd.read_csv(out["sites.csv"]).set_index("site_id")
    assert summary.loc["100/2001", "state"] == "flagged_high"
    assert summary.loc["100/2001", "ha_outside_title"] == pytest.approx(3.0)
    assert summary.loc["300/2003", "state"] == "no_extraction_allowed"
    assert (tmp_path / "index.html").read_text().count("<tr>") == len(sites) + 1


def test_map_command_rerenders_in_spanish(real_run: Path, tmp_path: Path, sample_data: Path) -> None:
    target = tmp_path / "map-es.html"
    code = main(
        [
            "--sample-data",
            str(sample_data),
            "map",
            "--run",
            str(real_run),
            "--lang",
            "es",
            "--output",
            str(target),
        ]
    )
    assert code == 0
    page = target.read_text()
    assert "<html lang='es'>" in page and "Alertas de cumplimiento" in page
    assert page.count('"className": "asm-flag') == (real_run / "map.html").read_text().count(
        '"className": "asm-flag'
    )


def test_map_command_unknown_run_names_the_fix(tmp_path: Path) -> None:
    assert main(["map", "--run", "nope", "--out", str(tmp_path)]) == 2


def test_real_site_bars_add_up_to_flag_hectares(real_run: Path) -> None:
    flags = gpd.read_parquet(real_run / "flags.parquet")
    det = gpd.read_parquet(real_run / "detections.parquet")
    t = trend(pd.DataFrame(flags.drop(columns="geometry")), pd.DataFrame(det.drop(columns="geometry")))
    linked = flags[flags["detection_ids"].fillna("").str.len() > 0]
    inside_rules = linked[linked["rule_id"].isin(["activity_without_valid_licence", "compliant"])]
    expected = inside_rules.groupby("site_id")["area_ha"].sum()
    expected = expected[expected > 0]
    inside = t.groupby("site_id")["inside_ha"].sum()
    assert len(expected) > 10
    assert inside.loc[expected.index].to_numpy() == pytest.approx(expected.to_numpy(), rel=1e-6)


def test_real_run_records_each_title_licence_state(real_run: Path) -> None:
    sites = gpd.read_parquet(real_run / "sites.parquet")
    hist = pd.read_csv(real_run / "scorecards" / "licence_history.csv", dtype=str, keep_default_na=False)
    # one run, one registry snapshot: one state per title, with SIGMINE's last event
    assert sorted(hist["site_id"]) == sorted(sites["site_id"])
    assert hist["event"].str.contains(r"\d{2}/\d{2}/\d{4}").mean() > 0.9
    assert (hist["event_date"].str.match(r"\d{4}-\d{2}-\d{2}$")).mean() > 0.9
    assert set(hist["phase"]) == set(sites["phase"])


def test_map_command_in_place_rerenders_the_scorecards_too(
    real_run: Path, tmp_path: Path, sample_data: Path
) -> None:
    import shutil

    copy = tmp_path / "amapa-gold"
    shutil.copytree(real_run, copy)
    assert main(["--sample-data", str(sample_data), "map", "--run", str(copy), "--lang", "pt"]) == 0
    assert "<html lang='pt'>" in (copy / "map.html").read_text()
    assert "<html lang='pt'>" in (copy / "scorecards" / "index.html").read_text()
    flags = gpd.read_parquet(copy / "flags.parquet")
    flagged = flags[flags["rule_id"] == "activity_without_valid_licence"].iloc[0]
    page = (copy / "scorecards" / f"{site_slug(flagged['site_id'])}.html").read_text()
    assert f"ha de mineração dentro do processo {flagged['site_id']}" in page
    assert "ha of mining" not in page and "Histórico do título" in page
    # the history the run recorded survives the re-render
    assert (copy / "scorecards" / "licence_history.csv").read_text() == (
        real_run / "scorecards" / "licence_history.csv"
    ).read_text()
