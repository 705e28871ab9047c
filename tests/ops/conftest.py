"""Fixtures of the operations tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


@pytest.fixture
def ops_aois(tmp_path: Path, aoi_dir: Path) -> Path:
    """A private AOI folder with trombetas (imagery) and amapa-gold (AMW + registry)."""
    folder = tmp_path / "aoi"
    folder.mkdir()
    for name in ("trombetas", "amapa-gold"):
        shutil.copy(aoi_dir / f"{name}.geojson", folder / f"{name}.geojson")
    return folder
