"""Scenario: `asm-monitor run --all` nightly over real gold-mine sites served by the STAC API and
the Sentinel Hub emulators (tests/servers), with the source chosen by ASM_* variables.

The AOI (a protected area, so mining inside raises ``mining_in_protected_area``) is a box
around gm0622 (natural change) and gm0626, gm0637, gm0642 (mining) of
``imagery/gold_mining_patches`` in Suriname; the box holds eight labelled sites (five mining,
three natural change), all served. Night 1 serves only the before (t0) scenes, night 2 adds the
after (t1) scenes, night 3 serves nothing new.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

import pytest
from servers.scenes import SceneLibrary
from servers.sentinelhub import SentinelHubServer
from servers.stac_api import StacApiServer
from shapely.geometry import Point, box
from shapely.ops import unary_union

from .opshelp import run_cli

CORNERS = ("gm0622", "gm0626", "gm0637", "gm0642")


def _box(library: SceneLibrary) -> tuple[float, float, float, float]:
    outline = unary_union([library.get(s, "t0").footprint for s in CORNERS])
    w, s, e, n = outline.buffer(0.01).bounds
    return w, s, e, n


def _sites(library: SceneLibrary) -> dict[str, bool]:
    """Every site inside the AOI box -> its label (True = mining emergence)."""
    with (library.folder / "patches.csv").open(encoding="utf-8") as fh:
        labels = {r["sample_id"]: r["mining"] == "1" for r in csv.DictReader(fh)}
    area = box(*_box(library))
    return {s: labels[s] for s in library.sample_ids if library.get(s, "t0").footprint.intersects(area)}


def _write_aoi(folder: Path, library: SceneLibrary) -> Path:
    w, s, e, n = _box(library)
    doc = {
        "type": "Feature",
        "properties": {
            "aoi_id": "suriname-sites",
            "name": "Suriname gold-mine sites",
            "designation": "reserve",
            "country": "Suriname",
            "protected": True,
            "inputs": {},
        },
        "geometry": {"type": "Polygon", "coordinates": [[[w, n], [e, n], [e, s], [w, s], [w, n]]]},
    }
    folder.mkdir()
    path = folder / "suriname-sites.geojson"
    path.write_text(json.dumps(doc))
    return path


def _alerts(out: Path) -> dict[str, dict[str, Any]]:
    return {p.name: json.loads(p.read_text()) for p in sorted(out.glob("*/alerts/outbox/*.json"))}


def _geometry(alert: dict[str, Any]) -> Any:
    """Where the alert says the flag is: its ``lon`` / ``lat`` (EPSG:4326)."""
    if alert.get("lon") is None or alert.get("lat") is None:
        return None
    return Point(float(alert["lon"]), float(alert["lat"]))


def _nights(
    env: dict[str, str], server: Any, library: SceneLibrary, tmp_path: Path
) -> list[dict[str, dict[str, Any]]]:
    """Run three nights; the alerts present after each."""
    sites = list(_sites(library))
    out = tmp_path / "out"
    argv = ["run", "--all", "--out", str(out), "--scheduler", "synchronous"]
    seen = []
    for night, dates in enumerate(({"t0"}, {"t1"}, set()), start=1):
        if dates:
            server.publish(sites, dates=dates)
        proc = run_cli(argv, env=env, timeout=600)
        assert proc.returncode == 0, f"night {night}:\n{proc.stdout}\n{proc.stderr}"
        seen.append(_alerts(out))
    return seen


def _check(nights: list[dict[str, dict[str, Any]]], library: SceneLibrary, source: str) -> None:
    one, two, three = nights
    assert one == {}, f"{source} night 1 (before scenes only) raised alerts: {list(one)}"
    new = {k: v for k, v in two.items() if k not in one}
    assert new, f"{source} night 2 raised no alert"
    labels = _sites(library)
    mining = {s: library.get(s, "t1").footprint for s, is_mining in labels.items() if is_mining}
    natural = unary_union(
        [library.get(s, "t1").footprint for s, is_mining in labels.items() if not is_mining]
    )
    hit_sites = []
    for name, alert in new.items():
        geom = _geometry(alert)
        assert geom is not None, f"alert {name} carries no geometry"
        on = [s for s, fp in mining.items() if fp.buffer(0.001).intersects(geom)]
        assert on, f"{source}: alert {name} lies on no labelled mining site"
        assert not natural.intersects(geom)
        hit_sites += on
    assert len(hit_sites) == len(set(hit_sites)), f"{source}: a site alerted twice: {hit_sites}"
    assert three == two, f"{source} night 3 (nothing new) changed the alerts"
    counts = [len(one), len(new), len(three) - len(two)]
    print(
        f"{source}: alerts per night {counts}; alerted sites {sorted(hit_sites)} of mining {sorted(mining)}"
    )


def _base_env(tmp_path: Path, sample_data: Path, aoi_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASM_") or k == "ASM_MODEL_CACHE"}
    env.update(
        ASM_SAMPLE_DATA=str(sample_data),
        ASM_AOI_DIR=str(aoi_dir),
        ASM_MODEL_CACHE=os.environ["ASM_MODEL_CACHE"],
        ASM_INGEST__CACHE_DIR=str(tmp_path / "cache"),
    )
    return env


@pytest.mark.timeout(1200)
def test_stac_nights(
    stac_api: StacApiServer, gold_patches: SceneLibrary, sample_data: Path, tmp_path: Path
) -> None:
    aois = tmp_path / "aoi"
    _write_aoi(aois, gold_patches)
    env = _base_env(tmp_path, sample_data, aois)
    env.update(ASM_INGEST__SOURCE="stac", ASM_INGEST__STAC_URL=stac_api.url)
    _check(_nights(env, stac_api, gold_patches, tmp_path), gold_patches, "stac")


@pytest.mark.timeout(1200)
def test_sentinelhub_nights(
    sentinelhub_api: SentinelHubServer, gold_patches: SceneLibrary, sample_data: Path, tmp_path: Path
) -> None:
    aois = tmp_path / "aoi"
    _write_aoi(aois, gold_patches)
    env = _base_env(tmp_path, sample_data, aois)
    env.update(
        ASM_INGEST__SOURCE="sentinelhub",
        ASM_INGEST__SH_BASE_URL=sentinelhub_api.url,
        ASM_INGEST__SH_TOKEN_URL=sentinelhub_api.token_url,
        ASM_INGEST__SH_RETRY_SLEEP_S="0",
        ASM_SH_CLIENT_ID=sentinelhub_api.client_id,
        ASM_SH_CLIENT_SECRET=sentinelhub_api.client_secret,
        OAUTHLIB_INSECURE_TRANSPORT="1",
    )
    _check(_nights(env, sentinelhub_api, gold_patches, tmp_path), gold_patches, "sentinelhub")
