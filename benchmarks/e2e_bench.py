"""(a) End to end on a full synthetic Sentinel-2 tile, and (d) km^2 per CPU-hour.

Writes a 10980 x 10980 px, 10 m scene (five bands: the detector also needs B11; tiled
512 x 512, DEFLATE) into a temp folder, then in this one process:

1. read-only: the AOI's lazy cube, every band read, scaled and summed (the floor any run pays);
2. the whole run: ``pipeline.ops.run.run`` on one AOI covering the tile (ingest, indices,
   classification, vectorisation, compliance, exports, map, alerts, ledger).

Prints wall time, Mpx/s, peak RSS (this process and children, sampled every 0.2 s) and
CPU seconds of each, then appends them to RESULTS.md. Targets: whole run within 2x of
read-only, peak <= 2 GiB.

Usage: ``python benchmarks/e2e_bench.py [SIZE_PX] [--scheduler threads|local]``
(``ASM_BENCH_SIZE`` also sets the size; ``ASM_BENCH_DIR`` keeps the scene between runs).
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
import tempfile
from pathlib import Path

import dask
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import BANDS, PIXEL_M, Timer, aoi_over, append_results, cpu_seconds, settings_for, write_scene

from pipeline.ops.cluster import PeakMemory, dask_client
from pipeline.ops.imagery import open_cube
from pipeline.ops.run import run

# Block-wise detection keeps a uint8 code raster, its int32 labels and the values inside the
# masks (~0.01 GiB per Mpx measured at 10980 px; was 0.09 when every product was computed).
GIB_PER_MPX = 0.02


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("size", nargs="?", type=int, default=int(os.environ.get("ASM_BENCH_SIZE", 10980)))
    p.add_argument("--scheduler", default="threads")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    size = args.size
    # never let a benchmark push the machine into swap/OOM
    avail = psutil.virtual_memory().available / 2**30
    need = 0.4 + GIB_PER_MPX * size * size / 1e6
    if need > 0.7 * avail:
        fit = int(math.sqrt(max(0.7 * avail - 0.4, 0.1) / GIB_PER_MPX * 1e6)) // 1024 * 1024
        print(
            f"NOTE: {size} px would need ~{need:.1f} GiB, {avail:.1f} GiB available: running {fit} px "
            "instead (pass a size to override the check only by lowering it)",
            flush=True,
        )
        size = fit
    keep = os.environ.get("ASM_BENCH_DIR")
    with tempfile.TemporaryDirectory(prefix="asm-e2e-") as tmp:
        work = Path(keep) if keep else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        with Timer() as t_synth:
            scene = write_scene(work / f"synthetic_{size}.tif", size)
        print(
            f"scene {scene.name}: {size} x {size} px x {len(BANDS)} bands, "
            f"{scene.stat().st_size / 2**20:,.0f} MiB on disk, written in {t_synth.s:.1f} s",
            flush=True,
        )
        aoi = aoi_over(scene, aoi_id="tile", px=(0, 0, size, size))
        settings = settings_for(work, scheduler=args.scheduler)
        # warm-up on a corner (imports, first GDAL open, lazily compiled kernels): not measured
        warm = aoi_over(scene, aoi_id="warmup", px=(0, 0, 512, 512))
        run([warm], settings=settings, period=None, out_dir=work / "warm", force=True, progress=False)
        with PeakMemory() as mem, dask_client(settings.run):
            cube = open_cube(aoi, settings=settings)
            px = int(cube.sizes["y"] * cube.sizes["x"])
            mem.reset()
            c0 = cpu_seconds()
            with Timer() as t_read:
                sums = dask.compute(*[cube[b].sum() for b in BANDS])
            read_cpu, read_peak = cpu_seconds() - c0, mem.peak_mib
            assert all(s == s for s in sums)  # not NaN: the data was really read
        del cube
        mem2 = PeakMemory()
        with mem2:
            mem2.reset()
            c0 = cpu_seconds()
            with Timer() as t_run:
                [res] = run(
                    [aoi],
                    settings=settings,
                    period=None,
                    out_dir=settings.out_dir,
                    force=True,
                    progress=False,
                )
            run_cpu, run_peak = cpu_seconds() - c0, mem2.peak_mib
        if res.status != "ok":
            print(f"run failed: {res.error}", file=sys.stderr)
            return 1
    km2 = px * PIXEL_M**2 / 1e6
    mpx = px / 1e6
    lines = [
        f"Synthetic tile {size} x {size} px ({mpx:,.1f} Mpx, {km2:,.0f} km^2), {len(BANDS)} bands "
        f"uint16 tiled 512 DEFLATE; scheduler `{args.scheduler}`; AOI = whole tile.",
        "",
        "| phase | wall s | Mpx/s | peak RSS MiB | CPU s | km^2 per CPU-hour |",
        "|---|---:|---:|---:|---:|---:|",
        f"| read-only (all bands read + scaled) | {t_read.s:.1f} | {mpx / t_read.s:.1f} | {read_peak:,.0f} "
        f"| {read_cpu:.1f} | {km2 / (read_cpu / 3600):,.0f} |",
        f"| whole run (ingest..report) | {t_run.s:.1f} | {mpx / t_run.s:.1f} | {run_peak:,.0f} "
        f"| {run_cpu:.1f} | {km2 / (run_cpu / 3600):,.0f} |",
        "",
        f"Whole run / read-only = {t_run.s / t_read.s:.2f}x (target <= 2x: "
        f"{'met' if t_run.s <= 2 * t_read.s else 'MISSED'}); "
        f"peak {run_peak / 1024:.2f} GiB (target <= 2 GiB: "
        f"{'met' if run_peak <= 2048 else 'MISSED'}). Stage timings (s): {res.timings_s}; "
        f"{res.detections} detections.",
    ]
    append_results(f"e2e_bench: full run vs read-only, {size} px", lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
