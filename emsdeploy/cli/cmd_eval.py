"""``emsdeploy eval``: mAP (pycocotools) and firing rates of a checkpoint on a dataset."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..distributed.jobs import sweep_options
from .options import choice_option, encoding_option, gen1_mode_option


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
@choice_option(
    "--backend",
    ("torch", "onnx-fixed"),
    "torch (the float model) or onnx-fixed (the Loihi-quantized model as an integer ONNX graph, on CPU).",
    default="torch",
)
@click.option("--json", "as_json", is_flag=True, help="Print only JSON (keys include map50 and map50_95).")
@click.option(
    "--card",
    type=click.Path(dir_okay=False),
    default=None,
    help="Also write a Markdown model card from the checkpoint's meta and these measurements.",
)
@gen1_mode_option
@encoding_option
@sweep_options
def eval_(
    checkpoint: str | None,
    data: str | None,
    split: str,
    batch_size: int,
    device: str | None,
    threads: int | None,
    backend: str,
    as_json: bool,
    card: str | None,
    gen1_mode: str | None,
    encoding: str | None,
    results: str | None,
    resume: bool,
) -> None:
    """Evaluate CHECKPOINT (default: the shipped models/checkpoints/emsyolo-tiny-synth.pt).

    Detections are kept above score 0.001 and merged by per-class NMS at IoU 0.6 (at most
    100 per sample), then scored by pycocotools' COCOeval against the dataset's labels.
    Under torchrun each rank predicts a share of the batches (docs/distributed.md).
    """
    import torch

    from ..checkpoint import load_any
    from ..distributed.jobs import SweepArgs, file_digest, sweep_wanted, validation_sweep
    from ..errors import InputError
    from ..pipeline import source_or_default
    from .cmd_train import validation

    if threads:
        torch.set_num_threads(threads)
    path = str(source_or_default(checkpoint))
    ckpt = load_any(path, None, encoding)
    model = ckpt.build()
    dataset = dataset_for(ckpt, data, split, gen1_mode)
    if backend == "onnx-fixed":
        if sweep_wanted(results, resume):
            raise InputError("--backend onnx-fixed does not run as a sweep yet; drop --results/--resume")
        from .eval_fixed import validation_fixed

        result = validation_fixed(model, path, dataset, data or "checkpoint recipe", batch_size, threads)
    elif sweep_wanted(results, resume):
        fingerprint = {"checkpoint": path, "sha256": file_digest(path), "data": data, "split": split}
        args = SweepArgs(results, resume)
        result = validation_sweep(model, dataset, data or "checkpoint recipe", batch_size, device, args, fingerprint)
        if result is None:  # another rank than 0: rank 0 reports
            return
    else:
        result = validation(model, dataset, data or "checkpoint recipe", batch_size, device)
    metrics, rates = result["metrics"], result["firing_rates"]
    if card:
        from ..fileio import atomic_write

        text = model_card(ckpt, model, metrics, rates, path, data, split)
        atomic_write(card, lambda tmp: tmp.write_text(text, encoding="utf-8"))
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


def dataset_for(ckpt, data: str | None, split: str, gen1_mode: str | None = None):
    """The dataset to score ``ckpt`` on: ``--data`` if given, else the recipe stored in its meta.
    Gen1 data is binned in ``gen1_mode``, else in the mode the checkpoint records."""
    from ..errors import InputError
    from ..models.data import dataset_from_recipe, open_dataset, resolve_gen1_mode

    input_size = ckpt.meta.get("input_size")
    if data is None:
        recipe = ckpt.meta.get("data")
        if not isinstance(recipe, dict) or "seed" not in recipe:
            raise InputError(
                f"{ckpt.path}: the checkpoint records no synthetic dataset recipe; pass --data to say what to evaluate on"
            )
        dataset = dataset_from_recipe(recipe, split)
    else:
        dataset = open_dataset(
            data, split, input_size, resolve_gen1_mode(ckpt.meta, gen1_mode), bool(ckpt.meta.get("letterbox"))
        )
    if dataset.encoding != ckpt.encoding:
        raise InputError(f"{ckpt.path} takes {ckpt.encoding!r} inputs but the data gives {dataset.encoding!r}")
    nc = int(ckpt.config["nc"])
    if len(dataset.names) != nc:
        raise InputError(f"{ckpt.path} predicts {nc} classes but the data has {len(dataset.names)} ({dataset.names})")
    return dataset


def model_card(ckpt, model, metrics: dict, rates: dict, path: str, data: str | None, split: str) -> str:
    """Markdown model card: every number comes from the checkpoint's meta or this evaluation."""
    meta, train = ckpt.meta, ckpt.meta.get("train", {})
    recipe = meta.get("data", {})
    gen1_mode = metrics.get("data", {}).get("gen1_mode") or meta.get("gen1_mode")
    params = sum(p.numel() for p in model.parameters())
    eval_cmd = (
        f"emsdeploy eval {path}" + (f" --data {data}" if data else "") + (f" --split {split}" if split != "val" else "")
    )
    lines = [
        f"# {Path(path).stem}",
        "",
        f"EMS-YOLO, config `{meta.get('config_source', '?')}` ({params:,} parameters), T = {ckpt.time_steps}, "
        f"`{ckpt.encoding}` encoding, {meta.get('input_size', '?')}×{meta.get('input_size', '?')} input, "
        f"classes: {', '.join(ckpt.names)}."
        + (f" Gen1 input mode: `{gen1_mode}` (docs/gen1.md)." if gen1_mode else ""),
        "",
        "## Data",
        "",
        "Synthetic recipe (regenerated bit for bit from these numbers): "
        f"`{json.dumps({k: v for k, v in recipe.items() if k != 'split'})}`.",
        "",
        "## Training",
        "",
        "```",
        str(train.get("command", "?")),
        "```",
        "",
        "(`-o` is where that run wrote the file; the rest of the command reproduces it.)",
        "",
        "| setting | value |",
        "|---|---|",
    ]
    for key in (
        "optimizer",
        "lr",
        "batch_size",
        "epochs",
        "epochs_done",
        "steps",
        "warmup_epochs",
        "weight_decay",
        "seed",
    ):
        if key in train:
            lines.append(f"| {key} | {train[key]} |")
    lines += [
        f"| loss gains (before YOLOv5 rescaling) | {json.dumps(train.get('hyp', {}))} |",
        f"| device, torch | {train.get('device', '?')}, torch {train.get('torch', '?')}"
        + (f", {train['threads']} CPU threads" if "threads" in train else "")
        + " |",
        f"| training wall time (other load on the machine included) | {train.get('seconds', 0) / 60:.1f} min |",
        f"| mean loss per epoch | {', '.join(f'{v:.4f}' for v in train.get('epoch_loss', []))} |",
        "",
        f"## Results ({split} split, {metrics['images']} images, {metrics['instances']} objects)",
        "",
        "```",
        eval_cmd,
        "```",
        "",
        f"- mAP@0.5: **{metrics['map50']:.4f}**",
        f"- mAP@0.5:0.95: **{metrics['map50_95']:.4f}**",
        "",
        "| class | AP@0.5 |",
        "|---|---|",
        *(f"| {name} | {ap:.4f} |" for name, ap in metrics["ap50_per_class"].items()),
        "",
        "## Firing rates",
        "",
        "Share of (time step, neuron) pairs that spike, per LIF layer, on the first "
        f"{min(32, metrics['images'])} images of the split (eval mode). Where two layers start the two "
        "branches of one EMS-Block2 (`shortcut.0`, `residual_function.0`), they see the same current and agree.",
        "",
        "| LIF layer | rate |",
        "|---|---|",
        *(f"| `{name}` | {rate:.4f} |" for name, rate in rates.items()),
        "",
        "## Limits",
        "",
        "Trained on synthetic shapes only: a demonstration and test model for the deployment "
        "toolchain, not a detector for real images.",
        "",
    ]
    return "\n".join(lines)


eval = eval_
