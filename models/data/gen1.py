"""Prophesee Gen1 Automotive data: ``*_td.dat`` event files with ``*_bbox.npy`` labels.

**.dat**: text header lines starting with ``%`` (``% Width 304``, ``% Height 240``, ...), then
one byte event type (0: 2-D change-detection events) and one byte event size (8), then
8-byte little-endian events: ``uint32`` timestamp (µs) and ``uint32`` packing x (bits 0–13),
y (bits 14–27) and polarity (bits 28–31). Files without a header hold events only.

**_bbox.npy**: a structured array with fields ``ts`` (µs), ``x``, ``y``, ``w``, ``h`` (pixels,
top-left corner), ``class_id`` (0 car, 1 pedestrian), ``confidence``, ``track_id``.

One sample per label timestamp ``ts``: 250 ms of events in 5 bins of 50 ms (:mod:`.events`),
resized from 304×240 to the square model input with OpenCV's bilinear resize. Two input modes
(:data:`GEN1_MODES`; docs/gen1.md says which to use when):

* ``per-bin`` (default): the window ``[ts − 250 ms, ts)``, bin ``t`` feeds step ``t``; boxes
  clipped to the sensor as corners, boxes left empty dropped.
* ``official``: what the released Gen1 checkpoints were trained and evaluated on (official
  ``get_gen1_data.py`` + ``utils/datasets_g1T.py``): the window clamped at the start of the
  recording (``[max(ts − 250 ms, 0), … + 250 ms)``), bin 0 fed at *every* step, and the official
  box conversion (x, w and y, h clamped separately; boxes outside the frame kept; rows in
  descending track_id).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from emsdeploy.errors import EmsdeployError
from emsdeploy.fileio import load_npy

from .errors import DatasetError, DatasetWarning
from .events import EVENT_DTYPE, bin_events, frames_to_input
from .sample import DetectionDataset, Sample

__all__ = [
    "DEFAULT_GEN1_MODE",
    "GEN1_CLASSES",
    "GEN1_MODES",
    "DatHeader",
    "Gen1Detection",
    "check_gen1_mode",
    "read_boxes",
    "resolve_gen1_mode",
    "read_dat",
    "read_dat_header",
]

GEN1_CLASSES = ("car", "pedestrian")
GEN1_WIDTH, GEN1_HEIGHT = 304, 240
WINDOW_US = 250_000
TIME_BINS = 5
EVENT_TYPE_2D = 0
EVENT_SIZE = 8
RAW_DTYPE = np.dtype([("t", "<u4"), ("packed", "<u4")])
BOX_FIELDS = ("x", "y", "w", "h", "class_id")
GEN1_MODES = ("official", "per-bin")
DEFAULT_GEN1_MODE = "per-bin"


def check_gen1_mode(mode: str, where: str = "gen1") -> str:
    """``mode`` if it is one of :data:`GEN1_MODES`, else a :class:`DatasetError` naming where it came from."""
    if mode not in GEN1_MODES:
        raise DatasetError(where, "gen1_mode", f"{mode!r} is not a Gen1 input mode; use one of {', '.join(GEN1_MODES)}")
    return mode


def resolve_gen1_mode(meta: dict | None, override: str | None = None) -> str:
    """The Gen1 mode to feed a checkpoint: ``override`` (``--gen1-mode``), else the mode its meta
    records (``meta["gen1_mode"]``: what it was trained with), else ``per-bin``."""
    if override is not None:
        return check_gen1_mode(override, "--gen1-mode")
    recorded = (meta or {}).get("gen1_mode")
    return check_gen1_mode(recorded, "checkpoint meta") if recorded is not None else DEFAULT_GEN1_MODE


@dataclass(frozen=True)
class DatHeader:
    """Where the events start and what the header says. ``width``/``height`` are ``None`` if absent."""

    offset: int
    event_type: int
    event_size: int
    width: int | None
    height: int | None


def read_dat_header(path: str | Path) -> DatHeader:
    """Parse the ``%`` header lines and the event type / size bytes that follow them."""
    path = Path(path)
    width = height = None
    seen_header = False
    try:
        with open(path, "rb") as f:
            while True:
                pos = f.tell()
                line = f.readline()
                if not line.startswith(b"%"):
                    f.seek(pos)
                    break
                seen_header = True
                words = line[1:].split()
                if len(words) >= 2 and words[0] in (b"Width", b"Height"):
                    try:
                        value = int(words[1])
                    except ValueError:
                        raise DatasetError(
                            path, f"header {words[0].decode()}", f"not an integer: {words[1]!r}"
                        ) from None
                    width, height = (value, height) if words[0] == b"Width" else (width, value)
            if not seen_header:  # the oldest files: events only
                return DatHeader(0, EVENT_TYPE_2D, EVENT_SIZE, None, None)
            type_size = f.read(2)
    except OSError as e:
        raise DatasetError(path, "file", f"cannot read ({e.strerror})") from None
    if len(type_size) < 2:
        raise DatasetError(path, "event type", "file ends inside the header (no event type and size bytes)")
    ev_type, ev_size = type_size[0], type_size[1]
    if ev_type != EVENT_TYPE_2D:
        raise DatasetError(path, "event type", f"{ev_type} is not supported (only 0: 2-D change-detection events)")
    if ev_size != EVENT_SIZE:
        raise DatasetError(path, "event size", f"{ev_size} bytes; 2-D events are {EVENT_SIZE} bytes")
    return DatHeader(pos + 2, ev_type, ev_size, width, height)


def read_dat(path: str | Path) -> tuple[DatHeader, np.ndarray]:
    """Memory-map the raw events (fields ``t``, ``packed``) of a .dat file, without decoding them."""
    path = Path(path)
    header = read_dat_header(path)
    size = path.stat().st_size - header.offset
    if size % EVENT_SIZE:
        raise DatasetError(
            path, "events", f"{size % EVENT_SIZE} trailing bytes after {size // EVENT_SIZE} events: file is truncated"
        )
    if size == 0:
        return header, np.zeros(0, RAW_DTYPE)
    return header, np.memmap(path, RAW_DTYPE, mode="r", offset=header.offset)


def decode_events(raw: np.ndarray, path: Path, width: int, height: int) -> np.ndarray:
    """Unpack raw events into :data:`.events.EVENT_DTYPE`, checking ranges and time order."""
    packed = np.asarray(raw["packed"], dtype=np.uint32)
    out = np.empty(len(packed), EVENT_DTYPE)
    out["t"] = np.asarray(raw["t"], dtype=np.int64)
    x, y, p = packed & 0x3FFF, (packed >> 14) & 0x3FFF, packed >> 28
    for name, values, limit in (("x", x, width), ("y", y, height), ("polarity", p, 2)):
        bad = np.flatnonzero(values >= limit)
        if len(bad):
            raise DatasetError(path, name, f"event {bad[0]} has {name} = {values[bad[0]]}, outside [0, {limit})")
    back = np.flatnonzero(np.diff(out["t"]) < 0)
    if len(back):
        raise DatasetError(path, "t", f"timestamps go back in time at event {back[0] + 1}")
    out["x"], out["y"], out["p"] = x, y, p
    return out


def read_boxes(path: str | Path, num_classes: int = len(GEN1_CLASSES)) -> np.ndarray:
    """Load a ``_bbox.npy`` label file; ``ts`` may also be called ``t`` (newer Prophesee files)."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(path, "file", "label file not found")
    try:  # the checked reader: no pickles, record count bounded, floats finite
        boxes = load_npy(path, kinds="biuf", allow_empty=True, structured=True, max_records="label_records")
    except EmsdeployError as e:
        raise DatasetError(path, "file", str(e).removeprefix(f"{path}: ")) from None
    names = boxes.dtype.names or ()
    if boxes.ndim != 1 or not names:
        raise DatasetError(
            path, "dtype", f"expected a 1-D structured array, got {boxes.dtype} with shape {boxes.shape}"
        )
    missing = [f for f in ("ts", *BOX_FIELDS) if f not in names and not (f == "ts" and "t" in names)]
    if missing:
        raise DatasetError(path, missing[0], f"missing field; a Gen1 label file has ts, {', '.join(BOX_FIELDS)}")
    ts = boxes["ts"] if "ts" in names else boxes["t"]
    cls = boxes["class_id"].astype(np.int64)
    bad = np.flatnonzero((cls < 0) | (cls >= num_classes))
    if len(bad):
        raise DatasetError(path, "class_id", f"row {bad[0]} has class {cls[bad[0]]}, outside [0, {num_classes})")
    for f in ("x", "y", "w", "h"):
        if not np.isfinite(boxes[f]).all():
            raise DatasetError(path, f, f"row {np.flatnonzero(~np.isfinite(boxes[f]))[0]} is not finite")
    negative = np.flatnonzero((boxes["w"] < 0) | (boxes["h"] < 0))
    if len(negative):  # a labelling slip in one box should not cost the whole recording
        warnings.warn(
            DatasetWarning(
                f"{path}: {len(negative)} labels with negative width or height dropped (first: row {negative[0]})"
            ),
            stacklevel=2,
        )
        keep = np.ones(len(boxes), bool)
        keep[negative] = False
        boxes, ts, cls = boxes[keep], ts[keep], cls[keep]
    out = np.zeros(
        len(boxes),
        [
            ("ts", "<i8"),
            ("x", "<f4"),
            ("y", "<f4"),
            ("w", "<f4"),
            ("h", "<f4"),
            ("class_id", "<i8"),
            ("track_id", "<i8"),
        ],
    )
    out["ts"], out["class_id"] = ts, cls
    for f in ("x", "y", "w", "h"):
        out[f] = boxes[f]
    out["track_id"] = boxes["track_id"] if "track_id" in names else np.arange(len(boxes))
    return out


