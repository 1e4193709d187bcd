"""Every IR primitive: construction checks, shapes and kinds (the registry is walked, so new ops are covered)."""

import dataclasses

import numpy as np
import pytest

from emsdeploy.errors import IRValidationError
from emsdeploy.ir import (
    LIF,
    OPS,
    Add,
    Affine,
    Concat,
    Conv2d,
    Decode,
    DFLDecode,
    Input,
    IntegerLIF,
    Kind,
    MaxPool2d,
    Readout,
    SiLUNeuron,
    Upsample,
)

# One valid instance per op, with the inputs it accepts: (op, input shapes, input kinds, output shape, output kind).
EXAMPLES = {
    "Input": (Input((3, 8, 8), "direct"), [], [], (3, 8, 8), Kind.ANALOG),
    "Conv2d": (
        Conv2d(np.ones((4, 3, 3, 3), np.float32), np.zeros(4, np.float32), 2, 1),
        [(3, 8, 8)],
        [Kind.SPIKE],
        (4, 4, 4),
        Kind.CURRENT,
    ),
    "Affine": (Affine(np.ones(4), np.zeros(4)), [(4, 4, 4)], [Kind.CURRENT], (4, 4, 4), Kind.CURRENT),
    "Add": (Add(), [(4, 4, 4)] * 3, [Kind.CURRENT] * 3, (4, 4, 4), Kind.CURRENT),
    "Concat": (Concat(), [(4, 4, 4), (2, 4, 4)], [Kind.CURRENT] * 2, (6, 4, 4), Kind.CURRENT),
    "MaxPool2d": (MaxPool2d(2), [(4, 5, 5)], [Kind.SPIKE], (4, 2, 2), Kind.SPIKE),
    "Upsample": (Upsample(2), [(4, 2, 3)], [Kind.CURRENT], (4, 4, 6), Kind.CURRENT),
    "LIF": (LIF(0.25, 0.5), [(4, 4, 4)] * 2, [Kind.CURRENT] * 2, (4, 4, 4), Kind.SPIKE),
    "SiLUNeuron": (SiLUNeuron(0.25, True), [(4, 4, 4)], [Kind.CURRENT], (4, 4, 4), Kind.ANALOG),
    "IntegerLIF": (IntegerLIF(0.25, 4), [(4, 4, 4)], [Kind.CURRENT], (4, 4, 4), Kind.INTEGER),
    "Readout": (Readout(), [(21, 2, 2)], [Kind.CURRENT], (21, 2, 2), Kind.ANALOG),
    "Decode": (
        Decode(2, np.ones((2, 3, 2)), (16, 32)),
        [(21, 4, 4), (21, 2, 2)],
        [Kind.ANALOG] * 2,
        (60, 7),
        Kind.ANALOG,
    ),
    "DFLDecode": (DFLDecode(2, (16, 32), 4), [(18, 4, 4), (18, 2, 2)], [Kind.ANALOG] * 2, (6, 20), Kind.ANALOG),
}


from tests.ir.loihi_examples import LOIHI_EXAMPLES  # noqa: E402  (the Loihi fixed-point ops)

EXAMPLES.update(LOIHI_EXAMPLES)


def test_every_registered_op_has_an_example():
    assert set(EXAMPLES) == set(OPS)


@pytest.mark.parametrize("name", sorted(OPS))
def test_shapes_and_kinds(name):
    op, shapes, kinds, out_shape, out_kind = EXAMPLES[name]
    assert type(op).__name__ == name
    op.check_inputs(shapes, kinds)
    assert tuple(op.output_shape(shapes)) == out_shape
    assert op.output_kind(kinds) == out_kind
    for f in dataclasses.fields(op):
        assert {"unit", "shape", "doc"} <= set(f.metadata), f"{name}.{f.name} must be declared with param()"


def test_ops_are_immutable_values():
    op = EXAMPLES["Conv2d"][0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        op.stride = (1, 1)
    with pytest.raises(ValueError):
        op.weight[0, 0, 0, 0] = 3.0


def test_lif_rejects_spike_inputs():
    with pytest.raises(IRValidationError, match="LIF does not accept spike inputs"):
        LIF().check_inputs([(4, 4, 4)], [Kind.SPIKE])


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda: Conv2d(np.ones((4, 3, 3)), None), "4-D"),
        (lambda: Conv2d(np.ones((4, 3, 3, 3)), np.ones(3)), "bias"),
        (lambda: Conv2d(np.ones((4, 3, 3, 3)), None, stride=0), "stride"),
        (lambda: Affine(np.ones(3), np.ones(4)), "scale and shift"),
        (lambda: Input((3, 8), "direct"), r"\(C, H, W\)"),
        (lambda: Input((3, 8, 8), "rgb"), "encoding"),
        (lambda: LIF(tau=1.5), "tau"),
        (lambda: MaxPool2d(0), "kernel"),
        (lambda: Decode(2, np.ones((2, 3)), (16, 32)), "anchors"),
    ],
)
def test_bad_parameters_raise_validation_errors(make, match):
    with pytest.raises(IRValidationError, match=match):
        make()


def test_conv_channel_mismatch_is_named():
    op = EXAMPLES["Conv2d"][0]
    with pytest.raises(IRValidationError, match="expects 3 input channels, got 5"):
        op.check_inputs([(5, 8, 8)], [Kind.SPIKE])


def test_same_as_compares_arrays_and_dtypes():
    a = Affine(np.ones(2, np.float64), np.zeros(2))
    assert a.same_as(Affine(np.ones(2, np.float64), np.zeros(2)))
    assert not a.same_as(Affine(np.ones(2, np.float32), np.zeros(2)))
    assert not a.same_as(Affine(np.array([1.0, 2.0]), np.zeros(2)))
