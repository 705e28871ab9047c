"""Cubes of opened scenes: stacked along time, and the AOI's footprint on their grid."""

from __future__ import annotations

from collections.abc import Sequence

import rioxarray  # noqa: F401  (registers the .rio accessor used on the cubes)
import xarray as xr

from pipeline.core.records import Aoi


def aoi_footprint(aoi: Aoi, cube: xr.Dataset | xr.DataArray) -> xr.DataArray:
    """bool ``("y", "x")`` on the cube's grid: True for pixels whose centre is in the AOI
    (numpy; the grid is small next to the cube, and valid fractions should count only these)."""
    from rasterio.features import geometry_mask

    shapes = aoi.to_frame().to_crs(cube.rio.crs).geometry
    inside = geometry_mask(
        shapes, out_shape=(cube.sizes["y"], cube.sizes["x"]), transform=cube.rio.transform(), invert=True
    )
    return xr.DataArray(inside, dims=("y", "x"), coords={"y": cube["y"], "x": cube["x"]}, name="aoi")


def stack_scenes(parts: Sequence[xr.Dataset]) -> xr.Dataset:
    """Stack per-scene datasets along time, sorted; parts sharing a ``scene_id`` (tiles of
    one acquisition) are merged into one time step, the first non-NaN value winning."""
    by_id: dict[str, xr.Dataset] = {}
    for part in parts:
        sid = str(part["scene_id"].values[0])
        by_id[sid] = part if sid not in by_id else by_id[sid].fillna(part)
    merged = list(by_id.values())
    if len(merged) == 1:
        return merged[0]
    out = xr.concat(merged, dim="time", join="exact", combine_attrs="drop_conflicts").sortby("time")
    return out.rio.write_crs(merged[0].rio.crs)
