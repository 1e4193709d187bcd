"""Open a dataset from one ``--data`` string: a synthetic recipe, a COCO file or folder, or Gen1 files.

Accepted forms (``split`` is ``train`` or ``val``):

- ``shapes`` / ``events``, optionally with integer overrides: ``shapes:seed=1,train=2000``;
- a COCO ``instances`` JSON file (image ``file_name`` relative to the JSON's folder);
- a folder with ``<split>/annotations.json``, ``<split>.json`` or ``annotations.json``;
- a folder of Gen1 ``*_td.dat`` + ``*_bbox.npy`` pairs, or one with such a ``<split>/`` folder.
"""

from __future__ import annotations

from pathlib import Path

from .coco import CocoDetection
from .errors import DatasetError
from .gen1 import DEFAULT_GEN1_MODE, Gen1Detection
from .recipe import KINDS, SynthRecipe
from .sample import DetectionDataset
from .synthetic import SyntheticShapes
from .synthetic_events import SyntheticEvents

__all__ = ["dataset_from_recipe", "open_dataset"]

GEN1_SPLIT_ALIASES = {"val": ("val", "test")}


def dataset_from_recipe(recipe: SynthRecipe | dict, split: str) -> DetectionDataset:
    """The synthetic dataset a recipe (or its stored dict, with or without ``split``) describes."""
    if isinstance(recipe, dict):
        recipe = SynthRecipe.from_dict({k: v for k, v in recipe.items() if k != "split"})
    return (SyntheticShapes if recipe.kind == "shapes" else SyntheticEvents)(recipe, split)


def open_dataset(
    spec: str | Path,
    split: str,
    input_size: int | None = None,
    gen1_mode: str | None = None,
    letterbox: bool = False,
) -> DetectionDataset:
    """The ``split`` of the dataset named by ``spec`` (see the module docstring).

    ``input_size`` sets the model input side for COCO (default 640) and Gen1 (default 320);
    synthetic data has the size of its recipe. ``gen1_mode`` is the Gen1 input mode
    (``per-bin`` when ``None``); other data ignore it. ``letterbox`` fits COCO images into the
    input keeping their aspect (synthetic images are square already; Gen1 keeps its own resize).
    """
    mode = gen1_mode or DEFAULT_GEN1_MODE
    path = Path(spec)
    if not path.exists() and str(spec).partition(":")[0] in KINDS:
        return dataset_from_recipe(SynthRecipe.parse(str(spec)), split)
    if not path.exists():
        raise DatasetError(
            path, "data", f"no such file or folder (nor a synthetic recipe: {', '.join(KINDS)}[:key=value,...])"
        )
    if path.is_file():
        if path.suffix == ".json":
            return CocoDetection(path, input_size=input_size or 640, letterbox=letterbox)
        if path.name.endswith("_td.dat"):
            return Gen1Detection([path], input_size=input_size or 320, mode=mode)
        raise DatasetError(path, "data", "expected a COCO .json file, a Gen1 *_td.dat file, or a folder")
    if any(path.glob("*_td.dat")):
        return Gen1Detection(path, input_size=input_size or 320, mode=mode)
    for name in GEN1_SPLIT_ALIASES.get(split, (split,)):
        if any((path / name).glob("*_td.dat")):
            return Gen1Detection(path / name, input_size=input_size or 320, mode=mode)
    for candidate in (path / split / "annotations.json", path / f"{split}.json", path / "annotations.json"):
        if candidate.is_file():
            return CocoDetection(candidate, input_size=input_size or 640, letterbox=letterbox)
    raise DatasetError(
        path,
        "data",
        f"found no {split} data: expected {split}/annotations.json, {split}.json, annotations.json, "
        f"*_td.dat files or a {split}/ folder of them",
    )
