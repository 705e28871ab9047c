"""``asm-monitor aoi list | validate PATH``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipeline.cli.args import settings_from_args
from pipeline.ingest.aoi import list_aoi_files, load_aoi_file, load_aois


def _list(args: argparse.Namespace) -> int:

    settings = settings_from_args(args)
    loaded = load_aois(list_aoi_files(settings.aoi_dir), settings=settings)
    for aoi in loaded.aois:
        inputs = ", ".join(sorted(aoi.inputs)) or "-"
        sys.stdout.write(
            f"{aoi.aoi_id:<14} {aoi.area_km2:>12,.1f} km²  {aoi.designation:<40} "
            f"{aoi.utm_crs.to_string():<11} "
            f"inputs: {inputs}\n"
        )
    for failure in loaded.failures:
        sys.stdout.write(f"{failure.path.stem:<14} INVALID  {failure.message}\n")
    return 1 if loaded.failures else 0


def _validate(args: argparse.Namespace) -> int:

    settings = settings_from_args(args)
    aoi = load_aoi_file(Path(args.path), settings=settings, repair=args.repair)
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
