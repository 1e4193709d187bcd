"""Lava is an optional backend (archived upstream, Python 3.10 only): only the Lava runtime may
import it. Pinned two ways: statically, over every module's imports, and by running an export."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from emsdeploy.exporters.lava._require import LAVA_MISSING
from emsdeploy.models import DEFAULT_CHECKPOINT

REPO = Path(__file__).resolve().parents[1]
LAVA_DIR = REPO / "exporters" / "lava"
PROCS_DIR = LAVA_DIR / "procs"  # Lava Process classes: imported only by the code that builds a network


def _modules() -> list[Path]:
    """Every Python file of the project but the tests (which mark what needs Lava, see conftest)."""
    skip = {".venv", ".git", "tests", "build", "demo-out"}
    skip |= {cfg.parent.name for cfg in REPO.glob("*/pyvenv.cfg")}  # a virtual environment of any name
    return [
        p
        for p in sorted(REPO.rglob("*.py"))
        if not any(part in skip or part.startswith(".venv") for part in p.relative_to(REPO).parts)
    ]


def _lava_imports(tree: ast.AST) -> list[tuple[ast.stmt, list[ast.AST]]]:
    """(import statement, its enclosing function chain) for every import of ``lava``."""
    found: list[tuple[ast.stmt, list[ast.AST]]] = []

    def names(node: ast.stmt) -> list[str]:
        if isinstance(node, ast.Import):
            return [a.name for a in node.names]
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            return [node.module]
        return []

    def walk(node: ast.AST, chain: list[ast.AST]) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)) and any(
                n == "lava" or n.startswith("lava.") for n in names(child)
            ):
                found.append((child, chain))
            inner = [*chain, child] if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else chain
            walk(child, inner)

    walk(tree, [])
    return found


def _dynamic_lava_import(tree: ast.AST) -> bool:
    """``importlib.import_module("lava...")`` or ``__import__("lava...")`` with a literal name."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            f = node.func
            fname = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
            arg = node.args[0].value
            if fname in ("import_module", "__import__") and isinstance(arg, str) and arg.split(".")[0] == "lava":
                return True
    return False


def _calls_require_lava(fn: ast.AST) -> bool:
    return any(
        isinstance(n, ast.Call) and getattr(n.func, "id", getattr(n.func, "attr", "")) == "require_lava"
        for n in ast.walk(fn)
    )


def test_lava_is_imported_only_by_the_lava_runtime():
    """Outside exporters/lava nothing imports lava; inside, module level only in procs/ (the
    Process classes), and every function that imports it calls require_lava() first."""
    modules = _modules()
    assert len(modules) > 50 and LAVA_DIR / "network.py" in modules
    problems = []
    for path in modules:
        rel = path.relative_to(REPO)
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(rel))
        if _dynamic_lava_import(tree):
            problems.append(f"{rel}: imports lava dynamically")
        for stmt, chain in _lava_imports(tree):
            where = f"{rel}:{stmt.lineno}"
            if not path.is_relative_to(LAVA_DIR):
                problems.append(f"{where}: imports lava outside exporters/lava/")
            elif not chain and not path.is_relative_to(PROCS_DIR):
                problems.append(f"{where}: module-level lava import (only exporters/lava/procs/ may)")
            elif chain and not _calls_require_lava(chain[0]):
                problems.append(f"{where}: {chain[0].name} imports lava without calling require_lava() first")  # type: ignore[attr-defined]
    assert not problems, "\n".join(problems)


def test_the_static_check_sees_what_it_must():
    """The walker finds the imports it is meant to forbid (so the test above cannot pass vacuously)."""
    src = "import lava\nfrom lava.proc import x\ndef f():\n    from lava.magma import y\nimport lavaish\n"
    found = _lava_imports(ast.parse(src))
    assert [s.lineno for s, _ in found] == [1, 2, 4]
    assert [len(c) for _, c in found] == [0, 0, 1] and not _calls_require_lava(found[2][1][0])
    assert _dynamic_lava_import(ast.parse("import importlib\nimportlib.import_module('lava.magma')"))
    assert len(_lava_imports(ast.parse((LAVA_DIR / "procs" / "processes.py").read_text()))) >= 10


def test_export_writes_a_lava_folder_without_importing_lava(tmp_path):
    """The folder is data: writing it (and loading its description) imports no lava module,
    whether or not Lava is installed in this environment."""
    out = tmp_path / "lava"
    code = (
        "import sys\n"
        "from emsdeploy.cli.main import cli\n"
        f"args = ['export', {str(DEFAULT_CHECKPOINT)!r}, '--target', 'lava', '-o', {str(out)!r}, '--input-size', '32']\n"
        "try:\n"
        "    cli.main(args, standalone_mode=False)\n"
        "finally:\n"
        "    from emsdeploy.exporters.lava import load\n"
        f"    load({str(out)!r})\n"
        "    print(sorted(m for m in sys.modules if m == 'lava' or m.startswith('lava.')))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip().splitlines()[-1] == "[]"
    assert {p.name for p in out.iterdir()} >= {"quantized.emsir", "mapping.txt", "quantization.json"}


def _pytest_without_lava(ci: str) -> subprocess.CompletedProcess:
    code = "import sys; sys.modules['lava'] = None\nimport pytest\nsys.exit(pytest.main(sys.argv[1:]))"
    node = "tests/exporters/lava/test_procs.py"  # marked lava, cheap
    env = {**os.environ, "CI": ci}
    args = [sys.executable, "-c", code, "-q", "-rs", "-p", "no:cacheprovider", "-k", "shape0", node]
    return subprocess.run(args, capture_output=True, text=True, timeout=300, cwd=REPO, env=env)


def test_lava_tests_skip_with_the_reason_or_fail_in_cis_python_310_environment():
    """conftest: a test marked lava skips with LAVA_MISSING where Lava is missing, except under CI
    (any truthy CI) on Python 3.10, where Lava must be installed."""
    r = _pytest_without_lava("")
    assert r.returncode == 0 and "1 skipped" in r.stdout and LAVA_MISSING in r.stdout, r.stdout[-2000:]
    r = _pytest_without_lava("1")
    if sys.version_info[:2] == (3, 10):
        assert r.returncode == 1 and "1 error" in r.stdout, r.stdout[-2000:]
        assert f"CI's Python 3.10 environment must have Lava: {LAVA_MISSING}" in r.stdout
    else:
        assert r.returncode == 0 and "1 skipped" in r.stdout, r.stdout[-2000:]


@pytest.mark.lava
def test_lava_imports_after_the_process_used_multiprocessing():
    """lava-nc sets the 'fork' start method at import and fails once any method is set; a
    process that used multiprocessing before (as some tests and libraries do) still imports it."""
    code = (
        "import multiprocessing as mp\n"
        "mp.Queue()\n"
        "from emsdeploy.exporters.lava.procs import conv_true_whc\n"
        "print(mp.get_start_method())\n"
        "mp.set_start_method('spawn', force=True)\n"
        "from emsdeploy.exporters.lava._require import prepare_lava_import\n"
        "prepare_lava_import()  # lava is imported: nothing to prepare\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip() == "fork"
    spawn = "import multiprocessing as mp\nmp.set_start_method('spawn')\nfrom emsdeploy.exporters.lava import procs\n"
    r = subprocess.run([sys.executable, "-c", spawn], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert r.returncode != 0 and "lava-nc runs its processes with the 'fork' start method" in r.stderr
