"""Analyst review of a run: a site's scorecard, suppressions and the audit ledger.

Wrappers over :mod:`pipeline.comply.scorecard` and :class:`pipeline.state.audit.StateStore` for
notebooks (the CLI equivalents are ``asm-monitor flags`` and ``asm-monitor ledger``).
Re-exported by :mod:`pipeline.analyst.api` and ``pipeline``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd

from pipeline.comply.lifecycle import Suppression
from pipeline.comply.scorecard import Scorecard, site_scorecards
from pipeline.core.config import Settings, settings_or_default
from pipeline.core.errors import ConfigError, DataNotFoundError
from pipeline.core.records import Aoi
from pipeline.state.audit import LedgerProblem, StateStore

STATE_FILE = "asm-monitor.sqlite"


# ---- flags, scorecards, ledger -------------------------------------------------------------


def _state(out_dir: Path | str, state_db: Path | str | None) -> StateStore:
    path = Path(state_db) if state_db is not None else Path(out_dir) / STATE_FILE
    if not path.is_file():
        raise DataNotFoundError(f"No state file at {path}. Run an AOI into {out_dir} first (run_aoi).")
    return StateStore(path)


def site_scorecard(
    flags: gpd.GeoDataFrame,
    detections: gpd.GeoDataFrame,
    sites: gpd.GeoDataFrame,
    site_id: str,
    *,
    aoi: Aoi,
    settings: Settings | None = None,
    licence_history: pd.DataFrame | None = None,
) -> Scorecard:
    """Scorecard tables of one site (licence and its history, flags by status, hectares per
    period).

    Takes the tables of :func:`pipeline.open_run`; hectares inside the title and in the
    ``comply.near_site_m`` ring around it, measured in ``aoi.equal_area_crs``.
    ``licence_history`` is the run's ``scorecards/licence_history.csv`` (read with pandas);
    without it the history is the registry's current state.
    """
    one = sites[sites["site_id"] == site_id]
    if one.empty:
        raise ConfigError(f"No site {site_id!r} in this run. Pick one from run.sites['site_id'].")
    s = settings_or_default(settings)
    return site_scorecards(
        one,
        detections,
        crs=aoi.equal_area_crs,
        near_m=s.comply.near_site_m,
        flags=flags,
        licence_history=licence_history,
    )


def scorecard_page(run: Any, site_id: str) -> Path:
    """The HTML scorecard page the run wrote for ``site_id`` (``run`` from
    :func:`pipeline.open_run`)."""
    from pipeline.report.scorecard import site_slug

    page = Path(run.folder) / "scorecards" / f"{site_slug(site_id)}.html"
    if not page.is_file():
        raise DataNotFoundError(f"No scorecard {page}: the run had no registry or no site {site_id!r}.")
    return page


def suppress(
    out_dir: Path | str,
    flag_id: str,
    *,
    reason: str,
    analyst: str,
    state_db: Path | str | None = None,
) -> Suppression:
    """Mark a flag a false positive (same as ``asm-monitor flags suppress``); written to the
    audit ledger. It stays ``suppressed`` until its footprint grows past
    ``comply.worsening_growth_pct``."""
    with _state(out_dir, state_db) as store:
        return store.suppress(flag_id, reason=reason, analyst=analyst)


def ledger(out_dir: Path | str, *, state_db: Path | str | None = None) -> pd.DataFrame:
    """Every audit-ledger row, oldest first (``seq``, ``event``, ``old_status``,
    ``new_status``, ``detail``, ``prev_hash``, ``row_hash``...)."""
    with _state(out_dir, state_db) as store:
        return pd.DataFrame(store.ledger_rows())


@dataclass(frozen=True)
class LedgerCheck:
    """Result of :func:`verify_ledger`."""

    rows: int
    head: str
    """SHA-256 of the newest row: publish it to anchor the chain."""
    problems: list[LedgerProblem]

    @property
    def intact(self) -> bool:
        """True when no row was edited, deleted or reordered."""
        return not self.problems


def verify_ledger(out_dir: Path | str, *, state_db: Path | str | None = None) -> LedgerCheck:
    """Walk the ledger's hash chain (same as ``asm-monitor ledger verify``)."""
    with _state(out_dir, state_db) as store:
        rows, head, problems = store.verify_ledger()
    return LedgerCheck(rows=rows, head=head, problems=problems)
