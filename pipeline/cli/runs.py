"""``asm-monitor runs list`` and ``asm-monitor runs show RUN_ID``: read the run ledger."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from pipeline.cli.args import settings_from_args
from pipeline.core.errors import ConfigError, DataNotFoundError
from pipeline.state.runledger import RunLedger


def _ledger(args: argparse.Namespace) -> RunLedger:

    settings = settings_from_args(args)
    path = settings.state_path
    if not path.exists():
        raise DataNotFoundError(
            f"No run ledger at {path}. Run `asm-monitor run` first, or point --state-db / --out "
            "(or ASM_STATE_DB) at the state file of your runs."
        )
    return RunLedger(path)


def _list(args: argparse.Namespace) -> int:
    runs = _ledger(args).list_runs(limit=args.limit, aoi_id=args.aoi)
    w = sys.stdout.write
    if args.json:
        w(json.dumps(runs, indent=2, default=str) + "\n")
        return 0
    if not runs:
        w("no runs recorded\n")
        return 0
    w(f"{'RUN_ID':<26} {'STARTED':<26} {'STATUS':<12} {'EXIT':>4} {'SECONDS':>8} {'PEAK MiB':>9}  AOIS\n")
    for r in runs:
        counts = ", ".join(f"{k} {v}" for k, v in sorted(r["aoi_status"].items())) or "-"
        w(
            f"{r['run_id']:<26} {r['started']:<26} {r['status']:<12} "
            f"{'' if r['exit_code'] is None else r['exit_code']:>4} "
            f"{_num(r['duration_s']):>8} {_num(r['peak_rss_mib']):>9}  {counts}\n"
        )
    return 0


def _num(value: Any) -> str:
    return "-" if value is None else f"{value:,.1f}"


def _show(args: argparse.Namespace) -> int:
    found = _ledger(args).get_run(args.run_id)
    if found is None:
        raise ConfigError(f"No run {args.run_id!r} in the ledger. List runs with `asm-monitor runs list`.")
    run, aois = found
    w = sys.stdout.write
    if args.json:
        w(json.dumps({**run, "aois": [asdict(a) for a in aois]}, indent=2, default=str) + "\n")
        return 0
    for key in (
        "run_id",
        "status",
        "exit_code",
        "started",
        "finished",
        "duration_s",
        "peak_rss_mib",
        "period",
        "scheduler",
        "code_version",
        "rulebook_version",
        "model_hash",
        "host",
        "pid",
        "command",
    ):
        w(f"{key:<17} {'-' if run.get(key) is None else run[key]}\n")
    for a in aois:
        w(f"\n[{a.aoi_id}] {a.status}  aoi_run_id {a.aoi_run_id or '-'}  period {a.period or '-'}\n")
        w(f"  {a.started} -> {a.finished or '-'}  {_num(a.duration_s)} s  peak {_num(a.peak_rss_mib)} MiB\n")
        if a.error:
            w(f"  error: {a.error}\n")
        if a.timings:
            w("  timings (s): " + ", ".join(f"{k} {v}" for k, v in a.timings.items()) + "\n")
        if a.counts and a.status == "ok":
            w("  counts: " + json.dumps(a.counts, sort_keys=True) + "\n")
        for key, fp in a.inputs.items():
            w(f"  input {key}  sha256:{fp}\n")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``runs list`` and ``runs show``."""
    p = sub.add_parser(
        "runs",
        help="the run ledger: past runs, per-AOI status, inputs, timings",
        description="Read the run ledger (SQLite, default OUT/asm-monitor.sqlite).",
    )
    rs = p.add_subparsers(dest="runs_command", metavar="SUBCOMMAND", required=True)

    def common(q: argparse.ArgumentParser) -> None:
        q.add_argument("--out", type=Path, help="output folder of the runs (its asm-monitor.sqlite)")
        q.add_argument("--state-db", type=Path, help="the ledger file itself ($ASM_STATE_DB)")
        q.add_argument("--json", action="store_true", help="machine-readable output")

    lst = rs.add_parser(
        "list",
        help="most recent runs, newest first",
        description="Most recent runs, newest first, with AOI counts per status.",
    )
    common(lst)
    lst.add_argument("--limit", type=int, default=20, help="how many runs (default 20)")
    lst.add_argument("--aoi", help="only runs that included this AOI")
    lst.set_defaults(func=_list)

    show = rs.add_parser(
        "show",
        help="one run: status, versions, per-AOI status, errors, inputs",
        description="One run in full: status, code and rulebook versions, model hash, peak "
        "memory, and per AOI its status, error, timings and the inputs (with fingerprints) it "
        "processed. RUN_ID may be a unique prefix or an AOI run id stamped on flags.",
    )
    common(show)
    show.add_argument("run_id", metavar="RUN_ID")
    show.set_defaults(func=_show)
