"""Model artefacts: round trip, and refusal of anything we did not write."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.linear_model import LogisticRegression

from pipeline.core.errors import ModelError
from pipeline.detect.classify import PixelClassifier, fit_pixel_classifier, predict_labels
from pipeline.state.models import load_model, save_model

CLASSES = ("forest", "other_vegetation", "bare_mining", "built_up", "water")


def _samples(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    means = {
        "forest": (0.02, 0.04, 0.025, 0.32, 0.15),
        "bare_mining": (0.08, 0.11, 0.14, 0.20, 0.30),
        "water": (0.03, 0.05, 0.03, 0.02, 0.01),
    }
    rows = []
    for pid, (label, mu) in enumerate(list(means.items()) * 2):
        x = np.asarray(mu) + rng.normal(0, 0.005, size=(60, 5))
        frame = pd.DataFrame(x, columns=["blue", "green", "red", "nir", "swir1"])
        rows.append(frame.assign(label=label, polygon_id=pid))
    return pd.concat(rows, ignore_index=True)


def _model() -> PixelClassifier:
    return fit_pixel_classifier(
        _samples(), features=("red", "nir", "swir1", "ndvi"), classes=CLASSES, sensor="sentinel2"
    )


def test_missing_model_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="asm-monitor train"):
        load_model(tmp_path / "none.skops")


def test_round_trip_predicts_the_same(tmp_path: Path) -> None:
    model = _model()
    prov = save_model(model, tmp_path / "m.skops", provenance={"dataset": "synthetic"})
    loaded, prov2 = load_model(tmp_path / "m.skops", expected_sha256=prov["sha256"])
    assert prov2 == prov
    assert loaded.features == model.features and loaded.classes == model.classes
    s = _samples(seed=1)
    np.testing.assert_array_equal(predict_labels(loaded, s), predict_labels(model, s))
    assert json.loads((tmp_path / "m.json").read_text())["sha256"] == prov["sha256"]


def test_tampered_model_bytes_are_refused(tmp_path: Path) -> None:
    save_model(_model(), tmp_path / "m.skops", provenance={})
    blob = bytearray((tmp_path / "m.skops").read_bytes())
    blob[-10] ^= 0xFF
    (tmp_path / "m.skops").write_bytes(bytes(blob))
    with pytest.raises(ModelError, match="changed after training"):
        load_model(tmp_path / "m.skops")


def test_edited_provenance_is_refused(tmp_path: Path) -> None:
    save_model(_model(), tmp_path / "m.skops", provenance={"dataset": "a"})
    side = tmp_path / "m.json"
    doc = json.loads(side.read_text())
    doc["dataset"] = "something else"
    side.write_text(json.dumps(doc))
    with pytest.raises(ModelError, match="does not match the model"):
        load_model(tmp_path / "m.skops")


def test_pinned_hash_mismatch_is_refused(tmp_path: Path) -> None:
    save_model(_model(), tmp_path / "m.skops", provenance={})
    with pytest.raises(ModelError, match="config pins"):
        load_model(tmp_path / "m.skops", expected_sha256="0" * 64)


def test_foreign_files_are_refused_without_unpickling(tmp_path: Path) -> None:
    # a pickle dressed up with a matching hash and provenance: never unpickled
    save_model(_model(), tmp_path / "m.skops", provenance={})
    side = json.loads((tmp_path / "m.json").read_text())
    evil = pickle.dumps({"estimator": "x"})
    (tmp_path / "m.skops").write_bytes(evil)
    import hashlib

    side["sha256"] = hashlib.sha256(evil).hexdigest()
    (tmp_path / "m.json").write_text(json.dumps(side))
    with pytest.raises(ModelError, match="not a skops file"):
        load_model(tmp_path / "m.skops")
    # a skops file of a type we never write
    other = LogisticRegression().fit(np.random.default_rng(0).random((20, 2)), np.arange(20) % 2)
    blob = sio.dumps({"estimator": other})
    (tmp_path / "m.skops").write_bytes(blob)
    side["sha256"] = hashlib.sha256(blob).hexdigest()
    (tmp_path / "m.json").write_text(json.dumps(side))
    with pytest.raises(ModelError):
        load_model(tmp_path / "m.skops")
