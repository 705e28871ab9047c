"""``asm-monitor ingest --aoi PATH --period P --source local|sentinelhub``: what would be read.

Lists the scenes found for the AOI and period, the grid they land on and the lazy cube's
shape. Nothing is written but the source's own download cache; pixel values are read only
with ``--valid`` (clear-pixel fraction per scene).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from pipeline.cli.args import settings_from_args
from pipeline.core.config import Settings
from pipeline.core.errors import ConfigError, NoDataError
from pipeline.core.periods import parse_period
from pipeline.core.records import Aoi
from pipeline.ingest.aoi import load_aoi_file, utm_zones
from pipeline.ingest.paths import resolve_input, sample_data_dir
from pipeline.ingest.scenes import SceneSource, aoi_footprint

DEFAULT_BANDS = "B02,B03,B04,B08,B11"


def make_source(name: str, aoi: Aoi, *, settings: Settings, scene_folder: Path | None = None) -> SceneSource:
    """The scene source ``name`` (local, sentinelhub) for ``aoi`` configured from ``settings``."""
    if name == "sentinelhub":
        from pipeline.ingest.sentinelhub import SentinelHubSource

        return SentinelHubSource(settings.ingest)
    if name != "local":
        raise ConfigError(f"Unknown source {name!r}. Use 'local' or 'sentinelhub'.")
    from pipeline.ingest.index import index_folder
    from pipeline.ingest.scenes import LocalFolderSource, SceneSpec

    root = sample_data_dir(settings.sample_data)
    folder = scene_folder or (
        resolve_input(settings.ingest.scene_folder, root=root) if settings.ingest.scene_folder else None
    )
    if folder is not None:
        return LocalFolderSource(index_folder(folder), on_error="skip")
    if aoi.inputs.get("scenes"):
        return LocalFolderSource([SceneSpec.from_mapping(s, root=root) for s in aoi.inputs["scenes"]])
    raise NoDataError(
        f"AOI '{aoi.aoi_id}' lists no scenes and no scene folder is set. Pass --scene-folder "
        "or set ingest.scene_folder."
    )


def describe(cube: xr.Dataset) -> str:
    """Human summary of a lazy cube (reads no pixels)."""
    first = cube[next(iter(cube.data_vars))]
    lines = [
        f"grid: {cube.rio.crs.to_string()}  {cube.sizes['x']} x {cube.sizes['y']} px  "
        f"{abs(cube.rio.resolution()[0]):g} m  bounds {tuple(round(b, 1) for b in cube.rio.bounds())}",
        f"bands: {', '.join(map(str, cube.data_vars))}  chunks (y, x): "
        f"{first.chunks[1][0] if first.chunks else '-'} x {first.chunks[2][0] if first.chunks else '-'}  "
        f"lazy size {sum(v.nbytes for v in cube.data_vars.values()) / 1e6:,.1f} MB",
        f"scenes: {cube.sizes['time']}",
    ]
    for i in range(cube.sizes["time"]):
        t = cube["time"].values[i]
        when = "undated" if pd.isna(t) else pd.Timestamp(t).isoformat()
        lines.append(
            f"  {cube['scene_id'].values[i]:<36} {when:<20} "
            f"scale {float(cube['scale'].values[i]):g} offset {float(cube['offset'].values[i]):g}"
        )
    return "\n".join(lines) + "\n"


def _ingest(args: argparse.Namespace) -> int:

    settings = settings_from_args(args)
    if args.cache_dir:
        settings = settings.with_overrides({"ingest": {"cache_dir": str(args.cache_dir)}})
    aoi = load_aoi_file(args.aoi, settings=settings)
    period = parse_period(args.period) if args.period else None
    bands = [b.strip() for b in args.bands.split(",") if b.strip()]
    source = make_source(args.source, aoi, settings=settings, scene_folder=args.scene_folder)
    cube = source.load(aoi, period, bands=bands, resolution=args.resolution)
    zones = utm_zones(aoi.geometry)
    sys.stdout.write(
        f"AOI {aoi.aoi_id} ({aoi.name}); period {period or 'all'}; source {args.source}; "
        f"UTM zones touched {zones}\n"
    )
    sys.stdout.write(describe(cube))
    if args.valid:
        from pipeline.detect.clouds import valid_fraction, valid_mask

        footprint = aoi_footprint(aoi, cube)
        frac = valid_fraction(valid_mask(cube, bands=bands), footprint=footprint).values
        for sid, f in zip(cube["scene_id"].values, np.atleast_1d(frac), strict=True):
            sys.stdout.write(f"  valid {sid}: {100 * float(f):.1f} %\n")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``ingest`` command."""
    p = sub.add_parser(
        "ingest",
        help="list the scenes a source finds for an AOI and period (writes only its cache)",
        description="Find and describe the imagery for one AOI and period; reads no pixels unless --valid.",
    )
    p.add_argument("--aoi", type=Path, required=True, help="AOI GeoJSON file, e.g. aoi/trombetas.geojson")
    p.add_argument("--period", help="YYYY, YYYYQn, YYYY-MM or START/END, e.g. 2020-01/2020-12")
    p.add_argument("--source", choices=["local", "sentinelhub"], default="local", help="scene source")
    p.add_argument("--bands", default=DEFAULT_BANDS, help=f"comma-separated bands (default {DEFAULT_BANDS})")
    p.add_argument("--resolution", type=float, help="pixel size in m (default: native, else 10)")
    p.add_argument("--scene-folder", type=Path, help="local folder to index (file names or STAC items)")
    p.add_argument("--cache-dir", type=Path, help="download cache (default ingest.cache_dir)")
    p.add_argument(
        "--valid",
        action="store_true",
        help="also read pixels and print each scene's fraction of valid (data, not cloud-masked) AOI pixels",
    )
    p.set_defaults(func=_ingest)
