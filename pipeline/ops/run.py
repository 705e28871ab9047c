"""The night: every AOI under the run lock, recorded in the run ledger, planned
incrementally, resumed after a crash, on one Dask client.

:func:`run` is the public entry point; one AOI end to end is :mod:`pipeline.ops.aoi_run`.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import socket
import sqlite3
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from pipeline.comply.rules import RULEBOOK_VERSION
from pipeline.core.atomic import write_text
from pipeline.core.config import Settings
from pipeline.core.errors import NoDataError, PipelineError
from pipeline.core.logcontext import log_context
from pipeline.core.periods import Period
from pipeline.core.records import Aoi, AoiResult
from pipeline.ingest.aoi import AoiLoadFailure
from pipeline.ingest.paths import sample_data_dir
from pipeline.ops.aoi_run import make_run_id, run_aoi
from pipeline.ops.cluster import PeakMemory, check_worker_paths, dask_client
from pipeline.ops.detector_model import resolve_for_aois
from pipeline.ops.incremental import input_files, input_fingerprints, plan_aoi
from pipeline.ops.load_failures import record_load_failures
from pipeline.ops.night_delivery import deliver_pending, without_delivery
from pipeline.state.integrity import check_state
from pipeline.state.lock import lock_path_for, run_lock
from pipeline.state.runledger import DONE_STATUSES, RunLedger, code_version, model_hash

log = logging.getLogger(__name__)

#: Test hook: seconds to sleep after each finished AOI, so a test can ``kill -9`` a run
#: between two AOIs deterministically. Never set in production.
PAUSE_ENV = "ASM_PAUSE_AFTER_AOI_S"


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


def new_run_id() -> str:
    """Time-ordered, unique id of one invocation: ``20261123T021500Z-3f2a1c``."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"


def run(
    aois: Sequence[Aoi],
    *,
    settings: Settings,
    period: Period | None,
    out_dir: Path,
    incremental: bool = False,
    force: bool = False,
    progress: bool | None = None,
    command: str = "",
    load_failures: Sequence[AoiLoadFailure] = (),
) -> list[AoiResult]:
    """Run every AOI under the run lock, recording each in the run ledger; a failure stops no other.

    Parameters
    ----------
    aois
        AOIs to process, in order.
    settings
        Resolved settings; ``settings.state_path`` holds the ledger and its lock.
    period
        Period to process; None = all available, or what is new (``incremental``).
    out_dir
        Outputs go to ``out_dir/<aoi_id>/``; ``out_dir/summary.json`` sums the run up.
    incremental
        Nightly mode: only inputs not processed yet, see :mod:`pipeline.ops.incremental`.
    force
        Recompute AOIs whose identical run (same inputs, settings, code) already finished.
    progress
        tqdm bar over AOIs on stderr; None = only when stderr is a terminal.
    command
        Command line recorded in the ledger (default ``sys.argv``).
    load_failures
        AOI files that could not be loaded: each is recorded as a failed AOI named by its file.

    Raises
    ------
    LockHeldError
        Another run holds the lock (exit code 3).
    """
    root, show = sample_data_dir(settings.sample_data), sys.stderr.isatty() if progress is None else progress
    settings = resolve_for_aois(aois, settings=settings)  # the model is part of their run ids
    with run_lock(lock_path_for(settings.state_path), wait_s=settings.run.lock_wait_s):
        ledger = _open_ledger(settings.state_path)
        run_id, results = _start(
            ledger,
            settings=settings,
            period=period,
            incremental=incremental,
            command=command,
            aois=aois,
            load_failures=load_failures,
        )
        with (
            _recorded(ledger, run_id, results=results, out_dir=out_dir) as mem,
            log_context(run_id=run_id),
            dask_client(settings.run) as client,
            logging_redirect_tqdm(),
        ):
            log.info("run %s: %d AOIs, state %s", run_id, len(aois), settings.state_path)
            bar = tqdm(aois, desc="AOIs", unit="aoi", disable=not show, file=sys.stderr)
            for seq, aoi in enumerate(bar):
                bar.set_postfix_str(aoi.aoi_id)
                step = _Step(seq=seq, run_id=run_id, ledger=ledger, client=client, mem=mem)
                with log_context(aoi_id=aoi.aoi_id):
                    res = _one_aoi(
                        aoi,
                        step=step,
                        settings=without_delivery(settings),  # delivered once, below
                        period=period,
                        out_dir=out_dir,
                        root=root,
                        incremental=incremental,
                        force=force,
                    )
                results.append(res)
                _pause_for_tests()
    deliver_pending(out_dir, settings=settings)  # every AOI's pending alerts, outside the lock
    return results


