"""The fast Conv ProcessModel computes lava's PyConvModelFixed integers (pure functions here; the
Lava runtime check, stock model against fast model in one network, is in test_lava.py)."""

import numpy as np
import pytest

pytestmark = pytest.mark.lava  # both sides live in Lava modules


@pytest.mark.parametrize(
    "shape,c_out,k,stride,padding,dilation,groups,graded",
    [
        ((9, 7, 4), 6, (3, 3), (1, 1), (1, 1), (1, 1), 1, False),
        ((9, 7, 4), 6, (3, 3), (2, 2), (1, 1), (1, 1), 1, False),
        ((8, 8, 4), 4, (2, 2), (2, 2), (0, 0), (1, 1), 4, False),  # depthwise window (spike max-pool)
        ((10, 9, 6), 4, (3, 2), (2, 1), (1, 0), (2, 1), 2, True),
        ((5, 5, 3), 8, (1, 1), (1, 1), (0, 0), (1, 1), 1, True),
    ],
)
def test_fast_models_equals_lavas_conv_scipy(shape, c_out, k, stride, padding, dilation, groups, graded):
    from lava.proc.conv import utils

    from emsdeploy.exporters.lava.procs import conv_true_whc

    rng = np.random.default_rng(sum(shape))
    w = rng.integers(-128 * 16, 128 * 16, (c_out, *k, shape[2] // groups)).astype(np.int32)
    x = rng.integers(-(2**14), 2**14, shape).astype(np.int32) if graded else rng.random(shape) < 0.3
    ref = utils.conv_scipy(x, w, k, stride, padding, dilation, groups).astype(np.int32)
    got = conv_true_whc(x, w, stride, padding, dilation, groups).astype(np.int32)
    np.testing.assert_array_equal(got, ref)
    np.testing.assert_array_equal(utils.signed_clamp(got, 24), utils.signed_clamp(ref, 24))
