"""The HTML of a site's scorecard and of the scorecards' index page (text only; the files are
written by :mod:`pipeline.report.scorecard_files`)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pandas as pd

from pipeline.comply.scorecard import licence_history_rows
from pipeline.report.exports import plain
from pipeline.report.i18n import Catalogue, catalogue
from pipeline.report.markup import esc, grid_table, page, rows_table
from pipeline.report.reasons import clause_text, reason_text
from pipeline.report.sites import activity_line, licence_allows, licence_line, site_facts
from pipeline.report.trend import trend_svg

STATUS_ORDER = ("worsening", "new", "ongoing", "resolved")
#: order of site states on the index page: worst first
STATE_ORDER = {
    "flagged_high": 0,
    "flagged_medium": 1,
    "flagged_low": 2,
    "no_extraction_allowed": 3,
    "compliant": 4,
}


def _flag_rows(flags: list[dict[str, Any]], cat: Catalogue, map_href: str) -> Iterable[list[str]]:
    for rec in flags:
        yield [
            esc(cat.label("rule", rec["rule_id"])),
            f"<span class='sev-{esc(rec['severity'])}'>{esc(cat.label('severity', rec['severity']))}</span>",
            esc(reason_text(rec, cat=cat)),
            esc(cat.ha(rec.get("area_ha"))),
            esc(rec.get("first_seen")),
            esc(rec.get("last_seen")),
            esc(str(rec.get("periods") or "").replace(",", ", ")),
            esc(clause_text(rec, cat=cat)),
            f"<a href='{esc(map_href)}#flag-{esc(rec['flag_id'])}'>{esc(cat.t('scorecard.open_map'))}</a>",
        ]


def _history_table(site: dict[str, Any], history: list[dict[str, Any]] | None, cat: Catalogue) -> str:
    """The site's licence states, oldest first; without recorded history, the registry's
    current state and last event."""
    rows = licence_history_rows(site, recorded=history)
    header = [
        esc(cat.t(f"field.{k}"))
        for k in ("as_of", "last_event", "phase", "licence_status", "licence", "first_recorded")
    ]
    body = [
        [
            esc(r.get("event_date")),
            esc(r.get("event")),
            esc(cat.term("phase", r.get("phase"))),
            esc(cat.term("licence_status", r.get("licence_status"))),
            esc(cat.term("licence_kind", r.get("licence_kind"))),
            esc(r.get("first_recorded")),
        ]
        for r in rows
    ]
    return f"<p class='muted'>{esc(cat.t('scorecard.licence_history_note'))}</p>" + grid_table(header, body)


def render_scorecard(
    site: dict[str, Any],
    *,
    flags: list[dict[str, Any]],
    points: pd.DataFrame,
    state: str,
    aoi_name: str,
    lang: str = "en",
    map_href: str = "../map.html",
    history: list[dict[str, Any]] | None = None,
    span: str = "",
) -> str:
    """HTML scorecard of one site.

    ``site`` is a row of the sites table and ``flags`` the site's flag rows, as dicts;
    ``points`` is the site's part of :func:`trend`; ``history`` the site's rows of the licence
    history (:func:`pipeline.state.licence_history.record_licences`), oldest first; ``span``
    the periods the run looked at ("2018–2025Q3"), for "Mining observed: none in ...".
    """
    cat = catalogue(lang)
    sid = site["site_id"]
    licence = rows_table(
        {
            **site_facts(site, cat=cat),
            cat.t("field.valid_from"): plain(site.get("licence_valid_from")),
            cat.t("field.valid_to"): plain(site.get("licence_valid_to")),
            cat.t("field.last_event"): plain(site.get("last_event_date")),
            cat.t("field.status"): cat.t(f"site_state.{state}"),
        },
        css_class="licence",
    )
    header = [
        esc(cat.t(f"field.{k}"))
        for k in ("rule", "severity", "reason", "hectares", "first_seen", "last_seen", "evidence_dates")
    ] + [esc(cat.t("field.clause")), esc(cat.t("field.map_link"))]
    real = [f for f in flags if f["rule_id"] != "compliant"]
    sections = []
    for status in STATUS_ORDER:
        group = [f for f in real if f["status"] == status]
        if group:
            sections.append(
                f"<h3>{esc(cat.label('status', status))} ({len(group)})</h3>"
                + grid_table(header, _flag_rows(group, cat, map_href))
            )
    flags_html = "".join(sections) or f"<p>{esc(cat.t('scorecard.no_flags'))}</p>"
    title = cat.t("scorecard.title", site=sid)
    observed = [str(p) for p, ha in _period_totals(points).items() if ha > 0]
    lines = (
        f"<p class='site-licence'>{esc(licence_line(site, cat=cat))}</p>"
        f"<p class='site-activity'>{esc(activity_line(_ha(points), observed, span=span, cat=cat))}</p>"
    )
    chart = trend_svg(points, cat=cat, inside_legal=licence_allows(site))
    body = (
        f"<h1>{esc(title)}</h1><p class='muted'>{esc(aoi_name)} · <a href='{esc(map_href)}'>"
        f"{esc(cat.t('scorecard.open_map'))}</a></p>{lines}"
        f"<h2>{esc(cat.t('scorecard.licence_heading'))}</h2>{licence}"
        f"<h3>{esc(cat.t('scorecard.licence_history_heading'))}</h3>{_history_table(site, history, cat)}"
        f"<h2>{esc(cat.t('scorecard.flags_heading'))}</h2>{flags_html}"
        + (f"<h2>{esc(cat.t('scorecard.trend_heading'))}</h2>{chart}" if chart else "")
    )
    return page(title=title, body=body, lang=lang)


def _period_totals(points: pd.DataFrame) -> pd.Series:
    """Hectares (inside + outside the title) per period label, in text order."""
    if points.empty:
        return pd.Series(dtype=float)
    total = pd.to_numeric(points["inside_ha"]) + pd.to_numeric(points["outside_ha"])
    return total.groupby(points["period"].astype(str)).sum().sort_index()


def _ha(points: pd.DataFrame) -> float:
    return float(_period_totals(points).sum())


def render_site_index(summary: pd.DataFrame, *, aoi_name: str, lang: str = "en") -> str:
    """The scorecards' index page: one row per site of ``summary`` (the rows of
    ``sites.csv``), worst state first, each linking to its scorecard."""
    cat = catalogue(lang)
    frame = summary.assign(_o=summary["state"].map(STATE_ORDER)).sort_values(["_o", "site_id"])
    rows = [
        [
            f"<a href='{esc(r['scorecard'])}'>{esc(r['site_id'])}</a>",
            esc(r["operator"]),
            esc(cat.term("licence_kind", r["licence_kind"])),
            esc(cat.t(f"site_state.{r['state']}")),
            esc(cat.ha(r["ha_inside_title"])),
            esc(cat.ha(r["ha_outside_title"])),
        ]
        for r in frame.to_dict("records")
    ]
    header = [
        esc(cat.t(k)) for k in ("field.title_id", "field.operator", "field.licence", "field.status")
    ] + [esc(f"ha {cat.t('scorecard.inside_title')}"), esc(f"ha {cat.t('scorecard.outside_title')}")]
    title = cat.t("scorecard.index_title", aoi=aoi_name)
    body = (
        f"<h1>{esc(title)}</h1><p><a href='../map.html'>{esc(cat.t('scorecard.open_map'))}</a></p>"
        + grid_table(header, rows)
    )
    return page(title=title, body=body, lang=lang)
