"""The basin overview map (``OUT/overview.html``): every AOI's outline shaded by its new
mining in the latest period, a tooltip with its figures, a click to open its own map.

Outlines are read from each AOI's ``aoi.geojson`` and simplified for the overview (about
100 m), so ~240 territories make a page of a few MB that opens offline. Data reaches the page
only as escaped values (:mod:`pipeline.report.verbatim`)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from pipeline.core.atomic import write_text
from pipeline.core.records import WGS84
from pipeline.report.assets import assert_offline, inline_head
from pipeline.report.basin import SIMPLIFY_DEG, latest_period, new_in
from pipeline.report.i18n import catalogue
from pipeline.report.map_elements import FeatureHtml
from pipeline.report.map_html import MAP_CSS
from pipeline.report.markup import esc

log = logging.getLogger(__name__)

#: Colours for new mining in the latest period: none, then light to dark red.
SHADES = ("#d9d9d9", "#fee5d9", "#fcae91", "#fb6a4a", "#de2d26", "#a50f15")
#: Upper bounds (ha) of the shades after "none".
BREAKS = (10.0, 50.0, 200.0, 1000.0, float("inf"))


def shade(new_ha: float) -> str:
    """The fill colour for ``new_ha`` hectares of new mining."""
    if new_ha <= 0:
        return SHADES[0]
    return next(SHADES[i + 1] for i, top in enumerate(BREAKS) if new_ha <= top)


def _outlines(
    out_dir: Path, entries: list[dict[str, Any]], *, latest: str | None, lang: str
) -> gpd.GeoDataFrame:
    cat = catalogue(lang)
    rows: list[dict[str, Any]] = []
    shapes = []
    for e in entries:
        outline = _outline(out_dir, e)
        if outline is None:
            continue
        new = new_in(e, latest)
        name = (e.get("names") or {}).get(lang) or e["name"]
        tip = (
            f"<b>{esc(name)}</b> ({esc(e.get('country'))})<br>"
            f"{esc(cat.t('map.overview_legend', period=latest or '-'))}: "
            f"{esc(cat.number(new, spec=',.1f'))}<br>"
            f"{esc(cat.t('map.index_mined_ha'))}: {esc(cat.number(e.get('mined_ha', 0.0), spec=',.0f'))}<br>"
            f"{esc(cat.t('map.index_flags'))}: {esc(e.get('flags', 0))}"
        )
        link = f"<a href='{esc(e['aoi_id'])}/map.html' target='_top'>{esc(cat.t('map.index_open'))}</a>"
        rows.append({"_tip": tip, "_popup": tip + "<br>" + link, "_fill": shade(new)})
        shapes.append(outline)
    frame = pd.DataFrame(rows, columns=["_tip", "_popup", "_fill"])
    return gpd.GeoDataFrame(frame, geometry=shapes, crs=WGS84)


def _outline(out_dir: Path, entry: dict[str, Any]) -> BaseGeometry | None:
    """The entry's simplified outline; runs written before it had one: the AOI's file."""
    if entry.get("outline"):
        return shape(entry["outline"])
    path = out_dir / entry["aoi_id"] / "aoi.geojson"
    if not path.is_file():
        return None
    return (
        gpd.read_file(path).to_crs(WGS84).geometry.union_all().simplify(SIMPLIFY_DEG, preserve_topology=True)
    )


def _legend(latest: str | None, *, lang: str) -> str:
    cat = catalogue(lang)
    lows = (0.0, *BREAKS[:-1])
    items = [f"<i style='background:{SHADES[0]}'></i> 0"] + [
        f"<i style='background:{SHADES[i + 1]}'></i> "
        + (f"&gt; {lows[i]:,.0f}" if top == float("inf") else f"{lows[i]:,.0f}–{top:,.0f}")
        for i, top in enumerate(BREAKS)
    ]
    return (
        "<div class='asm-legend' style='position:fixed;bottom:24px;right:10px;z-index:1000;background:#fff;"
        "padding:6px 8px;border:1px solid #999;font:12px sans-serif'>"
        f"<b>{esc(cat.t('map.overview_legend', period=latest or '-'))}</b><br>"
        + "<br>".join(items).replace("<i ", "<i class='sw' ")
        + "<style>.asm-legend i.sw{display:inline-block;width:14px;height:10px;border:1px solid #999}</style>"
        "<br><small>Amazon Mining Watch, Earth Genome (CC BY 4.0)</small></div>"
    )


def _style(feature: dict[str, Any]) -> dict[str, Any]:
    return {"color": "#555", "weight": 1, "fillColor": feature["properties"]["_fill"], "fillOpacity": 0.75}


def render_overview(out_dir: Path, entries: list[dict[str, Any]], *, lang: str = "en") -> str:
    """HTML of the overview map of ``entries`` (:func:`pipeline.report.basin.read_entries`)."""
    from pipeline.report import verbatim as vb

    cat = catalogue(lang)
    latest = latest_period(entries)
    view = _outlines(out_dir, entries, latest=latest, lang=lang)
    fmap = vb.Map(tiles=None, control_scale=True)
    fmap.default_js, fmap.default_css = [], []  # Leaflet is inlined below, not from a CDN
    page = vb.Page()
    page.add_child(fmap)
    title = cat.t("map.overview_title", period=latest or "-")
    page.title = esc(title)
    page.header.add_child(
        vb.Verbatim(inline_head() + f"<style>{MAP_CSS}</style>"), name="asm_assets", index=0
    )
    osm = "&copy; OpenStreetMap contributors"
    vb.TileLayer("OpenStreetMap", name=cat.t("map.basemap"), attr=osm).add_to(fmap)
    if len(view):
        layer = vb.GeoJson(
            view.to_json(),
            name=esc(title),
            style_function=_style,
        )
        layer.add_child(FeatureHtml())
        layer.add_to(fmap)
        minx, miny, maxx, maxy = view.total_bounds
        fmap.add_child(vb.FitBounds([[miny, minx], [maxy, maxx]]))
    page.html.add_child(vb.Verbatim(_legend(latest, lang=lang)), name="asm_legend")
    vb.check_tree(page)
    vb.stable_ids(page)
    html_doc = str(page.render()).replace("<html>", f"<html lang='{esc(lang)}'>", 1)
    assert_offline(html_doc)
    return html_doc


def write_overview(out_dir: Path, entries: list[dict[str, Any]], *, lang: str = "en") -> Path:
    """Write ``out_dir/overview.html``."""
    return write_text(out_dir / "overview.html", render_overview(out_dir, entries, lang=lang))
