"""A registered site as the map and its scorecard both show it: file-safe slug, licence facts,
and the state its flags and licence give it."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

import geopandas as gpd

from pipeline.comply.flags import SEVERITY_ORDER
from pipeline.report.i18n import Catalogue

INVALID_LICENCE = {"expired", "suspended", "none", "revoked"}


def site_slug(site_id: str) -> str:
    """File-name-safe, collision-free name for a site id (``858075/2001`` ->
    ``858075-2001-<6 hex>``)."""
    base = re.sub(r"[^A-Za-z0-9]+", "-", str(site_id)).strip("-")[:60] or "site"
    return f"{base}-{hashlib.sha256(str(site_id).encode()).hexdigest()[:6]}"


def site_facts(site: Mapping[str, Any], *, cat: Catalogue) -> dict[str, Any]:
    """Label -> value of a registered site's identity and licence, as the map's site popup
    and the scorecard's licence table both show them (registry terms translated)."""
    sid = site["site_id"]
    return {
        cat.t("field.title_id"): sid,
        cat.t("field.site"): site.get("name") if site.get("name") != sid else None,
        cat.t("field.operator"): site.get("operator"),
        cat.t("field.licence"): cat.term("licence_kind", site.get("licence_kind")),
        cat.t("field.licence_status"): cat.term("licence_status", site.get("licence_status")),
        cat.t("field.phase"): cat.term("phase", site.get("phase")),
        cat.t("field.mineral"): site.get("mineral"),
        cat.t("field.registry"): site.get("registry"),
    }


def site_states(sites: gpd.GeoDataFrame, flags: gpd.GeoDataFrame) -> list[str]:
    """Per site: ``flagged_<worst severity>``, else ``licence_invalid`` when the title does
    not allow extraction or the licence is expired/suspended, else ``compliant``."""
    real = flags[flags["rule_id"] != "compliant"]
    worst: dict[str, str] = {}
    for sid, sev in zip(real["site_id"], real["severity"], strict=True):
        if isinstance(sid, str) and SEVERITY_ORDER.get(sev, 0) > SEVERITY_ORDER.get(worst.get(sid, ""), 0):
            worst[sid] = sev
    allows = sites["allows_extraction"] if "allows_extraction" in sites else [True] * len(sites)
    out = []
    for sid, ok, status in zip(sites["site_id"], allows, sites["licence_status"], strict=True):
        if sid in worst:
            out.append(f"flagged_{worst[sid]}")
        elif not ok or str(status).lower() in INVALID_LICENCE:
            out.append("licence_invalid")
        else:
            out.append("compliant")
    return out


def scorecard_links(sites: gpd.GeoDataFrame | None, *, prefix: str = "scorecards/") -> dict[str, str]:
    """site_id -> relative link of its scorecard page (from the AOI folder)."""
    if sites is None:
        return {}
    return {sid: f"{prefix}{site_slug(sid)}.html" for sid in sites["site_id"]}
