"""Every command in the README runs as written (in a scratch folder that sees the repo's models/)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def _commands() -> list[str]:
    cmds = []
    for block in _blocks("bash"):
        for line in block.splitlines():
            line = line.split(" #", 1)[0].strip()
            if not line:
                continue
            assert line.startswith(("emsdeploy ", "make ")), f"README bash line the test cannot run: {line!r}"
            if line.startswith("emsdeploy "):
                cmds.append(line)
    return cmds


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    d = tmp_path_factory.mktemp("readme")
    (d / "models").symlink_to(REPO / "models", target_is_directory=True)
    return d


def _env():
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def test_readme_shows_the_two_commands():
    first = _blocks("bash")[0]
    assert "make demo" in first and "make test" in first


def test_every_readme_command_runs(scratch):
    cmds = _commands()
    assert len(cmds) >= 10
    for cmd in cmds:  # in order: later commands use the files earlier ones wrote
        r = subprocess.run(shlex.split(cmd), cwd=scratch, env=_env(), capture_output=True, text=True, timeout=900)
        assert r.returncode == 0, f"{cmd}\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}"
    assert (scratch / "out" / "detections.png").is_file() and (scratch / "out" / "energy.png").is_file()


def test_readme_python_example_runs(scratch):
    for block in _blocks("python"):
        r = subprocess.run(
            [sys.executable, "-c", block], cwd=scratch, env=_env(), capture_output=True, text=True, timeout=600
        )
        assert r.returncode == 0, r.stderr[-3000:]