def _last_per_track(rows: np.ndarray) -> np.ndarray:
    """The last row of each track_id, in file order of those rows."""
    _, last = np.unique(rows["track_id"][::-1], return_index=True)
    return rows[::-1][np.sort(last)][::-1]


def _labels_at(rows: np.ndarray, width: int, height: int) -> np.ndarray:
    """``per-bin`` labels of one timestamp: last row per track, corners clipped to the sensor,
    boxes left empty dropped; ``[n, 5]`` ``x1, y1, x2, y2, class`` in sensor pixels."""
    rows = _last_per_track(rows)
    x1 = np.clip(rows["x"], 0, width)
    y1 = np.clip(rows["y"], 0, height)
    x2 = np.clip(rows["x"] + rows["w"], 0, width)
    y2 = np.clip(rows["y"] + rows["h"], 0, height)
    keep = (x2 > x1) & (y2 > y1)
    return np.stack([x1, y1, x2, y2, rows["class_id"]], 1)[keep].astype(np.float64)


def _official_labels_at(rows: np.ndarray, width: int, height: int) -> np.ndarray:
    """``official`` labels: as the official conversion makes them (docs/gen1.md §Boxes).

    The top-left corner and the size are clamped *separately* (x and w to [0, width], y and h to
    [0, height]), so a box crossing the left edge keeps its full width and one entirely outside
    the frame is kept; rows of zero size after clamping are dropped; descending track_id.
    """
    rows = _last_per_track(rows)
    rows = rows[np.argsort(-rows["track_id"], kind="stable")]
    x, w = np.clip(rows["x"], 0, width), np.clip(rows["w"], 0, width)
    y, h = np.clip(rows["y"], 0, height), np.clip(rows["h"], 0, height)
    keep = (w > 0) & (h > 0)
    return np.stack([x, y, x + w, y + h, rows["class_id"]], 1)[keep].astype(np.float64)


