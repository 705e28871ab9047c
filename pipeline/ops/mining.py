"""The gold-mining change detector in a run: the AOI's scenes grouped into places (only
where there is imagery), each place's dates folded into its baseline state
(:mod:`pipeline.detect.baseline_fold`), everything computed at once, then polygons with
hectares, dated per pixel.

A baseline per place is kept between nights (:mod:`pipeline.state.baselines`, under the state
directory). Which dates a run folds:

- a run without a period (``--full``, ``--force``, an AOI's first night) has every scene: it
  folds them all from an empty state and replaces the stored one;
- a run with a period (a nightly incremental run, or ``--period``) continues the stored state
  with the scenes dated after its last date. Scenes dated before it that it never folded
  (a late delivery) are left out with a warning: ``--full`` folds them in. A stored state that
  ends after the period (``--period`` of an earlier year) is not used: the period's scenes are
  folded from empty and nothing is stored.

So a night and ``--full`` over the same scenes give the same state, hence the same detections:
the pixels whose latest compared observation is mining, each polygon dated by the first and
the latest observation its pixels were mining in, ``confirmed`` once seen again in
``detect.change_confirm_after`` later observations.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from functools import partial
from pathlib import Path
from typing import Any

import dask
import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
import xarray as xr
from affine import Affine
from pyproj import CRS

from pipeline.core.config import Settings
from pipeline.core.errors import NoDataError
from pipeline.core.periods import Period
from pipeline.core.records import PROBABLE, WGS84, Aoi, empty_detections
from pipeline.detect.baseline_fold import empty_state, fold_step, state_rows_inputs, step_counts
from pipeline.detect.detections import mining_rows
from pipeline.detect.mining_change import MiningDetector
from pipeline.ingest.scene_places import Place
from pipeline.ingest.scene_spec import SceneSpec
from pipeline.ingest.training import sensor_bands
from pipeline.ops.imagery import clear_observations
from pipeline.state.baselines import (
    StoredBaseline,
    find_baselines,
    load_state,
    save_state,
    state_on_grid,
)

log = logging.getLogger(__name__)

#: Sentinel-2 bands the gold-mining detector reads (blue, green, red, NIR, SWIR1, SWIR2).
MINING_BANDS = ("B02", "B03", "B04", "B08", "B11", "B12")


@dataclass(kw_only=True)
class _Fold:
    """One place's fold, lazy until the AOI's single compute."""

    place: Place
    footprint: Any
    crs: CRS
    transform: Affine
    state: xr.Dataset
    stored: list[StoredBaseline]
    dates: list[dict[str, Any]] = field(default_factory=list)
    counts: list[dict[str, Any]] = field(default_factory=list)
    save: bool = False


@dataclass(kw_only=True)
class _Tally:
    single: int = 0
    skipped: list[str] = field(default_factory=list)
    late: list[str] = field(default_factory=list)
    built: int = 0
    continued: int = 0


def _views(cube: xr.Dataset) -> list[tuple[date, list[str], xr.Dataset]]:
    """The cube's dates in order: each date's scene ids and its view (the median of its
    scenes, one scene being its own view)."""
    days = [pd.Timestamp(t).date() for t in cube["time"].values]
    ids = [str(v) for v in cube["scene_id"].values]
    out = []
    for day in sorted(set(days)):
        idx = [i for i, d in enumerate(days) if d == day]
        view = cube.isel(time=idx[0]) if len(idx) == 1 else cube.isel(time=idx).median("time", skipna=True)
        view = view.drop_vars([c for c in ("time", "scene_id", "scale", "offset") if c in view.coords])
        out.append((day, [ids[i] for i in idx], view))
    return out


def _dated(place: Place, *, period: Period | None) -> list[SceneSpec]:
    return [
        s
        for s in place.scenes
        if s.datetime is not None and (period is None or s.datetime.date() <= period.end)
    ]


def _stored_for(
    aoi: Aoi, place: Place, *, state_dir: Path | None, period: Period | None
) -> tuple[list[StoredBaseline], bool]:
    """The stored baselines this place continues, and whether its state is stored after."""
    if state_dir is None:
        return [], False
    if period is None:  # every scene is here: fold from empty, replace what is stored
        return [], True
    stored = find_baselines(state_dir, aoi_id=aoi.aoi_id, footprint=place.footprint)
    if stored and max(date.fromisoformat(s.last_date) for s in stored) > period.end:
        log.info(
            "AOI %s: stored baseline ends after %s; folding the period from empty, not stored",
            aoi.aoi_id,
            period,
        )
        return [], False
    if not stored:
        log.warning(
            "AOI %s: no stored baseline for the place at %s; building it from the %d scenes this run "
            "reads. Run `asm-monitor run --full --aoi %s` to build it from every scene.",
            aoi.aoi_id,
            place.footprint.representative_point().wkt,
            len(place.scenes),
            aoi.aoi_id,
        )
    return stored, True


def _todo(
    stored: list[StoredBaseline], dated: list[SceneSpec], *, aoi: Aoi, tally: _Tally
) -> list[SceneSpec]:
    """The scenes to fold after the stored state: those dated after its last date."""
    if not stored:
        return dated
    # stored places joined tonight may end on different dates: each pixel skips the dates
    # it already folded (the fold's ``folded_to``), so start after the earliest
    last = min(date.fromisoformat(s.last_date) for s in stored)
    known = set().union(*(s.scene_ids for s in stored))
    late = [s.scene_id for s in dated if s.datetime and s.datetime.date() <= last and s.scene_id not in known]
    if late:
        log.warning(
            "AOI %s: scenes %s are dated on or before the baseline's last date %s and were never "
            "folded; they are left out. Run `asm-monitor run --full --aoi %s` to fold them in.",
            aoi.aoi_id,
            late,
            last,
            aoi.aoi_id,
        )
        tally.late += late
    return [s for s in dated if s.datetime and s.datetime.date() > last and s.scene_id not in known]


def _place_fold(
    aoi: Aoi,
    place: Place,
    *,
    settings: Settings,
    period: Period | None,
    detector: MiningDetector,
    state_dir: Path | None,
    tally: _Tally,
) -> list[_Fold]:
    """The lazy folds of one place (one, or one per stored state when nothing is new); none
    when it has nothing to fold or report."""
    stored, save = _stored_for(aoi, place, state_dir=state_dir, period=period)
    steps = settings.detect.change_baseline_steps
    todo = _todo(stored, _dated(place, period=period), aoi=aoi, tally=tally)
    parts = [(s, load_state(s, steps=steps)) for s in stored]
    footprint = shapely.union_all([place.footprint, *(s.footprint for s in stored)])
    try:
        cube = (
            clear_observations(
                replace(aoi, geometry=footprint),
                todo,
                settings=settings,
                period=None,
                bands=MINING_BANDS,
                check_every=True,
            )
            if todo
            else None
        )
    except NoDataError as exc:
        if not parts:
            raise
        log.info(
            "AOI %s: no usable new observation of a place (%s); its stored state stands", aoi.aoi_id, exc
        )
        cube = None
    if cube is None:
        # nothing new: the stored states are the answer
        return [
            _Fold(
                place=place,
                footprint=s.footprint,
                crs=state.rio.crs,
                transform=state.rio.transform(),
                state=state,
                stored=[s],
                dates=list(s.provenance.get("dates", [])),
            )
            for s, state in parts
        ]
    rename = {v: k for k, v in sensor_bands("sentinel2").items() if v in cube}
    cube = cube[list(MINING_BANDS)].rename(rename)
    views = _views(cube)
    state = empty_state(views[0][2], steps=steps)
    if parts:
        pasted = state_on_grid(parts, empty=state, transform=cube.rio.transform())
        state = pasted.chunk({"y": cube.chunksizes["y"], "x": cube.chunksizes["x"]})
        tally.continued += 1
    else:
        tally.built += 1
    fold = _Fold(
        place=place,
        footprint=footprint,
        crs=cube.rio.crs,
        transform=cube.rio.transform(),
        state=state,
        stored=stored,
        save=save,
    )
    seen: set[str] = set()
    for d in (d for s in stored for d in s.provenance.get("dates", [])):
        key = f"{d.get('date')}|{d.get('scenes')}"
        fold.dates += [] if key in seen else [d]
        seen.add(key)
    for day, ids, view in views:
        fold.counts.append(step_counts(fold.state, view, day=day))
        fold.dates.append({"date": day.isoformat(), "scenes": ids})
        fold.state = fold_step(fold.state, view, day=day, detector=detector)
    return [fold]


def mining_detections(
    aoi: Aoi,
    places: Sequence[Place],
    *,
    settings: Settings,
    period: Period | None,
    detector: MiningDetector,
    state_dir: Path | None = None,
    detector_sha256: str | None = None,
) -> tuple[gpd.GeoDataFrame, dict[str, Any]]:
    """Mining polygons of every place of the AOI (see the module docstring) and the evidence:
    places, places compared, baseline-only places, skipped places and why, baselines built,
    continued and stored, scenes left out. Baselines are read from and written to
    ``<state_dir>/asm-monitor.baselines/<aoi_id>/`` (``state_dir`` None: nothing is kept).

    Raises
    ------
    BaselineError
        A stored baseline is unreadable or does not fit tonight's grid or settings (names the
        file and the fix: ``asm-monitor run --full``).
    """
    tally = _Tally()
    pending: list[_Fold] = []
    fold_place = partial(
        _place_fold,
        aoi,
        settings=settings,
        period=period,
        detector=detector,
        state_dir=state_dir,
        tally=tally,
    )
    for place in places:
        try:
            folds = fold_place(place)
        except NoDataError as exc:
            tally.skipped.append(str(exc))
            continue
        tally.single += int(not folds)
        pending += folds
    computed = _compute(pending)
    frames, compared, pixels, saved = [empty_detections()], 0, 0, 0
    for fold, (state, counts) in zip(pending, computed, strict=True):
        state = {k: np.asarray(v) for k, v in state.items()}
        frames.append(_rows(aoi, fold, state, settings=settings, period=period))
        seen = int(np.isfinite(state["current"]).sum())
        compared, pixels = compared + seen, pixels + int(state["current"].size)
        tally.single += int(seen == 0)
        saved += _record(aoi, fold, state, counts, state_dir=state_dir, detector_sha256=detector_sha256)
    found = gpd.GeoDataFrame(
        pd.concat([f for f in frames if len(f)] or frames[:1], ignore_index=True),
        geometry="geometry",
        crs=WGS84,
    )
    evidence = {
        "places": len(places),
        "places_scored": len(pending),
        "single_date_places": tally.single,
        "skipped_places": tally.skipped,
        "scored_fraction": compared / pixels if pixels else None,
        "baselines": {"built": tally.built, "continued": tally.continued, "saved": saved},
        "late_scenes": tally.late,
    }
    log.info(
        "AOI %s: %d places with imagery, %d folded (%d baselines built, %d continued), %d mining polygons",
        aoi.aoi_id,
        len(places),
        len(pending),
        tally.built,
        tally.continued,
        len(found),
    )
    return found, evidence


def _compute(pending: list[_Fold]) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """One compute for every place of the AOI (small patches share the scheduler's overhead):
    each fold's final state and its dates' pixel counts."""
    with warnings.catch_warnings():
        # a pixel clouded in every scene of a date has no median: NaN, as masked pixels are
        warnings.filterwarnings("ignore", "All-NaN slice", RuntimeWarning)
        (computed,) = dask.compute([(dict(f.state.data_vars), f.counts) for f in pending])
    return list(computed)


def _record(
    aoi: Aoi,
    fold: _Fold,
    state: dict[str, np.ndarray],
    counts: list[dict[str, Any]],
    *,
    state_dir: Path | None,
    detector_sha256: str | None,
) -> int:
    """The pixel counts of the dates just folded into the provenance, and the state stored
    when this run may store it; 1 when stored."""
    new = fold.dates[len(fold.dates) - len(counts) :]
    for entry, c in zip(new, counts, strict=True):
        entry.update(valid_px=int(c["valid_px"]), baseline_px=int(c["baseline_px"]))
    if not (fold.save and state_dir is not None and counts):
        return 0
    _save(aoi, fold, state, state_dir=state_dir, detector_sha256=detector_sha256)
    return 1


def _rows(
    aoi: Aoi, fold: _Fold, state: dict[str, np.ndarray], *, settings: Settings, period: Period | None
) -> gpd.GeoDataFrame:
    got = state_rows_inputs(state, confirm_after=settings.detect.change_confirm_after)
    return mining_rows(
        {"mining": got["mining"], **got["stats"]},
        aoi_id=aoi.aoi_id,
        transform=fold.transform,
        crs=fold.crs,
        area_crs=aoi.equal_area_crs,
        min_area_ha=settings.detect.min_area_ha,
        first_seen=None,
        last_seen=None,
        period_label=str(period) if period else "",
        confidence=PROBABLE,
        dates=got["dates"],
    )


def _save(
    aoi: Aoi, fold: _Fold, state: dict[str, np.ndarray], *, state_dir: Path, detector_sha256: str | None
) -> None:
    save_state(
        state_dir,
        aoi_id=aoi.aoi_id,
        state=state,
        crs=fold.crs,
        transform=fold.transform,
        footprint=fold.footprint,
        dates=fold.dates,
        previous=fold.stored[0].provenance if fold.stored else None,
        detector_sha256=detector_sha256,
    )
