"""Issue 18 item 10: what an analyst sees in ``dir(pipeline)`` and in ``open_run``'s flags."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pipeline


def test_dir_lists_the_api_not_typing_helpers() -> None:
    names = dir(pipeline)
    assert {"detect_aoi", "impact", "open_run", "run_aoi"} <= set(names)
    assert not {"Any", "Path", "TYPE_CHECKING", "dataclass"} & set(names)


def test_open_run_gives_dates_and_parsed_lists(real_run: Path) -> None:
    flags = pipeline.open_run(real_run).flags
    seen = flags[flags["rule_id"] != "compliant"]
    assert all(isinstance(v, dt.date) for v in seen["first_seen"]) and len(seen) > 10
    assert all(isinstance(v, dt.date) for v in seen["last_seen"])
    assert all(isinstance(v, dict) for v in flags["reason_args"])
    assert all(isinstance(v, list) for v in flags["detection_ids"])
    assert all(len(v) > 0 for v in seen["detection_ids"])
