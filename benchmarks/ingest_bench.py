"""Read a full Sentinel-2 tile (10980 x 10980 px, 4 bands, uint16, DEFLATE, 512 px tiled
COG, generated here) through LocalFolderSource vs a plain ``rasterio.read()``.

Each reader runs in its own subprocess so its peak RSS is its own. Figures printed:
wall time, Mpx/s (pixels x bands per second) and peak RSS.

- ``rasterio.read()``: the whole file into one uint16 array (what a naive loader does).
- ``LocalFolderSource -> .compute()``: the lazy cube (float32 reflectance, NaN nodata)
  materialised whole with the threaded scheduler.
- ``LocalFolderSource -> per-band mean``: the same graph reduced chunk by chunk (what the
  pipeline does: it never needs the whole tile in memory).

Usage: ``python benchmarks/ingest_bench.py [--size 10980] [--keep DIR]``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
from rasterio.shutil import copy as rio_copy
from rasterio.transform import from_origin
from rasterio.windows import Window

BANDS = ("B02", "B04", "B08", "B11")
ORIGIN = (399960.0, 9900040.0)  # a real Sentinel-2 tile origin (T21MXS-like), UTM 21S


def make_cog(folder: Path, size: int) -> Path:
    """Forest-like reflectance with noise (so DEFLATE works as on real data), 512 px COG."""
    final = folder / "S2X_T21MXS_20200105.tif"
    if final.exists():
        return final
    tmp = folder / "strips.tif"
    profile = {
        "driver": "GTiff",
        "width": size,
        "height": size,
        "count": len(BANDS),
        "dtype": "uint16",
        "crs": "EPSG:32721",
        "transform": from_origin(*ORIGIN, 10.0, 10.0),
        "tiled": True,
        "blockxsize": 512,
        "blockysize": 512,
        "nodata": 0,
    }
    base = np.array([1300, 1300, 4500, 2500], dtype=np.int32)  # DN with +1000 L2A offset
    rng = np.random.default_rng(0)
    with rasterio.open(tmp, "w", **profile) as dst:
        for r0 in range(0, size, 512):
            h = min(512, size - r0)
            noise = rng.normal(0, 60, (len(BANDS), h, size)).astype(np.int32)
            dst.write(
                (base[:, None, None] + noise).clip(1, 65535).astype(np.uint16), window=Window(0, r0, size, h)
            )
        dst.descriptions = BANDS
    rio_copy(tmp, final, driver="COG", compress="DEFLATE", blocksize=512, overviews="NONE", num_threads="2")
    tmp.unlink()
    return final


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def phase(name: str, path: Path) -> dict[str, float]:
    """Run one reader in this process; return seconds, Mpx/s and peak RSS (MB)."""
    with rasterio.open(path) as src:
        px = src.width * src.height * src.count
    if name != "rasterio":  # imports are not reading: keep them out of the clock
        import dask
        import geopandas  # noqa: F401

        import pipeline.ingest.scenes  # noqa: F401
    t0 = time.perf_counter()
    if name == "rasterio":
        with rasterio.open(path) as src:
            arr = src.read()
        check = float(arr[0, ::997, ::997].mean())
    else:
        import dask
        import geopandas as gpd
        from shapely.geometry import box

        from pipeline.core.records import Aoi
        from pipeline.ingest.index import index_folder
        from pipeline.ingest.scenes import LocalFolderSource

        with rasterio.open(path) as src:
            b = src.bounds
        # the AOI is the tile shrunk by 5 m so its UTM grid is exactly the file's grid
        geom = gpd.GeoSeries([box(b.left + 5, b.bottom + 5, b.right - 5, b.top - 5)], crs=32721).to_crs(4326)
        aoi = Aoi(aoi_id="tile", name="tile", designation="bench", country="BR", geometry=geom.iloc[0])
        cube = LocalFolderSource(index_folder(path.parent)).load(aoi, None, bands=list(BANDS), chunks=2048)
        px = cube.sizes["x"] * cube.sizes["y"] * len(BANDS)
        with dask.config.set(scheduler="threads", num_workers=os.cpu_count() or 2):
            if name == "local-compute":
                out = cube.compute()
                check = float(out["B02"].values[0, ::997, ::997].mean())
            else:
                means = dask.compute(*[cube[b].mean() for b in BANDS])
                check = float(means[0])
    dt = time.perf_counter() - t0
    return {"seconds": dt, "mpx_s": px / dt / 1e6, "peak_rss_mb": _peak_rss_mb(), "check": check}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=10980)
    ap.add_argument("--keep", type=Path, help="folder to keep the generated COG in (reused if present)")
    ap.add_argument("--phase", help=argparse.SUPPRESS)
    ap.add_argument("--path", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.phase:
        print(json.dumps(phase(args.phase, args.path)))
        return 0
    with tempfile.TemporaryDirectory(prefix="ingest-bench-") as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        cog = make_cog(folder, args.size)
        print(
            f"COG {args.size} x {args.size} x {len(BANDS)} uint16 DEFLATE 512 px: "
            f"{cog.stat().st_size / 1e6:,.0f} MB on disk, made in {time.perf_counter() - t0:.1f} s"
        )
        print(f"machine: {os.cpu_count()} cores; each reader in its own process")
        print(f"{'reader':<34} {'seconds':>8} {'Mpx/s':>8} {'peak RSS MB':>12}")
        for name, label in (
            ("rasterio", "rasterio.read() (uint16)"),
            ("local-compute", "LocalFolderSource .compute() (f32)"),
            ("local-reduce", "LocalFolderSource per-band mean"),
        ):
            run = subprocess.run(
                [sys.executable, __file__, "--phase", name, "--path", str(cog)],
                capture_output=True,
                text=True,
                check=True,
            )
            r = json.loads(run.stdout.strip().splitlines()[-1])
            print(f"{label:<34} {r['seconds']:>8.1f} {r['mpx_s']:>8.1f} {r['peak_rss_mb']:>12,.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
