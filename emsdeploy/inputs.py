"""User inputs for the CLI: an image file, a folder of images, or a ``.npy`` array.

Shared by ``run``, ``energy`` and ``verify`` so that they accept the same forms:

* an image (PNG, JPEG, BMP, ...): letterboxed to the model's input size, values in [0, 1];
* a folder: every image in it, in sorted order (an empty folder is an error);
* a ``.npy``: ``[B, C, H, W]`` images (direct encoding) or ``[B, T, C, H, W]`` frames, float
  values in [0, 1] (uint8 arrays are divided by 255), already at the model's input size;
* Gen1 event data (frames encoding): a ``*_td.dat`` file (with its ``*_bbox.npy``) or a folder
  of them, one sample per label time, binned in the Gen1 mode given (docs/gen1.md).

Errors name the file and what is supported (:class:`~emsdeploy.errors.InputError`).

:class:`InputSet` is what reports average over: the user's ``--input``, else the validation
split of the synthetic dataset a checkpoint was trained on (its ``meta["data"]`` recipe), else
deterministic random inputs; it always says which, and why it fell back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .errors import InputError
from .fileio import load_npy, npy_header, open_image
from .ir import Graph

__all__ = [
    "IMAGE_SUFFIXES",
    "InputSet",
    "choose_inputs",
    "Letterbox",
    "Sample",
    "count_inputs",
    "default_inputs",
    "iter_inputs",
    "load_image",
    "random_inputs",
    "user_inputs",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
PAD_VALUE = 114 / 255  # YOLOv5's letterbox grey


@dataclass(frozen=True)
class Letterbox:
    """How an image was fitted into the model input: ``model_xy = image_xy · scale + pad``."""

    scale: float
    pad: tuple[float, float]  # (x, y) in model pixels
    image_size: tuple[int, int]  # (width, height) of the original image

    def to_image(self, boxes_xyxy: torch.Tensor) -> torch.Tensor:
        """Map boxes from model pixels back to original-image pixels (clipped to the image)."""
        b = boxes_xyxy.clone()
        b[..., [0, 2]] = ((b[..., [0, 2]] - self.pad[0]) / self.scale).clamp(0, self.image_size[0])
        b[..., [1, 3]] = ((b[..., [1, 3]] - self.pad[1]) / self.scale).clamp(0, self.image_size[1])
        return b


@dataclass
class Sample:
    """One model input: ``x`` is ``[1, C, H, W]`` (direct) or ``[1, T, C, H, W]`` (frames)."""

    name: str
    x: torch.Tensor
    letterbox: Letterbox | None = None


def load_image(path: str | Path, size: tuple[int, int], channels: int = 3) -> tuple[torch.Tensor, Letterbox]:
    """Read an image and letterbox it to ``size = (H, W)``: returns ``[1, C, H, W]`` in [0, 1]."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    try:
        with open_image(path) as im:  # the checked reader: pixel count bounded before decoding
            im = im.convert("RGB" if channels == 3 else "L")
            w0, h0 = im.size
            h, w = size
            scale = min(h / h0, w / w0)
            nw, nh = max(1, round(w0 * scale)), max(1, round(h0 * scale))
            resized = im.resize((nw, nh), Image.Resampling.BILINEAR)
            arr = np.asarray(resized, dtype=np.float32) / 255.0
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except (UnidentifiedImageError, OSError) as e:
        raise InputError(f"{path}: not a readable image ({e}); supported: {', '.join(IMAGE_SUFFIXES)}") from None
    if arr.ndim == 2:
        arr = arr[..., None]
    canvas = np.full((h, w, arr.shape[2]), PAD_VALUE, dtype=np.float32)
    px, py = (w - nw) // 2, (h - nh) // 2
    canvas[py : py + nh, px : px + nw] = arr
    x = torch.from_numpy(canvas).permute(2, 0, 1).unsqueeze(0).contiguous()
    return x, Letterbox(scale, (float(px), float(py)), (w0, h0))


