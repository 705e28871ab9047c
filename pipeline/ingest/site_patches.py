"""Two-date site patches: a folder laid out like ``imagery/gold_mining_patches/``.

The folder holds ``patches.csv`` (one row a site: ``sample_id``, ``t0_path`` (before) and
``t1_path`` (after), relative to the folder; optionally ``mining`` (1/0 label), ``category``,
``country``, ``lon``/``lat`` and the composite windows ``t0_start``..``t1_end``) and the
GeoTIFFs it names (bands described as Sentinel-2 names, reflectance x 10000, nodata 0).
Only the files ``patches.csv`` lists are read: a folder can carry anything else.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import rasterio
import shapely.prepared
from affine import Affine
from pyproj import CRS
from rasterio.errors import RasterioIOError
from shapely.geometry import Point
from shapely.geometry.base import BaseGeometry

from pipeline.core.errors import ConfigError, DataNotFoundError, RasterError

INDEX_FILE = "patches.csv"
REQUIRED_COLUMNS = ("sample_id", "t0_path", "t1_path")
#: Canonical band order of a patch array, as Sentinel-2 names them.
PATCH_BANDS = {"blue": "B02", "green": "B03", "red": "B04", "nir": "B08", "swir1": "B11", "swir2": "B12"}


@dataclass(frozen=True, kw_only=True)
class SitePatch:
    """One site: the same ground before and after, and what is known about it."""

    sample_id: str
    before: Path
    """GeoTIFF of the earlier view (``t0``)."""
    after: Path
    """GeoTIFF of the later view (``t1``), on the same grid as ``before``."""
    mining: int | None = None
    """1 = mining appeared or grew, 0 = not; None when the folder carries no labels."""
    category: str | None = None
    country: str | None = None
    lon: float | None = None
    lat: float | None = None
    before_date: date | None = None
    """Last day the before view covers (``t0_end``): its date as a scene."""
    after_date: date | None = None
    """Last day the after view covers (``t1_end``)."""


@dataclass(frozen=True, kw_only=True)
class PatchArray:
    """A patch read into memory: ``data`` float32 ``(band, y, x)`` in :data:`PATCH_BANDS`
    order, surface reflectance 0-1, NaN where the file has nodata."""

    data: np.ndarray
    transform: Affine
    crs: CRS


def _optional(row: pd.Series, name: str) -> str | None:
    value = row.get(name)
    if value is None or (isinstance(value, float) and math.isnan(value)) or str(value).strip() == "":
        return None
    return str(value).strip()


def _day(text: str | None) -> date | None:
    return date.fromisoformat(text[:10]) if text else None


def read_site_index(folder: Path) -> list[SitePatch]:
    """The sites of ``folder/patches.csv``, with their files checked to exist.

    Raises
    ------
    DataNotFoundError
        No ``patches.csv``, or a file it names is missing.
    ConfigError
        A required column is missing, ``sample_id`` repeats, or ``mining`` is not 0/1.
    """
    folder = Path(folder)
    index = folder / INDEX_FILE
    if not index.is_file():
        raise DataNotFoundError(
            f"{folder} has no {INDEX_FILE}. Pass a folder laid out like imagery/gold_mining_patches/ "
            f"(columns {', '.join(REQUIRED_COLUMNS)})."
        )
    table = pd.read_csv(index, dtype=str, keep_default_na=False)
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise ConfigError(f"{index} lacks columns {missing}; it needs {list(REQUIRED_COLUMNS)}.")
    repeated = table["sample_id"][table["sample_id"].duplicated()].tolist()
    if repeated:
        raise ConfigError(f"{index}: sample_id repeats ({repeated[:5]}); every site needs its own id.")
    sites = []
    for _, row in table.iterrows():
        before, after = folder / str(row["t0_path"]), folder / str(row["t1_path"])
        for path in (before, after):
            if not path.is_file():
                raise DataNotFoundError(f"{index}: {row['sample_id']} names {path}, which does not exist.")
        label = _optional(row, "mining")
        if label is not None and label not in {"0", "1"}:
            raise ConfigError(
                f"{index}: {row['sample_id']} has mining={label!r}; use 1 or 0 (or leave empty)."
            )
        lon, lat = _optional(row, "lon"), _optional(row, "lat")
        sites.append(
            SitePatch(
                sample_id=str(row["sample_id"]),
                before=before,
                after=after,
                mining=None if label is None else int(label),
                category=_optional(row, "category"),
                country=_optional(row, "country"),
                lon=float(lon) if lon else None,
                lat=float(lat) if lat else None,
                before_date=_day(_optional(row, "t0_end")),
                after_date=_day(_optional(row, "t1_end")),
            )
        )
    return sites


def read_patch(path: Path) -> PatchArray:
    """One patch GeoTIFF as reflectance in :data:`PATCH_BANDS` order (bands found by their
    descriptions; ``scale_factor`` / ``add_offset`` tags applied; nodata -> NaN).

    Raises
    ------
    RasterError
        The file cannot be read or lacks a band.
    """
    try:
        with rasterio.open(path) as src:
            names = list(src.descriptions)
            missing = [b for b in PATCH_BANDS.values() if b not in names]
            if missing:
                raise RasterError(
                    f"{path} lacks bands {missing} (descriptions {names}); patches need "
                    f"{list(PATCH_BANDS.values())}."
                )
            raw = src.read([names.index(b) + 1 for b in PATCH_BANDS.values()])
            tags = src.tags()
            nodata = src.nodata
            transform, crs = src.transform, CRS.from_user_input(src.crs)
    except RasterioIOError as exc:
        raise RasterError(f"Cannot read patch {path}: {exc}") from exc
    scale = float(tags.get("scale_factor", 0.0001))
    offset = float(tags.get("add_offset", 0.0))
    data = raw.astype(np.float32) * np.float32(scale) + np.float32(offset)
    if nodata is not None:
        data[raw == nodata] = np.nan
    return PatchArray(data=data, transform=transform, crs=crs)


def fingerprint_sites(sites: list[SitePatch], *, index: Path) -> str:
    """SHA-256 over the index file and every patch file's bytes, in site order: a model's
    training data is identified by what was read, not by where it lay."""
    digest = hashlib.sha256(Path(index).read_bytes())
    for site in sites:
        for path in (site.before, site.after):
            digest.update(path.read_bytes())
    return digest.hexdigest()


def site_scene_entries(folder: Path, *, relative_to: Path, within: BaseGeometry) -> list[dict[str, Any]]:
    """``inputs.scenes`` entries (see :meth:`SceneSpec.from_mapping`) for the sites of
    ``folder`` whose centre lies ``within`` a geometry (EPSG:4326): each site's before and
    after views as two dated scenes, ``<sample_id>-t0`` and ``-t1``, paths relative to
    ``relative_to`` (the sample-data folder).

    A site's scenes are dated by the last day their composite covers; sites without
    ``lon``/``lat`` cannot be placed and are left out.
    """
    entries: list[dict[str, Any]] = []
    prepared = shapely.prepared.prep(within)
    for site in read_site_index(folder):
        if site.lon is None or site.lat is None or not prepared.contains(Point(site.lon, site.lat)):
            continue
        for tag, path, day in (("t0", site.before, site.before_date), ("t1", site.after, site.after_date)):
            entries.append(
                {
                    "path": str(path.relative_to(relative_to)),
                    "scene_id": f"{site.sample_id}-{tag}",
                    "datetime": day.isoformat() if day else None,
                    "site": site.sample_id,
                }
            )
    return entries


def with_site_scenes(inputs: dict[str, Any], *, sample_data: Path, within: BaseGeometry) -> dict[str, Any]:
    """AOI ``inputs`` with ``site_patches`` (``{"path": "imagery/gold_mining_patches"}``)
    expanded into ``scenes`` entries for the sites inside the AOI, after any listed scenes;
    inputs without it are returned unchanged.

    Raises
    ------
    ConfigError
        ``site_patches`` is not a table with a ``path``.
    """
    spec = inputs.get("site_patches")
    if spec is None:
        return inputs
    if not isinstance(spec, dict) or not isinstance(spec.get("path"), str):
        raise ConfigError(
            'inputs.site_patches must be {"path": "<folder with patches.csv>"}, relative to the sample data.'
        )
    entries = site_scene_entries(sample_data / spec["path"], relative_to=sample_data, within=within)
    return {**inputs, "scenes": [*inputs.get("scenes", []), *entries]}
