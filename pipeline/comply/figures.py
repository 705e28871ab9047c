"""The headline figures of a run, each defined once: how many flags, how many hectares they
cover, and how much of the sources' mined area lies under them.

Every output (console and ``run.json``, ``flag_summary.csv``, the index page, the map legend)
reads these, so one run never gives two totals:

* ``flag_count``: flags that are problems seen in this period
  (:func:`~pipeline.comply.lifecycle.reportable_flags`: not ``compliant``, not carried over
  unseen).
* ``flagged_ha``: the *union* of those flags' footprints in the AOI's equal-area CRS, so a
  hectare under two overlapping titles (one flag per title holder) counts once.
* ``mined_ha``: each detection's own mined-area estimate (AMW ``Mined area (ha)``) times the
  share of its footprint inside that union (see
  :func:`~pipeline.comply.findings.apportion_mined_area`); NaN when no source gives one.
"""

from __future__ import annotations

from dataclasses import dataclass

import geopandas as gpd
import pandas as pd
from pyproj import CRS

from pipeline.comply.findings import apportion_mined_area
from pipeline.comply.lifecycle import reportable_flags

FIGURE_COLUMNS = ["group_by", "group", "count", "area_ha", "mined_area_ha"]


@dataclass(frozen=True)
class RunFigures:
    """The totals of one AOI's run."""

    flag_count: int
    """Flags seen this period that are problems (not ``compliant``)."""
    flagged_ha: float
    """Hectares under those flags, each counted once (equal-area CRS)."""
    mined_ha: float
    """Sources' mined area apportioned to the flagged footprint (ha); NaN without estimates."""


def _figures(flags: gpd.GeoDataFrame, detections: gpd.GeoDataFrame, *, crs: CRS) -> RunFigures:
    if flags.empty:
        return RunFigures(0, 0.0, 0.0)
    union = flags.to_crs(crs).geometry.make_valid().union_all()
    ids = ",".join(sorted({d for s in flags["detection_ids"].fillna("") for d in str(s).split(",") if d}))
    one = gpd.GeoDataFrame({"detection_ids": [ids]}, geometry=[union], crs=crs)
    mined = (
        float(apportion_mined_area(one, detections.to_crs(crs))["mined_area_ha"].iloc[0])
        if len(detections) and "mined_area_ha" in detections
        else float("nan")
    )
    return RunFigures(len(flags), float(union.area / 1e4), mined)


def flag_count(flags: pd.DataFrame) -> int:
    """``RunFigures.flag_count`` alone (no geometry needed): what the map legend shows."""
    return len(reportable_flags(flags)) if len(flags) else 0


def run_figures(flags: gpd.GeoDataFrame, detections: gpd.GeoDataFrame, *, crs: CRS) -> RunFigures:
    """The run's totals (see module doc) from its flags and detections (any CRS), measured in
    ``crs``, the AOI's equal-area CRS."""
    return _figures(reportable_flags(flags) if len(flags) else flags, detections, crs=crs)


def figure_table(flags: gpd.GeoDataFrame, detections: gpd.GeoDataFrame, *, crs: CRS) -> pd.DataFrame:
    """The same figures per rule, severity and status (``FIGURE_COLUMNS``), then the run's
    total as ``group_by`` = ``total``: every area a union, so no row counts a hectare twice;
    the rows of one grouping may add up to more than the total where titles overlap."""
    real = reportable_flags(flags) if len(flags) else flags
    rows: list[dict[str, object]] = []
    for by in ("rule_id", "severity", "status"):
        for key, part in real.groupby(by, sort=True) if len(real) else []:
            fig = _figures(part, detections, crs=crs)
            rows.append(
                {"group_by": by, "group": key, "count": fig.flag_count, "area_ha": fig.flagged_ha}
                | {"mined_area_ha": fig.mined_ha}
            )
    total = _figures(real, detections, crs=crs)
    rows.append(
        {"group_by": "total", "group": "all", "count": total.flag_count, "area_ha": total.flagged_ha}
        | {"mined_area_ha": total.mined_ha}
    )
    return pd.DataFrame(rows, columns=FIGURE_COLUMNS)
