"""Reason sentences and due-diligence clauses in the reader's language (en, es, pt, fr).

Flags are made by comply's own ``build_flags`` and ``advance``, so the values the report
translates are the ones a run writes.
"""

from __future__ import annotations

import json
import re

import geopandas as gpd
import pandas as pd
import pytest
from pyproj import CRS
from shapely.geometry import box

from pipeline.comply.flags import build_flags
from pipeline.comply.lifecycle import Suppression, advance
from pipeline.comply.rules import RULES
from pipeline.core.config import ComplyParams
from pipeline.core.text import template_fields
from pipeline.report.i18n import LANGUAGES, catalogue
from pipeline.report.map import render_map
from pipeline.report.reasons import clause_text, reason_text
from pipeline.report.webhook import body_for

XSS = "<img src=x onerror=alert(1)>"
UTM = CRS.from_epsg(31982)  # SIRGAS 2000 / UTM 22S, metres
PARAMS = ComplyParams()


def _finding(rule: str, site: str | None, ha: float, x0: float = 400_000.0) -> dict[str, object]:
    side = (ha * 1e4) ** 0.5
    return {
        "rule_id": rule,
        "site_id": site,
        "group_key": site or f"cell-{x0}",
        "detection_ids": "d1,d2",
        "area_ha": ha,
        "mined_area_ha": float("nan"),
        "first_seen": pd.Timestamp("2019-12-31"),
        "last_seen": pd.Timestamp("2024-12-31"),
        "periods": "2019,2024",
        "geometry": box(x0, 9_990_000.0, x0 + side, 9_990_000.0 + side),
    }


@pytest.fixture
def sites() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {
            "site_id": ["858075/2001", XSS],
            "name": ["858075/2001", XSS],
            "licence_status": ["pending", "active"],
            "licence_kind": ["application for exploration", "exploration permit"],
            "phase": ["REQUERIMENTO DE PESQUISA", "AUTORIZAÇÃO DE PESQUISA"],
        },
        geometry=[box(399_000, 9_989_000, 402_000, 9_992_000), box(410_000, 9_989_000, 412_000, 9_991_000)],
        crs=UTM,
    )


