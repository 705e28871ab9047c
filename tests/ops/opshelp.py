"""Helpers for the operations tests: the CLI as a subprocess, AOI files, the ledger."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]

#: Files a run writes that must come out byte-identical on a rerun (maps and run.json carry
#: times / random element ids and are checked separately).
EXPORTS = ("flags.geojson", "flags.csv", "flags.parquet", "detections.geojson", "detections.parquet")


def write_aoi(folder: Path, aoi_id: str, *, scenes: list[dict[str, Any]], bbox: tuple[float, ...]) -> Path:
    """Write an AOI file with the given scene entries (absolute paths allowed)."""
    w, s, e, n = bbox
    doc = {
        "type": "Feature",
        "properties": {
            "aoi_id": aoi_id,
            "name": aoi_id,
            "designation": "test area",
            "country": "Brazil",
            "inputs": {"scenes": scenes},
        },
        "geometry": {"type": "Polygon", "coordinates": [[[w, n], [e, n], [e, s], [w, s], [w, n]]]},
    }
    path = folder / f"{aoi_id}.geojson"
    path.write_text(json.dumps(doc))
    return path


TROMBETAS_BBOX = (-56.3735, -1.4798, -56.3515, -1.4588)


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASM_") or k == "ASM_MODEL_CACHE"}
    env.update(extra)
    return env


def run_cli(
    args: list[str], *, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``asm-monitor ARGS`` in a fresh interpreter."""
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli.main", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env or cli_env(),
        timeout=timeout,
    )


def start_cli(args: list[str], *, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Start ``asm-monitor ARGS`` in the background, stderr+stdout to ``log``."""
    fh = open(log, "wb")
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline.cli.main", *args],
        stdout=fh,
        stderr=subprocess.STDOUT,
        cwd=REPO,
        env=env,
    )


def ledger_rows(db: Path, sql: str, *args: Any) -> list[dict[str, Any]]:
    """Rows of ``sql`` in the run ledger, read with plain sqlite3 (independent of our code)."""
    if not db.exists():
        return []
    with sqlite3.connect(db, timeout=10) as conn:
        conn.row_factory = sqlite3.Row
        try:
            return [dict(r) for r in conn.execute(sql, args)]
        except sqlite3.OperationalError:  # tables not created yet
            return []


def wait_for(predicate: Callable[[], bool], *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
