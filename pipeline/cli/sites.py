"""``asm-monitor sites validate PATH --format sigmine``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipeline.cli.args import settings_from_args
from pipeline.comply.registry import to_mine_sites
from pipeline.ingest.registry_format import AUTO, read_registry_file
from pipeline.ingest.vectors import format_spec


def _validate(args: argparse.Namespace) -> int:
    from pipeline.ingest.aoi import list_aoi_files, load_aoi_file

    settings = settings_from_args(args)
    aois = None
    if args.aoi:
        import geopandas as gpd
        import pandas as pd

        loaded = [
            load_aoi_file(p, settings=settings).to_frame()
            for p in (list_aoi_files(settings.aoi_dir) if args.aoi == "all" else [Path(args.aoi)])
        ]
        aois = gpd.GeoDataFrame(pd.concat(loaded, ignore_index=True), crs=4326)
    raw, fmt = read_registry_file(Path(args.path), fmt=args.format, encoding=args.encoding)
    _, report = to_mine_sites(raw, spec=format_spec("registry", fmt), aois=aois)
    if args.format == AUTO:
        sys.stdout.write(f"format {fmt} (recognised from its columns; --format to choose)\n")
    sys.stdout.write("\n".join(report.lines(show_merged=args.merged)) + "\n")
    return 1 if report.rejected else 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``sites`` command group."""
    p = sub.add_parser("sites", help="mine-site registry tools", description="Mine-site registry tools.")
    s = p.add_subparsers(dest="sites_command", metavar="ACTION", required=True)
    val = s.add_parser(
        "validate",
        help="read a registry and report every row it cannot use",
        description="Read a registry file; print rows read, sites, merges and every rejected row with its "
        "row number and reason. Exit 1 when any row is rejected.",
    )
    val.add_argument("path", type=Path, help="registry file (GeoJSON, GPKG, SHP, GeoParquet, CSV lon/lat)")
    val.add_argument(
        "--format",
        default=AUTO,
        help="column mapping in formats.toml: native, sigmine, or auto (default: recognised from "
        "the file's columns)",
    )
    val.add_argument(
        "--aoi", help="also reject rows outside this AOI file ('all' = every AOI in the AOI folder)"
    )
    val.add_argument("--merged", action="store_true", help="also list every multi-part title and its rows")
    val.add_argument(
        "--encoding", default="utf-8", help="text encoding of a CSV / GeoJSON registry (default utf-8)"
    )
    val.set_defaults(func=_validate)
