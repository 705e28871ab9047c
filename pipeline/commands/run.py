"""``asm-monitor run`` and ``asm-monitor demo``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipeline.errors import ConfigError
from pipeline.ingest.aoi import list_aoi_files, load_aoi
from pipeline.periods import parse_period
from pipeline.records import Aoi
from pipeline.run import AoiResult, run


def _select_aois(args: argparse.Namespace, aoi_dir: Path, sample_data: Path, max_km2: float) -> list[Aoi]:
    files = list_aoi_files(aoi_dir)
    if not files:
        raise ConfigError(f"No AOI files (*.geojson) in {aoi_dir}. Pass --aoi-dir or add AOIs.")
    if getattr(args, "aoi", None):
        wanted = set(args.aoi)
        chosen = [f for f in files if f.stem in wanted or str(f) in wanted]
        unknown = wanted - {f.stem for f in chosen} - {str(f) for f in chosen}
        if unknown:
            raise ConfigError(
                f"Unknown AOI {sorted(unknown)}. Known: {', '.join(f.stem for f in files)} "
                "(see `asm-monitor aoi list`)."
            )
        files = chosen
    return [load_aoi(f, sample_data=sample_data, max_km2=max_km2) for f in files]


def print_summary(results: list[AoiResult], out_dir: Path) -> None:
    """One screen: outputs per AOI, flags by rule and severity, hectares."""
    w = sys.stdout.write
    w(f"\nasm-monitor run summary  (outputs under {out_dir})\n")
    w("=" * 78 + "\n")
    for r in results:
        w(f"\n[{r.aoi_id}] status: {r.status}   run_id: {r.run_id or '-'}\n")
        if r.error:
            w(f"  error: {r.error}\n")
            continue
        w(f"  detections: {r.detections}  (mining footprint {r.detections_ha:,.1f} ha)\n")
        w(f"  flagged area: {r.flagged_ha:,.1f} ha   alerts queued: {r.alerts_queued}\n")
        w(
            "  flags by rule:     "
            + (", ".join(f"{k} {v}" for k, v in r.flags_by_rule.items()) or "none")
            + "\n"
        )
        w(
            "  flags by severity: "
            + (", ".join(f"{k} {v}" for k, v in r.flags_by_severity.items()) or "none")
            + "\n"
        )
        for name, path in r.outputs.items():
            w(f"    {name:<20} {path}\n")
    failed = [r.aoi_id for r in results if r.status == "failed"]
    w("\n" + ("all AOIs done" if not failed else f"FAILED: {', '.join(failed)}") + "\n")


def _run(args: argparse.Namespace) -> int:
    from pipeline.cli import settings_from_args

    if args.all and args.aoi:
        raise ConfigError("Give either --aoi or --all, not both.")
    settings = settings_from_args(args)
    aois = _select_aois(args, settings.aoi_dir, settings.sample_data, settings.max_aoi_km2)
    period = parse_period(args.period) if args.period else None
    out_dir = Path(settings.out_dir)
    if args.dry_run:
        for aoi in aois:
            sys.stdout.write(
                f"would run {aoi.aoi_id} for period {period or 'all'}: inputs {sorted(aoi.inputs)}\n"
            )
        return 0
    results = run(aois, settings=settings, period=period, out_dir=out_dir)
    print_summary(results, out_dir)
    return 1 if any(r.status == "failed" for r in results) else 0


def _add_run_options(p: argparse.ArgumentParser, *, default_out: str | None) -> None:
    p.add_argument("--out", type=Path, default=default_out, help="output folder (one subfolder per AOI)")
    p.add_argument("--lang", choices=["en", "es", "pt", "fr"], help="language of maps and alerts")
    p.add_argument(
        "--scheduler",
        help="'local' (LocalCluster, default), 'threads', 'synchronous', or a scheduler address tcp://HOST:PORT",
    )
    p.add_argument("--workers", type=int, help="LocalCluster worker processes (default: one per core)")
    p.add_argument("--threads-per-worker", type=int, help="threads per LocalCluster worker")
    p.add_argument("--memory-limit", help="memory limit per worker, e.g. 4GiB (default auto)")


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``run`` and ``demo``."""
    p = sub.add_parser(
        "run",
        help="run the pipeline for some or all AOIs",
        description="Ingest, detect, comply and report for the chosen AOIs. Exit 0 ok, 1 some AOIs "
        "failed (others still done), 2 usage/config error, 3 another run holds the lock.",
    )
    p.add_argument("--aoi", action="append", help="AOI id or file (repeatable); default all")
    p.add_argument("--all", action="store_true", help="every AOI in the AOI folder")
    p.add_argument("--period", help="YYYY, YYYYQn, YYYY-MM or START/END (default: everything available)")
    p.add_argument("--dry-run", action="store_true", help="list what would be processed and stop")
    _add_run_options(p, default_out=None)
    p.set_defaults(func=_run)

    d = sub.add_parser(
        "demo",
        help="run every AOI in aoi/ on the bundled real sample data",
        description="Run the whole pipeline on the real sample data in ../shared/data "
        "(override with ASM_SAMPLE_DATA) for every AOI in aoi/, and write map, flags, "
        "detections, alerts and run summary per AOI.",
    )
    _add_run_options(d, default_out="demo-out")
    d.set_defaults(func=_run, aoi=None, all=True, period=None, dry_run=False)
