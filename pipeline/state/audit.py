"""Flag state between runs and the hash-chained audit ledger, in the SQLite state file.

Tables (other components keep their own tables in the same file, ``Settings.state_path``):

``comply_flag_state``
    The state of every flag of an AOI after each lifecycle step (one row per AOI, step,
    flag). Steps are placed by their evidence dates, never by the period's name
    (:mod:`pipeline.state.flag_steps`): a run reads the states of the latest step whose
    evidence ends before its own, so running the same evidence again (a rerun, or ``--full``
    after the nightly runs) replaces its rows with the same values: the lifecycle is
    idempotent.
``comply_suppressions``
    A mirror of the analyst suppressions; the effective ones are replayed from the ledger.
``audit_ledger`` / ``audit_ledger_head``
    Every flag status change and analyst action (suppressions included), append-only. Each
    row stores the SHA-256 of the previous row and its own hash over its content and that
    previous hash, so editing or deleting any row breaks the chain; the head table holds the
    last row's hash so that deleting the newest row is caught too.
``<state file>.ledger-heads``
    Beside the database, not in it: the head after every write and every AOI run, appended
    before the write commits (:mod:`pipeline.state.ledger_anchor`), so a ledger re-chained,
    truncated or wiped inside the file no longer matches. Each run.json repeats its head.

The store lives in :mod:`pipeline.state.flag_store`, the chain in
:mod:`pipeline.state.audit_ledger`; this module runs a period through them
(:func:`advance_flags`, then :func:`save_flags` with the alerts the new states create) and
is where callers import both from.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import geopandas as gpd

from pipeline.comply.lifecycle import LifecycleResult, advance, status_counts
from pipeline.core.config import ComplyParams
from pipeline.core.periods import Period
from pipeline.core.records import Aoi
from pipeline.state.audit_ledger import GENESIS, LedgerEntry, LedgerProblem, row_hash
from pipeline.state.flag_steps import StepKey, step_key
from pipeline.state.flag_store import StateStore

__all__ = [
    "GENESIS",
    "LedgerEntry",
    "LedgerProblem",
    "StateStore",
    "StepKey",
    "advance_flags",
    "row_hash",
    "save_flags",
    "step_key",
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
    """Load the AOI's state before this run's evidence, advance the lifecycle, save it and
    append the status changes to the ledger (:func:`advance_flags` then :func:`save_flags`,
    with no alerts to queue). Returns the flags with their status."""
    step, result = advance_flags(flags, aoi=aoi, period=period, params=params, state_path=state_path)
    save_flags(step, result, aoi=aoi, run_id=run_id, state_path=state_path)
    return result


def advance_flags(
    flags: gpd.GeoDataFrame,
    *,
    aoi: Aoi,
    period: Period | None,
    params: ComplyParams,
    state_path: Path,
) -> tuple[StepKey, LifecycleResult]:
    """Each flag's status against the AOI's state before this run's evidence; nothing saved.

    The step is placed by the evidence dates of ``flags`` (``first_seen`` / ``last_seen``),
    falling back to the dates of ``period``; never by its name (:func:`step_key`).
    """
    step = step_key(period, flags)
    with StateStore(state_path) as store:
        result = advance(
            flags,
            store.previous_states(aoi.aoi_id, step),
            aoi_id=aoi.aoi_id,
            period=step.label,
            crs=aoi.equal_area_crs,
            params=params,
            suppressions=store.suppressions(aoi.aoi_id),
        )
    return step, result


def save_flags(
    step: StepKey,
    result: LifecycleResult,
    *,
    aoi: Aoi,
    run_id: str,
    state_path: Path,
    alerts: Sequence[Mapping[str, Any]] = (),
) -> None:
    """Save a step's states, its ledger rows and the ``alerts`` they create in one
    transaction: a crash leaves all of them or none (issue 15, case 4)."""
    with StateStore(state_path) as store:
        appended = store.save_period(
            aoi.aoi_id,
            step,
            run_id=run_id,
            states=result.states,
            changes=result.changes,
            lifted=result.lifted,
            alerts=alerts,
        )
    log.info(
        "AOI %s step %s (evidence to %s): %s; %d ledger rows appended, %d alerts queued",
        aoi.aoi_id,
        step.label,
        step.end,
        status_counts(result.flags),
        appended,
        len(alerts),
    )
