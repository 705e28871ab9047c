"""The buyer map: one self-contained folium HTML per AOI (the index page is in index.py).

The page needs no network: Leaflet and jQuery are inlined (:mod:`pipeline.report.assets`);
only basemap tiles are fetched, and when they cannot load a note says so over a plain
background. Every value placed in HTML goes through :func:`pipeline.report.markup.esc`;
popups and tooltips are handed to Leaflet as JSON strings, never pasted into JavaScript.
Each flag marker is an SVG path with class ``asm-flag`` and id ``flag-<flag_id>``, and
``map.html#flag-<flag_id>`` (the link in alerts) zooms to the flag and opens its popup.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import geopandas as gpd

from pipeline.core.atomic import write_text
from pipeline.core.records import WGS84
from pipeline.core.version import __version__
from pipeline.report.assets import assert_offline, inline_head
from pipeline.report.i18n import Catalogue, catalogue
from pipeline.report.markup import esc, is_blank, rows_table
from pipeline.report.reasons import clause_text, reason_text
from pipeline.report.scorecard import site_facts, site_states

log = logging.getLogger(__name__)

SEVERITY_COLOURS = {"high": "#c0392b", "medium": "#e67e22", "low": "#f1c40f", "info": "#27ae60"}
SITE_COLOURS = {
    "flagged_high": "#c0392b",
    "flagged_medium": "#e67e22",
    "flagged_low": "#f1c40f",
    "licence_invalid": "#8e44ad",
    "compliant": "#27ae60",
}
# viridis-like ramp: older detections dark blue, newest yellow
_RAMP = ["#440154", "#3b528b", "#21918c", "#5ec962", "#fde725"]
_MAP_CSS = (
    ".leaflet-container{background:#dfe6e9}"
    ".asm-box{background:rgba(255,255,255,.94);padding:6px 8px;border:1px solid #999;border-radius:4px;"
    "font:12px/1.35 system-ui,sans-serif;max-width:300px}"
    "#asm-legend{position:fixed;bottom:64px;left:10px;z-index:1000;max-height:60vh;overflow:auto}"
    "#asm-legend i{display:inline-block;width:11px;height:11px;margin-right:5px;border:1px solid #555}"
    "#asm-tiles-note{display:none;position:fixed;top:10px;left:60px;z-index:1000;background:#fff3cd}"
    ".asm-popup th{text-align:left;padding-right:6px;vertical-align:top}.asm-popup{font-size:12px}"
)


def _folium() -> Any:
    try:
        import folium
    except ImportError as exc:  # pragma: no cover - folium is a core dependency
        raise ImportError("The map needs folium: pip install folium") from exc
    return folium


def _hex(c: str) -> tuple[int, int, int]:
    return int(c[1:3], 16), int(c[3:5], 16), int(c[5:7], 16)


def period_colours(labels: list[str]) -> dict[str, str]:
    """Colour per period label, oldest to newest along a viridis-like ramp (sorted as text,
    which orders ``2019 < 2020 < 2025Q2``)."""
    labels = sorted(set(labels))
    out = {}
    for i, label in enumerate(labels):
        x = i / max(len(labels) - 1, 1) * (len(_RAMP) - 1)
        lo = min(int(x), len(_RAMP) - 2)
        a, b = _hex(_RAMP[lo]), _hex(_RAMP[lo + 1])
        t = x - lo
        out[label] = "#" + "".join(f"{round(p + (q - p) * t):02x}" for p, q in zip(a, b, strict=True))
    return out


def _bind_html(folium: Any, *, tooltip: bool = True, popup: bool = True) -> Any:
    """A child element binding each GeoJSON feature's pre-escaped ``_tip``/``_popup``."""
    from branca.element import MacroElement
    from jinja2 import Template

    el = MacroElement()
    el._template = Template(
        "{% macro script(this, kwargs) %}"
        "{{ this._parent.get_name() }}.eachLayer(function(l){var p=l.feature.properties;"
        + ("if(p._tip){l.bindTooltip(p._tip,{sticky:true});}" if tooltip else "")
        + ("if(p._popup){l.bindPopup(p._popup,{maxWidth:420});}" if popup else "")
        + "});{% endmacro %}"
    )
    return el


def _flag_binding(popup: str, tip: str, fid: str) -> Any:
    from branca.element import MacroElement
    from jinja2 import Template

    el = MacroElement()
    el._template = Template(
        "{% macro script(this, kwargs) %}"
        "(function(m){m.bindPopup({{ this.popup|tojson }},{maxWidth:440});"
        "m.bindTooltip({{ this.tip|tojson }});window.asmFlags=window.asmFlags||{};"
        "window.asmFlags[{{ this.fid|tojson }}]=m;"
        "function tag(){var e=m.getElement&&m.getElement();if(e){e.id={{ ('flag-' ~ this.fid)|tojson }};"
        "e.setAttribute('data-flag-id',{{ this.fid|tojson }});}}"
        "m.on('add',tag);tag();})({{ this._parent.get_name() }});{% endmacro %}"
    )
    el.popup, el.tip, el.fid = popup, tip, fid  # type: ignore[attr-defined]
    return el


