"""AOI files that could not be loaded, recorded in the run ledger as their AOI's failure.

A bad AOI file (invalid ring, ``[]``, a symlink out of the AOI folder...) is that AOI's
failure, not the night's: the other AOIs run, the file is named in the ledger, the summary
and ``runs show`` with the fix, and the run exits 1.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from pipeline.core.records import AoiResult
from pipeline.ingest.aoi import AoiLoadFailure
from pipeline.state.runledger import RunLedger

log = logging.getLogger(__name__)


def record_load_failures(
    failures: Sequence[AoiLoadFailure], *, ledger: RunLedger, run_id: str, first_seq: int
) -> list[AoiResult]:
    """Record each file as a failed AOI named by its file name (``bad.geojson``, which no
    valid ``aoi_id`` can be), numbered from ``first_seq``; returns their results."""
    results = []
    for seq, failure in enumerate(failures, start=first_seq):
        ledger.start_aoi(run_id, failure.name, seq=seq, period=None)
        ledger.finish_aoi(run_id, failure.name, status="failed", error=failure.message, duration_s=0.0)
        res = AoiResult(aoi_id=failure.name, status="failed", error=failure.message, ledger_run_id=run_id)
        res.reason = f"AOI file {failure.path} could not be loaded"
        res.timings_s["total"] = 0.0
        log.info("AOI %s failed: could not be loaded", failure.name)
        results.append(res)
    return results
