"""The night: every AOI under the run lock, recorded in the run ledger, planned
incrementally, resumed after a crash, on one Dask client.

:func:`run` is the public entry point; one AOI end to end is :mod:`pipeline.ops.aoi_run`.
"""

from __future__ import annotations

import json
import logging
import os
import socket
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
from pipeline.core.errors import PipelineError
from pipeline.core.logcontext import log_context
from pipeline.core.periods import Period
from pipeline.core.records import Aoi, AoiResult
from pipeline.ingest.aoi import AoiLoadFailure
from pipeline.ingest.paths import sample_data_dir
from pipeline.ops.aoi_batches import on_workers, run_on_workers
from pipeline.ops.aoi_steps import Job, Step, disk_full_message, guarded, plan_step, record_step, run_job
from pipeline.ops.cluster import PeakMemory, dask_client
from pipeline.ops.detector_model import resolve_for_aois
from pipeline.ops.load_failures import record_load_failures
from pipeline.ops.night_delivery import deliver_pending, without_delivery
from pipeline.report.index import write_index
from pipeline.state.integrity import check_state
from pipeline.state.lock import lock_path_for, run_lock
from pipeline.state.runledger import RunLedger, code_version, model_hash

log = logging.getLogger(__name__)

#: Test hook: seconds to sleep after each finished AOI, so a test can ``kill -9`` a run
#: between two AOIs deterministically. Never set in production.
PAUSE_ENV = "ASM_PAUSE_AFTER_AOI_S"


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
            bar = tqdm(total=len(aois), desc="AOIs", unit="aoi", disable=not show, file=sys.stderr)
            night = _Night(run_id=run_id, ledger=ledger, client=client, mem=mem, bar=bar, results=results)
            night.run_all(
                aois,
                settings=without_delivery(settings),  # delivered once, below
                period=period,
                out_dir=out_dir,
                root=root,
                incremental=incremental,
                force=force,
            )
            # one index and one set of basin-wide tables, from every AOI's run.json
            _write_index(out_dir, settings=settings)
    deliver_pending(out_dir, settings=settings)  # every AOI's pending alerts, outside the lock
    return results


def _write_index(out_dir: Path, *, settings: Settings) -> None:
    """The output folder's index; failing to write it (a full disk) fails no AOI: every AOI's
    own outputs are whole, and the next night writes the index again."""
    try:
        write_index(out_dir, lang=settings.lang)
    except (PipelineError, OSError, ValueError) as exc:
        full = disk_full_message(exc, out_dir)
        log.error("the index of %s was not written: %s", out_dir, full or exc)


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


@dataclass
class _Night:
    """The AOIs of one invocation: planned and recorded here; computed here or in worker
    batches (:mod:`pipeline.ops.aoi_batches`)."""

    run_id: str
    ledger: RunLedger
    client: Any
    mem: PeakMemory
    bar: Any
    results: list[AoiResult]

    def run_all(
        self,
        aois: Sequence[Aoi],
        *,
        settings: Settings,
        period: Period | None,
        out_dir: Path,
        root: Path,
        incremental: bool,
        force: bool,
    ) -> None:
        """Plan every AOI, compute the imagery AOIs here first (their Dask graphs have the
        cluster's workers to themselves), then the others in batches on the workers, and record
        each as it ends."""
        here: list[Job] = []
        there: list[Job] = []
        for seq, aoi in enumerate(aois):
            with log_context(aoi_id=aoi.aoi_id):
                planned = self._plan(aoi, seq=seq, settings=settings, period=period, root=root,
                                     incremental=incremental, force=force, out_dir=out_dir)  # fmt: skip
            if isinstance(planned, Job):
                (there if on_workers(planned, settings=settings, client=self.client) else here).append(
                    planned
                )
        finished = (
            run_on_workers(self.client, there, settings=settings, out_dir=out_dir, ledger_run_id=self.run_id)
            if there
            else iter(())
        )
        for job in here:
            self.mem.reset()
            res = run_job(job, settings=settings, out_dir=out_dir, ledger_run_id=self.run_id)
            res.peak_rss_mib = self.mem.peak_mib
            self._done(res, inputs=job.inputs)
        for job, res in finished:
            self._done(res, inputs=job.inputs)
        order = {a.aoi_id: i for i, a in enumerate(aois)}
        self.results.sort(key=lambda r: order.get(r.aoi_id, len(order)))  # stable: failures last

    def _plan(self, aoi: Aoi, *, seq: int, out_dir: Path, **kw: Any) -> AoiResult | Job:
        self.ledger.start_aoi(
            self.run_id, aoi.aoi_id, seq=seq, period=str(kw["period"]) if kw["period"] else None
        )
        t0 = time.perf_counter()
        step = Step(seq=seq, run_id=self.run_id, ledger=self.ledger, client=self.client, mem=self.mem)
        planned = guarded(aoi.aoi_id, lambda: plan_step(aoi, step=step, **kw), out_dir=out_dir)
        if isinstance(planned, Job):
            return planned
        planned.timings_s["total"] = round(time.perf_counter() - t0, 3)
        planned.ledger_run_id = self.run_id
        planned.peak_rss_mib = self.mem.peak_mib
        self._done(planned, inputs={})
        return planned

    def _done(self, res: AoiResult, *, inputs: dict[str, str]) -> None:
        with log_context(aoi_id=res.aoi_id):
            record_step(self.ledger, self.run_id, res, inputs=inputs)
        self.results.append(res)
        self.bar.update(1)
        self.bar.set_postfix_str(res.aoi_id)
        _pause_for_tests()
