"""``asm-monitor aoi list | validate PATH``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipeline.cli.args import settings_from_args
from pipeline.core.errors import PipelineError
from pipeline.ingest.aoi import list_aoi_files, load_aoi


def _list(args: argparse.Namespace) -> int:

    settings = settings_from_args(args)
    failed = 0
    for path in list_aoi_files(settings.aoi_dir):
        try:
            aoi = load_aoi(path, sample_data=settings.sample_data, max_km2=settings.max_aoi_km2)
        except PipelineError as exc:
            failed += 1
            sys.stdout.write(f"{path.stem:<14} INVALID  {exc}\n")
            continue
        inputs = ", ".join(sorted(aoi.inputs)) or "-"
        sys.stdout.write(
            f"{aoi.aoi_id:<14} {aoi.area_km2:>12,.1f} km²  {aoi.designation:<40} "
            f"{aoi.utm_crs.to_string():<11} "
            f"inputs: {inputs}\n"
        )
    return 1 if failed else 0


def _validate(args: argparse.Namespace) -> int:

    settings = settings_from_args(args)
    aoi = load_aoi(
        Path(args.path),
        sample_data=settings.sample_data,
        repair=args.repair,
        max_km2=settings.max_aoi_km2,
    )
    sys.stdout.write(
        f"{aoi.aoi_id}: valid; {aoi.area_km2:,.1f} km², UTM {aoi.utm_crs.to_string()}, "
        f"bounds {tuple(round(b, 4) for b in aoi.geometry.bounds)}\n"
    )
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``aoi`` command group."""
    p = sub.add_parser("aoi", help="list and validate AOI definitions", description="List and validate AOIs.")
    aoi_sub = p.add_subparsers(dest="aoi_command", metavar="ACTION", required=True)
    lst = aoi_sub.add_parser("list", help="list AOIs in the AOI folder with area, UTM zone and inputs")
    lst.set_defaults(func=_list)
    val = aoi_sub.add_parser("validate", help="validate one AOI file (geometry, CRS, id, size)")
    val.add_argument("path", type=Path, help="AOI GeoJSON file")
    val.add_argument("--repair", action="store_true", help="repair invalid geometry with make_valid")
    val.set_defaults(func=_validate)
