"""Analyst analyses: river turbidity at sites, in-situ matchups, protected-area impact.

Wrappers over :mod:`pipeline.detect.rivers`, :mod:`pipeline.detect.turbidity` and
:mod:`pipeline.comply.impact` for notebooks; computes on purpose (like ``run.py``).
Re-exported by :mod:`pipeline.analyst.api` and ``pipeline``. Rasters are on the AOI's UTM grid,
vectors in EPSG:4326, hectares in the AOI's equal-area CRS.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import xarray as xr
from scipy import ndimage

from pipeline.analyst.imagery import scene_products
from pipeline.comply.impact import ImpactTables, impact_tables
from pipeline.core.config import Settings, settings_or_default
from pipeline.core.errors import ConfigError, NoDataError
from pipeline.core.records import KIND_MINING, WGS84, Aoi
from pipeline.detect.landcover import WATER_CLEAR, WATER_TURBID
from pipeline.detect.rivers import reach_turbidity

# ---- turbidity -----------------------------------------------------------------------------


@dataclass(frozen=True)
class RiverTurbidity:
    """What :func:`river_turbidity` computed."""

    reaches: pd.DataFrame
    """Per site and reach length: ``reach_m``, ``upstream_fnu``, ``downstream_fnu`` (medians,
    FNU), pixel counts (:func:`pipeline.detect.rivers.reach_turbidity`)."""
    profile: pd.DataFrame
    """Per site and distance bin along the flow: ``distance_m`` (bin centre; negative =
    upstream), ``median_fnu``, ``pixels``."""
    fnu: xr.DataArray
    """Computed turbidity raster (FNU, NaN off water), ``("y", "x")`` on ``aoi.utm_crs``."""


def river_turbidity(
    aoi: Aoi,
    sites: gpd.GeoDataFrame,
    *,
    flow_azimuth_deg: float,
    settings: Settings | None = None,
    reach_m: tuple[float, ...] = (250.0, 500.0, 1000.0, 2000.0),
    gap_m: float = 100.0,
    bin_m: float = 100.0,
    calibrated: bool = False,
) -> RiverTurbidity:
    """Turbidity upstream and downstream of each site along its river (computes).

    Parameters
    ----------
    sites
        Points or polygons (any CRS) with ``site_id``.
    flow_azimuth_deg
        Direction the river flows (degrees clockwise from north).
    reach_m
        Reach lengths each side of the site (m) for the upstream / downstream medians.
    bin_m
        Bin width of the profile along the flow (m); it spans ``max(reach_m)`` each side.
    calibrated
        Use the in-situ calibrated FNU instead of Dogliotti's.
    """
    products = scene_products(aoi, settings=settings)
    name = "turbidity_cal_fnu" if calibrated else "turbidity_fnu"
    computed = products[[name, "landcover"]].compute()
    fnu = computed[name]
    water = computed["landcover"].isin([WATER_CLEAR, WATER_TURBID]).to_numpy()
    transform, crs = products.rio.transform(), aoi.utm_crs
    reaches = pd.concat(
        [
            reach_turbidity(
                fnu.to_numpy(),
                water,
                sites,
                transform=transform,
                crs=crs,
                reach_m=r,
                gap_m=gap_m,
                flow_azimuth_deg=flow_azimuth_deg,
            ).assign(reach_m=r)
            for r in reach_m
        ],
        ignore_index=True,
    )
    profile = _profile(
        fnu.to_numpy(),
        water,
        sites.to_crs(crs),
        transform=transform,
        azimuth=flow_azimuth_deg,
        half=max(reach_m),
        bin_m=bin_m,
    )
    return RiverTurbidity(reaches=reaches, profile=profile, fnu=fnu)


def _profile(
    fnu: np.ndarray,
    water: np.ndarray,
    sites: gpd.GeoDataFrame,
    *,
    transform: Any,
    azimuth: float,
    half: float,
    bin_m: float,
) -> pd.DataFrame:
    # the same geometry as reach_turbidity's azimuth mode: the site's connected water body,
    # pixels within `half` across the flow axis, binned along it
    labels, _ = ndimage.label(water, structure=np.ones((3, 3), dtype=int))
    rows, cols = np.nonzero(water)
    xs = transform.c + (cols + 0.5) * transform.a + (rows + 0.5) * transform.b
    ys = transform.f + (cols + 0.5) * transform.d + (rows + 0.5) * transform.e
    az = np.deg2rad(azimuth)
    edges = np.arange(-half, half + bin_m, bin_m)
    out = []
    for sid, p in zip(sites["site_id"], sites.geometry.representative_point(), strict=True):
        if len(xs) == 0:
            continue
        nearest = int(np.argmin((xs - p.x) ** 2 + (ys - p.y) ** 2))
        same = labels[rows, cols] == labels[rows[nearest], cols[nearest]]
        along = (xs - p.x) * np.sin(az) + (ys - p.y) * np.cos(az)
        across = np.abs(-(xs - p.x) * np.cos(az) + (ys - p.y) * np.sin(az))
        values = fnu[rows, cols]
        keep = same & (across <= half) & np.isfinite(values)
        index = np.digitize(along[keep], edges) - 1
        for i in range(len(edges) - 1):
            v = values[keep][index == i]
            out.append(
                {
                    "site_id": sid,
                    "distance_m": float((edges[i] + edges[i + 1]) / 2),
                    "median_fnu": float(np.median(v)) if v.size else np.nan,
                    "pixels": int(v.size),
                }
            )
    return pd.DataFrame(out, columns=["site_id", "distance_m", "median_fnu", "pixels"])


def turbidity_matchups(
    path: Path | str | None = None, *, settings: Settings | None = None, train_until: str = "2018-12-31"
) -> pd.DataFrame:
    """In-situ turbidity matchups with the satellite estimates beside them.

    Parameters
    ----------
    path
        Matchup CSV; default the SAMEEP La Toma file of the sample data.
    train_until
        Rows after this date are marked ``held_out`` (the shipped calibration was fitted on
        2017-2018).

    Returns
    -------
    pd.DataFrame
        ``date``, ``turbidity`` (in situ, NTU), ``calibrated_fnu`` (shipped / configured
        calibration), ``dogliotti_fnu``, the canonical bands (reflectance) and ``held_out``.
    """
    from pipeline.detect.turbidity import dogliotti_kernel
    from pipeline.ingest.training import read_turbidity_matchups
    from pipeline.state.models import load_turbidity_calibration

    s = settings_or_default(settings)
    csv = (
        Path(path)
        if path is not None
        else s.sample_data / "turbidity" / "sameep_la_toma_matchups_2017_2019.csv"
    )
    frame, _ = read_turbidity_matchups(csv)
    cal = load_turbidity_calibration(
        Path(s.detect.turbidity_calibration) if s.detect.turbidity_calibration else None
    )
    bands = {b: frame[b].to_numpy(np.float64) for b in cal.bands()}
    return frame.assign(
        calibrated_fnu=cal.predict(bands),
        dogliotti_fnu=dogliotti_kernel(frame["red"].to_numpy(np.float32), frame["nir"].to_numpy(np.float32)),
        held_out=frame["date"] > pd.Timestamp(train_until),
    )


# ---- impact --------------------------------------------------------------------------------


def load_zones(
    path: Path | str,
    *,
    settings: Settings | None = None,
    id_column: str = "id",
    name_column: str = "name_field",
    designation: str = "indigenous territory",
) -> gpd.GeoDataFrame:
    """Protected areas / territories as impact zones (``zone_id``, ``name``, ``designation``).

    ``path`` is relative to the sample data (e.g.
    ``boundaries/indigenous_territories_amw.geojson``); rows without a name are named by id.
    """
    from pipeline.ingest.vectors import read_vector

    s = settings_or_default(settings)
    raw = read_vector(s.sample_data / path if not Path(path).is_absolute() else Path(path))
    for col in (id_column, name_column):
        if col not in raw.columns:
            raise ConfigError(f"{path} has no column {col!r}; it has {list(raw.columns)}.")
    names = raw[name_column].where(raw[name_column].notna(), raw[id_column]).astype(str)
    return gpd.GeoDataFrame(
        {"zone_id": raw[id_column].astype(str), "name": names, "designation": designation},
        geometry=raw.geometry.to_numpy(),
        crs=WGS84,
    )


def aoi_inputs(
    aoi: Aoi, *, settings: Settings | None = None
) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame | None]:
    """The AOI's external detections (clipped to it) and its registry as MineSites.

    Returns
    -------
    (detections, sites)
        EPSG:4326; ``sites`` is None when the AOI lists no registry.
    """
    from pipeline.comply.registry import to_mine_sites
    from pipeline.ingest.vectors import format_spec, read_external_detections, read_registry

    s = settings_or_default(settings)
    spec = aoi.inputs.get("detections")
    if not spec:
        raise NoDataError(f"AOI '{aoi.aoi_id}' lists no external detections; use detect_aoi().")
    det = read_external_detections(s.sample_data / spec["path"], fmt=spec.get("format", "native"))
    det = det[det.intersects(aoi.geometry)].reset_index(drop=True)
    sites = None
    reg = aoi.inputs.get("registry")
    if reg:
        raw = read_registry(
            s.sample_data / reg["path"], fmt=reg["format"], encoding=reg.get("encoding", "utf-8")
        )
        sites, _ = to_mine_sites(raw, spec=format_spec("registry", reg["format"]), aois=aoi.to_frame())
    return det, sites


def impact(
    aoi: Aoi, *, settings: Settings | None = None, zones: gpd.GeoDataFrame | None = None
) -> ImpactTables:
    """Mined hectares per zone and period, inside / outside titles, by licence phase.

    The AOI is always a zone; ``zones`` (from :func:`load_zones`) adds more. Only zones that
    some mining touches are kept. See :mod:`pipeline.comply.impact` for the arithmetic
    (detection footprints, equal-area CRS, each hectare counted once).
    """
    det, sites = aoi_inputs(aoi, settings=settings)
    mining = det[det["kind"] == KIND_MINING]
    if zones is not None and len(mining):
        zones = zones[zones.intersects(mining.union_all())]
    return impact_tables(det, aoi=aoi, sites=sites, zones=zones)


def with_detect(settings: Settings, **overrides: Any) -> Settings:
    """A copy of ``settings`` with :class:`~pipeline.core.config.DetectParams` overrides."""
    return replace(settings, detect=replace(settings.detect, **overrides))