def _images_in(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise InputError(f"{folder}: no images in this folder (looked for {', '.join(IMAGE_SUFFIXES)})")
    return files


def _load_npy(path: Path, shape: Sequence[int], encoding: str, time_steps: int | None) -> np.ndarray:
    # the checked reader: no pickles, size bounded before loading, no complex, no NaN/Inf, not empty
    arr = load_npy(path, kinds="uf")
    want = "[B, C, H, W] images" if encoding == "direct" else "[B, T, C, H, W] frames"
    ndim = 4 if encoding == "direct" else 5
    if arr.ndim != ndim or tuple(arr.shape[-3:]) != tuple(shape):
        raise InputError(
            f"{path}: array of shape {arr.shape}; the model ({encoding} encoding) takes {want} with "
            f"C, H, W = {tuple(shape)}"
        )
    if encoding == "frames" and time_steps is not None and arr.shape[1] != time_steps:
        raise InputError(f"{path}: holds {arr.shape[1]} frames per sample, but T = {time_steps}")
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / 255.0
    if arr.dtype.kind != "f":
        raise InputError(f"{path}: dtype {arr.dtype} unsupported; use float in [0, 1] or uint8")
    return arr.astype(np.float32)


def _is_gen1(path: Path) -> bool:
    return (path.is_file() and path.name.endswith("_td.dat")) or (path.is_dir() and any(path.glob("*_td.dat")))


def _gen1_dataset(path: Path, size: int = 320, time_steps: int | None = None, gen1_mode: str | None = None):
    from .models.data import DEFAULT_GEN1_MODE, Gen1Detection
    from .models.data.gen1 import TIME_BINS

    files: Path | list[str | Path] = path if path.is_dir() else [path]
    return Gen1Detection(files, input_size=size, time_bins=time_steps or TIME_BINS, mode=gen1_mode or DEFAULT_GEN1_MODE)


def _gen1_samples(
    path: Path, shape: Sequence[int], encoding: str, time_steps: int | None, gen1_mode: str | None
) -> Iterator[Sample]:
    if encoding != "frames":
        raise InputError(f"{path}: Gen1 event data feeds frames-encoded models; this model takes {encoding} images")
    if shape[0] != 3 or shape[1] != shape[2]:
        raise InputError(
            f"{path}: Gen1 frames are 3-channel and resized to a square; the model takes C, H, W = {tuple(shape)}"
        )
    dataset = _gen1_dataset(path, int(shape[1]), time_steps, gen1_mode)
    for i, (k, ts, _) in enumerate(dataset.index):
        yield Sample(f"{dataset.files[k][0].name}@{ts}", dataset[i].x.unsqueeze(0))


def count_inputs(spec: str | Path, encoding: str) -> int:
    """How many samples ``iter_inputs`` will yield (for progress bars), without loading images."""
    path = Path(spec)
    if _is_gen1(path):
        return len(_gen1_dataset(path))
    if path.is_dir():
        return len(_images_in(path))
    if path.suffix.lower() == ".npy":
        shape, _, _ = npy_header(path)
        if not shape:
            raise InputError(f"{path}: a 0-d array; inputs are [B, C, H, W] or [B, T, C, H, W]")
        return shape[0]
    return 1


def iter_inputs(
    spec: str | Path,
    shape: Sequence[int],
    encoding: str,
    time_steps: int | None = None,
    gen1_mode: str | None = None,
) -> Iterator[Sample]:
    """Yield model inputs for ``spec`` (image, folder, ``.npy`` or Gen1 data), one sample at a time.

    Args:
        shape: the model's ``(C, H, W)`` input.
        encoding: ``direct`` or ``frames``; images are only valid for ``direct``, Gen1 data for ``frames``.
        gen1_mode: ``official`` or ``per-bin`` (default) for Gen1 data.
    """
    path = Path(spec)
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    if _is_gen1(path):
        yield from _gen1_samples(path, shape, encoding, time_steps, gen1_mode)
        return
    if path.suffix.lower() == ".npy" and path.is_file():
        arr = _load_npy(path, shape, encoding, time_steps)
        for i in range(arr.shape[0]):
            yield Sample(f"{path.name}[{i}]", torch.from_numpy(arr[i : i + 1].copy()))
        return
    if encoding != "direct":
        raise InputError(f"{path}: images feed direct-encoded models; this model takes event frames (use a .npy)")
    files = _images_in(path) if path.is_dir() else [path]
    for f in files:
        x, lb = load_image(f, (shape[1], shape[2]), shape[0])
        yield Sample(f.name, x, lb)


# --- input sets: what a report averages over -------------------------------------------------

RANDOM_SEED = 0
EVENT_DENSITY = 0.02  # random event frames: this fraction of pixels carries an ON or OFF event


@dataclass
class InputSet:
    """Samples to average over: ``samples()`` yields ``[1, C, H, W]`` or ``[1, T, C, H, W]`` tensors."""

    kind: str  # "user", "synthetic-val" or "random"
    description: str
    count: int
    samples: Callable[[], Iterator[torch.Tensor]]
    note: str = ""
    gen1_mode: str | None = None  # for Gen1 models and data: the mode the inputs are (or would be) binned in
    # Sample i without making the ones before it, where the source allows (a sweep's rank then
    # makes only its own shards' samples); None: read ``samples()`` in order.
    at: Callable[[int], torch.Tensor] | None = None

    def to_dict(self) -> dict:
        out = {"kind": self.kind, "description": self.description, "samples": self.count, "note": self.note}
        return out if self.gen1_mode is None else {**out, "gen1_mode": self.gen1_mode}


def _input_info(graph: Graph) -> tuple[tuple[int, int, int], str]:
    node = graph.input_node()
    return tuple(node.op.shape), node.op.encoding  # type: ignore[attr-defined]


def user_inputs(
    spec: str | Path, graph: Graph, limit: int | None, time_steps: int | None, gen1_mode: str | None = None
) -> InputSet:
    """The samples of an image, a folder of images, a ``.npy`` or Gen1 data (at most ``limit``)."""
    shape, encoding = _input_info(graph)
    total = count_inputs(spec, encoding)  # raises InputError for an empty folder or unreadable array
    count = min(total, limit) if limit else total
    frames_t = time_steps if encoding == "frames" else None

    def samples() -> Iterator[torch.Tensor]:
        for i, sample in enumerate(iter_inputs(spec, shape, encoding, frames_t, gen1_mode)):
            if i >= count:
                return
            yield sample.x

    return InputSet("user", f"{spec} ({count} of {total} samples)", count, samples)


def random_inputs(graph: Graph, count: int, time_steps: int | None, note: str = "") -> InputSet:
    """Deterministic random inputs: uniform pixels (direct) or sparse ON/OFF events on grey (frames)."""
    shape, encoding = _input_info(graph)
    T = int(time_steps or graph.time_steps)

    def samples() -> Iterator[torch.Tensor]:
        gen = torch.Generator().manual_seed(RANDOM_SEED)
        for _ in range(count):
            if encoding == "direct":
                yield torch.rand((1, *shape), generator=gen)
            else:
                events = torch.rand((1, T, *shape), generator=gen) < EVENT_DENSITY
                polarity = (torch.rand((1, T, *shape), generator=gen) < 0.5).float()
                yield torch.where(events, polarity, torch.full_like(polarity, 0.5))

    what = (
        "uniform [0, 1] images" if encoding == "direct" else f"event frames ({EVENT_DENSITY:.0%} ON/OFF events on grey)"
    )
    return InputSet("random", f"{count} deterministic random {what}, seed {RANDOM_SEED}", count, samples, note)


def default_inputs(graph: Graph, meta: dict | None, count: int, time_steps: int | None) -> InputSet:
    """The checkpoint's synthetic validation split if its meta names one and it fits; else random."""
    data = (meta or {}).get("data")
    if not isinstance(data, dict) or "kind" not in data:
        return random_inputs(graph, count, time_steps, "the checkpoint names no synthetic dataset")
    from .models.data import dataset_from_recipe

    try:
        dataset = dataset_from_recipe(data, "val")
        first = dataset[0].x
    except (ValueError, TypeError, KeyError, IndexError) as e:
        return random_inputs(graph, count, time_steps, f"cannot rebuild the checkpoint's dataset ({e})")
    shape, encoding = _input_info(graph)
    if dataset.encoding != encoding or tuple(first.shape[-3:]) != tuple(shape):
        return random_inputs(
            graph,
            count,
            time_steps,
            f"the checkpoint's dataset gives {dataset.encoding} inputs of {tuple(first.shape)}, the graph takes "
            f"{encoding} {tuple(shape)}",
        )
    if encoding == "frames" and time_steps is not None and first.shape[0] != time_steps:
        return random_inputs(
            graph,
            count,
            time_steps,
            f"the checkpoint's dataset has {first.shape[0]} frames, --time-steps is {time_steps}",
        )
    n = min(count, len(dataset))

    def samples() -> Iterator[torch.Tensor]:
        for i in range(n):
            yield dataset[i].x.unsqueeze(0)

    recipe = ", ".join(f"{k}={v}" for k, v in data.items() if k != "split")
    return InputSet(
        "synthetic-val",
        f"first {n} sample{'s' * (n != 1)} of the synthetic val split ({recipe})",
        n,
        samples,
        at=lambda i: dataset[i].x.unsqueeze(0),
    )


def choose_inputs(
    spec: str | Path | None,
    graph: Graph,
    meta: dict | None,
    limit: int | None,
    default_count: int,
    time_steps: int | None,
    gen1_mode: str | None = None,
) -> InputSet:
    """``--input`` if given (at most ``limit`` samples), else the checkpoint's default set.

    ``gen1_mode`` (``--gen1-mode``) overrides the mode the checkpoint's meta records for Gen1
    data; the set reports the mode whenever the checkpoint records one or the data is Gen1.
    """
    from .models.data import resolve_gen1_mode

    mode = resolve_gen1_mode(meta, gen1_mode)
    if spec is not None:
        inputs = user_inputs(spec, graph, limit, time_steps, mode)
    else:
        inputs = default_inputs(graph, meta, limit or default_count, time_steps)
    if gen1_mode is not None or "gen1_mode" in (meta or {}) or (spec is not None and _is_gen1(Path(spec))):
        inputs.gen1_mode = mode
    return inputs
