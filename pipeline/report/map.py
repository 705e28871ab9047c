"""The buyer map: one self-contained folium HTML per AOI (the index page is in index.py).

The page needs no network: Leaflet and jQuery are inlined (:mod:`pipeline.report.assets`);
only basemap tiles are fetched, and when they cannot load a note says so over a plain
background. Every value placed in HTML goes through :func:`pipeline.report.markup.esc`;
popups and tooltips are handed to Leaflet as JSON strings, never pasted into JavaScript.
No data ever reaches Jinja as template source: every element renders verbatim
(:mod:`pipeline.report.verbatim`), and the page is checked for one that would not before it
renders. Each flag marker is an SVG path with class ``asm-flag`` and id ``flag-<flag_id>``,
and ``map.html#flag-<flag_id>`` (the link in alerts) zooms to the flag and opens its popup.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import geopandas as gpd

from pipeline.comply.figures import flag_count
from pipeline.core.atomic import write_text
from pipeline.core.records import KIND_TURBIDITY, WGS84
from pipeline.report.assets import assert_offline, inline_head
from pipeline.report.i18n import Catalogue, aoi_name_in, catalogue, named_reason_args
from pipeline.report.map_html import (
    MAP_CSS,
    SEVERITY_COLOURS,
    SITE_COLOURS,
    TURBID_COLOUR,
    flag_popup,
    legend_html,
    period_colours,
    site_popup,
)
from pipeline.report.markup import esc, is_blank
from pipeline.report.sites import site_states

__all__ = [
    "SEVERITY_COLOURS",
    "SITE_COLOURS",
    "TURBID_COLOUR",
    "SceneImage",
    "period_colours",
    "render_map",
    "site_states",
    "write_map",
]

log = logging.getLogger(__name__)


def _elements() -> tuple[ModuleType, ModuleType]:
    """The verbatim folium classes and the map's script elements (folium imported lazily)."""
    try:
        from pipeline.report import map_elements, verbatim
    except ImportError as exc:  # pragma: no cover - folium is a core dependency
        raise ImportError("The map needs folium: pip install folium") from exc
    return verbatim, map_elements


def render_map(
    *,
    aoi: gpd.GeoDataFrame,
    detections: gpd.GeoDataFrame,
    flags: gpd.GeoDataFrame,
    sites: gpd.GeoDataFrame | None,
    title: str,
    attribution: str = "",
    lang: str = "en",
    run_id: str = "",
    scorecards: dict[str, str] | None = None,
    chips: dict[str, list[tuple[str, str, str]]] | None = None,
    images: Sequence[SceneImage] | None = None,
    names: Mapping[str, str] | None = None,
) -> str:
    """HTML of the AOI map (self-contained but for basemap tiles).

    Parameters
    ----------
    aoi, detections, flags, sites
        Frames in any CRS (drawn in EPSG:4326): the AOI outline, detections with ``period``
        and ``kind``, flags with ``FLAG_COLUMNS``, registered sites (or None).
    lang
        Language of every label: en, es, pt, fr.
    scorecards
        site_id -> relative link of that site's scorecard.
    chips
        flag_id -> image chips ``(kind, date, data URI)``, kind ``before`` or ``after``.
    images
        True-colour images of the places with imagery, drawn under everything else as two
        layers a reader switches on (before, after).
    names
        The AOI's name by language (``Aoi.names``): the page, legend, outline and reasons
        name the AOI in ``lang`` when given, else as ``title``.
    """
    vb, elements = _elements()
    cat = catalogue(lang)
    scorecards = scorecards or {}
    title = aoi_name_in(names, lang=lang, default=title)
    if names and "reason_args" in flags:
        # the reason sentences name the AOI as the reader does
        flags = flags.assign(reason_args=[named_reason_args(v, aoi_name=title) for v in flags["reason_args"]])
    page, fmap, tiles = _new_page(aoi, title=title, cat=cat)
    _add_images(fmap, images or [], cat=cat)
    _add_aoi(fmap, aoi, cat=cat, name=title if names else None)
    has_sites = sites is not None and len(sites) > 0
    if sites is not None and has_sites:
        _add_sites(fmap, sites, flags, cat=cat, scorecards=scorecards)
    # mining by first-seen period (blues); turbid water in a colour of its own, on its own layer
    turbid = detections["kind"] == KIND_TURBIDITY
    periods = _add_detections(fmap, detections[~turbid], cat=cat) if (~turbid).any() else {}
    if turbid.any():
        _add_detections(fmap, detections[turbid], cat=cat, colour=TURBID_COLOUR)
    _add_flags(fmap, flags, cat=cat, scorecards=scorecards, chips=chips or {})
    vb.LayerControl(collapsed=False).add_to(fmap)
    legend = legend_html(
        title=title,
        cat=cat,
        periods=periods,
        n_flags=flag_count(flags),
        attribution=attribution,
        run_id=run_id,
        has_sites=has_sites,
        has_turbid=bool(turbid.any()),
    )
    page.html.add_child(vb.Verbatim(legend), name="asm_legend")
    fmap.add_child(elements.PageScript(tiles=tiles))
    vb.check_tree(page)
    html_doc = str(page.render()).replace("<html>", f"<html lang='{esc(lang)}'>", 1)
    assert_offline(html_doc)
    return html_doc


