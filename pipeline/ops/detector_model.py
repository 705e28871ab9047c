"""Which gold-mining detector a run uses, and building the default one.

The default model is never committed: the first run (or ``make demo``) that needs it trains
it from the sample data's ``imagery/gold_mining_patches/`` into the model cache
(:func:`pipeline.state.mining_models.model_cache_dir`), with its provenance and hash; later
runs load it from there. A configured ``detect.mining_model_path`` is used as it is.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from pipeline.core.config import Settings
from pipeline.core.errors import ConfigError, DataNotFoundError
from pipeline.core.records import Aoi
from pipeline.core.version import __version__
from pipeline.detect.mining_change import MiningDetector
from pipeline.detect.mining_fit import ESTIMATOR_PARAMS, FEATURES, NOISE_WEIGHT
from pipeline.ingest.paths import sample_data_dir
from pipeline.ingest.site_patches import INDEX_FILE, fingerprint_sites
from pipeline.ingest.sources import source_of
from pipeline.ops.site_evaluation import SiteData, train
from pipeline.state.mining_models import (
    MINING_FORMAT,
    default_model_path,
    load_mining_detector,
    save_mining_detector,
)

log = logging.getLogger(__name__)

#: The labelled sites the default model is trained on, inside the sample-data folder.
TRAINING_SITES = "imagery/gold_mining_patches"


def train_and_save(folder: Path, out: Path, *, dataset: str, seed: int = 0) -> dict[str, Any]:
    """Train the detector on every labelled site of ``folder`` and write it to ``out`` with
    its provenance (data fingerprint, features, hyperparameters, threshold, versions)."""
    data = SiteData.read(folder)
    detector, report = train(data, seed=seed)
    provenance = {
        "dataset": dataset,
        "data_path": str(folder),
        "data_fingerprint": fingerprint_sites(data.sites, index=folder / INDEX_FILE),
        "code_version": __version__,
        "hyperparameters": {**ESTIMATOR_PARAMS, "noise_weight": NOISE_WEIGHT, "monotone": True},
        "model_features": list(FEATURES),
        "training": asdict(report),
        "seed": seed,
    }
    return save_mining_detector(detector, out, provenance=provenance)


def recipe_tag() -> str:
    """Short hash of everything that shapes the default model besides its data."""
    recipe = json.dumps(
        [MINING_FORMAT, __version__, list(FEATURES), ESTIMATOR_PARAMS, NOISE_WEIGHT, TRAINING_SITES],
        sort_keys=True,
    )
    return hashlib.sha256(recipe.encode()).hexdigest()[:10]


def default_training_folder(settings: Settings) -> Path:
    """``imagery/gold_mining_patches`` of the sample data, checked to exist."""
    folder = sample_data_dir(settings.sample_data) / TRAINING_SITES
    if not (folder / INDEX_FILE).is_file():
        raise DataNotFoundError(
            f"No trained gold-mining detector and no training sites at {folder}. Point "
            "ASM_SAMPLE_DATA at the sample data, or set detect.mining_model_path to a model "
            "trained with `asm-monitor train --dataset gold_mining_patches`."
        )
    return folder


def resolve_mining_model(settings: Settings) -> Settings:
    """``settings`` with ``detect.mining_model_path`` naming a model file that exists: the
    configured one, or the default one in the cache (trained now if it is missing). Runs
    with ``detect.detector = "index-rules"`` are returned unchanged."""
    if settings.detect.detector != "gold-change" or settings.detect.mining_model_path:
        return settings
    path = default_model_path(tag=recipe_tag())
    if not path.is_file():
        log.info("training the default gold-mining detector into %s (once)", path)
        train_and_save(default_training_folder(settings), path, dataset="gold_mining_patches")
    return settings.with_overrides({"detect": {"mining_model_path": str(path)}})


def has_imagery(aoi: Aoi, *, settings: Settings) -> bool:
    """True when the AOI reads imagery: listed scenes or a remote scene source."""
    try:
        remote = source_of(aoi, settings=settings) != "local"
    except ConfigError:  # a bad source is that AOI's failure, reported when it runs
        remote = False
    return bool(aoi.inputs.get("scenes")) or remote


def resolve_for_aois(aois: Sequence[Aoi], *, settings: Settings) -> Settings:
    """:func:`resolve_mining_model` when any of ``aois`` reads imagery, else ``settings``
    (a night of external detections only needs no model)."""
    return (
        resolve_mining_model(settings) if any(has_imagery(a, settings=settings) for a in aois) else settings
    )


def mining_detector(settings: Settings) -> tuple[MiningDetector, str]:
    """The run's detector and its SHA-256 (see :func:`resolve_mining_model`)."""
    resolved = resolve_mining_model(settings)
    detector, prov = load_mining_detector(
        Path(resolved.detect.mining_model_path), expected_sha256=resolved.detect.mining_model_sha256 or None
    )
    return detector, str(prov["sha256"])
