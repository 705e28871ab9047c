"""Scene detection for whole tiles, chunk by chunk: what ``run.py`` computes for an AOI.

:func:`scene_pieces` reduces every chunk, inside its own task, to a packed uint8 code
raster (landcover code plus mining / confirmed / turbid / water bits) and the values of the
statistics rasters at the few pixels that vectorising needs. :func:`assemble_scene` puts the
computed pieces together and :func:`scene_detections_sparse` labels the whole uint8 mask
once and traces the polygons. The rows equal :func:`pipeline.detect.scene.scene_detections`
of the full float rasters bit for bit, at about 1 byte per pixel instead of ~40.

With one date, indices, classes, turbidity and the packing run as one fused kernel per chunk
(the same numpy kernels as :func:`~pipeline.detect.scene.scene_products`, without a dask
task per operation); a time series goes through ``scene_products`` (medians, change
detection, morphological cleanup) and is gathered from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import dask.array as da
import geopandas as gpd
import numpy as np
import xarray as xr
from affine import Affine
from pyproj import CRS

from pipeline.core.config import DetectParams
from pipeline.core.records import CONFIRMED, KIND_MINING, PROBABLE
from pipeline.detect.change import epoch_days
from pipeline.detect.classify import PixelClassifier, classify_block
from pipeline.detect.indices import bsi_kernel, nd_kernel
from pipeline.detect.landcover import BARE, WATER_CLEAR, WATER_TURBID, classify_kernel
from pipeline.detect.pieces import Assembled, assemble_pieces, gather_pieces, make_piece, vectorize_labelled
from pipeline.detect.scene import CANONICAL, combine_detections, detection_cube, scene_products
from pipeline.detect.turbidity import TurbidityCalibration, calibrated_block, dogliotti_kernel

#: Bits of the packed code raster (the low 3 bits hold the landcover code, 0..7).
MINING_BIT, CONFIRMED_BIT, TURBID_BIT, WATER_BIT = 8, 16, 32, 64
_POLYGONS = MINING_BIT | TURBID_BIT
_STATS = ("ndvi", "bsi", "turbidity_fnu", "probability", "ndvi_before", "ndvi_after", "turbidity_cal_fnu")
_WATER_STATS = ("turbidity_fnu", "turbidity_cal_fnu")
#: Masks labelled inside each chunk, reported at the gathered polygon pixels.
_LABEL = {MINING_BIT: _POLYGONS, TURBID_BIT: _POLYGONS}


def _pack(landcover: np.ndarray, mining: np.ndarray, confirmed: np.ndarray, turbid: np.ndarray) -> np.ndarray:
    lc = np.asarray(landcover, dtype=np.uint8)
    out = lc & np.uint8(7)
    for flag, bit in ((mining, MINING_BIT), (confirmed, CONFIRMED_BIT), (turbid, TURBID_BIT)):
        out |= np.asarray(flag, dtype=bool).view(np.uint8) * np.uint8(bit)
    out |= ((lc == WATER_CLEAR) | (lc == WATER_TURBID)).view(np.uint8) * np.uint8(WATER_BIT)
    return out


def _piece_bits(names: Any) -> dict[str, int]:
    """Gathered value name -> bits of the packed raster that select its pixels."""
    bits = {k: _POLYGONS for k in _STATS if k in names}
    bits |= {"codes": _POLYGONS, "first_seen": _POLYGONS, "last_seen": _POLYGONS}
    bits |= {f"water:{k}": WATER_BIT for k in _WATER_STATS if k in names}
    return bits


def _classify_scene_block(
    *arrays: np.ndarray,
    params: DetectParams,
    model: PixelClassifier | None,
    calibration: TurbidityCalibration | None,
    when: np.datetime64,
    block_info: dict[Any, Any] | None = None,
) -> np.ndarray:
    """One chunk of a one-date cube -> its :class:`~pipeline.detect.pieces.Piece`: the
    kernels of :func:`scene_products`, fused."""
    b = {name: np.asarray(a)[0] for name, a in zip(CANONICAL, arrays, strict=True)}
    v = nd_kernel(b["nir"], b["red"])
    w = nd_kernel(b["green"], b["swir1"])
    s = bsi_kernel(b["blue"], b["red"], b["nir"], b["swir1"])
    if model is not None:
        names = tuple(dict.fromkeys((*model.bands, "red", "nir")))
        lc, prob = classify_block(
            *[b[n] for n in names],
            model=model,
            names=names,
            turbid_fnu_min=params.turbid_fnu_min,
            has_mask=False,
        )
    else:
        # turbidity only where the rules read it (MNDWI says water); elementwise, so the
        # values equal a whole-chunk evaluation
        candidate = w > params.water_mndwi_min
        fnu_in = np.full(v.shape, np.nan, dtype=np.float32)
        fnu_in[candidate] = dogliotti_kernel(b["red"][candidate], b["nir"][candidate])
        lc = classify_kernel(
            v,
            w,
            s,
            fnu_in,
            params.ndvi_forest_min,
            params.bare_ndvi_max,
            params.bare_bsi_min,
            params.water_mndwi_min,
            params.turbid_fnu_min,
        )
        prob = np.broadcast_to(np.float32(np.nan), v.shape)
    packed = _pack(lc, lc == BARE, np.broadcast_to(False, lc.shape), lc == WATER_TURBID)
    water = (packed & np.uint8(WATER_BIT)) != 0
    fnu = np.full(v.shape, np.nan, dtype=np.float32)
    fnu[water] = dogliotti_kernel(b["red"][water], b["nir"][water])
    values: dict[str, tuple[np.ndarray, int]] = {
        "ndvi": (v, _POLYGONS),
        "bsi": (s, _POLYGONS),
        "turbidity_fnu": (fnu, _POLYGONS),
        "probability": (prob, _POLYGONS),
    }
    if calibration is not None:
        # the calibration is only ever read on water: evaluate it there alone
        cal = np.full(lc.shape, np.nan, dtype=np.float32)
        if water.any():
            cal[water] = calibrated_block(
                *[b[k][water] for k in calibration.bands()], calibration=calibration
            )
        values["turbidity_cal_fnu"] = (cal, _POLYGONS)
    dates = np.broadcast_to(np.asarray(when, dtype="datetime64[ns]"), lc.shape)
    values |= {
        "codes": (packed, _POLYGONS),
        "first_seen": (dates, _POLYGONS),
        "last_seen": (dates, _POLYGONS),
    }
    values |= {f"water:{k}": (values[k][0], WATER_BIT) for k in _WATER_STATS if k in values}
    _, (r0, _), (c0, _) = block_info[0]["array-location"] if block_info else (None, (0, 0), (0, 0))
    return make_piece(packed, values, label=_LABEL, row=int(r0), col=int(c0))


def scene_pieces(
    cube: xr.Dataset,
    *,
    params: DetectParams,
    model: PixelClassifier | None = None,
    calibration: TurbidityCalibration | None = None,
) -> Any:
    """Per chunk, lazily: the packed uint8 code raster and the values inside mining,
    turbid and water pixels (see :class:`pipeline.detect.pieces.Piece`).

    Parameters are those of :func:`pipeline.detect.scene.scene_products` (cube with
    canonical bands, reflectance 0-1, dims ``("time", "y", "x")``, AOI UTM CRS).

    Returns
    -------
    numpy or dask array of dtype object
        One piece per ``(y, x)`` chunk; ``dask.compute`` it, then :func:`assemble_scene`.
    """
    cube = detection_cube(cube)
    if cube.sizes["time"] > 1:
        products = scene_products(cube, params=params, model=model, calibration=calibration)
        packed = xr.apply_ufunc(
            _pack,
            products["landcover"],
            products["mining"],
            products["confirmed"],
            products["turbid"],
            dask="parallelized",
            output_dtypes=[np.uint8],
        )
        values = {
            name: (packed.data if name == "codes" else products[name.removeprefix("water:")].data, bits)
            for name, bits in _piece_bits(products).items()
        }
        return gather_pieces(packed.data, values, label=_LABEL)
    bands = [cube[b].transpose("time", "y", "x").data for b in CANONICAL]
    kwargs: dict[str, Any] = {
        "params": params,
        "model": model,
        "calibration": calibration,
        "when": np.datetime64(cube["time"].values[-1], "ns"),
    }
    if not isinstance(bands[0], da.Array):
        return _classify_scene_block(*[np.asarray(a) for a in bands], **kwargs)
    bands = [da.asarray(a).rechunk(bands[0].chunks) for a in bands]
    if len(bands[0].chunks[0]) != 1:
        bands = [a.rechunk({0: -1}) for a in bands]
    return da.map_blocks(
        _classify_scene_block,
        *bands,
        drop_axis=0,
        chunks=tuple((1,) * len(c) for c in bands[0].chunks[1:]),
        dtype=object,
        meta=np.empty((0, 0), dtype=object),
        **kwargs,
    )


@dataclass(frozen=True)
class SceneRasters:
    """Computed :func:`scene_pieces`, assembled: the whole packed raster and sparse values."""

    packed: Assembled
    stats: tuple[str, ...]
    """Statistics present (``mean_/median_`` columns), in :func:`scene_detections` order."""

    def class_counts(self) -> np.ndarray:
        """Pixels per landcover code (8 entries)."""
        return self.packed.counts.reshape(-1, 8).sum(axis=0)

    def water_median(self, name: str) -> float | None:
        """Median of ``name`` over water pixels with a finite value (None if there are none)."""
        key = f"water:{name}"
        if key not in self.packed.values:
            return None
        v = self.packed.values[key]
        v = v[np.isfinite(v)]
        return float(np.median(v)) if v.size else None


def assemble_scene(pieces: np.ndarray) -> SceneRasters:
    """Put computed :func:`scene_pieces` back together."""
    packed = assemble_pieces(pieces, label_within=_LABEL)
    return SceneRasters(packed=packed, stats=tuple(k for k in _STATS if k in packed.values))


def scene_detections_sparse(
    rasters: SceneRasters,
    *,
    transform: Affine,
    crs: CRS,
    area_crs: CRS,
    min_area_ha: float,
) -> gpd.GeoDataFrame:
    """:func:`scene_detections` of assembled pieces: the same rows, bit for bit, without
    the whole-tile float rasters."""
    values = rasters.packed.values
    where = rasters.packed.positions[_POLYGONS]
    labels = rasters.packed.labels
    at = values["codes"]  # the packed codes of the gathered pixels, in the same order
    in_m = (at & np.uint8(MINING_BIT)) != 0
    in_t = (at & np.uint8(TURBID_BIT)) != 0
    confirmed = (at[in_m] & np.uint8(CONFIRMED_BIT)) != 0
    first, last = values["first_seen"], values["last_seen"]
    common: dict[str, Any] = {
        "transform": transform,
        "crs": crs,
        "area_crs": area_crs,
        "min_area_ha": min_area_ha,
        "shape": rasters.packed.shape,
    }
    mining = vectorize_labelled(
        labels[MINING_BIT][in_m],
        where[in_m],
        stats={k: values[k][in_m] for k in rasters.stats},
        reduce={
            "first_seen": (epoch_days(first[in_m]), "min"),
            "last_seen": (epoch_days(last[in_m]), "max"),
            "confirmed_fraction": (confirmed.astype(np.float64), "mean"),
        },
        **common,
    )
    turbid = vectorize_labelled(
        labels[TURBID_BIT][in_t], where[in_t], stats={k: values[k][in_t] for k in rasters.stats}, **common
    )
    for col in ("first_seen", "last_seen"):
        mining[col] = [None if np.isnan(d) else np.datetime64(int(d), "D").item() for d in mining[col]]
    mining["confidence"] = np.where(mining["confirmed_fraction"] >= 0.5, CONFIRMED, PROBABLE)
    mining = mining.assign(kind=KIND_MINING)
    if np.isnat(first[in_m]).all():
        mining = mining.assign(first_seen=None, last_seen=None)
    return combine_detections(mining, turbid, turbid_dates=last[in_t])
