"""The emulator fixtures for the tests in this folder (see fixtures.py to use them elsewhere)."""

from __future__ import annotations

from .fixtures import gold_patches, sentinelhub_api, stac_api

__all__ = ["gold_patches", "sentinelhub_api", "stac_api"]
