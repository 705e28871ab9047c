"""River statistics of a run: median turbidity upstream and downstream of each registered
site on a river, for the ``turbidity_downstream`` rule (issue 17 item 5).

The rule needs three inputs of the AOI: river lines (``inputs.rivers``,
:mod:`pipeline.ingest.rivers`), imagery for a water mask and turbidity (``inputs.scenes`` or
``site_patches``) and registered sites (``inputs.registry``). With all three, each place with
imagery is read at its latest date, its water mask and Dogliotti turbidity computed (one
compute per place), and every site within ``max_offset_m`` of a river line gets the medians of
:func:`pipeline.detect.rivers.reach_turbidity` along that line. When one is missing, or no site
lies on a river with water pixels on both sides, :class:`RiverStats` says why the rule was
not evaluated; ``run.json`` carries it under ``rules_not_evaluated``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import dask
import geopandas as gpd
import numpy as np
import pandas as pd

from pipeline.core.config import Settings
from pipeline.core.errors import NoDataError
from pipeline.core.periods import Period
from pipeline.core.records import WGS84, Aoi
from pipeline.detect.landcover import WATER_CLEAR, WATER_TURBID
from pipeline.detect.rivers import RIVER_STATS_COLUMNS, reach_turbidity
from pipeline.detect.scene import scene_products
from pipeline.ingest.rivers import read_rivers, river_spec
from pipeline.ingest.scene_places import Place, group_places
from pipeline.ingest.scene_spec import SceneSpec
from pipeline.ingest.sources import scene_specs
from pipeline.ingest.training import sensor_bands
from pipeline.ops.imagery import clear_observations

log = logging.getLogger(__name__)

RULE = "turbidity_downstream"


@dataclass(frozen=True)
class RiverStats:
    """What the run knows about its rivers."""

    stats: pd.DataFrame | None
    """One row per site on a river: ``site_id``, ``river``, ``upstream_fnu``,
    ``downstream_fnu`` (medians, FNU), ``upstream_px``, ``downstream_px``, ``first_seen`` /
    ``last_seen`` (date of the imagery); None when the rule is not evaluated."""
    not_evaluated: str | None = None
    """Why ``turbidity_downstream`` was not evaluated (None: it was)."""
    evidence: dict[str, Any] = field(default_factory=dict)
    """Counts for ``run.json``: river lines, sites on a river, sites measured."""


def river_statistics(
    aoi: Aoi,
    *,
    sites: gpd.GeoDataFrame | None,
    root: Path,
    settings: Settings,
    period: Period | None,
) -> RiverStats:
    """Upstream / downstream turbidity of each of ``sites`` on a river of the AOI (computes),
    or why the rule cannot be evaluated for this AOI."""
    spec = aoi.inputs.get("rivers")
    if not spec:
        return RiverStats(None, "no river lines: the AOI file has no inputs.rivers (river centre lines)")
    if sites is None or sites.empty:
        return RiverStats(
            None,
            "no registered sites: the rule compares the river upstream and downstream of a site "
            "(inputs.registry)",
        )
    scenes = scene_specs(aoi, settings=settings, period=period)
    if not scenes:
        return RiverStats(None, "no imagery, so no water mask or turbidity (inputs.scenes or site_patches)")
    spec = river_spec(spec)
    rivers = read_rivers(root / spec["path"], spec=spec, within=aoi.geometry, crs=aoi.utm_crs)
    evidence: dict[str, Any] = {"river_lines": len(rivers), "sites": len(sites)}
    if rivers.empty:
        return RiverStats(
            None,
            f"none of the river lines of {spec['path']} comes within {spec['max_offset_m']:g} m of the AOI",
            evidence,
        )
    on_river = _nearest_river(sites.to_crs(aoi.utm_crs), rivers, max_offset_m=float(spec["max_offset_m"]))
    evidence["sites_on_a_river"] = len(on_river)
    if on_river.empty:
        return RiverStats(
            None, f"no registered site lies within {spec['max_offset_m']:g} m of a river line", evidence
        )
    places = group_places(scenes, within=aoi.geometry)
    frames = [
        _place_stats(aoi, place, on_river, rivers, spec=spec, settings=settings, period=period)
        for place in places
    ]
    stats = pd.concat([f for f in frames if len(f)] or [_empty()], ignore_index=True)
    measured = stats[(stats["upstream_px"] > 0) & (stats["downstream_px"] > 0)]
    evidence["sites_measured"] = int(measured["site_id"].nunique())
    if measured.empty:
        return RiverStats(
            None,
            f"{len(on_river)} site(s) lie on a river line, but the imagery shows no water pixels both "
            f"upstream and downstream of any of them within {spec['reach_m']:g} m (clouds, no data, or "
            "the line misses the channel)",
            evidence,
        )
    log.info("AOI %s: river turbidity measured at %d site(s)", aoi.aoi_id, evidence["sites_measured"])
    return RiverStats(measured.reset_index(drop=True), None, evidence)


def _empty() -> pd.DataFrame:
    return pd.DataFrame(columns=[*RIVER_STATS_COLUMNS, "river", "first_seen", "last_seen"]).astype(
        {"upstream_px": int, "downstream_px": int, "upstream_fnu": float, "downstream_fnu": float}
    )


def _nearest_river(
    sites: gpd.GeoDataFrame, rivers: gpd.GeoDataFrame, *, max_offset_m: float
) -> gpd.GeoDataFrame:
    """Sites (metric CRS) with ``line``: the index of the nearest river line part within
    ``max_offset_m`` (sites farther from every line are left out)."""
    points = gpd.GeoDataFrame(
        {"site_id": sites["site_id"].to_numpy()},
        geometry=sites.geometry.representative_point().to_numpy(),
        crs=sites.crs,
    )
    lines = rivers.reset_index(names="line")[["line", "geometry"]]
    joined = gpd.sjoin_nearest(points, lines, max_distance=max_offset_m, distance_col="offset_m")
    joined = joined.sort_values(["site_id", "offset_m", "line"]).drop_duplicates("site_id")
    return gpd.GeoDataFrame(
        joined[["site_id", "line", "offset_m", "geometry"]], geometry="geometry", crs=sites.crs
    )


def _latest(scenes: Sequence[SceneSpec]) -> list[SceneSpec]:
    """A place's scenes of its latest date (all when undated): the river as last seen."""
    days = [s.datetime for s in scenes if s.datetime is not None]
    last = max(days) if days else None
    return [s for s in scenes if s.datetime == last]