@pytest.fixture
def flags(sites: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    findings = gpd.GeoDataFrame(
        [
            _finding("activity_without_valid_licence", "858075/2001", 1234.56),
            _finding("activity_without_valid_licence", XSS, 3.25, x0=410_000.0),
            _finding("mining_in_protected_area", None, 12.0, x0=420_000.0),
        ],
        geometry="geometry",
        crs=UTM,
    )
    return build_flags(
        findings,
        aoi_id="t",
        run_id="r1",
        sites=sites,
        context={"aoi_name": "TI Munduruku", "designation": "Indigenous Territory", "near_site_m": 500.0},
        params=PARAMS,
    )


def _by_rule_site(flags: gpd.GeoDataFrame, rule: str, site: str | None = None) -> dict[str, object]:
    rows = flags[
        (flags["rule_id"] == rule) & ((flags["site_id"] == site) if site else flags["site_id"].isna())
    ]
    assert len(rows) == 1
    return {str(k): v for k, v in rows.iloc[0].to_dict().items()}


def test_english_catalogue_is_the_rulebook_wording() -> None:
    en = catalogue("en")
    for rule in RULES.values():
        assert en.t(f"reason.{rule.rule_id}") == rule.reason, "update en.toml [reason] with rules.py"
        assert en.t(f"clause.{rule.rule_id}") == rule.clause, "update en.toml [clause] with rules.py"


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_language_has_every_rule_with_the_same_values(lang: str) -> None:
    cat = catalogue(lang)
    for rule in RULES.values():
        assert set(template_fields(cat.t(f"reason.{rule.rule_id}"))) == set(template_fields(rule.reason))
        assert cat.t(f"clause.{rule.rule_id}")


def test_flags_carry_the_values_of_their_sentence(flags: gpd.GeoDataFrame) -> None:
    rec = _by_rule_site(flags, "activity_without_valid_licence", "858075/2001")
    args = json.loads(str(rec["reason_args"]))
    assert args == {
        "area_ha": 1234.56,
        "site_id": "858075/2001",
        "phase": "REQUERIMENTO DE PESQUISA",
        "licence_kind": "application for exploration",
        "last_seen": "2024-12-31",
    }
    # English from the catalogue is the sentence comply wrote, for every flag
    for row in flags.to_dict("records"):
        assert reason_text(row, cat=catalogue("en")) == row["reason"]


@pytest.mark.parametrize(
    ("lang", "want"),
    [
        ("en", "1,234.6 ha of mining inside title 858075/2001, whose phase 'REQUERIMENTO DE PESQUISA'"),
        (
            "pt",
            "1.234,6 ha de mineração dentro do processo 858075/2001, cuja fase 'REQUERIMENTO DE PESQUISA'",
        ),
        ("es", "1.234,6 ha de minería dentro del título 858075/2001, cuya fase 'REQUERIMENTO DE PESQUISA'"),
        (
            "fr",
            "1\u202f234,6 ha d'exploitation minière dans le titre 858075/2001, dont la phase « REQUERIMENTO",
        ),
    ],
)
def test_reason_in_each_language_with_its_number_format(
    flags: gpd.GeoDataFrame, lang: str, want: str
) -> None:
    rec = _by_rule_site(flags, "activity_without_valid_licence", "858075/2001")
    text = reason_text(rec, cat=catalogue(lang))
    assert text.startswith(want)
    assert "2024-12-31" in text
    assert "?" not in text


def test_designation_is_translated_and_names_kept(flags: gpd.GeoDataFrame) -> None:
    rec = _by_rule_site(flags, "mining_in_protected_area")
    assert "dentro de TI Munduruku (terra indígena)" in reason_text(rec, cat=catalogue("pt"))
    assert "dans TI Munduruku (territoire autochtone)" in reason_text(rec, cat=catalogue("fr"))
    # an unknown designation is printed as the AOI file gives it
    odd = rec | {"reason_args": json.dumps(json.loads(str(rec["reason_args"])) | {"designation": "Resex X"})}
    assert "(Resex X)" in reason_text(odd, cat=catalogue("es"))


def test_missing_values_print_as_a_question_mark_in_every_language(flags: gpd.GeoDataFrame) -> None:
    rec = _by_rule_site(flags, "activity_without_valid_licence", "858075/2001")
    args = json.loads(str(rec["reason_args"])) | {"area_ha": None, "phase": None}
    for lang in LANGUAGES:
        text = reason_text(rec | {"reason_args": json.dumps(args)}, cat=catalogue(lang))
        assert text.startswith("? ha") and "'?'" in text.replace("« ? »", "'?'"), text


def test_flags_written_before_reason_args_keep_their_english_sentence(flags: gpd.GeoDataFrame) -> None:
    rec = _by_rule_site(flags, "activity_without_valid_licence", "858075/2001")
    for old in (rec | {"reason_args": None}, {k: v for k, v in rec.items() if k != "reason_args"}):
        assert reason_text(old, cat=catalogue("pt")) == rec["reason"]
    assert reason_text(rec | {"reason_args": "{not json"}, cat=catalogue("pt")) == rec["reason"]


def test_clause_follows_the_language(flags: gpd.GeoDataFrame) -> None:
    rec = _by_rule_site(flags, "mining_in_protected_area")
    assert clause_text(rec, cat=catalogue("en")) == RULES["mining_in_protected_area"].clause
    assert clause_text(rec, cat=catalogue("pt")).startswith("Guia de Devida Diligência da OCDE")
    assert clause_text(rec, cat=catalogue("es")).startswith("Guía de Debida Diligencia de la OCDE")
    assert clause_text(rec, cat=catalogue("fr")).startswith("Guide OCDE sur le devoir de diligence")


def test_lifecycle_notes_are_translated(flags: gpd.GeoDataFrame) -> None:
    first = advance(flags, {}, aoi_id="t", period="2024", crs=UTM, params=PARAMS)
    # next period: the protected-area flag is not seen; a suppression is lifted by growth
    fid = str(_by_rule_site(flags, "activity_without_valid_licence", "858075/2001")["flag_id"])
    sup = {fid: Suppression(fid, "cloud shadow", "ana", area_ha=100.0, created_at="2025-01-01")}
    seen = flags[flags["rule_id"] != "mining_in_protected_area"]
    second = advance(seen, first.states, aoi_id="t", period="2025", crs=UTM, params=PARAMS, suppressions=sup)
    rows = {r["flag_id"]: r for r in second.flags.to_dict("records")}
    lifted = rows[fid]
    assert json.loads(lifted["reason_note"])["kind"] == "suppression_lifted"
    assert reason_text(lifted, cat=catalogue("en")) == lifted["reason"]
    assert reason_text(lifted, cat=catalogue("pt")).endswith("cresceu de 100,0 ha para 1.234,6 ha.")
    unseen = next(r for r in rows.values() if r["rule_id"] == "mining_in_protected_area")
    assert reason_text(unseen, cat=catalogue("en")) == unseen["reason"]
    assert reason_text(unseen, cat=catalogue("es")).startswith(
        "No observada en 2025 (1 período(s) sin detección)."
    )
    assert reason_text(unseen, cat=catalogue("fr")).startswith("Non observé en 2025")


def test_map_popups_in_portuguese_are_escaped(flags: gpd.GeoDataFrame, sites: gpd.GeoDataFrame) -> None:
    aoi = gpd.GeoDataFrame(
        {"aoi_id": ["t"], "name": ["T"]}, geometry=[box(-51.0, -0.2, -50.7, 0.0)], crs=4326
    )
    page = render_map(
        aoi=aoi,
        detections=flags.iloc[0:0].assign(kind=pd.Series(dtype=str), period=pd.Series(dtype=str)),
        flags=flags.assign(status="new"),
        sites=sites.to_crs(4326),
        title="T",
        lang="pt",
    )
    text = re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m.group(1), 16)), page)
    assert "1.234,6 ha de mineração dentro do processo 858075/2001" in text
    assert "ha of mining" not in text
    assert "Guia de Devida Diligência da OCDE" in text
    assert XSS not in text and "dentro do processo &lt;img src=x" in text


