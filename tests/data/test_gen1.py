"""The Gen1 loader on files written byte by byte in Prophesee's formats, good and malformed."""

import numpy as np
import pytest
import torch

from emsdeploy.models.data import DatasetError, Gen1Detection, open_dataset, read_boxes, read_dat_header

# The released Gen1 label dtype (prophesee-automotive-dataset-toolbox, src/io/box_loading.py reformats from it).
GEN1_BOX_DTYPE = np.dtype(
    [
        ("ts", "<u8"),
        ("x", "<f4"),
        ("y", "<f4"),
        ("w", "<f4"),
        ("h", "<f4"),
        ("class_id", "u1"),
        ("confidence", "<f4"),
        ("track_id", "<u4"),
    ]
)
HEADER = b"% Data file containing Event2D events.\n% Version 2\n% Date 2019-03-29 13:58:52\n% Height 240\n% Width 304\n"


def write_dat(path, events, header=HEADER, type_size=bytes([0, 8]), tail=b""):
    """events: (t µs, x, y, p) rows, packed as uint32 t and uint32 x | y << 14 | p << 28."""
    ev = np.zeros(len(events), [("t", "<u4"), ("packed", "<u4")])
    for k, (t, x, y, p) in enumerate(events):
        ev[k] = (t, x | (y << 14) | (p << 28))
    path.write_bytes(header + (type_size if header else b"") + ev.tobytes() + tail)
    return path


def write_boxes(path, rows, dtype=GEN1_BOX_DTYPE):
    np.save(path, np.array(rows, dtype=dtype))
    return path


EVENTS = [
    (10_000, 5, 7, 1),  # before the first label's window [50 ms, 300 ms): ignored
    (60_000, 10, 20, 1),  # bin 0
    (90_000, 10, 20, 0),  # bin 0, same pixel, later: OFF wins
    (160_000, 303, 239, 1),  # bin 2, far corner
    (299_999, 100, 50, 0),  # bin 4
    (300_000, 1, 1, 1),  # at the label time: excluded
]
BOXES = [
    (300_000, 10.0, 20.0, 30.0, 40.0, 0, 1.0, 5),
    (300_000, 290.0, 200.0, 30.0, 50.0, 1, 1.0, 6),  # clipped to the sensor
    (300_000, 12.0, 22.0, 30.0, 40.0, 0, 1.0, 5),  # same track again: the last row wins
    (350_000, 0.0, 0.0, 0.0, 10.0, 0, 1.0, 7),  # zero width: dropped
]


@pytest.fixture
def gen1_dir(tmp_path):
    write_dat(tmp_path / "rec_td.dat", EVENTS)
    write_boxes(tmp_path / "rec_bbox.npy", BOXES)
    return tmp_path


def test_bins_events_like_the_official_pipeline(gen1_dir):
    ds = Gen1Detection(gen1_dir, input_size=304)
    assert len(ds) == 2 and ds.names == ["car", "pedestrian"] and ds.time_steps == 5
    s = ds[0]
    assert s.x.shape == (5, 3, 304, 304)
    frames = (s.x[:, 0] * 255).round()
    assert torch.equal(s.x[:, 0], s.x[:, 1])
    sy = 304 / 240
    changed = {(b, int(y), int(x)) for b, y, x in (frames != 127).nonzero().tolist()}
    # Vertical stretch 240 → 304 spreads each event row over neighbouring output rows.
    assert {b for b, _, _ in changed} == {0, 2, 4}
    assert frames[0, round(20 * sy), 10] < 127  # OFF won over the earlier ON
    assert frames[2, 303, 303] > 127 and frames[4, round(50 * sy), 100] < 127
    # Kept rows stay in file order: track 6, then track 5's last row.
    assert torch.allclose(s.boxes, torch.tensor([[290, 200 * sy, 304, 240 * sy], [12, 22 * sy, 42, 62 * sy]]))
    assert s.labels.tolist() == [1, 0] and s.scale == (1.0, sy)
    assert len(ds[1].boxes) == 0


def test_ground_truth_is_in_sensor_pixels(gen1_dir):
    gt = Gen1Detection(gen1_dir, input_size=64).coco_ground_truth()
    assert [(im["width"], im["height"]) for im in gt["images"]] == [(304, 240), (304, 240)]
    assert [a["bbox"] for a in gt["annotations"]] == [[290.0, 200.0, 14.0, 40.0], [12.0, 22.0, 30.0, 40.0]]
    assert open_dataset(gen1_dir, "val", 64).input_size == 64


def test_header_less_files_and_newer_field_names(tmp_path):
    write_dat(tmp_path / "a_td.dat", EVENTS, header=b"")
    newer = np.dtype([("t", "<i8"), *[(f, "<f4") for f in "xywh"], ("class_id", "<u4"), ("track_id", "<u4")])
    write_boxes(tmp_path / "a_bbox.npy", [(300_000, 1, 2, 3, 4, 1, 9)], newer)
    assert read_dat_header(tmp_path / "a_td.dat").offset == 0
    s = Gen1Detection(tmp_path / "a_td.dat", input_size=304)[0]
    assert s.labels.tolist() == [1] and (s.x != 127 / 255).any()


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"tail": b"\x01\x02\x03"}, "events"),
        ({"type_size": bytes([0, 4])}, "event size"),
        ({"type_size": bytes([12, 8])}, "event type"),
        ({"events": [(60_000, 400, 3, 1)]}, "x"),
        ({"events": [(60_000, 4, 250, 1)]}, "y"),
        ({"events": [(60_000, 4, 3, 3)]}, "polarity"),
        ({"events": [(90_000, 4, 3, 1), (60_000, 4, 3, 1)]}, "t"),
    ],
)
def test_malformed_dat_names_the_file_and_field(tmp_path, kwargs, field):
    path = write_dat(tmp_path / "bad_td.dat", **{"events": EVENTS, **kwargs})
    write_boxes(tmp_path / "bad_bbox.npy", BOXES)
    with pytest.raises(DatasetError) as err:
        Gen1Detection(path)[0]
    assert str(path) in str(err.value) and err.value.field == field


def test_malformed_label_files(tmp_path):
    write_dat(tmp_path / "r_td.dat", EVENTS)
    bad = tmp_path / "r_bbox.npy"
    no_class = np.dtype([(n, t) for n, t in GEN1_BOX_DTYPE.descr if n != "class_id"])
    write_boxes(bad, [(1, 1, 1, 1, 1, 1.0, 1)], no_class)
    with pytest.raises(DatasetError, match=r"r_bbox\.npy: class_id: missing field"):
        read_boxes(bad)
    write_boxes(bad, [(1, 1, 1, 1, 1, 7, 1.0, 1)])
    with pytest.raises(DatasetError, match=r"r_bbox\.npy: class_id: row 0 has class 7"):
        read_boxes(bad)
    np.save(bad, np.zeros((2, 3)))
    with pytest.raises(DatasetError, match=r"r_bbox\.npy: dtype"):
        read_boxes(bad)
    bad.write_bytes(b"not numpy")
    with pytest.raises(DatasetError, match=r"r_bbox\.npy: file"):
        Gen1Detection(tmp_path)
    bad.unlink()
    with pytest.raises(DatasetError, match=r"r_bbox\.npy: file: label file not found"):
        Gen1Detection(tmp_path)
