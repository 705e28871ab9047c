"""Baselines kept between nights: each place's fold state (:mod:`pipeline.detect.baseline_fold`)
as a Cloud-Optimized GeoTIFF with a provenance JSON, under the state directory.

Layout, per AOI and place (``<key>`` is a digest of the place's grid)::

    <state dir>/asm-monitor.baselines/<aoi_id>/<key>.json          provenance; names the raster below
    <state dir>/asm-monitor.baselines/<aoi_id>/<key>-<sha12>.tif   slots + per-pixel layers, float32 COG

The JSON is the commit point: the raster is written first under a name carrying its own
digest, then the JSON replaces the old one (both atomically, :mod:`pipeline.core.atomic`), then
the old raster is removed. A crash at any point leaves a JSON naming a whole raster.

A file that cannot be read, whose digest or grid differs from its JSON, or that was built with
another number of baseline observations raises :class:`BaselineError` naming the file and the
fix: ``asm-monitor run --full`` folds every scene from empty and replaces the stored state.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import shapely
import xarray as xr
from affine import Affine
from pyproj import CRS
from rasterio.errors import RasterioError
from shapely.geometry.base import BaseGeometry

from pipeline.core.atomic import write_text
from pipeline.core.errors import PipelineError
from pipeline.core.version import __version__
from pipeline.detect.baseline_fold import LAYERS
from pipeline.detect.window_features import BANDS

log = logging.getLogger(__name__)

#: Folder of the baselines in the state directory (a dot in the name: never an AOI's folder).
FOLDER = "asm-monitor.baselines"
#: Version of the stored layout; a file of another version is rebuilt by ``--full``.
FORMAT = 1
FIX = (
    "Run `asm-monitor run --full --aoi {aoi}` to fold every scene again and replace it (or delete {folder})."
)


class BaselineError(PipelineError):
    """A stored baseline cannot be used: unreadable, damaged, or of another grid or setting."""


@dataclass(frozen=True, kw_only=True)
class StoredBaseline:
    """One place's stored state as its provenance describes it (pixels not read yet)."""

    json_path: Path
    provenance: dict[str, Any]
    """The JSON: ``aoi_id``, ``key``, ``raster``, ``sha256``, ``crs`` (WKT), ``transform`` (6
    floats), ``width``, ``height``, ``footprint`` (WKT, EPSG:4326), ``steps``, ``dates``
    (folded dates, each with its scenes and pixel counts), ``last_date``, ``code_version``,
    ``detector_sha256``, ``format``."""

    @property
    def footprint(self) -> BaseGeometry:
        return shapely.from_wkt(self.provenance["footprint"])

    @property
    def scene_ids(self) -> set[str]:
        return {s for d in self.provenance.get("dates", []) for s in d.get("scenes", [])}

    @property
    def last_date(self) -> str:
        return str(self.provenance.get("last_date") or "")


def baseline_folder(state_dir: Path, aoi_id: str) -> Path:
    """Where the AOI's baselines live."""
    return Path(state_dir) / FOLDER / aoi_id


def place_key(*, crs: CRS, transform: Affine, width: int, height: int) -> str:
    """A stable name for a place's grid."""
    blob = json.dumps([CRS.from_user_input(crs).to_wkt(), list(transform)[:6], width, height])
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _fail(path: Path, aoi_id: str, what: str) -> BaselineError:
    fix = FIX.format(aoi=aoi_id, folder=baseline_folder(path.parent.parent.parent, aoi_id))
    return BaselineError(f"Baseline {path} {what}. {fix}")


def find_baselines(state_dir: Path, *, aoi_id: str, footprint: BaseGeometry) -> list[StoredBaseline]:
    """The stored baselines of the AOI whose footprint overlaps ``footprint`` (EPSG:4326).

    Raises
    ------
    BaselineError
        A provenance file cannot be read or is not this layout.
    """
    folder = baseline_folder(state_dir, aoi_id)
    out = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            stored = StoredBaseline(json_path=path, provenance=doc)
            overlaps = stored.footprint.intersection(footprint).area > 0
        except (OSError, ValueError, KeyError, TypeError, shapely.errors.GEOSException) as exc:
            raise _fail(path, aoi_id, f"cannot be read ({type(exc).__name__}: {exc})") from exc
        if doc.get("format") != FORMAT or doc.get("aoi_id") != aoi_id:
            raise _fail(path, aoi_id, f"is format {doc.get('format')} of AOI {doc.get('aoi_id')!r}")
        if overlaps:
            out.append(stored)
    return out