def test_webhook_body_speaks_the_subscriber_language(flags: gpd.GeoDataFrame) -> None:
    from pipeline.report.alerts import alert_payloads

    alert = alert_payloads(flags.assign(status="new"), map_link="t/map.html", min_severity="info")[0]
    assert alert["reason_args"]["site_id"] == "858075/2001"
    data = json.loads(body_for(alert, lang="es"))["data"]
    assert data["lang"] == "es" and data["reason"].startswith("1.234,6 ha de minería")
    assert data["reason_en"] == alert["reason"] and data["reason_en"].startswith("1,234.6 ha of mining")
    assert data["clause"].startswith("Guía de Debida Diligencia")
    # the same bytes on every retry, whatever order the outbox file gave the keys in
    assert body_for(dict(reversed(list(alert.items()))), lang="es") == body_for(alert, lang="es")


@pytest.mark.parametrize(
    ("lang", "want"),
    [("en", "12,345.68"), ("es", "12.345,68"), ("pt", "12.345,68"), ("fr", "12\u202f345,68")],
)
def test_hectares_use_the_language_separators(lang: str, want: str) -> None:
    cat = catalogue(lang)
    assert cat.ha(12345.678) == want
    assert cat.ha(None) == cat.ha(float("nan")) == ""


@pytest.mark.parametrize(
    ("lang", "kind", "status"),
    [
        ("pt", "autorização de pesquisa", "ativo"),
        ("es", "permiso de exploración", "vigente"),
        ("fr", "permis d'exploration", "en vigueur"),
        ("en", "exploration permit", "active"),
    ],
)
def test_registry_terms_are_translated_where_known(lang: str, kind: str, status: str) -> None:
    cat = catalogue(lang)
    assert cat.term("licence_kind", "Exploration permit") == (kind if lang != "en" else "Exploration permit")
    assert cat.term("licence_status", "active") == status
    # a registry's own word stays as written; blanks stay blank
    assert cat.term("licence_kind", "concessão estadual X") == "concessão estadual X"
    assert cat.term("licence_kind", None) == cat.term("licence_kind", float("nan")) == ""


