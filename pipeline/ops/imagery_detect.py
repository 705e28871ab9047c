"""Detections from an AOI's imagery, by the configured detector: the trained gold-mining
change detector (default; each place's dates folded into a baseline kept between nights) with turbid water
from the index path, or the index-rules baseline for everything."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd

from pipeline.core.config import Settings
from pipeline.core.errors import ConfigError, NoDataError
from pipeline.core.periods import Period
from pipeline.core.records import KIND_TURBIDITY, WGS84, Aoi, empty_detections
from pipeline.ingest.scene_places import Place, scene_footprint
from pipeline.ingest.scene_spec import SceneSpec
from pipeline.ops.detector_model import mining_detector
from pipeline.ops.imagery import detect_from_scenes
from pipeline.ops.mining import mining_detections

DETECTORS = ("gold-change", "index-rules")


def imagery_detections(
    aoi: Aoi,
    scenes: Sequence[SceneSpec],
    *,
    places: Sequence[Place],
    settings: Settings,
    period: Period | None,
    state_dir: Path | None = None,
) -> tuple[gpd.GeoDataFrame, dict[str, Any]]:
    """Detection rows and evidence of the AOI's scenes (see the module docstring);
    ``places`` are those scenes grouped by footprint (:func:`group_places`); the gold-mining
    detector keeps each place's baseline under ``state_dir`` between nights
    (:mod:`pipeline.ops.mining`; None: nothing is kept).

    Raises
    ------
    ConfigError
        ``detect.detector`` names no known detector.
    """
    kind = settings.detect.detector
    if kind == "index-rules":
        return detect_from_scenes(aoi, scenes, settings=settings, period=period)
    if kind != "gold-change":
        raise ConfigError(f"detect.detector = {kind!r} is not one of {list(DETECTORS)}.")
    detector, sha = mining_detector(settings)
    mining, evidence = mining_detections(
        aoi,
        places,
        settings=settings,
        period=period,
        detector=detector,
        state_dir=state_dir,
        detector_sha256=sha,
    )
    frames, water, pixels = [mining], [], []
    for scene in _latest_scenes(places):
        # turbid water is a state of the latest view: one scene at a time on its own ground
        sub = replace(aoi, geometry=scene_footprint(scene).intersection(aoi.geometry))
        try:
            found, ev = detect_from_scenes(sub, [scene], settings=settings, period=period)
        except NoDataError:
            continue
        # the index path's mining is the baseline's; only its turbid water is kept here
        frames.append(found[found["kind"] == KIND_TURBIDITY])
        water.append(ev.get("water_median_fnu"))
        pixels.append((int(ev.get("pixels", 0)), float(ev.get("valid_fraction", 0.0))))
    rows = gpd.GeoDataFrame(
        pd.concat([f for f in frames if len(f)] or [empty_detections()], ignore_index=True),
        geometry="geometry",
        crs=WGS84,
    )
    evidence |= {
        "detector": "gold-change",
        "model_sha256": sha,
        "water_median_fnu": next((w for w in water if w is not None), None),
        # clear, valid pixels of the latest views, over every place
        "pixels": sum(n for n, _ in pixels),
        "valid_fraction": sum(n * f for n, f in pixels) / max(sum(n for n, _ in pixels), 1),
    }
    return rows, evidence


def _latest_scenes(places: Sequence[Place]) -> list[SceneSpec]:
    """Per place, the scenes of its latest date (all of a place's scenes when undated)."""
    out: list[SceneSpec] = []
    for place in places:
        days = [s.datetime for s in place.scenes if s.datetime is not None]
        last = max(days) if days else None
        out += [s for s in place.scenes if s.datetime == last]
    return out
