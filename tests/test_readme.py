"""Every command in the README runs (in a scratch folder that sees the repo's models/), and its
output is checked: the ```bash blocks as written, the ```text blocks at smaller sizes."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.tolerances import EXACT

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


# ---- the ```text blocks: long or data-dependent commands, run at smaller sizes ------------------

TINY_SHAPES = "size=64,train=4,val=2,max_objects=2,min_size=16,max_size=30"


def _text_lines() -> list[str]:
    lines = (line.split(" #", 1)[0].strip() for block in _blocks("text") for line in block.splitlines())
    return [line for line in lines if line]  # comment-only lines continue the line above


def _gen1_folder(d: Path) -> Path:
    from tests.data.test_gen1 import BOXES, EVENTS, write_boxes, write_dat

    folder = d / "gen1"
    folder.mkdir()
    write_dat(folder / "rec_td.dat", EVENTS)
    write_boxes(folder / "rec_bbox.npy", BOXES)
    return folder


def _check_ckpt(path: Path, encoding: str, time_steps: int, nc: int, config_start: str):
    from emsdeploy.checkpoint import load_checkpoint

    ckpt = load_checkpoint(path)
    assert (ckpt.encoding, ckpt.time_steps, int(ckpt.config["nc"])) == (encoding, time_steps, nc)
    assert ckpt.meta["train"]["command"].startswith(config_start)
    ckpt.build()  # the weights fit the architecture
    return ckpt


# README line (without its comment) -> (what runs instead, at a smaller size; how its output is checked)
TEXT_COMMANDS = {
    "emsdeploy train --config emsyolo-tiny --data shapes --epochs 16 -o ckpt.pt": (
        f"train --config emsyolo-tiny --data shapes:{TINY_SHAPES} --epochs 1 -b 2 -T 2 --max-steps 1 -o ckpt.pt",
        lambda d, out: _check_ckpt(
            d / "ckpt.pt", "direct", 2, 4, "emsdeploy train --config emsyolo-tiny --data shapes"
        ),
    ),
    "emsdeploy train --data events -o ev.pt": (
        f"train --data events:{TINY_SHAPES},time_bins=3 --epochs 1 -b 2 --max-steps 1 --no-eval -o ev.pt",
        lambda d, out: _check_ckpt(d / "ev.pt", "frames", 3, 4, "emsdeploy train --config emsyolo-tiny --data events"),
    ),
    "emsdeploy train --config res10-ee --data path/to/gen1 --input-size 320 -o g1.pt": (
        "train --config res10-ee --data {gen1} --input-size 64 --epochs 1 -b 1 --max-steps 1 --no-eval -o g1.pt",
        lambda d, out: _check_ckpt(d / "g1.pt", "frames", 5, 2, "emsdeploy train --config res10-ee"),
    ),
    "emsdeploy train --recipe official --weights best.pt --data path/to/coco -o ft.pt": (
        f"train --recipe official --weights best.pt --data shapes:{TINY_SHAPES} --epochs 1 -b 2 -T 1 --max-steps 1 "
        "--val-every 0 --no-eval -o ft.pt",
        lambda d, out: _check_ckpt(d / "ft.pt", "direct", 1, 4, "emsdeploy train --data shapes"),
    ),
    "emsdeploy eval ckpt.pt [--data ...] [--json] [--card card.md]": (
        "eval ckpt.pt --json --card card.md",
        lambda d, out: _check_eval(d, out),
    ),
    "emsdeploy convert best.pt -o ours.pt [--time-steps 4] [--encoding direct|frames]": (
        "convert best.pt -o ours.pt --time-steps 4 --encoding direct",
        lambda d, out: _check_convert(d),
    ),
}


def _requirements() -> tuple[list[str], list[str]]:
    """(core requirements, the lava extra's) of the installed emsdeploy, as pip resolves them."""
    import importlib.metadata

    reqs = importlib.metadata.requires("emsdeploy") or []
    core = [r for r in reqs if "extra ==" not in r]
    return core, [r for r in reqs if 'extra == "lava"' in r]


def _check_core_install() -> None:
    """`pip install .`: no Lava in the core, and Python 3.10-3.13 allowed (make test installs it so)."""
    import importlib.metadata

    core, _ = _requirements()
    assert core and not [r for r in core if r.lower().startswith("lava")], core
    assert importlib.metadata.metadata("emsdeploy")["Requires-Python"] == ">=3.10"


def _check_lava_install() -> None:
    """`pip install '.[lava]'`: lava-nc 0.10.0 and lava-dl 0.6.0, on Python 3.10 only."""
    _, lava = _requirements()
    names = sorted(r.split(";")[0] for r in lava)
    assert names == ["lava-dl==0.6.0", "lava-nc==0.10.0"], lava
    assert all('python_version < "3.11"' in r for r in lava), lava


# The install lines run in every `make test` (its two environments are installed exactly so); here
# the installed metadata is checked against what the README says of them.
INSTALL_LINES = {"pip install .": _check_core_install, "pip install '.[lava]'": _check_lava_install}


def _check_eval(d: Path, out: str) -> None:
    import json

    result = json.loads(out)
    assert 0 <= result["map50_95"] <= result["map50"] <= 1 and result["images"] == 2
    card = (d / "card.md").read_text()
    assert f"mAP@0.5: **{result['map50']:.4f}**" in card


def _check_convert(d: Path) -> None:
    import torch

    from emsdeploy.checkpoint import import_official, load_checkpoint

    ours, want = load_checkpoint(d / "ours.pt"), import_official(d / "best.pt", 4, "direct")
    assert (ours.time_steps, ours.encoding, ours.config) == (4, "direct", want.config)
    assert ours.state_dict.keys() == want.state_dict.keys()
    for k, v in want.state_dict.items():
        torch.testing.assert_close(ours.state_dict[k], v, **EXACT, msg=k)


def test_every_readme_text_command_is_covered():
    fences = re.findall(r"^```(\w*)\n.*?^```", README, flags=re.M | re.S)  # each block's language
    assert fences and set(fences) <= {"bash", "python", "text"}, f"a README block no test runs: {set(fences)}"
    covered = sorted([*TEXT_COMMANDS, *INSTALL_LINES])
    assert sorted(_text_lines()) == covered, "a ```text line of the README has no run in TEXT_COMMANDS"


def test_readme_text_commands_run_at_small_sizes(tmp_path, fixtures_dir, monkeypatch):
    import shutil

    from emsdeploy.cli import cli

    monkeypatch.chdir(tmp_path)
    shutil.copy(fixtures_dir / "tiny_all_coco_T4" / "checkpoint_last_fp32.pt", tmp_path / "best.pt")
    gen1 = _gen1_folder(tmp_path)
    ran = 0
    for line in _text_lines():  # in README order: eval reads what the first train wrote
        if line in INSTALL_LINES:
            INSTALL_LINES[line]()
            continue
        args, check = TEXT_COMMANDS[line]
        r = CliRunner().invoke(cli, shlex.split(args.format(gen1=gen1)), catch_exceptions=False)
        assert r.exit_code == 0, f"{line}\n{r.output[-3000:]}"
        check(tmp_path, r.stdout)
        ran += 1
    assert ran == len(TEXT_COMMANDS)
