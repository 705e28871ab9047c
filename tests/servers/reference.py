"""Reference values for the emulator tests, read independently of the emulators.

patches.csv with the csv module and the patch GeoTIFFs with rasterio, so a wrong emulator can
never agree with itself: these helpers share nothing with :mod:`.scenes` or the servers but the data folder.
"""

from __future__ import annotations

import csv

import numpy as np
import rasterio

from .scenes import sample_data_dir

PATCHES = sample_data_dir() / "imagery" / "gold_mining_patches"
SITES = [f"gm{i:04d}" for i in range(1, 13)]
AREA = (-78.80, -4.70, -78.70, -4.30)  # holds gm0002..gm0008; every centre >= 700 m from an edge
WINDOW = "2019-01-01T00:00:00Z/2021-12-31T23:59:59Z"


def rows() -> dict[str, dict[str, str]]:
    with (PATCHES / "patches.csv").open(newline="") as fh:
        return {r["sample_id"]: r for r in csv.DictReader(fh)}


def patch(sample_id: str, key: str) -> np.ndarray:
    with rasterio.open(PATCHES / key / f"{sample_id}.tif") as src:
        return src.read()


def expected_ids(max_cloud: float) -> set[str]:
    """Items in AREA, dated in WINDOW, with < max_cloud % of pixels at B02 > 0.15: computed here."""
    out = set()
    for sid, row in rows().items():
        lon, lat = float(row["lon"]), float(row["lat"])
        if sid not in SITES or not (AREA[0] < lon < AREA[2] and AREA[1] < lat < AREA[3]):
            continue
        for key in ("t0", "t1"):
            b02, valid = patch(sid, key)[0], (patch(sid, key) != 0).any(axis=0)
            end = row[f"{key}_end"]
            if "2019-01-01" <= end <= "2021-12-31" and 100 * (b02[valid] > 1500).mean() < max_cloud:
                out.add(f"S2_{sid}_{end.replace('-', '')}")
    return out


def nearest(row: dict[str, str], key: str, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """``("band", "y", "x")`` of the patch pixel under each (x, y) centre, 0 outside: an
    independent nearest-neighbour lookup to check the emulator's reprojection against."""
    cols = np.floor((xs - float(row["left"])) / 10).astype(int)
    lines = np.floor((float(row["top"]) - ys) / 10).astype(int)
    inside = (cols[None, :] >= 0) & (cols[None, :] < 48) & (lines[:, None] >= 0) & (lines[:, None] < 48)
    pixels = patch(row["sample_id"], key)
    return np.where(inside, pixels[:, lines.clip(0, 47)[:, None], cols.clip(0, 47)[None, :]], 0)
