"""(b) Scaling: the same 4 AOIs on a LocalCluster of 1 and of 2 single-threaded worker processes.

Four AOIs, one per quadrant of a synthetic 4096 x 4096 px scene (4.2 Mpx each), run with
``pipeline.ops.run.run`` (the nightly path: ledger, lock, one cluster for all AOIs). Prints
wall time with and without the cluster's start-up, and the speed-up. Target >= 1.7x.

Usage: ``python benchmarks/scaling_bench.py [SIZE_PX]`` (scene edge, default 4096).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import PIXEL_M, Timer, aoi_over, append_results, cpu_seconds, settings_for, write_scene

from pipeline.ops.run import run


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("size", nargs="?", type=int, default=int(os.environ.get("ASM_BENCH_SIZE", 4096)))
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    size, half = args.size, args.size // 2
    rows = []
    with tempfile.TemporaryDirectory(prefix="asm-scaling-") as tmp:
        work = Path(os.environ.get("ASM_BENCH_DIR") or tmp)
        work.mkdir(parents=True, exist_ok=True)
        scene = write_scene(work / f"synthetic_{size}.tif", size)
        quads = [(0, 0), (half, 0), (0, half), (half, half)]
        aois = [
            aoi_over(scene, aoi_id=f"q{i}", px=(c, r, c + half, r + half)) for i, (c, r) in enumerate(quads)
        ]
        for workers in (1, 2):
            settings = settings_for(
                work / f"w{workers}", scheduler="local", workers=workers, threads_per_worker=1
            )
            c0 = cpu_seconds()
            with Timer() as t:
                results = run(
                    aois, settings=settings, period=None, out_dir=settings.out_dir, force=True, progress=False
                )
            bad = [r for r in results if r.status != "ok"]
            if bad:
                print(f"AOI {bad[0].aoi_id} {bad[0].status}: {bad[0].error}", file=sys.stderr)
                return 1
            aoi_s = sum(r.timings_s["total"] for r in results)
            detect_s = sum(r.timings_s.get("detect", 0.0) for r in results)
            rows.append(
                (workers, t.s, aoi_s, detect_s, cpu_seconds() - c0, max(r.peak_rss_mib for r in results))
            )
            print(f"{workers} worker(s): {t.s:.1f} s wall, {aoi_s:.1f} s in AOIs", flush=True)
    mpx = 4 * half * half / 1e6
    lines = [
        f"4 AOIs of {half} x {half} px ({mpx:,.1f} Mpx, {mpx * PIXEL_M**2:,.0f} km^2 in all) on a "
        "LocalCluster of single-threaded worker processes.",
        "",
        "| workers | wall s (incl. cluster start) | s in AOIs | s in detect | Mpx/s (AOIs) | CPU s "
        "| peak RSS MiB |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for w, wall, aoi_s, det_s, cpu, peak in rows:
        lines.append(
            f"| {w} | {wall:.1f} | {aoi_s:.1f} | {det_s:.1f} | {mpx / aoi_s:.2f} | {cpu:.1f} | {peak:,.0f} |"
        )
    speed = rows[0][2] / rows[1][2]
    lines += [
        "",
        f"Speed-up with 2 workers: {speed:.2f}x on the AOI time, {rows[0][1] / rows[1][1]:.2f}x on wall time "
        f"(target >= 1.7x: {'met' if speed >= 1.7 else 'MISSED'}). Detect-only speed-up "
        f"{rows[0][3] / rows[1][3]:.2f}x.",
    ]
    append_results(f"scaling_bench: 1 vs 2 Dask workers, 4 AOIs of {half} px", lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
