"""Pixel classifier: fit in memory on sampled labelled pixels, predict lazily block by block.

The estimator is a scikit-learn decision tree (depth-limited): its prediction releases the
GIL and costs a few dozen comparisons per pixel, which is what lets a whole Sentinel-2
tile be classified at tens of Mpx/s on two cores (see ``benchmarks/detect_bench.py``);
forests and gradient boosting were 10-25x slower to predict for little gain on the few
labelled polygons available. Prediction follows dask-ml's ``ParallelPostFit``: the fitted
model is shipped to every chunk and applied with ``xr.apply_ufunc(dask="parallelized")``.

Train / test splits are by polygon, never by pixel: neighbouring pixels of one polygon are
nearly identical, so a pixel split measures memory, not skill.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.tree import DecisionTreeClassifier

from pipeline.core.errors import ModelError
from pipeline.detect.features import feature_stack, required_bands
from pipeline.detect.landcover import CLASS_CODES, MASKED, NODATA, WATER_CLEAR, WATER_TURBID
from pipeline.detect.turbidity import dogliotti_kernel


@dataclass(frozen=True, kw_only=True)
class PixelClassifier:
    """A fitted pixel classifier and what it needs to be applied."""

    estimator: Any
    """Fitted scikit-learn classifier; its targets are indices into ``classes``."""
    features: tuple[str, ...]
    """Feature names (see :mod:`pipeline.detect.features`), in the estimator's column order."""
    classes: tuple[str, ...]
    """Our class names (``classes.toml`` vocabulary), index = estimator target."""
    sensor: str
    """Sensor whose band scaling the model was trained on (``classes.toml`` [sensors])."""

    @property
    def bands(self) -> tuple[str, ...]:
        """Canonical bands the model reads."""
        return required_bands(self.features)

    def codes(self) -> np.ndarray:
        """Landcover code (uint8) of each estimator class index."""
        try:
            return np.array([CLASS_CODES[c] for c in self.classes], dtype=np.uint8)
        except KeyError as exc:
            raise ModelError(
                f"Model class {exc} is not one of {sorted(CLASS_CODES)}; retrain with classes.toml names."
            ) from exc


def sample_per_polygon(
    samples: pd.DataFrame, *, max_per_polygon: int, seed: int, group: str = "polygon_id"
) -> pd.DataFrame:
    """At most ``max_per_polygon`` random pixels of each polygon, so big polygons do not
    outvote the many small ones (seeded, reproducible)."""
    rng = np.random.default_rng(seed)
    keep = []
    for _, idx in samples.groupby(group, sort=True).indices.items():
        keep.append(idx if len(idx) <= max_per_polygon else rng.choice(idx, max_per_polygon, replace=False))
    return samples.iloc[np.sort(np.concatenate(keep))] if keep else samples.iloc[:0]


def sample_features(samples: pd.DataFrame, features: Sequence[str]) -> np.ndarray:
    """``(n_pixels, n_features)`` float32 matrix from a frame of canonical band columns."""
    bands = {b: samples[b].to_numpy(np.float32) for b in required_bands(features)}
    return np.ascontiguousarray(feature_stack(bands, features).T)


def fit_pixel_classifier(
    samples: pd.DataFrame,
    *,
    features: Sequence[str],
    classes: Sequence[str],
    sensor: str,
    max_depth: int = 8,
    min_samples_leaf: int = 20,
    max_per_polygon: int = 3000,
    seed: int = 0,
) -> PixelClassifier:
    """Fit a decision tree on labelled pixels.

    Parameters
    ----------
    samples
        One row per pixel: canonical band columns (reflectance 0-1), ``label`` (our class
        name) and ``polygon_id``.
    classes
        Class vocabulary; labels outside it are an error.
    max_depth, min_samples_leaf
        Tree size: deeper trees fit the few labelled polygons more closely and predict
        slower.
    """
    unknown = sorted(set(samples["label"]) - set(classes))
    if unknown:
        raise ModelError(
            f"Labels {unknown} are not in the class list {list(classes)}. Map them in classes.toml."
        )
    present = [c for c in classes if c in set(samples["label"])]
    if len(present) < 2:
        raise ModelError(f"Training needs at least two classes with pixels; got {present}.")
    picked = sample_per_polygon(samples, max_per_polygon=max_per_polygon, seed=seed)
    x = sample_features(picked, features)
    ok = np.isfinite(x).all(axis=1)
    y = picked["label"].map({c: i for i, c in enumerate(classes)}).to_numpy()
    tree = DecisionTreeClassifier(
        max_depth=max_depth, min_samples_leaf=min_samples_leaf, class_weight="balanced", random_state=seed
    )
    tree.fit(x[ok], y[ok])
    return PixelClassifier(estimator=tree, features=tuple(features), classes=tuple(classes), sensor=sensor)


