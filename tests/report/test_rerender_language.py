"""Issue 18 item 4: ``asm-monitor map --run ... --lang pt`` re-renders everything a reader
opens in Portuguese and keeps what the sources require on the page."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pipeline.cli.main import main
from pipeline.report.i18n import catalogue


@pytest.fixture
def rerendered(real_run: Path, tmp_path: Path, sample_data: Path) -> Path:
    out = tmp_path / "out"
    shutil.copytree(real_run.parent, out, ignore=shutil.ignore_patterns("*.sqlite*", "*.lock"))
    assert (
        main(["--sample-data", str(sample_data), "map", "--run", str(out / "amapa-gold"), "--lang", "pt"])
        == 0
    )
    return out


def test_top_index_follows_the_language_of_the_rerender(rerendered: Path) -> None:
    page = (rerendered / "index.html").read_text()
    assert "<html lang='pt'>" in page and "Abrir mapa" in page
    assert "amapa-gold/map.html" in page  # the AOIs the run listed are still there


def test_rerendered_map_keeps_the_data_attributions(rerendered: Path) -> None:
    page = (rerendered / "amapa-gold" / "map.html").read_text()
    assert "Amazon Mining Watch" in page and "ANM SIGMINE" in page


def test_licence_status_none_agrees_with_licenca() -> None:
    # "Situação da licença: nenhuma" (licença is feminine)
    assert catalogue("pt").term("licence_status", "none") == "nenhuma"
