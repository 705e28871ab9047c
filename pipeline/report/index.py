"""The index page of an output folder: every AOI in one sortable table (mined hectares by
period, new mining in the latest period, flags by severity, a trend sparkline, links to the
map and scorecards), under an overview map of the areas shaded by their new mining
(:mod:`pipeline.report.overview_map`).

Written once at the end of a night from the AOIs' own ``run.json`` (:mod:`pipeline.report.basin`),
and by ``asm-monitor map --run``; ``index.json`` holds the same entries for scripts.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from pipeline.core.atomic import write_text
from pipeline.report.basin import dated_periods, latest_period, new_in, read_entries, write_basin_tables
from pipeline.report.i18n import Catalogue, catalogue
from pipeline.report.markup import esc, page
from pipeline.report.overview_map import write_overview

log = logging.getLogger(__name__)

#: Sorts the table when a heading is clicked: by each cell's ``data-v`` (numbers as numbers).
_SORT_JS = (
    "document.querySelectorAll('table.asm-index th').forEach(function(th,i){th.style.cursor='pointer';"
    "th.addEventListener('click',function(){var tb=th.closest('table').tBodies[0];"
    "var rows=Array.from(tb.rows),up=th.dataset.dir!=='up';th.dataset.dir=up?'up':'down';"
    "rows.sort(function(a,b){var x=a.cells[i].dataset.v,y=b.cells[i].dataset.v,"
    "p=parseFloat(x),q=parseFloat(y),r=(!isNaN(p)&&!isNaN(q))?p-q:String(x).localeCompare(String(y));"
    "return up?r:-r;});rows.forEach(function(r){tb.appendChild(r);});});});"
)
_CSS = (
    "table.asm-index{border-collapse:collapse;font-size:13px}"
    "table.asm-index th,table.asm-index td{border-bottom:1px solid #ddd;padding:3px 6px;text-align:left}"
    "table.asm-index td.n{text-align:right;font-variant-numeric:tabular-nums}"
    "table.asm-index th{background:#f3f3f3;position:sticky;top:0}"
    "iframe.asm-overview{width:100%;height:460px;border:1px solid #ccc}"
)


def sparkline(values: list[float], *, width: int = 90, height: int = 18) -> str:
    """An inline SVG polyline of ``values`` (no data: empty)."""
    if not values:
        return ""
    top = max(values) or 1.0
    step = width / max(len(values) - 1, 1)
    points = " ".join(
        f"{i * step:.1f},{height - 1 - (v / top) * (height - 2):.1f}" for i, v in enumerate(values)
    )
    return (
        f"<svg width='{width}' height='{height}' role='img'><polyline points='{points}' "
        "fill='none' stroke='#b03a2e' stroke-width='1.5'/></svg>"
    )


def _cell(text: str, sort_value: object, *, numeric: bool = False, title: str = "") -> str:
    attrs = f" data-v='{esc(sort_value)}'" + (" class='n'" if numeric else "")
    attrs += f" title='{esc(title)}'" if title else ""
    return f"<td{attrs}>{text}</td>"


def _row(e: dict[str, Any], *, periods: list[str], latest: str | None, cat: Catalogue, lang: str) -> str:
    name = (e.get("names") or {}).get(lang) or e["name"]
    link = f"{esc(name)}<br><a href='{esc(e['aoi_id'])}/map.html'>{esc(cat.t('map.index_open'))}</a>"
    if e.get("scorecards"):
        href = f"{e['aoi_id']}/scorecards/index.html"
        link += f" · <a href='{esc(href)}'>{esc(cat.t('map.scorecard_link'))}</a>"
    by_period = e.get("mined_ha_by_period") or {}
    sev = e.get("flags_by_severity") or {}
    new = new_in(e, latest)
    amw_by_period = e.get("amw_method_ha_by_period") or {}
    amw = sum(float(v) for v in amw_by_period.values()) if amw_by_period else None
    protection = e.get("protection")
    trend = [float(by_period.get(p, 0.0)) for p in periods]
    cells = [
        _cell(link, name),
        _cell(esc(e.get("country")), e.get("country") or ""),
        _cell(esc(cat.term("designation", e.get("designation"))), e.get("designation") or ""),
        _cell(esc(cat.t(f"map.protection_{protection}")) if protection else "", protection or ""),
        _cell(esc(cat.number(e.get("mined_ha", 0.0), spec=",.0f")), e.get("mined_ha", 0.0), numeric=True),
        _cell(esc(cat.number(new, spec=",.1f")), new, numeric=True),
        _cell(esc(cat.number(amw, spec=",.0f")) if amw is not None else "", amw or 0.0, numeric=True),
        *[
            _cell(
                esc(cat.number(by_period[p], spec=",.0f")) if p in by_period else "",
                by_period.get(p, 0.0),
                numeric=True,
            )
            for p in periods
        ],
        _cell(
            sparkline(trend),
            sum(trend),
            title=", ".join(f"{p}: {v:,.0f} ha" for p, v in zip(periods, trend, strict=True)),
        ),
        _cell(esc(e.get("flags", 0)), e.get("flags", 0), numeric=True),
        *[_cell(esc(sev.get(k, 0)), sev.get(k, 0), numeric=True) for k in ("high", "medium", "low")],
        _cell(esc(cat.number(e.get("flagged_ha"), spec=",.1f")), e.get("flagged_ha") or 0.0, numeric=True),
    ]
    return "<tr>" + "".join(cells) + "</tr>"


def render_index(entries: list[dict[str, Any]], *, lang: str = "en", overview: str | None = None) -> str:
    """The index page (entries of :func:`pipeline.report.basin.read_entries`); ``overview``
    is the overview map's file name, shown above the table."""
    cat = catalogue(lang)
    latest = latest_period(entries)
    periods = dated_periods(entries)
    heads = [
        cat.t("map.index_aoi"),
        cat.t("map.index_country"),
        cat.t("map.index_designation"),
        cat.t("map.index_protection"),
        cat.t("map.index_mined_ha"),
        cat.t("map.index_new", period=latest or "-"),
        cat.t("map.index_amw_ha"),
        *[cat.t("map.index_period_ha", period=p) for p in periods],
        cat.t("map.index_trend"),
        cat.t("map.index_flags"),
        cat.t("map.index_high"),
        cat.t("map.index_medium"),
        cat.t("map.index_low"),
        cat.t("map.index_flagged_ha"),
    ]
    ordered = sorted(entries, key=lambda e: (-new_in(e, latest), e["aoi_id"]))
    rows = "".join(_row(e, periods=periods, latest=latest, cat=cat, lang=lang) for e in ordered)
    summary = cat.t(
        "map.index_summary",
        n=len(entries),
        flags=sum(int(e.get("flags", 0)) for e in entries),
        new=cat.number(sum(new_in(e, latest) for e in entries), spec=",.0f"),
        period=latest or "-",
    )
    frame = (
        f"<p><a href='{esc(overview)}'>{esc(cat.t('map.index_overview'))}</a></p>"
        f"<iframe class='asm-overview' src='{esc(overview)}' "
        f"title='{esc(cat.t('map.index_overview'))}'></iframe>"
        if overview
        else ""
    )
    body = (
        f"<style>{_CSS}</style><h1>{esc(cat.t('map.index_title'))}</h1><p>{esc(summary)}</p>{frame}"
        f"<p>{esc(cat.t('map.index_sort'))}</p><table class='asm-index'><thead><tr>"
        + "".join(f"<th>{esc(h)}</th>" for h in heads)
        + f"</tr></thead><tbody>{rows}</tbody></table><script>{_SORT_JS}</script>"
    )
    return page(title=cat.t("map.index_title"), body=body, lang=lang)


