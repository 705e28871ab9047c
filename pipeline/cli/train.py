"""``asm-monitor train``: fit the pixel classifier on a labelled data set and save it."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipeline.cli.args import settings_from_args
from pipeline.cli.detector import SITE_DATASETS, train_sites
from pipeline.core.version import __version__
from pipeline.detect.features import DEFAULT_FEATURES


def _summary(report: dict[str, Any]) -> dict[str, Any]:
    return {
        "n": report["n"],
        "overall_accuracy": round(report["overall_accuracy"], 4),
        "kappa": None if report["kappa"] is None else round(report["kappa"], 4),
        "macro_f1": None if report["macro_f1"] is None else round(report["macro_f1"], 4),
        "f1": {c: None if v["f1"] is None else round(v["f1"], 4) for c, v in report["per_class"].items()},
        "bare_mining_specificity": report["positive_specificity"],
    }


def _train(args: argparse.Namespace) -> int:
    if args.sites or args.dataset in SITE_DATASETS:
        return train_sites(args)
    from pipeline.detect.classify import (
        cross_validate_by_polygon,
        fit_pixel_classifier,
        predict_labels,
        split_polygons,
    )
    from pipeline.detect.evaluate import accuracy_report
    from pipeline.ingest.training import TrainingDataset, class_order, fingerprint_files, read_labelled_pixels
    from pipeline.state.models import save_model

    settings = settings_from_args(args)
    dataset = TrainingDataset.from_config(args.dataset, root=settings.sample_data)
    pixels, _, polygons = read_labelled_pixels(dataset)
    classes = class_order()
    features = tuple(args.features.split(",")) if args.features else DEFAULT_FEATURES
    fit = {"max_depth": args.max_depth, "min_samples_leaf": args.min_samples_leaf}
    train_ids, test_ids = split_polygons(
        polygons[["polygon_id", "label"]], test_fraction=args.test_fraction, seed=args.seed
    )
    train_px = pixels[pixels["polygon_id"].isin(train_ids)]
    test_px = pixels[pixels["polygon_id"].isin(test_ids)]
    y_true, y_pred = cross_validate_by_polygon(
        pixels, features=features, classes=classes, sensor=dataset.sensor, seed=args.seed, **fit
    )
    cv = accuracy_report(y_true, y_pred, classes=classes)
    model = fit_pixel_classifier(
        train_px, features=features, classes=classes, sensor=dataset.sensor, seed=args.seed, **fit
    )
    held = accuracy_report(test_px["label"].to_numpy(), predict_labels(model, test_px), classes=classes)
    provenance = {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "code_version": __version__,
        "dataset": dataset.name,
        "training_data_sha256": fingerprint_files(dataset.files()),
        "training_files": [p.name for p in dataset.files()],
        "class_mapping": dataset.classes,
        "attribution": dataset.attribution,
        "params": {**fit, "seed": args.seed, "test_fraction": args.test_fraction, "max_per_polygon": 3000},
        "train_polygons": train_ids,
        "test_polygons": test_ids,
        "n_train_pixels": len(train_px),
        "metrics": {"polygon_cv": _summary(cv), "held_out": _summary(held)},
    }
    prov = save_model(model, args.out, provenance=provenance)
    w = sys.stdout.write
    w(f"trained {prov['estimator']} on {dataset.name}: {len(train_ids)} polygons / {len(train_px)} px\n")
    w(f"  polygon-grouped CV (all {len(polygons)} polygons): {_summary(cv)}\n")
    w(f"  held-out polygons {test_ids}: {_summary(held)}\n")
    w(f"  model {args.out}  sha256 {prov['sha256']}\n")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``train``."""
    p = sub.add_parser(
        "train",
        help="train the gold-mining detector (or the pixel classifier)",
        description="With --dataset gold_mining_patches (or --sites DIR): fit the gold-mining "
        "change detector on labelled two-date sites. With a classes.toml data set: fit the "
        "pixel classifier, holding out whole polygons. Either writes MODEL.skops + MODEL.json "
        "(provenance, metrics, SHA-256).",
    )
    p.add_argument(
        "--dataset",
        default="trombetas_s2",
        help="gold_mining_patches (two-date sites) or a classes.toml data set (default trombetas_s2)",
    )
    p.add_argument("--sites", help="a folder laid out like gold_mining_patches/ (patches.csv, t0/, t1/)")
    p.add_argument("--out", type=Path, default=Path("models/pixel_classifier.skops"), help="model file")
    p.add_argument("--features", help=f"comma-separated features (default {','.join(DEFAULT_FEATURES)})")
    p.add_argument("--max-depth", type=int, default=8, help="tree depth (default 8)")
    p.add_argument("--min-samples-leaf", type=int, default=20, help="pixels per leaf (default 20)")
    p.add_argument("--test-fraction", type=float, default=0.3, help="polygons held out per class")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_train)
