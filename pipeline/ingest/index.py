"""Index a local folder of scenes: by file-name pattern, or by one STAC Item JSON per scene.

File names (the default pattern) look like ``<prefix>_<YYYYMMDD[THHMMSS]>[_<BAND>].tif``:

- ``s2_l1c_20150711.tif``: a multi-band scene (band descriptions name the bands);
- ``S2B_T21MXS_20200105_B04.tif``, ``..._B08.tif``: one file per band of one scene;
- ``clm_20150711.tif``, ``is_data_20150711.tif``, ``scl_20200105.tif``: mask files, attached
  to every scene of the same date as bands ``CLM``, ``IS_DATA``, ``SCL``.

A STAC Item (``*.json`` with ``"type": "Feature"``) gives ``id``, ``properties.datetime``
and assets; an asset whose key or ``eo:bands`` name is a band is read from its ``href``
(relative to the item; ``http(s)://`` through GDAL's ``/vsicurl``), with ``raster:bands``
scale / offset when present (:mod:`pipeline.ingest.stac_assets`).
"""

from __future__ import annotations

import json
import logging
import re
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

import rasterio
import rasterio.errors

from pipeline.core.errors import DataNotFoundError, RasterError
from pipeline.ingest.scenes import SceneSpec
from pipeline.ingest.stac_assets import asset_band, gdal_href, is_reflectance

log = logging.getLogger(__name__)

DEFAULT_PATTERN = (
    r"^(?P<prefix>[A-Za-z0-9]+(?:_[A-Za-z0-9]+)*?)_(?P<date>\d{8}(?:T\d{6})?)"
    r"(?:_(?P<band>B\d{2}|B8A|SCL|CLM|dataMask))?\.tiff?$"
)
#: File-name prefixes of mask files, and the band name they become.
DEFAULT_MASKS = {"clm": "CLM", "is_data": "IS_DATA", "scl": "SCL", "datamask": "dataMask"}


def _parse_date(text: str) -> datetime:
    return datetime.strptime(text, "%Y%m%dT%H%M%S" if "T" in text else "%Y%m%d")


def _acquired(entry: dict[str, Any], date: str) -> datetime:
    """The file's ``ACQUISITION_TIME`` tag when it falls on the named day (names carry the
    day only; the time of day matters when several passes share a day), else the name's date."""
    day = _parse_date(date)
    first = entry.get("path") or next(iter(entry["bands"].values()), None)
    if "T" in date or first is None:
        return day
    try:
        with rasterio.open(first) as src:
            tag = src.tags().get("ACQUISITION_TIME", "")
        when = datetime.fromisoformat(tag.replace("Z", "+00:00")).replace(tzinfo=None)
    except (rasterio.errors.RasterioIOError, ValueError):
        return day
    return when if when.date() == day.date() else day


def index_by_pattern(
    folder: Path,
    *,
    pattern: str = DEFAULT_PATTERN,
    masks: dict[str, str] | None = None,
    scale: float | None = None,
    offset: float | None = None,
) -> list[SceneSpec]:
    """Scenes in ``folder`` from their file names (see the module docstring).

    Files that do not match ``pattern`` are ignored (logged at debug level). ``pattern``
    needs the named groups ``prefix`` and ``date`` and may have ``band``.
    """
    rx = re.compile(pattern)
    masks = DEFAULT_MASKS if masks is None else masks
    scenes: dict[tuple[str, str], dict[str, Any]] = defaultdict(lambda: {"bands": {}})
    mask_files: dict[str, dict[str, Path]] = defaultdict(dict)
    for path in sorted(Path(folder).iterdir()):
        m = rx.match(path.name)
        if not m:
            log.debug("index: %s does not match the scene pattern; ignored", path.name)
            continue
        prefix, date, band = m.group("prefix"), m.group("date"), m.groupdict().get("band")
        if prefix.lower() in masks:
            mask_files[date][masks[prefix.lower()]] = path
            continue
        entry = scenes[(prefix, date)]
        if band:
            entry["bands"][band] = path
        else:
            entry["path"] = path
    out = []
    for (prefix, date), entry in scenes.items():
        out.append(
            SceneSpec(
                scene_id=f"{prefix}_{date}",
                path=entry.get("path"),
                band_paths={**entry["bands"], **mask_files.get(date, {})},
                datetime=_acquired(entry, date),
                scale=scale,
                offset=offset,
            )
        )
    return sorted(out, key=lambda s: (s.datetime or datetime.min, s.scene_id))


def scene_from_stac_item(item: dict[str, Any], *, base: Path) -> SceneSpec:
    """A :class:`SceneSpec` from a STAC Item dict whose asset hrefs are relative to ``base``.

    Raises
    ------
    RasterError
        The item has no datetime or no asset that names a band.
    """
    props = item.get("properties") or {}
    when = props.get("datetime") or props.get("start_datetime")
    if not when:
        raise RasterError(f"STAC item {item.get('id')!r} has no datetime. Add properties.datetime.")
    bands: dict[str, Path] = {}
    multi: tuple[Path, tuple[str, ...]] | None = None
    scale: float | None = None
    offset: float | None = None
    for key, asset in (item.get("assets") or {}).items():
        path = gdal_href(str(asset["href"]), base=base)
        names = tuple(str(b.get("name") or key) for b in asset.get("eo:bands") or [])
        if len(names) > 1:
            if "data" in (asset.get("roles") or ["data"]):
                multi = (path, names)
            continue
        band = asset_band(key, asset)
        if band is None:
            continue
        bands[band] = path
        raster = asset.get("raster:bands") or []
        # the reflectance bands' scale is the scene's (aot / wvp carry their own)
        if raster and "scale" in raster[0] and (scale is None or is_reflectance(band)):
            scale = float(raster[0]["scale"])
            offset = float(raster[0].get("offset", 0.0))
    if multi is None and not bands:
        raise RasterError(f"STAC item {item.get('id')!r} has no band assets. Add assets with eo:bands.")
    return SceneSpec(
        scene_id=str(item.get("id")),
        path=multi[0] if multi else None,
        band_names=multi[1] if multi else (),
        band_paths=bands,
        datetime=datetime.fromisoformat(str(when).replace("Z", "+00:00")).replace(tzinfo=None),
        scale=scale,
        offset=offset,
    )


def index_stac_items(folder: Path) -> list[SceneSpec]:
    """Scenes from the STAC Item JSON files (``"type": "Feature"``) directly in ``folder``."""
    out = []
    for path in sorted(Path(folder).glob("*.json")):
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise RasterError(f"Index file {path} is not valid JSON ({exc}). Fix or remove it.") from exc
        if isinstance(doc, dict) and doc.get("type") == "Feature":
            out.append(scene_from_stac_item(doc, base=path.parent))
    return sorted(out, key=lambda s: (s.datetime or datetime.min, s.scene_id))


def index_folder(folder: Path, *, pattern: str = DEFAULT_PATTERN) -> list[SceneSpec]:
    """STAC items when the folder has any, else file names.

    Raises
    ------
    DataNotFoundError
        The folder does not exist or indexes no scene.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataNotFoundError(f"Scene folder {folder} does not exist. Check the path.")
    scenes = index_stac_items(folder) or index_by_pattern(folder, pattern=pattern)
    if not scenes:
        raise DataNotFoundError(
            f"No scene found in {folder}: no STAC item JSON and no file named like "
            "<prefix>_<YYYYMMDD>[_<BAND>].tif. Rename the files or pass pattern=."
        )
    return scenes