def _page_script(map_name: str, tiles_name: str) -> Any:
    from branca.element import MacroElement
    from jinja2 import Template

    el = MacroElement()
    el._template = Template(
        "{% macro script(this, kwargs) %}"
        f"(function(){{var note=document.getElementById('asm-tiles-note');var shown=false;"
        f"function show(){{if(!shown){{shown=true;note.style.display='block';}}}}"
        f"{tiles_name}.on('tileerror',show);if(navigator.onLine===false){{show();}}"
        "function go(){var h=/^#flag-([0-9a-f]+)$/.exec(location.hash);if(!h||!window.asmFlags)return;"
        f"var m=window.asmFlags[h[1]];if(!m)return;{map_name}.setView(m.getLatLng(),"
        f"Math.max({map_name}.getZoom(),13));m.openPopup();}}"
        "window.addEventListener('hashchange',go);go();})();{% endmacro %}"
    )
    return el


def _chips_html(chips: list[tuple[str, str, str]], cat: Catalogue) -> str:
    """Image chips (kind, date, data URI) as a row of small figures."""
    figures = "".join(
        f"<figure style='margin:0 4px 0 0;display:inline-block'>"
        f"<img src='{esc(uri)}' width='120' height='120' style='image-rendering:pixelated'>"
        f"<figcaption>{esc(cat.t('map.chip_' + kind))} {esc(date)}</figcaption></figure>"
        for kind, date, uri in chips
    )
    return f"<div class='asm-chips'><b>{esc(cat.t('map.chip_title'))}</b><br>{figures}</div>"


def _flag_popup(
    rec: dict[str, Any],
    cat: Catalogue,
    scorecards: dict[str, str],
    chips: list[tuple[str, str, str]] | None = None,
) -> str:
    site = rec.get("site_id") if not is_blank(rec.get("site_id")) else None
    site_label = (
        f"{rec.get('site_name')} ({site})" if site and rec.get("site_name") not in (None, site) else site
    )
    licence = " / ".join(
        cat.term(section, rec.get(section))
        for section in ("licence_kind", "licence_status")
        if not is_blank(rec.get(section))
    )
    body = rows_table(
        {
            cat.t("field.rule"): cat.label("rule", rec["rule_id"]),
            cat.t("field.severity"): cat.label("severity", rec["severity"]),
            cat.t("field.status"): cat.label("status", rec["status"]),
            cat.t("field.reason"): reason_text(rec, cat=cat),
            cat.t("field.hectares"): cat.ha(rec.get("area_ha")),
            cat.t("field.mined_hectares"): cat.ha(rec.get("mined_area_ha")),
            cat.t("field.first_seen"): rec.get("first_seen"),
            cat.t("field.last_seen"): rec.get("last_seen"),
            cat.t("field.evidence_dates"): str(rec.get("periods") or "").replace(",", ", "),
            cat.t("field.site"): site_label,
            cat.t("field.licence"): licence,
            cat.t("field.clause"): clause_text(rec, cat=cat),
            cat.t("field.coordinates"): f"{rec['lon']:.5f}, {rec['lat']:.5f}",
            cat.t("field.flag_id"): rec["flag_id"],
        }
    )
    if chips:
        body += _chips_html(chips, cat)
    if site and site in scorecards:
        body += f"<a href='{esc(scorecards[site])}'>{esc(cat.t('map.scorecard_link'))}</a>"
    return body