class Gen1Detection(DetectionDataset):
    """Gen1 samples from ``*_td.dat`` files and their ``*_bbox.npy`` partners.

    Args:
        files: ``.dat`` files, or folders searched (not recursively) for ``*_td.dat``.
        input_size: side of the square model input (the paper resizes to 320).
        time_bins, window_us: frames per sample and the time they cover (5 × 50 ms).
        mode: ``"per-bin"`` or ``"official"`` (module docstring; docs/gen1.md).
    """

    encoding = "frames"
    time_steps: int  # always set: an event sample has frames

    def __init__(
        self,
        files: list[str | Path] | str | Path,
        input_size: int = 320,
        time_bins: int = TIME_BINS,
        window_us: int = WINDOW_US,
        mode: str = DEFAULT_GEN1_MODE,
    ) -> None:
        paths = [Path(files)] if isinstance(files, (str, Path)) else [Path(f) for f in files]
        dats: list[Path] = []
        for p in paths:
            dats += sorted(p.glob("*_td.dat")) if p.is_dir() else [p]
        if not dats:
            raise DatasetError(paths[0] if paths else "gen1", "files", "no *_td.dat event files found")
        self.gen1_mode = check_gen1_mode(mode)
        labels_at = _official_labels_at if mode == "official" else _labels_at
        self.names = list(GEN1_CLASSES)
        self.category_ids = list(range(1, len(GEN1_CLASSES) + 1))
        self.input_size, self.time_steps, self.window_us = int(input_size), int(time_bins), int(window_us)
        self.files: list[tuple[Path, DatHeader, np.ndarray]] = []
        self.index: list[tuple[int, int, np.ndarray]] = []  # (file, label ts, boxes xyxy+cls at sensor scale)
        for dat in dats:
            header, raw = read_dat(dat)
            width, height = header.width or GEN1_WIDTH, header.height or GEN1_HEIGHT
            header = DatHeader(header.offset, header.event_type, header.event_size, width, height)
            stem = dat.name[: -len("_td.dat")] if dat.name.endswith("_td.dat") else dat.stem
            boxes = read_boxes(dat.with_name(f"{stem}_bbox.npy"))
            self.files.append((dat, header, raw))
            for ts in np.unique(boxes["ts"]):
                labels = labels_at(boxes[boxes["ts"] == ts], width, height)
                self.index.append((len(self.files) - 1, int(ts), labels))

    def __len__(self) -> int:
        return len(self.index)

    def _sensor_size(self, k: int) -> tuple[int, int]:
        """Width and height of recording ``k`` (``__init__`` filled in the defaults of a bare header)."""
        header = self.files[k][1]
        return header.width or GEN1_WIDTH, header.height or GEN1_HEIGHT

    def window(self, index: int) -> tuple[int, int]:
        """``[t_start, t_end)`` in µs of sample ``index``: ending at the label time (``per-bin``), or
        clamped to start at 0 near the start of the recording (``official``)."""
        ts = self.index[index][1]
        if self.gen1_mode == "official":
            t0 = max(ts - self.window_us, 0)
            return t0, t0 + self.window_us
        return ts - self.window_us, ts

    def frames(self, index: int) -> np.ndarray:
        """uint8 ``[time_bins, height, width]``: the binned window of sample ``index``, before resizing."""
        k = self.index[index][0]
        path, _, raw = self.files[k]
        width, height = self._sensor_size(k)
        t0, t1 = self.window(index)
        lo, hi = np.searchsorted(raw["t"], [max(t0, 0), max(t1, 0)], side="left") if len(raw) else (0, 0)
        events = decode_events(raw[lo:hi], path, width, height)
        return bin_events(events, t0, t1, self.time_steps, height, width)

    def __getitem__(self, index: int) -> Sample:
        _, _, labels = self.index[index]
        width, height = self._sensor_size(self.index[index][0])
        frames = self.frames(index)
        if self.gen1_mode == "official":  # the official loader resizes bin 0 for every step
            frames = np.repeat(frames[:1], self.time_steps, axis=0)
        s = self.input_size
        sx, sy = s / width, s / height
        x = frames_to_input(frames, (s, s))
        boxes = torch.from_numpy((labels[:, :4] * np.array([sx, sy, sx, sy])).astype(np.float32)).view(-1, 4)
        return Sample(x, boxes, torch.from_numpy(labels[:, 4].astype(np.int64)), index + 1, (sx, sy))

    def label_sizes(self) -> np.ndarray:
        """Width and height of every label in model-input pixels, ``[n, 2]`` (no events binned): autoanchor."""
        rows = []
        for k, _, labels in self.index:
            width, height = self._sensor_size(k)
            scale = np.array([self.input_size / width, self.input_size / height])
            rows.append((labels[:, 2:4] - labels[:, 0:2]) * scale)
        return np.concatenate(rows).astype(np.float32) if rows else np.zeros((0, 2), np.float32)

    def coco_ground_truth(self) -> dict:
        images: list[dict] = []
        anns: list[dict] = []
        for i, (k, ts, labels) in enumerate(self.index):
            _, header, _ = self.files[k]
            images.append(
                {
                    "id": i + 1,
                    "file_name": f"{self.files[k][0].name}@{ts}",
                    "width": header.width,
                    "height": header.height,
                }
            )
            for x1, y1, x2, y2, c in labels.tolist():
                anns.append(
                    {
                        "id": len(anns) + 1,
                        "image_id": i + 1,
                        "category_id": int(c) + 1,
                        "bbox": [x1, y1, x2 - x1, y2 - y1],
                        "area": (x2 - x1) * (y2 - y1),
                        "iscrowd": 0,
                    }
                )
        cats = [{"id": i + 1, "name": n} for i, n in enumerate(self.names)]
        return {"images": images, "annotations": anns, "categories": cats}
