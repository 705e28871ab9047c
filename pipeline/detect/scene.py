"""The detection graph of one AOI: bands -> indices, classes, change, turbidity (lazy),
and computed rasters -> Detection polygons.

:func:`scene_products` builds every product lazily (nothing is computed) for notebooks and
small AOIs; :func:`scene_detections` turns the computed arrays into the Detection rows of
DESIGN.md with their evidence statistics. Whole tiles go through
:mod:`pipeline.detect.scene_blocks` instead (what ``run.py`` computes): the same rows, chunk
by chunk, without holding the float rasters of the AOI in memory.
"""

from __future__ import annotations

from collections.abc import Mapping

import geopandas as gpd
import numpy as np
import pandas as pd
import xarray as xr
from affine import Affine
from pyproj import CRS

from pipeline.core.config import DetectParams
from pipeline.core.errors import RasterError
from pipeline.core.records import KIND_MINING, KIND_TURBIDITY, PROBABLE, WGS84
from pipeline.detect.change import STATUS_CONFIRMED, change_polygons, clean_mask, detect_change
from pipeline.detect.classify import PixelClassifier, classify_pixels
from pipeline.detect.indices import bsi, mndwi, ndvi
from pipeline.detect.landcover import BARE, WATER_CLEAR, WATER_TURBID, classify_indices
from pipeline.detect.turbidity import TurbidityCalibration, calibrated_fnu, dogliotti_fnu
from pipeline.detect.vectorize import vectorize_mask

CANONICAL = ("blue", "green", "red", "nir", "swir1")


def detection_cube(cube: xr.Dataset) -> xr.Dataset:
    """``cube`` checked for the canonical bands, with a ``time`` axis (one undated step when
    it had none): what both detection paths start from.

    Raises
    ------
    RasterError
        A canonical band is missing.
    """
    missing = [b for b in CANONICAL if b not in cube]
    if missing:
        raise RasterError(
            f"Detection needs bands {list(CANONICAL)}; missing {missing}. Map them in classes.toml."
        )
    if "time" not in cube.dims:
        cube = cube.expand_dims(time=[np.datetime64("NaT", "ns")])
    return cube


def scene_products(
    cube: xr.Dataset,
    *,
    params: DetectParams,
    model: PixelClassifier | None = None,
    calibration: TurbidityCalibration | None = None,
) -> xr.Dataset:
    """Lazy detection rasters for one AOI.

    Parameters
    ----------
    cube
        Canonical band variables (``blue, green, red, nir, swir1``; reflectance 0-1, NaN =
        no data or cloud), dims ``("time", "y", "x")``, in the AOI's UTM CRS.
    model
        Pixel classifier; ``None`` uses the index rules of :mod:`pipeline.detect.landcover`.
    calibration
        In-situ turbidity calibration; adds ``turbidity_cal_fnu``.

    Returns
    -------
    xr.Dataset
        Dims ``("y", "x")``: ``landcover`` (latest date), ``probability``, ``ndvi``, ``bsi``
        (median over dates), ``turbidity_fnu`` (Dogliotti, water only, latest date),
        ``mining`` (bool candidate mask; with two or more dates after morphological
        cleanup), ``turbid`` (bool), ``confirmed``
        (bool), ``first_seen`` / ``last_seen`` (datetime64[ns]), and with two or more
        dates ``ndvi_before`` / ``ndvi_after`` (baseline / later medians).
    """
    cube = detection_cube(cube)
    v = ndvi(cube["nir"], cube["red"])
    w = mndwi(cube["green"], cube["swir1"])
    s = bsi(cube["blue"], cube["red"], cube["nir"], cube["swir1"])
    fnu = dogliotti_fnu(cube["red"], cube["nir"])
    if model is not None:
        classes = classify_pixels(
            {b: cube[b] for b in CANONICAL}, model=model, turbid_fnu_min=params.turbid_fnu_min
        )
        landcover, prob = classes["landcover"], classes["probability"]
    else:
        landcover = classify_indices(v, w, s, fnu.where(w > params.water_mndwi_min), params=params)
        prob = xr.full_like(v, np.nan)
    water = (landcover == WATER_CLEAR) | (landcover == WATER_TURBID)
    latest = {"time": -1}
    out = xr.Dataset(
        {
            "landcover": landcover.isel(latest, drop=True),
            "probability": prob.isel(latest, drop=True),
            "ndvi": v.median("time") if cube.sizes["time"] > 1 else v.isel(latest, drop=True),
            "bsi": s.median("time") if cube.sizes["time"] > 1 else s.isel(latest, drop=True),
            "turbidity_fnu": fnu.where(water).isel(latest, drop=True),
        }
    )
    if calibration is not None:
        cal = calibrated_fnu({b: cube[b] for b in calibration.bands()}, calibration=calibration)
        out["turbidity_cal_fnu"] = cal.where(water).isel(latest, drop=True)
    n = cube.sizes["time"]
    if n > 1:
        steps = min(params.change_baseline_steps, n - 1)
        change = detect_change(landcover, baseline_steps=steps, confirm_after=params.change_confirm_after)
        mining = clean_mask(change["status"] > 0, radius_px=params.cleanup_radius_px)
        out["mining"] = mining
        out["confirmed"] = mining & (change["status"] == STATUS_CONFIRMED)
        out["first_seen"] = change["first_seen"]
        out["last_seen"] = change["last_seen"]
        out["ndvi_before"] = v.isel(time=slice(0, steps)).median("time")
        out["ndvi_after"] = v.isel(time=slice(steps, None)).median("time")
    else:
        when = cube["time"].values[-1]
        # One date has no temporal confirmation; an opening would also erase the thin
        # tailings channels and roads of a single scene, so only the MMU filters it.
        out["mining"] = out["landcover"] == BARE
        out["confirmed"] = xr.zeros_like(out["mining"])
        out["first_seen"] = xr.full_like(out["ndvi"], when, dtype="datetime64[ns]")
        out["last_seen"] = out["first_seen"]
    out["turbid"] = out["landcover"] == WATER_TURBID
    return out