def _place_stats(
    aoi: Aoi,
    place: Place,
    on_river: gpd.GeoDataFrame,
    rivers: gpd.GeoDataFrame,
    *,
    spec: dict[str, Any],
    settings: Settings,
    period: Period | None,
) -> pd.DataFrame:
    """Reach medians of the sites on a river inside ``place``'s footprint."""
    footprint = gpd.GeoSeries([place.footprint], crs=WGS84).to_crs(on_river.crs).iloc[0]
    here = on_river[on_river.within(footprint)]
    if here.empty:
        return _empty()
    sub = replace(aoi, geometry=place.footprint.intersection(aoi.geometry))
    try:
        cube = clear_observations(sub, _latest(place.scenes), settings=settings, period=period)
    except NoDataError as exc:
        log.warning("AOI %s: no clear view of a river place (%s)", aoi.aoi_id, exc)
        return _empty()
    rename = {v: k for k, v in sensor_bands("sentinel2").items() if v in cube}
    products = scene_products(cube.rename(rename), params=settings.detect)
    # one small compute per place: its water classes and turbidity at the latest date
    landcover, fnu = dask.compute(products["landcover"].data, products["turbidity_fnu"].data)
    water = np.isin(np.asarray(landcover), [WATER_CLEAR, WATER_TURBID])
    day = pd.Timestamp(cube["time"].values[-1])
    seen = None if pd.isna(day) else str(day.date())
    out = []
    for line, group in here.groupby("line"):
        found = reach_turbidity(
            np.asarray(fnu),
            water,
            group,
            transform=cube.rio.transform(),
            crs=cube.rio.crs,
            reach_m=float(spec["reach_m"]),
            gap_m=float(spec["gap_m"]),
            max_offset_m=float(spec["max_offset_m"]),
            river=rivers.to_crs(cube.rio.crs).geometry.iloc[int(line)],
        )
        out.append(found.assign(river=str(rivers["river"].iloc[int(line)]), first_seen=seen, last_seen=seen))
    return pd.concat(out, ignore_index=True) if out else _empty()
