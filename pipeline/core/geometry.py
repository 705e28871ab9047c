"""Pure geometry helpers for lon/lat AOIs: antimeridian, UTM zone, ellipsoidal area."""

from __future__ import annotations

import itertools

import shapely
from pyproj import CRS, Geod
from pyproj.aoi import AreaOfInterest
from pyproj.database import query_utm_crs_info
from shapely import affinity
from shapely.geometry import MultiPolygon, box
from shapely.geometry.base import BaseGeometry


def ring_jumps_antimeridian(geom: BaseGeometry) -> bool:
    """True when a ring has an edge spanning more than 180° of longitude: the polygon was drawn
    across the antimeridian without being split (RFC 7946 3.1.9 asks for a split)."""
    for poly in getattr(geom, "geoms", [geom]):
        for ring in [poly.exterior, *poly.interiors]:
            xs = [c[0] for c in ring.coords]
            if any(abs(b - a) > 180.0 for a, b in itertools.pairwise(xs)):
                return True
    return False


def _shift_east(geom: BaseGeometry) -> BaseGeometry:
    """Longitudes below 0 moved by +360, so a geometry around 180° becomes contiguous."""
    return shapely.transform(geom, lambda xy: xy + ((xy[:, :1] < 0) * [360.0, 0.0]))


def split_antimeridian(geom: BaseGeometry) -> BaseGeometry:
    """Split a polygon drawn across the antimeridian (an edge jumping from ~+180 to ~-180)
    into the RFC 7946 form: a MultiPolygon with one part on each side, lon in -180..180."""
    shifted = _shift_east(geom)
    east = shifted.intersection(box(-180.0, -90.0, 180.0, 90.0))
    west = affinity.translate(shifted.intersection(box(180.0, -90.0, 540.0, 90.0)), xoff=-360.0)
    parts = [
        g for piece in (east, west) for g in getattr(piece, "geoms", [piece]) if g.geom_type == "Polygon"
    ]
    return MultiPolygon(parts) if len(parts) > 1 else parts[0]


def crosses_antimeridian(geom: BaseGeometry) -> bool:
    """True when the (Multi)Polygon sits across 180° longitude (split per RFC 7946), i.e. its
    parts are far narrower in 0..360 longitudes than in -180..180."""
    minx, _, maxx, _ = geom.bounds
    if maxx - minx <= 180.0:
        return False
    sminx, _, smaxx, _ = _shift_east(geom).bounds
    return smaxx - sminx < maxx - minx


def aoi_center(geom: BaseGeometry) -> tuple[float, float]:
    """(lon, lat) in degrees of the AOI's centroid, correct across the antimeridian
    (a plain centroid of a split AOI falls near lon 0, half a world away)."""
    work = _shift_east(geom) if crosses_antimeridian(geom) else geom
    c = work.centroid
    lon = ((c.x + 180.0) % 360.0) - 180.0
    return float(lon), float(c.y)


def utm_crs_for(geom: BaseGeometry) -> CRS:
    """UTM CRS (WGS 84) of the AOI's centre; AOIs spanning several zones or the antimeridian
    get the centre's zone (rasters of one AOI share one grid; distortion grows ~0.04 % per
    degree of longitude beyond the zone edge, and :func:`utm_zones` lets callers warn)."""
    lon, lat = aoi_center(geom)
    infos = query_utm_crs_info(datum_name="WGS 84", area_of_interest=AreaOfInterest(lon, lat, lon, lat))
    return CRS.from_epsg(int(infos[0].code))


def utm_zones(geom: BaseGeometry) -> list[int]:
    """UTM zone numbers (1..60) the AOI touches, west to east, antimeridian-aware."""
    work = _shift_east(geom) if crosses_antimeridian(geom) else geom
    minx, _, maxx, _ = work.bounds
    first = int((minx + 180.0) // 6.0)
    last = int((min(maxx, minx + 359.999) + 180.0) // 6.0)
    return [(z % 60) + 1 for z in range(first, last + 1)]


def geodesic_area_km2(geom: BaseGeometry) -> float:
    """Area on the WGS 84 ellipsoid (km^2); exact anywhere, antimeridian included."""
    area, _ = Geod(ellps="WGS84").geometry_area_perimeter(geom)
    return abs(float(area)) / 1e6
