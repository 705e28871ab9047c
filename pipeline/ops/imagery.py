"""The imagery path of a run: scenes -> clear observations -> the detector, computed here
chunk by chunk; plus the before/after chips of flags and the analyst's lazy cube.

Detection itself is :mod:`pipeline.detect`; models come from :mod:`pipeline.state.models`;
this module decides what is loaded, masked and computed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import dask
import geopandas as gpd
import numpy as np
import pandas as pd
import xarray as xr

from pipeline.comply.lifecycle import reportable_flags
from pipeline.core.config import Settings
from pipeline.core.errors import NoDataError
from pipeline.core.periods import Period
from pipeline.core.records import WGS84, Aoi
from pipeline.detect.chips import RGB, flag_windows
from pipeline.detect.clouds import (
    S2CLOUDLESS_BANDS,
    cloud_from_probability,
    s2cloudless_probability,
    scl_cloud,
    usable,
    valid_fraction,
    valid_mask,
)
from pipeline.detect.detections import check_sensor, scene_detection_rows
from pipeline.detect.scene_blocks import assemble_scene, scene_pieces
from pipeline.ingest.paths import sample_data_dir
from pipeline.ingest.scene_headers import read_header
from pipeline.ingest.scene_places import Place
from pipeline.ingest.scenes import MASK_BANDS, LocalFolderSource, SceneSpec, aoi_footprint
from pipeline.ingest.training import sensor_bands
from pipeline.report.chips import chip_data_uri, pair_scale
from pipeline.report.map import SceneImage
from pipeline.state.models import load_model, load_turbidity_calibration

#: Flags per AOI that get before/after image chips on the map (the largest first).
CHIP_FLAGS_MAX = 50
#: Sentinel-2 bands the detector reads (blue, green, red, NIR, SWIR1).
SCENE_BANDS = ("B02", "B03", "B04", "B08", "B11")


def detect_from_scenes(
    aoi: Aoi, scenes: Sequence[SceneSpec], *, settings: Settings, period: Period | None
) -> tuple[gpd.GeoDataFrame, dict[str, Any]]:
    """Detect mining and turbid water on the AOI's scenes: the trained pixel classifier when
    ``detect.model_path`` names one (else the index rules), change detection over the dates,
    and calibrated turbidity as evidence."""
    params = settings.detect
    model, model_sha = None, None
    if params.model_path:
        model, prov = load_model(Path(params.model_path), expected_sha256=params.model_sha256 or None)
        model_sha = prov["sha256"]
        check_sensor(model, sensor="sentinel2", where=params.model_path)
    calibration = load_turbidity_calibration(
        Path(params.turbidity_calibration) if params.turbidity_calibration else None
    )
    cube = clear_observations(aoi, scenes, settings=settings, period=period)
    rename = {v: k for k, v in sensor_bands("sentinel2").items() if v in cube}
    pieces = scene_pieces(cube.rename(rename), params=params, model=model, calibration=calibration)
    # The one place this AOI's rasters are computed: chunk by chunk, each reduced to a uint8
    # code raster plus the values inside the masks (never the whole tile's float rasters).
    (pieces,) = dask.compute(pieces)
    rasters = assemble_scene(pieces)
    del pieces
    return scene_detection_rows(
        rasters,
        aoi_id=aoi.aoi_id,
        transform=cube.rio.transform(),
        crs=cube.rio.crs,
        area_crs=aoi.equal_area_crs,
        params=params,
        period_label=str(period) if period else "",
        model=model,
        model_sha256=model_sha,
    )


def _has_l1c_bands(scene: SceneSpec) -> bool:
    """True when the scene's file names every band s2cloudless reads (an L1C product)."""
    names = set(scene.band_paths)
    if scene.path is not None:
        names |= set(read_header(scene.path, names=scene.band_names).names)
    return set(S2CLOUDLESS_BANDS) <= names


def clear_observations(
    aoi: Aoi,
    scenes: Sequence[SceneSpec],
    *,
    settings: Settings,
    period: Period | None,
    bands: Sequence[str] = SCENE_BANDS,
    check_every: bool = False,
) -> xr.Dataset:
    """The scenes' cube with clouds (CLM / SCL, dilated by ``cloud_buffer_px``) and nodata
    set to NaN, and scenes below ``ingest.min_valid_fraction`` over the AOI dropped.

    A single scene without a mask band is returned as read unless ``check_every``: the
    baseline fold asks for it, so a scene is kept or dropped alike whether a night reads it
    alone or a ``--full`` run reads it with others.

    Raises
    ------
    NoDataError
        No scene of the period has enough clear, valid pixels.
    """
    source = LocalFolderSource(scenes)
    chosen = source.select(period)
    masks = sorted(set.intersection(*(set(s.band_paths) & MASK_BANDS for s in chosen))) if chosen else []
    # L1C (no SCL / CLM, but the bands s2cloudless reads, B10 among them): s2cloudless masks it
    l1c = not masks and bool(chosen) and all(_has_l1c_bands(s) for s in chosen)
    extra = [b for b in S2CLOUDLESS_BANDS if b not in bands] if l1c else []
    cube = source.load(aoi, period, bands=[*bands, *masks, *extra], chunks=settings.detect.chunk_px)
    if not masks and not l1c and cube.sizes["time"] == 1 and not check_every:
        # one scene, no mask: its nodata is already NaN, and a scene with no valid pixel is
        # caught after detection; an extra pass over the data would buy nothing
        return cube
    cloud = None
    if "CLM" in cube:
        cloud = cube["CLM"] == 1
    elif "SCL" in cube:
        cloud = scl_cloud(cube["SCL"])
    elif l1c:
        cloud = cloud_from_probability(s2cloudless_probability(cube))
    valid = valid_mask(cube, bands=list(bands), cloud=cloud, buffer_px=settings.ingest.cloud_buffer_px)
    # a small compute (one number per scene) decides which scenes the detection reads at all
    fractions = valid_fraction(valid, footprint=aoi_footprint(aoi, cube)).compute().values
    keep = usable(
        fractions,
        scene_ids=[str(v) for v in cube["scene_id"].values],
        min_valid_fraction=settings.ingest.min_valid_fraction,
        where=f"AOI '{aoi.aoi_id}'",
    )
    idx = np.flatnonzero(keep)
    return cube[list(bands)].isel(time=idx).where(valid.isel(time=idx))


