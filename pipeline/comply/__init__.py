"""Comply: pure functions from detections, sites and AOIs to compliance flags."""

from __future__ import annotations

import logging

import geopandas as gpd
import pandas as pd

from pipeline.comply.findings import FINDING_COLUMNS
from pipeline.comply.flags import build_flags
from pipeline.comply.protected_area_rules import absorb_title_findings, mining_in_protected_area
from pipeline.comply.river_rules import turbidity_downstream
from pipeline.comply.title_rules import compliant_sites, registry_rules
from pipeline.comply.titles import as_of
from pipeline.core.config import ComplyParams
from pipeline.core.records import KIND_MINING, WGS84, Aoi

log = logging.getLogger(__name__)


def evaluate(
    detections: gpd.GeoDataFrame,
    *,
    aoi: Aoi,
    sites: gpd.GeoDataFrame | None,
    river_stats: pd.DataFrame | None = None,
    params: ComplyParams,
    run_id: str,
) -> gpd.GeoDataFrame:
    """Apply every rule for one AOI and return its flags (EPSG:4326).

    Registry rules run only when a registry is given: without one, "unregistered" cannot be
    told from "registry not loaded".
    """
    crs = aoi.equal_area_crs
    aoi_area = gpd.GeoSeries([aoi.geometry], crs=WGS84).to_crs(crs).iloc[0]
    mining = detections[detections["kind"] == KIND_MINING].to_crs(crs)
    mining = mining[mining.intersects(aoi_area)]
    protected = mining_in_protected_area(mining, aoi=aoi, crs=crs, params=params)
    findings = [protected]
    site_m = None
    if sites is not None:
        site_m = sites.to_crs(crs)
        # a piece of mining that breaks a title rule inside a protected area is said once
        protected, titles = absorb_title_findings(
            protected, registry_rules(mining, site_m, params=params), detections=mining, aoi=aoi
        )
        findings = [protected, *titles]
    found = gpd.GeoDataFrame(
        pd.concat([f for f in findings if len(f)], ignore_index=True)
        if any(len(f) for f in findings)
        else gpd.GeoDataFrame(columns=[*FINDING_COLUMNS, "geometry"], geometry="geometry"),
        geometry="geometry",
        crs=crs,
    )
    found = found[found["area_ha"] >= params.min_flag_area_ha] if len(found) else found
    if river_stats is not None and len(river_stats) and site_m is not None:
        hot = turbidity_downstream(river_stats, params=params)
        if len(hot):
            where = site_m.set_index("site_id").loc[hot["site_id"], "geometry"].representative_point()
            turb = gpd.GeoDataFrame(
                hot.assign(rule_id="turbidity_downstream", group_key=hot["site_id"], area_ha=0.0),
                geometry=where.to_numpy(),
                crs=crs,
            )
            found = gpd.GeoDataFrame(
                pd.concat([found, turb], ignore_index=True), geometry="geometry", crs=crs
            )
    if site_m is not None:
        flagged = set(found["site_id"].dropna()) if len(found) else set()
        ok = compliant_sites(site_m, flagged_site_ids=flagged, aoi_area=aoi_area, on=as_of(mining))
        if len(ok):
            comp = gpd.GeoDataFrame(
                {
                    "rule_id": "compliant",
                    "site_id": ok["site_id"].to_numpy(),
                    "group_key": ok["site_id"].to_numpy(),
                    "detection_ids": "",
                    "area_ha": 0.0,
                },
                geometry=ok.geometry.to_numpy(),
                crs=crs,
            )
            found = gpd.GeoDataFrame(
                pd.concat([found, comp], ignore_index=True), geometry="geometry", crs=crs
            )
    context = {
        "aoi_name": aoi.name,
        "designation": aoi.designation,
        "near_site_m": params.near_site_m,
    }
    flags = build_flags(found, aoi_id=aoi.aoi_id, run_id=run_id, sites=sites, context=context, params=params)
    log.info("AOI %s: %d flags", aoi.aoi_id, len(flags))
    return flags