def predict_labels(model: PixelClassifier, samples: pd.DataFrame) -> np.ndarray:
    """Predicted class names for labelled pixels (rows with NaN bands get ``"nodata"``)."""
    x = sample_features(samples, model.features)
    ok = np.isfinite(x).all(axis=1)
    out = np.full(len(samples), "nodata", dtype=object)
    if ok.any():
        out[ok] = np.asarray(model.classes, dtype=object)[_predict_index(model, x[ok])[0]]
    return out


def _leaf_tables(model: PixelClassifier) -> tuple[np.ndarray, np.ndarray] | None:
    """Leaf id -> (landcover code, probability) for a decision tree; None for other models."""
    est = model.estimator
    if not isinstance(est, DecisionTreeClassifier):
        return None
    value = est.tree_.value[:, 0, :]
    leaf_index = np.asarray(est.classes_)[value.argmax(axis=1)]
    leaf_prob = (value.max(axis=1) / np.maximum(value.sum(axis=1), 1e-300)).astype(np.float32)
    return model.codes()[leaf_index], leaf_prob


def _predict_index(model: PixelClassifier, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    proba = model.estimator.predict_proba(x)
    # predict_proba columns follow estimator.classes_, which may skip absent targets
    idx = np.asarray(model.estimator.classes_)[proba.argmax(axis=1)]
    return idx.astype(np.intp), proba.max(axis=1).astype(np.float32)


def _predict_codes(model: PixelClassifier, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Landcover codes (uint8) and winning-class probability of the rows of ``x``."""
    tables = _leaf_tables(model)
    if tables is not None:
        # same argmax as predict_proba, without its (n_pixels, n_classes) float64 matrix;
        # the tree's own dtype and layout (float32, C order) let it skip input validation
        x = np.ascontiguousarray(x, dtype=np.float32)
        leaves = model.estimator.apply(x, check_input=False)
        return tables[0][leaves], tables[1][leaves]
    idx, prob = _predict_index(model, x)
    return model.codes()[idx], prob


#: Pixels classified at once inside a chunk (features x strip float32 fits in L2 cache).
_STRIP_PX = 1 << 15


def classify_block(
    *arrays: np.ndarray,
    model: PixelClassifier,
    names: tuple[str, ...],
    turbid_fnu_min: float | None,
    has_mask: bool,
) -> tuple[np.ndarray, np.ndarray]:
    bands = dict(zip(names, arrays[: len(names)], strict=True))
    shape = arrays[0].shape
    flat = {k: np.asarray(v, dtype=np.float32).reshape(-1) for k, v in bands.items()}
    n = flat[names[0]].size
    codes: np.ndarray = np.empty(n, dtype=np.uint8)
    prob: np.ndarray = np.empty(n, dtype=np.float32)
    # strip by strip: the (features, strip) stack and its (strip, features) transpose for
    # the tree stay in cache, where one (features, chunk) pass would stream them through RAM
    for s0 in range(0, n, _STRIP_PX):
        part = slice(s0, min(s0 + _STRIP_PX, n))
        stack = feature_stack({k: v[part] for k, v in flat.items()}, model.features)
        x = np.ascontiguousarray(stack.T)
        if not np.isnan(stack).any():  # the usual strip: no nodata, no 0/0 index
            codes[part], prob[part] = _predict_codes(model, x)
        else:
            ok = ~np.isnan(stack).any(axis=0)
            c = np.full(x.shape[0], NODATA, dtype=np.uint8)
            p = np.full(x.shape[0], np.nan, dtype=np.float32)
            if ok.any():
                c[ok], p[ok] = _predict_codes(model, x[ok])
            codes[part], prob[part] = c, p
    codes = codes.reshape(shape)
    prob = prob.reshape(shape)
    if turbid_fnu_min is not None:
        water = codes == WATER_CLEAR
        if water.any():
            fnu = dogliotti_kernel(bands["red"][water], bands["nir"][water])
            codes[water] = np.where(fnu > turbid_fnu_min, WATER_TURBID, WATER_CLEAR)
    if has_mask:
        masked = np.asarray(arrays[-1], dtype=bool)
        codes[masked] = MASKED
        prob[masked] = np.nan
    return codes, prob


def classify_pixels(
    bands: Mapping[str, xr.DataArray],
    *,
    model: PixelClassifier,
    turbid_fnu_min: float | None = None,
    mask: xr.DataArray | None = None,
) -> xr.Dataset:
    """Classify every pixel, lazily for dask-backed inputs (one task per chunk).

    Parameters
    ----------
    bands
        Canonical band name -> reflectance (0-1) on one grid, any dims (e.g. ``("y", "x")``
        or ``("time", "y", "x")``); must hold ``model.bands`` (and red / nir when
        ``turbid_fnu_min`` is given).
    turbid_fnu_min
        Water pixels whose Dogliotti turbidity exceeds this (FNU) become ``water_turbid``.
    mask
        Boolean, True where the pixel is cloud / shadow: coded ``masked``.

    Returns
    -------
    xr.Dataset
        ``landcover`` (uint8 codes of :data:`pipeline.detect.landcover.CLASS_NAMES`) and
        ``probability`` (float32, the winning class's probability), the bands' dims.
    """
    names = model.bands
    if turbid_fnu_min is not None:
        names = tuple(dict.fromkeys((*names, "red", "nir")))
    missing = [b for b in names if b not in bands]
    if missing:
        raise ModelError(f"The model needs bands {list(names)}; missing {missing}. Load them from the scene.")
    args = [bands[b] for b in names] + ([mask] if mask is not None else [])
    codes, prob = xr.apply_ufunc(
        classify_block,
        *args,
        kwargs={
            "model": model,
            "names": names,
            "turbid_fnu_min": turbid_fnu_min,
            "has_mask": mask is not None,
        },
        output_core_dims=[[], []],
        dask="parallelized",
        output_dtypes=[np.uint8, np.float32],
    )
    codes.attrs["classes"] = ",".join(f"{CLASS_CODES[c]}={c}" for c in model.classes)
    return xr.Dataset({"landcover": codes, "probability": prob})


def split_polygons(
    polygons: pd.DataFrame, *, test_fraction: float = 0.3, seed: int = 0
) -> tuple[list[int], list[int]]:
    """Hold out whole polygons, stratified by class.

    Every class with >= 2 polygons keeps at least one in train and one in test; a class
    with one polygon stays in train (it cannot be tested honestly).

    Parameters
    ----------
    polygons
        One row per polygon: ``polygon_id``, ``label``.

    Returns
    -------
    (train_ids, test_ids)
    """
    rng = np.random.default_rng(seed)
    train: list[int] = []
    test: list[int] = []
    for _, part in polygons.sort_values("polygon_id").groupby("label", sort=True):
        ids = part["polygon_id"].to_numpy().copy()
        rng.shuffle(ids)
        n_test = 0 if len(ids) < 2 else min(len(ids) - 1, max(1, round(len(ids) * test_fraction)))
        test += [int(i) for i in ids[:n_test]]
        train += [int(i) for i in ids[n_test:]]
    return sorted(train), sorted(test)


def cross_validate_by_polygon(
    samples: pd.DataFrame,
    *,
    features: Sequence[str],
    classes: Sequence[str],
    sensor: str,
    n_splits: int = 4,
    seed: int = 0,
    **fit_kwargs: Any,
) -> tuple[np.ndarray, np.ndarray]:
    """Out-of-fold predictions with folds of whole polygons (``StratifiedGroupKFold``).

    Returns ``(y_true, y_pred)`` class names of every pixel, each predicted by a model that
    never saw its polygon.
    """
    per_poly = samples.groupby("polygon_id")["label"].first()
    n_splits = max(2, min(n_splits, int(per_poly.value_counts().min())))
    folds = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    y_true: list[np.ndarray] = []
    y_pred: list[np.ndarray] = []
    for train_idx, test_idx in folds.split(samples, samples["label"], groups=samples["polygon_id"]):
        model = fit_pixel_classifier(
            samples.iloc[train_idx],
            features=features,
            classes=classes,
            sensor=sensor,
            seed=seed,
            **fit_kwargs,
        )
        test = samples.iloc[test_idx]
        y_true.append(test["label"].to_numpy(dtype=object))
        y_pred.append(predict_labels(model, test))
    return np.concatenate(y_true), np.concatenate(y_pred)
