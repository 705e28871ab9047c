"""One AOI's part of the night, in three steps the run loop (:mod:`pipeline.ops.run`) and the
worker batches (:mod:`pipeline.ops.aoi_batches`) share:

1. :func:`plan_step` (main process: it reads the run ledger): ``up_to_date``, ``skipped``
   (the same run already done) or a :class:`Job` to run;
2. :func:`run_job` (main process or a Dask worker): :func:`pipeline.ops.aoi_run.run_aoi` with
   every failure kept as that AOI's own (``no_data``, ``failed``, a full disk named);
3. :func:`record_step` (main process): the AOI's line in the run ledger.
"""

from __future__ import annotations

import errno
import logging
import resource
import shutil
import sqlite3
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from pipeline.core.config import Settings
from pipeline.core.errors import NoDataError, PipelineError
from pipeline.core.logcontext import log_context
from pipeline.core.periods import Period
from pipeline.core.records import Aoi, AoiResult
from pipeline.ops.aoi_run import make_run_id, run_aoi
from pipeline.ops.cluster import PeakMemory, check_worker_paths
from pipeline.ops.incremental import input_files, input_fingerprints, plan_aoi
from pipeline.state.runledger import DONE_STATUSES, RunLedger

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class Step:
    """Where one AOI stands in the night: its place, the invocation, the shared resources."""

    seq: int
    run_id: str
    ledger: RunLedger
    client: Any
    mem: PeakMemory


@dataclass(frozen=True, kw_only=True)
class Job:
    """An AOI to compute: what :func:`run_job` needs, picklable for a Dask worker."""

    aoi: Aoi
    seq: int
    period: Period | None
    inputs: dict[str, str] = field(default_factory=dict)
    run_id: str
    reason: str


def disk_full_message(exc: BaseException, out_dir: Path) -> str | None:
    """The error a user sees when ``exc`` means the disk (or quota) is full, else None."""
    sqlite_full = isinstance(exc, sqlite3.OperationalError) and "disk is full" in str(exc)
    if not sqlite_full and not (isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)):
        return None
    where = Path(getattr(exc, "filename", None) or out_dir)
    try:
        free = f"{shutil.disk_usage(where if where.is_dir() else where.parent).free / 2**20:.1f} MiB free"
    except OSError:
        free = "free space unknown"
    return (
        f"No space left on the disk of {where} ({free}). Free some space there, or pass "
        "--out / --state-db on a larger disk, then run the same command again: files written "
        "so far are whole (atomic writes) and the AOI is recomputed."
    )


def guarded(aoi_id: str, fn: Callable[[], T], *, out_dir: Path) -> T | AoiResult:
    """``fn()``'s result, or the AOI's failure: one AOI's error (or bug) stops no other."""
    try:
        return fn()
    except NoDataError as exc:
        log.warning("AOI %s: no usable data: %s", aoi_id, exc)
        return AoiResult(aoi_id=aoi_id, status="no_data", error=str(exc))
    except PipelineError as exc:
        log.error("AOI %s failed: %s", aoi_id, exc)
        return AoiResult(aoi_id=aoi_id, status="failed", error=str(exc))
    except Exception as exc:  # one AOI's bug must not stop the night's other AOIs
        full = disk_full_message(exc, out_dir)
        if full:
            log.error("AOI %s failed: %s", aoi_id, full)
            return AoiResult(aoi_id=aoi_id, status="failed", error=full)
        log.exception("AOI %s failed unexpectedly", aoi_id)
        return AoiResult(aoi_id=aoi_id, status="failed", error=f"{type(exc).__name__}: {exc}")


def plan_step(
    aoi: Aoi,
    *,
    step: Step,
    settings: Settings,
    period: Period | None,
    root: Path,
    incremental: bool,
    force: bool,
) -> AoiResult | Job:
    """The AOI's result when nothing is to compute (up to date, or the same run already
    done), else the :class:`Job` that computes it."""
    ledger = step.ledger
    res = AoiResult(aoi_id=aoi.aoi_id)
    last = ledger.last_success(aoi.aoi_id)
    plan = plan_aoi(
        aoi,
        root=root,
        period=period,
        incremental=incremental,
        processed=ledger.processed_inputs(aoi.aoi_id) if incremental else {},
        last_success=last.finished if last else None,
        today=datetime.now(UTC).date(),
    )
    res.period = str(plan.period) if plan.period else "all"
    res.reason = plan.reason
    if plan.action == "up_to_date":
        assert last is not None
        res.status, res.run_id, res.outputs = "up_to_date", last.aoi_run_id or "", last.outputs
        res.period = last.period or ""
        log.info("AOI %s up to date: %s", aoi.aoi_id, plan.reason)
        return res
    inputs = input_fingerprints(plan.aoi, root=root)
    aoi_run_id = make_run_id(plan.aoi, plan.period, inputs, settings)
    done = None if force else ledger.completed(aoi.aoi_id, aoi_run_id)
    if done is not None and all(Path(p).exists() for p in done.outputs.values()):
        res.status, res.run_id, res.outputs = "skipped", aoi_run_id, done.outputs
        res.reason = f"already done by run {done.run_id} (same inputs, settings and code)"
        log.info("AOI %s: %s; --force recomputes", aoi.aoi_id, res.reason)
        return res
    log.info("AOI %s: %s", aoi.aoi_id, plan.reason)
    check_worker_paths(step.client, input_files(plan.aoi, root=root))
    return Job(
        aoi=plan.aoi, seq=step.seq, period=plan.period, inputs=inputs, run_id=aoi_run_id, reason=plan.reason
    )


def run_job(job: Job, *, settings: Settings, out_dir: Path, ledger_run_id: str) -> AoiResult:
    """Compute one planned AOI (in this process or on a worker); never raises."""
    t0 = time.perf_counter()
    with log_context(run_id=ledger_run_id, aoi_id=job.aoi.aoi_id):
        res: AoiResult = guarded(
            job.aoi.aoi_id,
            lambda: run_aoi(
                job.aoi,
                settings=settings,
                period=job.period,
                out_dir=out_dir,
                inputs=job.inputs,
                run_id=job.run_id,
            ),
            out_dir=out_dir,
        )
    res.period, res.reason = str(job.period) if job.period else "all", job.reason
    res.timings_s["total"] = round(time.perf_counter() - t0, 3)
    res.ledger_run_id = ledger_run_id
    return res


def worker_peak_mib() -> float:
    """This process's peak resident memory so far (MiB): a worker's own, for its AOIs."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (2**20 if sys.platform == "darwin" else 2**10), 1)


def record_step(ledger: RunLedger, run_id: str, res: AoiResult, *, inputs: dict[str, str]) -> None:
    """The AOI's line in the run ledger; inputs count as processed only when it finished."""
    ledger.finish_aoi(
        run_id,
        res.aoi_id,
        status=res.status,
        aoi_run_id=res.run_id or None,
        period=res.period or None,
        error=res.error,
        duration_s=res.timings_s.get("total", 0.0),
        peak_rss_mib=res.peak_rss_mib,
        timings=res.timings_s,
        counts={
            "detections": res.detections,
            "mining_detections_ha": res.detections_ha,
            "flags_by_rule": res.flags_by_rule,
            "flagged_ha": res.flagged_ha,
            "alerts": res.alerts_queued,
        },
        outputs=res.outputs,
        inputs=inputs if res.status in (*DONE_STATUSES, "failed") else {},
    )
    log.info(
        "AOI %s %s in %.1f s (peak %.0f MiB)",
        res.aoi_id,
        res.status,
        res.timings_s.get("total", 0.0),
        res.peak_rss_mib,
    )
