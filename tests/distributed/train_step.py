"""One training step of emsyolo-tiny (or a small SpikeYOLO) from a fixed initialisation; writes the weights.

Run plainly for the single-process step, or under ``python -m torch.distributed.run`` for
the DDP step (each rank takes half of every global batch; rank 0 writes). Used by
test_distributed.py.
"""

import sys

import torch

from emsdeploy.distributed import current_world, process_group
from emsdeploy.models import build_model
from emsdeploy.models.data import SyntheticShapes, SynthRecipe
from emsdeploy.models.training import TrainConfig, train
from emsdeploy.models.training.recipe import FAST

TINY = SynthRecipe(size=64, train=8, val=4, max_objects=2, min_size=16, max_size=30)


def make_model(name: str) -> torch.nn.Module:
    """``emsyolo-tiny`` (T = 2), or ``spikeyolo-micro``: SpikeYOLO-n at 1/16 width, T = 2."""
    torch.manual_seed(0)  # the same initial weights in every process
    if name == "spikeyolo-micro":
        from emsdeploy.models.spikeyolo import SpikeYOLO, spikeyolo_config

        cfg = spikeyolo_config("n")
        cfg["scales"]["n"] = [0.33, 0.0625, 1024]
        return SpikeYOLO({**cfg, "nc": 4}, time_steps=2)
    return build_model("emsyolo-tiny", time_steps=2)


def main(out: str, optimizer: str, steps: int, model_name: str = "emsyolo-tiny") -> None:
    torch.set_num_threads(1)
    model = make_model(model_name)
    cfg = TrainConfig(
        epochs=steps, batch_size=8, recipe=FAST.with_values(optimizer=optimizer, lr0=0.01), seed=0, device="cpu"
    )
    world = current_world()
    with process_group(world, "gloo"):
        result = train(model, SyntheticShapes(TINY, "train"), cfg)
    if world.leader:
        torch.save({"state_dict": model.state_dict(), "steps": result.steps, "loss": result.epochs[-1].mean_loss}, out)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), *sys.argv[4:5])
