"""Per-site scorecard data for buyers: licence, flags by status, hectares over time, evidence.

The report renders these tables; nothing here draws or writes. Hectares are detection
footprints measured in the AOI's equal-area CRS; per period only footprint not counted in an
earlier period, so the periods add up to the total.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import pandas as pd
from pyproj import CRS
from shapely.geometry.base import BaseGeometry

from pipeline.comply.flag_state import STATUSES, FlagState
from pipeline.core.records import KIND_MINING
from pipeline.core.text import json_scalar

DISTURBANCE_COLUMNS = [
    "site_id",
    "period",
    "inside_title_ha",
    "outside_title_ha",
    "cumulative_inside_ha",
    "cumulative_outside_ha",
    "first_seen",
    "last_seen",
    "detections",
]


@dataclass
class Scorecard:
    """Scorecard tables of one AOI's sites."""

    sites: pd.DataFrame
    """One row per site: identity, licence, licence history, flags by status, totals,
    evidence dates."""
    disturbance: pd.DataFrame
    """One row per site and period with mining near it (``DISTURBANCE_COLUMNS``)."""


def site_scorecards(
    sites: gpd.GeoDataFrame,
    detections: gpd.GeoDataFrame,
    *,
    crs: CRS,
    near_m: float,
    flags: pd.DataFrame | None = None,
    states: Mapping[str, FlagState] | None = None,
    licence_history: pd.DataFrame | None = None,
) -> Scorecard:
    """Scorecard data per site.

    Parameters
    ----------
    sites
        MineSite table (any CRS).
    detections
        Detections with ``kind``, ``period``, ``first_seen``, ``last_seen``; only mining counts.
    crs
        Equal-area / metric CRS for hectares and the ``near_m`` buffer (the AOI's).
    near_m
        Mining outside the title but within this distance of it (m) counts as outside-title
        disturbance of the site (``ComplyParams.near_site_m``).
    flags
        This period's flags with ``site_id``, ``status``, ``flag_id``, ``rule_id``.
    states
        Flag states from the state store: their history (period, status) is attached.
    licence_history
        The licence states recorded run after run
        (:func:`pipeline.state.licence_history.record_licences`, or a run's
        ``scorecards/licence_history.csv``). Without it the history is the registry's
        current state and last event.
    """
    site_m = sites.to_crs(crs).reset_index(drop=True)
    mining = detections[detections["kind"] == KIND_MINING].to_crs(crs)
    dist = _disturbance(site_m, mining, near_m=near_m)
    rows = []
    for site in site_m.itertuples():
        sid = str(site.site_id)
        mine = dist[dist["site_id"] == sid]
        row: dict[str, object] = {
            "site_id": sid,
            "name": site.name,
            "operator": site.operator,
            "registry": site.registry,
            "licence_status": site.licence_status,
            "licence_kind": site.licence_kind,
            "phase": site.phase,
            "allows_extraction": bool(site.allows_extraction),
            "licence_valid_from": site.licence_valid_from,
            "licence_valid_to": site.licence_valid_to,
            "last_event_date": site.last_event_date,
            "title_ha": float(site.geometry.area / 1e4),
            "licence_history": json.dumps(_licence_history(sid, site, licence_history), default=str),
            "inside_title_ha": float(mine["inside_title_ha"].sum()),
            "outside_title_ha": float(mine["outside_title_ha"].sum()),
            "first_evidence": mine["first_seen"].min() if len(mine) else None,
            "last_evidence": mine["last_seen"].max() if len(mine) else None,
        }
        site_flags = flags[flags["site_id"] == sid] if flags is not None and len(flags) else None
        for status in STATUSES:
            row[f"flags_{status}"] = (
                int((site_flags["status"] == status).sum()) if site_flags is not None else 0
            )
        row["flag_ids"] = ",".join(sorted(site_flags["flag_id"])) if site_flags is not None else ""
        row["rules"] = ",".join(sorted(set(site_flags["rule_id"]))) if site_flags is not None else ""
        hist = [s for s in (states or {}).values() if s.site_id == sid]
        row["flag_history"] = json.dumps(
            {s.flag_id: [[p, st] for p, st, _ in s.history] for s in sorted(hist, key=lambda s: s.flag_id)}
        )
        rows.append(row)
    return Scorecard(sites=pd.DataFrame(rows), disturbance=dist)


HISTORY_FIELDS = ("event_date", "event", "phase", "licence_status", "licence_kind", "first_recorded")


def licence_history_rows(
    site: Mapping[str, Any], *, recorded: Sequence[Mapping[str, Any]] | None
) -> list[dict[str, Any]]:
    """A site's licence history, oldest first: the ``recorded`` rows of the state file
    (:func:`pipeline.state.licence_history.record_licences`), or, when none were recorded, the
    registry's current state and last event as the one row."""
    if recorded:
        return [{k: rec.get(k) for k in HISTORY_FIELDS} for rec in recorded]
    current = {k: site.get(k) for k in ("last_event", "phase", "licence_status", "licence_kind")}
    return [{"event_date": json_scalar(site.get("last_event_date")), "first_recorded": None, **current}]


def _licence_history(sid: str, site: Any, history: pd.DataFrame | None) -> list[dict[str, Any]]:
    mine = history[history["site_id"].astype(str) == sid] if history is not None and len(history) else None
    recorded = None if mine is None else mine.to_dict("records")
    return licence_history_rows(site._asdict(), recorded=recorded)  # type: ignore[arg-type]


def _disturbance(sites: gpd.GeoDataFrame, mining: gpd.GeoDataFrame, *, near_m: float) -> pd.DataFrame:
    """Hectares of new mining per site and period, inside its title and in a ``near_m`` ring."""
    if mining.empty or sites.empty:
        return pd.DataFrame(columns=DISTURBANCE_COLUMNS)
    ends = mining.groupby("period")["last_seen"].max().sort_values()
    ring = sites[["site_id", "geometry"]].copy()
    ring["geometry"] = sites.buffer(near_m).difference(sites.geometry)
    rows = []
    counted: BaseGeometry | None = None
    for period in ends.index:
        part = mining[mining["period"] == period]
        new = part.geometry.union_all()
        if counted is not None:
            new = new.difference(counted)
        counted = new if counted is None else counted.union(new)
        if new.is_empty:
            continue
        near_idx = sites.sindex.query(new.buffer(near_m), predicate="intersects")
        for i in sorted(set(int(j) for j in near_idx)):
            inside = new.intersection(sites.geometry.iloc[i]).area / 1e4
            outside = new.intersection(ring.geometry.iloc[i]).area / 1e4
            if inside <= 0 and outside <= 0:
                continue
            touch = part[part.intersects(sites.geometry.iloc[i].buffer(near_m))]
            rows.append(
                {
                    "site_id": str(sites["site_id"].iloc[i]),
                    "period": str(period),
                    "inside_title_ha": float(inside),
                    "outside_title_ha": float(outside),
                    "first_seen": touch["first_seen"].min(),
                    "last_seen": touch["last_seen"].max(),
                    "detections": len(touch),
                }
            )
    out = pd.DataFrame(rows, columns=[c for c in DISTURBANCE_COLUMNS if not c.startswith("cumulative")])
    out = out.sort_values(
        ["site_id", "period"], key=lambda c: c.map(ends.rank()) if c.name == "period" else c
    )
    out["cumulative_inside_ha"] = out.groupby("site_id")["inside_title_ha"].cumsum()
    out["cumulative_outside_ha"] = out.groupby("site_id")["outside_title_ha"].cumsum()
    return out[DISTURBANCE_COLUMNS].reset_index(drop=True)
