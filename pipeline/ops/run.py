"""Orchestrate a run: ingest -> detect -> comply -> report, per AOI.

This is the only module that calls ``compute``; it owns the Dask client and hands what it
computed to :mod:`pipeline.ops.outputs`, which writes the AOI's outputs and ``run.json`` as one set.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dask
import geopandas as gpd
import numpy as np
import pandas as pd
import xarray as xr

from pipeline.comply import evaluate
from pipeline.comply.impact import impact_tables
from pipeline.comply.lifecycle import reportable_flags
from pipeline.comply.registry import to_mine_sites
from pipeline.comply.rules import RULEBOOK_VERSION
from pipeline.core.config import Settings
from pipeline.core.errors import NoDataError
from pipeline.core.periods import Period
from pipeline.core.records import WGS84, Aoi
from pipeline.core.version import __version__
from pipeline.ingest.paths import sample_data_dir
from pipeline.ingest.scenes import LocalFolderSource, SceneSpec
from pipeline.ingest.vectors import format_spec, read_external_detections, read_registry
from pipeline.ops.cluster import dask_client as dask_client
from pipeline.ops.incremental import fingerprint as fingerprint
from pipeline.ops.incremental import input_fingerprints
from pipeline.ops.outputs import staging_dir, swap_into_place, write_outputs
from pipeline.report.writer import deliver_after_run
from pipeline.state.audit import track_flags
from pipeline.state.licence_history import record_licences

log = logging.getLogger(__name__)

#: Flags per AOI that get before/after image chips on the map (the largest first).
CHIP_FLAGS_MAX = 50

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
    """ok, no_data, failed, up_to_date (incremental: no new input) or skipped (this exact
    AOI run id already finished; ``--force`` recomputes)."""
    run_id: str = ""
    error: str | None = None
    outputs: dict[str, str] = field(default_factory=dict)
    detections: int = 0
    detections_ha: float = 0.0
    flags_by_rule: dict[str, int] = field(default_factory=dict)
    flags_by_severity: dict[str, int] = field(default_factory=dict)
    flags_by_status: dict[str, int] = field(default_factory=dict)
    flagged_ha: float = 0.0
    alerts_queued: int = 0
    timings_s: dict[str, float] = field(default_factory=dict)
    period: str = ""
    """Period processed (``all``, a label, or an incremental ``START/END``)."""
    reason: str = ""
    """Why the AOI was run, skipped or found up to date (one line)."""
    peak_rss_mib: float = 0.0
    """Peak resident memory of the run's process tree while this AOI ran (MiB)."""
    ledger_run_id: str = ""
    """Id of the invocation in the run ledger (``asm-monitor runs show``)."""


def _empty_detections() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(columns=[*DETECTION_COLUMNS, "geometry"], geometry="geometry", crs=WGS84)


