"""One training step of emsyolo-tiny from a fixed initialisation; writes the weights.

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


def main(out: str, optimizer: str, steps: int) -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)  # the same initial weights in every process
    model = build_model("emsyolo-tiny", time_steps=2)
    cfg = TrainConfig(
        epochs=steps, batch_size=8, recipe=FAST.with_values(optimizer=optimizer, lr0=0.01), seed=0, device="cpu"
    )
    world = current_world()
    with process_group(world, "gloo"):
        result = train(model, SyntheticShapes(TINY, "train"), cfg)
    if world.leader:
        torch.save({"state_dict": model.state_dict(), "steps": result.steps, "loss": result.epochs[-1].mean_loss}, out)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
