"""Per-pixel features of the classifier: canonical bands plus spectral indices.

Canonical band names (``blue, green, red, nir, swir1, swir2``) are mapped to each sensor's
band names in ``pipeline/data/classes.toml``. The functions here work on plain numpy
arrays of reflectance (0-1), any shape; they are the block kernels the lazy predictors run
on each dask chunk and also what training applies to sampled pixels, so fit and predict
see exactly the same numbers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from pipeline.core.errors import ConfigError
from pipeline.detect.indices import bsi_kernel, nd_kernel

BANDS = ("blue", "green", "red", "nir", "swir1", "swir2")

#: Index name -> the canonical bands it reads.
INDEX_BANDS: dict[str, tuple[str, ...]] = {
    "ndvi": ("nir", "red"),
    "ndwi": ("green", "nir"),
    "mndwi": ("green", "swir1"),
    "ndti": ("red", "green"),
    "bsi": ("blue", "red", "nir", "swir1"),
    "nbr": ("nir", "swir2"),
}

#: Default features: no swir2, so a 5-band (B02 B03 B04 B08 B11) cube suffices.
DEFAULT_FEATURES = ("blue", "green", "red", "nir", "swir1", "ndvi", "ndwi", "mndwi", "bsi", "ndti")


def required_bands(features: Sequence[str]) -> tuple[str, ...]:
    """Canonical bands needed to compute ``features``, in ``BANDS`` order."""
    need: set[str] = set()
    for f in features:
        if f in BANDS:
            need.add(f)
        elif f in INDEX_BANDS:
            need.update(INDEX_BANDS[f])
        else:
            raise ConfigError(
                f"Unknown feature '{f}'. Use band names {list(BANDS)} or indices {sorted(INDEX_BANDS)}."
            )
    return tuple(b for b in BANDS if b in need)


def _index(name: str, b: Mapping[str, np.ndarray]) -> np.ndarray:
    if name == "bsi":
        return bsi_kernel(b["blue"], b["red"], b["nir"], b["swir1"])
    first, second = INDEX_BANDS[name]
    return nd_kernel(b[first], b[second])


def feature_stack(bands: Mapping[str, np.ndarray], features: Sequence[str]) -> np.ndarray:
    """Stack ``features`` computed from ``bands`` along a new first axis.

    Parameters
    ----------
    bands
        Canonical band name -> float reflectance array (0-1), all the same shape.
    features
        Names from ``BANDS`` or ``INDEX_BANDS``.

    Returns
    -------
    np.ndarray
        float32, shape ``(len(features), *band_shape)``.
    """
    required_bands(features)
    f32 = {k: np.asarray(v, dtype=np.float32) for k, v in bands.items()}
    shape = next(iter(f32.values())).shape
    out = np.empty((len(features), *shape), dtype=np.float32)
    for i, name in enumerate(features):
        out[i] = f32[name] if name in BANDS else _index(name, f32)
    return out