def detect_from_scenes(
    aoi: Aoi, scenes: Sequence[SceneSpec], *, settings: Settings, period: Period | None
) -> tuple[gpd.GeoDataFrame, dict[str, Any]]:
    """Detect mining and turbid water on the AOI's scenes: the trained pixel classifier when
    ``detect.model_path`` names one (else the index rules), change detection over the dates,
    and calibrated turbidity as evidence."""
    from pipeline.core.errors import ModelError
    from pipeline.detect.landcover import CLASS_NAMES, VALID_CODES
    from pipeline.detect.scene_blocks import assemble_scene, scene_detections_sparse, scene_pieces
    from pipeline.ingest.training import sensor_bands
    from pipeline.state.models import load_model, load_turbidity_calibration

    params = settings.detect
    model, model_sha = None, None
    if params.model_path:
        model, prov = load_model(Path(params.model_path), expected_sha256=params.model_sha256 or None)
        model_sha = prov["sha256"]
        if model.sensor != "sentinel2":
            raise ModelError(
                f"Model {params.model_path} is for {model.sensor}; scenes are Sentinel-2. Retrain."
            )
    calibration = load_turbidity_calibration(
        Path(params.turbidity_calibration) if params.turbidity_calibration else None
    )
    cube = _clear_observations(aoi, scenes, settings=settings, period=period)
    rename = {v: k for k, v in sensor_bands("sentinel2").items() if v in cube}
    pieces = scene_pieces(cube.rename(rename), params=params, model=model, calibration=calibration)
    # The one place this AOI's rasters are computed: chunk by chunk, each reduced to a uint8
    # code raster plus the values inside the masks (never the whole tile's float rasters).
    (pieces,) = dask.compute(pieces)
    rasters = assemble_scene(pieces)
    del pieces
    counts = rasters.class_counts()
    n_pixels = int(counts.sum())
    n_valid = int(counts[list(VALID_CODES)].sum())
    if n_valid == 0:
        raise NoDataError(f"AOI '{aoi.aoi_id}': every pixel is nodata or masked. No usable scene.")
    found = scene_detections_sparse(
        rasters,
        transform=cube.rio.transform(),
        crs=cube.rio.crs,
        area_crs=aoi.equal_area_crs,
        min_area_ha=params.min_area_ha,
    )
    ids = [
        hashlib.sha256(f"{aoi.aoi_id}|{k}|{g.wkb_hex}".encode()).hexdigest()[:16]
        for k, g in zip(found["kind"], found.geometry, strict=True)
    ]
    found = found.assign(
        detection_id=ids,
        aoi_id=aoi.aoi_id,
        period=str(period) if period else "",
        source="asm-monitor classifier" if model is not None else "asm-monitor index detector",
        mined_area_ha=np.nan,
    )
    evidence = {
        "pixels": n_pixels,
        "valid_fraction": n_valid / n_pixels,
        "detector": "classifier" if model is not None else "index rules",
        "model_sha256": model_sha,
        "class_fractions": {
            name: float(counts[code] / max(n_valid, 1))
            for code, name in CLASS_NAMES.items()
            if code in VALID_CODES
        },
        "water_median_fnu": rasters.water_median("turbidity_fnu"),
        "water_median_cal_fnu": rasters.water_median("turbidity_cal_fnu"),
    }
    extra = [
        c
        for c in (
            "mean_probability",
            "mean_ndvi_before",
            "mean_ndvi_after",
            "ndvi_drop",
            "median_turbidity_cal_fnu",
        )
        if c in found
    ]
    if found.empty:
        return _empty_detections(), evidence
    return found[[*DETECTION_COLUMNS, *extra, "geometry"]], evidence


def _clear_observations(
    aoi: Aoi, scenes: Sequence[SceneSpec], *, settings: Settings, period: Period | None
) -> xr.Dataset:
    """The scenes' cube with clouds (CLM / SCL, dilated by ``cloud_buffer_px``) and nodata
    set to NaN, and scenes below ``ingest.min_valid_fraction`` over the AOI dropped.

    Raises
    ------
    NoDataError
        No scene of the period has enough clear, valid pixels.
    """
    from pipeline.detect.clouds import scl_cloud, usable, valid_fraction, valid_mask
    from pipeline.ingest.scenes import MASK_BANDS, aoi_footprint

    source = LocalFolderSource(scenes)
    chosen = source.select(period)
    masks = sorted(set.intersection(*(set(s.band_paths) & MASK_BANDS for s in chosen))) if chosen else []
    cube = source.load(aoi, period, bands=[*SCENE_BANDS, *masks], chunks=settings.detect.chunk_px)
    if not masks and cube.sizes["time"] == 1:
        # one scene, no mask: its nodata is already NaN, and a scene with no valid pixel is
        # caught after detection; an extra pass over the data would buy nothing
        return cube
    cloud = None
    if "CLM" in cube:
        cloud = cube["CLM"] == 1
    elif "SCL" in cube:
        cloud = scl_cloud(cube["SCL"])
    valid = valid_mask(cube, bands=SCENE_BANDS, cloud=cloud, buffer_px=settings.ingest.cloud_buffer_px)
    # a small compute (one number per scene) decides which scenes the detection reads at all
    fractions = valid_fraction(valid, footprint=aoi_footprint(aoi, cube)).compute().values
    keep = usable(
        fractions,
        scene_ids=[str(v) for v in cube["scene_id"].values],
        min_valid_fraction=settings.ingest.min_valid_fraction,
        where=f"AOI '{aoi.aoi_id}'",
    )
    idx = np.flatnonzero(keep)
    return cube[list(SCENE_BANDS)].isel(time=idx).where(valid.isel(time=idx))


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


