"""Repository hygiene that CI enforces: packaging covers every package, and ruff is clean."""

import shutil
import subprocess
import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]


def test_every_package_folder_is_installed():
    cfg = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    mapping = cfg["package-dir"]
    listed = set(cfg["packages"])
    for dist_name, folder in mapping.items():
        for init in (REPO / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(REPO / folder)
            name = ".".join([dist_name, *rel.parts])
            assert name in listed, f"{init.parent} is a package but pyproject.toml does not list {name}"


def test_ruff_is_clean():
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    r = subprocess.run([ruff, "check", str(REPO)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_atomic_writes_get_normal_permissions_and_leave_nothing_on_failure(tmp_path):
    import os
    import stat

    import pytest

    from emsdeploy.fileio import atomic_write, atomic_write_text

    p = atomic_write_text(tmp_path / "a.txt", "hello")
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(p.stat().st_mode) == 0o666 & ~mask
    assert p.read_text() == "hello"

    def fail(tmp):
        tmp.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError):
        atomic_write(tmp_path / "a.txt", fail)
    assert p.read_text() == "hello" and sorted(x.name for x in tmp_path.iterdir()) == ["a.txt"]
