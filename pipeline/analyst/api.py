"""The analyst API: thin, documented wrappers over the code the nightly run uses.

Notebooks call these and define no logic of their own. Everything here either stays lazy
(``canonical_cube``, ``scene_products``, ``true_colour``) or, like ``run.py``, computes on
purpose and says so (``detect_aoi``, ``river_turbidity``). Threshold sweeps live in
:mod:`pipeline.analyst.tuning`.

Conventions: rasters are on the AOI's UTM grid (``aoi.utm_crs``, metres) with dims
``("time", "y", "x")`` or ``("y", "x")``; vector results are GeoDataFrames in EPSG:4326;
hectares are measured in the AOI's equal-area CRS.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd

from pipeline.analyst.imagery import (
    Detections,
    as_period,
    canonical_cube,
    detect_aoi,
    notebook_settings,
    scene_products,
    true_colour,
)
from pipeline.core.config import Settings, settings_or_default
from pipeline.core.periods import Period
from pipeline.core.records import KIND_MINING, WGS84, Aoi, AoiResult
from pipeline.ops.aoi_run import run_aoi as _run
from pipeline.report.index import write_index

KIND_COLOURS = {KIND_MINING: "#d62728", "turbidity": "#8c564b"}


def explore(
    aoi: Aoi,
    detections: gpd.GeoDataFrame,
    *,
    fields: tuple[str, ...] = ("kind", "area_ha", "confidence", "first_seen", "mean_ndvi"),
) -> Any:
    """An interactive folium map of the AOI outline and detections, coloured by ``kind``,
    for a notebook cell (the buyer map of a run is ``map.html`` in its output folder).

    Returns
    -------
    folium.Map
        Hover a detection for ``fields``; basemap tiles load only when the map is viewed.
    """
    import folium

    shown = [f for f in fields if f in detections.columns]
    table = detections.to_crs(WGS84)[[*shown, "geometry"]].copy()
    for col in shown:
        # dates and NaN are not JSON; rounded text is what a tooltip shows anyway
        table[col] = [
            v if isinstance(v, str) else "" if pd.isna(v) else f"{v:.3g}" if isinstance(v, float) else str(v)
            for v in table[col]
        ]
    minx, miny, maxx, maxy = aoi.geometry.bounds
    fmap = folium.Map(tiles="OpenStreetMap", control_scale=True)
    fmap.fit_bounds([[miny, minx], [maxy, maxx]])
    folium.GeoJson(
        aoi.to_frame()[["aoi_id", "name", "geometry"]],
        name="AOI",
        style_function=lambda _: {"fill": False, "color": "#1f77b4", "weight": 3},
    ).add_to(fmap)
    if len(table):
        folium.GeoJson(
            table,
            name="detections",
            style_function=lambda f: {
                "color": KIND_COLOURS.get(f["properties"].get("kind"), "#555555"),
                "fillOpacity": 0.5,
                "weight": 1,
            },
            tooltip=folium.GeoJsonTooltip(fields=shown) if shown else None,
        ).add_to(fmap)
    folium.LayerControl().add_to(fmap)
    return fmap


def run_aoi(
    aoi: Aoi, *, out_dir: Path | str, settings: Settings | None = None, period: Period | str | None = None
) -> AoiResult:
    """Run one AOI end to end into ``out_dir/<aoi_id>/`` like ``asm-monitor run`` does.

    The flag state and audit ledger go to ``out_dir/asm-monitor.sqlite`` (unless
    ``state_db`` is set), so a scratch ``out_dir`` starts a fresh lifecycle. Run periods in
    order (``2023`` then ``2024``) to see flags move from ``new`` to ``ongoing``.
    """
    s = settings_or_default(settings)
    result = _run(aoi, settings=s, period=as_period(period), out_dir=Path(out_dir))
    write_index(Path(out_dir), lang=s.lang)  # the folder's index lists this AOI too
    return result


# re-exported so that ``pipeline.analyst.api`` is the one place to look
from pipeline.analyst.analysis import (  # noqa: E402
    RiverTurbidity,
    aoi_inputs,
    impact,
    load_zones,
    river_turbidity,
    turbidity_matchups,
    with_detect,
)
from pipeline.analyst.review import (  # noqa: E402
    LedgerCheck,
    ledger,
    scorecard_page,
    site_scorecard,
    suppress,
    verify_ledger,
)

__all__ = [
    "Detections",
    "LedgerCheck",
    "RiverTurbidity",
    "aoi_inputs",
    "canonical_cube",
    "detect_aoi",
    "explore",
    "impact",
    "ledger",
    "load_zones",
    "notebook_settings",
    "river_turbidity",
    "run_aoi",
    "scene_products",
    "scorecard_page",
    "site_scorecard",
    "suppress",
    "true_colour",
    "turbidity_matchups",
    "verify_ledger",
    "with_detect",
]