def test_every_licence_kind_of_the_registry_mapping_is_translated() -> None:
    import tomllib
    from importlib.resources import files

    formats = tomllib.loads((files("pipeline") / "data" / "formats.toml").read_text(encoding="utf-8"))
    kinds = {p["kind"] for p in formats["registry"]["sigmine"]["phases"].values()}
    for lang in ("es", "pt", "fr"):
        cat = catalogue(lang)
        missing = [k for k in kinds if cat.term("licence_kind", k) == k]
        assert not missing, f"add {missing} to [licence_kind] of {lang}.toml"


def test_an_unbounded_turbidity_ratio_is_valid_json_and_reads_as_infinity() -> None:
    point = gpd.GeoDataFrame(
        [
            {
                "rule_id": "turbidity_downstream",
                "site_id": "858075/2001",
                "group_key": "858075/2001",
                "area_ha": 0.0,
                "upstream_fnu": 0.0,
                "downstream_fnu": 95.0,
                "ratio": float("inf"),
                "geometry": box(400_000, 9_990_000, 400_010, 9_990_010).centroid,
            }
        ],
        geometry="geometry",
        crs=UTM,
    )
    flag = build_flags(point, aoi_id="t", run_id="r", sites=None, context={}).iloc[0].to_dict()
    assert json.loads(flag["reason_args"])["ratio"] == "inf"  # JSON has no Infinity
    assert "is 95 FNU, ∞x the 0 FNU upstream" in flag["reason"]
    assert "soit ∞ fois les 0 FNU en amont" in reason_text(flag, cat=catalogue("fr"))
    from pipeline.report.alerts import alert_payloads

    alert = alert_payloads(
        gpd.GeoDataFrame([flag | {"status": "new"}], geometry="geometry", crs=4326),
        map_link="m",
        min_severity="info",
    )[0]
    json.loads(body_for(alert, lang="pt"), parse_constant=lambda c: pytest.fail(f"{c} in JSON"))


def test_an_old_run_whose_values_do_not_cover_the_template_keeps_its_sentence(
    flags: gpd.GeoDataFrame,
) -> None:
    rec = _by_rule_site(flags, "activity_without_valid_licence", "858075/2001")
    args = json.loads(str(rec["reason_args"]))
    del args["phase"]  # a template that gained a field since the run
    assert reason_text(rec | {"reason_args": json.dumps(args)}, cat=catalogue("pt")) == rec["reason"]


def test_a_lifted_note_is_not_repeated_when_the_flag_is_later_unseen(flags: gpd.GeoDataFrame) -> None:
    fid = str(_by_rule_site(flags, "activity_without_valid_licence", "858075/2001")["flag_id"])
    sup = {fid: Suppression(fid, "cloud shadow", "ana", area_ha=100.0, created_at="2025-01-01")}
    first = advance(flags, {}, aoi_id="t", period="2024", crs=UTM, params=PARAMS)
    second = advance(flags, first.states, aoi_id="t", period="2025", crs=UTM, params=PARAMS, suppressions=sup)
    assert "Suppression lifted" in second.flags.set_index("flag_id").loc[fid, "reason"]
    third = advance(flags.iloc[0:0], second.states, aoi_id="t", period="2026", crs=UTM, params=PARAMS)
    row = third.flags.set_index("flag_id").loc[fid].to_dict()
    assert row["reason"].startswith("Not seen in 2026") and "Suppression lifted" not in row["reason"]
    assert reason_text(row, cat=catalogue("en")) == row["reason"]


def test_blank_values_from_pandas_are_blank_not_errors() -> None:
    cat = catalogue("pt")
    assert cat.ha(pd.NA) == cat.ha(pd.NaT) == cat.term("phase", pd.NA) == ""
    assert cat.term("phase", "suspended") == "suspenso"  # a native registry's phase is its status
