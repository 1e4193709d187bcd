"""Seeded fuzzing of real checkpoints: every damaged copy loads the exact weights or fails clearly.

For the shipped checkpoint and both official fixtures: the file cut at every 1 % of its
length, and random single-byte flips. Each outcome must be the original content (config, T,
encoding, names, every tensor bit for bit) or a :class:`CheckpointError` whose one-line
message names the file; never another exception, a hang or different weights.
"""

from __future__ import annotations

import os
import random
import time
import zipfile

import pytest
import torch

from emsdeploy.checkpoint import Checkpoint, load_any
from emsdeploy.errors import CheckpointError
from emsdeploy.models import DEFAULT_CHECKPOINT

from ..conftest import OFFICIAL

FLIPS = {"shipped": 60, "res10ee_gen1_T5": 16, "tiny_all_coco_T4": 16}
SLOWEST_S = 10.0


def _same(a: Checkpoint, b: Checkpoint) -> bool:
    if (a.config, a.time_steps, a.encoding, a.names) != (b.config, b.time_steps, b.encoding, b.names):
        return False
    if list(a.state_dict) != list(b.state_dict):
        return False
    return all(
        x.dtype == y.dtype and x.shape == y.shape and torch.equal(x, y)
        for x, y in zip(a.state_dict.values(), b.state_dict.values())
    )


@pytest.mark.parametrize("which", list(FLIPS))
def test_cut_and_flipped_copies_load_exactly_or_fail_clearly(which, tmp_path, request):
    if which == "shipped":
        src = DEFAULT_CHECKPOINT
    else:
        src = request.getfixturevalue("fixtures_dir") / which / OFFICIAL[which]
    original = src.read_bytes()
    reference = load_any(src)
    rng = random.Random(f"emsdeploy-fuzz-{which}")
    n = len(original)
    path = tmp_path / f"{which}.pt"
    path.write_bytes(original)
    outcomes = {"same": 0, "error": 0}

    def check(what: str) -> None:
        start = time.monotonic()
        try:
            ckpt = load_any(path)
        except CheckpointError as e:
            msg = str(e)
            assert msg.startswith(f"{path}: ") and "\n" not in msg, f"{what}: unclear message {msg!r}"
            outcomes["error"] += 1
        else:
            assert _same(ckpt, reference), f"{what}: loaded different content"
            outcomes["same"] += 1
        assert time.monotonic() - start < SLOWEST_S, f"{what}: took {time.monotonic() - start:.1f} s"

    with zipfile.ZipFile(src) as z:  # a flip in the directory's timestamp changes no content
        harmless = z.start_dir + 12
    flips = [(harmless, 0x01)] + [(rng.randrange(n), rng.randrange(1, 256)) for _ in range(FLIPS[which])]
    with open(path, "r+b") as f:  # flips in place, each undone after its load
        for at, xor in flips:
            f.seek(at)
            f.write(bytes([original[at] ^ xor]))
            f.flush()
            check(f"byte {at} ^= {xor:#x}")
            f.seek(at)
            f.write(original[at : at + 1])
            f.flush()
    for k in range(99, -1, -1):  # cuts, longest first, by truncating the same file
        os.truncate(path, n * k // 100)
        check(f"cut at {k}%")
    print(f"{which}: {outcomes}")
    assert outcomes["error"] >= 100 and outcomes["same"] >= 1, outcomes  # every cut is an error
