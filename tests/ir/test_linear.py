"""ir.linear: the map algebra is exact (float64): composing, adding and unrolling maps."""

import numpy as np
import pytest
import torch

from emsdeploy.ir import Conv2d
from emsdeploy.ir.linear import ConvMap, SparseMap, add_maps, apply_map, compose, conv_map, to_sparse, upsample_map
from tests.tolerances import FLOAT64_ROUNDING


@pytest.mark.parametrize("stride,padding,dilation,groups", [(1, 1, 1, 1), (2, 1, 1, 1), (2, 0, 1, 2), (1, 2, 2, 1)])
def test_to_sparse_equals_the_convolution(stride, padding, dilation, groups):
    rng = np.random.default_rng(0)
    op = Conv2d(rng.normal(size=(4, 4 // groups, 3, 3)), None, stride, padding, dilation, groups)
    m = conv_map(op, (4, 7, 6))
    x = torch.from_numpy(rng.normal(size=(2, 4, 7, 6)))
    torch.testing.assert_close(apply_map(to_sparse(m), x), apply_map(m, x), **FLOAT64_ROUNDING)


def test_composition_stays_a_convolution_next_to_a_1x1():
    rng = np.random.default_rng(1)
    inner = conv_map(Conv2d(rng.normal(size=(5, 3, 3, 3)), None, 2, 1), (3, 8, 8))
    outer = conv_map(Conv2d(rng.normal(size=(2, 5, 1, 1))), inner.out_shape)
    c = compose(outer, inner)
    assert isinstance(c, ConvMap) and c.weight.shape == (2, 3, 3, 3) and c.stride == (2, 2)
    x = torch.from_numpy(rng.normal(size=(1, 3, 8, 8)))
    torch.testing.assert_close(apply_map(c, x), apply_map(outer, apply_map(inner, x)), **FLOAT64_ROUNDING)


def test_3x3_after_3x3_with_padding_is_a_sparse_matrix():
    rng = np.random.default_rng(2)
    inner = conv_map(Conv2d(rng.normal(size=(4, 3, 3, 3)), None, 1, 1), (3, 5, 5))
    outer = conv_map(Conv2d(rng.normal(size=(2, 4, 3, 3)), None, 1, 1), (4, 5, 5))
    c = compose(outer, inner)
    assert isinstance(c, SparseMap)  # zero padding of the intermediate: not a convolution at the borders
    x = torch.from_numpy(rng.normal(size=(1, 3, 5, 5)))
    torch.testing.assert_close(apply_map(c, x), apply_map(outer, apply_map(inner, x)), **FLOAT64_ROUNDING)


def test_upsample_and_sums():
    rng = np.random.default_rng(3)
    up = upsample_map(2, (3, 2, 3))
    x = torch.from_numpy(rng.normal(size=(1, 3, 2, 3)))
    torch.testing.assert_close(apply_map(up, x), torch.nn.functional.interpolate(x, scale_factor=2, mode="nearest"))
    a = conv_map(Conv2d(rng.normal(size=(2, 3, 3, 3)), None, 1, 1), (3, 4, 4))
    b = conv_map(Conv2d(rng.normal(size=(2, 3, 1, 1))), (3, 4, 4))
    y = torch.from_numpy(rng.normal(size=(1, 3, 4, 4)))
    torch.testing.assert_close(apply_map(add_maps(a, b), y), apply_map(a, y) + apply_map(b, y), **FLOAT64_ROUNDING)
