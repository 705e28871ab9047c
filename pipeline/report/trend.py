"""A site's hectares per period, inside and outside its title, and the small bar chart of them.

The per-period hectares are each flag's ``area_ha`` (measured by comply inside / outside the
title) shared among the periods of its linked detections (``flags.detection_ids`` ->
``detections.period/area_ha``) in proportion to their areas, so a site's bars add up to its
flags' hectares. This module renders; it measures nothing.
"""

from __future__ import annotations

import pandas as pd

from pipeline.report.i18n import Catalogue
from pipeline.report.markup import esc

#: rules whose hectares lie inside the site's title; clearing_outside_licence lies outside
INSIDE_RULES = {"activity_without_valid_licence", "compliant", "turbidity_downstream"}
OUTSIDE_RULES = {"clearing_outside_licence"}


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


#: bar colours by legality: only mining inside a title that allows extraction is green
LEGAL_COLOUR, ILLEGAL_INSIDE_COLOUR, OUTSIDE_COLOUR = "#27ae60", "#7b241c", "#c0392b"


def trend_svg(
    points: pd.DataFrame,
    *,
    cat: Catalogue,
    inside_legal: bool = True,
    width: int = 420,
    height: int = 140,
) -> str:
    """Stacked bars per period as inline SVG: inside the title green when the title allows
    extraction (``inside_legal``), dark red when it does not; outside the title red."""
    if points.empty:
        return ""
    fill_in = LEGAL_COLOUR if inside_legal else ILLEGAL_INSIDE_COLOUR
    label_in = cat.t("scorecard.inside_title" if inside_legal else "scorecard.inside_title_illegal")
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
            f"fill='{fill_in}'><title>{esc(rec['period'])}: {esc(cat.ha(rec['inside_ha']))} ha "
            f"{esc(label_in)}</title></rect>"
        )
        parts.append(
            f"<rect x='{x:.1f}' y='{height - h_in - h_out:.1f}' width='{bw * 0.8:.1f}' height='{h_out:.1f}' "
            f"fill='{OUTSIDE_COLOUR}'><title>{esc(rec['period'])}: {esc(cat.ha(rec['outside_ha']))} ha "
            f"{esc(cat.t('scorecard.outside_title'))}</title></rect>"
        )
        parts.append(f"<text x='{x:.1f}' y='{height + 14}' font-size='10'>{esc(str(rec['period']))}</text>")
    parts.append(
        f"<text x='48' y='{height + 28}' font-size='10' fill='{fill_in}'>■ "
        f"{esc(label_in)}</text>"
        f"<text x='{width / 2:.0f}' y='{height + 28}' font-size='10' fill='{OUTSIDE_COLOUR}'>■ "
        f"{esc(cat.t('scorecard.outside_title'))}</text></svg>"
    )
    return "".join(parts)
