"""The HTML pieces of the buyer map: colours, popups, the legend. Pure strings; every value
goes through :func:`pipeline.report.markup.esc`, and the pieces are handed to the page as
values (never as template source, see :mod:`pipeline.report.verbatim`)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pipeline.core.version import __version__
from pipeline.report.i18n import Catalogue
from pipeline.report.markup import esc, is_blank, rows_table
from pipeline.report.reasons import clause_text, reason_text
from pipeline.report.sites import site_facts

SEVERITY_COLOURS = {"high": "#c0392b", "medium": "#e67e22", "low": "#f1c40f", "info": "#27ae60"}
SITE_COLOURS = {
    "flagged_high": "#c0392b",
    "flagged_medium": "#e67e22",
    "flagged_low": "#f1c40f",
    "no_extraction_allowed": "#8e44ad",
    "compliant": "#27ae60",
}
# one blue family, older detections pale, newest dark: no period colour can be read as a site
# state (green, purple) or a severity (red, orange, yellow)
_RAMP = ["#c6dbef", "#6baed6", "#2171b5", "#08519c", "#08306b"]
#: turbid water (a sediment plume): sepia brown, never a period's blue, so a turbid river is
#: not read as bare ground of the same year; CIELAB distance >= 39 from every other map colour
TURBID_COLOUR = "#704214"
MAP_CSS = (
    ".leaflet-container{background:#dfe6e9}"
    ".asm-box{background:rgba(255,255,255,.94);padding:6px 8px;border:1px solid #999;border-radius:4px;"
    "font:12px/1.35 system-ui,sans-serif;max-width:300px}"
    "#asm-legend{position:fixed;bottom:64px;left:10px;z-index:1000;max-height:60vh;overflow:auto}"
    "#asm-legend i{display:inline-block;width:11px;height:11px;margin-right:5px;border:1px solid #555}"
    "#asm-tiles-note{display:none;position:fixed;top:10px;left:60px;z-index:1000;background:#fff3cd}"
    ".asm-popup th{text-align:left;padding-right:6px;vertical-align:top}.asm-popup{font-size:12px}"
)


def _hex(c: str) -> tuple[int, int, int]:
    return int(c[1:3], 16), int(c[3:5], 16), int(c[5:7], 16)


def period_colours(labels: list[str]) -> dict[str, str]:
    """Colour per period label, oldest (pale blue) to newest (dark blue), sorted as text,
    which orders ``2019 < 2020 < 2025Q2``."""
    labels = sorted(set(labels))
    out = {}
    for i, label in enumerate(labels):
        x = i / max(len(labels) - 1, 1) * (len(_RAMP) - 1)
        lo = min(int(x), len(_RAMP) - 2)
        a, b = _hex(_RAMP[lo]), _hex(_RAMP[lo + 1])
        t = x - lo
        out[label] = "#" + "".join(f"{round(p + (q - p) * t):02x}" for p, q in zip(a, b, strict=True))
    return out


def chips_html(chips: list[tuple[str, str, str]], *, cat: Catalogue) -> str:
    """Image chips (kind, date, data URI) as a row of small figures."""
    figures = "".join(
        f"<figure style='margin:0 4px 0 0;display:inline-block'>"
        f"<img src='{esc(uri)}' width='120' height='120' style='image-rendering:pixelated'>"
        f"<figcaption>{esc(cat.t('map.chip_' + kind))} {esc(date)}</figcaption></figure>"
        for kind, date, uri in chips
    )
    return f"<div class='asm-chips'><b>{esc(cat.t('map.chip_title'))}</b><br>{figures}</div>"


def flag_popup(
    rec: dict[str, Any],
    *,
    cat: Catalogue,
    scorecards: dict[str, str],
    chips: list[tuple[str, str, str]] | None = None,
) -> str:
    """A flag's facts, its image chips and a link to its site's scorecard."""
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
        body += chips_html(chips, cat=cat)
    if site and site in scorecards:
        body += f"<a href='{esc(scorecards[site])}'>{esc(cat.t('map.scorecard_link'))}</a>"
    return body


def site_popup(rec: dict[str, Any], *, state: str, cat: Catalogue, scorecard: str | None) -> str:
    """A registered site's facts and state, with a link to its scorecard."""
    body = rows_table({**site_facts(rec, cat=cat), cat.t("field.status"): cat.t(f"site_state.{state}")})
    if scorecard:
        body += f"<a href='{esc(scorecard)}'>{esc(cat.t('map.scorecard_link'))}</a>"
    return body


def legend_html(
    *,
    title: str,
    cat: Catalogue,
    periods: dict[str, str],
    n_flags: int,
    attribution: str,
    run_id: str,
    has_sites: bool,
    has_turbid: bool = False,
) -> str:
    """The legend box (title, counts, colours, attribution) and the hidden tiles-offline note.
    ``periods`` colour the mining detections; turbid water (``has_turbid``) has its own colour."""

    def swatch(colour: str, label: str) -> str:
        return f"<div><i style='background:{esc(colour)}'></i>{esc(label)}</div>"

    sites = "".join(swatch(c, cat.t(f"site_state.{k}")) for k, c in SITE_COLOURS.items())
    sev = "".join(swatch(SEVERITY_COLOURS[k], cat.label("severity", k)) for k in ("high", "medium", "low"))
    det = "".join(swatch(c, p) for p, c in periods.items())
    turbid = swatch(TURBID_COLOUR, cat.label("kind", "turbidity")) if has_turbid else ""
    generated = cat.t(
        "generated", version=__version__, run_id=run_id or "-", date=datetime.now(UTC).date().isoformat()
    )
    return (
        f"<div id='asm-legend' class='asm-box'><b>{esc(title)}</b> &middot; "
        f"{esc(cat.t('map.flag_count', n=n_flags))}"
        + (f"<div><b>{esc(cat.t('map.legend_sites'))}</b>{sites}</div>" if has_sites else "")
        + f"<div><b>{esc(cat.t('map.legend_flags'))}</b>{sev}</div>"
        + (f"<div><b>{esc(cat.t('map.legend_detections'))}</b>{det}</div>" if periods else "")
        + (f"<div><b>{esc(cat.t('map.legend_water'))}</b>{turbid}</div>" if has_turbid else "")
        + f"<small class='muted'>{esc(attribution)}<br>{esc(generated)}</small></div>"
        f"<div id='asm-tiles-note' class='asm-box' role='status'>{esc(cat.t('map.tiles_offline'))}</div>"
    )
