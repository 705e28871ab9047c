"""The same run on a Dask scheduler and worker started separately, as on a real cluster."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.cli.main import main

from .opshelp import EXPORTS, cli_env, wait_for

DASK = Path(sys.executable).with_name("dask")
SCHEDULER = [str(DASK), "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard"]
WORKER = [str(DASK), "worker", "--nworkers", "1", "--nthreads", "2", "--no-dashboard", "--host", "127.0.0.1"]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[str]:
    """``dask scheduler`` + one ``dask worker`` process on 127.0.0.1, random port."""
    info = tmp_path / "scheduler.json"
    env = cli_env(DASK_DISTRIBUTED__WORKER__DAEMON="False")
    logs = [open(tmp_path / f"{n}.log", "wb") for n in ("scheduler", "worker")]
    procs = [
        subprocess.Popen(
            [*SCHEDULER, "--scheduler-file", str(info)],
            stdout=logs[0],
            stderr=subprocess.STDOUT,
            env=env,
        )
    ]
    try:
        wait_for(info.exists, timeout=30, what="the scheduler file")
        procs.append(
            subprocess.Popen(
                [*WORKER, "--scheduler-file", str(info), "--local-directory", str(tmp_path / "w")],
                stdout=logs[1],
                stderr=subprocess.STDOUT,
                env=env,
            )
        )
        address = json.loads(info.read_text())["address"]
        from distributed import Client

        with Client(address, timeout=30) as client:
            client.wait_for_workers(1, timeout=30)
        yield address
    finally:
        for p in reversed(procs):
            p.terminate()
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
        for fh in logs:
            fh.close()


def test_run_on_a_separate_scheduler_matches_local(cluster: str, sample_data: Path, tmp_path: Path) -> None:
    base = ["--sample-data", str(sample_data), "run", "--aoi", "trombetas", "--period", "2024"]
    local, remote = tmp_path / "local", tmp_path / "remote"
    assert main([*base, "--out", str(local), "--scheduler", "threads"]) == 0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main([*base, "--out", str(remote), "--scheduler", cluster]) == 0
    # graphs carry paths and parameters, not arrays or models (distributed warns above 10 MB)
    assert not [w for w in caught if "large graph" in str(w.message).lower()]

    for name in EXPORTS:
        assert (remote / "trombetas" / name).read_bytes() == (local / "trombetas" / name).read_bytes(), name
    a = json.loads((remote / "trombetas" / "run.json").read_text())
    b = json.loads((local / "trombetas" / "run.json").read_text())
    assert a["run_id"] == b["run_id"] and a["evidence"] == b["evidence"]

    from distributed import Client

    with Client(cluster, timeout=30) as client:
        # the work really ran on the worker process, not in this one
        prefixes = client.run_on_scheduler(lambda dask_scheduler: sorted(dask_scheduler.task_prefixes))
        worker_pids = set(client.run(os.getpid).values())
        # and the worker got the GDAL environment from the run's plugin
        env = client.run(lambda: os.environ.get("GDAL_DISABLE_READDIR_ON_OPEN"))
    assert any(k in p for p in prefixes for k in ("ndvi", "bsi", "classify", "open_rasterio")), prefixes
    assert os.getpid() not in worker_pids
    assert set(env.values()) == {"EMPTY_DIR"}
