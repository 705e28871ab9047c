"""The gold-mining change detector on disk: written with its provenance and hash, checked on
load (see :func:`pipeline.state.models.load_artefact`), and the default model's place in
the cache outside the repository."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pipeline.detect.mining_change import MiningDetector
from pipeline.state.models import load_artefact, save_artefact

MINING_FORMAT = "asm-monitor-mining-detector/1"
#: Types skops may rebuild for our estimators beyond its safe defaults; nothing else loads.
MINING_ALLOWED_TYPES = frozenset(
    {
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.tree._tree.Tree",
    }
)
#: File name of the default model inside the cache folder (``{tag}``: what built it).
DEFAULT_MODEL_NAME = "gold-mining-detector-{tag}.skops"


def save_mining_detector(
    detector: MiningDetector, path: Path, *, provenance: dict[str, Any]
) -> dict[str, Any]:
    """Write a fitted detector (``.skops``) and its provenance (``.json``) beside it;
    returns the provenance with the file's ``sha256``."""
    content = {
        "estimator": detector.estimator,
        "features": list(detector.features),
        "threshold": float(detector.threshold),
        "window_px": detector.window_px,
        "stride_px": detector.stride_px,
        "min_valid_fraction": float(detector.min_valid_fraction),
        "cloud_dilate_px": detector.cloud_dilate_px,
        "sensor": detector.sensor,
    }
    prov = {
        **provenance,
        **{k: v for k, v in content.items() if k != "estimator"},
        "estimator": type(detector.estimator).__name__,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    return save_artefact(content, path, provenance=prov, artefact_format=MINING_FORMAT)


def load_mining_detector(
    path: Path, *, expected_sha256: str | None = None
) -> tuple[MiningDetector, dict[str, Any]]:
    """A detector written by :func:`save_mining_detector`; anything else is refused with
    :class:`~pipeline.core.errors.ModelError`."""
    obj, prov = load_artefact(
        path,
        artefact_format=MINING_FORMAT,
        allowed_types=MINING_ALLOWED_TYPES,
        expected_sha256=expected_sha256,
    )
    detector = MiningDetector(
        estimator=obj["estimator"],
        features=tuple(obj["features"]),
        threshold=float(obj["threshold"]),
        window_px=int(obj["window_px"]),
        stride_px=int(obj["stride_px"]),
        min_valid_fraction=float(obj["min_valid_fraction"]),
        cloud_dilate_px=int(obj["cloud_dilate_px"]),
        sensor=str(obj["sensor"]),
    )
    return detector, prov


def model_cache_dir() -> Path:
    """Where trained default models live: ``$ASM_MODEL_CACHE``, else
    ``$XDG_CACHE_HOME/asm-monitor/models``, else ``~/.cache/asm-monitor/models`` (never the
    repository: models are built, not committed)."""
    if os.environ.get("ASM_MODEL_CACHE"):
        return Path(os.environ["ASM_MODEL_CACHE"])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "asm-monitor" / "models"


def default_model_path(*, tag: str) -> Path:
    """The default gold-mining detector's file in :func:`model_cache_dir`; ``tag`` names
    the recipe (features, hyperparameters, code version), so a model built by older code is
    never picked up by newer code."""
    return model_cache_dir() / DEFAULT_MODEL_NAME.format(tag=tag)
