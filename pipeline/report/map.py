"""The buyer map: one self-contained folium HTML per AOI.

Every value placed in HTML goes through :func:`html.escape`; folium is imported lazily so
the rest of the pipeline works without it.
"""

from __future__ import annotations

import html
import logging
from pathlib import Path
from typing import Any

import geopandas as gpd

from pipeline.records import WGS84
from pipeline.report.atomic import write_text

log = logging.getLogger(__name__)

SEVERITY_COLOURS = {"high": "#c0392b", "medium": "#e67e22", "low": "#f1c40f", "info": "#27ae60"}
SITE_COLOURS = {"compliant": "#27ae60", "flagged": "#c0392b", "no_extraction": "#8e44ad"}


def _folium() -> Any:
    try:
        import folium
    except ImportError as exc:  # pragma: no cover - folium is a core dependency
        raise ImportError("The map needs folium: pip install folium") from exc
    return folium


def _popup(rows: dict[str, Any]) -> str:
    cells = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
        for k, v in rows.items()
        if v is not None and v == v
    )
    return f"<table class='asm-popup'>{cells}</table>"


def _site_state(sites: gpd.GeoDataFrame, flags: gpd.GeoDataFrame) -> list[str]:
    flagged = set(flags.loc[flags["rule_id"] != "compliant", "site_id"].dropna())
    return [
        "flagged" if s in flagged else ("compliant" if allowed else "no_extraction")
        for s, allowed in zip(sites["site_id"], sites["allows_extraction"], strict=True)
    ]


def render_map(
    *,
    aoi: gpd.GeoDataFrame,
    detections: gpd.GeoDataFrame,
    flags: gpd.GeoDataFrame,
    sites: gpd.GeoDataFrame | None,
    title: str,
    attribution: str = "",
) -> str:
    """HTML of the AOI map: outline, sites by compliance, detections, flags with popups."""
    folium = _folium()
    aoi = aoi.to_crs(WGS84)
    minx, miny, maxx, maxy = aoi.total_bounds
    fmap = folium.Map(tiles=None, control_scale=True, prefer_canvas=True)
    folium.TileLayer("OpenStreetMap", name="OpenStreetMap", attr="© OpenStreetMap contributors").add_to(fmap)
    fmap.fit_bounds([[miny, minx], [maxy, maxx]])

    outline = folium.FeatureGroup(name="AOI", show=True)
    folium.GeoJson(
        aoi[["name", "geometry"]].to_json(),
        style_function=lambda _: {"color": "#2c3e50", "weight": 2, "fill": False},
    ).add_to(outline)
    outline.add_to(fmap)

    if sites is not None and len(sites):
        group = folium.FeatureGroup(name="Registered sites", show=True)
        states = _site_state(sites, flags)
        view = sites.to_crs(WGS84).assign(state=states)[
            ["site_id", "name", "operator", "licence_kind", "phase", "state", "geometry"]
        ]
        folium.GeoJson(
            view.to_json(),
            style_function=lambda f: {
                "color": SITE_COLOURS.get(f["properties"]["state"], "#7f8c8d"),
                "weight": 1,
                "fillOpacity": 0.15,
            },
            tooltip=folium.GeoJsonTooltip(
                fields=["site_id", "operator", "licence_kind", "state"],
                aliases=["Title", "Holder", "Licence", "State"],
            ),
        ).add_to(group)
        group.add_to(fmap)

    if len(detections):
        group = folium.FeatureGroup(name="Detections", show=True)
        view = detections.to_crs(WGS84)[["detection_id", "kind", "period", "area_ha", "geometry"]]
        folium.GeoJson(
            view.to_json(),
            style_function=lambda f: {
                "color": "#2980b9" if f["properties"]["kind"] == "turbidity" else "#d35400",
                "weight": 1,
                "fillOpacity": 0.4,
            },
            tooltip=folium.GeoJsonTooltip(fields=["kind", "period", "area_ha"]),
        ).add_to(group)
        group.add_to(fmap)

    group = folium.FeatureGroup(name="Flags", show=True)
    for rec in flags.to_dict("records"):
        popup = _popup(
            {
                "Rule": rec["rule_id"],
                "Severity": rec["severity"],
                "Status": rec["status"],
                "Reason": rec["reason"],
                "Hectares": f"{rec['area_ha']:.2f}",
                "First seen": rec.get("first_seen"),
                "Last seen": rec.get("last_seen"),
                "Site": rec.get("site_name") or rec.get("site_id"),
                "Licence": rec.get("licence_kind"),
                "Flag id": rec["flag_id"],
            }
        )
        folium.CircleMarker(
            location=[rec["lat"], rec["lon"]],
            radius=7,
            color=SEVERITY_COLOURS.get(rec["severity"], "#7f8c8d"),
            fill=True,
            fill_opacity=0.9,
            popup=folium.Popup(popup, max_width=420),
            tooltip=html.escape(f"{rec['rule_id']} ({rec['severity']})"),
            class_name="asm-flag",
        ).add_to(group)
    group.add_to(fmap)
    folium.LayerControl(collapsed=False).add_to(fmap)
    legend = "".join(
        f"<div><span style='background:{c};display:inline-block;width:10px;height:10px'></span> "
        f"{html.escape(k)}</div>"
        for k, c in SEVERITY_COLOURS.items()
    )
    fmap.get_root().html.add_child(
        folium.Element(
            "<div id='asm-legend' style='position:fixed;bottom:20px;left:10px;z-index:9999;"
            "background:white;padding:6px;border:1px solid #999;font:12px sans-serif'>"
            f"<b>{html.escape(title)}</b>{legend}<small>{html.escape(attribution)}</small></div>"
        )
    )
    return str(fmap.get_root().render())


def write_map(target: Path, **kwargs: Any) -> Path:
    """Render with :func:`render_map` and write atomically."""
    return write_text(target, render_map(**kwargs))
