"""Orchestrate a run: ingest -> detect -> comply -> report, per AOI.

This is the only module that calls ``compute``; it owns the Dask client and writes the
outputs (atomically) and the run summary ``run.json``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dask
import geopandas as gpd
import numpy as np
import pandas as pd
import xarray as xr

from pipeline import __version__
from pipeline.comply import evaluate
from pipeline.comply.registry import to_mine_sites
from pipeline.comply.rules import RULEBOOK_VERSION
from pipeline.config import RunParams, Settings
from pipeline.detect.indices import bsi, mndwi, ndvi
from pipeline.detect.landcover import BARE, WATER_TURBID, classify_indices
from pipeline.detect.turbidity import dogliotti_fnu
from pipeline.detect.vectorize import vectorize_mask
from pipeline.errors import NoDataError, PipelineError
from pipeline.ingest.paths import resolve_input, sample_data_dir
from pipeline.ingest.scenes import LocalFolderSource, SceneSpec
from pipeline.ingest.vectors import format_spec, read_external_detections, read_registry
from pipeline.periods import Period
from pipeline.records import CONFIRMED, KIND_MINING, KIND_TURBIDITY, PROBABLE, WGS84, Aoi
from pipeline.report.alerts import alert_payloads, write_outbox
from pipeline.report.atomic import write_text
from pipeline.report.exports import write_csv, write_geojson, write_geoparquet
from pipeline.report.map import write_map

log = logging.getLogger(__name__)

SCENE_BANDS = ("B02", "B03", "B04", "B08", "B11")
DETECTION_COLUMNS = [
    "detection_id",
    "kind",
    "aoi_id",
    "area_ha",
    "first_seen",
    "last_seen",
    "period",
    "confidence",
    "source",
    "mined_area_ha",
    "mean_ndvi",
    "mean_bsi",
    "mean_turbidity_fnu",
    "median_turbidity_fnu",
]


@dataclass
class AoiResult:
    """What one AOI's run produced."""

    aoi_id: str
    status: str = "ok"
    """ok, no_data or failed."""
    run_id: str = ""
    error: str | None = None
    outputs: dict[str, str] = field(default_factory=dict)
    detections: int = 0
    detections_ha: float = 0.0
    flags_by_rule: dict[str, int] = field(default_factory=dict)
    flags_by_severity: dict[str, int] = field(default_factory=dict)
    flagged_ha: float = 0.0
    alerts_queued: int = 0
    timings_s: dict[str, float] = field(default_factory=dict)


def fingerprint(path: Path) -> str:
    """SHA-256 of a file's size and its first and last MiB (cheap on 1 GB scenes, and any
    re-download or edit of a real scene changes it)."""
    h = hashlib.sha256()
    size = path.stat().st_size
    h.update(str(size).encode())
    with open(path, "rb") as fh:
        h.update(fh.read(1 << 20))
        if size > 2 << 20:
            fh.seek(-(1 << 20), 2)
            h.update(fh.read())
    return h.hexdigest()


@contextlib.contextmanager
def dask_client(params: RunParams) -> Iterator[Any]:
    """The run's Dask scheduler: a LocalCluster, a remote scheduler, or local threads."""
    if params.scheduler in {"threads", "synchronous", "processes"}:
        with dask.config.set(scheduler=params.scheduler):
            yield None
        return
    from distributed import Client, LocalCluster

    if params.scheduler == "local":
        import os

        workers = params.workers or os.cpu_count() or 1
        with (
            LocalCluster(
                n_workers=workers,
                threads_per_worker=params.threads_per_worker,
                memory_limit=params.memory_limit,
                dashboard_address=None,
                processes=True,
            ) as cluster,
            Client(cluster) as client,
        ):
            log.info("Dask LocalCluster: %d workers x %d threads", workers, params.threads_per_worker)
            yield client
        return
    with Client(params.scheduler) as client:
        log.info("Dask scheduler %s, dashboard %s", params.scheduler, client.dashboard_link)
        yield client


def _empty_detections() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(columns=[*DETECTION_COLUMNS, "geometry"], geometry="geometry", crs=WGS84)