def _open_ledger(state_path: Path) -> RunLedger:
    """The run ledger, once the state file is known to be whole and its audit ledger to
    verify: a damaged, wiped or rewritten state raises ``StateDamagedError`` (exit code 2)
    before anything is run, sent or written."""
    check_state(state_path)
    return RunLedger(state_path)


def _pause_for_tests() -> None:
    pause = float(os.environ.get(PAUSE_ENV, "0") or 0)
    if pause > 0:
        time.sleep(pause)


def _start(
    ledger: RunLedger,
    *,
    settings: Settings,
    period: Period | None,
    incremental: bool,
    command: str,
    aois: Sequence[Aoi],
    load_failures: Sequence[AoiLoadFailure],
) -> tuple[str, list[AoiResult]]:
    """Open this invocation in the run ledger (closing runs a kill left open) and record the
    AOI files that could not be loaded; returns its id and their results."""
    stale = ledger.recover_interrupted()
    if stale:
        log.warning("runs %s did not finish (killed?): marked interrupted; resuming", ", ".join(stale))
    run_id = new_run_id()
    ledger.start_run(
        run_id,
        command=command or " ".join(sys.argv),
        host=socket.gethostname(),
        pid=os.getpid(),
        period=str(period) if period else ("incremental" if incremental else "all"),
        scheduler=settings.run.scheduler,
        code_version=code_version(),
        rulebook_version=RULEBOOK_VERSION,
        model_hash=model_hash(settings.detect),
        n_aois=len(aois) + len(load_failures),
    )
    return run_id, record_load_failures(load_failures, ledger=ledger, run_id=run_id, first_seq=len(aois))


@contextmanager
def _recorded(
    ledger: RunLedger, run_id: str, *, results: list[AoiResult], out_dir: Path
) -> Iterator[PeakMemory]:
    """Close the invocation in the ledger however it ends (done, failed, interrupted) and
    write ``summary.json``; yields the peak-memory meter the AOIs share."""
    t_run = time.perf_counter()
    mem = PeakMemory()
    status, exit_code = "interrupted", 130
    try:
        with mem:
            yield mem
        failed = [r for r in results if r.status == "failed"]
        status = "ok" if not failed else "failed" if len(failed) == len(results) else "partial"
        exit_code = 1 if failed else 0
    except PipelineError as exc:  # the cluster could not start: nothing ran
        status, exit_code = "failed", exc.exit_code
        raise
    finally:
        ledger.finish_run(
            run_id,
            status=status,
            exit_code=exit_code,
            duration_s=round(time.perf_counter() - t_run, 3),
            peak_rss_mib=mem.peak_mib,
        )
        if status == "interrupted":
            ledger.recover_interrupted()  # the AOI being processed when the signal came
    write_text(
        out_dir / "summary.json",
        json.dumps(
            {"run_id": run_id, "status": status, "aois": [asdict(r) for r in results]},
            indent=2,
            ensure_ascii=False,
            default=str,
        )
        + "\n",
    )
    log.info(
        "run %s %s in %.1f s, peak memory %.0f MiB",
        run_id,
        status,
        time.perf_counter() - t_run,
        mem.peak_mib,
        extra={"run_id": run_id},
    )