def load_state(stored: StoredBaseline, *, steps: int) -> xr.Dataset:
    """The stored fold state (numpy) on its grid, checked against its provenance.

    Raises
    ------
    BaselineError
        The raster is missing, unreadable, not the one the JSON names (digest), or its grid,
        bands or baseline observations (``steps``) differ from what is expected.
    """
    prov = stored.provenance
    aoi_id = str(prov["aoi_id"])
    raster = stored.json_path.parent / str(prov["raster"])
    if int(prov["steps"]) != steps:
        raise _fail(
            stored.json_path,
            aoi_id,
            f"holds {prov['steps']} baseline observations per pixel; detect.change_baseline_steps is {steps}",
        )
    try:
        with open(raster, "rb") as fh:
            digest = hashlib.file_digest(fh, "sha256").hexdigest()
        if digest != prov["sha256"]:
            raise _fail(
                raster, aoi_id, f"has SHA-256 {digest[:12]}, its provenance says {prov['sha256'][:12]}"
            )
        with rasterio.open(raster) as src:
            data, crs, transform, names = src.read(), src.crs, src.transform, src.descriptions
    except (OSError, RasterioError) as exc:
        raise _fail(raster, aoi_id, f"cannot be read ({type(exc).__name__}: {exc})") from exc
    expected = _band_names(steps)
    grid_ok = CRS.from_user_input(crs) == CRS.from_wkt(prov["crs"]) and transform.almost_equals(
        Affine(*prov["transform"])
    )
    if tuple(names) != expected or not grid_ok or data.shape[1:] != (prov["height"], prov["width"]):
        raise _fail(raster, aoi_id, "does not match its provenance (bands, CRS or grid)")
    return _as_state(data, steps=steps, transform=transform, crs=CRS.from_user_input(crs))


def _band_names(steps: int) -> tuple[str, ...]:
    return (*(f"slot{i}_{b}" for i in range(steps) for b in BANDS), *LAYERS)


def _as_state(data: np.ndarray, *, steps: int, transform: Affine, crs: CRS) -> xr.Dataset:
    h, w = data.shape[1:]
    xs = transform.c + transform.a * (np.arange(w) + 0.5)
    ys = transform.f + transform.e * (np.arange(h) + 0.5)
    n = steps * len(BANDS)
    slots = data[:n].reshape(steps, len(BANDS), h, w)
    ds = xr.Dataset(
        {
            "slots": (("slot", "band", "y", "x"), slots),
            **{k: (("y", "x"), data[n + i]) for i, k in enumerate(LAYERS)},
        },
        coords={"y": ys, "x": xs, "band": list(BANDS)},
    )
    return ds.rio.write_crs(crs).rio.write_transform(transform)


def state_on_grid(
    parts: list[tuple[StoredBaseline, xr.Dataset]], *, empty: xr.Dataset, transform: Affine
) -> xr.Dataset:
    """Stored states pasted onto the grid of ``empty`` (an empty state of tonight's place,
    whose grid has ``transform``); pixels no stored state covers stay empty.

    Raises
    ------
    BaselineError
        A stored grid is not on tonight's pixel lattice (CRS, pixel size or a fractional
        offset differ): its pixels cannot be compared one to one.
    """
    if (
        len(parts) == 1
        and parts[0][1].sizes == empty.sizes
        and parts[0][1].rio.transform().almost_equals(transform)
    ):
        return parts[0][1].assign_coords(y=empty["y"], x=empty["x"])
    out = {k: np.array(empty[k].values) for k in empty.data_vars}
    for stored, state in parts:
        t = state.rio.transform()
        col = (t.c - transform.c) / transform.a
        row = (t.f - transform.f) / transform.e
        same = CRS.from_user_input(state.rio.crs) == CRS.from_user_input(empty.rio.crs)
        if (
            not same
            or not np.allclose((t.a, t.e), (transform.a, transform.e))
            or not (np.isclose(col, round(col)) and np.isclose(row, round(row)))
        ):
            raise _fail(
                stored.json_path,
                str(stored.provenance["aoi_id"]),
                "lies on another pixel grid than tonight's scenes",
            )
        r0, c0 = round(row), round(col)
        h, w = state.sizes["y"], state.sizes["x"]
        ys = slice(max(r0, 0), min(r0 + h, empty.sizes["y"]))
        xs = slice(max(c0, 0), min(c0 + w, empty.sizes["x"]))
        if ys.start >= ys.stop or xs.start >= xs.stop:
            continue
        src = (slice(ys.start - r0, ys.stop - r0), slice(xs.start - c0, xs.stop - c0))
        for k in out:
            out[k][..., ys, xs] = state[k].values[..., src[0], src[1]]
    dims = {k: empty[k].dims for k in empty.data_vars}
    return xr.Dataset({k: (dims[k], v) for k, v in out.items()}, coords=empty.coords)


