"""Computed scene rasters -> the AOI's Detection rows: stable ids, provenance and the
evidence a run records (class fractions, valid fraction, water turbidity)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import date
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
from affine import Affine
from pyproj import CRS

from pipeline.core.config import DetectParams
from pipeline.core.errors import ModelError, NoDataError
from pipeline.core.records import CONFIRMED, DETECTION_COLUMNS, KIND_MINING, PROBABLE, empty_detections
from pipeline.detect.classify import PixelClassifier
from pipeline.detect.landcover import CLASS_NAMES, VALID_CODES
from pipeline.detect.scene_blocks import SceneRasters, scene_detections_sparse
from pipeline.detect.vectorize import vectorize_mask

#: Evidence columns kept when the detector produced them.
EXTRA_COLUMNS = (
    "mean_probability",
    "mean_ndvi_before",
    "mean_ndvi_after",
    "ndvi_drop",
    "median_turbidity_cal_fnu",
)


def check_sensor(model: PixelClassifier | None, *, sensor: str, where: str) -> None:
    """Refuse a classifier trained on another sensor's band scaling.

    Raises
    ------
    ModelError
        ``model.sensor`` differs from ``sensor``.
    """
    if model is not None and model.sensor != sensor:
        raise ModelError(f"Model {where} is for {model.sensor}; scenes are {sensor}. Retrain.")


def detection_id(aoi_id: str, kind: str, wkb_hex: str) -> str:
    """Stable id of a detection: the same AOI, kind and outline give the same id."""
    return hashlib.sha256(f"{aoi_id}|{kind}|{wkb_hex}".encode()).hexdigest()[:16]


def scene_detection_rows(
    rasters: SceneRasters,
    *,
    aoi_id: str,
    transform: Affine,
    crs: CRS,
    area_crs: CRS,
    params: DetectParams,
    period_label: str,
    model: PixelClassifier | None,
    model_sha256: str | None,
) -> tuple[gpd.GeoDataFrame, dict[str, Any]]:
    """Detection rows (EPSG:4326, :data:`~pipeline.core.records.DETECTION_COLUMNS` plus
    the evidence the detector had) and the run's evidence summary for one AOI's computed
    rasters.

    Raises
    ------
    NoDataError
        Every pixel is nodata or masked: there is nothing to detect on.
    """
    counts = rasters.class_counts()
    n_pixels = int(counts.sum())
    n_valid = int(counts[list(VALID_CODES)].sum())
    if n_valid == 0:
        raise NoDataError(f"AOI '{aoi_id}': every pixel is nodata or masked. No usable scene.")
    found = scene_detections_sparse(
        rasters, transform=transform, crs=crs, area_crs=area_crs, min_area_ha=params.min_area_ha
    )
    evidence = {
        "pixels": n_pixels,
        "valid_fraction": n_valid / n_pixels,
        "detector": "classifier" if model is not None else "index rules",
        "model_sha256": model_sha256,
        "class_fractions": {
            name: float(counts[code] / max(n_valid, 1))
            for code, name in CLASS_NAMES.items()
            if code in VALID_CODES
        },
        "water_median_fnu": rasters.water_median("turbidity_fnu"),
        "water_median_cal_fnu": rasters.water_median("turbidity_cal_fnu"),
    }
    if found.empty:
        return empty_detections(), evidence
    found = found.assign(
        detection_id=[
            detection_id(aoi_id, k, g.wkb_hex) for k, g in zip(found["kind"], found.geometry, strict=True)
        ],
        aoi_id=aoi_id,
        period=period_label,
        source="asm-monitor classifier" if model is not None else "asm-monitor index detector",
        mined_area_ha=np.nan,
    )
    extra = [c for c in EXTRA_COLUMNS if c in found]
    return found[[*DETECTION_COLUMNS, *extra, "geometry"]], evidence


def mining_rows(
    change: dict[str, np.ndarray],
    *,
    aoi_id: str,
    transform: Affine,
    crs: CRS,
    area_crs: CRS,
    min_area_ha: float,
    first_seen: date | None,
    last_seen: date | None,
    period_label: str,
    confidence: str,
    dates: Mapping[str, np.ndarray] | None = None,
) -> gpd.GeoDataFrame:
    """Detection rows of a computed :func:`~pipeline.detect.mining_change.mining_change`
    (``mining``, ``score``, and optionally ``ndvi_before`` / ``ndvi_after`` arrays): one
    polygon per 8-connected patch of mining pixels of at least ``min_area_ha``, EPSG:4326,
    with the best window score and the NDVI before / after as evidence.

    ``dates`` (per-pixel arrays on the same grid: ``first_seen`` / ``last_seen`` day numbers
    since 1970-01-01, ``confirmed`` 0/1, as a baseline fold keeps them) date each polygon by
    its own pixels instead: its earliest ``first_seen``, its latest ``last_seen``, and
    ``confirmed`` when any of its pixels is; ``first_seen`` / ``last_seen`` / ``confidence``
    are then only the fallback of a polygon without dated pixels."""
    stats: dict[str, np.ndarray] = {
        k: change[k] for k in ("score", "ndvi_before", "ndvi_after") if k in change
    }
    reduce = {f"_{k}": (v, _HOW[k]) for k, v in (dates or {}).items() if k in _HOW}
    found = vectorize_mask(
        change["mining"],
        transform=transform,
        crs=crs,
        area_crs=area_crs,
        min_area_ha=min_area_ha,
        stats=stats,
        reduce=reduce or None,
    )
    if found.empty:
        return empty_detections()
    firsts, lasts, kinds = _polygon_dates(
        found, first_seen=first_seen, last_seen=last_seen, confidence=confidence
    )
    found = found.assign(
        kind=KIND_MINING,
        first_seen=firsts,
        last_seen=lasts,
        confidence=kinds,
        aoi_id=aoi_id,
        period=period_label,
        source="asm-monitor gold-mining detector",
        mined_area_ha=found["area_ha"],
        mean_ndvi=found.get("mean_ndvi_after", np.nan),
        mean_bsi=np.nan,
        mean_turbidity_fnu=np.nan,
        median_turbidity_fnu=np.nan,
    )
    found["detection_id"] = [detection_id(aoi_id, KIND_MINING, g.wkb_hex) for g in found.geometry]
    if "mean_ndvi_before" in found and "mean_ndvi_after" in found:
        found["ndvi_drop"] = found["mean_ndvi_before"] - found["mean_ndvi_after"]
    extra = [c for c in ("mean_score", "mean_ndvi_before", "mean_ndvi_after", "ndvi_drop") if c in found]
    return found[[*DETECTION_COLUMNS, *extra, "geometry"]]


#: How a polygon reduces each per-pixel date layer of :func:`mining_rows`.
_HOW = {"first_seen": "min", "last_seen": "max", "confirmed": "max"}
_EPOCH = date(1970, 1, 1).toordinal()


def _polygon_dates(
    found: gpd.GeoDataFrame, *, first_seen: date | None, last_seen: date | None, confidence: str
) -> tuple[list[date | None], list[date | None], list[str]]:
    """Each polygon's first / last date and confidence: its reduced per-pixel layers where
    :func:`mining_rows` had them, else the scalar fallback."""

    def day(column: str, fallback: date | None) -> list[date | None]:
        if column not in found:
            return [fallback] * len(found)
        return [fallback if pd.isna(v) else date.fromordinal(_EPOCH + int(v)) for v in found[column]]

    kinds = [confidence] * len(found)
    if "_confirmed" in found:
        kinds = [
            confidence if pd.isna(v) else (CONFIRMED if v >= 1 else PROBABLE) for v in found["_confirmed"]
        ]
    return day("_first_seen", first_seen), day("_last_seen", last_seen), kinds
