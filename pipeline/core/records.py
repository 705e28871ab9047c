"""Domain records shared by every stage: frozen dataclasses with attribute docstrings."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
from pyproj import CRS
from shapely.geometry.base import BaseGeometry

from pipeline.core.geometry import aoi_center, geodesic_area_km2, utm_crs_for

WGS84 = CRS.from_epsg(4326)

#: Detection kinds (DESIGN.md data model).
KIND_MINING = "mining_deforestation"
KIND_TURBIDITY = "turbidity"

#: Detection confidence levels.
PROBABLE = "probable"
CONFIRMED = "confirmed"


#: Columns every Detection table has (DESIGN.md data model), whatever made it.
DETECTION_COLUMNS = (
    "detection_id",
    "kind",
    "aoi_id",
    "area_ha",
    "first_seen",
    "last_seen",
    "period",
    "confidence",
    "source",
    "mined_area_ha",
    "mean_ndvi",
    "mean_bsi",
    "mean_turbidity_fnu",
    "median_turbidity_fnu",
)


def empty_detections() -> gpd.GeoDataFrame:
    """A Detection table with no rows (EPSG:4326)."""
    return gpd.GeoDataFrame(columns=[*DETECTION_COLUMNS, "geometry"], geometry="geometry", crs=WGS84)


@dataclass(frozen=True, kw_only=True)
class Aoi:
    """An area of interest: a protected area, territory or mining district we watch."""

    aoi_id: str
    """Short id, safe as a path component (``[a-z0-9][a-z0-9_-]*``)."""
    name: str
    """Human name, e.g. ``Terra Indígena Munduruku``."""
    designation: str
    """national park, reserve, indigenous territory, mining district..."""
    country: str
    """Country name or ISO code."""
    geometry: BaseGeometry
    """(Multi)Polygon in EPSG:4326, lon/lat order."""
    protected: bool = False
    """True when the AOI is itself a protected area or territory (mining inside is flagged)."""
    wdpa_id: str | None = None
    """World Database on Protected Areas id, when there is one."""
    inputs: dict[str, Any] = field(default_factory=dict)
    """What to read for this AOI (scenes, external detections, registry), paths relative to
    the sample-data folder; see ``aoi/README.md``."""
    source_path: str | None = None
    """File the AOI was loaded from."""
    names: dict[str, str] = field(default_factory=dict)
    """The name in other languages (``{"pt": "Terra Indígena Munduruku", "en": ...}``);
    :meth:`name_in` picks one."""
    protection: str | None = None
    """Protection category of a protected AOI: one of :data:`PROTECTION_CATEGORIES`
    (``strict`` = full protection, e.g. Brazil's *proteção integral* (PI);
    ``sustainable_use`` = *uso sustentável* (US); ``indigenous`` = an indigenous territory)."""
    collection: str | None = None
    """Id of the AOI collection file the AOI came from (None: an AOI file of its own)."""

    def name_in(self, lang: str) -> str:
        """The AOI's name for readers of ``lang`` (its own name when none is given)."""
        return self.names.get(lang) or self.name

    @property
    def utm_crs(self) -> CRS:
        """UTM CRS of the AOI's centroid (metres), for rasters and distances."""
        return utm_crs_for(self.geometry)

    @property
    def equal_area_crs(self) -> CRS:
        """Lambert azimuthal equal-area CRS centred on the AOI: exact hectares anywhere
        (the centre is antimeridian-aware)."""
        lon, lat = aoi_center(self.geometry)
        return CRS.from_proj4(f"+proj=laea +lat_0={lat:.6f} +lon_0={lon:.6f} +datum=WGS84 +units=m +no_defs")

    @property
    def area_km2(self) -> float:
        """Area in km^2 on the WGS 84 ellipsoid."""
        return geodesic_area_km2(self.geometry)

    def to_frame(self) -> gpd.GeoDataFrame:
        """One-row GeoDataFrame (EPSG:4326) with the AOI columns of DESIGN.md."""
        return gpd.GeoDataFrame(
            {
                "aoi_id": [self.aoi_id],
                "name": [self.name],
                "designation": [self.designation],
                "country": [self.country],
                "wdpa_id": [self.wdpa_id],
                "protected": [self.protected],
                "protection": [self.protection],
            },
            geometry=[self.geometry],
            crs=WGS84,
        )


#: Protection categories an AOI can declare (``protection``), strictest first.
PROTECTION_CATEGORIES = ("strict", "indigenous", "sustainable_use")


@dataclass
class AoiResult:
    """What one AOI's run produced."""

    aoi_id: str
    status: str = "ok"
    """ok, no_data, failed, up_to_date (incremental: no new input) or skipped (this exact
    AOI run id already finished; ``--force`` recomputes)."""
    run_id: str = ""
    error: str | None = None
    outputs: dict[str, str] = field(default_factory=dict)
    detections: int = 0
    detections_ha: float = 0.0
    flags_by_rule: dict[str, int] = field(default_factory=dict)
    flags_by_severity: dict[str, int] = field(default_factory=dict)
    flags_by_status: dict[str, int] = field(default_factory=dict)
    flagged_ha: float = 0.0
    flag_count: int = 0
    """Flags that are problems seen this period (what the map legend and the index count:
    not ``compliant``, not carried over unseen)."""
    alerts_queued: int = 0
    timings_s: dict[str, float] = field(default_factory=dict)
    period: str = ""
    """Period processed (``all``, a label, or an incremental ``START/END``)."""
    reason: str = ""
    """Why the AOI was run, skipped or found up to date (one line)."""
    peak_rss_mib: float = 0.0
    """Peak resident memory of the run's process tree while this AOI ran (MiB)."""
    ledger_run_id: str = ""
    """Id of the invocation in the run ledger (``asm-monitor runs show``)."""
