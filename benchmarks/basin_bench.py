"""Basin-wide night (issue 19): ``asm-monitor run --all`` over the 237 mining-affected indigenous
territories of the Amazon basin, FLOTA do Amapá and TI Uaçá, with Amazon Mining Watch's basin
polygons, the real CLI in a subprocess.

Prints, in one run:
* wall time of a first night with 2 workers (target <= 3 min) and with 1 worker (2 workers
  >= 1.7x one worker, AOI-level parallelism);
* peak memory of the whole process tree (the CLI and its Dask workers), sampled every 0.1 s
  by this script (target <= 2 GiB);
* fixed cost per AOI beyond its data: the median time of the AOIs that have no detection at
  all (nothing to read but the shared, already indexed files) (target <= 0.1 s);
* a second night with nothing new (target <= 20 s).
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
from _common import append_results, machine

REPO = Path(__file__).resolve().parents[1]
AOIS = ("amazon-indigenous-territories.geojson", "flota-amapa.geojson", "ti-uaca.geojson")


def _night(
    work: Path, *, workers: int, out: Path, extra: tuple[str, ...] = ()
) -> tuple[float, float, dict[str, object]]:
    """(wall s, peak MiB of the process tree, summary.json) of one ``run --all``."""
    cfg = work / f"w{workers}.toml"
    cfg.write_text(f'[run]\nscheduler = "local"\nworkers = {workers}\ndashboard_address = ""\n')
    argv = [str(REPO / ".venv" / "bin" / "asm-monitor"), "--config", str(cfg), "--aoi-dir", str(work / "aoi"),
            "run", "--all", "--out", str(out), "--no-progress", *extra]  # fmt: skip
    peak = [0]
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    done = threading.Event()

    def sample() -> None:
        root = psutil.Process(proc.pid)
        while not done.wait(0.1):
            try:
                rss = root.memory_info().rss + sum(c.memory_info().rss for c in root.children(recursive=True))
            except psutil.Error:
                continue
            peak[0] = max(peak[0], rss)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    code = proc.wait()
    wall = time.perf_counter() - t0
    done.set()
    sampler.join()
    if code != 0:
        raise SystemExit(f"run --all exited {code}")
    return wall, peak[0] / 2**20, json.loads((out / "summary.json").read_text())


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="asm-basin-") as tmp:
        work = Path(tmp)
        (work / "aoi").mkdir()
        for name in AOIS:
            shutil.copy(REPO / "aoi" / name, work / "aoi" / name)
        wall2, peak2, first = _night(work, workers=2, out=work / "out2")
        again, peak_again, second = _night(work, workers=2, out=work / "out2")
        wall1, peak1, _ = _night(work, workers=1, out=work / "out1")
        # the same AOIs with no data at all (no AMW polygon is dated 2010): what is left is
        # the fixed cost of an AOI (plan, comply, outputs, ledger)
        wall0, _, nodata = _night(work, workers=2, out=work / "out0", extra=("--period", "2010"))
    aois = first["aois"]
    assert isinstance(aois, list)
    empty = [a["timings_s"]["total"] for a in nodata["aois"] if a["status"] == "ok" and a["detections"] == 0]  # type: ignore[union-attr]
    busy = [a["timings_s"]["total"] for a in aois if a["status"] == "ok" and a["detections"] > 0]
    fixed = statistics.median(empty) if empty else float("nan")
    statuses = sorted({a["status"] for a in second["aois"]})  # type: ignore[union-attr]
    lines = [
        f"{len(aois)} AOIs ({sum(1 for a in aois if a['status'] == 'ok')} ok), "
        f"{sum(a['detections'] for a in aois):,} AMW polygons clipped, "
        f"{sum(sum(a['flags_by_rule'].values()) for a in aois):,} flags.",
        "",
        "| measure | figure | target |",
        "|---|---:|---|",
        f"| first night, 2 workers, wall | {wall2:.1f} s | <= 180 s: {'met' if wall2 <= 180 else 'MISSED'} |",
        f"| first night, 1 worker, wall | {wall1:.1f} s | |",
        f"| 2 workers vs 1 | {wall1 / wall2:.2f}x | >= 1.7x: {'met' if wall1 / wall2 >= 1.7 else 'MISSED'} |",
        f"| peak memory, process tree (2 workers) | {peak2:,.0f} MiB | <= 2048 MiB: "
        f"{'met' if peak2 <= 2048 else 'MISSED'} |",
        f"| peak memory, process tree (1 worker) | {peak1:,.0f} MiB | |",
        f"| fixed cost per AOI (median of {len(empty)} AOIs run for 2010: no data) | {fixed:.3f} s "
        f"| <= 0.1 s: {'met' if fixed <= 0.1 else 'MISSED'} |",
        f"| that night's wall, 2 workers | {wall0:.1f} s ({wall0 / max(len(empty), 1):.3f} s per AOI) | |",
        f"| median per AOI with detections ({len(busy)}) | {statistics.median(busy):.3f} s | |",
        f"| second night, nothing new, wall | {again:.1f} s ({', '.join(statuses)}; "
        f"peak {peak_again:,.0f} MiB) | <= 20 s: {'met' if again <= 20 else 'MISSED'} |",
    ]
    print(machine() + "\n\n" + "\n".join(lines))
    append_results("basin_bench: every mining-affected territory in one night", lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
