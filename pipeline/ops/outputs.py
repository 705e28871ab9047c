"""Writing one AOI's outputs as a set: staged in a new version folder, then swapped into place
with one atomic rename (:mod:`pipeline.ops.output_swap`), so a reader or a crash sees the
whole previous run or the whole new one, and the alert outbox is never in a swapped folder.
Renders and writes only; :mod:`pipeline.ops.run` computes everything before."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd

from pipeline.comply.figures import flag_count, run_figures
from pipeline.comply.impact import ImpactTables
from pipeline.comply.rules import RULEBOOK_VERSION
from pipeline.core.atomic import write_text
from pipeline.core.config import Settings
from pipeline.core.periods import Period
from pipeline.core.records import CONFIRMED, KIND_MINING, PROBABLE, Aoi, AoiResult
from pipeline.core.version import __version__
from pipeline.ops.output_swap import outbox_dir, staging_dir, swap_into_place
from pipeline.report.alerts import write_outbox
from pipeline.report.basin import index_entry
from pipeline.report.exports import write_csv, write_geojson, write_geoparquet
from pipeline.report.map import SceneImage, write_map
from pipeline.report.scorecard import scorecard_links
from pipeline.report.writer import write_extras
from pipeline.state.alert_outbox import queued_alerts
from pipeline.state.ledger_anchor import heads_path, last_head

__all__ = ["AoiProducts", "staging_dir", "swap_into_place", "write_outputs"]


@dataclass(frozen=True, kw_only=True)
class AoiProducts:
    """What one AOI's run computed, handed to :func:`write_outputs` to render and write."""

    detections: gpd.GeoDataFrame
    """Detection table (EPSG:4326), ours and external."""
    evidence: dict[str, Any] = field(default_factory=dict)
    """The imagery detector's evidence summary (``run.json``)."""
    attribution: list[str] = field(default_factory=list)
    """Attribution lines the sources require on every map."""
    flags: gpd.GeoDataFrame | None = None
    alerts: list[dict[str, Any]] = field(default_factory=list)
    """The alerts this run's flag states created (already queued in the state database)."""
    sites: gpd.GeoDataFrame | None = None
    licences: pd.DataFrame | None = None
    impact: ImpactTables | None = None
    registry_lines: list[str] = field(default_factory=list)
    """What the registry mapping merged or rejected (``sites_report.txt``)."""
    chips: dict[str, list[tuple[str, str, str]]] = field(default_factory=dict)
    """Before/after image chips per flag id."""
    images: list[SceneImage] = field(default_factory=list)
    """True-colour images of the places with imagery (the map's before / after layers)."""

    @property
    def flag_table(self) -> gpd.GeoDataFrame:
        """The flags (raises when comply has not run: a bug, not a user error)."""
        if self.flags is None:
            raise RuntimeError("write_outputs needs the flags: run comply first")
        return self.flags


def write_outputs(
    stage: Path,
    made: AoiProducts,
    *,
    target: Path,
    result: AoiResult,
    aoi: Aoi,
    settings: Settings,
    period: Period | None,
    out_dir: Path,
    inputs: dict[str, str],
    started: datetime,
    t_report: float,
) -> AoiResult:
    """Write every output of one AOI into ``stage`` (the outbox beside the versions of
    ``target``, where alerts accumulate across runs) and return the result with its counts
    and output paths."""
    outputs = _write_tables(stage, made, aoi=aoi)
    outputs["map.html"] = write_map(
        stage / "map.html",
        aoi=aoi.to_frame(),
        detections=made.detections,
        flags=made.flag_table,
        sites=made.sites,
        title=aoi.name,
        attribution="; ".join(a for a in made.attribution if a),
        lang=settings.lang,
        run_id=result.run_id,
        scorecards=scorecard_links(made.sites),
        chips=made.chips,
        images=made.images,
        names=aoi.names,
    )
    outputs.update(
        write_extras(
            stage,
            aoi=aoi,
            flags=made.flag_table,
            detections=made.detections,
            sites=made.sites,
            settings=settings,
            out_dir=out_dir,
            impact=made.impact,
            licences=made.licences,
        )
    )
    # every alert the state database holds for the AOI: this run's, and any a crashed run
    # committed but never wrote out (the database is the outbox's source of truth)
    state_path = replace(settings, out_dir=out_dir).state_path
    write_outbox(queued_alerts(state_path, aoi_id=aoi.aoi_id), outbox_dir(target.parent, target.name))
    result.timings_s["report"] = round(time.perf_counter() - t_report, 3)
    _count(result, made, aoi=aoi, alerts=len(made.alerts))
    result.outputs = {k: str(v) for k, v in outputs.items()}
    summary = _summary(result, made, aoi=aoi, period=period, inputs=inputs, started=started, stage=stage)
    # the audit ledger's head after this run, as anchored beside the state file: a later
    # rewrite of the ledger no longer matches what the published run.json says
    summary["ledger_head"] = _ledger_head(state_path)
    write_text(stage / "run.json", json.dumps(summary, indent=2, ensure_ascii=False, default=str) + "\n")
    result.outputs["run.json"] = str(stage / "run.json")
    return result


