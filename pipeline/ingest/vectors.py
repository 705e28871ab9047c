"""Readers for vector inputs: mine-site registries and external detections.

Column mappings live in ``pipeline/data/formats.toml`` so a new registry or alert source is
configuration, not code. Readers only read and rename; the meaning of the columns (licence
phases, dates) is given to them in ``pipeline.comply.registry``.
"""

from __future__ import annotations

import functools
import glob
import hashlib
import logging
import os
import tomllib
from collections import OrderedDict
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyogrio.errors import DataSourceError
from shapely.geometry.base import BaseGeometry

from pipeline.core.errors import DataNotFoundError, DetectionSourceError, RegistryError
from pipeline.core.periods import amw_period, parse_period
from pipeline.core.records import WGS84

log = logging.getLogger(__name__)


@functools.cache
def load_formats() -> dict[str, Any]:
    """The column mappings shipped in ``pipeline/data/formats.toml``."""
    text = resources.files("pipeline").joinpath("data/formats.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


def format_spec(section: str, name: str) -> dict[str, Any]:
    """One mapping, e.g. ``format_spec("registry", "sigmine")``."""
    table = load_formats()[section]
    if name not in table:
        raise RegistryError(
            f"Unknown {section} format {name!r}. Known formats: {', '.join(sorted(table))}; "
            "add a table to pipeline/data/formats.toml for a new one."
        )
    return dict(table[name])


#: Text formats whose bytes are checked against the declared encoding before parsing.
TEXT_SUFFIXES = (".csv", ".geojson", ".json")


def _check_text(path: Path, *, encoding: str, error: type[Exception]) -> None:
    """Refuse a text file that is not in ``encoding``, naming the line and the fix: a
    replaced character would turn a site or operator name into garbage without a word."""
    raw = path.read_bytes()
    try:
        raw.decode(encoding)
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        bad = raw[exc.start : exc.start + 1].hex()
        raise error(
            f"{path} is not {encoding} text: byte 0x{bad} on line {line} cannot be decoded. "
            "Re-save the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8 IN > OUT`) or pass its "
            "encoding (sites validate --encoding latin-1)."
        ) from exc


def read_vector(
    path: Path, *, error: type[Exception] = RegistryError, encoding: str = "utf-8"
) -> gpd.GeoDataFrame:
    """Read GeoJSON, GeoPackage, Shapefile, GeoParquet or CSV (lon, lat columns) in EPSG:4326.

    Adds ``source_row`` (1-based row number in the file) so every later rejection can name
    the row it came from. Text files (CSV, GeoJSON) must be in ``encoding`` (default UTF-8,
    a leading byte-order mark is allowed); anything else is refused, never guessed.
    """
    path = Path(path)
    if not path.exists():
        raise DataNotFoundError(f"{path} does not exist. Check the path.")
    if path.suffix.lower() in TEXT_SUFFIXES:
        _check_text(path, encoding=encoding, error=error)
    utf8 = encoding.lower().replace("_", "-") in ("utf-8", "utf8")
    try:
        if path.suffix.lower() == ".parquet":
            frame = gpd.read_parquet(path)
        elif path.suffix.lower() == ".csv":
            table = pd.read_csv(path, encoding="utf-8-sig" if utf8 else encoding)
            cols = {c.lower(): c for c in table.columns}
            if not {"lon", "lat"} <= set(cols):
                raise error(f"{path}: a CSV needs 'lon' and 'lat' columns (EPSG:4326). Add them.")
            frame = gpd.GeoDataFrame(
                table,
                geometry=gpd.points_from_xy(table[cols["lon"]], table[cols["lat"]]),
                crs=WGS84,
            )
        else:
            frame = gpd.read_file(path) if utf8 else gpd.read_file(path, encoding=encoding)
    except (DataSourceError, OSError, ValueError) as exc:
        raise error(f"{path} cannot be read as vector data ({exc}). Check the file.") from exc
    if frame.crs is None:
        raise error(f"{path} has no CRS. Declare it (GeoJSON is EPSG:4326) and read again.")
    if frame.crs.to_epsg() != 4326:
        frame = frame.to_crs(WGS84)
    frame = frame.reset_index(drop=True)
    frame["source_row"] = range(1, len(frame) + 1)
    return frame


def read_registry(path: Path, *, fmt: str, encoding: str = "utf-8") -> gpd.GeoDataFrame:
    """Read a mine-site registry file as it is, plus ``source_row`` and ``source_file``.

    The mapping to the MineSite schema (``fmt`` in formats.toml) is applied by
    :func:`pipeline.comply.registry.to_mine_sites`. ``encoding`` is that of a CSV or
    GeoJSON file (a Shapefile says its own in ``.cpg``).
    """
    format_spec("registry", fmt)  # fail early on an unknown format
    frame = read_vector(path, error=RegistryError, encoding=encoding)
    frame["source_file"] = Path(path).name
    log.info("registry %s: %d rows (format %s)", path, len(frame), fmt)
    return frame


def _stable_id(*parts: object) -> str:
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()
    return digest[:16]


#: External detections read in this process, by format and the files' (name, size, mtime):
#: a basin-wide night reads the Amazon Mining Watch files once for its ~240 AOIs, not once
#: per AOI (issue 19). A changed file has a new key, so nothing stale is ever returned.
_READ: OrderedDict[tuple[Any, ...], gpd.GeoDataFrame] = OrderedDict()
_READ_MAX = 4


def _files_key(fmt: str, files: list[str]) -> tuple[Any, ...]:
    stats = [(f, os.stat(f).st_size, os.stat(f).st_mtime_ns) for f in files]
    return (fmt, *stats)


def read_external_detections(pattern: Path, *, fmt: str) -> gpd.GeoDataFrame:
    """Read detections made elsewhere (AMW, GFW, DETER...) into Detection columns.

    Parameters
    ----------
    pattern
        A file or a glob (``detections/amw_amapa/amw_mining_amapa_*.geojson``).
    fmt
        A ``[detections.*]`` table of formats.toml.

    Returns
    -------
    GeoDataFrame
        EPSG:4326, columns ``detection_id``, ``kind``, ``period``, ``first_seen``,
        ``last_seen``, ``confidence``, ``source``, ``mined_area_ha`` (the source's own
        estimate, may be NaN), ``source_file``, ``source_row``, geometry. A copy: the
        files are read once per process while they stay unchanged.
    """
    return _cached(pattern, fmt=fmt).copy()


def external_detection_dates(pattern: Path, *, fmt: str) -> list[date]:
    """Every ``first_seen`` / ``last_seen`` date of the files' detections (no copy of the
    table: a basin night asks once per AOI for the same files)."""
    frame = _cached(pattern, fmt=fmt)
    values = pd.concat([frame["first_seen"], frame["last_seen"]]).dropna().unique()
    return [v if isinstance(v, date) else pd.Timestamp(v).date() for v in values]


def external_detections_within(pattern: Path, *, fmt: str, within: BaseGeometry) -> gpd.GeoDataFrame:
    """The external detections that intersect ``within`` (EPSG:4326), found with the spatial
    index of the files read once per process (:func:`read_external_detections`)."""
    frame = _cached(pattern, fmt=fmt)
    hits = frame.sindex.query(within, predicate="intersects")
    return frame.iloc[np.sort(hits)].copy()


def _cached(pattern: Path, *, fmt: str) -> gpd.GeoDataFrame:
    files = sorted(glob.glob(str(pattern)))
    if not files:
        raise DataNotFoundError(f"No detection files match {pattern}. Check the path or ASM_SAMPLE_DATA.")
    key = _files_key(fmt, files)
    if key in _READ:
        _READ.move_to_end(key)
        return _READ[key]
    frame = _read_external(files, fmt=fmt, pattern=pattern)
    _ = frame.sindex  # built once here, shared by every AOI that clips the files
    _READ[key] = frame
    while len(_READ) > _READ_MAX:
        _READ.popitem(last=False)
    return frame


def _read_external(files: list[str], *, fmt: str, pattern: Path) -> gpd.GeoDataFrame:
    spec = format_spec("detections", fmt)
    frames = []
    for file in files:
        raw = read_vector(Path(file), error=DetectionSourceError)
        col = spec["period_column"]
        if col not in raw.columns:
            raise DetectionSourceError(
                f"{file}: no period column {col!r} (format {fmt}). Columns: {list(raw.columns)}."
            )
        # a file holds a handful of distinct periods: parse each once
        parse = (lambda v: amw_period(int(v))) if fmt == "amw" else (lambda v: parse_period(str(v)))
        by_value = {v: parse(v) for v in pd.unique(raw[col])}
        periods = [by_value[v] for v in raw[col]]
        area_col = spec.get("mined_area_column")
        out = gpd.GeoDataFrame(
            {
                "period": [p.label for p in periods],
                "first_seen": [p.end for p in periods],
                "last_seen": [p.end for p in periods],
                "kind": spec["kind"],
                "confidence": spec["confidence"],
                "source": spec["source"],
                "mined_area_ha": (
                    raw[area_col].astype(float) if area_col and area_col in raw else float("nan")
                ),
                "source_file": Path(file).name,
                "source_row": raw["source_row"].to_numpy(),
            },
            geometry=raw.geometry.values,
            crs=WGS84,
        )
        frames.append(out)
    result = gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), crs=WGS84)
    invalid = ~result.geometry.is_valid
    if invalid.any():
        log.warning(
            "%d external detections have invalid geometry; repaired with make_valid",
            int(invalid.sum()),
        )
        result.loc[invalid, "geometry"] = result.geometry[invalid].make_valid()
    wkb = shapely.to_wkb(result.geometry.values, hex=True)
    result["detection_id"] = [
        _stable_id(spec["source"], per, hexed) for per, hexed in zip(result["period"], wkb, strict=True)
    ]
    log.info("external detections %s: %d polygons in %d files", pattern, len(result), len(files))
    return result
