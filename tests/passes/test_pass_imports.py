"""The passes read as a line: no import cycle among them, and the map algebra under them.

Parsed from the source (AST), so an import inside a function counts too: a lazy import hides a
cycle from Python but not from a reader.
"""

import ast
import graphlib
from pathlib import Path

import emsdeploy

ROOT = Path(emsdeploy.__file__).parent


def _imports(path: Path, package: str) -> set[str]:
    """Every emsdeploy module ``path`` imports (``from x import y`` counted as ``x`` and ``x.y``)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            found.add(base)
            found |= {f"{base}.{a.name}" for a in node.names}
    return {m for m in found if m == "emsdeploy" or m.startswith("emsdeploy.")}


def test_passes_form_no_import_cycle():
    mods = {p.stem: p for p in (ROOT / "passes").glob("*.py") if p.stem != "__init__"}
    graph = {
        name: {
            m.rsplit(".", 1)[1] for m in _imports(p, "emsdeploy.passes") if m.rsplit(".", 1)[0] == "emsdeploy.passes"
        }
        & set(mods)
        for name, p in mods.items()
    }
    assert graph["quantize"] >= {"expand_fanin"}  # the pass before it, downward
    assert "quantize" not in graph["expand_fanin"]
    order = list(graphlib.TopologicalSorter(graph).static_order())  # raises CycleError on a cycle
    assert order.index("expand_fanin") < order.index("quantize")


def test_the_map_algebra_stands_on_the_ir_floor():
    used = _imports(ROOT / "ir" / "linear.py", "emsdeploy.ir")
    assert used, "the AST walk found no emsdeploy import at all"
    assert not {m for m in used if m.startswith("emsdeploy.passes")}
    assert {m.split(".")[1] for m in used if m != "emsdeploy"} <= {"ir", "errors"}  # DESIGN.md §1: the floor