def save_state(
    state_dir: Path,
    *,
    aoi_id: str,
    state: Mapping[str, np.ndarray],
    crs: CRS,
    transform: Affine,
    footprint: BaseGeometry,
    dates: list[dict[str, Any]],
    previous: Mapping[str, Any] | None = None,
    detector_sha256: str | None = None,
) -> Path:
    """Write a place's computed state (see the module docstring for the commit order), then
    remove what it replaces: every other baseline of the AOI over the same ground, any
    provenance file that cannot be read (with a warning), and rasters no provenance names.

    Parameters
    ----------
    footprint
        The place's ground (EPSG:4326).
    dates
        Every folded date: ``date`` (ISO), ``scenes``, ``valid_px``, ``baseline_px``.
    previous
        The provenance of the state this one continues (keeps its ``created_at``).

    Returns the JSON's path.
    """
    provenance = _provenance(
        aoi_id, footprint=footprint, dates=dates, previous=previous or {}, sha=detector_sha256
    )
    slots = np.asarray(state["slots"], dtype=np.float32)
    steps, _, h, w = slots.shape
    layers = np.stack([np.asarray(state[k], dtype=np.float32) for k in LAYERS])
    data = np.concatenate([slots.reshape(-1, h, w), layers])
    key = place_key(crs=crs, transform=transform, width=w, height=h)
    folder = baseline_folder(state_dir, aoi_id)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{key}.tif.new"
    try:
        _write_cog(tmp, data, crs=crs, transform=transform, names=_band_names(steps))
        with open(tmp, "rb") as fh:
            digest = hashlib.file_digest(fh, "sha256").hexdigest()
            os.fsync(fh.fileno())
        # named by its digest: the JSON written below is what makes it the current state
        raster = folder / f"{key}-{digest[:12]}.tif"
        os.replace(tmp, raster)
    finally:
        tmp.unlink(missing_ok=True)
    doc = {
        **provenance,
        "format": FORMAT,
        "aoi_id": aoi_id,
        "key": key,
        "raster": raster.name,
        "sha256": digest,
        "crs": CRS.from_user_input(crs).to_wkt(),
        "transform": list(transform)[:6],
        "width": w,
        "height": h,
        "steps": steps,
    }
    target = folder / f"{key}.json"
    write_text(target, json.dumps(doc, indent=1, sort_keys=True, default=str))
    _prune(folder, keep=target, ground=shapely.from_wkt(str(doc["footprint"])))
    log.info("baseline of AOI %s saved: %s (last date %s)", aoi_id, target, doc.get("last_date"))
    return target


def _provenance(
    aoi_id: str,
    *,
    footprint: BaseGeometry,
    dates: list[dict[str, Any]],
    previous: Mapping[str, Any],
    sha: str | None,
) -> dict[str, Any]:
    now = datetime.now(UTC).isoformat(timespec="seconds")
    if previous.get("detector_sha256") not in (None, sha):
        log.warning(
            "AOI %s: the stored baseline's states were found by detector %s, tonight's is %s. "
            "Run `asm-monitor run --full --aoi %s` to fold every scene with the new one.",
            aoi_id,
            str(previous.get("detector_sha256"))[:12],
            str(sha)[:12],
            aoi_id,
        )
    ordered = sorted(dates, key=lambda d: str(d["date"]))
    return {
        "footprint": footprint.wkt,
        "dates": ordered,
        "last_date": ordered[-1]["date"] if ordered else "",
        "baseline_dates": [d["date"] for d in ordered if d.get("baseline_px")],
        "code_version": __version__,
        "detector_sha256": sha,
        "created_at": previous.get("created_at", now),
        "updated_at": now,
    }


def _prune(folder: Path, *, keep: Path, ground: BaseGeometry) -> None:
    """Remove the baselines ``keep`` replaces and rasters no provenance names."""
    named = set()
    for path in sorted(folder.glob("*.json")):
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            overlaps = shapely.from_wkt(doc["footprint"]).intersection(ground).area > 0
        except (OSError, ValueError, KeyError, TypeError, shapely.errors.GEOSException) as exc:
            log.warning(
                "removing unreadable baseline %s (%s): the state saved beside it replaces it", path, exc
            )
            path.unlink()
            continue
        if path != keep and overlaps:
            path.unlink()
            continue
        named.add(str(doc.get("raster")))
    for tif in folder.glob("*.tif"):
        if tif.name not in named:
            tif.unlink()


def _write_cog(path: Path, data: np.ndarray, *, crs: CRS, transform: Affine, names: tuple[str, ...]) -> None:
    profile = {
        "driver": "COG",
        "dtype": "float32",
        "count": data.shape[0],
        "height": data.shape[1],
        "width": data.shape[2],
        "crs": crs,
        "transform": transform,
        "compress": "deflate",
        "predictor": 3,
        "blocksize": 512,
        "nodata": None,
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        for i, name in enumerate(names, start=1):
            dst.set_band_description(i, name)