def flag_chips(
    aoi: Aoi,
    flags: gpd.GeoDataFrame,
    *,
    settings: Settings,
    period: Period | None,
    places: Sequence[Place],
) -> dict[str, list[tuple[str, str, str]]]:
    """Before/after RGB chips (first and last scene of the period) for the largest flags of
    an imagery AOI, as PNG data URIs; empty when the AOI has no imagery or no flag. Each
    flag's chips come from the place (scenes of one footprint) it lies in, so only those
    scenes are read."""
    real = reportable_flags(flags)
    if real.empty or not places:
        return {}
    real = real.sort_values("area_ha", ascending=False).head(CHIP_FLAGS_MAX)
    picks: dict[str, tuple[Any, Any]] = {}
    dates: dict[str, tuple[str, str, bool]] = {}
    for place in places:
        inside = real[real.to_crs(WGS84).intersects(place.footprint)]
        inside = inside[~inside["flag_id"].isin(list(picks))]
        loaded = None if inside.empty else _place_rgb(aoi, place, settings=settings, period=period)
        if loaded is None:
            continue
        cube, days = loaded
        last = cube.sizes["time"] - 1
        for fid, w in flag_windows(cube, inside).items():
            picks[fid] = (w.isel(time=0).data, w.isel(time=last).data)
            dates[fid] = (days[0], days[last], last > 0)
    # small windows only: one compute for every chip of the AOI
    (arrays,) = dask.compute(picks)
    out: dict[str, list[tuple[str, str, str]]] = {}
    for fid, pair in arrays.items():
        first, latest, two = dates[fid]
        before_uri, after_uri = _png_pair(*pair)
        after_chip = ("after", latest, after_uri)
        out[fid] = [("before", first, before_uri), after_chip] if two else [after_chip]
    return out


def _place_rgb(
    aoi: Aoi, place: Place, *, settings: Settings, period: Period | None
) -> tuple[xr.Dataset, list[str]] | None:
    """The lazy red/green/blue cube of one place's scenes in the period and each step's
    date (``""`` when undated); None when none of its scenes falls in the period."""
    sub = replace(aoi, geometry=place.footprint)
    try:
        cube = LocalFolderSource(place.scenes).load(sub, period, bands=RGB, chunks=settings.detect.chunk_px)
    except NoDataError:
        return None
    return cube, [str(pd.Timestamp(t).date()) if not pd.isna(t) else "" for t in cube["time"].values]


def _png_pair(before: np.ndarray, after: np.ndarray) -> tuple[str, str]:
    """PNG data URIs of a before/after pair with one stretch, so a change of colour is real."""
    scale = pair_scale(before, after)
    return chip_data_uri(np.asarray(before), scale=scale), chip_data_uri(np.asarray(after), scale=scale)


def open_cube(aoi: Aoi, *, settings: Settings, period: Period | None = None) -> xr.Dataset:
    """The AOI's lazy reflectance cube, for notebooks (nothing is computed)."""
    root = sample_data_dir(settings.sample_data)
    scenes = [SceneSpec.from_mapping(s, root=root) for s in aoi.inputs.get("scenes", [])]
    if not scenes:
        raise NoDataError(f"AOI '{aoi.aoi_id}' lists no scenes in its inputs.")
    return LocalFolderSource(scenes).load(aoi, period, bands=SCENE_BANDS, chunks=settings.detect.chunk_px)


#: Places per AOI whose before / after true-colour images go on the map, and their longest
#: side in pixels (a full tile is subsampled, not embedded at 10 m).
IMAGE_PLACES_MAX = 100
IMAGE_MAX_PX = 1024


def place_images(
    aoi: Aoi, *, places: Sequence[Place], settings: Settings, period: Period | None
) -> list[SceneImage]:
    """True-colour PNGs of each place with imagery at its first and last date (one
    stretch per place), for the map's imagery layers."""
    todo = []
    for place in places[:IMAGE_PLACES_MAX]:
        loaded = _place_rgb(aoi, place, settings=settings, period=period)
        if loaded is None:
            continue
        cube, days = loaded
        rgb = xr.concat([cube[b] for b in RGB], dim="band").transpose("time", "y", "x", "band")
        step = max(1, -(-max(rgb.sizes["y"], rgb.sizes["x"]) // IMAGE_MAX_PX))
        rgb = rgb.isel(y=slice(None, None, step), x=slice(None, None, step))
        last = cube.sizes["time"] - 1
        west, south, east, north = place.footprint.bounds
        dated = (days[0], days[last], last > 0, (south, west, north, east))
        todo.append(((rgb.isel(time=0).data, rgb.isel(time=last).data), dated))
    # one compute for every place's two small images
    (arrays,) = dask.compute([pair for pair, _ in todo])
    out = []
    for pair, (_, (first, latest, two, bounds)) in zip(arrays, todo, strict=True):
        before_uri, after_uri = _png_pair(*pair)
        if two:
            out.append(SceneImage(kind="before", date=first, data_uri=before_uri, bounds=bounds))
        out.append(SceneImage(kind="after", date=latest, data_uri=after_uri, bounds=bounds))
    return out
