"""Case 4 (remote services): what tests/ingest and tests/report do not already cover.

Sentinel Hub answering with a truncated body; a webhook that answers 500 then 200, or too
slowly; an SMTP server refusing connections then `asm-monitor alerts --retry`.
"""

from __future__ import annotations

import json
import sqlite3
import time
from email import message_from_bytes
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pytest
from shapely.geometry import Point

from pipeline.cli.main import main
from pipeline.comply.flags import FLAG_COLUMNS
from pipeline.core.config import IngestParams, Secret, Settings
from pipeline.core.periods import parse_period
from pipeline.ingest.aoi import load_aoi
from pipeline.ingest.sentinelhub import SentinelHubSource, SentinelHubUnavailableError
from pipeline.report.alerts import alert_payloads, write_outbox
from pipeline.report.delivery import deliver

from .relhelp import SMTP_PASSWORD, WEBHOOK_SECRET, Mailbox, Receiver, free_port, start_smtp

pytestmark = [
    pytest.mark.filterwarnings("ignore:Download rate limit hit"),
    pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS"),
]

BANDS = ["B04", "B08"]
PERIOD = parse_period("2020-01/2020-12")


def _source(base: str, cache: Path) -> SentinelHubSource:
    params = IngestParams(
        sh_base_url=base,
        sh_token_url=f"{base}/oauth/token",
        cache_dir=cache,
        sh_max_px=100,
        sh_retry_sleep_s=0.05,
        sh_max_attempts=3,
        sh_timeout_s=5.0,
        sh_threads=2,
    )
    return SentinelHubSource(params, client_id=Secret("c"), client_secret=Secret("s"))


def test_sentinelhub_truncated_body_is_refetched_then_reported(
    sh_server: Any, aoi_dir: Path, sample_data: Path, tmp_path: Path
) -> None:
    base, state = sh_server
    aoi = load_aoi(aoi_dir / "trombetas.geojson", sample_data=sample_data)
    clean = _source(base, tmp_path / "clean").load(aoi, PERIOD, bands=BANDS)["B08"].values
    n_requests = state.hits["/api/v1/process"]
    # one answer cut in half: retried, and the cube is the same as without the fault
    state.truncate = 1
    got = _source(base, tmp_path / "once").load(aoi, PERIOD, bands=BANDS)["B08"].values
    np.testing.assert_array_equal(got, clean)
    assert state.hits["/api/v1/process"] == 2 * n_requests + 1
    # every answer cut: a clear error, and nothing half-written left in the cache
    state.truncate = 10_000
    with pytest.raises(
        SentinelHubUnavailableError, match=r"process request.*after every retry.*Run again later"
    ):
        _source(base, tmp_path / "always").load(aoi, PERIOD, bands=BANDS)
    cached = [p for p in (tmp_path / "always").rglob("*") if p.is_file()]
    assert not [p for p in cached if p.suffix in {".tif", ".tiff", ".tmp"}]


def test_sentinelhub_429_waits_the_retry_after_it_was_told(
    sh_server: Any, aoi_dir: Path, sample_data: Path, tmp_path: Path
) -> None:
    """tests/ingest counts the retries; here the wait itself: Retry-After (ms, as Sentinel
    Hub sends it) of 700 ms against a configured retry sleep of 50 ms."""
    base, state = sh_server
    aoi = load_aoi(aoi_dir / "trombetas.geojson", sample_data=sample_data)
    state.retry_after_ms = 700
    state.plan["/api/v1/catalog/1.0.0/search"] = [429]
    cube = _source(base, tmp_path).load(aoi, PERIOD, bands=BANDS)
    assert cube.sizes["time"] == 2
    hits = [t for path, t in state.times if path == "/api/v1/catalog/1.0.0/search"]
    assert len(hits) == 2 and hits[1] - hits[0] >= 0.7


# ---- alerts ------------------------------------------------------------------------


def _flag(fid: str, rule: str, sev: str, lon: float) -> dict[str, object]:
    return {
        "flag_id": fid,
        "rule_id": rule,
        "rule_version": "1",
        "rulebook_version": "test",
        "severity": sev,
        "status": "new",
        "aoi_id": "rel-aoi",
        "detection_ids": "d1",
        "area_ha": 5.0,
        "first_seen": "2024-12-31",
        "last_seen": "2024-12-31",
        "periods": "2024",
        "reason": f"5 ha of mining ({fid})",
        "lon": lon,
        "lat": 1.0,
        "run_id": "rel-run",
        "geometry": Point(lon, 1.0).buffer(0.002),
    }


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """OUT/rel-aoi with an outbox of 3 alerts, as a run leaves it."""
    rows = [
        _flag("bbbb000000000001", "unregistered_mining", "high", -51.6),
        _flag("bbbb000000000002", "mining_in_protected_area", "high", -51.7),
        _flag("bbbb000000000003", "clearing_outside_licence", "medium", -51.8),
    ]
    frame = gpd.GeoDataFrame(rows, geometry="geometry", crs=4326)
    flags = gpd.GeoDataFrame(
        frame.reindex(columns=[*FLAG_COLUMNS, "geometry"]), geometry="geometry", crs=4326
    )
    run = tmp_path / "out" / "rel-aoi"
    write_outbox(
        alert_payloads(flags, map_link="rel-aoi/map.html", aoi_name="Rel"), run / "alerts" / "outbox"
    )
    (run / "run.json").write_text(json.dumps({"aoi_id": "rel-aoi", "run_id": "rel-run"}))
    return run


