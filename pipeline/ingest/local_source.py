"""The local-folder source: scenes of an index read lazily from disk onto the AOI's grid."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import xarray as xr

from pipeline.core.errors import NoDataError, PipelineError
from pipeline.core.periods import Period
from pipeline.core.records import Aoi
from pipeline.ingest.scene_cube import stack_scenes
from pipeline.ingest.scene_headers import FileHeader, HeaderKey, choose_grid, header_key, read_header
from pipeline.ingest.scene_open import open_scene
from pipeline.ingest.scene_spec import OnError, SceneSpec

log = logging.getLogger(__name__)


class LocalFolderSource:
    """Scenes from an index (AOI ``inputs.scenes``, a folder's file names or STAC items),
    read lazily from disk onto the AOI's UTM grid.

    Parameters
    ----------
    scenes
        The index; build it with :func:`pipeline.ingest.index.index_folder` for a folder.
    on_error
        ``raise`` (default): a scene that is corrupt or misses the AOI stops the load.
        ``skip``: it is logged with its reason and left out (an empty result still raises
        :class:`NoDataError`).
    """

    def __init__(self, scenes: Sequence[SceneSpec], *, on_error: OnError = "raise") -> None:
        self.scenes = list(scenes)
        self.on_error = on_error

    def select(self, period: Period | None) -> list[SceneSpec]:
        """Scenes in ``period`` (undated scenes always count: their date is unknown)."""
        return [
            s
            for s in self.scenes
            if period is None or s.datetime is None or period.contains(s.datetime.date())
        ]

    def load(
        self,
        aoi: Aoi,
        period: Period | None,
        *,
        bands: Sequence[str],
        resolution: float | None = None,
        chunks: int = 512,
    ) -> xr.Dataset:
        """Stack the scenes of the period along time on one grid (see :func:`open_scene`).

        Raises
        ------
        NoDataError
            No scene in the period, or (with ``on_error="skip"``) none usable.
        """
        chosen = self.select(period)
        if not chosen:
            raise NoDataError(
                f"No scene of AOI '{aoi.aoi_id}' falls in period {period} ({len(self.scenes)} indexed). "
                "Choose another period or add scenes."
            )
        # each header is read once; a file that fails is read again (and fails) in open_scene,
        # which skips or raises for its scene
        headers: dict[HeaderKey, FileHeader] = {}
        for s in chosen:
            for p in s.files:
                key = header_key(s, path=p)
                try:
                    headers[key] = read_header(p, names=key[1])
                except PipelineError:
                    if self.on_error == "raise":
                        raise
        grid = choose_grid(aoi, headers=list(headers.values()), resolution=resolution)
        parts, skipped = [], []
        for spec in chosen:
            try:
                parts.append(open_scene(spec, aoi, bands=bands, grid=grid, chunks=chunks, headers=headers))
            except PipelineError as exc:
                if self.on_error == "raise":
                    raise
                log.warning("skipping scene %s: %s", spec.scene_id, exc)
                skipped.append(f"{spec.scene_id}: {exc}")
        if not parts:
            raise NoDataError(f"AOI '{aoi.aoi_id}', period {period}: no usable scene. " + " | ".join(skipped))
        return stack_scenes(parts)
