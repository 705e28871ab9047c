"""The basin index (issue 19): entries from each AOI's run, a sortable table in a real browser,
undated detections counted in the totals but given no period column."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
from shapely.geometry import box

from pipeline.core.records import Aoi
from pipeline.report.basin import index_entry, latest_period
from pipeline.report.index import write_index


def _impact(aoi_id: str, rows: dict[str, float]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"zone_id": aoi_id, "period": p, "mined_ha": v, "amw_method_mined_ha": v / 2}
            for p, v in rows.items()
        ]
        + [{"zone_id": aoi_id, "period": "total", "mined_ha": sum(rows.values()), "amw_method_mined_ha": 0.0}]
    )


def _entry(aoi_id: str, rows: dict[str, float], flags: int, name: str | None = None) -> dict[str, Any]:
    aoi = Aoi(aoi_id=aoi_id, name=name or aoi_id.upper(), designation="indigenous territory", country="Peru",
              geometry=box(-70, -10, -69.9, -9.9), protection="indigenous")  # fmt: skip
    return index_entry(
        aoi, impact=_impact(aoi_id, rows), flags=flags, flags_by_severity={"high": flags}, flagged_ha=1.0,
        scorecards=False,
    )  # fmt: skip


def test_undated_detections_count_in_the_total_but_get_no_period_column() -> None:
    e = _entry("a", {"": 5.0, "2024": 10.0, "2025Q3": 2.0}, 1)
    assert e["mined_ha_by_period"] == {"2024": 10.0, "2025Q3": 2.0}
    assert e["mined_ha"] == 17.0
    assert latest_period([e, _entry("b", {"": 9.0}, 0)]) == "2025Q3"
    assert e["outline"]["type"] == "Polygon"


def _write(out: Path, entries: list[dict[str, Any]]) -> None:
    for e in entries:
        (out / e["aoi_id"]).mkdir(parents=True)
        (out / e["aoi_id"] / "run.json").write_text(json.dumps({"index": e, "period": "all"}))


def test_the_index_sorts_by_a_clicked_column_in_chromium(
    tmp_path: Path, offline_page: Callable[[Path], Any]
) -> None:
    entries = [
        _entry("a", {"2024": 10.0, "2025Q3": 2.0}, 7, name="<b>Alpha</b>"),
        _entry("b", {"2024": 1.0, "2025Q3": 30.0}, 12),
        _entry("c", {"2024": 100.0}, 3),
    ]
    _write(tmp_path, entries)
    page_path = write_index(tmp_path, lang="es")
    assert (tmp_path / "overview.html").is_file()
    page = offline_page(page_path)
    rows = "[...document.querySelectorAll('table.asm-index tbody tr')]"
    first = page.evaluate(f"{rows}.map(r => r.cells[0].innerText)")
    headers = page.evaluate("[...document.querySelectorAll('table.asm-index th')].map(h => h.innerText)")
    col = headers.index("Alertas")
    page.click(f"table.asm-index th:nth-child({col + 1})")
    up = page.evaluate(f"{rows}.map(r => r.cells[{col}].innerText)")
    page.click(f"table.asm-index th:nth-child({col + 1})")
    down = page.evaluate(f"{rows}.map(r => r.cells[{col}].innerText)")
    # first by new mining in the latest period (2025Q3): b (30), a (2), c (0)
    assert [t.split("\n")[0] for t in first] == ["B", "<b>Alpha</b>", "C"]  # the name shown as text
    assert up == ["3", "7", "12"] and down == ["12", "7", "3"]  # numbers sort as numbers
