"""Site scorecards: the due-diligence page a gold buyer reads for one registered site.

Per site: licence facts from the registry, flags grouped by status with reason and the
OECD/CRAFT clause, hectares of linked detections inside / outside the title per period as a
small inline SVG chart, and links into the map (``../map.html#flag-<flag_id>``). Written as
HTML and CSV, plus an index page and ``sites.csv`` with one row per site.

The work is split by job: :mod:`~pipeline.report.sites` (slug, facts, state of a site),
:mod:`~pipeline.report.trend` (hectares per period and their chart),
:mod:`~pipeline.report.scorecard_page` (the HTML) and :mod:`~pipeline.report.scorecard_files`
(the files); this module writes the folder as a whole and keeps the names callers import.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

import geopandas as gpd
import pandas as pd

from pipeline.report.i18n import aoi_name_in
from pipeline.report.scorecard_files import SITE_CSV_COLUMNS, write_scorecard_files
from pipeline.report.scorecard_page import STATUS_ORDER, render_scorecard, render_site_index
from pipeline.report.sites import INVALID_LICENCE, scorecard_links, site_facts, site_slug, site_states
from pipeline.report.trend import INSIDE_RULES, OUTSIDE_RULES, trend, trend_svg

__all__ = [
    "INSIDE_RULES",
    "INVALID_LICENCE",
    "OUTSIDE_RULES",
    "SITE_CSV_COLUMNS",
    "STATUS_ORDER",
    "render_scorecard",
    "render_site_index",
    "scorecard_links",
    "site_facts",
    "site_slug",
    "site_states",
    "trend",
    "trend_svg",
    "write_scorecards",
]


def write_scorecards(
    target: Path,
    *,
    sites: gpd.GeoDataFrame,
    flags: gpd.GeoDataFrame,
    detections: gpd.GeoDataFrame,
    aoi_name: str,
    lang: str = "en",
    licences: pd.DataFrame | None = None,
    aoi_names: Mapping[str, str] | None = None,
) -> dict[str, Path]:
    """Write ``<slug>.html`` and ``<slug>.csv`` per site, ``index.html``, ``sites.csv`` and
    ``licence_history.csv`` (when ``licences`` are given) into the folder ``target``,
    replacing it as a whole: the files are written into a temp folder beside it, which then
    takes its place (a reader sees the old set or the new one, and a thousand small files need
    no fsync each). Returns name -> path of the summary files.

    ``aoi_names`` (``Aoi.names``) gives the AOI's name by language: the pages name it in
    ``lang`` when it has one, else as ``aoi_name``.
    """
    aoi_name = aoi_name_in(aoi_names, lang=lang, default=aoi_name)
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        write_scorecard_files(
            tmp,
            sites=sites,
            flags=flags,
            detections=detections,
            aoi_name=aoi_name,
            lang=lang,
            licences=licences,
        )
        tmp.chmod(0o755)
        old = target.with_name(f".{target.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        if target.exists():
            os.replace(target, old)
        os.replace(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    written = {"sites.csv": target / "sites.csv", "index.html": target / "index.html"}
    if licences is not None:
        written["licence_history.csv"] = target / "licence_history.csv"
    return written
