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

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import geopandas as gpd
import pandas as pd
import shapely
from pyproj import CRS
from shapely.geometry.base import BaseGeometry

from pipeline.core.config import ComplyParams
from pipeline.core.records import WGS84

NEW, ONGOING, WORSENING, RESOLVED, SUPPRESSED = "new", "ongoing", "worsening", "resolved", "suppressed"
STATUSES = (NEW, ONGOING, WORSENING, RESOLVED, SUPPRESSED)
#: Rules whose flags have a mining footprint; the others (points, title outlines) have no area.
AREA_RULES = frozenset(
    {
        "mining_in_protected_area",
        "clearing_outside_licence",
        "unregistered_mining",
        "activity_without_valid_licence",
    }
)
LIFECYCLE_COLUMNS = [
    "seen",
    "periods_missed",
    "cumulative_area_ha",
    "growth_pct",
    "opened_period",
    "status_since",
    "suppression_reason",
    "history",
    "reason_note",
]


@dataclass(frozen=True)
class Suppression:
    """An analyst's decision that a flag is a false positive."""

    flag_id: str
    reason: str
    analyst: str
    area_ha: float
    """Cumulative footprint (ha) when suppressed: the baseline for a material change."""
    created_at: str


@dataclass(frozen=True)
class FlagState:
    """A flag's state after one period."""

    flag_id: str
    aoi_id: str
    rule_id: str
    site_id: str | None
    status: str
    period: str
    """Label of the period this state is the result of."""
    opened_period: str
    """Period in which the flag was last opened (``new``)."""
    status_since: str
    last_seen_period: str
    missed: int
    """Periods in a row without the flag being seen."""
    area_ha: float
    """Cumulative footprint since opening, ha (equal-area CRS)."""
    footprint: BaseGeometry | None
    """Cumulative footprint (EPSG:4326) for mining rules; the latest geometry for the others."""
    history: tuple[tuple[str, str, float], ...] = ()
    """(period, status, cumulative ha) for every period the flag existed in."""
    attrs: dict[str, Any] = field(default_factory=dict)
    """The flag's last row (JSON-safe scalars), to report it in periods it is not seen."""

    def to_json(self) -> str:
        """Everything but the footprint, as canonical JSON."""
        doc = {k: v for k, v in self.__dict__.items() if k != "footprint"}
        doc["history"] = [list(h) for h in self.history]
        return json.dumps(doc, sort_keys=True, default=str)

    @classmethod
    def from_json(cls, text: str, *, footprint: BaseGeometry | None) -> FlagState:
        """Inverse of :meth:`to_json`."""
        doc = json.loads(text)
        doc["history"] = tuple(tuple(h) for h in doc["history"])
        return cls(**doc, footprint=footprint)


@dataclass(frozen=True)
class Change:
    """One status change, as written to the audit ledger."""

    flag_id: str
    rule_id: str
    site_id: str | None
    old_status: str | None
    new_status: str
    area_ha: float
    detail: str


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


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return None if pd.isna(value) else value
    if pd.isna(value) if not isinstance(value, (list, tuple, dict)) else False:
        return None
    return str(value)


def _area_ha(geom: BaseGeometry | None, crs: CRS) -> float:
    if geom is None or geom.is_empty:
        return 0.0
    return float(gpd.GeoSeries([geom], crs=WGS84).to_crs(crs).area.iloc[0] / 1e4)


