"""Which mining titles allow extraction, and on which day that is checked.

Shared by the rules and the impact tables, so that a title counts as an extraction title in
the flags exactly when it does in the hectare statistics.
"""

from __future__ import annotations

from datetime import date

import geopandas as gpd
import pandas as pd


def extraction_allowed(sites: gpd.GeoDataFrame, *, on: date | None) -> pd.Series:
    """Boolean per site: the title allows extraction on ``on`` (validity window checked when
    the registry gives one; SIGMINE gives none)."""
    ok = sites["allows_extraction"].astype(bool)
    if on is None:
        return ok
    day = pd.Timestamp(on)
    for col, bad in (("licence_valid_to", lambda d: d < day), ("licence_valid_from", lambda d: d > day)):
        if col in sites:
            dates = pd.to_datetime(sites[col], errors="coerce")
            ok &= ~(dates.notna() & bad(dates))
    return ok


def as_of(detections: gpd.GeoDataFrame) -> date | None:
    """The latest ``last_seen`` date of the detections: the day titles are checked on."""
    seen = [d for d in detections["last_seen"] if d is not None and not pd.isna(d)] if len(detections) else []
    return pd.Timestamp(max(seen)).date() if seen else None