def detect_from_scenes(
    aoi: Aoi, scenes: Sequence[SceneSpec], *, settings: Settings, period: Period | None
) -> tuple[gpd.GeoDataFrame, dict[str, Any]]:
    """Index-based detection on the AOI's scenes: bare ground and turbid water polygons."""
    params = settings.detect
    cube = LocalFolderSource(scenes).load(aoi, period, bands=SCENE_BANDS, chunks=params.chunk_px)
    if cube.sizes["time"] > 1:
        cube = cube.chunk({"time": -1}).median("time", skipna=True)
    else:
        cube = cube.isel(time=0)
    v = ndvi(cube["B08"], cube["B04"])
    w = mndwi(cube["B03"], cube["B11"])
    b = bsi(cube["B02"], cube["B04"], cube["B08"], cube["B11"])
    fnu = dogliotti_fnu(cube["B04"], cube["B08"]).where(w > params.water_mndwi_min)
    classes = classify_indices(v, w, b, fnu, params=params)
    # The one place this AOI's rasters are computed.
    classes_np, v_np, b_np, fnu_np = dask.compute(classes.data, v.data, b.data, fnu.data)
    valid = classes_np > 0
    if not valid.any():
        raise NoDataError(f"AOI '{aoi.aoi_id}': every pixel is nodata or masked. No usable scene.")
    transform = cube.rio.transform()
    crs = cube.rio.crs
    common = {
        "transform": transform,
        "crs": crs,
        "area_crs": aoi.equal_area_crs,
        "min_area_ha": params.min_area_ha,
    }
    stats = {"ndvi": v_np, "bsi": b_np, "turbidity_fnu": fnu_np}
    bare = vectorize_mask(classes_np == BARE, stats=stats, **common).assign(kind=KIND_MINING)
    turbid = vectorize_mask(classes_np == WATER_TURBID, stats=stats, **common).assign(kind=KIND_TURBIDITY)
    found = gpd.GeoDataFrame(pd.concat([bare, turbid], ignore_index=True), geometry="geometry", crs=WGS84)
    times = (
        [pd.Timestamp(t) for t in np.atleast_1d(cube["time"].values) if not pd.isna(t)]
        if "time" in cube.coords
        else []
    )
    seen = min(times).date() if times else None
    ids = [
        hashlib.sha256(f"{aoi.aoi_id}|{k}|{g.wkb_hex}".encode()).hexdigest()[:16]
        for k, g in zip(found["kind"], found.geometry, strict=True)
    ]
    found = found.assign(
        detection_id=ids,
        aoi_id=aoi.aoi_id,
        first_seen=seen,
        last_seen=seen,
        period=str(period) if period else "",
        confidence=PROBABLE,
        source="asm-monitor index detector",
        mined_area_ha=np.nan,
    )
    water = classes_np >= 4
    evidence = {
        "pixels": int(classes_np.size),
        "valid_fraction": float(valid.mean()),
        "class_fractions": {
            name: float((classes_np == code).sum() / max(valid.sum(), 1))
            for code, name in {
                1: "forest",
                2: "other_vegetation",
                3: "bare",
                4: "water_clear",
                5: "water_turbid",
            }.items()
        },
        "water_median_fnu": float(np.nanmedian(fnu_np[water])) if water.any() else None,
    }
    return found[[*DETECTION_COLUMNS, "geometry"]], evidence


def _external(aoi: Aoi, spec: dict[str, Any], *, root: Path, period: Period | None) -> gpd.GeoDataFrame:
    frame = read_external_detections(root / spec["path"], fmt=spec.get("format", "native"))
    if period is not None:
        keep = [period.start <= d <= period.end for d in frame["last_seen"]]
        frame = frame[keep]
    frame = frame[frame.intersects(aoi.geometry)]
    area = frame.to_crs(aoi.equal_area_crs).area / 1e4
    frame = frame.assign(
        aoi_id=aoi.aoi_id,
        area_ha=area.to_numpy(),
        mean_ndvi=np.nan,
        mean_bsi=np.nan,
        mean_turbidity_fnu=np.nan,
        median_turbidity_fnu=np.nan,
    )
    if frame.empty:
        return _empty_detections()
    return frame[[*DETECTION_COLUMNS, "geometry"]].reset_index(drop=True)


