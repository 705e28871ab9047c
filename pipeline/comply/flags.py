"""Findings -> flags with stable ids.

``flag_id`` is derived from the rule, the AOI and the site id (or, for mining with no site,
the grid cell of the footprint), so the same problem keeps its id night after night and an
NGO is told about it once.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import geopandas as gpd
import pandas as pd

from pipeline.comply.rulebook import RULEBOOK_VERSION, RULES, Rule
from pipeline.core.config import ComplyParams
from pipeline.core.records import WGS84
from pipeline.core.text import fill_template, json_scalar, template_fields

FLAG_COLUMNS = [
    "flag_id",
    "rule_id",
    "rule_version",
    "rulebook_version",
    "severity",
    "status",
    "aoi_id",
    "site_id",
    "site_name",
    "licence_status",
    "licence_kind",
    "detection_ids",
    "area_ha",
    "mined_area_ha",
    "first_seen",
    "last_seen",
    "periods",
    "reason",
    "reason_args",
    "clause",
    "thresholds",
    "lon",
    "lat",
    "run_id",
    "also_rule",
]
SEVERITY_ORDER = {"info": 0, "low": 1, "medium": 2, "high": 3}


def flag_id(rule_id: str, aoi_id: str, key: str) -> str:
    """Stable id: first 16 hex digits of SHA-256 of rule, AOI and site id / cell key."""
    return hashlib.sha256(f"{rule_id}|{aoi_id}|{key}".encode()).hexdigest()[:16]


def reason_args(template: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """The values a reason template uses, JSON-safe: what the report needs to say the same
    sentence in another language."""
    return {name: json_scalar(values.get(name)) for name in template_fields(template)}


def build_flags(
    findings: gpd.GeoDataFrame,
    *,
    aoi_id: str,
    run_id: str,
    sites: gpd.GeoDataFrame | None,
    context: Mapping[str, Any],
    params: ComplyParams | None = None,
) -> gpd.GeoDataFrame:
    """One flag per finding, in EPSG:4326, with status ``new`` (``comply.lifecycle`` sets it).

    Parameters
    ----------
    findings
        Rows with ``FINDING_COLUMNS`` of findings.py, in any CRS.
    context
        Values for the reason templates that are not in the finding (``aoi_name``,
        ``designation``, ``near_site_m``...).
    params
        Thresholds written into each flag (``thresholds`` column), so a flag says what it
        was measured against.
    """
    if findings.empty:
        return gpd.GeoDataFrame(columns=[*FLAG_COLUMNS, "geometry"], geometry="geometry", crs=WGS84)
    f = findings.to_crs(WGS84).reset_index(drop=True)
    site_info = (
        sites.set_index("site_id")[["name", "licence_status", "licence_kind", "phase"]]
        if sites is not None and len(sites)
        else pd.DataFrame(columns=["name", "licence_status", "licence_kind", "phase"])
    )
    rows = []
    for rec, point in zip(f.to_dict("records"), f.geometry.representative_point(), strict=True):
        rule, also = RULES[rec["rule_id"]], _also(rec)
        site_id = rec.get("site_id")
        site_id = site_id if isinstance(site_id, str) else None
        known = site_id is not None and site_id in site_info.index
        info = {str(k): v for k, v in site_info.loc[site_id].items()} if known else {}
        values = {**context, **{str(k): v for k, v in rec.items()}, **info}
        # a title finding inside a protected area says both sentences (``also_rule``)
        args = reason_args(rule.reason + (" " + also.reason if also else ""), values)
        severity = rec.get("severity") if isinstance(rec.get("severity"), str) else rule.severity
        rows.append(
            {
                "flag_id": flag_id(rule.rule_id, aoi_id, site_id or str(rec.get("group_key"))),
                "rule_id": rule.rule_id,
                "rule_version": rule.version,
                "rulebook_version": RULEBOOK_VERSION,
                "severity": severity,
                "status": "new",
                "aoi_id": aoi_id,
                "site_id": site_id,
                "site_name": info.get("name"),
                "licence_status": info.get("licence_status"),
                "licence_kind": info.get("licence_kind"),
                "detection_ids": rec.get("detection_ids", ""),
                "area_ha": round(float(rec.get("area_ha") or 0.0), 4),
                "mined_area_ha": rec.get("mined_area_ha"),
                "first_seen": rec.get("first_seen"),
                "last_seen": rec.get("last_seen"),
                "periods": rec.get("periods", ""),
                "reason": fill_template(rule.reason + (" " + also.reason if also else ""), args),
                "reason_args": json.dumps(args, sort_keys=True, ensure_ascii=False, allow_nan=False),
                "clause": rule.clause + (f" {also.clause}" if also else ""),
                "thresholds": _thresholds(rule, also, params or ComplyParams()),
                "lon": round(point.x, 6),
                "lat": round(point.y, 6),
                "run_id": run_id,
                "also_rule": also.rule_id if also else None,
                "geometry": rec["geometry"],
            }
        )
    out = gpd.GeoDataFrame(rows, geometry="geometry", crs=WGS84)
    out["_sev"] = out["severity"].map(SEVERITY_ORDER)
    out = out.sort_values(["_sev", "area_ha", "flag_id"], ascending=[False, False, True])
    return out.drop(columns="_sev").reset_index(drop=True)


def _also(rec: Mapping[str, Any]) -> Rule | None:
    """The second rule a finding also breaks (a title rule inside a protected area)."""
    name = rec.get("also_rule")
    return RULES.get(name) if isinstance(name, str) else None


def _thresholds(rule: Rule, also: Rule | None, params: ComplyParams) -> str:
    """``name=value`` of the thresholds the flag's rule(s) read, each once."""
    parts = [t for r in (rule, also) if r for t in r.threshold_text(params).split(", ") if t]
    return ", ".join(dict.fromkeys(parts))
