"""Model and calibration artefacts on disk: written by asm-monitor, checked on load.

A classifier is two files: ``NAME.skops`` (the fitted estimator serialised with skops,
which rebuilds objects from an allow-list of types and never runs pickle) and
``NAME.json`` (provenance: training-data fingerprint, features, classes, library versions,
metrics, code version, and the SHA-256 of the ``.skops`` file). The provenance is also
embedded in the ``.skops`` file, so editing either file alone is detected. Loading refuses
a file whose hash, provenance or types do not match, with :class:`ModelError`. For
protection against someone who rewrites both files, pin the hash in config
(``detect.model_sha256``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import zipfile
from importlib import resources
from pathlib import Path
from typing import Any

import sklearn
import skops
import skops.io as sio

from pipeline.core.atomic import write_with
from pipeline.core.errors import DataNotFoundError, ModelError
from pipeline.detect.classify import PixelClassifier
from pipeline.detect.turbidity import TurbidityCalibration

log = logging.getLogger(__name__)


def _write_atomic(path: Path, data: bytes) -> Path:
    return write_with(path, lambda tmp: tmp.write_bytes(data))


ARTEFACT_FORMAT = "asm-monitor-pixel-classifier/1"
#: Types skops may rebuild beyond its own safe defaults; anything else is refused.
ALLOWED_TYPES = frozenset({"sklearn.tree._tree.Tree", "sklearn.tree._classes.DecisionTreeClassifier"})


def _canonical(provenance: dict[str, Any]) -> str:
    return json.dumps({k: v for k, v in provenance.items() if k != "sha256"}, sort_keys=True, default=str)


def save_model(model: PixelClassifier, path: Path, *, provenance: dict[str, Any]) -> dict[str, Any]:
    """Write ``path`` (.skops) and its provenance ``path.with_suffix('.json')``.

    Returns the provenance as written, including ``sha256`` of the model file.
    """
    prov = {
        **provenance,
        "format": ARTEFACT_FORMAT,
        "features": list(model.features),
        "classes": list(model.classes),
        "sensor": model.sensor,
        "estimator": type(model.estimator).__name__,
        "sklearn_version": sklearn.__version__,
        "skops_version": skops.__version__,
    }
    blob = sio.dumps(
        {
            "estimator": model.estimator,
            "features": list(model.features),
            "classes": list(model.classes),
            "sensor": model.sensor,
            "provenance": _canonical(prov),
        }
    )
    _write_atomic(path, blob)
    prov["sha256"] = hashlib.sha256(blob).hexdigest()
    _write_atomic(
        path.with_suffix(".json"), (json.dumps(prov, indent=2, sort_keys=True, default=str) + "\n").encode()
    )
    log.info("model written to %s (sha256 %s)", path, prov["sha256"][:12])
    return prov


def read_provenance(path: Path) -> dict[str, Any]:
    """The provenance sidecar of a model file (not yet checked against the model)."""
    side = path.with_suffix(".json")
    if not path.is_file() or not side.is_file():
        raise ModelError(
            f"Model {path} or its provenance {side} is missing. Train one with `asm-monitor train`."
        )
    try:
        prov: dict[str, Any] = json.loads(side.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ModelError(
            f"Provenance {side} is not valid JSON ({exc}). Retrain with `asm-monitor train`."
        ) from exc
    return prov


def load_model(path: Path, *, expected_sha256: str | None = None) -> tuple[PixelClassifier, dict[str, Any]]:
    """Load a model written by :func:`save_model`, refusing anything else.

    Raises
    ------
    ModelError
        Missing files; SHA-256 differs from the provenance (or from ``expected_sha256``);
        provenance not written by asm-monitor or not matching the embedded copy; the file
        holds types outside the allow-list; scikit-learn version differs.
    """
    prov = read_provenance(path)
    if prov.get("format") != ARTEFACT_FORMAT:
        raise ModelError(f"{path} is not an asm-monitor model (format {prov.get('format')!r}). Retrain it.")
    blob = path.read_bytes()
    digest = hashlib.sha256(blob).hexdigest()
    if digest != prov.get("sha256"):
        raise ModelError(
            f"Model {path} has SHA-256 {digest[:12]}..., its provenance says "
            f"{str(prov.get('sha256'))[:12]}...: "
            "the file was changed after training. Retrain with `asm-monitor train`."
        )
    if expected_sha256 and digest != expected_sha256:
        raise ModelError(
            f"Model {path} has SHA-256 {digest[:12]}..., config pins {expected_sha256[:12]}...: "
            "update detect.model_sha256 or use the pinned model."
        )
    try:
        untrusted = set(sio.get_untrusted_types(data=blob))
    except (zipfile.BadZipFile, ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"{path} is not a skops file written by asm-monitor ({exc}). Refused.") from exc
    if untrusted - ALLOWED_TYPES:
        raise ModelError(
            f"Model {path} holds types {sorted(untrusted - ALLOWED_TYPES)} we never write. Refused."
        )
    if prov.get("sklearn_version") != sklearn.__version__:
        raise ModelError(
            f"Model {path} was trained with scikit-learn {prov.get('sklearn_version')}, this is "
            f"{sklearn.__version__}: retrain with `asm-monitor train`."
        )
    obj = sio.loads(blob, trusted=sorted(untrusted))
    if not isinstance(obj, dict) or obj.get("provenance") != _canonical(prov):
        raise ModelError(f"Provenance {path.with_suffix('.json')} does not match the model file. Retrain it.")
    model = PixelClassifier(
        estimator=obj["estimator"],
        features=tuple(obj["features"]),
        classes=tuple(obj["classes"]),
        sensor=str(obj["sensor"]),
    )
    return model, prov


DEFAULT_CALIBRATION = "data/turbidity_calibration.json"


def load_turbidity_calibration(path: Path | None = None) -> TurbidityCalibration:
    """A turbidity calibration (JSON from ``asm-monitor calibrate-turbidity``); default: the
    one shipped in ``pipeline/data``."""
    if path is None:
        text = resources.files("pipeline").joinpath(DEFAULT_CALIBRATION).read_text(encoding="utf-8")
    elif not path.is_file():
        raise DataNotFoundError(
            f"Turbidity calibration {path} does not exist. Run `asm-monitor calibrate-turbidity`."
        )
    else:
        text = path.read_text(encoding="utf-8")
    try:
        return TurbidityCalibration.from_dict(json.loads(text))
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(
            f"Turbidity calibration {path or DEFAULT_CALIBRATION} is malformed ({exc}). Refit it."
        ) from exc


def save_turbidity_calibration(calibration: TurbidityCalibration, path: Path) -> Path:
    """Write a calibration as JSON (atomically)."""
    return _write_atomic(path, (json.dumps(calibration.to_dict(), indent=2, sort_keys=True) + "\n").encode())
