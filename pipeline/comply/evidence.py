"""The dates a period's evidence covers, which order the flag lifecycle (never its label).

A lifecycle step is "the flags as of the latest evidence seen": a run over everything
(``all``), a year, a quarter or an incremental date range are steps like any other, placed
by the ``first_seen`` / ``last_seen`` dates of the flags they saw. So the first nightly run
(``all``) comes before the next night's range, and a late Amazon Mining Watch quarter is the
step of its own dates, whatever the runs were called.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import pandas as pd


def as_date(value: Any) -> date | None:
    """``value`` (date, datetime, Timestamp, ISO text) as a date; None when it is none."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    stamp = pd.to_datetime(value, errors="coerce")
    return None if pd.isna(stamp) else stamp.date()


def evidence_span(flags: pd.DataFrame) -> tuple[date, date] | None:
    """(earliest ``first_seen``, latest ``last_seen``) of the flags' evidence, or None when no
    flag carries a date (compliant sites, flags without detections)."""
    dates = [
        d
        for col in ("first_seen", "last_seen")
        if col in flags
        for d in (as_date(v) for v in flags[col])
        if d is not None
    ]
    return (min(dates), max(dates)) if dates else None


def earliest(previous: Any, current: Any) -> Any:
    """The earlier of two ``first_seen`` values, in the type of ``current`` (the column's): a
    flag seen again keeps the date it was first seen, not the date of the latest scene."""
    a, b = as_date(previous), as_date(current)
    if a is None or b is None or b <= a:
        return current
    if isinstance(current, pd.Timestamp):
        return pd.Timestamp(a).tz_localize(current.tz)
    if isinstance(current, datetime):
        return datetime.combine(a, current.timetz())
    if isinstance(current, str):
        return a.isoformat()
    return a
