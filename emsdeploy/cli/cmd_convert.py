"""``emsdeploy convert``: official EMS-YOLO or SpikeYOLO checkpoint -> emsdeploy checkpoint."""

from __future__ import annotations

import click


@click.command()
@click.argument("official", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Where to write our checkpoint.")
@click.option(
    "--time-steps",
    "-T",
    type=click.IntRange(min=1),
    default=None,
    help="Time steps T. Official EMS-YOLO checkpoints do not store it. Default: 5 for Gen1 models "
    "(2 classes, car/pedestrian), else 4 (the paper's COCO setting); SpikeYOLO files store theirs.",
)
@click.option(
    "--encoding",
    type=click.Choice(["direct", "frames"]),
    default=None,
    help="Input encoding. Default: frames for Gen1 models, else direct (a static image repeated T times).",
)
def convert(official: str, output: str, time_steps: int | None, encoding: str | None) -> None:
    """Convert an OFFICIAL EMS-YOLO or SpikeYOLO checkpoint (.pt) into the emsdeploy format.

    The file is read with a restricted unpickler: it may reference only tensors, plain
    containers and the official model classes, which become inert stand-ins; nothing in
    it is executed.
    """
    from ..checkpoint import import_official, save_checkpoint

    ckpt = import_official(official, time_steps, encoding)
    model = ckpt.build()
    n_params = sum(p.numel() for p in model.parameters())
    save_checkpoint(output, ckpt)
    layers = [type(m).__name__ if not hasattr(m, "type") else m.type for m in model.model]
    assumed = ckpt.meta.get("assumed") or {}
    click.echo(
        f"architecture : {ckpt.meta['source'].get('yaml_file') or 'from pickled yaml'} "
        f"({len(layers)} layers: {', '.join(dict.fromkeys(layers))})"
    )
    click.echo(
        f"classes      : {ckpt.config['nc']} ({', '.join(ckpt.names[:5])}{', ...' if len(ckpt.names) > 5 else ''})"
    )
    click.echo(
        f"time steps   : {ckpt.time_steps}{'  (assumed; pass --time-steps to set)' if 'time_steps' in assumed else ''}"
    )
    click.echo(
        f"encoding     : {ckpt.encoding}{'  (assumed; pass --encoding to set)' if 'encoding' in assumed else ''}"
    )
    if ckpt.meta.get("gen1_mode"):
        click.echo(
            f"gen1 mode    : {ckpt.meta['gen1_mode']}  (recorded: the official Gen1 loader fed bin 0 at every "
            "step; eval/energy/verify bin Gen1 data so; --gen1-mode overrides; docs/gen1.md)"
        )
    click.echo(f"parameters   : {n_params:,}")
    click.echo(f"weights      : ckpt['{ckpt.meta['source']['weights']}'], cast to float32")
    click.echo(f"wrote        : {output}")
