"""``asm-monitor run`` and ``asm-monitor demo``."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from pipeline.cli.args import settings_from_args
from pipeline.core.config import Settings
from pipeline.core.config_checks import LANGUAGES
from pipeline.core.errors import ConfigError
from pipeline.core.periods import Period, parse_period
from pipeline.core.records import Aoi, AoiResult
from pipeline.ingest.aoi import AoiLoadFailure, LoadedAois, is_collection_file, list_aoi_files, load_aois
from pipeline.ingest.paths import sample_data_dir
from pipeline.ops.incremental import input_fingerprints, plan_aoi
from pipeline.ops.run import run
from pipeline.state.runledger import RunLedger


def _select_aois(args: argparse.Namespace, settings: Settings) -> LoadedAois:
    """The chosen AOIs, every file loaded one by one: a bad file (or collection member) is
    that AOI's failure, two files with one ``aoi_id`` are a usage error. ``--aoi`` names an
    AOI id, an AOI file (its stem or path: all the AOIs it defines) or a collection id."""
    aoi_dir = settings.aoi_dir
    files = list_aoi_files(aoi_dir)
    if not files:
        raise ConfigError(f"No AOI files (*.geojson) in {aoi_dir}. Pass --aoi-dir or add AOIs.")
    if not getattr(args, "aoi", None):
        return _in_countries(load_aois(files, settings=settings), getattr(args, "country", None))
    wanted = set(args.aoi)
    direct = [f for f in files if f.stem in wanted or str(f) in wanted]
    # an id no file stem names may be a member or the id of a collection: load those files too
    unresolved = wanted - {f.stem for f in direct} - {str(f) for f in direct}
    pooled = (
        [f for f in files if f not in direct and is_collection_file(f, settings=settings)]
        if unresolved
        else []
    )
    loaded = load_aois([*direct, *pooled], settings=settings)
    by_file = {str(f) for f in direct} | {str(aoi_dir / f"{f.stem}.geojson") for f in direct}

    def chosen(aoi: Aoi) -> bool:
        return aoi.aoi_id in wanted or aoi.collection in wanted or str(aoi.source_path) in by_file

    aois = [a for a in loaded.aois if chosen(a)]
    named = {a.aoi_id for a in aois} | {a.collection for a in aois} | {f.stem for f in direct}
    unknown = wanted - named - {str(f) for f in direct}
    if unknown:
        known = sorted({f.stem for f in files} | {a.collection or a.aoi_id for a in loaded.aois})
        raise ConfigError(
            f"Unknown AOI {sorted(unknown)}. Known files and collections: {', '.join(known)}; "
            "members of a collection by their id (see `asm-monitor aoi list`)."
        )
    failures = [f for f in loaded.failures if f.path in direct or any(w in f.name for w in wanted)]
    return _in_countries(LoadedAois(aois=aois, failures=failures), getattr(args, "country", None))


def _in_countries(loaded: LoadedAois, countries: list[str] | None) -> LoadedAois:
    """Only the AOIs of ``countries`` (all when None); an unknown country is a usage error."""
    if not countries:
        return loaded
    wanted = {c.casefold() for c in countries}
    aois = [a for a in loaded.aois if a.country.casefold() in wanted]
    if not aois:
        known = sorted({a.country for a in loaded.aois})
        raise ConfigError(f"No AOI in {', '.join(countries)}. Countries of the AOIs: {', '.join(known)}.")
    return LoadedAois(aois=aois, failures=loaded.failures)


#: Above this many AOIs the summary is one line per AOI (a basin-wide night lists ~240).
COMPACT_ABOVE = 12


def print_summary(results: list[AoiResult], out_dir: Path) -> None:
    """One screen: outputs per AOI, flags by rule and severity, hectares."""
    w = sys.stdout.write
    w(f"\nasm-monitor run summary  (outputs under {out_dir})\n")
    w("=" * 78 + "\n")
    if (out_dir / "index.html").is_file():
        w(f"Open {out_dir / 'index.html'}: every AOI's map, flags and scorecards.\n")
    if len(results) > COMPACT_ABOVE:
        _compact(results)
        results_detail: list[AoiResult] = []
    else:
        results_detail = results
    for r in results_detail:
        w(f"\n[{r.aoi_id}] status: {r.status}   run_id: {r.run_id or '-'}   period: {r.period or '-'}\n")
        if r.error:
            w(f"  error: {r.error}\n")
            continue
        if r.status in ("up_to_date", "skipped"):
            w(f"  {r.reason}\n")
            continue
        w(f"  detections: {r.detections}  (mining footprint {r.detections_ha:,.1f} ha)\n")
        w(f"  flagged area: {r.flagged_ha:,.1f} ha   alerts queued: {r.alerts_queued}\n")
        w(
            "  flags by rule:     "
            + (", ".join(f"{k} {v}" for k, v in r.flags_by_rule.items()) or "none")
            + "\n"
        )
        for label, counts in (
            ("flags by severity: ", r.flags_by_severity),
            ("flags by status:   ", r.flags_by_status),
        ):
            w(f"  {label}" + (", ".join(f"{k} {v}" for k, v in counts.items()) or "none") + "\n")
        for name, path in r.outputs.items():
            w(f"    {name:<20} {path}\n")
    failed = [r.aoi_id for r in results if r.status == "failed"]
    w("\n" + ("all AOIs done" if not failed else f"FAILED: {', '.join(failed)}") + "\n")
    if results and results[0].ledger_run_id:
        rid = results[0].ledger_run_id
        w(f"run {rid}: details with `asm-monitor runs show {rid}`\n")


def _compact(results: list[AoiResult]) -> None:
    """One line per AOI and the night's totals (details: ``runs show`` / ``index.html``)."""
    w = sys.stdout.write
    w(f"{'AOI':<18} {'status':<11} {'flags':>6} {'flagged ha':>12} {'alerts':>7}\n")
    for r in results:
        w(f"{r.aoi_id:<18} {r.status:<11} {r.flag_count:>6} {r.flagged_ha:>12,.1f} "
          f"{r.alerts_queued:>7}" + (f"  {r.error}" if r.error else "") + "\n")  # fmt: skip
    by_status: dict[str, int] = {}
    for r in results:
        by_status[r.status] = by_status.get(r.status, 0) + 1
    w(
        f"\n{len(results)} AOIs: "
        + ", ".join(f"{n} {s}" for s, n in sorted(by_status.items()))
        + f"; {sum(r.flag_count for r in results)} flags, "
        f"{sum(r.flagged_ha for r in results):,.1f} ha flagged, "
        f"{sum(r.alerts_queued for r in results)} alerts queued\n"
    )


