"""The mutant table of `make mutation` still applies to the tree (a stale search text fails here,
in `make test`, not only in the long mutation run)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _runner():
    spec = importlib.util.spec_from_file_location("emsdeploy_mutation_runner", REPO / "scripts" / "mutation.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("emsdeploy_mutation_runner", mod)  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def test_every_mutant_applies_and_names_existing_tests():
    m = _runner()
    mutants = m.load_table(m.TABLE)
    assert m.check(mutants, REPO) == []
    bugs = {x.id[:4] for x in mutants if x.id.startswith("bug")}
    assert bugs == {f"bug{i}" for i in range(1, 7)}, "the six bugs of issue 23"
    assert len(mutants) - len([x for x in mutants if x.id.startswith("bug")]) >= 20
    for x in mutants:
        assert x.tests and x.breaks, x.id
        for t in x.tests:
            assert (REPO / t.split("::")[0]).is_file(), (x.id, t)


def test_a_stale_mutant_stops_the_run(tmp_path, capsys):
    m = _runner()
    table = tmp_path / "t.toml"
    table.write_text(
        '[[mutant]]\nid = "x"\nfile = "simulators/fixed_kernels.py"\nsearch = "no such text"\n'
        'replace = "y"\nbreaks = "nothing"\ntests = ["tests/test_repo.py"]\n'
    )
    assert m.main(["--table", str(table), "--check"]) == 2
    assert "search text occurs 0 times" in capsys.readouterr().err
