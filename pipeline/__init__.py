"""asm-monitor: satellite monitoring of artisanal gold mining around protected areas.

The public API for notebooks::

    import pipeline
    settings = pipeline.load_settings()
    aoi = pipeline.load_aoi("aoi/trombetas.geojson", settings=settings)
    cube = pipeline.open_cube(aoi, settings=settings)      # lazy xarray.Dataset
"""

from __future__ import annotations

__version__ = "0.1.0"

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import xarray as xr

    from pipeline.config import Settings
    from pipeline.records import Aoi


def load_settings(path: str | Path | None = None, **cli: Any) -> Settings:
    """Settings from defaults < config file < ``ASM_*`` env < keyword overrides."""
    from pipeline.config import load_settings as _load

    return _load(Path(path) if path else None, cli=cli)


def load_aoi(path: str | Path, *, settings: Settings | None = None, repair: bool = False) -> Aoi:
    """Load and validate one AOI definition (see :func:`pipeline.ingest.aoi.load_aoi`)."""
    from pipeline.ingest.aoi import load_aoi as _load

    s = settings or load_settings()
    return _load(Path(path), sample_data=s.sample_data, repair=repair, max_km2=s.max_aoi_km2)


def open_cube(aoi: Aoi, *, settings: Settings | None = None) -> xr.Dataset:
    """Lazy reflectance cube of an imagery AOI, dims ``("time", "y", "x")`` per band."""
    from pipeline.run import open_cube as _open

    return _open(aoi, settings=settings or load_settings())


__all__ = ["__version__", "load_aoi", "load_settings", "open_cube"]
