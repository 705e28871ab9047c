"""(c) Growth: one AOI of 1, 4 and 16 sub-tiles; time per Mpx should stay flat. (d) km^2 per CPU-hour.

Sub-tiles are 1024 x 1024 px (10.5 km^2) of a synthetic 4096 x 4096 px scene; each AOI is a
square of 1, 2 x 2 or 4 x 4 of them, run with ``pipeline.ops.run.run`` on the in-process
threaded scheduler (the machine's cores).

Usage: ``python benchmarks/growth_bench.py [SUBTILE_PX] [--scheduler threads|local]``.
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
    p.add_argument("subtile", nargs="?", type=int, default=int(os.environ.get("ASM_BENCH_SUBTILE", 1024)))
    p.add_argument("--scheduler", default="threads")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    sub = args.subtile
    rows = []
    with tempfile.TemporaryDirectory(prefix="asm-growth-") as tmp:
        work = Path(os.environ.get("ASM_BENCH_DIR") or tmp)
        work.mkdir(parents=True, exist_ok=True)
        scene = write_scene(work / f"synthetic_{4 * sub}.tif", 4 * sub)
        # warm-up (imports, first GDAL opens, lazy-compiled kernels), not measured
        warm = aoi_over(scene, aoi_id="warmup", px=(0, 0, sub // 2, sub // 2))
        run(
            [warm],
            settings=settings_for(work / "warm", scheduler=args.scheduler),
            period=None,
            out_dir=work / "warm" / "out",
            force=True,
            progress=False,
        )
        for n in (1, 2, 4):
            aoi = aoi_over(scene, aoi_id=f"tiles{n * n}", px=(0, 0, n * sub, n * sub))
            settings = settings_for(work / f"g{n}", scheduler=args.scheduler)
            c0 = cpu_seconds()
            with Timer() as t:
                [res] = run(
                    [aoi],
                    settings=settings,
                    period=None,
                    out_dir=settings.out_dir,
                    force=True,
                    progress=False,
                )
            if res.status != "ok":
                print(f"{aoi.aoi_id} {res.status}: {res.error}", file=sys.stderr)
                return 1
            mpx = (n * sub) ** 2 / 1e6
            rows.append((n * n, mpx, t.s, res.timings_s, cpu_seconds() - c0, res.peak_rss_mib))
            print(f"{n * n:>2} sub-tiles: {t.s:.1f} s, {t.s / mpx:.2f} s/Mpx", flush=True)
    lines = [
        f"Sub-tile {sub} x {sub} px ({sub * sub * PIXEL_M**2 / 1e6:.1f} km^2); scheduler `{args.scheduler}`.",
        "",
        "| sub-tiles | Mpx | wall s | s per Mpx | detect s/Mpx | CPU s | km^2 per CPU-hour | peak RSS MiB |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for k, mpx, wall, timings, cpu, peak in rows:
        km2 = mpx * PIXEL_M**2
        lines.append(
            f"| {k} | {mpx:.1f} | {wall:.1f} | {wall / mpx:.2f} | {timings.get('detect', 0) / mpx:.2f} "
            f"| {cpu:.1f} | {km2 / (cpu / 3600):,.0f} | {peak:,.0f} |"
        )
    first, last = rows[0][2] / rows[0][1], rows[-1][2] / rows[-1][1]
    lines += [
        "",
        f"Time per Mpx from 1 to 16 sub-tiles: {first:.2f} -> {last:.2f} s/Mpx ({last / first:.2f}x).",
    ]
    append_results(f"growth_bench: 1 / 4 / 16 sub-tiles of {sub} px", lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
