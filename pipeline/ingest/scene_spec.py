"""What a scene source is: the index entry of one scene and the protocol every source offers.

No file is opened here, so every source (and the index builders) can depend on it cheaply.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, Protocol

import xarray as xr

from pipeline.core.errors import RasterError
from pipeline.core.periods import Period
from pipeline.core.records import Aoi
from pipeline.ingest.paths import resolve_input

#: Bands holding classes or flags, never scaled to reflectance.
MASK_BANDS = frozenset({"SCL", "CLM", "IS_DATA", "dataMask"})
DEFAULT_RESOLUTION_M = 10.0
OnError = Literal["raise", "skip"]


@dataclass(frozen=True, kw_only=True)
class SceneSpec:
    """One scene of a local source (an index entry): one multi-band file, or one file per
    band, plus optional mask files."""

    scene_id: str
    """Stable id of the scene (product id or file stem)."""
    path: Path | None = None
    """GeoTIFF / COG with one band per spectral band; None when every band has its own file."""
    band_paths: Mapping[str, Path] = field(default_factory=dict)
    """Band name -> single-band file (per-band layouts and mask files: CLM, IS_DATA, SCL)."""
    band_names: tuple[str, ...] = ()
    """Names of the bands of ``path`` in order, when its band descriptions do not say."""
    datetime: datetime | None = None
    """Acquisition time (UTC, naive); None when the source did not record it."""
    scale: float | None = None
    """Reflectance = DN * scale + offset; None = from the file (scales / ``scale_factor``)."""
    offset: float | None = None
    """Per-scene offset (L2A baseline >= 04.00 carries BOA_ADD_OFFSET -0.1); None = file's."""

    @property
    def files(self) -> set[Path]:
        """Every file of the scene (the multi-band file and the per-band / mask files)."""
        return {p for p in [self.path, *self.band_paths.values()] if p is not None}

    @classmethod
    def from_mapping(cls, entry: Mapping[str, Any], *, root: Path) -> SceneSpec:
        """Build from an AOI ``inputs.scenes`` entry or a JSON index; paths relative to ``root``."""
        path = resolve_input(str(entry["path"]), root=root) if entry.get("path") else None
        bands = {str(k): resolve_input(str(v), root=root) for k, v in (entry.get("bands") or {}).items()}
        when = entry.get("datetime")
        if path is None and not bands:
            raise RasterError(f"Scene entry {dict(entry)} has neither 'path' nor 'bands'. Give one.")
        stem = path.stem if path is not None else next(iter(bands.values())).stem
        return cls(
            scene_id=str(entry.get("scene_id") or stem),
            path=path,
            band_paths=bands,
            band_names=tuple(entry.get("band_names") or ()),
            datetime=datetime.fromisoformat(str(when)).replace(tzinfo=None) if when else None,
            scale=float(entry["scale"]) if entry.get("scale") is not None else None,
            offset=float(entry["offset"]) if entry.get("offset") is not None else None,
        )


class SceneSource(Protocol):
    """What every imagery source offers (local folder, Sentinel Hub, STAC)."""

    def load(
        self,
        aoi: Aoi,
        period: Period | None,
        *,
        bands: Sequence[str],
        resolution: float | None = None,
        chunks: int = 512,
    ) -> xr.Dataset:
        """Lazy cube for the AOI and period on its UTM grid, dims ``("time", "y", "x")``."""
        ...


def cloud_filter(max_cloud_cover: float) -> str | None:
    """The CQL2-text clause ``eo:cloud_cover <= max_cloud_cover`` of a remote scene search
    (Sentinel Hub Catalog), None at 100 % (no filter)."""
    if max_cloud_cover >= 100:
        return None
    return f"eo:cloud_cover <= {float(max_cloud_cover):g}"