def _write_tables(stage: Path, made: AoiProducts, *, aoi: Aoi) -> dict[str, Path]:
    flags, detections = made.flag_table, made.detections
    outputs = {
        "flags.geojson": write_geojson(flags, stage / "flags.geojson"),
        "flags.parquet": write_geoparquet(flags, stage / "flags.parquet"),
        "flags.csv": write_csv(flags, stage / "flags.csv"),
        "detections.parquet": write_geoparquet(detections, stage / "detections.parquet"),
        "detections.geojson": write_geojson(detections, stage / "detections.geojson"),
        "detections.csv": write_csv(detections, stage / "detections.csv"),
        "aoi.geojson": write_geojson(aoi.to_frame(), stage / "aoi.geojson"),
    }
    if made.sites is not None:
        outputs["sites.parquet"] = write_geoparquet(made.sites, stage / "sites.parquet")
        outputs["sites_report.txt"] = write_text(
            stage / "sites_report.txt", "\n".join(made.registry_lines) + "\n"
        )
    return outputs


def _count(result: AoiResult, made: AoiProducts, *, aoi: Aoi, alerts: int) -> None:
    """The run's counts, each computed once here and read by console, ledger and run.json."""
    flags, detections = made.flag_table, made.detections
    mining = detections[detections["kind"] == KIND_MINING]
    result.detections = len(detections)
    result.detections_ha = round(float(mining["area_ha"].sum()), 2)
    result.flags_by_status = {str(k): int(v) for k, v in flags["status"].value_counts().sort_index().items()}
    result.flags_by_rule = {str(k): int(v) for k, v in flags["rule_id"].value_counts().sort_index().items()}
    result.flags_by_severity = {
        str(k): int(v) for k, v in flags["severity"].value_counts().sort_index().items()
    }
    # one definition of the flagged area (each hectare once), shared with the CSV, map and index
    result.flagged_ha = round(run_figures(flags, detections, crs=aoi.equal_area_crs).flagged_ha, 2)
    result.flag_count = flag_count(flags)
    result.alerts_queued = alerts


def _summary(
    result: AoiResult,
    made: AoiProducts,
    *,
    aoi: Aoi,
    period: Period | None,
    inputs: dict[str, str],
    started: datetime,
    stage: Path,
) -> dict[str, Any]:
    """``run.json``: what ran, on which inputs, with which code, and what it found."""
    return {
        "run_id": result.run_id,
        "aoi_id": aoi.aoi_id,
        "aoi_name": aoi.name,
        "aoi_names": dict(aoi.names),
        "period": str(period) if period else "all",
        "status": result.status,
        "started": started.isoformat(timespec="seconds"),
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "code_version": __version__,
        "rulebook_version": RULEBOOK_VERSION,
        "inputs": inputs,
        "counts": {
            "detections": result.detections,
            "mining_detections_ha": result.detections_ha,
            "flags_by_rule": result.flags_by_rule,
            "flags_by_severity": result.flags_by_severity,
            "flags_by_status": result.flags_by_status,
            "flagged_ha": result.flagged_ha,
            "alerts": result.alerts_queued,
            "sites": None if made.sites is None else len(made.sites),
        },
        "evidence": {k: v for k, v in made.evidence.items() if k != "rules_not_evaluated"},
        # rules the AOI's inputs cannot support (e.g. turbidity_downstream without river lines), and why
        "rules_not_evaluated": made.evidence.get("rules_not_evaluated", {}),
        "attribution": "; ".join(a for a in made.attribution if a),
        "registry_report": made.registry_lines,
        "timings_s": result.timings_s,
        "outputs": {
            **{k: str(Path(v).relative_to(stage)) for k, v in result.outputs.items()},
            "alerts/outbox": "alerts/outbox",
        },
        "confidence_levels": [PROBABLE, CONFIRMED],
        # what the index page and the basin-wide tables say of this AOI (pipeline.report.basin)
        "index": index_entry(
            aoi,
            impact=made.impact.summary if made.impact is not None else None,
            flags=result.flag_count,  # the problems, as the map legend counts them
            flags_by_severity=result.flags_by_severity,
            flagged_ha=result.flagged_ha,
            scorecards=made.sites is not None and len(made.sites) > 0,
        ),
    }


def _ledger_head(state_path: Path) -> dict[str, Any] | None:
    """The ledger head anchored last beside ``state_path`` (None: no ledger yet)."""
    line = last_head(state_path)
    if line is None:
        return None
    return {"seq": line.seq, "row_hash": line.row_hash, "at": line.at, "file": heads_path(state_path).name}
