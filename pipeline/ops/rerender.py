"""Re-render a run's map and scorecards from its outputs (``asm-monitor map --run``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd

from pipeline.core.config import Settings
from pipeline.core.errors import DataNotFoundError
from pipeline.report.map import write_map
from pipeline.report.scorecard import scorecard_links, write_scorecards


def find_run_dir(run: str, *, out_dir: Path) -> Path:
    """``run`` is a folder ``OUT_DIR/AOI_ID`` or a run id found in ``out_dir/*/run.json``."""
    path = Path(run)
    if (path / "run.json").is_file():
        return path
    for summary in sorted(out_dir.glob("*/run.json")):
        if json.loads(summary.read_text(encoding="utf-8")).get("run_id") == run:
            return summary.parent
    raise DataNotFoundError(
        f"No run '{run}': pass a run folder OUT_DIR/AOI_ID containing run.json, "
        "or a run id with --out OUT_DIR."
    )


def _read(run_dir: Path, name: str, *, required: bool = True) -> gpd.GeoDataFrame | None:
    path = run_dir / name
    if not path.is_file():
        if required:
            raise DataNotFoundError(f"{path} is missing. Re-run `asm-monitor run` for this AOI to write it.")
        return None
    return gpd.read_parquet(path) if name.endswith(".parquet") else gpd.read_file(path)


def _aoi_frame(run_dir: Path, aoi_id: str, settings: Settings | None) -> gpd.GeoDataFrame:
    found = _read(run_dir, "aoi.geojson", required=settings is None)
    if found is not None:
        return found
    assert settings is not None
    # runs written before aoi.geojson existed: read the AOI definition itself
    from pipeline.ingest.aoi import load_aoi

    path = settings.aoi_dir / f"{aoi_id}.geojson"
    if not path.is_file():
        raise DataNotFoundError(
            f"Neither {run_dir / 'aoi.geojson'} nor {path} exists. Pass --aoi-dir or re-run the AOI."
        )
    return load_aoi(path, sample_data=settings.sample_data, max_km2=settings.max_aoi_km2).to_frame()


def rerender_map(
    run_dir: Path, *, lang: str, target: Path | None = None, settings: Settings | None = None
) -> Path:
    """Write ``run_dir/map.html`` (or ``target``) again from the run's files in ``lang``.

    ``settings`` (aoi_dir, sample_data) locate the AOI outline of runs without ``aoi.geojson``.
    """
    summary: dict[str, Any] = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    aoi = _aoi_frame(run_dir, str(summary["aoi_id"]), settings)
    flags = _read(run_dir, "flags.parquet")
    detections = _read(run_dir, "detections.parquet")
    sites = _read(run_dir, "sites.parquet", required=False)
    assert flags is not None and detections is not None
    return write_map(
        target or run_dir / "map.html",
        aoi=aoi,
        detections=detections,
        flags=flags,
        sites=sites,
        title=str(summary.get("aoi_name", summary["aoi_id"])),
        attribution=str(summary.get("attribution", "")),
        lang=lang,
        run_id=str(summary.get("run_id", "")),
        scorecards=scorecard_links(sites),
        names=summary.get("aoi_names") or None,
    )


def rerender_scorecards(run_dir: Path, *, lang: str) -> Path | None:
    """Write ``run_dir/scorecards/`` again in ``lang`` (with the licence history the run
    recorded); None when the run had no registry."""
    summary: dict[str, Any] = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    sites = _read(run_dir, "sites.parquet", required=False)
    if sites is None or not len(sites):
        return None
    flags = _read(run_dir, "flags.parquet")
    detections = _read(run_dir, "detections.parquet")
    assert flags is not None and detections is not None
    history = run_dir / "scorecards" / "licence_history.csv"
    licences = pd.read_csv(history, dtype=str, keep_default_na=False) if history.is_file() else None
    written = write_scorecards(
        run_dir / "scorecards",
        sites=sites,
        flags=flags,
        detections=detections,
        aoi_name=str(summary.get("aoi_name", summary["aoi_id"])),
        aoi_names=summary.get("aoi_names") or None,
        lang=lang,
        licences=licences,
    )
    return written["index.html"]
