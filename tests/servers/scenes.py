"""The real two-date gold-mine patches as dated scenes, and which of them a server publishes.

Both emulators (STAC API, Sentinel Hub) serve the same library: every site of
``imagery/gold_mining_patches/patches.csv`` at two dates, ``t0`` (before) and ``t1`` (after),
each a 48 x 48 px, 10 m, six-band uint16 GeoTIFF in its UTM zone. A scene is dated on the last
day of its composite window (``composite_end`` at 14:30 UTC, about when Sentinel-2 passes over
the Amazon), so a search on the window finds it. What a server *publishes* is a runtime choice
(:class:`Publication`): a test runs night 1 with only the ``t0`` scenes, night 2 with ``t1`` too.
"""

from __future__ import annotations

import csv
import functools
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from pyproj import Transformer
from shapely.geometry import Polygon, box

REPO = Path(__file__).resolve().parents[2]
BANDS = ("B02", "B03", "B04", "B08", "B11", "B12")
"""Band order of the patch files."""
DATE_KEYS = ("t0", "t1")
SCALE = 0.0001
"""Reflectance = DN x SCALE (no offset: the patches are harmonised)."""
CLOUD_DN = 1500
"""The bright-cloud test: B02 > 0.15 reflectance."""
RESOLUTION_M = 10.0
ACQUISITION_TIME = "14:30:00"

EARTH_SEARCH_ASSETS = {
    "blue": "B02",
    "green": "B03",
    "red": "B04",
    "nir": "B08",
    "swir16": "B11",
    "swir22": "B12",
}
"""STAC asset key (Earth Search v1 naming) -> Sentinel-2 band name."""
BAND_INFO: dict[str, tuple[str, str, float, float]] = {
    "B02": ("blue", "Blue (band 2)", 0.49, 0.098),
    "B03": ("green", "Green (band 3)", 0.56, 0.045),
    "B04": ("red", "Red (band 4)", 0.665, 0.038),
    "B08": ("nir", "NIR 1 (band 8)", 0.842, 0.145),
    "B11": ("swir16", "SWIR 1.6um (band 11)", 1.61, 0.143),
    "B12": ("swir22", "SWIR 2.2um (band 12)", 2.19, 0.242),
}
"""band -> (common name, description, centre wavelength um, FWHM um), as Earth Search lists them."""


