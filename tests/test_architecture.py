"""DESIGN.md §1's floors, pinned over every module's imports (parsed, not run).

The ground floor is the IR and its passes; exporters and simulators stand on it; verification
and the CLI stand on everything. An import that points down is fine, one that points up or
sideways is the kind of tangle issue 16 undid, so it fails here, naming the file, the line and
the rule. Lazy imports inside functions count the same as top-level ones: they are still
dependencies. Lava's own rule (only the Lava runtime imports it) is tests/test_lava_imports.py.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# The folders at the repository root install as subpackages of emsdeploy (pyproject package-dir).
PACKAGE_DIRS = {"emsdeploy": "emsdeploy", "models": "emsdeploy.models",
                "exporters": "emsdeploy.exporters", "simulators": "emsdeploy.simulators"}


@dataclass(frozen=True)
class Import:
    """One ``import`` statement's target, absolute, as written in ``path`` at ``line``."""

    path: Path
    line: int
    target: str


def module_name(path: Path) -> str:
    """The dotted name ``path`` installs as (``models/yolo.py`` -> ``emsdeploy.models.yolo``)."""
    rel = path.relative_to(REPO)
    parts = [PACKAGE_DIRS[rel.parts[0]], *rel.parts[1:-1]]
    if rel.stem != "__init__":
        parts.append(rel.stem)
    return ".".join(parts)


def package_modules() -> list[Path]:
    """Every Python file of the installed packages."""
    return sorted(p for folder in PACKAGE_DIRS for p in (REPO / folder).rglob("*.py"))


def imports_of(path: Path, source: str | None = None) -> list[Import]:
    """Every import in the file, relative ones resolved, function-level ones included."""
    tree = ast.parse(source if source is not None else path.read_text(encoding="utf-8"))
    name = module_name(path)
    package = name if path.stem == "__init__" else name.rpartition(".")[0]
    found: list[Import] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [Import(path, node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            # `from pkg import x` records pkg.x: x may be a submodule, and pkg.x is under pkg either way.
            found += [Import(path, node.lineno, module if a.name == "*" else f"{module}.{a.name}") for a in node.names]
    return found


def _under(name: str, *prefixes: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


# What each floor may not import. models: nothing of ours but two leaf utilities it always used
# (the checked file readers / the atomic writer, and the error hierarchy).
OURS = ("emsdeploy",)
MODELS_MAY_USE = ("emsdeploy.models", "emsdeploy.fileio", "emsdeploy.errors")
TOP_FLOOR = ("emsdeploy.cli", "emsdeploy.verify")
RULES: list[tuple[str, tuple[str, ...], Callable[[str], bool]]] = [
    # (rule, the importing modules it covers, predicate on the imported name: True = forbidden)
    ("models import nothing of ours but emsdeploy.fileio and emsdeploy.errors", ("emsdeploy.models",),
     lambda t: _under(t, *OURS) and not _under(t, *MODELS_MAY_USE)),
    ("the IR and the passes import nothing from exporters, simulators, the CLI or verification",
     ("emsdeploy.ir", "emsdeploy.passes"),
     lambda t: _under(t, "emsdeploy.exporters", "emsdeploy.simulators", *TOP_FLOOR)),
    ("the IR imports nothing from the tracer or the passes (docs/ir.md)", ("emsdeploy.ir",),
     lambda t: _under(t, "emsdeploy.tracer", "emsdeploy.passes")),
    ("exporters never import simulators, the CLI or verification", ("emsdeploy.exporters",),
     lambda t: _under(t, "emsdeploy.simulators", *TOP_FLOOR)),
    ("simulators never import exporters, the CLI or verification", ("emsdeploy.simulators",),
     lambda t: _under(t, "emsdeploy.exporters", *TOP_FLOOR)),
]


def violations(found: list[Import]) -> list[str]:
    out = []
    for imp in found:
        importer = module_name(imp.path)
        for rule, covers, forbidden in RULES:
            if _under(importer, *covers) and forbidden(imp.target):
                out.append(f"{imp.path.relative_to(REPO)}:{imp.line}: imports {imp.target}: {rule}")
    return out


def test_every_import_points_down_the_floors() -> None:
    modules = package_modules()
    assert len(modules) > 100 and REPO / "emsdeploy" / "ir" / "graph.py" in modules
    found = [imp for p in modules for imp in imports_of(p)]
    problems = sorted(set(violations(found)))
    assert not problems, "\n".join(problems)


def test_models_use_exactly_the_accepted_utilities() -> None:
    """Today models/ uses emsdeploy.fileio and emsdeploy.errors, and nothing else of ours: if this
    list grows, DESIGN §1 has to say why first."""
    ours = {
        imp.target.split(".")[1]
        for p in (REPO / "models").rglob("*.py")
        for imp in imports_of(p)
        if _under(imp.target, "emsdeploy") and not _under(imp.target, "emsdeploy.models")
    }
    assert ours == {"fileio", "errors"}


def test_the_rules_catch_what_they_must() -> None:
    """Each rule fires on a planted import (relative and lazy ones too), so the test above cannot
    pass vacuously, and the names the issue-16 split adds sit on the floors their paths say."""
    cases = {
        "emsdeploy/ir/runtime.py": "def f():\n    from emsdeploy.simulators import ref_fixed\n",
        "emsdeploy/ir/linear.py": "from ..verify import chain\n",
        "emsdeploy/ir/fixed_point.py": "from emsdeploy import cli\n",
        "emsdeploy/ir/graph.py": "from ..passes.quantize import quantize\n",
        "emsdeploy/passes/expand_fanin.py": "import emsdeploy.exporters.lava.dag\n",
        "models/yolo.py": "from emsdeploy.ir import Graph\n",
        "exporters/onnx/runtime.py": "from ...simulators.base import Trace\n",
        "simulators/ref_fixed.py": "from emsdeploy.exporters.lava import dag\n",
        "exporters/lava/api.py": "from emsdeploy.verify.quantization import compare\n",
    }
    for rel, src in cases.items():
        assert violations(imports_of(REPO / rel, src)), rel
    fine = {
        "emsdeploy/ir/runtime.py": "from emsdeploy.ir.graph import Graph\nfrom .kinds import x\n",
        "emsdeploy/verify/quantization.py": "from emsdeploy.simulators import ref_fixed\nfrom emsdeploy.exporters import onnx\n",
        "emsdeploy/profiles/loader.py": "from emsdeploy.errors import EmsdeployError\n",
        "simulators/ref_fixed.py": "from emsdeploy.ir.fixed_point import maxpool\nfrom ..ir import x\n",
        "models/yolo.py": "from emsdeploy.fileio import load_npy\nfrom .layers import TdBatchNorm\nfrom emsdeploy import errors\n",
    }
    for rel, src in fine.items():
        assert not violations(imports_of(REPO / rel, src)), rel
    assert module_name(REPO / "models" / "data" / "__init__.py") == "emsdeploy.models.data"