def write_index(out_dir: Path, *, lang: str = "en", current: dict[str, Any] | None = None) -> Path:
    """``index.json``, ``index.html``, the overview map and the basin-wide tables of every
    AOI folder in ``out_dir``; returns the index page's path.

    Entries come from each AOI's ``run.json``; an AOI the earlier ``index.json`` lists but whose
    folder holds no readable run.json keeps its earlier entry, and ``current`` (an entry)
    replaces its AOI's."""
    store = out_dir / "index.json"
    by_id: dict[str, dict[str, Any]] = {}
    if store.is_file():
        try:
            by_id = {e["aoi_id"]: e for e in json.loads(store.read_text(encoding="utf-8"))}
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("index: rebuilding unreadable %s: %s", store, exc)
    by_id |= {e["aoi_id"]: e for e in read_entries(out_dir)}
    if current is not None:
        by_id[current["aoi_id"]] = current
    entries = [by_id[k] for k in sorted(by_id)]
    write_text(store, json.dumps(entries, ensure_ascii=False, indent=2) + "\n")
    overview = write_overview(out_dir, entries, lang=lang) if entries else None
    write_basin_tables(out_dir, entries)
    html = render_index(entries, lang=lang, overview=overview.name if overview else None)
    log.info("index of %d AOIs written to %s", len(entries), out_dir / "index.html")
    return write_text(out_dir / "index.html", html)
