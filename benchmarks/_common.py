"""Shared pieces of the benchmarks: a synthetic Sentinel-2 L2A scene, AOIs over it, the
machine description and appending figures to RESULTS.md. Not a benchmark itself (no
``_bench`` suffix), so ``run_all.py`` does not run it."""

from __future__ import annotations

import os
import platform
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import rasterio
from pyproj import Transformer
from rasterio.transform import from_origin
from rasterio.windows import Window
from shapely.geometry import box

from pipeline.core.config import Settings, load_settings
from pipeline.core.records import Aoi

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS.md"
BANDS = ("B02", "B03", "B04", "B08", "B11")
CRS = "EPSG:32721"
ORIGIN = (500_000.0, 9_900_000.0)  # UTM 21S, near the Rio Trombetas
PIXEL_M = 10.0
BLOCK = 512

# reflectance of the land covers the detector tells apart (B02, B03, B04, B08, B11)
FOREST = np.array([0.03, 0.05, 0.03, 0.35, 0.15], dtype=np.float32)
BARE = np.array([0.12, 0.15, 0.20, 0.25, 0.35], dtype=np.float32)
TURBID = np.array([0.07, 0.10, 0.09, 0.05, 0.02], dtype=np.float32)


def _pits(size: int, seed: int) -> np.ndarray:
    """Centres (row, col) and radii (px) of bare mining pits, about one per 0.5 Mpx."""
    rng = np.random.default_rng(seed)
    n = max(4, size * size // 500_000)
    return np.column_stack(
        [rng.integers(0, size, n), rng.integers(0, size, n), rng.integers(15, 60, n)]
    ).astype(np.int64)


def write_scene(path: Path, size: int, *, seed: int = 42) -> Path:
    """A ``size`` x ``size`` 10 m scene with the five bands the detector reads, uint16 DN with
    the L2A offset (reflectance = DN * 1e-4 - 0.1), tiled 512 x 512, DEFLATE: forest with
    noise, round bare pits, and a meandering turbid river. Written strip by strip."""
    if path.exists():
        return path
    pits = _pits(size, seed)
    rng = np.random.default_rng(seed + 1)
    profile = {
        "driver": "GTiff",
        "width": size,
        "height": size,
        "count": len(BANDS),
        "dtype": "uint16",
        "crs": CRS,
        "transform": from_origin(*ORIGIN, PIXEL_M, PIXEL_M),
        "tiled": True,
        "blockxsize": BLOCK,
        "blockysize": BLOCK,
        "compress": "deflate",
        "predictor": 2,
        "nodata": 0,
        "BIGTIFF": "IF_SAFER",
    }
    tmp = path.with_suffix(".partial.tif")
    cols = np.arange(size)
    with rasterio.open(tmp, "w", **profile) as dst:
        for i, name in enumerate(BANDS, start=1):
            dst.set_band_description(i, name)
        for top in range(0, size, BLOCK):
            rows = np.arange(top, min(top + BLOCK, size))
            rr, cc = np.meshgrid(rows, cols, indexing="ij")
            cover = np.zeros(rr.shape, dtype=np.uint8)  # 0 forest, 1 bare, 2 river
            near = pits[(pits[:, 0] > top - 80) & (pits[:, 0] < rows[-1] + 80)]
            for r0, c0, rad in near:
                cover[(rr - r0) ** 2 + (cc - c0) ** 2 <= rad * rad] = 1
            centre = size / 2 + size / 8 * np.sin(rr / max(size / 6, 1))
            cover[np.abs(cc - centre) < 25] = 2
            table = np.stack([FOREST, BARE, TURBID])  # (cover, band)
            refl = table[cover]  # (y, x, band)
            refl += rng.normal(0, 0.006, refl.shape).astype(np.float32)
            dn = np.clip((refl + 0.1) * 10_000, 1, 65_535).astype(np.uint16)
            dst.write(np.moveaxis(dn, -1, 0), window=Window(0, top, size, len(rows)))
    tmp.rename(path)
    return path


def aoi_over(scene: Path, *, aoi_id: str, px: tuple[int, int, int, int], inset_px: int = 2) -> Aoi:
    """An AOI covering pixels ``(col0, row0, col1, row1)`` of ``scene`` (a few px inset)."""
    c0, r0, c1, r1 = px
    x0, y0 = ORIGIN[0] + (c0 + inset_px) * PIXEL_M, ORIGIN[1] - (r1 - inset_px) * PIXEL_M
    x1, y1 = ORIGIN[0] + (c1 - inset_px) * PIXEL_M, ORIGIN[1] - (r0 + inset_px) * PIXEL_M
    to_wgs = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True)
    # densify the edges so the lon/lat polygon stays inside the UTM square
    xs = np.concatenate([np.linspace(x0, x1, 50), np.full(50, x1), np.linspace(x1, x0, 50), np.full(50, x0)])
    ys = np.concatenate([np.full(50, y0), np.linspace(y0, y1, 50), np.full(50, y1), np.linspace(y1, y0, 50)])
    lon, lat = to_wgs.transform(xs, ys)
    from shapely.geometry import Polygon

    geom = Polygon(zip(lon, lat, strict=True)).buffer(0)
    assert geom.within(box(*to_wgs.transform_bounds(x0 - 1, y0 - 1, x1 + 1, y1 + 1)))
    return Aoi(
        aoi_id=aoi_id,
        name=f"synthetic {aoi_id}",
        designation="benchmark",
        country="Brazil",
        geometry=geom,
        inputs={"scenes": [{"path": str(scene), "scene_id": scene.stem, "scale": 1e-4, "offset": -0.1}]},
    )