def make_run_id(aoi: Aoi, period: Period | None, inputs: dict[str, str], settings: Settings) -> str:
    """Deterministic run id: the same AOI, period, inputs, settings and code give the same
    id, so a rerun overwrites its own outputs instead of adding new ones."""
    blob = json.dumps(
        {
            "aoi": aoi.aoi_id,
            "period": str(period) if period else "all",
            "inputs": inputs,
            # only what changes results: not where inputs live or outputs go
            "detect": asdict(settings.detect),
            "comply": asdict(settings.comply),
            "code": __version__,
            "rulebook": RULEBOOK_VERSION,
        },
        sort_keys=True,
    )
    stamp = hashlib.sha256(blob.encode()).hexdigest()[:12]
    return f"{aoi.aoi_id}-{str(period).replace('/', '_') if period else 'all'}-{stamp}"


def _input_files(aoi: Aoi, root: Path) -> list[Path]:
    import glob

    files: list[Path] = []
    for scene in aoi.inputs.get("scenes", []):
        files.append(resolve_input(str(scene["path"]), root=root))
    for key in ("detections", "registry"):
        if key in aoi.inputs:
            files += [Path(p) for p in sorted(glob.glob(str(root / aoi.inputs[key]["path"])))]
    return files


def run_aoi(aoi: Aoi, *, settings: Settings, period: Period | None, out_dir: Path) -> AoiResult:
    """Run one AOI end to end and write its outputs under ``out_dir/<aoi_id>/``."""
    root = sample_data_dir(settings.sample_data)
    result = AoiResult(aoi_id=aoi.aoi_id)
    started = datetime.now(UTC)
    t0 = time.perf_counter()
    inputs = {
        str(p.relative_to(root)) if p.is_relative_to(root) else str(p): fingerprint(p)
        for p in _input_files(aoi, root)
    }
    result.run_id = make_run_id(aoi, period, inputs, settings)
    target = out_dir / aoi.aoi_id
    evidence: dict[str, Any] = {}
    frames = [_empty_detections()]
    attribution: list[str] = []
    if aoi.inputs.get("scenes"):
        scenes = [SceneSpec.from_mapping(s, root=root) for s in aoi.inputs["scenes"]]
        found, evidence = detect_from_scenes(aoi, scenes, settings=settings, period=period)
        frames.append(found)
        attribution.append("Contains modified Copernicus Sentinel-2 data")
    if aoi.inputs.get("detections"):
        spec = aoi.inputs["detections"]
        frames.append(_external(aoi, spec, root=root, period=period))
        attribution.append(
            str(format_spec("detections", spec.get("format", "native")).get("attribution", ""))
        )
    detections = gpd.GeoDataFrame(
        pd.concat([f for f in frames if len(f)] or frames[:1], ignore_index=True),
        geometry="geometry",
        crs=WGS84,
    )
    result.timings_s["detect"] = round(time.perf_counter() - t0, 3)

    sites = None
    registry_lines: list[str] = []
    if aoi.inputs.get("registry"):
        spec = aoi.inputs["registry"]
        raw = read_registry(root / spec["path"], fmt=spec["format"])
        sites, report = to_mine_sites(raw, spec=format_spec("registry", spec["format"]), aois=aoi.to_frame())
        registry_lines = report.lines()
        attribution.append("Mining titles: ANM SIGMINE" if spec["format"] == "sigmine" else "")
    t1 = time.perf_counter()
    flags = evaluate(detections, aoi=aoi, sites=sites, params=settings.comply, run_id=result.run_id)
    result.timings_s["comply"] = round(time.perf_counter() - t1, 3)

    t2 = time.perf_counter()
    outputs = {
        "flags.geojson": write_geojson(flags, target / "flags.geojson"),
        "flags.parquet": write_geoparquet(flags, target / "flags.parquet"),
        "flags.csv": write_csv(flags, target / "flags.csv"),
        "detections.parquet": write_geoparquet(detections, target / "detections.parquet"),
        "detections.geojson": write_geojson(detections, target / "detections.geojson"),
    }
    if sites is not None:
        outputs["sites.parquet"] = write_geoparquet(sites, target / "sites.parquet")
        outputs["sites_report.txt"] = write_text(
            target / "sites_report.txt", "\n".join(registry_lines) + "\n"
        )
    outputs["map.html"] = write_map(
        target / "map.html",
        aoi=aoi.to_frame(),
        detections=detections,
        flags=flags,
        sites=sites,
        title=aoi.name,
        attribution="; ".join(a for a in attribution if a),
    )
    payloads = alert_payloads(flags, map_link=f"{aoi.aoi_id}/map.html")
    write_outbox(payloads, target / "alerts" / "outbox")
    outputs["alerts/outbox"] = target / "alerts" / "outbox"
    result.timings_s["report"] = round(time.perf_counter() - t2, 3)

    mining = detections[detections["kind"] == KIND_MINING]
    result.detections = len(detections)
    result.detections_ha = round(float(mining["area_ha"].sum()), 2)
    real = flags[flags["rule_id"] != "compliant"]
    result.flags_by_rule = {str(k): int(v) for k, v in flags["rule_id"].value_counts().sort_index().items()}
    result.flags_by_severity = {
        str(k): int(v) for k, v in flags["severity"].value_counts().sort_index().items()
    }
    # overlapping titles share hectares: count each flagged hectare once
    result.flagged_ha = (
        round(float(real.to_crs(aoi.equal_area_crs).union_all().area / 1e4), 2) if len(real) else 0.0
    )
    result.alerts_queued = len(payloads)
    result.outputs = {k: str(v) for k, v in outputs.items()}
    summary = {
        "run_id": result.run_id,
        "aoi_id": aoi.aoi_id,
        "aoi_name": aoi.name,
        "period": str(period) if period else "all",
        "status": result.status,
        "started": started.isoformat(timespec="seconds"),
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "code_version": __version__,
        "rulebook_version": RULEBOOK_VERSION,
        "inputs": inputs,
        "counts": {
            "detections": result.detections,
            "mining_detections_ha": result.detections_ha,
            "flags_by_rule": result.flags_by_rule,
            "flags_by_severity": result.flags_by_severity,
            "flagged_ha": result.flagged_ha,
            "alerts": result.alerts_queued,
            "sites": None if sites is None else len(sites),
        },
        "evidence": evidence,
        "registry_report": registry_lines,
        "timings_s": result.timings_s,
        "outputs": {k: str(Path(v).relative_to(target)) for k, v in result.outputs.items()},
        "confidence_levels": [PROBABLE, CONFIRMED],
    }
    write_text(target / "run.json", json.dumps(summary, indent=2, ensure_ascii=False, default=str) + "\n")
    result.outputs["run.json"] = str(target / "run.json")
    return result


