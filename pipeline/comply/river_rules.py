"""The rule that reads river statistics: turbidity downstream of a site."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.core.config import ComplyParams


def turbidity_downstream(river_stats: pd.DataFrame, *, params: ComplyParams) -> pd.DataFrame:
    """Sites whose downstream median FNU is >= ``turbidity_ratio`` x upstream and >=
    ``turbidity_floor_fnu``.

    Rule ``turbidity_downstream`` v1. Supports OECD DDG Annex II (environmental harm),
    CRAFT module 5 and Forest Smart Mining water management.

    Parameters
    ----------
    river_stats
        ``site_id``, ``upstream_fnu``, ``downstream_fnu`` (medians over a reach on each side
        of the site, FNU); may have ``first_seen``/``last_seen``. Upstream 0 FNU counts as an
        infinite ratio; NaN on either side never fires.

    Returns
    -------
    DataFrame
        The rows that fire, with ``ratio`` added.
    """
    if river_stats.empty:
        return river_stats.assign(ratio=pd.Series(dtype=float))
    up = river_stats["upstream_fnu"].astype(float).to_numpy()
    down = river_stats["downstream_fnu"].astype(float).to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(up > 0, down / up, np.where(np.isnan(up), np.nan, np.inf))
    fires = (ratio >= params.turbidity_ratio) & (down >= params.turbidity_floor_fnu)
    return river_stats.assign(ratio=ratio)[fires].reset_index(drop=True)
