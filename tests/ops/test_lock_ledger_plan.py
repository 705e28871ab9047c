"""The lock, the ledger's queries and the incremental plan, each on its own."""

from __future__ import annotations

import time
from datetime import date
from pathlib import Path

import pytest
from shapely.geometry import box

from pipeline.core.errors import ConfigError, LockHeldError
from pipeline.core.records import Aoi
from pipeline.ops.incremental import fingerprint, input_key, plan_aoi
from pipeline.state.lock import run_lock
from pipeline.state.runledger import RunLedger


def test_lock_is_exclusive_and_waits_then_gives_up(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite.lock"
    with run_lock(path):
        # flock is per open file: a second open in the same process is refused too
        with pytest.raises(LockHeldError, match="holds the lock") as exc:
            with run_lock(path):
                pass
        assert exc.value.exit_code == 3
        t0 = time.monotonic()
        with pytest.raises(LockHeldError):
            with run_lock(path, wait_s=1.0):
                pass
        assert time.monotonic() - t0 >= 1.0
    with run_lock(path):  # released on exit
        pass
    assert path.exists()  # never deleted (see run_lock)


def test_ledger_lookup_by_prefix_and_by_aoi_run_id(tmp_path: Path) -> None:
    ledger = RunLedger(tmp_path / "s.sqlite")
    for rid in ("20260101T000000Z-aaaaaa", "20260101T000000Z-bbbbbb"):
        ledger.start_run(rid, period="all")
        ledger.start_aoi(rid, "x", seq=0, period=None)
        ledger.finish_aoi(rid, "x", status="ok", aoi_run_id=f"x-all-{rid[-6:]}", inputs={"a.tif": "f1"})
        ledger.finish_run(rid, status="ok", exit_code=0)
    with pytest.raises(ConfigError, match="ambiguous"):
        ledger.get_run("20260101T")
    found = ledger.get_run("x-all-bbbbbb")
    assert found is not None and found[0]["run_id"].endswith("bbbbbb")
    assert found[1][0].inputs == {"a.tif": "f1"}
    assert ledger.get_run("nope") is None
    assert ledger.processed_inputs("x") == {"a.tif": {"f1"}}


def test_only_vector_inputs_changed_keeps_every_scene(tmp_path: Path) -> None:
    scene = tmp_path / "s.tif"
    scene.write_bytes(b"scene")
    registry = tmp_path / "reg.geojson"
    registry.write_text("{}")
    aoi = Aoi(
        aoi_id="x",
        name="x",
        designation="d",
        country="BR",
        geometry=box(0, 0, 1, 1),
        inputs={
            "scenes": [{"path": str(scene), "datetime": "2025-03-01T10:00:00"}],
            "registry": {"path": "reg.geojson", "format": "native"},
        },
    )
    processed = {input_key(scene, root=tmp_path): {fingerprint(scene)}, "reg.geojson": {"old"}}
    plan = plan_aoi(
        aoi,
        root=tmp_path,
        period=None,
        incremental=True,
        processed=processed,
        last_success="2025-06-01T02:15:00+00:00",
        today=date(2025, 6, 2),
    )
    assert plan.action == "run" and plan.new_inputs == ("reg.geojson",)
    assert plan.aoi.inputs["scenes"] == aoi.inputs["scenes"]
    # the period reaches back to the oldest scene it re-reads
    assert (plan.period.start, plan.period.end) == (date(2025, 3, 1), date(2025, 6, 2))  # type: ignore[union-attr]
