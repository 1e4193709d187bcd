"""``emsdeploy train``: train an EMS-YOLO config on a dataset and write our checkpoint."""

from __future__ import annotations

import shlex
import time
from pathlib import Path
from typing import Any

import click

from .options import gen1_mode_option


@click.command()
@click.option(
    "--config",
    "config",
    default=None,
    help="Shipped config name (EMS-YOLO or spikeyolo-n/s/m/l) or YAML path [default: emsyolo-tiny; with --weights, the checkpoint's].",
)
@click.option(
    "--data",
    default="shapes",
    show_default=True,
    help="Synthetic recipe (shapes | events[:key=value,...]), a COCO .json / folder, or a Gen1 folder.",
)
@click.option(
    "--recipe",
    default="fast",
    show_default=True,
    help="Training recipe: official (BICLab/EMS-YOLO's train.py with hyp.scratch.yaml), fast (short CPU runs), "
    "or a .toml/.yaml file of hyperparameters (docs/training.md).",
)
@click.option("--epochs", type=click.IntRange(min=1), default=30, show_default=True)
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Checkpoint to write.")
@click.option("--time-steps", "-T", type=click.IntRange(min=1), default=None, help="T for direct encoding (default 4; SpikeYOLO: its config's, 1).")
@click.option("--input-size", type=click.IntRange(min=32), default=None, help="Model input side (COCO, Gen1).")
@click.option("--batch-size", "-b", type=click.IntRange(min=1), default=32, show_default=True)
@click.option(
    "--optimizer",
    type=click.Choice(["adamw", "sgd"]),
    default=None,
    help="Override the recipe's optimizer (its learning rate then defaults to 0.01 SGD, 0.002 AdamW).",
)
@click.option("--lr", type=float, default=None, help="Override the recipe's peak learning rate (lr0).")
@click.option(
    "--hyp",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override one recipe hyperparameter (e.g. cls=5, mosaic=0; loss gains before YOLOv5's rescaling); repeatable.",
)
@click.option(
    "--weights",
    type=click.Path(dir_okay=False),
    default=None,
    help="Start from this checkpoint (ours or an official one): its architecture and every weight whose shape fits.",
)
@click.option(
    "--freeze",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Freeze the parameters of the first N layers (model.0 .. model.N-1).",
)
@click.option(
    "--val-every",
    type=click.IntRange(min=0),
    default=None,
    help="Validate every N epochs and keep the best checkpoint by fitness beside -o (0: only at the end) "
    "[default: 1 for epoch-scheduled recipes such as official, else 0].",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", default=None, help="torch device (default: cuda if available, else cpu).")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="CPU threads for torch.")
@click.option("--max-steps", type=click.IntRange(min=1), default=None, help="Stop after this many batches.")
@click.option("--eval/--no-eval", "run_eval", default=True, show_default=True, help="Score the val split at the end.")
@gen1_mode_option
@click.option(
    "--resume",
    is_flag=True,
    help="Continue from the -o checkpoint and its training state (-o path + '.state'), e.g. after an elastic "
    "restart; starts afresh when neither exists yet.",
)
def train(**opts) -> None:
    """Train a model from --config (or --weights) on --data by a --recipe; writes the checkpoint
    after every epoch.

    The checkpoint's meta records the data (for synthetic data the full recipe, so that
    `emsdeploy eval` rebuilds its validation split), the whole training recipe, the parent
    checkpoint (path and SHA-256) with --weights, the training time, and, with --eval, mAP and
    per-layer firing rates on the validation split. With an EMA (the official recipe) the saved
    weights are the average. Under torchrun it trains with DistributedDataParallel on the same
    global batch (docs/distributed.md).
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
    opts = {**opts, "config": opts.get("config") or (None if opts.get("weights") else "emsyolo-tiny")}
    for key in (p.name for p in train.params):
        value = opts.get(key)
        if key in ("output", "run_eval", "device", "threads", "resume") or value is None:
            continue
        if key == "freeze" and not value:
            continue
        for v in value if isinstance(value, tuple) else [value]:
            parts += [f"--{key.replace('_', '-')}", str(v)]
    if not opts["run_eval"]:
        parts.append("--no-eval")
    return shlex.join([*parts, "-o", str(opts["output"])])


def resolve_recipe(opts: dict):
    """The :class:`Recipe` of ``--recipe`` with ``--optimizer``, ``--lr`` and ``--hyp`` applied."""
    from ..models.training.optim import DEFAULT_LR
    from ..models.training.recipe_file import parse_scalar, parse_value, read_recipe, recipe_from_dict

    recipe, _ = read_recipe(opts["recipe"])
    values: dict = {}
    for item in opts["hyp"]:
        key, eq, value = item.partition("=")
        if not eq:
            raise click.BadParameter(f"{item!r}: expected KEY=VALUE", param_hint="--hyp")
        try:
            parsed = parse_scalar(value)
        except ValueError:
            raise click.BadParameter(f"{item!r}: {value!r} is not a value", param_hint="--hyp") from None
        values[key.strip()] = parse_value("--hyp", key.strip(), parsed)
    if opts["optimizer"] is not None:
        if opts["optimizer"] != recipe.optimizer and opts["lr"] is None and "lr0" not in values:
            values["lr0"] = DEFAULT_LR[opts["optimizer"]]  # another optimiser: its own default rate
        values["optimizer"] = opts["optimizer"]
    if opts["lr"] is not None:
        values["lr0"] = parse_value("--lr", "lr0", opts["lr"])
    if not values:
        return recipe
    return recipe_from_dict({**recipe.to_dict(), **values, "base": "official"}, "--hyp", recipe.name)


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
    from ..models.data import open_dataset
    from ..models.training import TrainConfig, seed_everything, train
    from ..pipeline import check_run_size

    check_run_size(opts["time_steps"], [opts["input_size"]] if opts["input_size"] else None)
    recipe = resolve_recipe(opts)
    if opts["weights"] is not None and opts["config"] is not None:
        raise InputError("--weights brings its own architecture; drop --config")
    train_set = open_dataset(opts["data"], "train", opts["input_size"], opts.get("gen1_mode"), recipe.letterbox)
    if train_set.encoding == "frames" and opts["time_steps"] not in (None, train_set.time_steps):
        raise InputError(f"--data {opts['data']} has {train_set.time_steps} frames per sample; drop --time-steps")
    # None: the family's default (4 for EMS-YOLO, the config's T for SpikeYOLO: 1, as the paper's COCO runs)
    time_steps = train_set.time_steps if train_set.encoding == "frames" else opts["time_steps"]
    seed_everything(opts["seed"])  # the initial weights too: the command reproduces the run
    model, parent = initial_model(opts, time_steps, train_set)
    time_steps = model.time_steps
    model.names = list(train_set.names)
    frozen = freeze_layers(model, opts["freeze"])
    cfg = TrainConfig(
        epochs=opts["epochs"],
        batch_size=opts["batch_size"],
        recipe=recipe,
        seed=opts["seed"],
        device=opts["device"],
        max_steps=opts["max_steps"],
    )
    val_every = opts["val_every"] if opts["val_every"] is not None else int(recipe.lr_schedule == "epoch")
    output = Path(opts["output"])
    best_path = best_checkpoint_path(output)
    meta: dict[str, Any] = {
        "input_size": train_set.input_size,
        "data": data_meta(train_set, opts["data"]),
        "config_source": str(opts["weights"] or opts["config"] or "emsyolo-tiny"),
        "train": {**cfg.to_dict(), "command": command_line(opts), "torch": _torch_version()},
    }
    if recipe.letterbox and train_set.encoding == "direct":
        meta["letterbox"] = True  # eval fits images the same way
    if parent is not None:
        meta["parent"] = parent
    if frozen:
        meta["train"]["frozen_layers"] = opts["freeze"]
    if train_set.gen1_mode is not None:
        meta["gen1_mode"] = train_set.gen1_mode  # how its Gen1 inputs were binned; eval & co. default to it
    world = current_world()
    if world.distributed:
        meta["train"]["processes"] = world.size
    resume = load_resume(output, model, meta, cfg) if opts["resume"] else None
    console = Console(stderr=True, quiet=not world.leader)  # rank 0 reports for all
    started = time.perf_counter()
    params = sum(p.numel() for p in model.parameters())
    source = f" from {opts['weights']}" if opts["weights"] else ""
    console.print(
        f"training {meta['config_source']}{source} ({params:,} parameters, T={time_steps}, {train_set.encoding}) on "
        f"{len(train_set)} samples of {opts['data']} for {cfg.epochs} epochs, recipe {recipe.name}"
    )
    val_set = None
    if world.leader and (opts["run_eval"] or val_every):
        val_set = open_dataset(opts["data"], "val", train_set.input_size, train_set.gen1_mode, recipe.letterbox)
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
            if not world.leader:
                return
            if val_every and (info.epoch + 1) % val_every == 0 and val_set is not None:
                keep_if_best(m, val_set, opts, meta, info.epoch, best_path)
            # one writer; the state first, so a checkpoint always has its state
            save_train_state(output, state, cfg)
            save_checkpoint(output, from_model(m, meta))

        result = train(model, train_set, cfg, on_step, on_epoch_end, resume)
    meta["train"].update(
        seconds=round(result.seconds, 1),
        device=result.device,
        steps=result.steps,
        optimizer_steps=result.optimizer_steps,
        threads=torch.get_num_threads(),
        augmented=result.augmented,
    )
    if result.anchors is not None:
        meta["train"]["autoanchor"] = result.anchors.to_dict()
    console.print(f"trained {result.steps} steps in {result.seconds / 60:.1f} min on {result.device}")
    if result.anchors is not None and result.anchors.replaced:
        console.print(
            f"autoanchor: best possible recall {result.anchors.bpr:.3f} -> {result.anchors.new_bpr:.3f}, anchors refitted"
        )
    if not world.leader:
        return
    if opts["run_eval"] and val_set is not None:
        meta.update(validation(model, val_set, opts["data"], opts["batch_size"], opts["device"]))
        m = meta["metrics"]
        console.print(f"val: mAP@0.5 {m['map50']:.3f}  mAP@0.5:0.95 {m['map50_95']:.3f} on {m['images']} samples")
    save_checkpoint(output, from_model(model, meta))
    click.echo(f"wrote {output}" + (f" (best: {best_path})" if "best" in meta["train"] else ""))


def fitness(metrics: dict) -> float:
    """The official ``utils/metrics.py`` fitness: 0.1 · mAP@0.5 + 0.9 · mAP@0.5:0.95."""
    return 0.1 * float(metrics["map50"]) + 0.9 * float(metrics["map50_95"])


def best_checkpoint_path(output: Path) -> Path:
    """Where the best checkpoint by fitness goes: ``run.pt`` → ``run.best.pt``."""
    return output.with_name(f"{output.stem}.best{output.suffix or '.pt'}")


def keep_if_best(model, val_set, opts: dict, meta: dict, epoch: int, best_path: Path) -> None:
    """Score ``model`` on the val split; record it, and save it to ``best_path`` if its fitness is the best yet
    (or equals it: the official ``train.py`` saves ``best.pt`` whenever ``best_fitness == fi``)."""
    from ..checkpoint import from_model, save_checkpoint
    from ..models.training import evaluate

    metrics = evaluate(model, val_set, opts["batch_size"], opts["device"])
    fit = fitness(metrics)
    record = {"epoch": epoch + 1, "fitness": round(fit, 6), "map50": metrics["map50"], "map50_95": metrics["map50_95"]}
    meta["train"].setdefault("val", []).append(record)
    best = meta["train"].get("best")
    if best is None or fit >= best["fitness"]:  # ties: the later epoch, as the official `best_fitness == fi`
        meta["train"]["best"] = {**record, "path": best_path.name}
        save_checkpoint(
            best_path, from_model(model, {**meta, "metrics": {**metrics, "data": data_meta(val_set, opts["data"])}})
        )


def initial_model(opts: dict, time_steps: int | None, train_set):
    """A fresh model from ``--config``, or (``--weights``) one with the architecture of that
    checkpoint and every weight whose name and shape fit (the official ``intersect_dicts``: a
    head for another number of classes starts afresh). Returns the model and the parent record."""
    from ..fileio import sha256_file
    from ..models.family import build_detector

    nc = len(train_set.names)
    if opts["weights"] is None:
        return build_detector(opts["config"] or "emsyolo-tiny", time_steps, train_set.encoding, nc=nc), None
    from ..checkpoint import load_any

    path = Path(opts["weights"])
    ckpt = load_any(path)  # the checked reader; an official file through the restricted unpickler
    ckpt.model()  # config and weights agree (else one error naming the file)
    model = build_detector(ckpt.config, time_steps, train_set.encoding, nc=nc)
    own = model.state_dict()
    fits = {k: v for k, v in ckpt.state_dict.items() if k in own and tuple(v.shape) == tuple(own[k].shape)}
    model.load_state_dict(fits, strict=False)
    source = ckpt.meta.get("source", {})
    parent = {
        "path": str(path),
        "sha256": sha256_file(path),
        "format": source.get("format", "emsdeploy"),
        "transferred": len(fits),
        "of": len(own),
    }
    return model, parent


def freeze_layers(model, n: int) -> int:
    """Stop gradients to the parameters of layers ``model.0`` .. ``model.{n-1}``; returns how many parameters."""
    prefixes = tuple(f"model.{i}." for i in range(n))
    frozen = 0
    for name, p in model.named_parameters():
        if name.startswith(prefixes):
            p.requires_grad_(False)
            frozen += p.numel()
    return frozen


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
    model.load_state_dict(state.weights if state.weights is not None else ckpt.state_dict)
    done = ckpt.meta.get("train", {})
    meta["train"]["epoch_loss"] = list(done.get("epoch_loss", []))[: state.epoch]
    for key in ("best", "val"):  # the best checkpoint so far stays the one to beat
        if key in done:
            meta["train"][key] = done[key]
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
