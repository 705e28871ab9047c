"""The analyst API: thin, documented wrappers over the code the nightly run uses.

Notebooks call these and define no logic of their own. Everything here either stays lazy
(``canonical_cube``, ``scene_products``, ``true_colour``) or, like ``run.py``, computes on
purpose and says so (``detect_aoi``, ``river_turbidity``). Threshold sweeps live in
:mod:`pipeline.tuning`.

Conventions: rasters are on the AOI's UTM grid (``aoi.utm_crs``, metres) with dims
``("time", "y", "x")`` or ``("y", "x")``; vector results are GeoDataFrames in EPSG:4326;
hectares are measured in the AOI's equal-area CRS.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import xarray as xr
from scipy import ndimage

from pipeline.audit import LedgerProblem, StateStore
from pipeline.comply.impact import ImpactTables, impact_tables
from pipeline.comply.lifecycle import Suppression
from pipeline.comply.scorecard import Scorecard, site_scorecards
from pipeline.config import Settings, load_settings
from pipeline.detect.landcover import WATER_CLEAR, WATER_TURBID
from pipeline.detect.rivers import reach_turbidity
from pipeline.errors import ConfigError, DataNotFoundError, NoDataError
from pipeline.periods import Period, parse_period
from pipeline.records import KIND_MINING, WGS84, Aoi
from pipeline.run import AoiResult

STATE_FILE = "asm-monitor.sqlite"


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


def _settings(settings: Settings | None) -> Settings:
    return settings if settings is not None else load_settings()


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
    from pipeline.run import open_cube

    cube = open_cube(aoi, settings=_settings(settings), period=_period(period))
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
    from pipeline.ingest.models import load_model, load_turbidity_calibration

    s = _settings(settings)
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
        Overrides of :class:`pipeline.config.DetectParams`, e.g. ``min_area_ha=1.0``.
    """
    from pipeline.ingest.paths import sample_data_dir
    from pipeline.ingest.scenes import SceneSpec
    from pipeline.run import detect_from_scenes

    s = _settings(settings)
    if detect:
        s = s.with_overrides({"detect": detect})
    root = sample_data_dir(s.sample_data)
    scenes = [SceneSpec.from_mapping(x, root=root) for x in aoi.inputs.get("scenes", [])]
    if not scenes:
        raise NoDataError(f"AOI '{aoi.aoi_id}' lists no scenes; use impact() for detection-only AOIs.")
    frame, evidence = detect_from_scenes(aoi, scenes, settings=s, period=_period(period))
    return Detections(frame=frame, evidence=evidence)


def run_aoi(
    aoi: Aoi, *, out_dir: Path | str, settings: Settings | None = None, period: Period | str | None = None
) -> AoiResult:
    """Run one AOI end to end into ``out_dir/<aoi_id>/`` like ``asm-monitor run`` does.

    The flag state and audit ledger go to ``out_dir/asm-monitor.sqlite`` (unless
    ``state_db`` is set), so a scratch ``out_dir`` starts a fresh lifecycle. Run periods in
    order (``2023`` then ``2024``) to see flags move from ``new`` to ``ongoing``.
    """
    from pipeline.run import run_aoi as _run

    s = _settings(settings)
    return _run(aoi, settings=s, period=_period(period), out_dir=Path(out_dir))


# ---- flags, scorecards, ledger -------------------------------------------------------------


def _state(out_dir: Path | str, state_db: Path | str | None) -> StateStore:
    path = Path(state_db) if state_db is not None else Path(out_dir) / STATE_FILE
    if not path.is_file():
        raise DataNotFoundError(f"No state file at {path}. Run an AOI into {out_dir} first (run_aoi).")
    return StateStore(path)


def site_scorecard(
    flags: gpd.GeoDataFrame,
    detections: gpd.GeoDataFrame,
    sites: gpd.GeoDataFrame,
    site_id: str,
    *,
    aoi: Aoi,
    settings: Settings | None = None,
) -> Scorecard:
    """Scorecard tables of one site (licence, flags by status, hectares per period).

    Takes the tables of :func:`pipeline.open_run`; hectares inside the title and in the
    ``comply.near_site_m`` ring around it, measured in ``aoi.equal_area_crs``.
    """
    one = sites[sites["site_id"] == site_id]
    if one.empty:
        raise ConfigError(f"No site {site_id!r} in this run. Pick one from run.sites['site_id'].")
    s = _settings(settings)
    return site_scorecards(one, detections, crs=aoi.equal_area_crs, near_m=s.comply.near_site_m, flags=flags)


def suppress(
    out_dir: Path | str,
    flag_id: str,
    *,
    reason: str,
    analyst: str,
    state_db: Path | str | None = None,
) -> Suppression:
    """Mark a flag a false positive (same as ``asm-monitor flags suppress``); written to the
    audit ledger. It stays ``suppressed`` until its footprint grows past
    ``comply.worsening_growth_pct``."""
    with _state(out_dir, state_db) as store:
        return store.suppress(flag_id, reason=reason, analyst=analyst)


def ledger(out_dir: Path | str, *, state_db: Path | str | None = None) -> pd.DataFrame:
    """Every audit-ledger row, oldest first (``seq``, ``event``, ``old_status``,
    ``new_status``, ``detail``, ``prev_hash``, ``row_hash``...)."""
    with _state(out_dir, state_db) as store:
        return pd.DataFrame(store.ledger_rows())


@dataclass(frozen=True)
class LedgerCheck:
    """Result of :func:`verify_ledger`."""

    rows: int
    head: str
    """SHA-256 of the newest row: publish it to anchor the chain."""
    problems: list[LedgerProblem]

    @property
    def intact(self) -> bool:
        """True when no row was edited, deleted or reordered."""
        return not self.problems


def verify_ledger(out_dir: Path | str, *, state_db: Path | str | None = None) -> LedgerCheck:
    """Walk the ledger's hash chain (same as ``asm-monitor ledger verify``)."""
    with _state(out_dir, state_db) as store:
        rows, head, problems = store.verify_ledger()
    return LedgerCheck(rows=rows, head=head, problems=problems)


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
    from pipeline.detect.turbidity import _dogliotti
    from pipeline.ingest.models import load_turbidity_calibration
    from pipeline.ingest.training import read_turbidity_matchups

    s = _settings(settings)
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
        dogliotti_fnu=_dogliotti(frame["red"].to_numpy(np.float32), frame["nir"].to_numpy(np.float32)),
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

    s = _settings(settings)
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

    s = _settings(settings)
    spec = aoi.inputs.get("detections")
    if not spec:
        raise NoDataError(f"AOI '{aoi.aoi_id}' lists no external detections; use detect_aoi().")
    det = read_external_detections(s.sample_data / spec["path"], fmt=spec.get("format", "native"))
    det = det[det.intersects(aoi.geometry)].reset_index(drop=True)
    sites = None
    reg = aoi.inputs.get("registry")
    if reg:
        raw = read_registry(s.sample_data / reg["path"], fmt=reg["format"])
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
    """A copy of ``settings`` with :class:`~pipeline.config.DetectParams` overrides."""
    return replace(settings, detect=replace(settings.detect, **overrides))
