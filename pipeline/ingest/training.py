"""Read labelled training pixels: a raster (one file, or one file per band) + label polygons.

Data sets and class mappings are declared in ``pipeline/data/classes.toml``: a new labelled
scene or sensor is configuration, not code. Everything returned is in memory (training
scenes are small); large scenes go through :mod:`pipeline.ingest.scenes` lazily.
"""

from __future__ import annotations

import functools
import hashlib
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio
import rasterio.features
from affine import Affine
from pyproj import CRS
from rasterio.errors import RasterioIOError

from pipeline.core.errors import ConfigError, DataNotFoundError, RasterError


@functools.cache
def load_class_config() -> dict[str, Any]:
    """The class vocabulary, sensor band maps, data sets and map legends of ``classes.toml``."""
    text = resources.files("pipeline").joinpath("data/classes.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


def class_order() -> tuple[str, ...]:
    """Our classifier classes, in code order."""
    return tuple(load_class_config()["classes"]["order"])


def sensor_bands(sensor: str) -> dict[str, str]:
    """Canonical band name -> the sensor's band name."""
    sensors = load_class_config()["sensors"]
    if sensor not in sensors:
        raise ConfigError(f"Unknown sensor '{sensor}'. Known: {sorted(sensors)} (classes.toml [sensors]).")
    return dict(sensors[sensor])


def map_legend(name: str) -> dict[int, str]:
    """Source code -> our class name for an external land-cover map (``[maps.NAME]``)."""
    maps = load_class_config()["maps"]
    if name not in maps:
        raise ConfigError(f"Unknown map legend '{name}'. Known: {sorted(maps)} (classes.toml [maps]).")
    return {int(code): cls for cls, codes in maps[name].items() for code in codes}


@dataclass(frozen=True, kw_only=True)
class TrainingDataset:
    """One labelled scene (a ``[datasets.NAME]`` table of classes.toml)."""

    name: str
    sensor: str
    image: Path
    """Multi-band file with band descriptions, or a path with ``{band}`` (one file per band)."""
    labels: Path
    label_column: str
    classes: dict[str, str]
    """Source label -> our class name."""
    scale: float
    offset: float
    acquired: str = ""
    attribution: str = ""

    @classmethod
    def from_config(cls, name: str, *, root: Path) -> TrainingDataset:
        """Build from classes.toml, paths relative to the sample-data ``root``."""
        table = load_class_config()["datasets"]
        if name not in table:
            raise ConfigError(f"Unknown training data set '{name}'. Known: {sorted(table)} (classes.toml).")
        spec = table[name]
        order = set(class_order())
        bad = sorted(set(spec["classes"].values()) - order)
        if bad:
            raise ConfigError(f"Data set '{name}' maps to unknown classes {bad}; use {sorted(order)}.")
        return cls(
            name=name,
            sensor=spec["sensor"],
            image=root / spec["image"],
            labels=root / spec["labels"],
            label_column=spec.get("label_column", "class"),
            classes=dict(spec["classes"]),
            scale=float(spec.get("scale", 1e-4)),
            offset=float(spec.get("offset", 0.0)),
            acquired=str(spec.get("acquired", "")),
            attribution=str(spec.get("attribution", "")),
        )

    def files(self) -> list[Path]:
        """Every input file (for fingerprints)."""
        bands = sensor_bands(self.sensor).values()
        images = (
            [Path(str(self.image).format(band=b)) for b in bands]
            if "{band}" in str(self.image)
            else [self.image]
        )
        return [*images, self.labels]


@dataclass(frozen=True, kw_only=True)
class SceneArrays:
    """A whole (small) scene in memory: canonical bands as float32 reflectance."""

    bands: dict[str, np.ndarray]
    """Canonical band -> ``(y, x)`` float32 reflectance, NaN at nodata."""
    transform: Affine
    crs: CRS


def fingerprint_files(paths: list[Path]) -> str:
    """SHA-256 over the files' names and full contents (training inputs are small)."""
    h = hashlib.sha256()
    for p in paths:
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def _read_band(path: Path, band: str | int) -> tuple[np.ndarray, Affine, CRS, float | None]:
    try:
        with rasterio.open(path) as src:
            if isinstance(band, str):
                if band not in src.descriptions:
                    raise RasterError(f"{path} has no band '{band}'; it has {list(src.descriptions)}.")
                index = src.descriptions.index(band) + 1
            else:
                index = band
            if src.crs is None:
                raise RasterError(f"{path} has no CRS. Set it with `gdal_edit.py -a_srs EPSG:XXXX {path}`.")
            return src.read(index), src.transform, CRS.from_user_input(src.crs), src.nodata
    except RasterioIOError as exc:
        raise DataNotFoundError(
            f"Cannot read {path} ({exc}). Check the data set path in classes.toml."
        ) from exc


def read_scene_arrays(dataset: TrainingDataset) -> SceneArrays:
    """Read the data set's image as canonical reflectance bands (DN * scale + offset)."""
    out: dict[str, np.ndarray] = {}
    grid: tuple[Affine, CRS] | None = None
    for canonical, name in sensor_bands(dataset.sensor).items():
        if "{band}" in str(dataset.image):
            dn, transform, crs, nodata = _read_band(Path(str(dataset.image).format(band=name)), 1)
        else:
            dn, transform, crs, nodata = _read_band(dataset.image, name)
        if grid is not None and (transform, crs) != grid:
            raise RasterError(
                f"Bands of data set '{dataset.name}' are on different grids; resample them first."
            )
        grid = (transform, crs)
        refl = dn.astype(np.float32) * np.float32(dataset.scale) + np.float32(dataset.offset)
        if nodata is not None:
            refl[dn == nodata] = np.nan
        out[canonical] = refl
    assert grid is not None
    return SceneArrays(bands=out, transform=grid[0], crs=grid[1])


def read_labels(dataset: TrainingDataset, *, crs: CRS) -> gpd.GeoDataFrame:
    """Label polygons in ``crs`` with ``polygon_id`` (file order), ``source_class``, ``label``."""
    if not dataset.labels.is_file():
        raise DataNotFoundError(f"Label file {dataset.labels} does not exist. Check classes.toml.")
    frame = gpd.read_file(dataset.labels)
    if dataset.label_column not in frame.columns:
        raise ConfigError(
            f"{dataset.labels} has no column '{dataset.label_column}'; it has {list(frame.columns)}."
        )
    source = frame[dataset.label_column].astype(str)
    unmapped = sorted(set(source) - set(dataset.classes))
    if unmapped:
        raise ConfigError(
            f"Labels {unmapped} of {dataset.labels} have no mapping. Add them to "
            f"[datasets.{dataset.name}.classes] in classes.toml."
        )
    return gpd.GeoDataFrame(
        {
            "polygon_id": np.arange(len(frame)),
            "source_class": source.to_numpy(),
            "label": source.map(dataset.classes).to_numpy(),
        },
        geometry=frame.geometry.to_crs(crs).to_numpy(),
        crs=crs,
    )


def read_labelled_pixels(dataset: TrainingDataset) -> tuple[pd.DataFrame, SceneArrays, gpd.GeoDataFrame]:
    """Every pixel whose centre falls in a label polygon.

    Returns
    -------
    (pixels, scene, polygons)
        ``pixels``: one row per labelled pixel with the canonical band columns (reflectance),
        ``label``, ``source_class``, ``polygon_id``, ``row``, ``col``; ``scene`` the whole
        image; ``polygons`` the labels in the image CRS. Where polygons overlap, the later
        one wins (rasterisation order).
    """
    scene = read_scene_arrays(dataset)
    polygons = read_labels(dataset, crs=scene.crs)
    shape = next(iter(scene.bands.values())).shape
    burned = rasterio.features.rasterize(
        zip(polygons.geometry, polygons["polygon_id"] + 1, strict=True),
        out_shape=shape,
        transform=scene.transform,
        fill=0,
        dtype="int32",
    )
    rows, cols = np.nonzero(burned)
    pid = burned[rows, cols] - 1
    frame = pd.DataFrame({b: a[rows, cols] for b, a in scene.bands.items()})
    frame["polygon_id"] = pid
    frame["label"] = polygons["label"].to_numpy()[pid]
    frame["source_class"] = polygons["source_class"].to_numpy()[pid]
    frame["row"], frame["col"] = rows, cols
    return frame, scene, polygons


#: Matchup CSV band columns (Sentinel-2) -> canonical names; nir is B8A (865 nm, Dogliotti).
MATCHUP_BANDS = {"blue": "B02", "green": "B03", "red": "B04", "nir": "B8A"}


def read_turbidity_matchups(
    path: Path, *, target: str = "turbidity_ntu", date_column: str = "date"
) -> tuple[pd.DataFrame, str]:
    """Read in-situ turbidity matchups (one row per same-day satellite + lab pair).

    Returns
    -------
    (frame, fingerprint)
        ``frame`` has ``date`` (datetime64), canonical band columns (reflectance 0-1) and
        ``turbidity`` (the in-situ value); ``fingerprint`` is the file's SHA-256.
    """
    if not path.is_file():
        raise DataNotFoundError(f"Matchup file {path} does not exist. Pass an existing CSV.")
    raw = pd.read_csv(path)
    need = [date_column, target, *MATCHUP_BANDS.values()]
    missing = [c for c in need if c not in raw.columns]
    if missing:
        raise ConfigError(f"{path} lacks columns {missing}; it has {list(raw.columns)}.")
    frame = pd.DataFrame({"date": pd.to_datetime(raw[date_column])})
    for canonical, column in MATCHUP_BANDS.items():
        frame[canonical] = raw[column].astype(float)
    frame["turbidity"] = raw[target].astype(float)
    return frame, fingerprint_files([path])
