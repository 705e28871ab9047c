"""The night's alert delivery (issue 15, case 6): at the end of ``run``, after the run lock is
released, every AOI's pending alerts are delivered, not only those of the AOIs that ran.

Before, delivery happened only after an AOI that actually ran, under the run lock: an AOI that
was ``up_to_date`` or ``skipped`` never had its pending alerts retried, so a webhook that was
down one night stayed undelivered for ever (only a manual ``asm-monitor alerts`` sent them),
and a slow receiver held the lock. Now the AOIs run with delivery off and one pass at the end
goes through every outbox under the output folder (``OUT/.<aoi>/alerts/outbox``, and the plain
``OUT/<aoi>/alerts/outbox`` of earlier layouts) with the usual backoff, ``Retry-After`` and
deadline; claims a killed pass left behind are taken over once stale
(:func:`pipeline.report.delivery.stale_claim_s`). A channel that is down never fails the run.
"""

from __future__ import annotations

import dataclasses
import logging
import sqlite3
from pathlib import Path
from typing import Any

from pipeline.core.config import Settings
from pipeline.core.errors import PipelineError
from pipeline.ops.output_swap import outbox_dir
from pipeline.report.alerts import write_outbox
from pipeline.report.delivery import DeliveryReport, deliver
from pipeline.state.alert_outbox import queued_alerts

log = logging.getLogger(__name__)


def without_delivery(settings: Settings) -> Settings:
    """``settings`` with delivery after each AOI off: the night delivers once, at its end."""
    return dataclasses.replace(settings, alerts=dataclasses.replace(settings.alerts, deliver_on_run=False))


def outboxes(out_dir: Path) -> list[Path]:
    """Every AOI's outbox under ``out_dir``, each once (``.<aoi>`` homes, and plain
    ``<aoi>`` folders of earlier layouts; never a ``.<aoi>.old-*`` / ``.staging-*`` leftover)."""
    found: dict[Path, Path] = {}
    if not out_dir.is_dir():
        return []
    for folder in sorted(out_dir.iterdir()):
        name = folder.name.removeprefix(".")
        if not name or "." in name or not folder.is_dir():
            continue
        outbox = folder / "alerts" / "outbox"
        if outbox.is_dir():
            found.setdefault(outbox.resolve(), outbox)
    return sorted(found.values())


def written_out(out_dir: Path, *, settings: Settings) -> int:
    """Write every alert the state database queued into its AOI's outbox file folder when a
    file is missing (a run killed between its commit and its outputs, then never rerun);
    returns how many files were written."""
    state_path = dataclasses.replace(settings, out_dir=out_dir).state_path
    by_aoi: dict[str, list[dict[str, Any]]] = {}
    for alert in queued_alerts(state_path):
        by_aoi.setdefault(str(alert["aoi_id"]), []).append(alert)
    return sum(len(write_outbox(alerts, outbox_dir(out_dir, aoi_id))) for aoi_id, alerts in by_aoi.items())


def deliver_pending(out_dir: Path, *, settings: Settings) -> DeliveryReport | None:
    """Deliver the pending alerts of every outbox under ``out_dir`` when subscriptions exist
    and ``deliver_on_run`` is set; returns the summed report (None: delivery is off). One
    outbox whose pass fails (a missing secret, ...) is logged and the others go on."""
    if not settings.alerts.subscriptions or not settings.alerts.deliver_on_run:
        return None
    total = DeliveryReport()
    written_out(out_dir, settings=settings)
    for outbox in outboxes(out_dir):
        try:
            report = deliver(outbox, settings=settings)
        except (PipelineError, OSError, sqlite3.Error) as exc:  # never fails the finished run
            log.error("alert delivery of %s skipped: %s", outbox, exc)
            total.errors.append(f"{outbox}: {exc}")
            continue
        total.delivered += report.delivered
        total.pending += report.pending
        total.failed += report.failed
        total.already_delivered += report.already_delivered
        total.errors.extend(report.errors)
    log.info(
        "alerts of the night: %d delivered, %d pending, %d failed, %d delivered before",
        total.delivered,
        total.pending,
        total.failed,
        total.already_delivered,
    )
    return total