def run_aoi(
    aoi: Aoi,
    *,
    settings: Settings,
    period: Period | None,
    out_dir: Path,
    inputs: dict[str, str] | None = None,
    run_id: str | None = None,
) -> AoiResult:
    """Run one AOI end to end and write its outputs under ``out_dir/<aoi_id>/``.

    ``inputs`` (:func:`pipeline.ops.incremental.input_fingerprints`) and ``run_id``
    (:func:`make_run_id`) are computed when not given; the run loop passes the ones it already
    has, so the input files are not hashed twice.
    """
    root = sample_data_dir(settings.sample_data)
    result = AoiResult(aoi_id=aoi.aoi_id)
    started = datetime.now(UTC)
    t0 = time.perf_counter()
    inputs = inputs if inputs is not None else input_fingerprints(aoi, root=root)
    result.run_id = run_id or make_run_id(aoi, period, inputs, settings)
    target = out_dir / aoi.aoi_id
    evidence: dict[str, Any] = {}
    frames = [_empty_detections()]
    attribution: list[str] = []
    scenes = [SceneSpec.from_mapping(s, root=root) for s in aoi.inputs.get("scenes", [])]
    if scenes:
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
        raw = read_registry(root / spec["path"], fmt=spec["format"], encoding=spec.get("encoding", "utf-8"))
        sites, report = to_mine_sites(raw, spec=format_spec("registry", spec["format"]), aois=aoi.to_frame())
        registry_lines = report.lines()
        attribution.append("Mining titles: ANM SIGMINE" if spec["format"] == "sigmine" else "")
    state_path = replace(settings, out_dir=out_dir).state_path
    licences = (
        record_licences(state_path, aoi_id=aoi.aoi_id, sites=sites, run_id=result.run_id)
        if sites is not None
        else None
    )
    t1 = time.perf_counter()
    flags = evaluate(detections, aoi=aoi, sites=sites, params=settings.comply, run_id=result.run_id)
    # the state before this period gives each flag its status (a rerun gives the same one);
    # out_dir, not settings.out_dir, so a fresh output folder starts a fresh lifecycle
    flags = track_flags(
        flags,
        aoi=aoi,
        period=period,
        params=settings.comply,
        run_id=result.run_id,
        state_path=state_path,
    ).flags
    impact = impact_tables(detections, aoi=aoi, sites=sites)
    result.timings_s["comply"] = round(time.perf_counter() - t1, 3)

    t2 = time.perf_counter()
    chips = _flag_chips(aoi, flags, settings=settings, period=period, scenes=scenes)
    stage = staging_dir(out_dir, aoi.aoi_id, result.run_id)
    try:
        result = write_outputs(
            stage,
            target=target,
            result=result,
            aoi=aoi,
            settings=settings,
            period=period,
            out_dir=out_dir,
            detections=detections,
            flags=flags,
            sites=sites,
            licences=licences,
            impact=impact,
            registry_lines=registry_lines,
            attribution=attribution,
            evidence=evidence,
            inputs=inputs,
            started=started,
            t2=t2,
            chips=chips,
        )
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    # swap only once every file is whole, then deliver from the outbox that now sits in target
    swap_into_place(stage, target)
    result.outputs = {k: str(target / Path(v).relative_to(stage)) for k, v in result.outputs.items()}
    result.outputs["alerts/outbox"] = str(target / "alerts" / "outbox")
    deliver_after_run(target / "alerts" / "outbox", settings=settings)
    return result


