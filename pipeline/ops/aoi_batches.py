"""AOI-level parallelism (issue 19): the night's AOIs that read no imagery (external detections
and registries only: most of a basin-wide night) run in batches on the LocalCluster's worker
processes, after the main process has run the imagery AOIs (whose own Dask graphs use the same
workers); the main process plans every AOI and records each result.

A batch is one task of up to ``run.aoi_batch`` AOIs, so ~240 small territories cost ~30 task
round trips, not 240, and each worker reads and indexes the shared detection files once
(:func:`pipeline.ingest.vectors.external_detections_within`). Every AOI of a batch is guarded
on its own (:func:`pipeline.ops.aoi_steps.run_job`); a worker that dies fails only the AOIs
of its batch, each with the reason.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from pipeline.core.config import Settings
from pipeline.core.records import AoiResult
from pipeline.ops.aoi_steps import Job, run_job, worker_peak_mib
from pipeline.ops.cluster import is_remote
from pipeline.ops.detector_model import has_imagery

log = logging.getLogger(__name__)


def on_workers(job: Job, *, settings: Settings, client: Any) -> bool:
    """True when ``job`` goes to a worker batch: a LocalCluster of this run (its workers
    share this machine's files), batching on, and an AOI that reads no imagery."""
    return (
        client is not None
        and not is_remote(client)
        and settings.run.aoi_batch > 0
        and not has_imagery(job.aoi, settings=settings)
    )


def run_batch(
    jobs: Sequence[Job], *, settings: Settings, out_dir: Path, ledger_run_id: str
) -> list[AoiResult]:
    """Worker side: every job of the batch, each guarded, with the worker's peak memory."""
    out = []
    for job in jobs:
        res = run_job(job, settings=settings, out_dir=out_dir, ledger_run_id=ledger_run_id)
        res.peak_rss_mib = worker_peak_mib()
        out.append(res)
    return out


def run_on_workers(
    client: Any, jobs: Sequence[Job], *, settings: Settings, out_dir: Path, ledger_run_id: str
) -> Iterator[tuple[Job, AoiResult]]:
    """Submit ``jobs`` in batches and yield each job with its result as batches finish."""
    from distributed import as_completed

    size = max(1, settings.run.aoi_batch)
    # the largest areas first, so no big AOI is left running alone at the end of the night
    ordered = sorted(jobs, key=lambda j: -j.aoi.geometry.area)
    batches = [ordered[i : i + size] for i in range(0, len(ordered), size)]
    futures = {
        client.submit(
            run_batch, batch, settings=settings, out_dir=out_dir, ledger_run_id=ledger_run_id, pure=False
        ): batch
        for batch in batches
    }
    log.info("%d AOIs without imagery in %d batches on the workers", len(jobs), len(batches))
    for future in as_completed(list(futures)):
        batch = futures[future]
        try:
            results = future.result()
        except Exception as exc:  # the worker died (memory, kill): the batch's AOIs failed
            log.error("a batch of %d AOIs failed on its worker: %s", len(batch), exc)
            results = [
                AoiResult(
                    aoi_id=j.aoi.aoi_id,
                    status="failed",
                    error=f"worker failed: {type(exc).__name__}: {exc}. Rerun the night; "
                    "lower run.aoi_batch or raise run.memory_limit if it happens again.",
                )
                for j in batch
            ]
        yield from zip(batch, results, strict=True)