def _new_page(aoi: gpd.GeoDataFrame, *, title: str, cat: Catalogue) -> tuple[Any, Any, Any]:
    """(page, map, basemap layer): an empty map fitted to the AOI with Leaflet inlined."""
    vb, _ = _elements()
    minx, miny, maxx, maxy = aoi.to_crs(WGS84).total_bounds
    fmap = vb.Map(tiles=None, control_scale=True, prefer_canvas=False)
    # we inline what the page needs instead of folium's CDN links
    fmap.default_js, fmap.default_css = [], []
    page = vb.Page()
    page.add_child(fmap)
    page.title = esc(title)
    page.header.add_child(
        vb.Verbatim(inline_head() + f"<style>{MAP_CSS}</style>"), name="asm_assets", index=0
    )
    tiles = vb.TileLayer("OpenStreetMap", name=cat.t("map.basemap"), attr="&copy; OpenStreetMap contributors")
    tiles.add_to(fmap)
    fmap.add_child(vb.FitBounds([[miny, minx], [maxy, maxx]]))
    return page, fmap, tiles


def _add_layer(
    fmap: Any,
    view: gpd.GeoDataFrame,
    *,
    name: str,
    style: Any,
    tooltip: bool = True,
    popup: bool = True,
) -> None:
    """``view`` (with ``_tip``/``_popup`` HTML columns) as a GeoJson layer in its own group."""
    vb, elements = _elements()
    group = vb.FeatureGroup(name=esc(name), show=True)
    gj = vb.GeoJson(view.to_json(), style_function=style)
    gj.add_child(elements.FeatureHtml(tooltip=tooltip, popup=popup))
    gj.add_to(group)
    group.add_to(fmap)


@dataclass(frozen=True, kw_only=True)
class SceneImage:
    """A true-colour PNG of one place at one date, and where it lies."""

    kind: str
    """``before`` or ``after``."""
    date: str
    data_uri: str
    bounds: tuple[float, float, float, float]
    """South, west, north, east (EPSG:4326)."""


def _add_images(fmap: Any, images: Sequence[SceneImage], *, cat: Catalogue) -> None:
    """Before and after imagery as two layers, off until a reader switches them on."""
    vb, _ = _elements()
    for kind in ("before", "after"):
        chosen = [im for im in images if im.kind == kind]
        if not chosen:
            continue
        group = vb.FeatureGroup(name=esc(cat.t(f"map.images_{kind}")), show=False)
        for im in chosen:
            s, w, n, e = im.bounds
            vb.ImageOverlay(image=im.data_uri, bounds=[[s, w], [n, e]], opacity=1.0).add_to(group)
        group.add_to(fmap)


def _add_aoi(fmap: Any, aoi: gpd.GeoDataFrame, *, cat: Catalogue, name: str | None = None) -> None:
    """The outline, its tooltip the AOI's ``name`` in the reader's language (else the frame's)."""
    a = aoi.to_crs(WGS84)
    view = a[["geometry"]].assign(_tip=[esc(name if name is not None else n) for n in a["name"]])
    outline = {"color": "#2c3e50", "weight": 3, "fill": False}
    _add_layer(fmap, view, name=cat.t("map.layer_aoi"), style=lambda _: outline, popup=False)


