"""Scene sources: one small protocol, several readers.

``SceneSource.load(aoi, period, *, bands, resolution, chunks) -> xr.Dataset`` returns one
lazy float32 variable per band with dims ``("time", "y", "x")`` on the AOI's UTM grid:
reflectance 0-1 (scale and offset applied per scene and recorded in the ``scale`` /
``offset`` coordinates), mask bands (SCL, CLM, IS_DATA, dataMask) as their class values,
nodata as NaN, and ``scene_id`` / acquisition ``time`` coordinates along ``time``.

The pieces live in their own modules; this one gathers them so callers have one place to
import from:

- :mod:`pipeline.ingest.scene_spec`: :class:`SceneSpec`, the :class:`SceneSource` protocol;
- :mod:`pipeline.ingest.scene_headers`: file headers and the AOI grid (:func:`aoi_grid`);
- :mod:`pipeline.ingest.scene_open`: :func:`open_scene`, one scene as a lazy cube;
- :mod:`pipeline.ingest.scene_cube`: :func:`stack_scenes`, :func:`aoi_footprint`;
- :mod:`pipeline.ingest.local_source`: :class:`LocalFolderSource`.
"""

from __future__ import annotations

from pipeline.ingest.local_source import LocalFolderSource
from pipeline.ingest.scene_cube import aoi_footprint, stack_scenes
from pipeline.ingest.scene_headers import FileHeader, aoi_grid
from pipeline.ingest.scene_open import open_scene
from pipeline.ingest.scene_spec import DEFAULT_RESOLUTION_M, MASK_BANDS, OnError, SceneSource, SceneSpec

__all__ = [
    "DEFAULT_RESOLUTION_M",
    "MASK_BANDS",
    "FileHeader",
    "LocalFolderSource",
    "OnError",
    "SceneSource",
    "SceneSpec",
    "aoi_footprint",
    "aoi_grid",
    "open_scene",
    "stack_scenes",
]
