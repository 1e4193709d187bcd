"""Detection data: a deterministic synthetic dataset (static shapes, and moving shapes seen by
an event camera), and loaders for what users bring: COCO JSON + images, Prophesee Gen1 events.

Every loader yields :class:`Sample` objects and reports its labels as a COCO dict, so one
trainer and one evaluator serve them all. Malformed files raise :class:`DatasetError`
naming the file and the field.
"""

from .coco import CocoDetection, read_coco
from .errors import DatasetError, DatasetWarning
from .events import EVENT_DTYPE, bin_events, frames_to_input, resize_frames
from .export import export_coco
from .gen1 import (
    DEFAULT_GEN1_MODE,
    GEN1_CLASSES,
    GEN1_MODES,
    Gen1Detection,
    check_gen1_mode,
    read_boxes,
    read_dat,
    read_dat_header,
    resolve_gen1_mode,
)
from .recipe import KINDS, SPLITS, SynthRecipe
from .sample import DetectionDataset, Sample, collate
from .shapes import SHAPE_CLASSES, Shape
from .sources import dataset_from_recipe, open_dataset
from .synthetic import SyntheticShapes
from .synthetic_events import SyntheticEvents, make_events

__all__ = [
    "DEFAULT_GEN1_MODE",
    "EVENT_DTYPE",
    "GEN1_CLASSES",
    "GEN1_MODES",
    "KINDS",
    "SHAPE_CLASSES",
    "SPLITS",
    "CocoDetection",
    "DatasetError",
    "DatasetWarning",
    "DetectionDataset",
    "Gen1Detection",
    "Sample",
    "Shape",
    "SynthRecipe",
    "SyntheticEvents",
    "SyntheticShapes",
    "bin_events",
    "check_gen1_mode",
    "collate",
    "dataset_from_recipe",
    "export_coco",
    "frames_to_input",
    "make_events",
    "open_dataset",
    "read_boxes",
    "read_coco",
    "read_dat",
    "read_dat_header",
    "resize_frames",
    "resolve_gen1_mode",
]
