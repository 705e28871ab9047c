"""Site scorecards: the due-diligence page a gold buyer reads for one registered site.

Per site: licence facts from the registry, flags grouped by status with reason and the
OECD/CRAFT clause, hectares of linked detections inside / outside the title per period as a
small inline SVG chart, and links into the map (``../map.html#flag-<flag_id>``). Written as
HTML and CSV, plus an index page and ``sites.csv`` with one row per site.

This module renders; the per-period hectares are each flag's ``area_ha`` (measured by comply
inside / outside the title) shared among the periods of its linked detections
(``flags.detection_ids`` -> ``detections.period/area_ha``) in proportion to their areas, so a
site's bars add up to its flags' hectares.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd

from pipeline.comply.flags import SEVERITY_ORDER
from pipeline.comply.scorecard import licence_history_rows
from pipeline.report.exports import plain
from pipeline.report.i18n import Catalogue, catalogue
from pipeline.report.markup import esc, grid_table, is_blank, page, rows_table
from pipeline.report.reasons import clause_text, reason_text

INVALID_LICENCE = {"expired", "suspended", "none", "revoked"}
STATUS_ORDER = ("worsening", "new", "ongoing", "resolved")
#: rules whose hectares lie inside the site's title; clearing_outside_licence lies outside
INSIDE_RULES = {"activity_without_valid_licence", "compliant", "turbidity_downstream"}
OUTSIDE_RULES = {"clearing_outside_licence"}
SITE_CSV_COLUMNS = [
    "site_id",
    "name",
    "operator",
    "licence_kind",
    "licence_status",
    "phase",
    "state",
    "worst_severity",
    "flags_new",
    "flags_ongoing",
    "flags_worsening",
    "flags_resolved",
    "ha_inside_title",
    "ha_outside_title",
    "scorecard",
]


def site_slug(site_id: str) -> str:
    """File-name-safe, collision-free name for a site id (``858075/2001`` ->
    ``858075-2001-<6 hex>``)."""
    base = re.sub(r"[^A-Za-z0-9]+", "-", str(site_id)).strip("-")[:60] or "site"
    return f"{base}-{hashlib.sha256(str(site_id).encode()).hexdigest()[:6]}"


def site_facts(site: Mapping[str, Any], *, cat: Catalogue) -> dict[str, Any]:
    """Label -> value of a registered site's identity and licence, as the map's site popup
    and the scorecard's licence table both show them (registry terms translated)."""
    sid = site["site_id"]
    return {
        cat.t("field.title_id"): sid,
        cat.t("field.site"): site.get("name") if site.get("name") != sid else None,
        cat.t("field.operator"): site.get("operator"),
        cat.t("field.licence"): cat.term("licence_kind", site.get("licence_kind")),
        cat.t("field.licence_status"): cat.term("licence_status", site.get("licence_status")),
        cat.t("field.phase"): cat.term("phase", site.get("phase")),
        cat.t("field.mineral"): site.get("mineral"),
        cat.t("field.registry"): site.get("registry"),
    }


def site_states(sites: gpd.GeoDataFrame, flags: gpd.GeoDataFrame) -> list[str]:
    """Per site: ``flagged_<worst severity>``, else ``licence_invalid`` when the title does
    not allow extraction or the licence is expired/suspended, else ``compliant``."""
    real = flags[flags["rule_id"] != "compliant"]
    worst: dict[str, str] = {}
    for sid, sev in zip(real["site_id"], real["severity"], strict=True):
        if isinstance(sid, str) and SEVERITY_ORDER.get(sev, 0) > SEVERITY_ORDER.get(worst.get(sid, ""), 0):
            worst[sid] = sev
    allows = sites["allows_extraction"] if "allows_extraction" in sites else [True] * len(sites)
    out = []
    for sid, ok, status in zip(sites["site_id"], allows, sites["licence_status"], strict=True):
        if sid in worst:
            out.append(f"flagged_{worst[sid]}")
        elif not ok or str(status).lower() in INVALID_LICENCE:
            out.append("licence_invalid")
        else:
            out.append("compliant")
    return out


def scorecard_links(sites: gpd.GeoDataFrame | None, *, prefix: str = "scorecards/") -> dict[str, str]:
    """site_id -> relative link of its scorecard page (from the AOI folder)."""
    if sites is None:
        return {}
    return {sid: f"{prefix}{site_slug(sid)}.html" for sid in sites["site_id"]}