@dataclass(frozen=True)
class _Step:
    """Where one AOI stands in the night: its place, the invocation, the shared resources."""

    seq: int
    run_id: str
    ledger: RunLedger
    client: Any
    mem: PeakMemory


def _one_aoi(
    aoi: Aoi,
    *,
    step: _Step,
    settings: Settings,
    period: Period | None,
    out_dir: Path,
    root: Path,
    incremental: bool,
    force: bool,
) -> AoiResult:
    """Plan, run (or skip) one AOI and record it in the ledger; its failure is its own."""
    t0 = time.perf_counter()
    step.mem.reset()
    step.ledger.start_aoi(step.run_id, aoi.aoi_id, seq=step.seq, period=str(period) if period else None)
    res = AoiResult(aoi_id=aoi.aoi_id)
    inputs: dict[str, str] = {}
    try:
        res, inputs = _plan_and_run(
            aoi,
            step=step,
            settings=settings,
            period=period,
            out_dir=out_dir,
            root=root,
            incremental=incremental,
            force=force,
        )
    except NoDataError as exc:
        log.warning("AOI %s: no usable data: %s", aoi.aoi_id, exc)
        res.status, res.error = "no_data", str(exc)
    except PipelineError as exc:
        log.error("AOI %s failed: %s", aoi.aoi_id, exc)
        res.status, res.error = "failed", str(exc)
    except Exception as exc:  # one AOI's bug must not stop the night's other AOIs
        full = disk_full_message(exc, out_dir)
        if full:
            log.error("AOI %s failed: %s", aoi.aoi_id, full)
            res.status, res.error = "failed", full
        else:
            log.exception("AOI %s failed unexpectedly", aoi.aoi_id)
            res.status, res.error = "failed", f"{type(exc).__name__}: {exc}"
    res.timings_s["total"] = round(time.perf_counter() - t0, 3)
    res.peak_rss_mib = step.mem.peak_mib
    res.ledger_run_id = step.run_id
    _record(step, res, inputs=inputs)
    return res


def _plan_and_run(
    aoi: Aoi,
    *,
    step: _Step,
    settings: Settings,
    period: Period | None,
    out_dir: Path,
    root: Path,
    incremental: bool,
    force: bool,
) -> tuple[AoiResult, dict[str, str]]:
    """The AOI's result and the input fingerprints it consumed: up to date, skipped (same
    run already done) or run."""
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
        return res, {}
    inputs = input_fingerprints(plan.aoi, root=root)
    aoi_run_id = make_run_id(plan.aoi, plan.period, inputs, settings)
    done = None if force else ledger.completed(aoi.aoi_id, aoi_run_id)
    if done is not None and all(Path(p).exists() for p in done.outputs.values()):
        res.status, res.run_id, res.outputs = "skipped", aoi_run_id, done.outputs
        res.reason = f"already done by run {done.run_id} (same inputs, settings and code)"
        log.info("AOI %s: %s; --force recomputes", aoi.aoi_id, res.reason)
        return res, {}
    log.info("AOI %s: %s", aoi.aoi_id, plan.reason)
    check_worker_paths(step.client, input_files(plan.aoi, root=root))
    res = run_aoi(
        plan.aoi, settings=settings, period=plan.period, out_dir=out_dir, inputs=inputs, run_id=aoi_run_id
    )
    res.period, res.reason = str(plan.period) if plan.period else "all", plan.reason
    return res, inputs


def _record(step: _Step, res: AoiResult, *, inputs: dict[str, str]) -> None:
    """The AOI's line in the run ledger; inputs count as processed only when it finished."""
    step.ledger.finish_aoi(
        step.run_id,
        res.aoi_id,
        status=res.status,
        aoi_run_id=res.run_id or None,
        period=res.period or None,
        error=res.error,
        duration_s=res.timings_s["total"],
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
        res.timings_s["total"],
        res.peak_rss_mib,
    )
