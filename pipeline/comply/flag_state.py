"""The records of the flag lifecycle: statuses, a flag's state, a status change, a suppression.

Kept apart from the lifecycle's logic (``pipeline.comply.lifecycle``, which re-exports them)
because they are what the state store (``pipeline.state``) persists: a record should not
change when the stepping logic does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from shapely.geometry.base import BaseGeometry

NEW, ONGOING, WORSENING, RESOLVED, SUPPRESSED = "new", "ongoing", "worsening", "resolved", "suppressed"
STATUSES = (NEW, ONGOING, WORSENING, RESOLVED, SUPPRESSED)


@dataclass(frozen=True)
class Suppression:
    """An analyst's decision that a flag is a false positive."""

    flag_id: str
    reason: str
    analyst: str
    area_ha: float
    """Cumulative footprint (ha) when suppressed: the baseline for a material change."""
    created_at: str


@dataclass(frozen=True)
class FlagState:
    """A flag's state after one period."""

    flag_id: str
    aoi_id: str
    rule_id: str
    site_id: str | None
    status: str
    period: str
    """Label of the period this state is the result of."""
    opened_period: str
    """Period in which the flag was last opened (``new``)."""
    status_since: str
    last_seen_period: str
    missed: int
    """Periods in a row without the flag being seen."""
    area_ha: float
    """Cumulative footprint since opening, ha (equal-area CRS)."""
    footprint: BaseGeometry | None
    """Cumulative footprint (EPSG:4326) for mining rules; the latest geometry for the others."""
    history: tuple[tuple[str, str, float], ...] = ()
    """(period, status, cumulative ha) for every period the flag existed in."""
    attrs: dict[str, Any] = field(default_factory=dict)
    """The flag's last row (JSON-safe scalars), to report it in periods it is not seen."""

    def to_json(self) -> str:
        """Everything but the footprint, as canonical JSON."""
        doc = {k: v for k, v in self.__dict__.items() if k != "footprint"}
        doc["history"] = [list(h) for h in self.history]
        return json.dumps(doc, sort_keys=True, default=str)

    @classmethod
    def from_json(cls, text: str, *, footprint: BaseGeometry | None) -> FlagState:
        """Inverse of :meth:`to_json`."""
        doc = json.loads(text)
        doc["history"] = tuple(tuple(h) for h in doc["history"])
        return cls(**doc, footprint=footprint)


@dataclass(frozen=True)
class Change:
    """One status change, as written to the audit ledger."""

    flag_id: str
    rule_id: str
    site_id: str | None
    old_status: str | None
    new_status: str
    area_ha: float
    detail: str