def _dry_run(
    aois: list[Aoi],
    settings: Settings,
    period: Period | None,
    *,
    incremental: bool,
    failures: Sequence[AoiLoadFailure] = (),
) -> int:
    """List what a run would process; reads the ledger if there is one, writes nothing."""
    root = sample_data_dir(settings.sample_data)
    ledger = RunLedger(settings.state_path) if settings.state_path.exists() else None
    w = sys.stdout.write
    w(f"dry run: state {settings.state_path}{'' if ledger else ' (none yet)'}\n")
    for aoi in aois:
        last = ledger.last_success(aoi.aoi_id) if ledger else None
        plan = plan_aoi(
            aoi,
            root=root,
            period=period,
            incremental=incremental,
            processed=ledger.processed_inputs(aoi.aoi_id) if ledger and incremental else {},
            last_success=last.finished if last else None,
            today=datetime.now(UTC).date(),
        )
        verb = "would run" if plan.action == "run" else "up to date"
        w(f"{verb:<10} {aoi.aoi_id}: {plan.reason}\n")
        if plan.action == "run":
            for key in sorted(input_fingerprints(plan.aoi, root=root)):
                w(f"             input {key}\n")
    for failure in failures:
        w(f"{'would fail':<10} {failure.name}: {failure.message}\n")
    return 1 if failures else 0


def _terminate(signum: int, frame: object) -> None:
    # systemd stops a unit with SIGTERM: unwind like Ctrl-C so the ledger records it
    raise KeyboardInterrupt(f"signal {signum}")


def _run(args: argparse.Namespace) -> int:

    if not args.all and not args.aoi:
        raise ConfigError("Say which AOIs to run: --aoi ID (repeatable) or --all.")
    settings = settings_from_args(args)
    loaded = _select_aois(args, settings)
    period = parse_period(args.period) if args.period else None
    # --force alone recomputes: neither the incremental check nor the done-run skip applies
    incremental = period is None and not getattr(args, "full", False) and not args.force
    out_dir = Path(settings.out_dir)
    if args.dry_run:
        return _dry_run(loaded.aois, settings, period, incremental=incremental, failures=loaded.failures)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)
    results = run(
        loaded.aois,
        settings=settings,
        period=period,
        out_dir=out_dir,
        incremental=incremental,
        force=args.force,
        progress=args.progress,
        load_failures=loaded.failures,
    )
    print_summary(results, out_dir)
    return 1 if any(r.status == "failed" for r in results) else 0