def _history_text(history: tuple[tuple[str, str, float], ...]) -> str:
    return ";".join(f"{p}:{s}" for p, s, _ in history)


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
    pct = params.worsening_growth_pct
    states: dict[str, FlagState] = dict(previous)
    changes: list[Change] = []
    lifted: list[str] = []
    rows: list[dict[str, Any]] = []
    flags = flags.to_crs(WGS84) if len(flags) else flags
    seen_ids: set[str] = set()
    for rec in flags.to_dict("records"):
        fid = str(rec["flag_id"])
        seen_ids.add(fid)
        prev = previous.get(fid)
        reopened = prev is None or prev.status == RESOLVED
        geom = rec["geometry"]
        has_area = rec["rule_id"] in AREA_RULES
        footprint = geom
        if has_area and not reopened and prev is not None and prev.footprint is not None and geom is not None:
            footprint = shapely.union(prev.footprint, geom)
        # points and title outlines (turbidity, compliant) keep a geometry but have no footprint
        cum = _area_ha(footprint, crs) if has_area else 0.0
        base = 0.0 if reopened or prev is None else prev.area_ha
        growth = (cum - base) / base * 100.0 if base > 0 else 0.0
        status = NEW if reopened else WORSENING if growth > pct else ONGOING
        reason_note = ""
        note: dict[str, Any] | None = None
        sup = suppressions.get(fid)
        if sup is not None:
            if sup.area_ha > 0 and cum > sup.area_ha * (1 + pct / 100.0):
                lifted.append(fid)
                status = WORSENING
                reason_note = (
                    f" Suppression lifted: footprint grew from {sup.area_ha:,.1f} ha to {cum:,.1f} ha."
                )
                note = {"kind": "suppression_lifted", "from_ha": sup.area_ha, "to_ha": cum}
            else:
                status = SUPPRESSED
        since = period if prev is None or prev.status != status else prev.status_since
        history = (() if prev is None else prev.history) + ((period, status, round(cum, 4)),)
        attrs = {k: _jsonable(v) for k, v in rec.items() if k != "geometry"}
        # the note belongs to this period only: a later "not seen" note must not repeat it
        attrs["reason"] = str(rec.get("reason", ""))
        state = FlagState(
            flag_id=fid,
            aoi_id=aoi_id,
            rule_id=str(rec["rule_id"]),
            site_id=rec.get("site_id") if isinstance(rec.get("site_id"), str) else None,
            status=status,
            period=period,
            opened_period=period if reopened or prev is None else prev.opened_period,
            status_since=since,
            last_seen_period=period,
            missed=0,
            area_ha=round(cum, 4),
            footprint=footprint,
            history=history,
            attrs=attrs,
        )
        states[fid] = state
        if prev is None or prev.status != status:
            changes.append(_change(state, prev, detail=f"seen in {period}; cumulative {cum:.2f} ha"))
        rows.append(
            _row(
                state,
                rec | {"reason": attrs["reason"] + reason_note},
                seen=True,
                growth=growth,
                sup=sup,
                lifted=fid in lifted,
                note=note,
            )
        )
    for fid, prev in sorted(previous.items()):
        if fid in seen_ids or prev.status == RESOLVED:
            continue
        missed = prev.missed + 1
        # not seen: still open, but not growing; a suppression holds
        # the analyst may have suppressed it after the last run, before any status said so
        held = SUPPRESSED if prev.status == SUPPRESSED or fid in suppressions else ONGOING
        status = RESOLVED if missed >= params.resolve_after_periods else held
        since = period if status != prev.status else prev.status_since
        state = replace(
            prev,
            status=status,
            period=period,
            missed=missed,
            status_since=since,
            history=(*prev.history, (period, status, prev.area_ha)),
        )
        states[fid] = state
        unseen = (
            f"Resolved: not seen for {missed} period(s) up to {period}. "
            if status == RESOLVED
            else f"Not seen in {period} ({missed} period(s) without detection). "
        )
        if status != prev.status:
            changes.append(_change(state, prev, detail=unseen.strip()))
        rec = dict(prev.attrs) | {
            "reason": unseen + str(prev.attrs.get("reason", "")),
            "area_ha": 0.0,
            "detection_ids": "",
            "geometry": prev.footprint,
        }
        note = {"kind": "resolved" if status == RESOLVED else "not_seen", "missed": missed, "period": period}
        rows.append(
            _row(state, rec, seen=False, growth=0.0, sup=suppressions.get(fid), lifted=False, note=note)
        )
    out = _frame(rows, like=flags)
    return LifecycleResult(flags=out, states=states, changes=changes, lifted=lifted)


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


def _row(
    state: FlagState,
    rec: Mapping[str, Any],
    *,
    seen: bool,
    growth: float,
    sup: Suppression | None,
    lifted: bool,
    note: Mapping[str, Any] | None,
) -> dict[str, Any]:
    return dict(rec) | {
        "status": state.status,
        "seen": seen,
        "periods_missed": state.missed,
        "cumulative_area_ha": round(state.area_ha, 4),
        "growth_pct": round(growth, 2),
        "opened_period": state.opened_period,
        "status_since": state.status_since,
        "suppression_reason": sup.reason if sup is not None and not lifted else None,
        "history": _history_text(state.history),
        # what the English note in ``reason`` says, for the report to say it in other languages
        "reason_note": json.dumps(note, sort_keys=True) if note else None,
    }


def _frame(rows: list[dict[str, Any]], *, like: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    columns = [c for c in like.columns if c != "geometry"]
    columns += [c for c in ["status", *LIFECYCLE_COLUMNS] if c not in columns]
    if not rows:
        return gpd.GeoDataFrame(columns=[*columns, "geometry"], geometry="geometry", crs=WGS84)
    frame = pd.DataFrame(rows)
    for c in columns:
        if c not in frame:
            frame[c] = None
    return gpd.GeoDataFrame(frame[[*columns, "geometry"]], geometry="geometry", crs=WGS84)


def reportable_flags(flags: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """The flags that are problems seen in this period: not ``compliant``, and not carried
    over from an earlier period without being seen (those add no hectares or imagery)."""
    seen = flags["seen"].astype(bool) if "seen" in flags else pd.Series(True, index=flags.index)
    return flags[(flags["rule_id"] != "compliant") & seen]


def status_counts(flags: pd.DataFrame) -> dict[str, int]:
    """Flags by status, every status present (0 when none)."""
    counts = flags["status"].value_counts() if len(flags) else pd.Series(dtype=int)
    return {s: int(counts.get(s, 0)) for s in STATUSES}