def settings_for(workdir: Path, **run: Any) -> Settings:
    """Settings with the data root, outputs and state in ``workdir``."""
    workdir.mkdir(parents=True, exist_ok=True)
    cli: dict[str, Any] = {
        "sample_data": workdir,
        "out_dir": workdir / "out",
        "state_db": workdir / "state.sqlite",
        "max_aoi_km2": 1e6,
    }
    if run:
        cli["run"] = run
    return load_settings(None, cli=cli, environ={})


def machine() -> str:
    """One line: CPU, cores, RAM, OS, Python and library versions."""
    import dask
    import rasterio as rio

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{cpu}, {os.cpu_count()} logical CPUs, {psutil.virtual_memory().total / 2**30:.1f} GiB RAM, "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}, "
        f"dask {dask.__version__}, rasterio {rio.__version__} (GDAL {rio.__gdal_version__}); "
        f"load average at start {os.getloadavg()[0]:.2f}"
    )


def cpu_seconds() -> float:
    """User + system CPU time of this process and its children so far (s)."""
    me = psutil.Process()
    total = sum(me.cpu_times()[:2])
    for child in me.children(recursive=True):
        try:
            total += sum(child.cpu_times()[:2])
        except psutil.Error:
            pass
    return total + sum(os.times()[2:4])


def append_results(title: str, lines: list[str]) -> None:
    """Append a dated section to RESULTS.md and print it."""
    text = f"\n## {title} ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)\n\nMachine: {machine()}\n\n"
    text += "\n".join(lines) + "\n"
    print(text)
    if os.environ.get("ASM_BENCH_NO_RESULTS"):
        return
    if not RESULTS.exists():
        RESULTS.write_text("# Benchmark results\n\nAppended by the scripts in this folder (`make bench`).\n")
    with open(RESULTS, "a", encoding="utf-8") as fh:
        fh.write(text)


class Timer:
    """``with Timer() as t: ...; t.s`` wall seconds."""

    def __enter__(self) -> Timer:
        self.t0 = time.perf_counter()
        self.s = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        self.s = time.perf_counter() - self.t0
