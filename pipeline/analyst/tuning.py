"""Threshold sweeps on labelled data: how precision and recall of mining move with the
detector's thresholds, the minimum mapping unit, the classifier's size and the number of
confirmations.

Every sweep returns one row per setting with ``precision``, ``recall`` and ``f1`` of the
positive (mining) class, computed on reference pixels:

* :func:`sweep_index_rules` - index-rule thresholds and MMU on a labelled scene
  (classes.toml data set, e.g. ``trombetas_s2``): the map is made on the whole scene, the
  MMU drops 8-connected patches smaller than ``min_area_ha``, and the labelled pixels score it.
* :func:`sweep_classifier` - decision-tree depth / leaf size, out-of-fold predictions with
  folds of whole polygons (a pixel split would measure memory, not skill).
* :func:`sweep_confirmation` - ``change_confirm_after`` on a real annual land-cover series
  (MapBiomas around the Lourenço mine): change is detected on ``years``; the reference is
  mining in ``truth_year``, i.e. scarring that persisted.

Labelled polygons are not a probability sample: these figures compare settings, they are
not design-based accuracy estimates (see ``asm-monitor evaluate`` for Olofsson estimates).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from scipy import ndimage

from pipeline.core.config import DetectParams, Settings, settings_or_default
from pipeline.core.errors import ConfigError, DataNotFoundError
from pipeline.detect.change import STATUS_CONFIRMED, detect_change, remap_classes
from pipeline.detect.classify import cross_validate_by_polygon
from pipeline.detect.evaluate import pixel_area_ha
from pipeline.detect.features import DEFAULT_FEATURES
from pipeline.detect.indices import bsi, mndwi, ndvi
from pipeline.detect.landcover import BARE, CLASS_CODES, FOREST, classify_indices
from pipeline.detect.turbidity import dogliotti_fnu

METRIC_COLUMNS = ["precision", "recall", "f1", "detected_px", "reference_px"]


def _scores(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    tp = float((pred & truth).sum())
    fp = float((pred & ~truth).sum())
    fn = float((~pred & truth).sum())
    p = tp / (tp + fp) if tp + fp else np.nan
    r = tp / (tp + fn) if tp + fn else np.nan
    f = 2 * p * r / (p + r) if p + r > 0 else np.nan
    return {"precision": p, "recall": r, "f1": f, "detected_px": tp + fp, "reference_px": tp + fn}


def _grid(grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    keys = list(grid)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*grid.values())]


def drop_small_patches(mask: np.ndarray, *, pixel_ha: np.ndarray, min_area_ha: float) -> np.ndarray:
    """``mask`` without 8-connected patches smaller than ``min_area_ha`` (the MMU, as
    :func:`pipeline.detect.vectorize.vectorize_mask` applies it). ``pixel_ha`` is the pixel
    area (ha) per row, shape ``(height,)``."""
    labels, n = ndimage.label(mask, structure=np.ones((3, 3), dtype=int))
    if n == 0 or min_area_ha <= 0:
        return mask
    area = np.bincount(labels.ravel(), weights=np.broadcast_to(pixel_ha[:, None], mask.shape).ravel())
    keep = area >= min_area_ha
    keep[0] = False
    return keep[labels]


def _read_class_map(path: Path) -> xr.DataArray:
    import rioxarray

    # integer class codes: no masking or scaling to float
    out = rioxarray.open_rasterio(path, masked=False, mask_and_scale=False)
    assert isinstance(out, xr.DataArray)
    return out.squeeze("band", drop=True)


def sweep_index_rules(
    grid: Mapping[str, Sequence[Any]],
    *,
    dataset: str = "trombetas_s2",
    settings: Settings | None = None,
    positive: str = "bare_mining",
) -> pd.DataFrame:
    """Precision / recall of the index-rule detector over a grid of thresholds.

    Parameters
    ----------
    grid
        :class:`~pipeline.core.config.DetectParams` field -> values, e.g.
        ``{"bare_ndvi_max": [0.2, 0.3], "min_area_ha": [0, 0.5, 2]}``; every combination runs.
    dataset
        Labelled data set of ``classes.toml``.

    Returns
    -------
    pd.DataFrame
        The grid's columns, then ``precision``, ``recall``, ``f1``, ``detected_px``,
        ``reference_px`` (labelled pixels).
    """
    from pipeline.ingest.training import TrainingDataset, read_labelled_pixels

    s = settings_or_default(settings)
    unknown = sorted(set(grid) - {f for f in DetectParams.__dataclass_fields__})
    if unknown:
        raise ConfigError(f"Unknown detector settings {unknown}; use DetectParams fields.")
    pixels, scene, _ = read_labelled_pixels(TrainingDataset.from_config(dataset, root=s.sample_data))
    b = {k: xr.DataArray(v, dims=("y", "x")) for k, v in scene.bands.items()}
    v, w, soil = (
        ndvi(b["nir"], b["red"]),
        mndwi(b["green"], b["swir1"]),
        bsi(b["blue"], b["red"], b["nir"], b["swir1"]),
    )
    fnu = dogliotti_fnu(b["red"], b["nir"])
    height = scene.bands["red"].shape[0]
    pixel_ha = pixel_area_ha(scene.transform, scene.crs, height)
    truth = (pixels["label"] == positive).to_numpy()
    rows = []
    for combo in _grid(grid):
        params = replace(s.detect, **combo)
        codes = classify_indices(v, w, soil, fnu.where(w > params.water_mndwi_min), params=params).to_numpy()
        mask = drop_small_patches(codes == BARE, pixel_ha=pixel_ha, min_area_ha=params.min_area_ha)
        pred = mask[pixels["row"].to_numpy(), pixels["col"].to_numpy()]
        rows.append(combo | _scores(pred, truth))
    return pd.DataFrame(rows)


def sweep_classifier(
    grid: Mapping[str, Sequence[Any]],
    *,
    dataset: str = "trombetas_s2",
    settings: Settings | None = None,
    positive: str = "bare_mining",
    features: Sequence[str] = DEFAULT_FEATURES,
    seed: int = 0,
) -> pd.DataFrame:
    """Polygon-grouped cross-validated precision / recall of the pixel classifier.

    ``grid`` maps :func:`~pipeline.detect.classify.fit_pixel_classifier` arguments
    (``max_depth``, ``min_samples_leaf``, ``max_per_polygon``) to values.
    """
    from pipeline.ingest.training import TrainingDataset, class_order, read_labelled_pixels

    s = settings_or_default(settings)
    ds = TrainingDataset.from_config(dataset, root=s.sample_data)
    pixels, _, _ = read_labelled_pixels(ds)
    rows = []
    for combo in _grid(grid):
        y_true, y_pred = cross_validate_by_polygon(
            pixels, features=features, classes=class_order(), sensor=ds.sensor, seed=seed, **combo
        )
        rows.append(combo | _scores(y_pred == positive, y_true == positive))
    return pd.DataFrame(rows)


def sweep_confirmation(
    confirm_after: Sequence[int],
    *,
    years: Sequence[int] = tuple(range(1985, 2006)),
    truth_year: int = 2020,
    baseline_steps: int = 5,
    folder: str = "detections/mapbiomas_lourenco",
    pattern: str = "mapbiomas_c6_lourenco_{year}.tif",
    legend: str = "mapbiomas_c6",
    settings: Settings | None = None,
) -> pd.DataFrame:
    """Precision / recall of ``confirmed`` forest -> mining change per ``confirm_after``.

    Change is detected on the annual maps of ``years`` (the first ``baseline_steps`` form the
    forest baseline); a pixel is a true positive when it is mining in ``truth_year``. Recall's
    reference is baseline-forest pixels that are mining in ``truth_year``.

    Returns
    -------
    pd.DataFrame
        ``confirm_after``, ``precision``, ``recall``, ``f1``, ``detected_px``, ``reference_px``.
    """
    from pipeline.ingest.training import map_legend

    s = settings_or_default(settings)
    root = s.sample_data / folder
    files = [root / pattern.format(year=y) for y in (*years, truth_year)]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise DataNotFoundError(f"Land-cover maps {missing} do not exist. Check ASM_SAMPLE_DATA.")
    table = map_legend(legend)
    maps = [_read_class_map(f) for f in files]
    stack = xr.concat(maps[:-1], dim="time").assign_coords(
        time=[np.datetime64(f"{y}-12-31", "ns") for y in years]
    )
    codes = remap_classes(stack, legend=table)
    truth_codes = remap_classes(maps[-1], legend=table).to_numpy()
    forest = (codes.isel(time=slice(0, baseline_steps)) == FOREST).all("time").to_numpy()
    truth = truth_codes == CLASS_CODES["bare_mining"]
    rows = []
    for k in confirm_after:
        status = detect_change(codes, baseline_steps=baseline_steps, confirm_after=k)["status"].to_numpy()
        pred = status == STATUS_CONFIRMED
        domain = forest | pred  # baseline forest: the only pixels that can change to mining
        rows.append({"confirm_after": k} | _scores(pred[domain], truth[domain]))
    return pd.DataFrame(rows)


__all__ = [
    "METRIC_COLUMNS",
    "drop_small_patches",
    "sweep_classifier",
    "sweep_confirmation",
    "sweep_index_rules",
]
