"""Shared test fixtures.

The official EMS-YOLO reference fixtures live beside the checkout in ../shared (never
copied into the repo). Missing fixtures, and a missing shipped checkpoint, skip the tests
locally but fail under CI (any truthy ``CI``: ``true``, ``1``, ``yes``, ...).
Tests marked ``lava`` skip with the reason where lava-nc is not installed (Python >= 3.11 cannot
have it), and fail where it is missing from CI's Python 3.10 environment.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from emsdeploy.exporters.lava._require import LAVA_MISSING, lava_available

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(os.environ.get("EMSDEPLOY_FIXTURES", REPO.parent / "shared" / "fixtures" / "official"))

OFFICIAL = {
    "res10ee_gen1_T5": "checkpoint_stripped_fp16.pt",
    "tiny_all_coco_T4": "checkpoint_last_fp32.pt",
}


SHIPPED = REPO / "models" / "checkpoints" / "emsyolo-tiny-synth.pt"
NOT_CI = ("", "0", "false", "no", "off")


def under_ci() -> bool:
    """True for any truthy ``CI`` (CI services set ``true``, people type ``1``); ``0``/``false``/empty are not CI."""
    return os.environ.get("CI", "").strip().lower() not in NOT_CI


def _require(path: Path, what: str = "official fixtures") -> Path:
    if path.exists():
        return path
    if under_ci():
        pytest.fail(f"{what} are required under CI but {path} is missing")
    pytest.skip(f"{what} not found at {path}")


def shipped_checkpoint() -> Path:
    """The checkpoint shipped in the repository: its absence skips locally and fails under CI."""
    return _require(SHIPPED, "the shipped checkpoint and its files")


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return _require(FIXTURES)


class OfficialFixture:
    """One official fixture folder: checkpoint, inputs, references, metadata."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.info = json.loads((folder / "reference.json").read_text())
        self.checkpoint = folder / self.info["checkpoint"]["file"]
        self.inputs = np.load(folder / "input.npy")
        self.reference = np.load(folder / "reference.npz")
        self.T = int(self.info["T"])
        self.lif_names: list[str] = self.info["lif_modules_named_modules_order"]
        self.silu_names: list[str] = self.info.get("silu_mem_update_modules") or []

    def input(self, k: int) -> torch.Tensor:
        return torch.from_numpy(self.inputs[k : k + 1])

    def ref(self, k: int, kind: str, name: object = None) -> np.ndarray:
        return self.reference[f"in{k}__{kind}" + ("" if name is None else f"__{name}")]


@pytest.fixture(scope="session", params=sorted(OFFICIAL))
def official(request) -> OfficialFixture:
    return OfficialFixture(_require(FIXTURES / request.param))


@pytest.fixture(scope="session")
def lif_unit() -> dict:
    folder = _require(FIXTURES / "lif_unit_T5")
    return {"npz": np.load(folder / "lif_unit.npz"), "info": json.loads((folder / "lif_unit.json").read_text())}


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("lava") is None or lava_available():
        return
    if sys.version_info[:2] == (3, 10) and os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
        pytest.fail(f"CI's Python 3.10 environment must have Lava: {LAVA_MISSING}", pytrace=False)
    pytest.skip(LAVA_MISSING)


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="session")
def ilif_unit() -> dict:
    """SpikeYOLO's official I-LIF (``mem_update``) alone, at T=4 and T=1 (spikeyolo_n_T1/lif_unit)."""
    folder = _require(FIXTURES / "spikeyolo_n_T1" / "lif_unit")
    return {"npz": np.load(folder / "lif_unit.npz"), "info": json.loads((folder / "lif_unit.json").read_text())}


@pytest.fixture(scope="session")
def spikeyolo_n() -> Path:
    """The official SpikeYOLO-n fixture folder (checkpoint, input, references; spikeyolo_n_T1)."""
    return _require(FIXTURES / "spikeyolo_n_T1")