def _add_sites(
    fmap: Any,
    sites: gpd.GeoDataFrame,
    flags: gpd.GeoDataFrame,
    *,
    cat: Catalogue,
    scorecards: dict[str, str],
) -> None:
    states = site_states(sites, flags)
    s = sites.to_crs(WGS84)
    tips, popups = [], []
    for rec, state in zip(s.drop(columns="geometry").to_dict("records"), states, strict=True):
        sid = rec["site_id"]
        tips.append(esc(f"{sid} · {cat.t(f'site_state.{state}')}"))
        popups.append(site_popup(rec, state=state, cat=cat, scorecard=scorecards.get(sid)))
    view = gpd.GeoDataFrame(
        {"state": states, "_tip": tips, "_popup": popups}, geometry=s.geometry.values, crs=WGS84
    )

    def style(f: dict[str, Any]) -> dict[str, Any]:
        return {
            "color": SITE_COLOURS.get(f["properties"]["state"], "#7f8c8d"),
            "weight": 1.5,
            "fillOpacity": 0.15,
        }

    _add_layer(fmap, view, name=cat.t("map.layer_sites"), style=style)


def _add_detections(
    fmap: Any, detections: gpd.GeoDataFrame, *, cat: Catalogue, colour: str | None = None
) -> dict[str, str]:
    """Draw the detections coloured by period (or all in ``colour``, as turbid water on its
    own layer); return period label -> colour for the legend."""
    d = detections.to_crs(WGS84)
    # a scene without a date has neither: say "unknown", never "None"
    labels = [
        str(p) if not is_blank(p) else str(fs)[:4] if not is_blank(fs) else cat.t("unknown")
        for p, fs in zip(d["period"], d["first_seen"], strict=True)
    ]
    periods = period_colours(labels) if colour is None else dict.fromkeys(labels, colour)
    tips = [
        esc(f"{cat.label('kind', k)} · {p} · {cat.ha(a)} ha")
        for k, p, a in zip(d["kind"], labels, d["area_ha"], strict=True)
    ]
    view = gpd.GeoDataFrame(
        {"_c": [periods[p] for p in labels], "_tip": tips}, geometry=d.geometry.values, crs=WGS84
    )

    def style(f: dict[str, Any]) -> dict[str, Any]:
        colour = f["properties"]["_c"]
        return {"color": colour, "weight": 1, "fillColor": colour, "fillOpacity": 0.55}

    name = cat.t("map.layer_detections") if colour is None else cat.label("kind", KIND_TURBIDITY)
    _add_layer(fmap, view, name=name, style=style, popup=False)
    return periods


def _add_flags(
    fmap: Any,
    flags: gpd.GeoDataFrame,
    *,
    cat: Catalogue,
    scorecards: dict[str, str],
    chips: dict[str, list[tuple[str, str, str]]],
) -> None:
    vb, elements = _elements()
    group = vb.FeatureGroup(name=esc(cat.t("map.layer_flags")), show=True)
    for rec in flags.to_dict("records"):
        sev = re.sub(r"[^a-z]", "", str(rec["severity"]))
        marker = vb.CircleMarker(
            location=[float(rec["lat"]), float(rec["lon"])],
            radius=7 if rec["rule_id"] != "compliant" else 4,
            color="#222",
            weight=1,
            fill=True,
            fill_color=SEVERITY_COLOURS.get(sev, "#7f8c8d"),
            # a resolved flag stays on the map as history, drawn faint
            fill_opacity=0.25 if rec["status"] == "resolved" else 0.9,
            class_name=f"asm-flag asm-sev-{sev}",
        )
        fid = str(rec["flag_id"])
        popup = flag_popup(rec, cat=cat, scorecards=scorecards, chips=chips.get(fid))
        tip = esc(f"{cat.label('rule', rec['rule_id'])} ({cat.label('severity', rec['severity'])})")
        marker.add_child(elements.FlagBinding(popup=popup, tip=tip, fid=fid))
        marker.add_to(group)
    group.add_to(fmap)


def write_map(target: Path, **kwargs: Any) -> Path:
    """Render with :func:`render_map` and write atomically."""
    return write_text(target, render_map(**kwargs))