def scene_detections(
    products: Mapping[str, np.ndarray],
    *,
    transform: Affine,
    crs: CRS,
    area_crs: CRS,
    min_area_ha: float,
) -> gpd.GeoDataFrame:
    """Mining and turbidity polygons of computed :func:`scene_products` arrays.

    Returns
    -------
    GeoDataFrame
        EPSG:4326: ``kind``, ``area_ha``, ``first_seen``, ``last_seen``, ``confidence`` and
        evidence ``mean_ndvi``, ``mean_bsi``, ``mean_/median_turbidity_fnu``,
        ``mean_probability`` (mean winning-class probability), and with a time series
        ``mean_ndvi_before``, ``mean_ndvi_after``, ``ndvi_drop``.
    """
    stats = {k: products[k] for k in ("ndvi", "bsi", "turbidity_fnu", "probability") if k in products}
    for k in ("ndvi_before", "ndvi_after", "turbidity_cal_fnu"):
        if k in products:
            stats[k] = products[k]
    status = np.where(products["mining"], np.where(products["confirmed"], STATUS_CONFIRMED, 1), 0)
    mining = change_polygons(
        status.astype(np.uint8),
        products["first_seen"],
        products["last_seen"],
        stats=stats,
        transform=transform,
        crs=crs,
        area_crs=area_crs,
        min_area_ha=min_area_ha,
    ).assign(kind=KIND_MINING)
    if np.isnat(products["first_seen"][products["mining"]]).all():
        mining = mining.assign(first_seen=None, last_seen=None)
    turbid = vectorize_mask(
        products["turbid"],
        stats=stats,
        transform=transform,
        crs=crs,
        area_crs=area_crs,
        min_area_ha=min_area_ha,
    )
    dates = products["last_seen"][products["turbid"]] if "last_seen" in products else None
    return combine_detections(mining, turbid, turbid_dates=dates)


def combine_detections(
    mining: gpd.GeoDataFrame, turbid: gpd.GeoDataFrame, *, turbid_dates: np.ndarray | None
) -> gpd.GeoDataFrame:
    """Mining and turbid-water polygons as one Detection table (EPSG:4326). Turbid water is
    dated by the last valid observation under it (``turbid_dates``, datetime64 per turbid
    pixel), being a state of the water rather than a change."""
    turbid = turbid.assign(kind=KIND_TURBIDITY, confidence=PROBABLE, first_seen=None, last_seen=None)
    if len(turbid) and turbid_dates is not None:
        when = turbid_dates[~np.isnat(turbid_dates)]
        if when.size:
            day = pd.Timestamp(when.max()).date()
            turbid = turbid.assign(first_seen=day, last_seen=day)
    found = gpd.GeoDataFrame(
        pd.concat([f for f in (mining, turbid) if len(f)] or [mining], ignore_index=True),
        geometry="geometry",
        crs=WGS84,
    )
    if "mean_ndvi_before" in found:
        found["ndvi_drop"] = found["mean_ndvi_before"] - found["mean_ndvi_after"]
    return found
