"""Where a run's flag states sit in an AOI's lifecycle: placed by evidence dates, never by name.

A lifecycle step is identified by the latest evidence date it saw (``period_end``): the flags
as of that date. The first nightly run over everything (``all``), a year, a quarter and an
incremental date range are all placed by their evidence, so the state "before" a run is the
step with the latest evidence date before the run's, whatever either was called. Running
the same evidence again (``--full`` after a nightly run of the same inputs, or a rerun) is
the same step: it is replaced with the same result.

Versions before this one stored a run over everything as ``0001-01-01 .. 9999-12-31``, after
every other step; :func:`place_open_ended_steps` moves those to their evidence dates.
"""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from dataclasses import dataclass
from datetime import date

import pandas as pd

from pipeline.comply.evidence import as_date, evidence_span
from pipeline.core.periods import Period

#: the step of a run over everything that saw no dated evidence: before every other step
NO_EVIDENCE = date.min
#: the end under which versions before this one stored a run over everything
_OPEN_END = "9999-12-31"


@dataclass(frozen=True)
class StepKey:
    """One step of an AOI's flag lifecycle."""

    label: str
    """What the step is called in histories and the ledger: a calendar period's own name
    (``2024``, ``2025Q3``), else the evidence range ``START/END`` (a run over everything, an
    incremental window), so the same evidence has the same name however it was run."""
    start: date
    """Earliest evidence date of the step (information only)."""
    end: date
    """Latest evidence date: what orders the steps and identifies this one."""


def step_key(period: Period | None, flags: pd.DataFrame) -> StepKey:
    """The step a run of ``period`` (None = everything available) with these ``flags`` (with
    ``first_seen`` / ``last_seen``) is: its evidence dates, else the period's own dates."""
    span = evidence_span(flags)
    if span is not None and period is not None:
        start, end = max(span[0], period.start), min(span[1], period.end)
        span = (start, end) if start <= end else None
    if span is not None:
        named = period is not None and "/" not in period.label
        label = period.label if named and period is not None else f"{span[0]}/{span[1]}"
        return StepKey(label, span[0], span[1])
    if period is not None:
        return StepKey(period.label, period.start, period.end)
    return StepKey("all", NO_EVIDENCE, NO_EVIDENCE)


def place_open_ended_steps(db: sqlite3.Connection) -> int:
    """Give steps stored with the old open end (``9999-12-31``) their evidence dates, taken
    from the flags seen in them. Call inside a write transaction; returns the steps moved."""
    spans: dict[tuple[str, str], list[date]] = defaultdict(list)
    rows = db.execute(
        "SELECT aoi_id, period, state FROM comply_flag_state WHERE period_end = ?", (_OPEN_END,)
    ).fetchall()
    for aoi_id, label, text in rows:
        doc = json.loads(text)
        dates = spans[(aoi_id, label)]
        if doc.get("missed") == 0:  # seen in that step: its dates are the step's evidence
            attrs = doc.get("attrs") or {}
            dates += [
                d for d in (as_date(attrs.get(k)) for k in ("first_seen", "last_seen")) if d is not None
            ]
    for (aoi_id, label), dates in spans.items():
        start, end = (min(dates), max(dates)) if dates else (NO_EVIDENCE, NO_EVIDENCE)
        db.execute(
            "UPDATE comply_flag_state SET period_start = ?, period_end = ? WHERE aoi_id = ? AND period = ?",
            (start.isoformat(), end.isoformat(), aoi_id, label),
        )
    return len(spans)
