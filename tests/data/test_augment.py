"""Training augmentation: boxes follow the pixels exactly (drawn rectangles), and a seed fixes every sample."""

import numpy as np
import pytest
import torch

from emsdeploy.models.data import SyntheticEvents, SynthRecipe
from emsdeploy.models.data.augment import (
    PAD_GREY,
    Augmentation,
    AugmentedDataset,
    augment_hsv,
    mosaic,
    random_perspective,
)
from emsdeploy.models.data.sample import DetectionDataset, Sample

COLOURS = [(250, 20, 20), (20, 250, 20), (20, 20, 250), (250, 250, 20)]
NO_COLOUR = Augmentation(hsv_h=0, hsv_s=0, hsv_v=0)
WILD = Augmentation(mosaic=0, degrees=25, translate=0.2, scale=0.5, shear=8, perspective=0.0008, hsv_h=0,
                    hsv_s=0, hsv_v=0)  # fmt: skip


def _drawn(rng, h, w, colour):
    """A grey image with one filled rectangle of ``colour``; its exact box (pixel edges)."""
    img = np.full((h, w, 3), PAD_GREY, np.uint8)
    x1, y1 = int(rng.integers(0, w - 12)), int(rng.integers(0, h - 12))
    x2, y2 = int(rng.integers(x1 + 8, w + 1)), int(rng.integers(y1 + 8, h + 1))
    img[y1:y2, x1:x2] = colour
    return img, np.array([[x1, y1, x2, y2]], np.float32)


def _assert_box_bounds_colour(img, box, colour, tight=1.5):
    """Every pixel mostly of ``colour`` lies in the box (one pixel of interpolation allowed), and
    the box is no larger than those pixels' extent (plus ``tight``) unless the image edge cut it
    (a turned rectangle cut by the edge keeps the clipped box of its corners, as in YOLOv5)."""
    dist = np.abs(img.astype(int) - np.array(colour)).max(2)
    ys, xs = np.nonzero(dist < 60)  # at least ~75 % of the colour: inside or on the edge
    assert len(xs), "the rectangle vanished but its box was kept"
    x1, y1, x2, y2 = box
    assert xs.min() >= x1 - 1 and xs.max() + 1 <= x2 + 1 and ys.min() >= y1 - 1 and ys.max() + 1 <= y2 + 1
    if min(x1, y1) > 0 and max(x2, y2) < img.shape[0]:
        assert x1 >= xs.min() - tight and x2 <= xs.max() + 1 + tight
        assert y1 >= ys.min() - tight and y2 <= ys.max() + 1 + tight


@pytest.mark.parametrize("seed", range(12))
def test_random_perspective_moves_the_box_with_its_pixels(seed):
    rng = np.random.default_rng(seed)
    img, box = _drawn(rng, 80, 96, COLOURS[0])
    out, boxes, labels = random_perspective(rng, img, box, np.array([2]), WILD, 64)
    assert out.shape == (64, 64, 3) and out.dtype == np.uint8
    if len(boxes):  # a box warped off the image (or to a sliver) is dropped, with its label
        assert labels.tolist() == [2]
        _assert_box_bounds_colour(out, boxes[0], COLOURS[0], tight=2.0)


def test_identity_warp_keeps_image_and_box():
    rng = np.random.default_rng(0)
    img, box = _drawn(rng, 64, 64, COLOURS[1])
    still = Augmentation(translate=0, scale=0)
    out, boxes, _ = random_perspective(rng, img, box, np.array([0]), still, 64)
    np.testing.assert_array_equal(out, img)
    np.testing.assert_allclose(boxes, box, atol=1e-4)


@pytest.mark.parametrize("seed", range(8))
def test_mosaic_carries_every_tile_box(seed):
    rng = np.random.default_rng(seed)
    tiles = []
    for k, colour in enumerate(COLOURS):
        img, box = _drawn(rng, 64 if k % 2 else 48, 64, colour)
        tiles.append((img, box, np.array([k])))
    aug = Augmentation(degrees=5, shear=2, hsv_h=0, hsv_s=0, hsv_v=0)
    out, boxes, labels = mosaic(rng, tiles, 64, aug)
    assert out.shape == (64, 64, 3)
    for box, k in zip(boxes, labels):
        _assert_box_bounds_colour(out, box, COLOURS[k], tight=2.0)
    # a rectangle that shows well (not a sliver at the border) has its box
    for k, colour in enumerate(COLOURS):
        dist = np.abs(out.astype(int) - np.array(colour)).max(2)
        ys, xs = np.nonzero(dist < 10)
        if len(xs) and xs.max() - xs.min() > 6 and ys.max() - ys.min() > 6:
            assert k in labels.tolist()


