"""The gold-mining change detector as a fold over dates: one *before* view (the baseline)
per place, kept between nights, and every later date compared with it.

The state of a place is an ``xr.Dataset`` on the place's grid (dims ``("y", "x")``, plus
``("slot", "band", "y", "x")`` for the baseline), all float32 so it round-trips exactly
through a GeoTIFF:

- ``slots``: the first ``steps`` clear observations of each pixel (reflectance 0-1 in
  :data:`~pipeline.detect.window_features.BANDS` order, NaN = slot still empty); the
  baseline is their median once every slot is filled (:func:`baseline_view`);
- ``count``: how many slots are filled;
- ``first_seen`` / ``last_seen``: day number (days since 1970-01-01, NaN = never) of the first
  and the latest observation where the pixel was mining;
- ``later``: positive observations after the first one (``confirmed`` once it reaches
  ``detect.change_confirm_after``);
- ``current``: 1 where the pixel's latest compared observation was mining, 0 where it was
  not, NaN where it was never compared;
- ``score`` / ``ndvi_after``: the window score and NDVI of the latest positive observation;
- ``folded_to``: day number of the last date folded at the pixel: a date at or before it is
  skipped there, so states of places folded to different dates can be joined into one.

:func:`fold_step` is one date: pixels whose baseline is complete are compared with the
date's view by :func:`~pipeline.detect.mining_change.mining_change`; the others take the
view into their next empty slot. Folding dates in order from :func:`empty_state` over every
scene, or continuing a stored state with the dates after it, gives the same state: that is
what makes a nightly run and ``--full`` agree. Everything here is lazy on dask input.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from datetime import date
from typing import Any

import numpy as np
import xarray as xr

from pipeline.core.errors import RasterError
from pipeline.detect.indices import ndvi
from pipeline.detect.mining_change import MiningDetector, mining_change
from pipeline.detect.window_features import BANDS

#: Per-pixel layers of a fold state besides the baseline slots, in their stored order.
LAYERS = ("count", "first_seen", "last_seen", "later", "current", "score", "ndvi_after", "folded_to")
EPOCH = date(1970, 1, 1)


def day_number(day: date) -> int:
    """Days since 1970-01-01 (what the date layers hold)."""
    return (day - EPOCH).days


def day_of(number: float) -> date:
    """The date of a day number."""
    return date.fromordinal(EPOCH.toordinal() + int(number))


def empty_state(like: xr.Dataset, *, steps: int) -> xr.Dataset:
    """A state before any date, on the grid of ``like`` (a view: ``BANDS`` on ``("y", "x")``);
    dask-backed when ``like`` is, so a whole tile is never allocated here."""
    plane = xr.full_like(like[BANDS[0]], np.nan, dtype=np.float32).drop_attrs()
    slot = xr.concat([plane] * len(BANDS), dim="band").assign_coords(band=list(BANDS))
    slots = xr.concat([slot] * steps, dim="slot").transpose("slot", "band", "y", "x")
    zero = xr.zeros_like(plane)
    layers = {k: zero if k in ("count", "later") else plane for k in LAYERS}
    return xr.Dataset({"slots": slots, **layers})


def steps_of(state: xr.Dataset) -> int:
    """Observations per pixel that form its baseline."""
    return int(state.sizes["slot"])


def baseline_view(state: xr.Dataset) -> xr.Dataset:
    """The *before* view: per pixel the median of its baseline slots where all are filled,
    NaN elsewhere; variables :data:`BANDS` on ``("y", "x")``."""
    slots = state["slots"]
    steps = steps_of(state)
    composite = slots.isel(slot=0) if steps == 1 else slots.median("slot", skipna=True)
    composite = composite.where(state["count"] >= steps)
    return xr.Dataset({b: composite.sel(band=b, drop=True) for b in BANDS})


def _view_stack(view: xr.Dataset) -> xr.DataArray:
    missing = [b for b in BANDS if b not in view]
    if missing:
        raise RasterError(f"The view lacks bands {missing}; the baseline fold needs {list(BANDS)}.")
    return xr.concat([view[b].astype(np.float32) for b in BANDS], dim="band").assign_coords(band=list(BANDS))


def fold_step(state: xr.Dataset, view: xr.Dataset, *, day: date, detector: MiningDetector) -> xr.Dataset:
    """The state after one more date.

    Parameters
    ----------
    state
        The state before ``day`` (:func:`empty_state` or a stored one), on the view's grid.
    view
        The date's clear observation: :data:`BANDS` (reflectance 0-1, NaN = cloud or
        nodata) on ``("y", "x")``.
    day
        Acquisition date of the view; dates must be folded in increasing order.
    """
    steps = steps_of(state)
    stack = _view_stack(view).drop_vars([c for c in view.coords if c not in ("y", "x", "spatial_ref")])
    observed = stack.notnull().all("band")
    ready = state["count"] >= steps
    before = baseline_view(state)
    change = mining_change(before, view[list(BANDS)], detector=detector)
    d = np.float32(day_number(day))
    active = ~(state["folded_to"] >= d)
    seen = change["valid"] & ready & active
    positive = change["mining"] & seen
    fill = observed & ~ready & active
    slot_no = xr.DataArray(np.arange(steps), dims="slot")
    slots = xr.where(fill & (state["count"] == slot_no), stack, state["slots"]).astype(np.float32)
    had = state["first_seen"].notnull()
    out = {
        "slots": slots.transpose("slot", "band", "y", "x"),
        "count": (state["count"] + fill).astype(np.float32),
        "first_seen": xr.where(positive & ~had, d, state["first_seen"]).astype(np.float32),
        "last_seen": xr.where(positive, d, state["last_seen"]).astype(np.float32),
        "later": (state["later"] + (positive & had)).astype(np.float32),
        "current": xr.where(seen, positive.astype(np.float32), state["current"]).astype(np.float32),
        "score": xr.where(positive, change["score"], state["score"]).astype(np.float32),
        "ndvi_after": xr.where(positive, ndvi(view["nir"], view["red"]), state["ndvi_after"]).astype(
            np.float32
        ),
        "folded_to": xr.where(active, d, state["folded_to"]).astype(np.float32),
    }
    return xr.Dataset(out, coords={k: v for k, v in state.coords.items() if k != "band"})


def step_counts(state: xr.Dataset, view: xr.Dataset, *, day: date) -> dict[str, Any]:
    """Lazy pixel counts of one date for the provenance: clear observations of the view, and
    of those, how many went into the baseline (``state`` is the state *before* the date)."""
    observed = _view_stack(view).notnull().all("band")
    active = ~(state["folded_to"] >= np.float32(day_number(day)))
    fill = observed & (state["count"] < steps_of(state)) & active
    return {"valid_px": observed.sum(), "baseline_px": fill.sum()}


def state_rows_inputs(state: Mapping[str, np.ndarray], *, confirm_after: int) -> dict[str, Any]:
    """From a computed state: the mining mask (``current == 1``), per-pixel evidence and
    per-pixel dates for :func:`~pipeline.detect.detections.mining_rows`.

    Returns
    -------
    dict
        ``mining`` (bool), ``stats`` (``score``, ``ndvi_before``, ``ndvi_after``) and
        ``dates`` (``first_seen`` / ``last_seen`` day numbers, ``confirmed`` 0/1).
    """
    slots = np.asarray(state["slots"], dtype=np.float32)
    count = np.asarray(state["count"])
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.filterwarnings("ignore", "All-NaN slice", RuntimeWarning)
        base = slots[0] if slots.shape[0] == 1 else np.nanmedian(slots, axis=0)
        base = np.where(count >= slots.shape[0], base, np.nan)
        red, nir = base[BANDS.index("red")], base[BANDS.index("nir")]
        ndvi_before = ((nir - red) / (nir + red)).astype(np.float32)
    mining = np.asarray(state["current"]) == 1
    confirmed = (np.asarray(state["later"]) >= confirm_after).astype(np.float32)
    return {
        "mining": mining,
        "stats": {
            "score": np.asarray(state["score"]),
            "ndvi_before": ndvi_before,
            "ndvi_after": np.asarray(state["ndvi_after"]),
        },
        "dates": {
            "first_seen": np.asarray(state["first_seen"]),
            "last_seen": np.asarray(state["last_seen"]),
            "confirmed": confirmed,
        },
    }
