"""The shipped checkpoint is what its model card says: accurate enough, and spiking sensibly."""

import json

from click.testing import CliRunner

from emsdeploy.checkpoint import load_checkpoint
from emsdeploy.cli import cli
from emsdeploy.models import DEFAULT_CHECKPOINT


def test_shipped_checkpoint_meets_its_model_card():
    ckpt = load_checkpoint(DEFAULT_CHECKPOINT)
    assert ckpt.meta["metrics"]["map50"] >= 0.6 and ckpt.meta["data"]["kind"] == "shapes"
    rates = list(ckpt.meta["firing_rates"].values())
    assert 0.01 < min(rates) and max(rates) < 0.6  # neither silent nor saturated
    # Re-score a slice of the same held-out split: the recorded number is no accident.
    r = CliRunner().invoke(cli, ["eval", "--data", "shapes:val=24", "-b", "24", "--json"])
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["map50"] > 0.5
