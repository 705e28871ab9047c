"""``asm-monitor aoi list | validate PATH``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipeline.cli.args import settings_from_args
from pipeline.ingest.aoi import list_aoi_files, load_aoi_entries, load_aoi_file, load_aois


def _list(args: argparse.Namespace) -> int:

    settings = settings_from_args(args)
    loaded = load_aois(list_aoi_files(settings.aoi_dir), settings=settings)
    for aoi in loaded.aois:
        inputs = ", ".join(sorted(aoi.inputs)) or "-"
        where = f"collection {aoi.collection}" if aoi.collection else Path(aoi.source_path or "").name
        sys.stdout.write(
            f"{aoi.aoi_id:<16} {aoi.area_km2:>12,.1f} km²  {aoi.country:<14.14} {aoi.protection or '-':<15} "
            f"{aoi.designation:<40.40} {aoi.utm_crs.to_string():<11} inputs: {inputs}  ({where})\n"
        )
    for failure in loaded.failures:
        sys.stdout.write(f"{failure.name:<16} INVALID  {failure.message}\n")
    collections = {a.collection for a in loaded.aois if a.collection}
    sys.stdout.write(
        f"{len(loaded.aois)} AOIs ({len(collections)} collections), {len(loaded.failures)} invalid\n"
    )
    return 1 if loaded.failures else 0


def _validate(args: argparse.Namespace) -> int:

    settings = settings_from_args(args)
    found, failed = load_aoi_entries(Path(args.path), settings=settings)
    if len(found) + len(failed) != 1 or failed or found[0].collection:  # a collection
        for failure in failed:
            sys.stdout.write(f"{failure.name}: INVALID  {failure.message}\n")
        sys.stdout.write(f"{args.path}: collection of {len(found)} valid AOIs, {len(failed)} invalid\n")
        return 1 if failed else 0
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
