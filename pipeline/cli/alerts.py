"""``asm-monitor alerts --run OUT_DIR/AOI_ID [--retry]``: deliver a run's pending alerts."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipeline.cli.args import settings_from_args


def _alerts(args: argparse.Namespace) -> int:
    from pipeline.ops.rerender import find_run_dir
    from pipeline.report.delivery import deliver

    settings = settings_from_args(args)
    run_dir = find_run_dir(args.run, out_dir=settings.out_dir)
    if settings.state_db is None:
        # the state file of the output folder this run was written to
        settings = settings.with_overrides({"out_dir": str(run_dir.parent)})
    report = deliver(run_dir / "alerts" / "outbox", settings=settings, retry=args.retry)
    sys.stdout.write(
        f"delivered {report.delivered}, still pending {report.pending}, failed {report.failed}, "
        f"delivered earlier {report.already_delivered}\n"
    )
    for line in report.errors:
        sys.stdout.write(f"  {line}\n")
    return 0 if not (report.pending or report.failed) else 1


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``alerts``."""
    p = sub.add_parser(
        "alerts",
        help="deliver a run's alerts to the configured subscriptions",
        description="Send every outbox alert of a run to each matching subscription (signed webhook, "
        "e-mail) that has not had it yet. Exit 0 when everything is delivered, 1 when some stay "
        "pending or failed (run again later, or with --retry).",
    )
    p.add_argument("--run", required=True, help="run folder OUT_DIR/AOI_ID, or a run id (with --out)")
    p.add_argument("--out", type=Path, help="output folder to look a run id up in (default: settings)")
    p.add_argument("--retry", action="store_true", help="also retry deliveries that failed for good")
    p.set_defaults(func=_alerts)
