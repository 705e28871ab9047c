"""How a STAC asset becomes a band of a :class:`~pipeline.ingest.scene_spec.SceneSpec`.

Shared by static catalogs and STAC APIs: band names (asset keys and ``eo:bands`` names of
Earth Search v1, ``blue`` .. ``swir22``, mapped to Sentinel-2 names ``B02`` .. ``B12``), hrefs
GDAL can open (``http(s)://`` -> ``/vsicurl``, ``s3://`` -> ``/vsis3/``), and which assets to
skip (JPEG 2000 copies, thumbnails, metadata).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

#: Common / Earth Search v1 names of Sentinel-2 bands -> the names the pipeline uses.
COMMON_TO_S2 = {
    "coastal": "B01",
    "blue": "B02",
    "green": "B03",
    "red": "B04",
    "rededge1": "B05",
    "rededge2": "B06",
    "rededge3": "B07",
    "nir": "B08",
    "nir08": "B8A",
    "nir09": "B09",
    "cirrus": "B10",
    "swir16": "B11",
    "swir22": "B12",
    "scl": "SCL",
}
_S2_NAME = re.compile(r"^(B\d{2}|B8A|SCL|CLM|IS_DATA|dataMask)$", re.IGNORECASE)
_SKIP_ROLES = {"thumbnail", "overview", "metadata", "visual"}


def gdal_href(href: str, *, base: Path) -> Path:
    """A path GDAL opens for an asset ``href``: remote URLs through GDAL's virtual file systems
    (``/vsicurl/<url>``; ``Path`` folds ``http://`` to ``http:/``, which GDAL reads as the same
    URL, and the name keeps its ``.tif`` so ``CPL_VSIL_CURL_ALLOWED_EXTENSIONS`` lets it
    through), ``file://`` and absolute paths as they are, relative paths against ``base``."""
    if href.startswith(("http://", "https://")):
        return Path(f"/vsicurl/{href}")
    if href.startswith("s3://"):
        return Path("/vsis3/" + href.removeprefix("s3://"))
    path = Path(href.removeprefix("file://"))
    return path if path.is_absolute() else base / path


def _canonical(name: str) -> str | None:
    if _S2_NAME.match(name):
        upper = name.upper()
        return {"DATAMASK": "dataMask"}.get(upper, upper)
    return COMMON_TO_S2.get(name.lower())


def asset_band(key: str, asset: dict[str, Any]) -> str | None:
    """The band name of a single-band asset, None for assets that are not a band.

    The asset key wins when it is a band name (``B04``, ``red``, ``SCL``), then its one
    ``eo:bands`` entry (``name``, then ``common_name``); other data assets keep their
    ``eo:bands`` name or key (a static catalog's own band names). JPEG 2000 copies
    (``red-jp2``), thumbnails, overviews and metadata are not bands.
    """
    roles = set(asset.get("roles") or ["data"])
    media = str(asset.get("type") or "")
    if roles & _SKIP_ROLES or "jp2" in media or key.endswith("-jp2") or str(asset["href"]).endswith(".jp2"):
        return None
    bands = asset.get("eo:bands") or []
    names = [key] + [str(b.get(k)) for b in bands[:1] for k in ("name", "common_name") if b.get(k)]
    for name in names:
        found = _canonical(name)
        if found is not None:
            return found
    if "data" in roles:
        return names[1] if len(names) > 1 else key
    return None


def is_reflectance(band: str) -> bool:
    """True for Sentinel-2 spectral bands (their ``raster:bands`` scale is the scene's)."""
    return re.fullmatch(r"B\d{2}|B8A", band) is not None