def trend(flags: pd.DataFrame, detections: pd.DataFrame) -> pd.DataFrame:
    """Hectares of a site's flags per period, inside / outside the title (see module doc).

    Returns
    -------
    DataFrame with ``site_id``, ``period``, ``inside_ha``, ``outside_ha`` (ha).
    """
    cols = ["site_id", "period", "inside_ha", "outside_ha"]
    if flags.empty or detections.empty:
        return pd.DataFrame(columns=cols)
    det = {
        str(i): (str(p), float(a))
        for i, p, a in zip(
            detections["detection_id"], detections["period"], detections["area_ha"], strict=True
        )
    }
    rows = []
    for rec in flags[flags["site_id"].notna()].to_dict("records"):
        if rec["rule_id"] not in INSIDE_RULES | OUTSIDE_RULES:
            continue
        side = "inside_ha" if rec["rule_id"] in INSIDE_RULES else "outside_ha"
        linked = [det[d] for d in str(rec.get("detection_ids") or "").split(",") if d in det]
        total = sum(a for _, a in linked)
        for period, area in linked:
            # the flag's own hectares (the part inside / outside the title that comply
            # measured), shared among periods in proportion to the linked detections
            share = float(rec["area_ha"]) * area / total if total > 0 else 0.0
            rows.append({"site_id": rec["site_id"], "period": period, side: share})
    if not rows:
        return pd.DataFrame(columns=cols)
    out = pd.DataFrame(rows).fillna(0.0).groupby(["site_id", "period"], as_index=False).sum()
    for c in ("inside_ha", "outside_ha"):
        if c not in out:
            out[c] = 0.0
    return out[cols]