def _outbox(run: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((run / "alerts" / "outbox").glob("*.json"))}


def _settings(tmp_path: Path, **alerts: Any) -> Settings:
    base = {"backoff_s": 0.01, "backoff_max_s": 0.02, "max_attempts": 3, "timeout_s": 0.5}
    return Settings().with_overrides(
        {"state_db": str(tmp_path / "state.sqlite"), "alerts": {**base, **alerts}}
    )


def _states(tmp_path: Path) -> dict[str, int]:
    with sqlite3.connect(tmp_path / "state.sqlite") as con:
        return dict(con.execute("SELECT state, COUNT(*) FROM alert_delivery GROUP BY state").fetchall())


def test_webhook_500_then_200_delivers_each_alert_exactly_once(
    run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ASM_WEBHOOK_SECRET", WEBHOOK_SECRET)
    outbox = _outbox(run_dir)
    recv = Receiver(script=[500, 500])
    try:
        subs = [{"name": "ngo", "webhook_url": recv.url, "min_severity": "info"}]
        report = deliver(run_dir / "alerts" / "outbox", settings=_settings(tmp_path, subscriptions=subs))
        again = deliver(run_dir / "alerts" / "outbox", settings=_settings(tmp_path, subscriptions=subs))
    finally:
        recv.close()
    assert (report.delivered, report.pending, report.failed) == (3, 0, 0)
    assert again.delivered == 0 and again.already_delivered == 3
    assert recv.requests == 5  # 2 x 500 then one 2xx per alert, nothing sent twice
    assert len(recv.deliveries) == 3 == len(set(recv.deliveries))
    assert {d["data"]["alert_id"] for d in recv.accepted.values()} == {n[:-5] for n in outbox}
    assert _states(tmp_path) == {"delivered": 3} and _outbox(run_dir) == outbox


def test_slow_webhook_times_out_and_the_retry_reuses_the_message_id(
    run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A receiver slower than ``timeout_s``: the sender gives up, the alert stays pending
    and is sent again under the same ``webhook-id``, so a receiver that dedupes on it (as
    Standard Webhooks asks) records every alert once."""
    monkeypatch.setenv("ASM_WEBHOOK_SECRET", WEBHOOK_SECRET)
    recv = Receiver(script=["slow"], stall_s=1.2)
    try:
        subs = [{"name": "ngo", "webhook_url": recv.url, "min_severity": "info"}]
        report = deliver(
            run_dir / "alerts" / "outbox", settings=_settings(tmp_path, subscriptions=subs, timeout_s=0.4)
        )
        deadline = time.monotonic() + 10
        while len(recv.deliveries) < 4 and time.monotonic() < deadline:
            time.sleep(0.05)  # the stalled request finishes on the receiver after the sender gave up
    finally:
        recv.close()
    assert (report.delivered, report.pending, report.failed) == (3, 0, 0)
    assert recv.requests == 4  # the stalled one once more, the others once
    assert len(recv.accepted) == 3 == len(set(recv.deliveries))
    # the only repeat is the timed-out message, under the same webhook-id
    assert len(recv.deliveries) == 4 and recv.deliveries.count(recv.deliveries[0]) == 2
    assert _states(tmp_path) == {"delivered": 3}


def test_smtp_refusing_connections_keeps_alerts_then_alerts_retry_sends_them(
    run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ASM_SMTP_PASSWORD", SMTP_PASSWORD)
    outbox = _outbox(run_dir)
    port = free_port()  # nobody listening: connection refused
    cfg = tmp_path / "asm.toml"
    cfg.write_text(
        f'state_db = "{tmp_path / "state.sqlite"}"\n[alerts]\nbackoff_s = 0.01\nbackoff_max_s = 0.02\n'
        f'max_attempts = 2\ntimeout_s = 2.0\nsmtp_host = "127.0.0.1"\nsmtp_port = {port}\n'
        'smtp_starttls = false\nsmtp_user = "asm"\n'
        '[[alerts.subscriptions]]\nname = "ngo"\nemail = ["alerts@ngo.example"]\nmin_severity = "info"\n'
    )
    argv = ["--config", str(cfg), "alerts", "--run", str(run_dir)]
    assert main(argv) == 1
    out = capsys.readouterr().out
    assert "still pending 3" in out and "SMTP" in out and "delivered 0" in out
    assert _outbox(run_dir) == outbox and _states(tmp_path) == {"pending": 3}

    box = Mailbox()
    ctl = start_smtp(box, port)
    try:
        assert main([*argv, "--retry"]) == 0
        assert "delivered 3, still pending 0" in capsys.readouterr().out
        assert main([*argv, "--retry"]) == 0  # sent once: a second pass sends nothing
        assert "delivered 0" in capsys.readouterr().out
    finally:
        ctl.stop()
    assert box.logins == [("asm", SMTP_PASSWORD)] * len(box.logins) and len(box.messages) == 3
    ids = {message_from_bytes(m)["X-ASM-Alert-Ids"].strip() for m in box.messages}
    assert ids == {n[:-5] for n in outbox}
    assert _outbox(run_dir) == outbox and _states(tmp_path) == {"delivered": 3}
