"""Issue 15 findings 1 and 2 for HDF5: an .emsir or a Lava folder's .h5 that reaches for other
files (links, external storage, virtual datasets) or declares memory it does not hold is refused
by every command that reads it: exit 2, one line naming the file and the dataset, and the other
file is never opened."""

from __future__ import annotations

import json
import shutil

import pytest

from emsdeploy.errors import IRFormatError
from emsdeploy.exporters.lava.loader import FOLDER_FORMAT
from emsdeploy.fileio import write_manifest
from emsdeploy.ir import read_ir
from tests.fileio.attacks import ATTACKS, SECRET, attack, secret_files
from tests.fileio.conftest import OpenWatch, run_cli

# every command that reads an .emsir (SOURCE), with the options that make it cheap
IR_COMMANDS = {
    "inspect": ["inspect", "{src}"],
    "export-onnx": ["export", "{src}", "--target", "onnx", "-o", "{out}/m.onnx"],
    "export-lava": ["export", "{src}", "--target", "lava", "-o", "{out}/lava"],
    "export-nir": ["export", "{src}", "--target", "nir", "-o", "{out}/m.nir"],
    "verify": ["verify", "{src}", "--targets", "ref", "--limit", "1"],
    "energy": ["energy", "{src}", "--limit", "1"],
}


@pytest.fixture(scope="module")
def secrets(tmp_path_factory):
    return secret_files(tmp_path_factory.mktemp("secret"))


@pytest.mark.parametrize("kind", sorted(ATTACKS))
def test_ir_reader_refuses(kind, tiny_ir, secrets, tmp_path):
    bad = tmp_path / f"{kind}.emsir"
    dataset = attack(kind, tiny_ir, bad, *secrets)
    watches = [OpenWatch(p) for p in secrets]
    with pytest.raises(IRFormatError) as e:
        read_ir(bad)
    msg = str(e.value)
    assert str(bad) in msg and ATTACKS[kind] in msg and "\n" not in msg
    if kind != "hard_link_twice":
        assert dataset.rsplit("/", 1)[-1] in msg  # names the dataset
    assert sum(w.events() for w in watches) == 0, "the reader opened a file outside the one given"


@pytest.mark.parametrize("command", sorted(IR_COMMANDS))
@pytest.mark.parametrize("kind", ["external_storage", "external_link", "virtual", "unwritten"])
def test_every_ir_command_refuses(command, kind, tiny_ir, secrets, tmp_path):
    bad = tmp_path / f"{kind}.emsir"
    attack(kind, tiny_ir, bad, *secrets)
    args = [a.format(src=bad, out=tmp_path) for a in IR_COMMANDS[command]]
    watches = [OpenWatch(p) for p in secrets]
    r = run_cli(*args)
    r.assert_clear_error(str(bad), ATTACKS[kind])
    assert sum(w.events() for w in watches) == 0
    assert SECRET[:11].decode() not in r.stdout + r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [bad.name]  # no output, no temporary


@pytest.fixture(scope="module")
def lava_folder(tiny_lava):
    return tiny_lava


@pytest.mark.lava  # verify --lava runs the folder in lava-nc
@pytest.mark.parametrize("kind", ["external_storage", "soft_link", "virtual", "unwritten"])
def test_lava_folder_h5_is_checked(kind, lava_folder, tiny_ir, secrets, tmp_path):
    """Even with a manifest rewritten to match (an attacker's folder), verify --lava refuses."""
    folder = tmp_path / "net"
    shutil.copytree(lava_folder, folder)
    h5 = folder / "network.lava.h5"
    attack(kind, lava_folder / "network.lava.h5", h5, *secrets)
    write_manifest(folder, FOLDER_FORMAT)
    watches = [OpenWatch(p) for p in secrets]
    r = run_cli("verify", tiny_ir, "--targets", "lava", "--lava", folder, "--limit", "1")
    r.assert_clear_error(str(h5), ATTACKS[kind])
    assert sum(w.events() for w in watches) == 0


def test_valid_files_still_load(tiny_ir, lava_folder):
    """The checks refuse nothing our own writers produce."""
    from emsdeploy.exporters.lava import load

    assert read_ir(tiny_ir).validate() is not None
    assert load(lava_folder).dag.procs
    assert json.loads((lava_folder / "manifest.json").read_text())["format"] == FOLDER_FORMAT
