"""asm-monitor: satellite monitoring of artisanal gold mining around protected areas.

The public API for notebooks::

    import pipeline
    settings = pipeline.load_settings()
    aoi = pipeline.load_aoi("aoi/trombetas.geojson", settings=settings)
    cube = pipeline.canonical_cube(aoi, settings=settings)     # lazy xarray.Dataset
    found = pipeline.detect_aoi(aoi, settings=settings)         # computes
    run = pipeline.open_run("out/amapa-gold")                   # a run's tables

The analyst functions (detect_aoi, run_aoi, impact, suppress, ledger, ...) live in
:mod:`pipeline.analyst.api` (with :mod:`pipeline.analyst.review` and :mod:`pipeline.analyst.analysis`) and the
threshold sweeps in :mod:`pipeline.analyst.tuning`; all are importable from here lazily, so
``import pipeline`` stays light for the CLI.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.core.version import __version__

if TYPE_CHECKING:
    import geopandas as gpd
    import xarray as xr

    from pipeline.core.config import Settings
    from pipeline.core.records import Aoi


def load_settings(path: str | Path | None = None, **cli: Any) -> Settings:
    """Settings from defaults < config file < ``ASM_*`` env < keyword overrides."""
    from pipeline.core.config import load_settings as _load

    return _load(Path(path) if path else None, cli=cli)


def load_aoi(path: str | Path, *, settings: Settings | None = None, repair: bool = False) -> Aoi:
    """Load and validate one AOI definition (see :func:`pipeline.ingest.aoi.load_aoi`)."""
    from pipeline.ingest.aoi import load_aoi as _load

    s = settings or load_settings()
    return _load(Path(path), sample_data=s.sample_data, repair=repair, max_km2=s.max_aoi_km2)


def open_cube(aoi: Aoi, *, settings: Settings | None = None) -> xr.Dataset:
    """Lazy reflectance cube of an imagery AOI, dims ``("time", "y", "x")`` per band."""
    from pipeline.ops.imagery import open_cube as _open

    return _open(aoi, settings=settings or load_settings())


def open_run(path: str | Path) -> RunOutputs:
    """Open one AOI's run outputs (``<out_dir>/<aoi_id>``) as tables for analysis.

    Returns
    -------
    RunOutputs
        ``flags`` and ``detections`` (GeoDataFrames, EPSG:4326), ``sites`` (or None), and
        ``summary`` (the parsed ``run.json``). In ``flags``, ``first_seen`` / ``last_seen``
        are dates, ``reason_args`` dicts and ``detection_ids`` lists.
    """
    import json

    import geopandas as gpd

    from pipeline.core.errors import DataNotFoundError

    folder = Path(path)
    if not (folder / "run.json").is_file():
        raise DataNotFoundError(
            f"{folder} holds no run.json. Pass an AOI output folder, e.g. demo-out/munduruku "
            "(run `asm-monitor demo` first)."
        )
    sites = folder / "sites.parquet"
    return RunOutputs(
        folder=folder,
        flags=_typed_flags(gpd.read_parquet(folder / "flags.parquet")),
        detections=gpd.read_parquet(folder / "detections.parquet"),
        sites=gpd.read_parquet(sites) if sites.is_file() else None,
        summary=json.loads((folder / "run.json").read_text(encoding="utf-8")),
    )


def _typed_flags(flags: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Flags as an analyst works with them: ``first_seen`` / ``last_seen`` as dates (None when
    unknown), ``reason_args`` as dicts and ``detection_ids`` as lists of ids."""
    import json

    import pandas as pd

    out = flags.copy()
    for col in ("first_seen", "last_seen"):
        if col in out:
            days = pd.to_datetime(out[col], errors="coerce")
            out[col] = [None if pd.isna(d) else d.date() for d in days]
    if "reason_args" in out:
        out["reason_args"] = [json.loads(v) if isinstance(v, str) and v else {} for v in out["reason_args"]]
    if "detection_ids" in out:
        out["detection_ids"] = [
            [d for d in v.split(",") if d] if isinstance(v, str) else [] for v in out["detection_ids"]
        ]
    return out


@dataclass(frozen=True)
class RunOutputs:
    """One AOI's run outputs, loaded."""

    folder: Path
    flags: gpd.GeoDataFrame
    detections: gpd.GeoDataFrame
    sites: gpd.GeoDataFrame | None
    summary: dict[str, Any]


_API = (
    "aoi_inputs",
    "canonical_cube",
    "detect_aoi",
    "explore",
    "impact",
    "ledger",
    "load_zones",
    "notebook_settings",
    "river_turbidity",
    "run_aoi",
    "scene_products",
    "scorecard_page",
    "site_scorecard",
    "suppress",
    "true_colour",
    "turbidity_matchups",
    "verify_ledger",
)
_TUNING = ("sweep_classifier", "sweep_confirmation", "sweep_index_rules")


def __getattr__(name: str) -> Any:
    # lazy: pipeline.analyst.api pulls in geopandas, dask and scikit-learn
    if name in _API:
        from pipeline.analyst import api

        return getattr(api, name)
    if name in _TUNING:
        from pipeline.analyst import tuning

        return getattr(tuning, name)
    raise AttributeError(f"module 'pipeline' has no attribute {name!r}")


def __dir__() -> list[str]:
    # the public API (lazy names included), not the typing helpers this module imports
    return sorted(__all__)


__all__ = [
    "RunOutputs",
    "__version__",
    "load_aoi",
    "load_settings",
    "open_cube",
    "open_run",
    *_API,
    *_TUNING,
]
