"""Issue 18 item 6: no "None" shown to readers; detection-period colours never reuse a colour
that means a site state or a severity."""

from __future__ import annotations

from pipeline.report.map import render_map
from pipeline.report.map_html import SEVERITY_COLOURS, SITE_COLOURS, period_colours


def test_undated_detection_reads_as_unknown_not_none(aoi_frame, detections, flags, sites) -> None:  # type: ignore[no-untyped-def]
    undated = detections.copy()
    undated["period"] = None
    undated["first_seen"] = None
    page = render_map(aoi=aoi_frame, detections=undated, flags=flags, sites=sites, title="T", lang="en")
    text = page.replace("If-None-Match", "")  # jQuery's HTTP header name, inlined
    assert "None" not in text
    assert "unknown" in text


def test_period_colours_are_distinct_from_site_and_severity_colours() -> None:
    labels = ["2018", "2019", "2020", "2021", "2022", "2023", "2024", "2025Q2", "2025Q3"]
    used = {c.lower() for c in [*SITE_COLOURS.values(), *SEVERITY_COLOURS.values()]}
    for colour in period_colours(labels).values():
        r, g, b = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
        assert colour.lower() not in used
        assert b > max(r, g), colour  # one blue family: never read as green, yellow, red or purple
