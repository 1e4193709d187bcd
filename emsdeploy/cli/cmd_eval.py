"""``emsdeploy eval``: mAP (pycocotools) and firing rates of a checkpoint on a dataset."""

from __future__ import annotations

import json

import click


@click.command(name="eval")
@click.argument("checkpoint", required=False, type=click.Path(dir_okay=False))
@click.option(
    "--data",
    default=None,
    help="Dataset (as for `train`). Default: the synthetic validation split the checkpoint was made for.",
)
@click.option("--split", type=click.Choice(["val", "train"]), default="val", show_default=True)
@click.option("--batch-size", "-b", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("--device", default=None, help="torch device (default: cuda if available, else cpu).")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="CPU threads for torch.")
@click.option("--json", "as_json", is_flag=True, help="Print only JSON (keys include map50 and map50_95).")
def eval_(
    checkpoint: str | None,
    data: str | None,
    split: str,
    batch_size: int,
    device: str | None,
    threads: int | None,
    as_json: bool,
) -> None:
    """Evaluate CHECKPOINT (default: the shipped models/checkpoints/emsyolo-tiny-synth.pt).

    Detections are kept above score 0.001 and merged by per-class NMS at IoU 0.6 (at most
    100 per sample), then scored by pycocotools' COCOeval against the dataset's labels.
    """
    import torch

    from ..checkpoint import load_any
    from ..models import DEFAULT_CHECKPOINT
    from .cmd_train import validation

    if threads:
        torch.set_num_threads(threads)
    path = checkpoint or str(DEFAULT_CHECKPOINT)
    ckpt = load_any(path)
    model = ckpt.build()
    dataset = dataset_for(ckpt, data, split)
    result = validation(model, dataset, data or "checkpoint recipe", batch_size, device)
    metrics, rates = result["metrics"], result["firing_rates"]
    if as_json:
        payload = {**metrics, "checkpoint": path, "split": split, "firing_rates": rates}
        click.echo(json.dumps(payload, indent=2))
        return
    click.echo(f"checkpoint   : {path}")
    click.echo(f"data         : {json.dumps(metrics['data'])} ({split}, {metrics['images']} samples)")
    click.echo(f"mAP@0.5      : {metrics['map50']:.4f}")
    click.echo(f"mAP@0.5:0.95 : {metrics['map50_95']:.4f}")
    for name, ap in metrics["ap50_per_class"].items():
        click.echo(f"  AP@0.5 {name:<12}: {ap:.4f}")
    if rates:
        values = list(rates.values())
        click.echo(
            f"firing rates : {len(values)} LIF layers, mean {sum(values) / len(values):.4f}, "
            f"min {min(values):.4f}, max {max(values):.4f}"
        )


def dataset_for(ckpt, data: str | None, split: str):
    """The dataset to score ``ckpt`` on: ``--data`` if given, else the recipe stored in its meta."""
    from ..errors import InputError
    from ..models.data import dataset_from_recipe, open_dataset

    input_size = ckpt.meta.get("input_size")
    if data is None:
        recipe = ckpt.meta.get("data")
        if not isinstance(recipe, dict) or "seed" not in recipe:
            raise InputError(
                f"{ckpt.path}: the checkpoint records no synthetic dataset recipe; pass --data to say what to evaluate on"
            )
        dataset = dataset_from_recipe(recipe, split)
    else:
        dataset = open_dataset(data, split, input_size)
    if dataset.encoding != ckpt.encoding:
        raise InputError(f"{ckpt.path} takes {ckpt.encoding!r} inputs but the data gives {dataset.encoding!r}")
    nc = int(ckpt.config["nc"])
    if len(dataset.names) != nc:
        raise InputError(f"{ckpt.path} predicts {nc} classes but the data has {len(dataset.names)} ({dataset.names})")
    return dataset


eval = eval_
