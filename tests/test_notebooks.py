"""Every analyst notebook runs top to bottom on the real data, and is committed without outputs.

Notebooks execute in a fresh kernel of this interpreter with ``notebooks/`` as the working
directory (as an analyst starts Jupyter); executed copies go to the test's temp dir, never
back into the repo.
"""

from __future__ import annotations

import ast
import os
import sys
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
EXPECTED = {
    "01_quickstart.ipynb",
    "02_tune_thresholds.ipynb",
    "03_compliance_review.ipynb",
    "04_turbidity.ipynb",
    "05_protected_area_impact.ipynb",
}
#: figures each notebook must draw (PNG outputs), so a silently empty plot cell fails
MIN_FIGURES = {
    "01_quickstart.ipynb": 1,
    "02_tune_thresholds.ipynb": 3,
    "03_compliance_review.ipynb": 1,
    "04_turbidity.ipynb": 3,
    "05_protected_area_impact.ipynb": 1,
}


def test_every_notebook_is_present() -> None:
    assert {p.name for p in NOTEBOOKS} == EXPECTED


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_notebook_has_no_outputs(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name} cell {i} has outputs: strip them (nbstripout)"
            assert cell.execution_count is None, f"{path.name} cell {i} has an execution count"
        assert not cell.get("attachments"), f"{path.name} cell {i} has attachments"
    assert "widgets" not in nb.metadata, f"{path.name} stores widget state"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_defines_no_logic(path: Path) -> None:
    """Notebooks call pipeline/; functions and classes belong there."""
    nb = nbformat.read(path, as_version=4)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        source = "\n".join(line for line in cell.source.splitlines() if not line.lstrip().startswith("%"))
        for node in ast.walk(ast.parse(source)):
            assert not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda), (
                f"{path.name} cell {i} defines {type(node).__name__}: move it into pipeline/"
            )


@pytest.fixture(scope="module")
def kernel_name() -> str:
    from jupyter_client.kernelspec import KernelSpecManager

    specs = KernelSpecManager().find_kernel_specs()
    if "python3" not in specs:
        pytest.fail(f"no python3 kernelspec (have {sorted(specs)}); pip install ipykernel in {sys.prefix}")
    return "python3"


@pytest.mark.slow
@pytest.mark.timeout(150)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_executes(path: Path, kernel_name: str, sample_data: Path, tmp_path: Path) -> None:
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    before = sorted(p.name for p in (REPO / "notebooks").iterdir())
    env = os.environ | {
        "ASM_SAMPLE_DATA": str(sample_data),
        "MPLBACKEND": "module://matplotlib_inline.backend_inline",
    }
    old = os.environ.copy()
    os.environ.update(env)
    try:
        # "python" in the kernelspec's argv is replaced by this interpreter (jupyter_client)
        client = NotebookClient(
            nb,
            kernel_name=kernel_name,
            timeout=120,
            allow_errors=False,
            resources={"metadata": {"path": str(REPO / "notebooks")}},
        )
        client.execute()
    finally:
        os.environ.clear()
        os.environ.update(old)
    nbformat.write(nb, tmp_path / path.name)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    pngs = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(pngs) >= MIN_FIGURES[path.name], f"{path.name}: {len(pngs)} figures"
    if path.name == "01_quickstart.ipynb":
        html = [o["data"]["text/html"] for o in outputs if "text/html" in o.get("data", {})]
        assert any("leaflet" in h.lower() or "folium" in h.lower() for h in html), "no folium map rendered"
    # nothing was written into the repo
    assert sorted(p.name for p in (REPO / "notebooks").iterdir()) == before
