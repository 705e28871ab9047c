"""Alerts to NGOs.

The outbox (one JSON file per alert, ``<flag_id>-<status>-<last_seen>.json``) is always
written first and is the source of truth; :func:`deliver` then hands each outbox alert to
every matching subscription's channels (webhook, e-mail) and records each delivery in the
SQLite state file (table ``alert_delivery``), so an alert is sent once per subscriber and
channel however often the night is rerun, and an endpoint that is down gets every alert
when it is back.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import geopandas as gpd

from pipeline.comply.flags import SEVERITY_ORDER
from pipeline.core.atomic import write_text
from pipeline.report.exports import plain
from pipeline.report.reasons import json_object

log = logging.getLogger(__name__)

ALERT_STATUSES = ("new", "worsening")


def alert_payloads(
    flags: gpd.GeoDataFrame,
    *,
    map_link: str,
    min_severity: str = "medium",
    aoi_name: str = "",
    aoi_country: str | None = None,
    aoi_collection: str | None = None,
) -> list[dict[str, Any]]:
    """One alert per flag that is new or worsening and at least ``min_severity``.

    The alert id is ``<flag_id>-<status>-<last_seen>``: the same flag in the same state is
    never announced twice.
    """
    floor = SEVERITY_ORDER[min_severity]
    out = []
    for rec in flags.to_dict("records"):
        if rec["status"] not in ALERT_STATUSES or SEVERITY_ORDER[rec["severity"]] < floor:
            continue
        last_seen = plain(rec.get("last_seen"))
        out.append(
            {
                "alert_id": f"{rec['flag_id']}-{rec['status']}-{last_seen}",
                "flag_id": rec["flag_id"],
                "status": rec["status"],
                "rule_id": rec["rule_id"],
                "severity": rec["severity"],
                "reason": rec["reason"],
                "reason_args": json_object(rec.get("reason_args")),
                "reason_note": json_object(rec.get("reason_note")),
                "aoi_id": rec["aoi_id"],
                "aoi_name": aoi_name or rec["aoi_id"],
                # subscriptions may name AOIs by country or by collection (issue 19)
                "aoi_country": aoi_country,
                "aoi_collection": aoi_collection,
                "site_id": plain(rec.get("site_id")),
                "site_name": plain(rec.get("site_name")),
                "licence_status": plain(rec.get("licence_status")),
                "licence_kind": plain(rec.get("licence_kind")),
                "periods": plain(rec.get("periods")),
                "run_id": plain(rec.get("run_id")),
                "area_ha": plain(rec["area_ha"]),
                "first_seen": plain(rec.get("first_seen")),
                "last_seen": last_seen,
                "lon": plain(rec["lon"]),
                "lat": plain(rec["lat"]),
                "clause": rec["clause"],
                "map_link": f"{map_link}#flag-{rec['flag_id']}",
                "rulebook_version": rec["rulebook_version"],
            }
        )
    return out


def write_outbox(payloads: list[dict[str, Any]], outbox: Path) -> list[Path]:
    """Write each alert as ``<alert_id>.json``; an existing file is left as it is, so a
    rerun of the same night queues nothing twice."""
    outbox.mkdir(parents=True, exist_ok=True)
    written = []
    for payload in payloads:
        target = outbox / f"{payload['alert_id']}.json"
        if target.exists():
            continue
        created = payload.get("created") or datetime.now(UTC).isoformat(timespec="seconds")
        doc = {**payload, "created": created}
        write_text(target, json.dumps(doc, ensure_ascii=False, indent=2, sort_keys=True) + "\n")
        written.append(target)
    log.info(
        "outbox %s: %d new alerts (%d already queued)",
        outbox,
        len(written),
        len(payloads) - len(written),
    )
    return written
