"""The gold-mining change detector on a two-date Sentinel-2-sized tile built from real sites.

Builds (once, cached in ``--workdir``, default ``$ASM_BENCH_DIR`` or
``/tmp/asm-mining-bench``, like detect_bench's ``/tmp/asm-detect-bench``) a ``size`` x
``size`` px before / after pair of 6-band uint16 COGs (512 px tiles, DEFLATE, reflectance =
DN x 1e-4, nodata 0) by tiling the real 48 x 48 px site patches of
``imagery/gold_mining_patches/`` (t0 -> before, t1 -> after, each site at the same place in
both, sites shuffled and repeated to fill the tile), so the detector sees real spectra and
real mines. Then, each case in its own process (OMP_NUM_THREADS=1, GDAL_CACHEMAX=64) on the
same scheduler:

(a) read-only: both COGs opened lazily with rioxarray, scaled to reflectance, every band of
    both dates summed (the floor any detection pays);
(c) the detector: ``pipeline.detect.mining_change.mining_change`` on the same lazy inputs,
    ``mining.sum()`` and the mean ``score`` computed together.

Prints wall time, Mpx/s (pixels of one date), peak RSS of the process tree (psutil, every
0.2 s; with ``--scheduler local`` the workers count), CPU seconds, (c)/(a) and the mining
pixels found, and appends them to RESULTS.md (``ASM_BENCH_NO_RESULTS=1`` prints only).
Targets (issue): (c) within 2x of (a), peak <= 2 GiB; printed as met / MISSED, never asserted.

Scheduler: the threaded one, 2 threads, by default (a LocalCluster of 2 x 1 spent ~2.7x the
CPU on (c) here, moving overlap strips between workers, and adds ~0.5 GiB of worker RSS).
Chunk: 1024 by default, aligned to the 512 px blocks so (a) decodes each block once; the
detector regrids to multiples of its 24 px stride (1008) itself.

The default detector is trained (~30 s, not timed) into ``<workdir>/models`` via
``ASM_MODEL_CACHE``, so the benchmark never reads or writes the user's model cache.

Usage: ``python benchmarks/mining_bench.py [--size 10980] [--chunk 1024]
[--scheduler threads|local] [--workdir DIR] [--cases ac]`` (``--size 2048`` for a quick run).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import BLOCK, CRS, ORIGIN, PIXEL_M, append_results, cpu_seconds

REPO = Path(__file__).resolve().parents[1]
PATCHES = "imagery/gold_mining_patches"
S2_NAMES = ("B02", "B03", "B04", "B08", "B11", "B12")  # blue, green, red, nir, swir1, swir2
SCALE = 1e-4
PATCH = 48
STRIP = 1536  # rows written at a time: 3 blocks of 512 and 32 patches of 48
WORKERS = 2
CASES = {"a": "read-only (both dates read + scaled)", "c": "mining_change (score + mining)"}


def sample_data() -> Path:
    return Path(os.environ.get("ASM_SAMPLE_DATA") or REPO.parent / "shared" / "data")


def default_workdir() -> Path:
    return Path(os.environ.get("ASM_BENCH_DIR") or Path(tempfile.gettempdir()) / "asm-mining-bench")


# --- the synthetic tile ------------------------------------------------------------------


def read_sites(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """DN ``(site, date, band, 48, 48)`` uint16 (0 = nodata) of every site, and the labels."""
    from pipeline.ingest.site_patches import read_patch, read_site_index

    sites = read_site_index(folder)
    stack = np.zeros((len(sites), 2, len(S2_NAMES), PATCH, PATCH), dtype=np.uint16)
    for i, site in enumerate(sites):
        for d, path in enumerate((site.before, site.after)):
            refl = read_patch(path).data
            if refl.shape != (len(S2_NAMES), PATCH, PATCH):
                raise SystemExit(f"{path}: patch shape {refl.shape}, expected (6, {PATCH}, {PATCH})")
            dn = np.rint(np.nan_to_num(refl, nan=0.0) / SCALE)
            stack[i, d] = np.clip(dn, 0, 65_535).astype(np.uint16)
    labels = np.array([-1 if s.mining is None else s.mining for s in sites], dtype=np.int8)
    return stack, labels


def tile_paths(work: Path, size: int) -> tuple[Path, Path, Path]:
    stem = f"mining_{size}"
    return work / f"{stem}_t0.tif", work / f"{stem}_t1.tif", work / f"{stem}_layout.json"


def write_tiles(work: Path, size: int, *, seed: int = 7) -> tuple[Path, Path, dict[str, Any]]:
    """The before / after COGs of ``size`` px (cached: built only when missing) and a small
    record of what they hold (sites placed, how many labelled mining)."""
    import rasterio
    from rasterio.shutil import copy as rio_copy
    from rasterio.transform import from_origin
    from rasterio.windows import Window

    before, after, layout = tile_paths(work, size)
    if before.exists() and after.exists() and layout.exists():
        return before, after, json.loads(layout.read_text())
    stack, labels = read_sites(sample_data() / PATCHES)
    rng = np.random.default_rng(seed)
    per_side = -(-size // PATCH)
    slots = per_side * per_side
    # every site once per round, shuffled anew each round
    rounds = -(-slots // len(stack))
    grid = np.concatenate([rng.permutation(len(stack)) for _ in range(rounds)])[:slots]
    grid = grid.reshape(per_side, per_side)
    inside = grid[: size // PATCH, : size // PATCH]  # whole patches inside the tile
    profile = {
        "driver": "GTiff",
        "width": size,
        "height": size,
        "count": len(S2_NAMES),
        "dtype": "uint16",
        "crs": CRS,
        "transform": from_origin(*ORIGIN, PIXEL_M, PIXEL_M),
        "tiled": True,
        "blockxsize": BLOCK,
        "blockysize": BLOCK,
        "nodata": 0,
        "BIGTIFF": "IF_SAFER",
    }
    for d, final in enumerate((before, after)):
        tmp = final.with_suffix(".strips.tif")
        with rasterio.open(tmp, "w", **profile) as dst:
            dst.descriptions = S2_NAMES
            dst.scales = (SCALE,) * len(S2_NAMES)
            dst.update_tags(scale_factor=str(SCALE), add_offset="0")
            for top in range(0, size, STRIP):
                h = min(STRIP, size - top)
                rows = grid[top // PATCH : -(-(top + h) // PATCH)]  # (pr, pc) site ids
                # (pr, pc, band, 48, 48) -> (band, pr * 48, pc * 48), cropped to the tile
                block = stack[rows, d].transpose(2, 0, 3, 1, 4).reshape(len(S2_NAMES), len(rows) * PATCH, -1)
                dst.write(np.ascontiguousarray(block[:, :h, :size]), window=Window(0, top, size, h))
        part = final.with_suffix(".partial.tif")
        rio_copy(
            tmp,
            part,
            driver="COG",
            compress="DEFLATE",
            predictor="2",
            blocksize=BLOCK,
            overviews="NONE",
            num_threads="2",
            BIGTIFF="IF_SAFER",
        )
        tmp.unlink()
        part.rename(final)
    record = {
        "sites": len(stack),
        "patches_inside": int(inside.size),
        "mining_patches_inside": int((labels[inside] == 1).sum()),
        "seed": seed,
    }
    layout.write_text(json.dumps(record))
    return before, after, record


# --- the cases (child processes) -----------------------------------------------------------


def _to_reflectance(dn: np.ndarray) -> np.ndarray:
    out = dn.astype(np.float32)
    out *= np.float32(SCALE)
    out[dn == 0] = np.nan
    return out


def open_view(path: Path, chunk: int) -> Any:
    """One date as the detector's input: a Dataset of lazy float32 reflectance, one variable
    per band, all scaled from a single (band, y, x) read per chunk (a pixel-interleaved
    file decompresses each block once for all bands)."""
    import rioxarray
    import xarray as xr

    from pipeline.detect.window_features import BANDS

    arr = rioxarray.open_rasterio(path, chunks={"band": -1, "y": chunk, "x": chunk}, lock=False)
    names = list(arr.attrs.get("long_name") or S2_NAMES)
    refl = arr.data.map_blocks(_to_reflectance, dtype=np.float32)
    coords = {k: arr.coords[k] for k in ("y", "x", "spatial_ref") if k in arr.coords}
    return xr.Dataset(
        {b: (("y", "x"), refl[names.index(s2)]) for b, s2 in zip(BANDS, S2_NAMES, strict=True)},
        coords=coords,
    )


def case_read(before: Any, after: Any, detector: Any) -> dict[str, Any]:
    import dask

    sums = dask.compute(*[view[b].sum() for view in (before, after) for b in view.data_vars])
    return {"check": float(np.nansum([float(s) for s in sums]))}


def case_detect(before: Any, after: Any, detector: Any) -> dict[str, Any]:
    import dask

    from pipeline.detect.mining_change import mining_change

    out = mining_change(before, after, detector=detector)
    mining, score, valid = dask.compute(out["mining"].sum(), out["score"].mean(), out["valid"].sum())
    return {
        "mining_px": int(mining),
        "score_mean": float(score),
        "valid_px": int(valid),
        "detector_chunks": [int(out["score"].data.chunks[0][0]), int(out["score"].data.chunks[1][0])],
    }


def run_child(args: argparse.Namespace) -> None:
    import dask

    from pipeline.core.config import load_settings
    from pipeline.ops.cluster import PeakMemory
    from pipeline.ops.detector_model import mining_detector

    detector, sha = mining_detector(load_settings(None, cli={"sample_data": sample_data()}))
    before_path, after_path, _ = tile_paths(Path(args.workdir), args.size)
    fn = case_read if args.case == "a" else case_detect
    with PeakMemory() as mem:
        if args.scheduler == "local":
            from distributed import Client, LocalCluster

            cluster = LocalCluster(
                n_workers=WORKERS, threads_per_worker=1, processes=True, dashboard_address=None
            )
            client = Client(cluster)
            client.wait_for_workers(WORKERS)
        else:
            cluster = client = None
            dask.config.set(scheduler="threads", num_workers=WORKERS)
        mem.reset()
        c0 = cpu_seconds()
        t0 = time.perf_counter()
        before, after = open_view(before_path, args.chunk), open_view(after_path, args.chunk)
        out = fn(before, after, detector)
        out["seconds"] = time.perf_counter() - t0
        out["cpu_s"] = cpu_seconds() - c0
        out["peak_rss_mib"] = mem.peak_mib
        out["detector_sha"] = sha[:12]
        if client is not None:
            client.close()
            cluster.close()
    sys.stdout.write(json.dumps(out) + "\n")


# --- the parent ------------------------------------------------------------------------------


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=10980, help="tile edge in px (default 10980 = one S2 tile)")
    p.add_argument(
        "--chunk",
        type=int,
        default=1024,
        help="dask chunk edge in px (default 1024: 2 x 2 blocks of 512; the detector regrids to 1008)",
    )
    p.add_argument(
        "--scheduler",
        choices=("threads", "local"),
        default="threads",
        help="threads (default): 2 threads in the case's process; local: LocalCluster 2 workers x 1 thread",
    )
    p.add_argument("--workdir", type=Path, default=default_workdir(), help="where tiles and model are cached")
    p.add_argument("--cases", default="ac", help="which cases to run (default ac)")
    p.add_argument("--case", help=argparse.SUPPRESS)
    args = p.parse_args()
    os.environ["ASM_MODEL_CACHE"] = str(args.workdir / "models")  # never the user's model cache
    if args.case:
        run_child(args)
        return 0
    args.workdir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    before, after, layout = write_tiles(args.workdir, args.size)
    disk = (before.stat().st_size + after.stat().st_size) / 2**20
    print(
        f"tiles {before.name} + {after.name} in {args.workdir} ({args.size} px x 6 bands, "
        f"{disk:,.0f} MiB; ready in {time.perf_counter() - t0:.1f} s): {layout['patches_inside']:,} "
        f"whole site patches, {layout['mining_patches_inside']:,} of them labelled mining",
        flush=True,
    )
    t0 = time.perf_counter()
    from pipeline.core.config import load_settings
    from pipeline.ops.detector_model import mining_detector

    _, sha = mining_detector(load_settings(None, cli={"sample_data": sample_data()}))
    print(
        f"detector {sha[:12]} from {os.environ['ASM_MODEL_CACHE']} "
        f"(ready in {time.perf_counter() - t0:.1f} s)",
        flush=True,
    )
    mpx = args.size * args.size / 1e6
    load0 = os.getloadavg()[0]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GDAL_CACHEMAX": "64", "GDAL_NUM_THREADS": "1"}
    results: dict[str, dict[str, Any]] = {}
    for case in args.cases:
        cmd = [sys.executable, __file__, "--case", case, "--size", str(args.size), "--chunk", str(args.chunk)]
        cmd += ["--scheduler", args.scheduler, "--workdir", str(args.workdir)]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
        if done.returncode != 0:
            print(f"({case}) {CASES[case]}: FAILED\n{done.stderr[-3000:]}", flush=True)
            continue
        res = json.loads(done.stdout.strip().splitlines()[-1])
        results[case] = res
        extra = f"  mining px {res['mining_px']:,}" if case == "c" else ""
        print(
            f"({case}) {CASES[case]:<38} {res['seconds']:7.2f} s  {mpx / res['seconds']:6.1f} Mpx/s  "
            f"peak RSS {res['peak_rss_mib']:7,.0f} MiB  CPU {res['cpu_s']:6.1f} s{extra}",
            flush=True,
        )
    load1 = os.getloadavg()[0]
    if not results:
        return 1 if args.cases else 0
    a, c = results.get("a"), results.get("c")
    sched = (
        f"LocalCluster {WORKERS} workers x 1 thread"
        if args.scheduler == "local"
        else f"threaded scheduler, {WORKERS} threads"
    )
    lines = [
        f"Two-date tile {args.size} x {args.size} px ({mpx:,.1f} Mpx per date, "
        f"{mpx * PIXEL_M**2:,.0f} km^2) x 6 bands uint16 COG (512 tiles, DEFLATE), tiled from "
        f"{layout['patches_inside']:,} real 48 px site patches ({layout['mining_patches_inside']:,} "
        f"labelled mining); chunk {args.chunk}; {sched}; OMP_NUM_THREADS=1; each case in its own "
        f"process; detector {(c or a or {}).get('detector_sha', '?')}. Load average "
        f"{load0:.2f} at start, {load1:.2f} at end on {os.cpu_count()} CPUs.",
        "",
        "| case | wall s | Mpx/s | peak RSS MiB | CPU s | mining px |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for key, res in results.items():
        mined = f"{res['mining_px']:,}" if "mining_px" in res else "-"
        lines.append(
            f"| ({key}) {CASES[key]} | {res['seconds']:.1f} | {mpx / res['seconds']:.1f} "
            f"| {res['peak_rss_mib']:,.0f} | {res['cpu_s']:.1f} | {mined} |"
        )
    lines.append("")
    if a and c:
        ratio = c["seconds"] / a["seconds"]
        peak = c["peak_rss_mib"] / 1024
        lines.append(
            f"(c)/(a) = {ratio:.2f}x wall, {c['cpu_s'] / a['cpu_s']:.2f}x CPU (target <= 2x: "
            f"{'met' if ratio <= 2 else 'MISSED'}); (c) peak {peak:.2f} GiB (target <= 2 GiB: "
            f"{'met' if peak <= 2 else 'MISSED'}). (c) found {c['mining_px']:,} mining px "
            f"({c['mining_px'] / max(c['valid_px'], 1):.2%} of {c['valid_px']:,} valid), mean score "
            f"{c['score_mean']:.3f}; detector chunks {c['detector_chunks'][0]} px."
        )
    elif c:
        lines.append(f"(c) found {c['mining_px']:,} mining px; (a) missing, no ratio.")
    append_results(f"mining_bench: gold-mining change detector vs read-only, {args.size} px", lines)
    return 0 if (a or "a" not in args.cases) and (c or "c" not in args.cases) else 1


if __name__ == "__main__":
    sys.exit(main())