EXIT_CODES = """exit codes:
  0  every AOI ok, without usable data, or already up to date
  1  some AOIs failed (the others were still done; see `asm-monitor runs show RUN_ID`)
  2  usage or configuration error (nothing was run)
  3  another run holds the lock (state file + .lock); nothing was run
  130  interrupted (Ctrl-C, or SIGTERM from systemd); the next run resumes
"""


def _add_run_options(p: argparse.ArgumentParser, *, default_out: str | None) -> None:
    p.add_argument("--out", type=Path, default=default_out, help="output folder (one subfolder per AOI)")
    p.add_argument(
        "--country",
        action="append",
        metavar="NAME",
        help="only the chosen AOIs in this country, as the AOI files name it (repeatable, "
        "case-insensitive), e.g. --all --country Peru",
    )
    p.add_argument("--lang", choices=LANGUAGES, help="language of maps and alerts")
    p.add_argument(
        "--state-db",
        type=Path,
        help="SQLite run ledger and state (default OUT/asm-monitor.sqlite, $ASM_STATE_DB); "
        "its .lock file stops two runs at once",
    )
    p.add_argument(
        "--scheduler",
        metavar="SCHEDULER",
        help="'local' (LocalCluster sized to the machine, default), Dask's in-process "
        "'threads', 'synchronous' (one thread, for debugging) or 'processes' (a process pool), "
        "or the address of a running Dask scheduler tcp://HOST:PORT (scenes must be on storage "
        "every worker sees)",
    )
    p.add_argument("--workers", type=int, help="LocalCluster worker processes (default: one per core)")
    p.add_argument("--threads-per-worker", type=int, help="threads per LocalCluster worker (default 1)")
    p.add_argument("--memory-limit", help="memory limit per LocalCluster worker, e.g. 4GiB (default auto)")
    p.add_argument(
        "--lock-wait",
        type=float,
        dest="lock_wait_s",
        metavar="SECONDS",
        help="wait this long for another run's lock before exiting 3 (default 0)",
    )
    p.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar over AOIs on stderr (default: only when stderr is a terminal)",
    )


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``run`` and ``demo``."""
    p = sub.add_parser(
        "run",
        help="run the pipeline for some or all AOIs (nightly: only what is new)",
        description="Ingest, detect, comply and report for the chosen AOIs, one after the other on "
        "one Dask cluster, under a lock, recording every AOI in the run ledger. Without --period "
        "the run is incremental: per AOI only scenes not processed by a successful earlier run "
        "are ingested, and an AOI with nothing new is reported up to date. A rerun of an "
        "identical AOI run (same inputs, settings, code) is skipped unless --force; outputs are "
        "written atomically, so after a crash or kill the same command resumes.",
        epilog=EXIT_CODES + "\nexamples:\n  asm-monitor run --all                      # nightly, from cron\n"
        "  asm-monitor run --aoi trombetas --period 2025Q2 --force\n"
        "  asm-monitor run --all --scheduler tcp://10.0.0.5:8786\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sel = p.add_mutually_exclusive_group()
    sel.add_argument("--aoi", action="append", metavar="ID", help="AOI id or file (repeatable)")
    sel.add_argument("--all", action="store_true", help="every AOI in the AOI folder")
    p.add_argument(
        "--period",
        help="YYYY, YYYYQn, YYYY-MM, YYYY-MM-DD or START/END (default: since each AOI's last "
        "successful run = nightly incremental)",
    )
    p.add_argument(
        "--full",
        action="store_true",
        help="not incremental: process everything available (or all of --period) instead of only "
        "inputs the ledger has not seen; an AOI whose identical run (same inputs, settings, code) "
        "already finished is still skipped unless --force",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="recompute even when nothing is new or the identical run already finished: "
        "processes everything available (or all of --period), implies --full",
    )
    p.add_argument("--dry-run", action="store_true", help="list what would be processed and stop")
    _add_run_options(p, default_out=None)
    p.set_defaults(func=_run)

    d = sub.add_parser(
        "demo",
        help="run every AOI in aoi/ on the bundled real sample data",
        description="Run the whole pipeline on the real sample data in ../shared/data "
        "(override with ASM_SAMPLE_DATA) for every AOI in aoi/, and write map, flags, "
        "detections, alerts and run summary per AOI.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_run_options(d, default_out="demo-out")
    # the demo: every AOI in Brazil (the five demo AOIs, FLOTA do Amapá, TI Uaçá and the 39
    # Brazilian territories of the basin collection) in about a minute; `run --all` is the basin
    d.set_defaults(func=_run, aoi=None, all=True, period=None, dry_run=False, full=True, force=True)
    d.set_defaults(country=d.get_default("country") or ["Brazil"])
