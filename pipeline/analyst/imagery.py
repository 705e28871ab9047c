"""Imagery for analysts: the AOI's lazy cube, true colour, the lazy detection rasters and
detection on demand, each exactly as the nightly run builds it.

Rasters are on the AOI's UTM grid (``aoi.utm_crs``, metres) with dims ``("time", "y", "x")``
or ``("y", "x")``; vector results are GeoDataFrames in EPSG:4326.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import xarray as xr

from pipeline.core.config import Settings, load_settings, settings_or_default
from pipeline.core.errors import ConfigError, NoDataError
from pipeline.core.periods import Period, parse_period
from pipeline.core.records import Aoi
from pipeline.detect.scene import scene_products as _products
from pipeline.ingest.paths import sample_data_dir
from pipeline.ingest.scene_places import group_places
from pipeline.ingest.scenes import SceneSpec
from pipeline.ingest.training import sensor_bands
from pipeline.ops.imagery import open_cube
from pipeline.ops.imagery_detect import imagery_detections
from pipeline.state.models import load_model, load_turbidity_calibration


def notebook_settings(**overrides: Any) -> Settings:
    """Settings for a notebook started anywhere inside the repository.

    ``aoi_dir`` is ``<repo>/aoi``; the sample data is ``ASM_SAMPLE_DATA`` when set, else
    ``<repo>/../shared/data``; ``overrides`` are shaped like the TOML file
    (``detect={"min_area_ha": 1.0}``). The repository is the nearest folder, from the current
    one upwards, holding both ``aoi/`` and ``pipeline/``.
    """
    here = Path.cwd().resolve()
    repo = next(
        (p for p in (here, *here.parents) if (p / "aoi").is_dir() and (p / "pipeline").is_dir()), None
    )
    if repo is None:
        raise ConfigError(f"{here} is not inside the asm-monitor repository. Start Jupyter in the repo.")
    cli: dict[str, Any] = {"aoi_dir": repo / "aoi"}
    if not os.environ.get("ASM_SAMPLE_DATA"):
        cli["sample_data"] = repo.parent / "shared" / "data"
    return load_settings(None, cli=cli | overrides)


def as_period(period: Period | str | None) -> Period | None:
    """A period given as text (``2024``, ``2024Q3``, ``2024-01-01/2024-06-30``) parsed."""
    return parse_period(period) if isinstance(period, str) else period


def canonical_cube(
    aoi: Aoi, *, settings: Settings | None = None, period: Period | str | None = None
) -> xr.Dataset:
    """The AOI's lazy reflectance cube with canonical band names.

    Returns
    -------
    xr.Dataset
        Variables ``blue, green, red, nir, swir1`` (surface reflectance 0-1, float32, NaN =
        nodata), dims ``("time", "y", "x")``, dask-backed, in ``aoi.utm_crs``. Nothing is read
        until you compute or plot.
    """
    cube = open_cube(aoi, settings=settings_or_default(settings), period=as_period(period))
    rename = {v: k for k, v in sensor_bands("sentinel2").items() if v in cube}
    return cube.rename(rename)


def true_colour(cube: xr.Dataset, *, time: int = -1) -> xr.DataArray:
    """Red, green, blue reflectance of one date, lazily, for ``.plot.imshow(rgb="band")``.

    Returns
    -------
    xr.DataArray
        Dims ``("band", "y", "x")``, band = ``red, green, blue``, reflectance 0-1.
    """
    rgb = cube[["red", "green", "blue"]].to_array("band")
    return rgb.isel(time=time) if "time" in rgb.dims else rgb


def scene_products(
    aoi: Aoi, *, settings: Settings | None = None, period: Period | str | None = None
) -> xr.Dataset:
    """Lazy detection rasters of an imagery AOI, exactly as the nightly run builds them.

    Uses the trained classifier when ``detect.model_path`` is set, else the index rules, and
    the configured (or shipped) turbidity calibration.

    Returns
    -------
    xr.Dataset
        Dims ``("y", "x")`` on ``aoi.utm_crs``: ``landcover`` (uint8 codes of
        :data:`pipeline.detect.landcover.CLASS_NAMES`), ``ndvi``, ``bsi``, ``turbidity_fnu``
        (Dogliotti, FNU, water only), ``turbidity_cal_fnu`` (calibrated, FNU), ``mining``,
        ``turbid`` (bool); see :func:`pipeline.detect.scene.scene_products`.
    """
    s = settings_or_default(settings)
    model = None
    if s.detect.model_path:
        model, _ = load_model(Path(s.detect.model_path), expected_sha256=s.detect.model_sha256 or None)
    cal = load_turbidity_calibration(
        Path(s.detect.turbidity_calibration) if s.detect.turbidity_calibration else None
    )
    cube = canonical_cube(aoi, settings=s, period=period)
    return _products(cube, params=s.detect, model=model, calibration=cal)


@dataclass(frozen=True)
class Detections:
    """What :func:`detect_aoi` found."""

    frame: gpd.GeoDataFrame
    """Detection rows of DESIGN.md (EPSG:4326): ``kind``, ``area_ha``, ``confidence``..."""
    evidence: dict[str, Any]
    """Scene-level evidence: valid fraction, class fractions, water median FNU."""


def detect_aoi(
    aoi: Aoi,
    *,
    settings: Settings | None = None,
    period: Period | str | None = None,
    **detect: Any,
) -> Detections:
    """Run detection on an imagery AOI (computes; nothing is written).

    Parameters
    ----------
    detect
        Overrides of :class:`pipeline.core.config.DetectParams`, e.g. ``min_area_ha=1.0``.
    """
    s = settings_or_default(settings)
    if detect:
        s = s.with_overrides({"detect": detect})
    root = sample_data_dir(s.sample_data)
    scenes = [SceneSpec.from_mapping(x, root=root) for x in aoi.inputs.get("scenes", [])]
    if not scenes:
        raise NoDataError(f"AOI '{aoi.aoi_id}' lists no scenes; use impact() for detection-only AOIs.")
    places = group_places(scenes, within=aoi.geometry)
    frame, evidence = imagery_detections(aoi, scenes, places=places, settings=s, period=as_period(period))
    return Detections(frame=frame, evidence=evidence)
