"""The house rules, read from the source: layers import only downwards, no cycles, no
borrowed private names, and no module or function past the size a newcomer can read.

Every ``import`` counts, wherever it stands (module level, inside a function, under
``TYPE_CHECKING``): a function-local import is no way around a rule.
"""

from __future__ import annotations

import ast
import itertools
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "pipeline"

#: What each layer may import besides itself. ``state`` persists records that ``comply``
#: (flag lifecycles) and ``detect`` (fitted models) define, so it may read their types.
ALLOWED: dict[str, frozenset[str]] = {
    "core": frozenset(),
    "ingest": frozenset({"core"}),
    "detect": frozenset({"core"}),
    "comply": frozenset({"core"}),
    "state": frozenset({"core", "comply", "detect"}),
    "report": frozenset({"core", "comply"}),
    "ops": frozenset({"core", "ingest", "detect", "comply", "state", "report"}),
    "analyst": frozenset({"core", "ingest", "detect", "comply", "state", "report", "ops"}),
    "cli": frozenset({"core", "ingest", "detect", "comply", "state", "report", "ops", "analyst"}),
    # the package itself re-exports the analyst API (lazily)
    "": frozenset({"core", "analyst", "ops", "ingest"}),
}

MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80
#: A function this long says why in a comment on the line above it, starting with this tag.
LONG_OK = "# long:"


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    names: tuple[str, ...]
    line: int


def module_name(path: Path, root: Path) -> str:
    rel = path.relative_to(root.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve(module: str, node: ast.ImportFrom, *, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def imports_of(path: Path, root: Path) -> list[Edge]:
    module = module_name(path, root)
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    edges = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            edges += [
                Edge(module, a.name, (), node.lineno) for a in node.names if a.name.startswith("pipeline")
            ]
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, node, is_package=path.name == "__init__.py")
            if not target.startswith("pipeline"):
                continue
            names = tuple(a.name for a in node.names)
            # `from pipeline.analyst import api` names a module, not an attribute
            submodules = [n for n in names if (root.parent / target.replace(".", "/") / f"{n}.py").is_file()]
            edges += [Edge(module, f"{target}.{n}", (), node.lineno) for n in submodules]
            rest = tuple(n for n in names if n not in submodules)
            if rest or not submodules:
                edges.append(Edge(module, target, rest, node.lineno))
    return edges


def layer_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def all_edges(root: Path) -> list[Edge]:
    return [e for p in sorted(root.rglob("*.py")) for e in imports_of(p, root)]


def layer_violations(edges: list[Edge]) -> list[str]:
    out = []
    for e in edges:
        src, dst = layer_of(e.source), layer_of(e.target)
        if dst and src != dst and dst not in ALLOWED.get(src, frozenset()):
            out.append(f"{e.source}:{e.line} imports {e.target} ({src or 'pipeline'} -> {dst})")
    return out


def cycles(edges: list[Edge]) -> list[list[str]]:
    graph: dict[str, set[str]] = {}
    for e in edges:
        if e.source != e.target:
            graph.setdefault(e.source, set()).add(e.target)
    found, state = [], dict.fromkeys(graph, 0)

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt, 0) == 1:
                found.append([*stack[stack.index(nxt) :], nxt])
            elif state.get(nxt, 0) == 0 and nxt in graph:
                visit(nxt, stack)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if state[node] == 0:
            visit(node, [])
    # the package __init__ re-exports lazily from its children: a parent is not a cycle
    return [c for c in found if not any(b.startswith(a + ".") for a, b in itertools.pairwise(c))]


def private_imports(edges: list[Edge]) -> list[str]:
    return [
        f"{e.source}:{e.line} imports {n} from {e.target}"
        for e in edges
        for n in e.names
        if n.startswith("_") and not n.startswith("__") and e.target != e.source
    ]


def long_functions(root: Path) -> list[str]:
    out = []
    for path in sorted(root.rglob("*.py")):
        lines = path.read_text(encoding="utf-8").splitlines()
        for node in ast.walk(ast.parse("\n".join(lines))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                length = (node.end_lineno or node.lineno) - first + 1
                said_why = first >= 2 and lines[first - 2].strip().startswith(LONG_OK)
                if length > MAX_FUNCTION_LINES and not said_why:
                    out.append(f"{path.relative_to(root.parent)}:{node.lineno} {node.name} ({length} lines)")
    return out


def long_modules(root: Path) -> list[str]:
    return [
        f"{p.relative_to(root.parent)} ({n} lines)"
        for p in sorted(root.rglob("*.py"))
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    ]


def test_layers_import_only_downwards() -> None:
    assert layer_violations(all_edges(ROOT)) == []


def test_no_import_cycles() -> None:
    assert cycles(all_edges(ROOT)) == []


def test_no_private_names_across_modules() -> None:
    assert private_imports(all_edges(ROOT)) == []


def test_no_module_over_400_lines() -> None:
    assert long_modules(ROOT) == []


def test_no_function_over_80_lines_without_a_reason() -> None:
    assert long_functions(ROOT) == []


def test_every_layer_is_a_package_of_the_house() -> None:
    layers = {p.name for p in ROOT.iterdir() if p.is_dir() and (p / "__init__.py").is_file()}
    assert layers == set(ALLOWED) - {""}
    loose = sorted(p.name for p in ROOT.glob("*.py") if p.name != "__init__.py")
    assert loose == [], "modules belong in a layer's folder"


# -- the checks themselves must be able to fail ---------------------------------------------


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "pipeline"
    for name, text in {"__init__.py": "", **files}.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        (path.parent / "__init__.py").touch()
        path.write_text(text)
    return root


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        # detect reaching up into report, even inside a function
        (
            {"detect/x.py": "def f():\n    from pipeline.report.map import write_map\n", "report/map.py": ""},
            ["pipeline.detect.x:2 imports pipeline.report.map (detect -> report)"],
        ),
        ({"core/a.py": "import pipeline.ingest.aoi\n", "ingest/aoi.py": ""}, ["core -> ingest"]),
        ({"report/a.py": "from pipeline.ops import run\n", "ops/run.py": ""}, ["report -> ops"]),
        ({"comply/a.py": "from ..state.audit import x\n", "state/audit.py": ""}, ["comply -> state"]),
    ],
)
def test_a_wrong_import_is_caught(tmp_path: Path, files: dict[str, str], expected: list[str]) -> None:
    found = layer_violations(all_edges(_tree(tmp_path, files)))
    assert len(found) == len(expected)
    assert all(want in got for want, got in zip(expected, found, strict=True))


def test_a_cycle_and_a_private_import_are_caught(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "ops/a.py": "from pipeline.ops.b import _helper\n",
            "ops/b.py": "def g():\n    from pipeline.ops import a\n",
        },
    )
    edges = all_edges(root)
    assert cycles(edges) == [["pipeline.ops.a", "pipeline.ops.b", "pipeline.ops.a"]]
    assert private_imports(edges) == ["pipeline.ops.a:1 imports _helper from pipeline.ops.b"]


def test_a_long_function_needs_its_reason(tmp_path: Path) -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(85))
    root = _tree(
        tmp_path, {"core/a.py": f"def f():\n{body}\n", "core/b.py": f"{LONG_OK} why\ndef g():\n{body}\n"}
    )
    assert long_functions(root) == ["pipeline/core/a.py:1 f (86 lines)"]
