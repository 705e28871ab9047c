"""The rows the flag lifecycle reports: a flag's state and evidence as one output row.

Split from :mod:`pipeline.comply.lifecycle` (which steps the states) so that the stepping
logic and the shape of its output can change apart.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import geopandas as gpd
import pandas as pd
from pyproj import CRS
from shapely.geometry.base import BaseGeometry

from pipeline.comply.flag_state import FlagState, Suppression
from pipeline.core.records import WGS84

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


def jsonable(value: Any) -> Any:
    """A scalar as JSON can hold it: NaN and NA as None, dates and the rest as text."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return None if pd.isna(value) else value
    if pd.isna(value) if not isinstance(value, (list, tuple, dict)) else False:
        return None
    return str(value)


def area_ha(geom: BaseGeometry | None, crs: CRS) -> float:
    """Area (ha) of an EPSG:4326 geometry measured in the equal-area ``crs``; 0 when empty."""
    if geom is None or geom.is_empty:
        return 0.0
    return float(gpd.GeoSeries([geom], crs=WGS84).to_crs(crs).area.iloc[0] / 1e4)


def history_text(history: tuple[tuple[str, str, float], ...]) -> str:
    """``period:status;...``, the history column of the flag tables."""
    return ";".join(f"{p}:{s}" for p, s, _ in history)


def lifecycle_row(
    state: FlagState,
    rec: Mapping[str, Any],
    *,
    seen: bool,
    growth: float,
    sup: Suppression | None,
    lifted: bool,
    note: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The flag's output row: its own columns (``rec``) and the ``LIFECYCLE_COLUMNS``."""
    return dict(rec) | {
        "status": state.status,
        "seen": seen,
        "periods_missed": state.missed,
        "cumulative_area_ha": round(state.area_ha, 4),
        "growth_pct": round(growth, 2),
        "opened_period": state.opened_period,
        "status_since": state.status_since,
        "suppression_reason": sup.reason if sup is not None and not lifted else None,
        "history": history_text(state.history),
        # what the English note in ``reason`` says, for the report to say it in other languages
        "reason_note": json.dumps(note, sort_keys=True) if note else None,
    }


def lifecycle_frame(rows: list[dict[str, Any]], *, like: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """The rows as a flag table (EPSG:4326) with the columns of ``like`` first."""
    columns = [c for c in like.columns if c != "geometry"]
    columns += [c for c in ["status", *LIFECYCLE_COLUMNS] if c not in columns]
    if not rows:
        return gpd.GeoDataFrame(columns=[*columns, "geometry"], geometry="geometry", crs=WGS84)
    frame = pd.DataFrame(rows)
    for c in columns:
        if c not in frame:
            frame[c] = None
    return gpd.GeoDataFrame(frame[[*columns, "geometry"]], geometry="geometry", crs=WGS84)
