"""Flag state between runs and the hash-chained audit ledger, in the SQLite state file.

Tables (other components keep their own tables in the same file, ``Settings.state_path``):

``comply_flag_state``
    The state of every flag of an AOI after each period (one row per AOI, period, flag).
    A run of period P reads the states after the latest period *before* P, so running P
    again replaces P's rows with the same values: the lifecycle is idempotent.
``comply_suppressions``
    Analyst suppressions (false positives) and when evidence lifted them.
``audit_ledger`` / ``audit_ledger_head``
    Every flag status change and analyst action, append-only. Each row stores the SHA-256
    of the previous row and its own hash over its content and that previous hash, so
    editing or deleting any row breaks the chain; the head table holds the last row's hash
    so that deleting the newest row is caught too. Publish ``head`` (``ledger verify``
    prints it) somewhere outside the file to anchor the chain against a full rewrite.

The store lives in :mod:`pipeline.state.flag_store`, the chain in
:mod:`pipeline.state.audit_ledger`; this module runs a period through them
(:func:`track_flags`) and is where callers import both from.
"""

from __future__ import annotations

import logging
from pathlib import Path

import geopandas as gpd

from pipeline.comply.lifecycle import LifecycleResult, advance, status_counts
from pipeline.core.config import ComplyParams
from pipeline.core.periods import Period
from pipeline.core.records import Aoi
from pipeline.state.audit_ledger import GENESIS, LedgerEntry, LedgerProblem, row_hash
from pipeline.state.flag_store import StateStore, period_key

__all__ = [
    "GENESIS",
    "LedgerEntry",
    "LedgerProblem",
    "StateStore",
    "period_key",
    "row_hash",
    "track_flags",
]

log = logging.getLogger(__name__)


def track_flags(
    flags: gpd.GeoDataFrame,
    *,
    aoi: Aoi,
    period: Period | None,
    params: ComplyParams,
    run_id: str,
    state_path: Path,
) -> LifecycleResult:
    """Load the AOI's state before ``period``, advance the lifecycle, save it and append the
    status changes to the ledger. Returns the flags with their status."""
    with StateStore(state_path) as store:
        result = advance(
            flags,
            store.previous_states(aoi.aoi_id, period),
            aoi_id=aoi.aoi_id,
            period=period_key(period)[0],
            crs=aoi.equal_area_crs,
            params=params,
            suppressions=store.suppressions(aoi.aoi_id),
        )
        appended = store.save_period(
            aoi.aoi_id,
            period,
            run_id=run_id,
            states=result.states,
            changes=result.changes,
            lifted=result.lifted,
        )
    log.info(
        "AOI %s period %s: %s; %d ledger rows appended",
        aoi.aoi_id,
        period_key(period)[0],
        status_counts(result.flags),
        appended,
    )
    return result
