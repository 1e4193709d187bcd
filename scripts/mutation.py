"""Run the mutant table (scripts/mutants.toml): each mutant is put into a temporary copy of the
tree, one at a time, and the tests that should kill it are run there.

Why our own table and not a mutation tool: the claims worth guarding ("spike-exact", "bit-exact",
"refused") rest on a few comparison operators, roundings and allow-lists; a hand-written mutant
names the claim it breaks and the test that must catch it, and re-runs unchanged after other
branches merge (a mutant whose search text no longer matches fails loudly, it is never skipped).

The working tree is never edited: the tracked and untracked (not ignored) files are copied to a
temporary directory once; each mutant edits its file there, runs pytest (PYTHONPATH pointing at
the copy, no bytecode written), and the file is restored. Mutants run sequentially, each with a
timeout, so the run fits a small shared machine.

    python scripts/mutation.py                 # every mutant; writes build/mutation.md
    python scripts/mutation.py --only ID ...   # some of them
    python scripts/mutation.py --check         # only check that every search text still matches

Exit status: 0 if every mutant was killed (and the unmutated baseline passed), 1 otherwise,
2 for a table that does not apply to the tree.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]
TABLE = REPO / "scripts" / "mutants.toml"
# the installed package maps these folders under emsdeploy.* (pyproject's package-dir)
SUBPACKAGES = {"models": "models", "exporters": "exporters", "simulators": "simulators"}


@dataclass
class Mutant:
    id: str
    file: str
    search: str
    replace: str
    breaks: str
    tests: list[str]
    count: int = 1  # how many times `search` must occur (all occurrences are replaced)
    timeout: int = 0  # seconds; 0: the run's default
    result: str = ""
    seconds: float = 0.0
    detail: str = field(default="", repr=False)


def load_table(path: Path) -> list[Mutant]:
    data = tomllib.loads(path.read_text())
    mutants = [Mutant(**m) for m in data["mutant"]]
    ids = [m.id for m in mutants]
    dup = {i for i in ids if ids.count(i) > 1}
    if dup:
        raise SystemExit(f"mutation: {path}: duplicate mutant ids {sorted(dup)}")
    return mutants


def check(mutants: list[Mutant], root: Path) -> list[str]:
    """Every search text occurs exactly ``count`` times in its file; returns the problems."""
    problems = []
    for m in mutants:
        f = root / m.file
        if not f.is_file():
            problems.append(f"{m.id}: {m.file} does not exist")
            continue
        n = f.read_text().count(m.search)
        if n != m.count:
            problems.append(f"{m.id}: {m.file}: search text occurs {n} times, the table says {m.count}: {m.search!r}")
        if m.search == m.replace:
            problems.append(f"{m.id}: search and replace are the same")
    return problems


def copy_tree(dest: Path) -> Path:
    """Tracked and untracked-not-ignored files of the working tree, plus the package links."""
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, capture_output=True, check=True
    ).stdout.split(b"\0")
    tree = dest / "tree"
    for rel in filter(None, (f.decode() for f in files)):
        src = REPO / rel
        if src.is_file():
            (tree / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, tree / rel)
    for name, folder in SUBPACKAGES.items():  # emsdeploy.models etc. resolve inside the copy
        (tree / "emsdeploy" / name).symlink_to(Path("..") / folder)
    shared = (REPO.parent / "shared").resolve()
    if shared.exists():
        (dest / "shared").symlink_to(shared)  # ../shared as the tests expect it
    if (REPO / ".venv").exists():
        (tree / ".venv").symlink_to((REPO / ".venv").resolve())
    return tree


def run_tests(tree: Path, tests: list[str], timeout: int) -> tuple[str, str, float]:
    env = {
        **os.environ,
        "PYTHONPATH": str(tree),
        "PYTHONDONTWRITEBYTECODE": "1",
        "EMSDEPLOY_FIXTURES": str(tree.parent / "shared" / "fixtures" / "official"),
    }
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "--no-header", "-rN", *tests]
    t0 = time.monotonic()
    try:
        r = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout", "", time.monotonic() - t0
    dt = time.monotonic() - t0
    tail = (r.stdout + r.stderr).strip().splitlines()
    summary = tail[-1] if tail else ""
    status = {0: "passed", 1: "failed"}.get(r.returncode, f"error (pytest exit {r.returncode})")
    return status, summary, dt


def assert_copy_is_imported(tree: Path) -> None:
    """The copy, not the editable install, is what the tests import (else every mutant survives)."""
    code = (
        "import emsdeploy, emsdeploy.simulators, emsdeploy.exporters, emsdeploy.models;"
        "print(emsdeploy.__file__, emsdeploy.simulators.__file__, emsdeploy.exporters.__file__, emsdeploy.models.__file__)"
    )
    env = {**os.environ, "PYTHONPATH": str(tree), "PYTHONDONTWRITEBYTECODE": "1"}
    out = subprocess.run([sys.executable, "-c", code], cwd=tree, env=env, capture_output=True, text=True, check=True)
    for f in out.stdout.split():
        if not Path(f).resolve().is_relative_to(tree.resolve()):
            raise SystemExit(f"mutation: the copy is not what Python imports ({f}); refusing to run")


def render(mutants: list[Mutant], baseline: str) -> str:
    lines = [
        f"baseline (unmutated copy, every killing test): {baseline}",
        "",
        "| mutant | file | what it breaks | killing tests | result |",
        "|---|---|---|---|---|",
    ]
    for m in mutants:
        tests = "<br>".join(f"`{t}`" for t in m.tests)
        lines.append(f"| `{m.id}` | `{m.file}` | {m.breaks} | {tests} | {m.result} ({m.seconds:.0f} s) |")
    killed = sum(m.result == "killed" for m in mutants)
    lines += ["", f"{killed}/{len(mutants)} killed"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--table", type=Path, default=TABLE)
    ap.add_argument("--only", nargs="+", metavar="ID", help="run only these mutants")
    ap.add_argument("--check", action="store_true", help="only check that the table applies to the tree")
    ap.add_argument("--timeout", type=int, default=600, help="seconds per mutant (default 600)")
    ap.add_argument("--no-baseline", action="store_true", help="skip the unmutated run of the killing tests")
    ap.add_argument("--report", type=Path, default=REPO / "build" / "mutation.md")
    args = ap.parse_args(argv)

    mutants = load_table(args.table)
    if args.only:
        unknown = set(args.only) - {m.id for m in mutants}
        if unknown:
            print(f"mutation: no such mutants: {sorted(unknown)}", file=sys.stderr)
            return 2
        mutants = [m for m in mutants if m.id in args.only]
    problems = check(mutants, REPO)
    if problems:
        print("mutation: the table no longer applies to this tree:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 2
    if args.check:
        print(f"mutation: all {len(mutants)} mutants apply")
        return 0

    t_start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="emsdeploy-mutation-") as tmp:
        tree = copy_tree(Path(tmp))
        assert_copy_is_imported(tree)
        baseline = "skipped"
        if not args.no_baseline:
            all_tests = list(dict.fromkeys(t for m in mutants for t in m.tests))
            status, summary, dt = run_tests(tree, all_tests, args.timeout * 3)
            baseline = f"{status}: {summary} ({dt:.0f} s)"
            print(f"baseline: {baseline}", flush=True)
            if status != "passed":
                print("mutation: the killing tests fail without any mutant; fix them first", file=sys.stderr)
                return 1
        for i, m in enumerate(mutants, 1):
            path = tree / m.file
            original = path.read_text()
            path.write_text(original.replace(m.search, m.replace))
            try:
                status, summary, m.seconds = run_tests(tree, m.tests, m.timeout or args.timeout)
            finally:
                path.write_text(original)
            m.result = {"failed": "killed", "passed": "SURVIVED"}.get(status, status.upper())
            m.detail = summary
            print(f"[{i}/{len(mutants)}] {m.id}: {m.result} ({m.seconds:.0f} s) {summary}", flush=True)
    total = time.monotonic() - t_start
    text = render(mutants, baseline) + f"\ntotal {total:.0f} s\n"
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(text)
    print("\n" + text + f"(written to {args.report})")
    return 0 if all(m.result == "killed" for m in mutants) else 1


if __name__ == "__main__":
    sys.exit(main())