def sample_data_dir() -> Path:
    """The shared data folder: ``ASM_SAMPLE_DATA`` or ``<repo>/../shared/data`` (as tests/conftest.py)."""
    env = os.environ.get("ASM_SAMPLE_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


@functools.cache
def _to_lonlat(epsg: int) -> Transformer:
    return Transformer.from_crs(epsg, 4326, always_xy=True)


@functools.cache
def read_patch(path: Path) -> np.ndarray:
    """All six bands of a patch file, ``("band", "y", "x")`` uint16 DN; cached (files are tiny).

    The array is read-only so no caller can corrupt the cache for the next test.
    """
    with rasterio.open(path) as src:
        data = src.read()
    data.setflags(write=False)
    return data


@dataclass(frozen=True)
class Scene:
    """One site at one date, as the emulators serve it."""

    sample_id: str
    """``gmNNNN`` from patches.csv."""
    date_key: str
    """``t0`` (before) or ``t1`` (after)."""
    path: Path
    """The six-band GeoTIFF."""
    epsg: int
    """The patch's UTM CRS."""
    bounds: tuple[float, float, float, float]
    """left, bottom, right, top in ``epsg`` (m)."""
    composite_start: date
    composite_end: date
    footprint: Polygon
    """The patch outline in EPSG:4326 (lon, lat)."""

    @property
    def datetime(self) -> datetime:
        """The acquisition instant we publish: the composite's last day at 14:30 UTC."""
        return datetime.fromisoformat(f"{self.composite_end.isoformat()}T{ACQUISITION_TIME}").replace(
            tzinfo=UTC
        )

    @property
    def iso_datetime(self) -> str:
        return self.datetime.strftime("%Y-%m-%dT%H:%M:%SZ")

    @property
    def item_id(self) -> str:
        """Unique per site and date, e.g. ``S2_gm0001_20191231``."""
        return f"S2_{self.sample_id}_{self.composite_end:%Y%m%d}"

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, cols) of the patch grid."""
        left, bottom, right, top = self.bounds
        return round((top - bottom) / RESOLUTION_M), round((right - left) / RESOLUTION_M)

    @property
    def transform(self) -> Affine:
        return Affine(RESOLUTION_M, 0.0, self.bounds[0], 0.0, -RESOLUTION_M, self.bounds[3])

    @property
    def lonlat_bbox(self) -> tuple[float, float, float, float]:
        return tuple(self.footprint.bounds)

    def read(self) -> np.ndarray:
        """The six bands, ``("band", "y", "x")`` uint16 DN (read-only, cached)."""
        return read_patch(self.path)

    @property
    def cloud_cover(self) -> float:
        """% of data pixels that fail the bright-cloud test (B02 > 0.15), computed from the file."""
        return _cloud_cover(self.path)


@functools.cache
def _cloud_cover(path: Path) -> float:
    data = read_patch(path)
    valid = (data != 0).any(axis=0)
    if not valid.any():
        return 100.0
    return float(round(100.0 * np.count_nonzero(data[0][valid] > CLOUD_DN) / np.count_nonzero(valid), 2))


def scene_properties(scene: Scene) -> dict[str, Any]:
    """STAC item properties shared by both emulators (STAC API items and SH Catalog features)."""
    left, bottom, right, top = scene.bounds
    return {
        "datetime": scene.iso_datetime,
        "platform": "sentinel-2a",
        "constellation": "sentinel-2",
        "instruments": ["msi"],
        "gsd": RESOLUTION_M,
        "eo:cloud_cover": scene.cloud_cover,
        "proj:epsg": scene.epsg,
        "proj:bbox": [left, bottom, right, top],
        "proj:shape": list(scene.shape),
        "proj:transform": list(scene.transform)[:6],
        "asm:sample_id": scene.sample_id,
        "asm:date_key": scene.date_key,
        "asm:composite_start": scene.composite_start.isoformat(),
        "asm:composite_end": scene.composite_end.isoformat(),
    }


class SceneLibrary:
    """Every scene of patches.csv (575 sites x 2 dates), read once per folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        csv_path = self.folder / "patches.csv"
        if not csv_path.is_file():
            raise FileNotFoundError(
                f"{csv_path} not found: put ../shared beside the repo or set ASM_SAMPLE_DATA to the data folder"
            )
        self.scenes: dict[tuple[str, str], Scene] = {}
        with csv_path.open(newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                for key in DATE_KEYS:
                    scene = self._scene(row, key)
                    self.scenes[(scene.sample_id, key)] = scene
        self.sample_ids = sorted({sid for sid, _ in self.scenes})

    def _scene(self, row: dict[str, str], key: str) -> Scene:
        bounds = (float(row["left"]), float(row["bottom"]), float(row["right"]), float(row["top"]))
        ring = box(*bounds).exterior.coords
        xs, ys = _to_lonlat(int(row["epsg"])).transform([p[0] for p in ring], [p[1] for p in ring])
        return Scene(
            sample_id=row["sample_id"],
            date_key=key,
            path=self.folder / row[f"{key}_path"],
            epsg=int(row["epsg"]),
            bounds=bounds,
            composite_start=date.fromisoformat(row[f"{key}_start"]),
            composite_end=date.fromisoformat(row[f"{key}_end"]),
            footprint=Polygon(zip(xs, ys, strict=True)),
        )

    def get(self, sample_id: str, date_key: str) -> Scene:
        try:
            return self.scenes[(sample_id, date_key)]
        except KeyError:
            raise KeyError(
                f"no scene {sample_id!r} at {date_key!r}: ids come from patches.csv, dates are t0/t1"
            ) from None

    def by_item_id(self, item_id: str) -> Scene | None:
        return next((s for s in self.scenes.values() if s.item_id == item_id), None)


@functools.cache
def load_library(folder: Path | None = None) -> SceneLibrary:
    """The library of ``folder`` (default: the shared gold_mining_patches), cached per process."""
    return SceneLibrary(folder or sample_data_dir() / "imagery" / "gold_mining_patches")


class Publication:
    """Which scenes a server serves now; thread-safe, changed by tests between 'nights'."""

    def __init__(self, library: SceneLibrary) -> None:
        self.library = library
        self._keys: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    @staticmethod
    def _dates(dates: Iterable[str]) -> set[str]:
        wanted = {dates} if isinstance(dates, str) else set(dates)
        bad = wanted - set(DATE_KEYS)
        if bad:
            raise ValueError(f"dates must be among {DATE_KEYS}, got {sorted(bad)}")
        return wanted

    def publish(self, sample_ids: Iterable[str] | str, *, dates: Iterable[str] = DATE_KEYS) -> list[Scene]:
        """Serve these sites at these dates (in addition to what is served); returns the new scenes."""
        ids = [sample_ids] if isinstance(sample_ids, str) else list(sample_ids)
        scenes = [self.library.get(sid, key) for sid in ids for key in sorted(self._dates(dates))]
        for scene in scenes:
            _ = scene.cloud_cover  # reads (and caches) the pixels here, not in concurrent server threads
        with self._lock:
            self._keys.update((s.sample_id, s.date_key) for s in scenes)
        return scenes

    def publish_all(self, *, dates: Iterable[str] = DATE_KEYS) -> None:
        """Serve every site of patches.csv at these dates."""
        self.publish(self.library.sample_ids, dates=dates)

    def unpublish(
        self, sample_ids: Iterable[str] | str | None = None, *, dates: Iterable[str] = DATE_KEYS
    ) -> None:
        """Stop serving these sites (all when None) at these dates."""
        wanted = self._dates(dates)
        ids = (
            None if sample_ids is None else ({sample_ids} if isinstance(sample_ids, str) else set(sample_ids))
        )
        with self._lock:
            self._keys = {k for k in self._keys if not (k[1] in wanted and (ids is None or k[0] in ids))}

    def scenes(self) -> list[Scene]:
        """The served scenes, ordered by (datetime, sample_id): the order searches page through."""
        with self._lock:
            keys = list(self._keys)
        found = [self.library.scenes[k] for k in keys]
        return sorted(found, key=lambda s: (s.datetime, s.sample_id))


class Publishing:
    """Mixin giving a server the publish controls; the server sets ``self.publication``."""

    publication: Publication

    def publish(self, sample_ids: Iterable[str] | str, *, dates: Iterable[str] = DATE_KEYS) -> list[Scene]:
        """Serve ``sample_ids`` at ``dates`` (``{"t0"}``, ``{"t1"}`` or both) from now on."""
        return self.publication.publish(sample_ids, dates=dates)

    def publish_all(self, *, dates: Iterable[str] = DATE_KEYS) -> None:
        """Serve every site (575) at ``dates``."""
        self.publication.publish_all(dates=dates)

    def unpublish(
        self, sample_ids: Iterable[str] | str | None = None, *, dates: Iterable[str] = DATE_KEYS
    ) -> None:
        """Withdraw scenes (all sites when ``sample_ids`` is None)."""
        self.publication.unpublish(sample_ids, dates=dates)

    @property
    def published(self) -> list[Scene]:
        """What is served now, in (datetime, sample_id) order."""
        return self.publication.scenes()
