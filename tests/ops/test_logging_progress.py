"""JSON log lines, the dashboard line of a LocalCluster, progress bars only when asked or on a TTY."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import struct
import subprocess
import sys
import termios
from pathlib import Path

from pipeline.ops.cluster import dashboard_available

from .opshelp import REPO, cli_env, run_cli


def test_json_logs_on_a_local_cluster(tmp_path: Path, sample_data: Path) -> None:
    args = ["--log-format", "json", "--sample-data", str(sample_data), "run", "--aoi", "trombetas"]
    done = run_cli(
        [*args, "--period", "2024", "--out", str(tmp_path), "--scheduler", "local", "--workers", "1"]
    )
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stderr.splitlines() if line.strip()]  # every line is JSON
    assert lines and all({"time", "level", "logger", "message"} <= set(d) for d in lines)
    assert all(d["time"].endswith("+00:00") for d in lines)
    run_ids = {d.get("run_id") for d in lines if d["logger"].startswith("pipeline")}
    assert len(run_ids - {None}) == 1
    aoi_lines = [d for d in lines if d.get("aoi_id") == "trombetas"]
    assert any("AOI trombetas ok" in d["message"] for d in aoi_lines)
    messages = "\n".join(d["message"] for d in lines)
    assert "Dask LocalCluster: 1 workers x 1 threads" in messages
    if dashboard_available():
        assert "Dask dashboard: http" in messages
    else:
        assert "Dask dashboard not available: install bokeh" in messages
    assert "AOIs:" not in done.stderr  # stderr is a pipe, not a terminal: no progress bar


def test_progress_bar_on_a_terminal_only(tmp_path: Path, sample_data: Path) -> None:
    args = ["--sample-data", str(sample_data), "run", "--aoi", "trombetas", "--period", "2024"]
    args += ["--scheduler", "threads", "--force"]
    forced = run_cli([*args, "--out", str(tmp_path / "a"), "--progress"])
    assert forced.returncode == 0 and "AOIs: 100%" in forced.stderr

    # a real pseudo-terminal on stderr: the bar appears without being asked for
    leader, follower = pty.openpty()
    # a terminal of 24 x 100 characters (a fresh pty is 0 x 0, where tqdm draws nothing)
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline.cli.main", *args, "--out", str(tmp_path / "b")],
        stdout=subprocess.DEVNULL,
        stderr=follower,
        cwd=REPO,
        env=cli_env(),
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 4096)
        except OSError:  # the terminal closes when the process ends
            break
        if not data:
            break
        chunks.append(data)
    assert proc.wait(timeout=60) == 0
    os.close(leader)
    assert "AOIs: 100%" in b"".join(chunks).decode(errors="replace")