def _legend(
    *,
    title: str,
    cat: Catalogue,
    periods: dict[str, str],
    n_flags: int,
    attribution: str,
    run_id: str,
    has_sites: bool,
) -> str:
    def swatch(colour: str, label: str) -> str:
        return f"<div><i style='background:{esc(colour)}'></i>{esc(label)}</div>"

    sites = "".join(swatch(c, cat.t(f"site_state.{k}")) for k, c in SITE_COLOURS.items())
    sev = "".join(swatch(SEVERITY_COLOURS[k], cat.label("severity", k)) for k in ("high", "medium", "low"))
    det = "".join(swatch(c, p) for p, c in periods.items())
    generated = cat.t(
        "generated", version=__version__, run_id=run_id or "-", date=datetime.now(UTC).date().isoformat()
    )
    return (
        f"<div id='asm-legend' class='asm-box'><b>{esc(title)}</b> &middot; "
        f"{esc(cat.t('map.flag_count', n=n_flags))}"
        + (f"<div><b>{esc(cat.t('map.legend_sites'))}</b>{sites}</div>" if has_sites else "")
        + f"<div><b>{esc(cat.t('map.legend_flags'))}</b>{sev}</div>"
        + (f"<div><b>{esc(cat.t('map.legend_detections'))}</b>{det}</div>" if periods else "")
        + f"<small class='muted'>{esc(attribution)}<br>{esc(generated)}</small></div>"
        f"<div id='asm-tiles-note' class='asm-box' role='status'>{esc(cat.t('map.tiles_offline'))}</div>"
    )


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
    """
    folium = _folium()
    from branca.element import Element

    cat = catalogue(lang)
    scorecards = scorecards or {}
    aoi = aoi.to_crs(WGS84)
    minx, miny, maxx, maxy = aoi.total_bounds
    fmap = folium.Map(tiles=None, control_scale=True, prefer_canvas=False)
    # we inline what the page needs instead of folium's CDN links
    fmap.default_js, fmap.default_css = [], []
    root = fmap.get_root()
    root.title = esc(title)
    root.header.add_child(Element(inline_head() + f"<style>{_MAP_CSS}</style>"), name="asm_assets", index=0)
    tiles = folium.TileLayer(
        "OpenStreetMap", name=cat.t("map.basemap"), attr="&copy; OpenStreetMap contributors"
    )
    tiles.add_to(fmap)
    fmap.fit_bounds([[miny, minx], [maxy, maxx]])

    outline = folium.FeatureGroup(name=esc(cat.t("map.layer_aoi")), show=True)
    view = aoi[["geometry"]].assign(_tip=[esc(n) for n in aoi["name"]])
    gj = folium.GeoJson(
        view.to_json(), style_function=lambda _: {"color": "#2c3e50", "weight": 3, "fill": False}
    )
    gj.add_child(_bind_html(folium, popup=False))
    gj.add_to(outline)
    outline.add_to(fmap)

    if sites is not None and len(sites):
        group = folium.FeatureGroup(name=esc(cat.t("map.layer_sites")), show=True)
        states = site_states(sites, flags)
        s = sites.to_crs(WGS84)
        tips, popups = [], []
        for rec, state in zip(s.drop(columns="geometry").to_dict("records"), states, strict=True):
            sid = rec["site_id"]
            tips.append(esc(f"{sid} · {cat.t(f'site_state.{state}')}"))
            body = rows_table(
                {**site_facts(rec, cat=cat), cat.t("field.status"): cat.t(f"site_state.{state}")}
            )
            if sid in scorecards:
                body += f"<a href='{esc(scorecards[sid])}'>{esc(cat.t('map.scorecard_link'))}</a>"
            popups.append(body)
        view = gpd.GeoDataFrame(
            {"state": states, "_tip": tips, "_popup": popups}, geometry=s.geometry.values, crs=WGS84
        )
        gj = folium.GeoJson(
            view.to_json(),
            style_function=lambda f: {
                "color": SITE_COLOURS.get(f["properties"]["state"], "#7f8c8d"),
                "weight": 1.5,
                "fillOpacity": 0.15,
            },
        )
        gj.add_child(_bind_html(folium))
        gj.add_to(group)
        group.add_to(fmap)

    periods: dict[str, str] = {}
    if len(detections):
        group = folium.FeatureGroup(name=esc(cat.t("map.layer_detections")), show=True)
        d = detections.to_crs(WGS84)
        labels = [
            str(p) if not is_blank(p) else str(fs)[:4]
            for p, fs in zip(d["period"], d["first_seen"], strict=True)
        ]
        periods = period_colours(labels)
        tips = [
            esc(f"{cat.label('kind', k)} · {p} · {cat.ha(a)} ha")
            for k, p, a in zip(d["kind"], labels, d["area_ha"], strict=True)
        ]
        view = gpd.GeoDataFrame(
            {"_c": [periods[p] for p in labels], "_tip": tips}, geometry=d.geometry.values, crs=WGS84
        )
        gj = folium.GeoJson(
            view.to_json(),
            style_function=lambda f: {
                "color": f["properties"]["_c"],
                "weight": 1,
                "fillColor": f["properties"]["_c"],
                "fillOpacity": 0.55,
            },
        )
        gj.add_child(_bind_html(folium, popup=False))
        gj.add_to(group)
        group.add_to(fmap)

    group = folium.FeatureGroup(name=esc(cat.t("map.layer_flags")), show=True)
    for rec in flags.to_dict("records"):
        sev = re.sub(r"[^a-z]", "", str(rec["severity"]))
        marker = folium.CircleMarker(
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
        tip = esc(f"{cat.label('rule', rec['rule_id'])} ({cat.label('severity', rec['severity'])})")
        marker.add_child(
            _flag_binding(
                _flag_popup(rec, cat, scorecards, (chips or {}).get(str(rec["flag_id"]))),
                tip,
                str(rec["flag_id"]),
            )
        )
        marker.add_to(group)
    group.add_to(fmap)
    folium.LayerControl(collapsed=False).add_to(fmap)
    root.html.add_child(
        Element(
            _legend(
                title=title,
                cat=cat,
                periods=periods,
                n_flags=int((flags["rule_id"] != "compliant").sum()) if len(flags) else 0,
                attribution=attribution,
                run_id=run_id,
                has_sites=sites is not None and len(sites) > 0,
            )
        )
    )
    fmap.add_child(_page_script(fmap.get_name(), tiles.get_name()))
    html_doc = str(root.render()).replace("<html>", f"<html lang='{esc(lang)}'>", 1)
    assert_offline(html_doc)
    return html_doc


def write_map(target: Path, **kwargs: Any) -> Path:
    """Render with :func:`render_map` and write atomically."""
    return write_text(target, render_map(**kwargs))
