"""The package version, in one place (``pyproject.toml`` carries the same number)."""

from __future__ import annotations

__version__ = "0.1.0"
