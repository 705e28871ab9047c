"""STAC source: items of a static STAC catalog (or a STAC API), read like local scenes.

A static catalog (``catalog.json`` with ``child`` / ``item`` links, as written by pystac or
stactools) is walked with the standard library; a STAC API URL is searched with
pystac-client when it is installed. Either way each item becomes a :class:`SceneSpec`
(``scene_from_stac_item``: assets named by key or ``eo:bands``, ``raster:bands`` scale and
offset) and is read lazily onto the AOI's UTM grid by :class:`LocalFolderSource`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import xarray as xr
from shapely.geometry import box, shape

from pipeline.core.errors import ConfigError, DataNotFoundError, NoDataError
from pipeline.core.periods import Period
from pipeline.core.records import Aoi
from pipeline.ingest.index import scene_from_stac_item
from pipeline.ingest.scenes import LocalFolderSource, OnError, SceneSpec

log = logging.getLogger(__name__)


def _read(path: Path) -> dict[str, Any]:
    try:
        doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise DataNotFoundError(f"STAC document {path} does not exist. Check the catalog links.") from exc
    except json.JSONDecodeError as exc:
        raise DataNotFoundError(
            f"STAC document {path} is not valid JSON ({exc}). Fix or regenerate it."
        ) from exc
    return doc


def walk_static(catalog: Path) -> Iterator[tuple[dict[str, Any], Path]]:
    """(item, folder its relative hrefs resolve against) for every item under ``catalog``."""
    seen: set[Path] = set()
    stack = [Path(catalog).resolve()]
    while stack:
        path = stack.pop()
        if path in seen:
            continue
        seen.add(path)
        doc = _read(path)
        if doc.get("type") == "Feature":
            yield doc, path.parent
            continue
        for link in doc.get("links") or []:
            if link.get("rel") in {"child", "item"}:
                href = str(link["href"]).removeprefix("file://")
                stack.append((path.parent / href).resolve())


def _in_period(item: dict[str, Any], period: Period | None) -> bool:
    if period is None:
        return True
    when = (item.get("properties") or {}).get("datetime")
    if not when:
        return True
    day = datetime.fromisoformat(str(when).replace("Z", "+00:00")).date()
    return period.contains(day)


class StacSource:
    """Scenes from a STAC catalog (static file or API) whose assets GDAL can open.

    Parameters
    ----------
    catalog
        Path to a static ``catalog.json`` / ``collection.json``, or a STAC API URL.
    collections
        For a STAC API: collection ids to search.
    on_error
        Passed to :class:`LocalFolderSource` (``raise`` or ``skip`` bad scenes).
    """

    def __init__(
        self, catalog: str | Path, *, collections: Sequence[str] = (), on_error: OnError = "raise"
    ) -> None:
        self.catalog = catalog
        self.collections = list(collections)
        self.on_error = on_error

    def items(self, aoi: Aoi, period: Period | None) -> list[SceneSpec]:
        """Items intersecting the AOI (by item geometry or bbox) in ``period``, as scenes."""
        if str(self.catalog).startswith(("http://", "https://")):
            return self._api_items(aoi, period)
        out = []
        for item, base in walk_static(Path(self.catalog)):
            footprint = shape(item["geometry"]) if item.get("geometry") else box(*item["bbox"])
            if footprint.intersects(aoi.geometry) and _in_period(item, period):
                out.append(scene_from_stac_item(item, base=base))
        return sorted(out, key=lambda s: (s.datetime or datetime.min, s.scene_id))

    def _api_items(self, aoi: Aoi, period: Period | None) -> list[SceneSpec]:
        try:
            from pystac_client import Client
        except ImportError as exc:  # optional: only STAC API users need it
            raise ConfigError(
                "Searching a STAC API needs pystac-client: `pip install pystac-client`."
            ) from exc
        client = Client.open(str(self.catalog))
        when = f"{period.start.isoformat()}/{period.end.isoformat()}" if period else None
        search = client.search(
            collections=self.collections or None, intersects=aoi.geometry.__geo_interface__, datetime=when
        )
        return [scene_from_stac_item(i.to_dict(), base=Path(".")) for i in search.items()]

    def load(
        self,
        aoi: Aoi,
        period: Period | None,
        *,
        bands: Sequence[str],
        resolution: float | None = None,
        chunks: int = 512,
    ) -> xr.Dataset:
        """Lazy cube of the matching items on the AOI's UTM grid (see ``LocalFolderSource``).

        Raises
        ------
        NoDataError
            No item intersects the AOI in the period.
        """
        scenes = self.items(aoi, period)
        if not scenes:
            raise NoDataError(
                f"STAC catalog {self.catalog} has no item over AOI '{aoi.aoi_id}' in "
                f"{period or 'any period'}. Check the catalog or widen the period."
            )
        log.info("STAC %s: %d items over '%s'", self.catalog, len(scenes), aoi.aoi_id)
        source = LocalFolderSource(scenes, on_error=self.on_error)
        return source.load(aoi, None, bands=bands, resolution=resolution, chunks=chunks)