def run(
    aois: Sequence[Aoi],
    *,
    settings: Settings,
    period: Period | None,
    out_dir: Path,
) -> list[AoiResult]:
    """Run every AOI; one AOI's failure is recorded and does not stop the others."""
    results = []
    with dask_client(settings.run):
        for aoi in aois:
            t0 = time.perf_counter()
            try:
                res = run_aoi(aoi, settings=settings, period=period, out_dir=out_dir)
            except NoDataError as exc:
                log.warning("AOI %s: no usable data: %s", aoi.aoi_id, exc)
                res = AoiResult(aoi_id=aoi.aoi_id, status="no_data", error=str(exc))
            except PipelineError as exc:
                log.error("AOI %s failed: %s", aoi.aoi_id, exc)
                res = AoiResult(aoi_id=aoi.aoi_id, status="failed", error=str(exc))
            except Exception as exc:  # one AOI's bug must not stop the night's other AOIs
                log.exception("AOI %s failed unexpectedly", aoi.aoi_id)
                res = AoiResult(aoi_id=aoi.aoi_id, status="failed", error=f"{type(exc).__name__}: {exc}")
            res.timings_s["total"] = round(time.perf_counter() - t0, 3)
            results.append(res)
    write_text(
        out_dir / "summary.json",
        json.dumps([asdict(r) for r in results], indent=2, ensure_ascii=False, default=str) + "\n",
    )
    return results


def open_cube(aoi: Aoi, *, settings: Settings, period: Period | None = None) -> xr.Dataset:
    """The AOI's lazy reflectance cube, for notebooks (nothing is computed)."""
    root = sample_data_dir(settings.sample_data)
    scenes = [SceneSpec.from_mapping(s, root=root) for s in aoi.inputs.get("scenes", [])]
    if not scenes:
        raise NoDataError(f"AOI '{aoi.aoi_id}' lists no scenes in its inputs.")
    return LocalFolderSource(scenes).load(aoi, period, bands=SCENE_BANDS, chunks=settings.detect.chunk_px)
