"""The gold-mining change detector in a run: the AOI's scenes grouped into places (only
where there is imagery), a *before* and an *after* view per place, the detector applied
lazily, everything computed at once, then polygons with hectares.

A place with a single date is never mining deforestation: it is recorded in the evidence
(``single_date_places``) and gives no mining detection.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date
from typing import Any

import dask
import geopandas as gpd
import pandas as pd
import xarray as xr

from pipeline.core.config import Settings
from pipeline.core.errors import NoDataError
from pipeline.core.periods import Period
from pipeline.core.records import CONFIRMED, PROBABLE, WGS84, Aoi, empty_detections
from pipeline.detect.detections import mining_rows
from pipeline.detect.indices import ndvi
from pipeline.detect.mining_change import MiningDetector, mining_change
from pipeline.ingest.scene_places import Place
from pipeline.ingest.scene_spec import SceneSpec
from pipeline.ingest.training import sensor_bands
from pipeline.ops.imagery import clear_observations

log = logging.getLogger(__name__)

#: Sentinel-2 bands the gold-mining detector reads (blue, green, red, NIR, SWIR1, SWIR2).
MINING_BANDS = ("B02", "B03", "B04", "B08", "B11", "B12")


@dataclass(frozen=True, kw_only=True)
class Views:
    """Which scenes of a place form the before and the after view."""

    before: tuple[SceneSpec, ...]
    after: tuple[SceneSpec, ...]

    @property
    def after_dates(self) -> list[date]:
        return sorted(s.datetime.date() for s in self.after if s.datetime is not None)


def split_views(scenes: Sequence[SceneSpec], *, period: Period | None) -> Views | None:
    """Before and after scenes of one place, or None when the place has fewer than two
    dates (undated scenes cannot be ordered and count as one date).

    With a period that starts after the first date, the before view is every scene before
    the period and the after view every scene inside it; otherwise the first date is the
    before view and the later dates (inside the period, when one is given) the after view.
    """
    dated = [s for s in scenes if s.datetime is not None]
    days = sorted({s.datetime.date() for s in dated if s.datetime is not None})
    if len(days) < 2:
        return None
    if period is not None and days[0] < period.start:
        before = tuple(s for s in dated if s.datetime and s.datetime.date() < period.start)
        after = tuple(s for s in dated if s.datetime and period.contains(s.datetime.date()))
    else:
        before = tuple(s for s in dated if s.datetime and s.datetime.date() == days[0])
        after = tuple(
            s
            for s in dated
            if s.datetime
            and s.datetime.date() > days[0]
            and (period is None or period.contains(s.datetime.date()))
        )
    return Views(before=before, after=after) if before and after else None


def composite(aoi: Aoi, scenes: Sequence[SceneSpec], *, settings: Settings) -> xr.Dataset:
    """Median of the clear observations of ``scenes`` on the place's grid (lazy), with
    canonical band names; one scene is its own view."""
    cube = clear_observations(aoi, scenes, settings=settings, period=None, bands=MINING_BANDS)
    rename = {v: k for k, v in sensor_bands("sentinel2").items() if v in cube}
    cube = cube[list(MINING_BANDS)].rename(rename)
    view = cube.isel(time=0) if cube.sizes["time"] == 1 else cube.median("time", skipna=True)
    return view.drop_vars([c for c in ("time", "scene_id") if c in view.coords])


@dataclass(frozen=True, kw_only=True)
class _Pending:
    place: Place
    views: Views
    change: xr.Dataset


def mining_detections(
    aoi: Aoi,
    places: Sequence[Place],
    *,
    settings: Settings,
    period: Period | None,
    detector: MiningDetector,
) -> tuple[gpd.GeoDataFrame, dict[str, Any]]:
    """Mining polygons of every place of the AOI that has a before and an after view, and
    the evidence: places scored, single-date places, skipped places and why."""
    pending: list[_Pending] = []
    single, skipped = 0, []
    for place in places:
        views = split_views(place.scenes, period=period)
        if views is None:
            single += 1
            continue
        sub = replace(aoi, geometry=place.footprint)
        try:
            before = composite(sub, views.before, settings=settings)
            after = composite(sub, views.after, settings=settings)
        except NoDataError as exc:
            skipped.append(str(exc))
            continue
        change = mining_change(before, after, detector=detector)
        change["ndvi_before"] = ndvi(before["nir"], before["red"])
        change["ndvi_after"] = ndvi(after["nir"], after["red"])
        pending.append(_Pending(place=place, views=views, change=change))
    # one compute for every place of the AOI: small patches share the scheduler's overhead
    with warnings.catch_warnings():
        # a pixel clouded in every scene of a view has no median: NaN, as masked pixels are
        warnings.filterwarnings("ignore", "All-NaN slice", RuntimeWarning)
        (computed,) = dask.compute([p.change for p in pending])
    frames = [empty_detections()]
    valid = scored = 0
    for p, result in zip(pending, computed, strict=True):
        days = p.views.after_dates
        arrays = {k: result[k].values for k in ("mining", "score", "ndvi_before", "ndvi_after")}
        valid += int(arrays["score"].size - pd.isna(arrays["score"]).sum())
        scored += int(arrays["score"].size)
        frames.append(
            mining_rows(
                arrays,
                aoi_id=aoi.aoi_id,
                transform=result.rio.transform(),
                crs=result.rio.crs,
                area_crs=aoi.equal_area_crs,
                min_area_ha=settings.detect.min_area_ha,
                first_seen=days[0] if days else None,
                last_seen=days[-1] if days else None,
                period_label=str(period) if period else "",
                confidence=CONFIRMED if len(days) > settings.detect.change_confirm_after else PROBABLE,
            )
        )
    found = gpd.GeoDataFrame(
        pd.concat([f for f in frames if len(f)] or frames[:1], ignore_index=True),
        geometry="geometry",
        crs=WGS84,
    )
    evidence = {
        "places": len(places),
        "places_scored": len(pending),
        "single_date_places": single,
        "skipped_places": skipped,
        "scored_fraction": valid / scored if scored else None,
    }
    log.info(
        "AOI %s: %d places with imagery, %d scored, %d single-date, %d mining polygons",
        aoi.aoi_id,
        len(places),
        len(pending),
        single,
        len(found),
    )
    return found, evidence