def trend_svg(points: pd.DataFrame, *, cat: Catalogue, width: int = 420, height: int = 140) -> str:
    """Stacked bars per period (inside title green, outside red) as inline SVG."""
    if points.empty:
        return ""
    pts = points.sort_values("period")
    top = float(pd.to_numeric(pts["inside_ha"] + pts["outside_ha"]).max()) or 1.0
    n = len(pts)
    bw = (width - 50) / n
    parts = [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height + 30}' role='img' "
        f"aria-label='{esc(cat.t('scorecard.trend_heading'))}'>",
        f"<text x='0' y='12' font-size='11'>{esc(cat.ha(top))} ha</text>",
        f"<line x1='45' y1='{height}' x2='{width}' y2='{height}' stroke='#555'/>",
    ]
    for i, rec in enumerate(pts.to_dict("records")):
        x = 48 + i * bw
        h_in = rec["inside_ha"] / top * (height - 20)
        h_out = rec["outside_ha"] / top * (height - 20)
        parts.append(
            f"<rect x='{x:.1f}' y='{height - h_in:.1f}' width='{bw * 0.8:.1f}' height='{h_in:.1f}' "
            f"fill='#27ae60'><title>{esc(rec['period'])}: {esc(cat.ha(rec['inside_ha']))} ha "
            f"{esc(cat.t('scorecard.inside_title'))}</title></rect>"
        )
        parts.append(
            f"<rect x='{x:.1f}' y='{height - h_in - h_out:.1f}' width='{bw * 0.8:.1f}' height='{h_out:.1f}' "
            f"fill='#c0392b'><title>{esc(rec['period'])}: {esc(cat.ha(rec['outside_ha']))} ha "
            f"{esc(cat.t('scorecard.outside_title'))}</title></rect>"
        )
        parts.append(f"<text x='{x:.1f}' y='{height + 14}' font-size='10'>{esc(str(rec['period']))}</text>")
    parts.append(
        f"<text x='48' y='{height + 28}' font-size='10' fill='#27ae60'>■ "
        f"{esc(cat.t('scorecard.inside_title'))}</text>"
        f"<text x='{width / 2:.0f}' y='{height + 28}' font-size='10' fill='#c0392b'>■ "
        f"{esc(cat.t('scorecard.outside_title'))}</text></svg>"
    )
    return "".join(parts)


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
) -> str:
    """HTML scorecard of one site.

    ``site`` is a row of the sites table and ``flags`` the site's flag rows, as dicts;
    ``points`` is the site's part of :func:`trend`; ``history`` the site's rows of the licence
    history (:func:`pipeline.state.licence_history.record_licences`), oldest first.
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
    body = (
        f"<h1>{esc(title)}</h1><p class='muted'>{esc(aoi_name)} · <a href='{esc(map_href)}'>"
        f"{esc(cat.t('scorecard.open_map'))}</a></p>"
        f"<h2>{esc(cat.t('scorecard.licence_heading'))}</h2>{licence}"
        f"<h3>{esc(cat.t('scorecard.licence_history_heading'))}</h3>{_history_table(site, history, cat)}"
        f"<h2>{esc(cat.t('scorecard.flags_heading'))}</h2>{flags_html}"
        f"<h2>{esc(cat.t('scorecard.trend_heading'))}</h2>{trend_svg(points, cat=cat)}"
    )
    return page(title=title, body=body, lang=lang)


def write_scorecards(
    target: Path,
    *,
    sites: gpd.GeoDataFrame,
    flags: gpd.GeoDataFrame,
    detections: gpd.GeoDataFrame,
    aoi_name: str,
    lang: str = "en",
    licences: pd.DataFrame | None = None,
) -> dict[str, Path]:
    """Write ``<slug>.html`` and ``<slug>.csv`` per site, ``index.html``, ``sites.csv`` and
    ``licence_history.csv`` (when ``licences`` are given) into the folder ``target``,
    replacing it as a whole: the files are written into a temp folder beside it, which then
    takes its place (a reader sees the old set or the new one, and a thousand small files need
    no fsync each). Returns name -> path of the summary files.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        _write_all(
            tmp,
            sites=sites,
            flags=flags,
            detections=detections,
            aoi_name=aoi_name,
            lang=lang,
            licences=licences,
        )
        tmp.chmod(0o755)
        old = target.with_name(f".{target.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        if target.exists():
            os.replace(target, old)
        os.replace(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    written = {"sites.csv": target / "sites.csv", "index.html": target / "index.html"}
    if licences is not None:
        written["licence_history.csv"] = target / "licence_history.csv"
    return written


def _plain_write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _write_all(
    target: Path,
    *,
    sites: gpd.GeoDataFrame,
    flags: gpd.GeoDataFrame,
    detections: gpd.GeoDataFrame,
    aoi_name: str,
    lang: str = "en",
    licences: pd.DataFrame | None = None,
) -> None:
    cat = catalogue(lang)
    flag_table = pd.DataFrame(flags.drop(columns="geometry"))
    points = trend(flag_table, pd.DataFrame(detections.drop(columns="geometry")))
    by_site: dict[str, list[dict[str, Any]]] = {}
    for raw in flag_table.to_dict("records"):
        rec = {str(k): v for k, v in raw.items()}
        if isinstance(rec["site_id"], str):
            by_site.setdefault(rec["site_id"], []).append(rec)
    points_by_site = {sid: g for sid, g in points.groupby("site_id")}
    history: dict[str, list[dict[str, Any]]] = {}
    if licences is not None:
        _plain_write(target / "licence_history.csv", licences.to_csv(index=False, lineterminator="\n"))
        for raw in licences.to_dict("records"):
            history.setdefault(str(raw["site_id"]), []).append({str(k): v for k, v in raw.items()})
    no_points = points.iloc[0:0]
    columns = [*flag_table.columns, "site_operator", "site_phase"]
    summary = []
    states = site_states(sites, flags)
    for site, state in zip(sites.drop(columns="geometry").to_dict("records"), states, strict=True):
        sid = site["site_id"]
        slug = site_slug(sid)
        sflags = by_site.get(sid, [])
        spoints = points_by_site.get(sid, no_points)
        _plain_write(
            target / f"{slug}.html",
            render_scorecard(
                site,
                flags=sflags,
                points=spoints,
                state=state,
                aoi_name=aoi_name,
                lang=lang,
                history=history.get(sid),
            ),
        )
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(columns)
        for frec in sflags:
            row = [*(plain(frec[c]) for c in flag_table.columns), site.get("operator"), site.get("phase")]
            writer.writerow(["" if is_blank(v) else v for v in row])
        _plain_write(target / f"{slug}.csv", buf.getvalue())
        real = [f for f in sflags if f["rule_id"] != "compliant"]
        worst = max((f["severity"] for f in real), key=lambda s: SEVERITY_ORDER.get(s, 0)) if real else ""
        summary.append(
            {
                "site_id": sid,
                "name": site.get("name"),
                "operator": site.get("operator"),
                "licence_kind": site.get("licence_kind"),
                "licence_status": site.get("licence_status"),
                "phase": site.get("phase"),
                "state": state,
                "worst_severity": worst,
                **{f"flags_{s}": sum(f["status"] == s for f in real) for s in STATUS_ORDER},
                "ha_inside_title": round(float(spoints["inside_ha"].sum()), 4),
                "ha_outside_title": round(float(spoints["outside_ha"].sum()), 4),
                "scorecard": f"{slug}.html",
            }
        )
    frame = pd.DataFrame(summary, columns=SITE_CSV_COLUMNS)
    _plain_write(target / "sites.csv", frame.to_csv(index=False, lineterminator="\n"))
    order = {"flagged_high": 0, "flagged_medium": 1, "flagged_low": 2, "licence_invalid": 3, "compliant": 4}
    frame = frame.assign(_o=frame["state"].map(order)).sort_values(["_o", "site_id"])
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
    _plain_write(target / "index.html", page(title=title, body=body, lang=lang))
