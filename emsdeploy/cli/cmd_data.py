"""``emsdeploy data``: write a dataset split as a COCO folder (PNG images + annotations.json)."""

from __future__ import annotations

import click


@click.command()
@click.argument("spec", default="shapes")
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False), help="Folder to write.")
@click.option("--split", type=click.Choice(["train", "val"]), default="val", show_default=True)
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Write only the first N images.")
def data(spec: str, output: str, split: str, limit: int | None) -> None:
    """Write SPEC's split as PNG images plus COCO annotations.json.

    SPEC is a synthetic recipe (shapes[:key=value,...]; deterministic, the same bytes for
    the same recipe) or any dataset `emsdeploy train --data` accepts with a direct encoding.
    Useful to look at the data, to feed `emsdeploy run`/`energy`/`verify --input`, or to
    share it with other tools.
    """
    from ..models.data import DatasetError, open_dataset
    from ..models.data.export import export_coco

    dataset = open_dataset(spec, split)
    try:
        path = export_coco(dataset, output, limit)
    except ValueError as e:
        if isinstance(e, DatasetError):
            raise
        raise click.UsageError(f"{spec}: {e}") from None
    n = len(dataset) if limit is None else min(limit, len(dataset))
    click.echo(f"wrote {n} {split} images and {path}")