class _Rects(DetectionDataset):
    """Images of drawn rectangles (one per colour); deterministic per index."""

    names, category_ids, encoding, input_size = ["a", "b", "c", "d"], [1, 2, 3, 4], "direct", 64

    def __len__(self):
        return 6

    def __getitem__(self, index):
        rng = np.random.default_rng(index)
        img = np.full((64, 64, 3), PAD_GREY, np.uint8)
        boxes, labels = [], []
        for k in range(2):
            colour = COLOURS[(index + k) % 4]
            x1, y1 = 4 + 30 * k, int(rng.integers(2, 30))
            img[y1 : y1 + 24, x1 : x1 + 20] = colour
            boxes.append([x1, y1, x1 + 20, y1 + 24])
            labels.append((index + k) % 4)
        x = torch.from_numpy(img).permute(2, 0, 1).float() / 255
        return Sample(x, torch.tensor(boxes, dtype=torch.float32), torch.tensor(labels), index + 1)


@pytest.mark.parametrize("mosaic_p", [0.0, 1.0])
def test_augmented_samples_box_their_pixels_through_flips(mosaic_p):
    data = AugmentedDataset(_Rects(), Augmentation(mosaic=mosaic_p, fliplr=0.5, flipud=0.5, hsv_h=0, hsv_s=0,
                                                   hsv_v=0, degrees=10), seed=1)  # fmt: skip
    flipped_seen = 0
    for epoch in range(3):
        data.set_epoch(epoch)
        for i in range(len(data)):
            s = data[i]
            img = (s.x.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
            # a mosaic may hold one colour twice: each colour's pixels lie in the union of its boxes
            for k, colour in enumerate(COLOURS):
                ys, xs = np.nonzero(np.abs(img.astype(int) - np.array(colour)).max(2) < 60)
                inside = np.zeros(len(xs), bool)
                for x1, y1, x2, y2 in s.boxes[s.labels == k].tolist():
                    inside |= (xs >= x1 - 1) & (xs + 1 <= x2 + 1) & (ys >= y1 - 1) & (ys + 1 <= y2 + 1)
                    assert (np.abs(img[int(y1) : int(np.ceil(y2)), int(x1) : int(np.ceil(x2))].astype(int)
                                   - np.array(colour)).max(2) < 60).any()  # fmt: skip
                # what the edge cut to a sliver is dropped with its box (box_candidates): near the edge only
                out_x, out_y = xs[~inside], ys[~inside]
                edge = np.minimum(np.minimum(out_x, 63 - out_x), np.minimum(out_y, 63 - out_y))
                assert (edge < 8).all(), (epoch, i, k)
            flipped_seen += len(s.boxes)
    assert flipped_seen > 10


def test_a_seed_fixes_every_sample_and_epochs_differ():
    a, b = AugmentedDataset(_Rects(), Augmentation(), seed=3), AugmentedDataset(_Rects(), Augmentation(), seed=3)
    for i in (0, 4, 2):  # any order
        sa, sb = a[i], b[i]
        assert torch.equal(sa.x, sb.x) and torch.equal(sa.boxes, sb.boxes) and torch.equal(sa.labels, sb.labels)
    first = a[1].x
    a.set_epoch(1)
    assert not torch.equal(first, a[1].x)
    assert not torch.equal(first, AugmentedDataset(_Rects(), Augmentation(), seed=4)[1].x)


def test_hsv_jitter_changes_colours_only_within_its_gains():
    rng = np.random.default_rng(0)
    img = np.random.default_rng(1).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    np.testing.assert_array_equal(augment_hsv(rng, img, Augmentation(hsv_h=0, hsv_s=0, hsv_v=0)), img)
    out = augment_hsv(rng, img, Augmentation(hsv_h=0, hsv_s=0, hsv_v=0.4))
    assert out.shape == img.shape and not np.array_equal(out, img)
    # value only: the brightest channel of each pixel scales by one gain in [0.6, 1.4]
    ratio = out.max(2).astype(float)[img.max(2) > 100] / img.max(2)[img.max(2) > 100]
    assert 0.58 <= ratio.min() and ratio.max() <= 1.42 and np.ptp(ratio) < 0.05


def test_event_data_is_never_augmented():
    events = SyntheticEvents(SynthRecipe(kind="events", size=64, train=2, val=1, min_size=16, max_size=30))
    with pytest.raises(ValueError, match="direct encoding"):
        AugmentedDataset(events, NO_COLOUR)
