"""The flag lifecycle, period by period: new -> ongoing -> worsening -> resolved, and suppression.

Pure: the previous period's states and this period's flags in, the new states, the flags with
their status, and the list of status changes out. The state store (``pipeline.state.audit``) keeps
the states between runs; because the input is always the state *before* the period being
run, running the same period again gives the same result (idempotent).

Rules of the lifecycle (thresholds in :class:`~pipeline.core.config.ComplyParams`):

* a flag id never seen before (or seen again after it was resolved) is ``new``;
* a flag seen again is ``ongoing``, or ``worsening`` when its cumulative footprint (the union
  of every footprint seen since it was opened, measured in the AOI's equal-area CRS) grew by
  more than ``worsening_growth_pct`` % over the previous period. Union, not sum: sources that
  report only new mining each period (Amazon Mining Watch) and sources that report the whole
  scar each night (our detector) give the same answer;
* a flag not seen is ``ongoing`` (or stays ``suppressed``) and counts missed periods; after
  ``resolve_after_periods`` missed periods it is ``resolved`` (reported once, then kept only
  in the state for its history);
* an analyst suppression (false positive) holds the flag at ``suppressed`` until its
  cumulative footprint grows by more than ``worsening_growth_pct`` % over the footprint at
  suppression time, which lifts the suppression and reports the flag as ``worsening``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import geopandas as gpd
import pandas as pd
import shapely
from pyproj import CRS
from shapely.geometry.base import BaseGeometry

from pipeline.comply.evidence import earliest
from pipeline.comply.flag_state import (
    NEW,
    ONGOING,
    RESOLVED,
    STATUSES,
    SUPPRESSED,
    WORSENING,
    Change,
    FlagState,
    Suppression,
)
from pipeline.comply.lifecycle_rows import (
    LIFECYCLE_COLUMNS,
    area_ha,
    jsonable,
    lifecycle_frame,
    lifecycle_row,
)
from pipeline.core.config import ComplyParams
from pipeline.core.records import WGS84

# the records live in flag_state; this module stays their public address
__all__ = [
    "AREA_RULES",
    "LIFECYCLE_COLUMNS",
    "NEW",
    "ONGOING",
    "RESOLVED",
    "STATUSES",
    "SUPPRESSED",
    "WORSENING",
    "Change",
    "FlagState",
    "LifecycleResult",
    "Suppression",
    "advance",
    "reportable_flags",
    "status_counts",
]

#: Rules whose flags have a mining footprint; the others (points, title outlines) have no area.
AREA_RULES = frozenset(
    {
        "mining_in_protected_area",
        "clearing_outside_licence",
        "unregistered_mining",
        "activity_without_valid_licence",
    }
)


@dataclass
class LifecycleResult:
    """What :func:`advance` returns."""

    flags: gpd.GeoDataFrame
    """This period's flags (EPSG:4326) with status and ``LIFECYCLE_COLUMNS``: seen flags, open
    flags not seen this period, and flags resolved in this period."""
    states: dict[str, FlagState]
    """State of every flag the AOI ever had, after this period."""
    changes: list[Change]
    lifted: list[str]
    """Flag ids whose suppression was lifted by a material change of evidence."""


def advance(
    flags: gpd.GeoDataFrame,
    previous: Mapping[str, FlagState],
    *,
    aoi_id: str,
    period: str,
    crs: CRS,
    params: ComplyParams,
    suppressions: Mapping[str, Suppression] | None = None,
) -> LifecycleResult:
    """Move every flag of one AOI through one period.

    Parameters
    ----------
    flags
        This period's flags from :func:`pipeline.comply.flags.build_flags` (EPSG:4326).
    previous
        States after the previous period, by flag id (empty on a fresh state file).
    period
        Label of this period (``2024``, ``2025Q2``; ``all`` for a run over everything).
    crs
        Equal-area CRS in which footprints are measured (the AOI's).
    suppressions
        Active analyst suppressions by flag id.
    """
    suppressions = suppressions or {}
    states: dict[str, FlagState] = dict(previous)
    changes: list[Change] = []
    lifted: list[str] = []
    rows: list[dict[str, Any]] = []
    flags = flags.to_crs(WGS84) if len(flags) else flags
    seen_ids: set[str] = set()
    for rec in flags.to_dict("records"):
        fid = str(rec["flag_id"])
        seen_ids.add(fid)
        step = _seen_step(
            rec,
            prev=previous.get(fid),
            sup=suppressions.get(fid),
            lifted_before=fid in lifted,
            aoi_id=aoi_id,
            period=period,
            crs=crs,
            params=params,
        )
        if step.lifted:
            lifted.append(fid)
        states[fid] = step.state
        rows.append(step.row)
        changes += step.changes
    for fid, prev in sorted(previous.items()):
        if fid in seen_ids or prev.status == RESOLVED:
            continue
        step = _unseen_step(
            prev, period=period, params=params, suppressed=fid in suppressions, sup=suppressions.get(fid)
        )
        states[fid] = step.state
        rows.append(step.row)
        changes += step.changes
    out = lifecycle_frame(rows, like=flags)
    return LifecycleResult(flags=out, states=states, changes=changes, lifted=lifted)


@dataclass(frozen=True)
class _Step:
    """One flag moved through one period: what :func:`advance` collects from it."""

    state: FlagState
    row: dict[str, Any]
    """The flag's output row (``LIFECYCLE_COLUMNS`` and the flag's own)."""
    changes: list[Change]
    """The status change, if the status changed (empty otherwise)."""
    lifted: bool = False
    """This period's evidence lifted the flag's suppression."""


def _footprint_growth(
    rec: Mapping[str, Any], *, prev: FlagState | None, reopened: bool, crs: CRS
) -> tuple[BaseGeometry | None, float, float]:
    """(cumulative footprint, its ha, growth % over the previous period) of a seen flag.

    The union with the earlier footprint, not a sum of areas, so that sources reporting only
    new mining and sources reporting the whole scar each night give the same growth.
    """
    geom = rec["geometry"]
    has_area = rec["rule_id"] in AREA_RULES
    footprint = geom
    if has_area and not reopened and prev is not None and prev.footprint is not None and geom is not None:
        footprint = shapely.union(prev.footprint, geom)
    # points and title outlines (turbidity, compliant) keep a geometry but have no footprint
    cum = area_ha(footprint, crs) if has_area else 0.0
    base = 0.0 if reopened or prev is None else prev.area_ha
    growth = (cum - base) / base * 100.0 if base > 0 else 0.0
    return footprint, cum, growth


def _suppression_outcome(
    status: str, *, sup: Suppression | None, cum: float, pct: float
) -> tuple[str, bool, str, dict[str, Any] | None]:
    """(status, lifted, reason note, note) once an analyst suppression is applied: it holds
    until the footprint grows materially past its size when suppressed, because a false
    positive that keeps growing is probably not one."""
    if sup is None:
        return status, False, "", None
    if sup.area_ha > 0 and cum > sup.area_ha * (1 + pct / 100.0):
        reason_note = f" Suppression lifted: footprint grew from {sup.area_ha:,.1f} ha to {cum:,.1f} ha."
        note = {"kind": "suppression_lifted", "from_ha": sup.area_ha, "to_ha": cum}
        return WORSENING, True, reason_note, note
    return SUPPRESSED, False, "", None


def _seen_step(
    rec: Mapping[str, Any],
    *,
    prev: FlagState | None,
    sup: Suppression | None,
    lifted_before: bool,
    aoi_id: str,
    period: str,
    crs: CRS,
    params: ComplyParams,
) -> _Step:
    """A flag seen this period (``rec``, EPSG:4326), from its previous state.

    ``lifted_before``: a row of the same flag id earlier in this period lifted its
    suppression, so this row does not show the suppression either.
    """
    reopened = prev is None or prev.status == RESOLVED
    if prev is not None and not reopened and "first_seen" in rec:
        # seen again: it dates from when it was first seen, not from the latest scene
        rec = {**rec, "first_seen": earliest(prev.attrs.get("first_seen"), rec["first_seen"])}
    footprint, cum, growth = _footprint_growth(rec, prev=prev, reopened=reopened, crs=crs)
    status = NEW if reopened else WORSENING if growth > params.worsening_growth_pct else ONGOING
    status, lifted, reason_note, note = _suppression_outcome(
        status, sup=sup, cum=cum, pct=params.worsening_growth_pct
    )
    attrs = {k: jsonable(v) for k, v in rec.items() if k != "geometry"}
    # the note belongs to this period only: a later "not seen" note must not repeat it
    attrs["reason"] = str(rec.get("reason", ""))
    state = FlagState(
        flag_id=str(rec["flag_id"]),
        aoi_id=aoi_id,
        rule_id=str(rec["rule_id"]),
        site_id=rec.get("site_id") if isinstance(rec.get("site_id"), str) else None,
        status=status,
        period=period,
        opened_period=period if reopened or prev is None else prev.opened_period,
        status_since=period if prev is None or prev.status != status else prev.status_since,
        last_seen_period=period,
        missed=0,
        area_ha=round(cum, 4),
        footprint=footprint,
        history=(() if prev is None else prev.history) + ((period, status, round(cum, 4)),),
        attrs=attrs,
    )
    changed = prev is None or prev.status != status
    detail = f"seen in {period}; cumulative {cum:.2f} ha"
    row = lifecycle_row(
        state,
        dict(rec) | {"reason": attrs["reason"] + reason_note},
        seen=True,
        growth=growth,
        sup=sup,
        lifted=lifted or lifted_before,
        note=note,
    )
    return _Step(state, row, [_change(state, prev, detail=detail)] if changed else [], lifted)


def _unseen_step(
    prev: FlagState, *, period: str, params: ComplyParams, suppressed: bool, sup: Suppression | None
) -> _Step:
    """An open flag not seen this period.

    Still reported (with its last footprint and no new hectares) until it has been missed
    ``resolve_after_periods`` times, so a cloudy period does not close a real problem.
    ``suppressed``: its id is among the active suppressions.
    """
    missed = prev.missed + 1
    # not seen: still open, but not growing; a suppression holds
    # the analyst may have suppressed it after the last run, before any status said so
    held = SUPPRESSED if prev.status == SUPPRESSED or suppressed else ONGOING
    status = RESOLVED if missed >= params.resolve_after_periods else held
    state = replace(
        prev,
        status=status,
        period=period,
        missed=missed,
        status_since=period if status != prev.status else prev.status_since,
        history=(*prev.history, (period, status, prev.area_ha)),
    )
    unseen = (
        f"Resolved: not seen for {missed} period(s) up to {period}. "
        if status == RESOLVED
        else f"Not seen in {period} ({missed} period(s) without detection). "
    )
    rec = dict(prev.attrs) | {
        "reason": unseen + str(prev.attrs.get("reason", "")),
        "area_ha": 0.0,
        "detection_ids": "",
        "geometry": prev.footprint,
    }
    note = {"kind": "resolved" if status == RESOLVED else "not_seen", "missed": missed, "period": period}
    row = lifecycle_row(state, rec, seen=False, growth=0.0, sup=sup, lifted=False, note=note)
    changes = [_change(state, prev, detail=unseen.strip())] if status != prev.status else []
    return _Step(state, row, changes)


def _change(state: FlagState, prev: FlagState | None, *, detail: str) -> Change:
    return Change(
        flag_id=state.flag_id,
        rule_id=state.rule_id,
        site_id=state.site_id,
        old_status=None if prev is None else prev.status,
        new_status=state.status,
        area_ha=state.area_ha,
        detail=detail,
    )


def reportable_flags(flags: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """The flags that are problems seen in this period: not ``compliant``, and not carried
    over from an earlier period without being seen (those add no hectares or imagery)."""
    seen = flags["seen"].astype(bool) if "seen" in flags else pd.Series(True, index=flags.index)
    return flags[(flags["rule_id"] != "compliant") & seen]


def status_counts(flags: pd.DataFrame) -> dict[str, int]:
    """Flags by status, every status present (0 when none)."""
    counts = flags["status"].value_counts() if len(flags) else pd.Series(dtype=int)
    return {s: int(counts.get(s, 0)) for s in STATUSES}
