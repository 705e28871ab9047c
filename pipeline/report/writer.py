"""The report outputs run.py adds after the exports, map and outbox: scorecards, the AOI
index page, impact statistics and delivery to subscriptions. Renders only."""

from __future__ import annotations

import logging
from pathlib import Path

import geopandas as gpd
import pandas as pd

from pipeline.comply.figures import figure_table
from pipeline.comply.impact import ImpactTables
from pipeline.core.atomic import write_text
from pipeline.core.config import Settings
from pipeline.core.errors import PipelineError
from pipeline.core.records import Aoi
from pipeline.report.csvsafe import csv_text
from pipeline.report.delivery import DeliveryReport, deliver
from pipeline.report.exports import write_impact_csv
from pipeline.report.scorecard import write_scorecards

log = logging.getLogger(__name__)


def map_link(aoi_id: str, *, base_url: str) -> str:
    """Link to an AOI's map for alerts: absolute under ``base_url`` when set."""
    rel = f"{aoi_id}/map.html"
    return f"{base_url.rstrip('/')}/{rel}" if base_url else rel


def write_extras(
    target: Path,
    *,
    aoi: Aoi,
    flags: gpd.GeoDataFrame,
    detections: gpd.GeoDataFrame,
    sites: gpd.GeoDataFrame | None,
    settings: Settings,
    out_dir: Path,
    impact: ImpactTables | None = None,
    licences: pd.DataFrame | None = None,
) -> dict[str, Path]:
    """Write scorecards (when there are sites), the impact tables comply computed
    (``impact.csv`` per zone and period with each hectare counted once, ``impact_by_phase.csv``),
    ``licences`` (:func:`pipeline.state.licence_history.record_licences`) into the scorecards,
    ``flag_summary.csv`` (comply's :func:`~pipeline.comply.figures.figure_table`: counts and
    hectares by rule, severity and status, each hectare once, and the run's total). The
    output folder's index is written once per night (:func:`pipeline.report.index.write_index`)."""
    figures = figure_table(flags, detections, crs=aoi.equal_area_crs)
    outputs: dict[str, Path] = {
        "flag_summary.csv": write_impact_csv(flags, detections, target / "flag_summary.csv", figures=figures)
    }
    if impact is not None:
        outputs["impact.csv"] = write_text(target / "impact.csv", csv_text(impact.summary))
        outputs["impact_by_phase.csv"] = write_text(target / "impact_by_phase.csv", csv_text(impact.by_phase))
    if sites is not None and len(sites):
        written = write_scorecards(
            target / "scorecards",
            sites=sites,
            flags=flags,
            detections=detections,
            aoi_name=aoi.name,
            aoi_names=aoi.names,
            lang=settings.lang,
            licences=licences,
        )
        outputs["scorecards/index.html"] = written["index.html"]
        outputs["scorecards/sites.csv"] = written["sites.csv"]
        if "licence_history.csv" in written:
            outputs["scorecards/licence_history.csv"] = written["licence_history.csv"]
    return outputs


def deliver_after_run(outbox: Path, *, settings: Settings) -> DeliveryReport | None:
    """Deliver the outbox when subscriptions exist and ``deliver_on_run`` is set. A channel
    that is down never fails the run: what is not delivered stays pending for the next pass."""
    if not settings.alerts.subscriptions or not settings.alerts.deliver_on_run:
        return None
    try:
        return deliver(outbox, settings=settings)
    except PipelineError as exc:
        log.error("alert delivery skipped: %s", exc)
        return None
