"""Where an AOI has imagery: its scenes grouped into places (scenes whose footprints
overlap), so that a territory of 30,000 km^2 with a few small patches is read patch by
patch, never as one empty grid over the whole territory."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import shapely
from pyproj import Transformer
from shapely.geometry import box
from shapely.geometry.base import BaseGeometry

from pipeline.core.records import WGS84
from pipeline.ingest.scene_headers import header_key, read_header
from pipeline.ingest.scene_spec import SceneSpec


@dataclass(frozen=True, kw_only=True)
class Place:
    """Scenes of one footprint and the ground they cover."""

    scenes: tuple[SceneSpec, ...]
    footprint: BaseGeometry
    """Union of the scenes' extents (EPSG:4326)."""


def scene_footprint(spec: SceneSpec) -> BaseGeometry:
    """Extent of a scene's first file, as a lon/lat polygon (EPSG:4326)."""
    path = spec.path if spec.path is not None else sorted(spec.band_paths.values())[0]
    header = read_header(path, names=header_key(spec, path=path)[1])
    left, bottom, right, top = header.bounds
    if header.crs is None:
        return box(left, bottom, right, top)
    to_wgs84 = Transformer.from_crs(header.crs, WGS84, always_xy=True)
    # densified so a UTM square stays the right shape in lon/lat
    ring = shapely.segmentize(box(left, bottom, right, top), max(right - left, top - bottom) / 8)
    return _reproject(ring, to_wgs84)


def _reproject(geom: BaseGeometry, transformer: Transformer) -> BaseGeometry:
    coords = shapely.get_coordinates(geom)
    x, y = transformer.transform(coords[:, 0], coords[:, 1])
    return shapely.set_coordinates(geom, np.column_stack([x, y]))


def group_places(scenes: Sequence[SceneSpec], *, within: BaseGeometry) -> list[Place]:
    """Scenes grouped by overlapping footprints (connected components), each group's
    footprint clipped to ``within`` (the AOI, EPSG:4326); groups outside it are dropped.
    Order follows the first scene of each group."""
    prints = [scene_footprint(s) for s in scenes]
    parent = list(range(len(scenes)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    tree = shapely.STRtree(prints)
    for i, geom in enumerate(prints):
        for j in tree.query(geom, predicate="intersects"):
            a, b = root(i), root(int(j))
            if a != b:
                parent[max(a, b)] = min(a, b)
    groups: dict[int, list[int]] = {}
    for i in range(len(scenes)):
        groups.setdefault(root(i), []).append(i)
    places = []
    for members in groups.values():
        ground = shapely.union_all([prints[i] for i in members]).intersection(within)
        if not ground.is_empty and ground.area > 0:
            places.append(Place(scenes=tuple(scenes[i] for i in members), footprint=ground))
    return places
