"""The files of an AOI's scorecards folder: per site ``<slug>.html`` and ``<slug>.csv``, and
``sites.csv``, ``index.html`` and ``licence_history.csv``. Every CSV cell is spreadsheet-safe
(:mod:`pipeline.report.csvsafe`)."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd

from pipeline.comply.flags import SEVERITY_ORDER
from pipeline.report.csvsafe import csv_cell, csv_text, csv_unguard
from pipeline.report.exports import plain
from pipeline.report.markup import is_blank
from pipeline.report.scorecard_page import STATUS_ORDER, render_scorecard, render_site_index
from pipeline.report.sites import licence_allows, period_span, site_slug, site_states
from pipeline.report.trend import trend

SITE_CSV_COLUMNS = [
    "site_id",
    "name",
    "operator",
    "licence_kind",
    "licence_status",
    "phase",
    "state",
    "licence_state",
    "mining_observed",
    "mining_periods",
    "worst_severity",
    "flags_new",
    "flags_ongoing",
    "flags_worsening",
    "flags_resolved",
    "ha_inside_title",
    "ha_outside_title",
    "scorecard",
]


def _write(path: Path, text: str) -> Path:
    # the folder is new and swapped in whole by write_scorecards: no per-file atomicity needed
    path.write_text(text, encoding="utf-8")
    return path


def write_scorecard_files(
    target: Path,
    *,
    sites: gpd.GeoDataFrame,
    flags: gpd.GeoDataFrame,
    detections: gpd.GeoDataFrame,
    aoi_name: str,
    lang: str = "en",
    licences: pd.DataFrame | None = None,
) -> None:
    """Write every file of the scorecards into the new, empty folder ``target``."""
    flag_table = pd.DataFrame(flags.drop(columns="geometry"))
    points = trend(flag_table, pd.DataFrame(detections.drop(columns="geometry")))
    by_site = _flags_by_site(flag_table)
    points_by_site = {sid: g for sid, g in points.groupby("site_id")}
    history = _write_history(target, licences)
    summary = []
    states = site_states(sites, flags)
    span = period_span(detections["period"]) if "period" in detections and len(detections) else ""
    for site, state in zip(sites.drop(columns="geometry").to_dict("records"), states, strict=True):
        sid, slug = site["site_id"], site_slug(site["site_id"])
        site_flags = by_site.get(sid, [])
        site_points = points_by_site.get(sid, points.iloc[0:0])
        page = render_scorecard(
            site,
            flags=site_flags,
            points=site_points,
            state=state,
            aoi_name=aoi_name,
            lang=lang,
            history=history.get(sid),
            span=span,
        )
        _write(target / f"{slug}.html", page)
        _write(target / f"{slug}.csv", _site_csv(site, site_flags, columns=list(flag_table.columns)))
        summary.append(_summary_row(site, site_flags, site_points, state=state, slug=slug))
    frame = pd.DataFrame(summary, columns=SITE_CSV_COLUMNS)
    _write(target / "sites.csv", csv_text(frame))
    _write(target / "index.html", render_site_index(frame, aoi_name=aoi_name, lang=lang))


def _flags_by_site(flag_table: pd.DataFrame) -> dict[str, list[dict[str, Any]]]:
    by_site: dict[str, list[dict[str, Any]]] = {}
    for raw in flag_table.to_dict("records"):
        rec = {str(k): v for k, v in raw.items()}
        if isinstance(rec["site_id"], str):
            by_site.setdefault(rec["site_id"], []).append(rec)
    return by_site


def _write_history(target: Path, licences: pd.DataFrame | None) -> dict[str, list[dict[str, Any]]]:
    """Write ``licence_history.csv``; return each site's licence rows, oldest first."""
    history: dict[str, list[dict[str, Any]]] = {}
    if licences is None:
        return history
    # `map --run` reads this file back: cells guarded last time must not be guarded twice, and
    # a guarded site id must join its site again
    licences = licences.map(csv_unguard)
    _write(target / "licence_history.csv", csv_text(licences))
    for raw in licences.to_dict("records"):
        history.setdefault(str(raw["site_id"]), []).append({str(k): v for k, v in raw.items()})
    return history


def _site_csv(site: dict[str, Any], flags: list[dict[str, Any]], *, columns: list[str]) -> str:
    """The site's flags, one row each, with the site's operator and phase."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([*columns, "site_operator", "site_phase"])
    for rec in flags:
        row = [*(plain(rec[c]) for c in columns), site.get("operator"), site.get("phase")]
        writer.writerow(["" if is_blank(v) else csv_cell(v) for v in row])
    return buf.getvalue()


def _summary_row(
    site: dict[str, Any],
    flags: list[dict[str, Any]],
    points: pd.DataFrame,
    *,
    state: str,
    slug: str,
) -> dict[str, Any]:
    """The site's row of ``sites.csv``."""
    real = [f for f in flags if f["rule_id"] != "compliant"]
    worst = max((f["severity"] for f in real), key=lambda s: SEVERITY_ORDER.get(s, 0)) if real else ""
    seen = points[(pd.to_numeric(points["inside_ha"]) + pd.to_numeric(points["outside_ha"])) > 0]
    return {
        "site_id": site["site_id"],
        "name": site.get("name"),
        "operator": site.get("operator"),
        "licence_kind": site.get("licence_kind"),
        "licence_status": site.get("licence_status"),
        "phase": site.get("phase"),
        "state": state,
        "licence_state": "extraction_allowed" if licence_allows(site) else "no_extraction_allowed",
        "mining_observed": "observed" if len(seen) else "none",
        "mining_periods": ",".join(sorted(map(str, set(seen["period"])))),
        "worst_severity": worst,
        **{f"flags_{s}": sum(f["status"] == s for f in real) for s in STATUS_ORDER},
        "ha_inside_title": round(float(points["inside_ha"].sum()), 4),
        "ha_outside_title": round(float(points["outside_ha"].sum()), 4),
        "scorecard": f"{slug}.html",
    }
