"""``asm-monitor calibrate-turbidity MATCHUPS.csv``: fit the satellite -> in-situ turbidity model."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd


def _calibrate(args: argparse.Namespace) -> int:
    from pipeline.detect.turbidity import fit_turbidity_calibration
    from pipeline.ingest.training import read_turbidity_matchups
    from pipeline.state.models import save_turbidity_calibration

    frame, digest = read_turbidity_matchups(args.matchups, target=args.target)
    split = pd.Timestamp(args.train_until)
    train = (frame["date"] <= split).to_numpy()
    if train.all() or not train.any():
        sys.stdout.write(f"warning: --train-until {args.train_until} leaves no held-out rows to score\n")
    cal = fit_turbidity_calibration(frame, train=train)
    cal.fitted_on.update(
        {
            "file": Path(args.matchups).name,
            "sha256": digest,
            "target_column": args.target,
            "train_rows": f"{frame['date'][train].min():%Y-%m-%d}..{frame['date'][train].max():%Y-%m-%d}",
            "test_rows": (
                f"{frame['date'][~train].min():%Y-%m-%d}..{frame['date'][~train].max():%Y-%m-%d}"
                if (~train).any()
                else ""
            ),
            "bands": "blue=B02 green=B03 red=B04 nir=B8A (Sentinel-2 L2A)",
        }
    )
    save_turbidity_calibration(cal, args.out)
    m = cal.metrics
    sys.stdout.write(
        f"turbidity calibration: ln T = {cal.intercept:.3f} "
        + " ".join(f"{c:+.3f}*{p}" for p, c in zip(cal.predictors, cal.coefficients, strict=True))
        + "\n"
        f"  chosen by leave-one-out on {m['n_train']} fitting rows: {json.dumps(m['loo_rmse_ln'])}\n"
        f"  held-out {m['n_test']} rows: Spearman {m.get('test_spearman', np.nan)}, RMSE "
        f"{m.get('test_rmse', np.nan)} {args.target}; red band alone: Spearman "
        f"{m.get('test_spearman_red_only', np.nan)}\n"
        f"  written to {args.out}\n"
    )
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``calibrate-turbidity``."""
    p = sub.add_parser(
        "calibrate-turbidity",
        help="fit turbidity (FNU) to in-situ matchups",
        description="Fit a log-linear turbidity model on satellite/in-situ matchups up to "
        "--train-until, score it on the later rows, and write the calibration JSON that "
        "detection uses (detect.turbidity_calibration).",
    )
    p.add_argument("matchups", type=Path, help="CSV: date, B02, B03, B04, B8A (reflectance 0-1), turbidity")
    p.add_argument(
        "--target", default="turbidity_ntu", help="in-situ turbidity column (default turbidity_ntu)"
    )
    p.add_argument(
        "--train-until", default="2018-12-31", help="last date of the fitting rows (default 2018-12-31)"
    )
    p.add_argument("--out", type=Path, default=Path("turbidity_calibration.json"), help="output JSON")
    p.set_defaults(func=_calibrate)
