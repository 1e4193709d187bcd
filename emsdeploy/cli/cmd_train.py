"""``emsdeploy train``: train an EMS-YOLO config on a dataset and write our checkpoint."""

from __future__ import annotations

import shlex
import time
from pathlib import Path

import click

from .options import gen1_mode_option


@click.command()
@click.option("--config", "config", default="emsyolo-tiny", show_default=True, help="Shipped config name or YAML path.")
@click.option(
    "--data",
    default="shapes",
    show_default=True,
    help="Synthetic recipe (shapes | events[:key=value,...]), a COCO .json / folder, or a Gen1 folder.",
)
@click.option("--epochs", type=click.IntRange(min=1), default=30, show_default=True)
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Checkpoint to write.")
@click.option("--time-steps", "-T", type=click.IntRange(min=1), default=None, help="T for direct encoding (default 4).")
@click.option("--input-size", type=click.IntRange(min=32), default=None, help="Model input side (COCO, Gen1).")
@click.option("--batch-size", "-b", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("--optimizer", type=click.Choice(["adamw", "sgd"]), default="adamw", show_default=True)
@click.option("--lr", type=float, default=None, help="Peak learning rate (default: 0.002 AdamW, 0.01 SGD).")
@click.option(
    "--hyp",
    multiple=True,
    metavar="KEY=VALUE",
    help="Loss gain before YOLOv5's rescaling (box 0.05, obj 1.0, cls 0.5, anchor_t 4.0); repeatable.",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", default=None, help="torch device (default: cuda if available, else cpu).")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="CPU threads for torch.")
@click.option("--max-steps", type=click.IntRange(min=1), default=None, help="Stop after this many steps.")
@click.option("--eval/--no-eval", "run_eval", default=True, show_default=True, help="Score the val split at the end.")
@gen1_mode_option
@click.option(
    "--resume",
    is_flag=True,
    help="Continue from the -o checkpoint and its training state (-o path + '.state'), e.g. after an elastic "
    "restart; starts afresh when neither exists yet.",
)
def train(**opts) -> None:
    """Train a model from --config on --data; writes the checkpoint after every epoch.

    The checkpoint's meta records the data (for synthetic data the full recipe, so that
    `emsdeploy eval` rebuilds its validation split), the training settings and time, and,
    with --eval, mAP and per-layer firing rates on the validation split. Under torchrun it
    trains with DistributedDataParallel on the same global batch (docs/distributed.md).
    """
    import torch

    from ..distributed import current_world, process_group

    if opts["threads"]:
        torch.set_num_threads(opts["threads"])
    world = current_world()
    device = opts["device"]
    if world.distributed and (device in (None, "cuda") and torch.cuda.is_available()):
        device = f"cuda:{world.local_rank}"  # one GPU per process
        torch.cuda.set_device(device)
    backend = "nccl" if device is not None and device.startswith("cuda") else "gloo"
    with process_group(world, backend):
        run_training(**{**opts, "device": device})


def command_line(opts: dict) -> str:
    """The canonical command that reproduces a run (recorded in the checkpoint)."""
    parts = ["emsdeploy", "train"]
    for key in (p.name for p in train.params):
        value = opts.get(key)
        if key in ("output", "run_eval", "device", "threads", "resume") or value is None:
            continue
        for v in value if isinstance(value, tuple) else [value]:
            parts += [f"--{key.replace('_', '-')}", str(v)]
    if not opts["run_eval"]:
        parts.append("--no-eval")
    return shlex.join([*parts, "-o", str(opts["output"])])


def parse_hyp(items: tuple[str, ...]):
    """``("cls=5", ...)`` → a :class:`LossHyp` with those gains changed."""
    from dataclasses import replace

    from ..models.training import LossHyp

    hyp = LossHyp()
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or key not in ("box", "obj", "cls", "anchor_t"):
            raise click.BadParameter(f"{item!r}: expected box|obj|cls|anchor_t=NUMBER", param_hint="--hyp")
        try:
            hyp = replace(hyp, **{key: float(value)})
        except ValueError:
            raise click.BadParameter(f"{item!r}: {value!r} is not a number", param_hint="--hyp") from None
    return hyp


def data_meta(dataset, spec: str) -> dict:
    recipe = dataset.recipe()
    out = recipe if recipe is not None else {"kind": type(dataset).__name__, "spec": str(spec)}
    return out if getattr(dataset, "gen1_mode", None) is None else {**out, "gen1_mode": dataset.gen1_mode}


def run_training(**opts) -> None:
    import torch
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from ..checkpoint import from_model, save_checkpoint
    from ..distributed import current_world
    from ..errors import InputError
    from ..models import build_model
    from ..models.data import open_dataset
    from ..models.training import TrainConfig, train
    from ..models.training.optim import DEFAULT_LR
    from ..pipeline import check_run_size

    check_run_size(opts["time_steps"], [opts["input_size"]] if opts["input_size"] else None)
    train_set = open_dataset(opts["data"], "train", opts["input_size"], opts.get("gen1_mode"))
    if train_set.encoding == "frames" and opts["time_steps"] not in (None, train_set.time_steps):
        raise InputError(f"--data {opts['data']} has {train_set.time_steps} frames per sample; drop --time-steps")
    time_steps = train_set.time_steps if train_set.encoding == "frames" else (opts["time_steps"] or 4)
    model = build_model(opts["config"], time_steps, train_set.encoding, nc=len(train_set.names))
    model.names = list(train_set.names)
    cfg = TrainConfig(
        hyp=parse_hyp(opts["hyp"]),
        epochs=opts["epochs"],
        batch_size=opts["batch_size"],
        optimizer=opts["optimizer"],
        lr=opts["lr"] if opts["lr"] is not None else DEFAULT_LR[opts["optimizer"]],
        seed=opts["seed"],
        device=opts["device"],
        max_steps=opts["max_steps"],
    )
    output = Path(opts["output"])
    meta = {
        "input_size": train_set.input_size,
        "data": data_meta(train_set, opts["data"]),
        "config_source": str(opts["config"]),
        "train": {**cfg.to_dict(), "command": command_line(opts), "torch": _torch_version()},
    }
    if train_set.gen1_mode is not None:
        meta["gen1_mode"] = train_set.gen1_mode  # how its Gen1 inputs were binned; eval & co. default to it
    world = current_world()
    if world.distributed:
        meta["train"]["processes"] = world.size
    resume = load_resume(output, model, meta, cfg) if opts["resume"] else None
    console = Console(stderr=True, quiet=not world.leader)  # rank 0 reports for all
    started = time.perf_counter()
    params = sum(p.numel() for p in model.parameters())
    console.print(
        f"training {opts['config']} ({params:,} parameters, T={time_steps}, {train_set.encoding}) on "
        f"{len(train_set)} samples of {opts['data']} for {cfg.epochs} epochs"
    )
    columns = [
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    ]
    piped = not console.is_terminal  # piped or logged: no bar, one plain line per epoch instead
    with Progress(*columns, console=console, disable=piped or not world.leader) as progress:
        task = progress.add_task("epoch 1", total=None)

        def on_step(s) -> None:
            total = (
                cfg.epochs * s.steps_per_epoch
                if cfg.max_steps is None
                else min(cfg.max_steps, cfg.epochs * s.steps_per_epoch)
            )
            progress.update(
                task,
                total=total,
                advance=1,
                description=f"epoch {s.epoch + 1}/{cfg.epochs} loss {s.loss:.4f} "
                f"(box {s.box:.4f} obj {s.obj:.4f} cls {s.cls:.4f}) lr {s.lr:.2e}",
            )

        def on_epoch_end(info, m, state) -> None:
            meta["train"].update(epochs_done=info.epoch + 1, seconds=round(time.perf_counter() - started, 1))
            meta["train"].setdefault("epoch_loss", []).append(round(info.mean_loss, 5))
            if piped and world.leader:
                click.echo(
                    f"epoch {info.epoch + 1}/{cfg.epochs}: mean loss {info.mean_loss:.4f}, "
                    f"{time.perf_counter() - started:.0f} s",
                    err=True,
                )
            if world.leader:  # one writer; the state first, so a checkpoint always has its state
                save_train_state(output, state, cfg)
                save_checkpoint(output, from_model(m, meta))

        result = train(model, train_set, cfg, on_step, on_epoch_end, resume)
    meta["train"].update(
        seconds=round(result.seconds, 1), device=result.device, steps=result.steps, threads=torch.get_num_threads()
    )
    console.print(f"trained {result.steps} steps in {result.seconds / 60:.1f} min on {result.device}")
    if not world.leader:
        return
    if opts["run_eval"]:
        val_set = open_dataset(opts["data"], "val", train_set.input_size, train_set.gen1_mode)
        meta.update(validation(model, val_set, opts["data"], opts["batch_size"], opts["device"]))
        m = meta["metrics"]
        console.print(f"val: mAP@0.5 {m['map50']:.3f}  mAP@0.5:0.95 {m['map50_95']:.3f} on {m['images']} samples")
    save_checkpoint(output, from_model(model, meta))
    click.echo(f"wrote {output}")


def state_path(output: Path) -> Path:
    """Where the training state beside checkpoint ``output`` lives."""
    return output.with_name(output.name + ".state")


def save_train_state(output: Path, state, cfg) -> None:
    import torch

    from ..fileio import atomic_write

    payload = {"format": "emsdeploy-train-state", "config": cfg.to_dict(), **state.to_dict()}
    atomic_write(state_path(output), lambda tmp: torch.save(payload, tmp))


def load_resume(output: Path, model, meta: dict, cfg):
    """Load the weights of ``output`` into ``model`` and return its :class:`TrainState` (``--resume``);
    ``None`` when neither file exists yet (the run starts from the beginning).

    The settings must be those of the run being resumed; ``meta`` takes its progress record.
    """
    from ..checkpoint import load_checkpoint
    from ..errors import CheckpointError
    from ..models.training import TrainState

    path = state_path(output)
    if not output.exists() and not path.exists():
        return None  # nothing saved yet: the first launch of a command that torchrun may restart
    if not output.is_file() or not path.is_file():
        raise CheckpointError(
            f"--resume: {output} and {path.name} are both needed; run without --resume to start afresh"
        )
    ckpt = load_checkpoint(output)
    from ..checkpoint.torchfile import read_torch_file

    data = read_torch_file(path)  # the checked reader: never torch.load on a user file (docs/security.md)
    if not isinstance(data, dict) or data.get("format") != "emsdeploy-train-state":
        raise CheckpointError(f"{path}: not an emsdeploy training state (no format tag)")
    if data.get("config") != cfg.to_dict():
        raise CheckpointError(f"{path}: saved by a run with other settings; resume with the same options as that run")
    try:
        state = TrainState.from_dict(data)
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: training state field missing or malformed ({e})") from None
    model.load_state_dict(ckpt.state_dict)
    done = ckpt.meta.get("train", {})
    meta["train"]["epoch_loss"] = list(done.get("epoch_loss", []))[: state.epoch]
    meta["train"]["resumed_from_epoch"] = state.epoch
    return state


def validation(model, dataset, spec: str, batch_size: int, device: str | None) -> dict:
    """mAP on the dataset and LIF firing rates on its first batch, as checkpoint meta."""
    import torch

    from ..models.training import evaluate, firing_rates, pick_device

    metrics = evaluate(model, dataset, batch_size, device)
    x = torch.stack([dataset[i].x for i in range(min(batch_size, len(dataset)))]).to(pick_device(device))
    rates = firing_rates(model.to(x.device), x)
    return {
        "metrics": {**metrics, "data": data_meta(dataset, spec)},
        "firing_rates": {k: round(v, 5) for k, v in rates.items()},
    }


def _torch_version() -> str:
    import torch

    return str(torch.__version__)
