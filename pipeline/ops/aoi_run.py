"""One AOI end to end: ingest -> detect -> comply -> report.

The imagery it computes is :mod:`pipeline.ops.imagery`; the outputs are written as one set by
:mod:`pipeline.ops.outputs`; the night's loop over AOIs is :mod:`pipeline.ops.run`.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from pipeline.comply import evaluate
from pipeline.comply.impact import impact_tables
from pipeline.comply.registry import to_mine_sites
from pipeline.comply.rules import RULEBOOK_VERSION
from pipeline.core.config import Settings
from pipeline.core.periods import Period
from pipeline.core.records import DETECTION_COLUMNS, WGS84, Aoi, AoiResult, empty_detections
from pipeline.core.version import __version__
from pipeline.ingest.paths import sample_data_dir
from pipeline.ingest.scene_places import Place, group_places
from pipeline.ingest.scenes import SceneSpec
from pipeline.ingest.sources import scene_specs
from pipeline.ingest.vectors import external_detections_within, format_spec, read_registry
from pipeline.ops.imagery import flag_chips, place_images
from pipeline.ops.imagery_detect import imagery_detections
from pipeline.ops.incremental import input_fingerprints
from pipeline.ops.outputs import AoiProducts, staging_dir, swap_into_place, write_outputs
from pipeline.ops.river_stats import RULE as RIVER_RULE
from pipeline.ops.river_stats import river_statistics
from pipeline.report.alerts import alert_payloads
from pipeline.report.writer import deliver_after_run, map_link
from pipeline.state.audit import advance_flags, save_flags
from pipeline.state.licence_history import record_licences
from pipeline.state.runledger import model_hash


def _external(aoi: Aoi, spec: dict[str, Any], *, root: Path, period: Period | None) -> gpd.GeoDataFrame:
    # the files are read and spatially indexed once per process, then clipped per AOI
    frame = external_detections_within(
        root / spec["path"], fmt=spec.get("format", "native"), within=aoi.geometry
    )
    if period is not None:
        # a boolean array, not a list: an empty list would select columns, not rows
        keep = np.array([period.start <= d <= period.end for d in frame["last_seen"]], dtype=bool)
        frame = frame[keep]
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
        return empty_detections()
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
            # the model's bytes count (below), not the cache folder it happens to sit in
            "detect": {k: v for k, v in asdict(settings.detect).items() if k != "mining_model_path"},
            "comply": asdict(settings.comply),
            # a retrained model at the same path is a new run; an AOI without imagery uses none
            "models": model_hash(settings.detect) if aoi.inputs.get("scenes") else None,
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
    scenes = scene_specs(aoi, settings=settings, period=period)
    # where the imagery lies, read once for detection, chips and the map's image layers
    places = group_places(scenes, within=aoi.geometry) if scenes else []
    # the baselines live beside the state database of this output folder (a fresh folder: fresh state)
    state_dir = replace(settings, out_dir=out_dir).state_path.parent
    made = _detections(
        aoi, scenes=scenes, places=places, root=root, settings=settings, period=period, state_dir=state_dir
    )
    result.timings_s["detect"] = round(time.perf_counter() - t0, 3)

    t1 = time.perf_counter()
    made = _comply(
        aoi, made, root=root, settings=settings, period=period, out_dir=out_dir, run_id=result.run_id
    )
    result.timings_s["comply"] = round(time.perf_counter() - t1, 3)

    t2 = time.perf_counter()
    made = replace(
        made,
        chips=flag_chips(aoi, made.flags, settings=settings, period=period, places=places),
        images=place_images(aoi, places=places, settings=settings, period=period),
    )
    target = out_dir / aoi.aoi_id
    stage = staging_dir(out_dir, aoi.aoi_id, result.run_id)
    try:
        result = write_outputs(
            stage,
            made,
            target=target,
            result=result,
            aoi=aoi,
            settings=settings,
            period=period,
            out_dir=out_dir,
            inputs=inputs,
            started=started,
            t_report=t2,
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


def _detections(
    aoi: Aoi,
    *,
    scenes: list[SceneSpec],
    places: list[Place],
    root: Path,
    settings: Settings,
    period: Period | None,
    state_dir: Path | None = None,
) -> AoiProducts:
    """Every detection of the AOI: our imagery detector on its scenes and the external
    detections it names, with the attributions their sources require. The imagery
    detector's baselines live under ``state_dir`` (default: the state database's folder)."""
    evidence: dict[str, Any] = {}
    frames = [empty_detections()]
    attribution: list[str] = []
    if scenes:
        found, evidence = imagery_detections(
            aoi,
            scenes,
            places=places,
            settings=settings,
            period=period,
            state_dir=state_dir if state_dir is not None else settings.state_path.parent,
        )
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
    return AoiProducts(detections=detections, evidence=evidence, attribution=attribution)


def _comply(
    aoi: Aoi,
    made: AoiProducts,
    *,
    root: Path,
    settings: Settings,
    period: Period | None,
    out_dir: Path,
    run_id: str,
) -> AoiProducts:
    """The registry joined, rules applied, flags tracked against the previous state, and
    the impact tables."""
    sites = None
    registry_lines: list[str] = []
    attribution = list(made.attribution)
    if aoi.inputs.get("registry"):
        spec = aoi.inputs["registry"]
        raw = read_registry(root / spec["path"], fmt=spec["format"], encoding=spec.get("encoding", "utf-8"))
        sites, report = to_mine_sites(raw, spec=format_spec("registry", spec["format"]), aois=aoi.to_frame())
        registry_lines = report.lines()
        attribution.append("Mining titles: ANM SIGMINE" if spec["format"] == "sigmine" else "")
    # out_dir, not settings.out_dir, so a fresh output folder starts a fresh lifecycle
    state_path = replace(settings, out_dir=out_dir).state_path
    licences = (
        record_licences(state_path, aoi_id=aoi.aoi_id, sites=sites, run_id=run_id)
        if sites is not None
        else None
    )
    # upstream / downstream turbidity at the sites on a river, or why the rule cannot run here
    rivers = river_statistics(aoi, sites=sites, root=root, settings=settings, period=period)
    flags = evaluate(
        made.detections, aoi=aoi, sites=sites, river_stats=rivers.stats, params=settings.comply, run_id=run_id
    )
    # the state before this period gives each flag its status (a rerun gives the same one);
    # the alerts those statuses create are committed with them (a transactional outbox)
    step, lifecycle = advance_flags(
        flags, aoi=aoi, period=period, params=settings.comply, state_path=state_path
    )
    flags = lifecycle.flags
    # the AOI's own name stays the name of record; readers get theirs from aoi_names
    alerts = [
        {**alert, "aoi_names": dict(aoi.names)}
        for alert in alert_payloads(
            flags,
            map_link=map_link(aoi.aoi_id, base_url=settings.alerts.base_url),
            min_severity=settings.alerts.min_severity,
            aoi_name=aoi.name,
            aoi_country=aoi.country,
            aoi_collection=aoi.collection,
        )
    ]
    save_flags(step, lifecycle, aoi=aoi, run_id=run_id, state_path=state_path, alerts=alerts)
    return replace(
        made,
        flags=flags,
        alerts=alerts,
        sites=sites,
        licences=licences,
        impact=impact_tables(made.detections, aoi=aoi, sites=sites),
        registry_lines=registry_lines,
        attribution=attribution,
        evidence={
            **made.evidence,
            "rivers": rivers.evidence,
            "rules_not_evaluated": {RIVER_RULE: rivers.not_evaluated} if rivers.not_evaluated else {},
        },
    )
