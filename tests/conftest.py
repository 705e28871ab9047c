"""Shared fixtures: the real sample data, and no network but loopback."""

from __future__ import annotations

import os
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# The default gold-mining detector is trained on first use into a private cache for this test
# session (subprocesses inherit it), never into the user's ~/.cache; set it to reuse one.
os.environ.setdefault("ASM_MODEL_CACHE", tempfile.mkdtemp(prefix="asm-model-cache-"))


def _sample_data() -> Path:
    env = os.environ.get("ASM_SAMPLE_DATA")
    return Path(env) if env else (REPO.parent / "shared" / "data")


@pytest.fixture(scope="session")
def sample_data() -> Path:
    """The real data folder (``ASM_SAMPLE_DATA`` or ``../shared/data``); must exist."""
    path = _sample_data()
    if not path.is_dir():
        pytest.fail(f"sample data not found at {path}: put ../shared beside the repo or set ASM_SAMPLE_DATA")
    return path


@pytest.fixture(scope="session")
def aoi_dir() -> Path:
    return REPO / "aoi"


_real_connect = socket.socket.connect
_LOOPBACK = ("127.", "::1", "localhost")


def _guarded_connect(self: socket.socket, address: object) -> None:
    host = address[0] if isinstance(address, tuple) else str(address)
    if self.family in (socket.AF_INET, socket.AF_INET6) and not str(host).startswith(_LOOPBACK):
        raise OSError(f"test tried to reach {address}: tests must not use the network")
    return _real_connect(self, address)  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def no_network(request: pytest.FixtureRequest) -> Iterator[None]:
    """Sockets to anything but loopback fail the test (mark ``internet`` to opt out)."""
    if request.node.get_closest_marker("internet"):
        yield
        return
    socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
    try:
        yield
    finally:
        socket.socket.connect = _real_connect  # type: ignore[method-assign]


@pytest.fixture(scope="session", autouse=True)
def default_mining_model(sample_data: Path) -> Path:
    """The default gold-mining detector, trained once per session from the real sample data
    into the session's model cache, so tests on synthetic sample folders (which hold no
    training sites) run the default detector too."""
    from pipeline.core.config import load_settings
    from pipeline.ops.detector_model import resolve_mining_model

    settings = resolve_mining_model(load_settings(None, cli={"sample_data": sample_data}))
    return Path(settings.detect.mining_model_path)


# the loopback STAC API and Sentinel Hub emulators (tests/servers/fixtures.py), for any test
pytest_plugins = ["servers.fixtures"]