def _flag_chips(
    aoi: Aoi,
    flags: gpd.GeoDataFrame,
    *,
    settings: Settings,
    period: Period | None,
    scenes: Sequence[SceneSpec],
) -> dict[str, list[tuple[str, str, str]]]:
    """Before/after RGB chips (first and last scene of the period) for the largest flags of
    an imagery AOI, as PNG data URIs; empty when the AOI has no imagery or no flag."""
    from pipeline.detect.chips import RGB, flag_windows
    from pipeline.report.chips import chip_data_uri, pair_scale

    real = reportable_flags(flags)
    if real.empty or not scenes:
        return {}
    real = real.sort_values("area_ha", ascending=False).head(CHIP_FLAGS_MAX)
    cube = LocalFolderSource(scenes).load(aoi, period, bands=RGB, chunks=settings.detect.chunk_px)
    windows = flag_windows(cube, real)
    last = cube.sizes["time"] - 1
    picks = {fid: (w.isel(time=0), w.isel(time=last)) for fid, w in windows.items()}
    # small windows only: one compute for every chip of the AOI
    (arrays,) = dask.compute({fid: (a.data, b.data) for fid, (a, b) in picks.items()})
    dates = [str(pd.Timestamp(t).date()) if not pd.isna(t) else "" for t in cube["time"].values]
    out: dict[str, list[tuple[str, str, str]]] = {}
    for fid, (before, after) in arrays.items():
        scale = pair_scale(before, after)
        after_chip = ("after", dates[last], chip_data_uri(np.asarray(after), scale=scale))
        out[fid] = (
            [("before", dates[0], chip_data_uri(np.asarray(before), scale=scale)), after_chip]
            if last > 0
            else [after_chip]
        )
    return out


def run(
    aois: Sequence[Aoi],
    *,
    settings: Settings,
    period: Period | None,
    out_dir: Path,
    incremental: bool = False,
    force: bool = False,
    progress: bool | None = None,
    command: str = "",
) -> list[AoiResult]:
    """Run every AOI under the run lock, recording each in the run ledger.

    One AOI's failure is recorded with its error and does not stop the others.

    Parameters
    ----------
    aois
        AOIs to process, in order.
    settings
        Resolved settings; ``settings.state_path`` holds the ledger and its lock.
    period
        Period to process; None = everything available (or, with ``incremental``, what is
        new since the AOI's last successful run, see :mod:`pipeline.ops.incremental`).
    out_dir
        Outputs go to ``out_dir/<aoi_id>/``; ``out_dir/summary.json`` sums the run up.
    incremental
        Nightly mode: skip inputs already processed (only when ``period`` is None).
    force
        Recompute AOIs whose identical run (same inputs, settings, code) already finished.
    progress
        tqdm bar over AOIs on stderr; None = only when stderr is a terminal.
    command
        Command line recorded in the ledger (default ``sys.argv``).

    Raises
    ------
    LockHeldError
        Another run holds the lock (exit code 3).
    """
    from pipeline.ops.runloop import run_all

    return run_all(
        aois,
        settings=settings,
        period=period,
        out_dir=out_dir,
        run_one=run_aoi,
        make_id=make_run_id,
        result_type=AoiResult,
        incremental=incremental,
        force=force,
        progress=progress,
        command=command,
    )


def open_cube(aoi: Aoi, *, settings: Settings, period: Period | None = None) -> xr.Dataset:
    """The AOI's lazy reflectance cube, for notebooks (nothing is computed)."""
    root = sample_data_dir(settings.sample_data)
    scenes = [SceneSpec.from_mapping(s, root=root) for s in aoi.inputs.get("scenes", [])]
    if not scenes:
        raise NoDataError(f"AOI '{aoi.aoi_id}' lists no scenes in its inputs.")
    return LocalFolderSource(scenes).load(aoi, period, bands=SCENE_BANDS, chunks=settings.detect.chunk_px)
