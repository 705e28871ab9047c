"""The analyst API: thin, documented wrappers over the code the nightly run uses.

Notebooks call these and define no logic of their own. Everything here either stays lazy
(``canonical_cube``, ``scene_products``, ``true_colour``) or, like ``run.py``, computes on
purpose and says so (``detect_aoi``, ``river_turbidity``). Threshold sweeps live in
:mod:`pipeline.analyst.tuning`.

Conventions: rasters are on the AOI's UTM grid (``aoi.utm_crs``, metres) with dims
``("time", "y", "x")`` or ``("y", "x")``; vector results are GeoDataFrames in EPSG:4326;
hectares are measured in the AOI's equal-area CRS.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
import xarray as xr

from pipeline.core.config import Settings, load_settings, settings_or_default
from pipeline.core.errors import ConfigError, NoDataError
from pipeline.core.periods import Period, parse_period
from pipeline.core.records import KIND_MINING, WGS84, Aoi
from pipeline.ops.run import AoiResult


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


def _period(period: Period | str | None) -> Period | None:
    return parse_period(period) if isinstance(period, str) else period


# ---- imagery and detection ---------------------------------------------------------------


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
    from pipeline.ingest.training import sensor_bands
    from pipeline.ops.run import open_cube

    cube = open_cube(aoi, settings=settings_or_default(settings), period=_period(period))
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
    from pipeline.detect.scene import scene_products as _products
    from pipeline.state.models import load_model, load_turbidity_calibration

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
    from pipeline.ingest.paths import sample_data_dir
    from pipeline.ingest.scenes import SceneSpec
    from pipeline.ops.run import detect_from_scenes

    s = settings_or_default(settings)
    if detect:
        s = s.with_overrides({"detect": detect})
    root = sample_data_dir(s.sample_data)
    scenes = [SceneSpec.from_mapping(x, root=root) for x in aoi.inputs.get("scenes", [])]
    if not scenes:
        raise NoDataError(f"AOI '{aoi.aoi_id}' lists no scenes; use impact() for detection-only AOIs.")
    frame, evidence = detect_from_scenes(aoi, scenes, settings=s, period=_period(period))
    return Detections(frame=frame, evidence=evidence)


KIND_COLOURS = {KIND_MINING: "#d62728", "turbidity": "#8c564b"}


def explore(
    aoi: Aoi,
    detections: gpd.GeoDataFrame,
    *,
    fields: tuple[str, ...] = ("kind", "area_ha", "confidence", "first_seen", "mean_ndvi"),
) -> Any:
    """An interactive folium map of the AOI outline and detections, coloured by ``kind``,
    for a notebook cell (the buyer map of a run is ``map.html`` in its output folder).

    Returns
    -------
    folium.Map
        Hover a detection for ``fields``; basemap tiles load only when the map is viewed.
    """
    import folium

    shown = [f for f in fields if f in detections.columns]
    table = detections.to_crs(WGS84)[[*shown, "geometry"]].copy()
    for col in shown:
        # dates and NaN are not JSON; rounded text is what a tooltip shows anyway
        table[col] = [
            v if isinstance(v, str) else "" if pd.isna(v) else f"{v:.3g}" if isinstance(v, float) else str(v)
            for v in table[col]
        ]
    minx, miny, maxx, maxy = aoi.geometry.bounds
    fmap = folium.Map(tiles="OpenStreetMap", control_scale=True)
    fmap.fit_bounds([[miny, minx], [maxy, maxx]])
    folium.GeoJson(
        aoi.to_frame()[["aoi_id", "name", "geometry"]],
        name="AOI",
        style_function=lambda _: {"fill": False, "color": "#1f77b4", "weight": 3},
    ).add_to(fmap)
    if len(table):
        folium.GeoJson(
            table,
            name="detections",
            style_function=lambda f: {
                "color": KIND_COLOURS.get(f["properties"].get("kind"), "#555555"),
                "fillOpacity": 0.5,
                "weight": 1,
            },
            tooltip=folium.GeoJsonTooltip(fields=shown) if shown else None,
        ).add_to(fmap)
    folium.LayerControl().add_to(fmap)
    return fmap


def run_aoi(
    aoi: Aoi, *, out_dir: Path | str, settings: Settings | None = None, period: Period | str | None = None
) -> AoiResult:
    """Run one AOI end to end into ``out_dir/<aoi_id>/`` like ``asm-monitor run`` does.

    The flag state and audit ledger go to ``out_dir/asm-monitor.sqlite`` (unless
    ``state_db`` is set), so a scratch ``out_dir`` starts a fresh lifecycle. Run periods in
    order (``2023`` then ``2024``) to see flags move from ``new`` to ``ongoing``.
    """
    from pipeline.ops.run import run_aoi as _run

    s = settings_or_default(settings)
    return _run(aoi, settings=s, period=_period(period), out_dir=Path(out_dir))


# re-exported so that ``pipeline.analyst.api`` is the one place to look
from pipeline.analyst.analysis import (  # noqa: E402
    RiverTurbidity,
    aoi_inputs,
    impact,
    load_zones,
    river_turbidity,
    turbidity_matchups,
    with_detect,
)
from pipeline.analyst.review import (  # noqa: E402
    LedgerCheck,
    ledger,
    scorecard_page,
    site_scorecard,
    suppress,
    verify_ledger,
)

__all__ = [
    "Detections",
    "LedgerCheck",
    "RiverTurbidity",
    "aoi_inputs",
    "canonical_cube",
    "detect_aoi",
    "explore",
    "impact",
    "ledger",
    "load_zones",
    "notebook_settings",
    "river_turbidity",
    "run_aoi",
    "scene_products",
    "scorecard_page",
    "site_scorecard",
    "suppress",
    "true_colour",
    "turbidity_matchups",
    "verify_ledger",
    "with_detect",
]
