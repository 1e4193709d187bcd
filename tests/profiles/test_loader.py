"""One loader and one error type for every TOML file emsdeploy reads (issue 16)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from emsdeploy.energy.profiles import load_profile as load_energy
from emsdeploy.errors import EmsdeployError
from emsdeploy.exporters.lava.fit import load_chip
from emsdeploy.profiles import KINDS, ProfileError, builtin_profiles, read_profile
from emsdeploy.profiles.loihi import load_profile as load_loihi
from emsdeploy.targets import load_target

REPO = Path(__file__).resolve().parents[2]
LOADERS = {"target": load_target, "loihi": load_loihi, "energy": load_energy, "chip": load_chip}


def test_only_the_checked_reader_parses_toml():
    """One TOML reader in the installed code, emsdeploy.fileio's (profiles and training recipes
    go through it; scripts/ holds developer tools only)."""
    readers = []
    for folder in ("emsdeploy", "exporters", "simulators", "models"):
        for path in sorted((REPO / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
                if isinstance(node, ast.ImportFrom) and node.module:
                    names = [node.module]
                if any(n.split(".")[0] in ("tomllib", "tomli") for n in names):
                    readers.append(str(path.relative_to(REPO)))
    assert sorted(set(readers)) == ["emsdeploy/fileio/text.py"]


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_shipped_profile_loads(kind):
    names = builtin_profiles(kind)
    assert names
    for name in names:
        if kind == "loihi" and name != "loihi_bitacc":
            continue  # the folder also holds other kinds' subfolders, not files
        LOADERS[kind](name)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_one_error_type_naming_the_file(kind, tmp_path):
    with pytest.raises(ProfileError, match=f"unknown {KINDS[kind].what} 'nope'"):
        LOADERS[kind]("nope")
    missing = tmp_path / "missing.toml"
    with pytest.raises(ProfileError, match="no such profile file"):
        LOADERS[kind](missing)
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x\n')
    with pytest.raises(ProfileError, match="not valid TOML") as e:
        LOADERS[kind](bad)
    assert str(bad) in str(e.value) and "\n" not in str(e.value)
    bad.write_bytes(b'name = "\xff"\n')
    with pytest.raises(ProfileError, match="not UTF-8"):
        LOADERS[kind](bad)
    bad.write_text('name = "x"\n[neuron]\ndu_bits = "12"\n')  # well-formed TOML, wrong content
    with pytest.raises(ProfileError) as e:
        LOADERS[kind](bad)
    assert str(bad) in str(e.value)
    assert issubclass(ProfileError, EmsdeployError)  # the CLI's one-line error, exit 2


def test_a_user_file_is_size_bounded(tmp_path):
    big = tmp_path / "big.toml"
    big.write_text("# " + "x" * (2 << 20) + "\n")
    with pytest.raises(EmsdeployError, match="limit"):
        read_profile("energy", big)


def test_loihi_values_must_be_integers(tmp_path):
    text = (REPO / "emsdeploy" / "profiles" / "loihi_bitacc.toml").read_text()
    bad = tmp_path / "l.toml"
    bad.write_text(text.replace("du_bits = 12", 'du_bits = "12"', 1))
    assert bad.read_text() != text
    with pytest.raises(ProfileError, match=r"\[neuron\] du_bits must be an integer"):
        load_loihi(bad)
