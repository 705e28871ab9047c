"""pytest fixtures for the loopback service emulators (usable as a ``pytest_plugins`` module).

Register them for the whole suite with ``pytest_plugins = ["servers.fixtures"]`` in
``tests/conftest.py`` (``tests/`` is on ``sys.path`` there, so the package imports as
``servers``); tests under ``tests/servers/`` get them from its own conftest already.

Each server starts empty (nothing published) so a test says which scenes exist on which
"night"; it stops at teardown, and the teardown fails the test if the emulator itself raised
while handling a request (``server.errors``), so an emulator bug never passes as a client bug.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .scenes import SceneLibrary, load_library, sample_data_dir
from .sentinelhub import SentinelHubServer
from .stac_api import StacApiServer


@pytest.fixture(scope="session")
def gold_patches() -> SceneLibrary:
    """The 575 two-date gold-mine sites of ``imagery/gold_mining_patches`` as scenes."""
    folder = sample_data_dir() / "imagery" / "gold_mining_patches"
    if not (folder / "patches.csv").is_file():
        pytest.fail(f"{folder}/patches.csv not found: put ../shared beside the repo or set ASM_SAMPLE_DATA")
    return load_library(folder)


def _fail_on_emulator_errors(server: StacApiServer | SentinelHubServer) -> None:
    errors = server.errors + (server.assets.errors if isinstance(server, StacApiServer) else [])
    if errors:
        pytest.fail(f"the {server.name} emulator raised while serving:\n" + "\n".join(errors), pytrace=False)


@pytest.fixture
def stac_api(gold_patches: SceneLibrary, tmp_path: Path) -> Iterator[StacApiServer]:
    """A running STAC API on 127.0.0.1 (``.url``, ``.publish``, ``.requests``, ``.fail_next``)."""
    server = StacApiServer(gold_patches, asset_dir=tmp_path / "stac-assets")
    with server:
        yield server
    _fail_on_emulator_errors(server)


@pytest.fixture
def sentinelhub_api(
    gold_patches: SceneLibrary, monkeypatch: pytest.MonkeyPatch
) -> Iterator[SentinelHubServer]:
    """A running Sentinel Hub emulator on 127.0.0.1 (``.url``, ``.token_url``, ``.config()``, ...).

    oauthlib refuses a plain-http token URL unless ``OAUTHLIB_INSECURE_TRANSPORT`` is set; it is
    set for the test only. sentinelhub-py caches OAuth sessions per (client id, base URL) for the
    whole process; the cache is cleared after each test so a later server on a reused port
    never sees a stale token.
    """
    from sentinelhub import SentinelHubDownloadClient

    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    server = SentinelHubServer(gold_patches)
    try:
        with server:
            yield server
    finally:
        SentinelHubDownloadClient.clear_cache()
    _fail_on_emulator_errors(server)
