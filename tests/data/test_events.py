"""Event binning follows the official Gen1 rule: background 127, last event wins, 255 ON / 0 OFF."""

import numpy as np
import torch

from emsdeploy.models.data import EVENT_DTYPE, bin_events, frames_to_input


def _events(rows):
    ev = np.zeros(len(rows), EVENT_DTYPE)
    for k, (t, x, y, p) in enumerate(rows):
        ev[k] = (t, x, y, p)
    return ev


def test_last_event_in_a_pixel_wins_and_bins_split_the_window():
    ev = _events(
        [
            (-5, 0, 0, 1),  # before the window: ignored
            (0, 1, 1, 1),
            (10, 1, 1, 0),  # same bin, same pixel, later: OFF wins
            (49, 2, 0, 1),
            (50, 2, 0, 0),  # next bin
            (99, 3, 2, 1),
            (100, 3, 2, 0),  # t_end is excluded
        ]
    )
    frames = bin_events(ev, 0, 100, 2, 3, 4)
    assert frames.dtype == np.uint8 and frames.shape == (2, 3, 4)
    expected = np.full((2, 3, 4), 127, np.uint8)
    expected[0, 1, 1], expected[0, 0, 2] = 0, 255
    expected[1, 0, 2], expected[1, 2, 3] = 0, 255
    np.testing.assert_array_equal(frames, expected)


def test_frames_become_three_identical_channels_in_unit_range():
    frames = np.full((2, 4, 6), 127, np.uint8)
    frames[1, 0, 0] = 255
    x = frames_to_input(frames, (4, 6))
    assert x.shape == (2, 3, 4, 6)
    assert torch.equal(x[:, 0], x[:, 2]) and x[1, 1, 0, 0] == 1.0 and x[0, 0, 0, 0] == 127 / 255
    assert frames_to_input(frames, (8, 8)).shape == (2, 3, 8, 8)
