"""Every comparison tolerance the tests share, named by what is compared (STYLE §14: fixed point
compares at atol=0, float tolerances live in one place).

Use as keyword arguments: ``np.testing.assert_allclose(a, b, **OFFICIAL)`` or
``torch.testing.assert_close(a, b, **EXACT)``. Each entry gives both ``rtol`` and ``atol``
(torch wants the pair). Never widen one to make a test pass: a wider tolerance is a finding.
A test whose tolerance is its own (one comparison, one reason) keeps it where it is, with the reason.
"""

from __future__ import annotations

Tolerance = dict[str, float]

# Integers, spikes, fixed-point state and bit-exact copies: any difference is a bug.
EXACT: Tolerance = {"rtol": 0, "atol": 0}

# float64 results of the same maths by another route (linear-map algebra, relays, lowering to a
# sparse map): only rounding differs, absolutely.
FLOAT64_ROUNDING: Tolerance = {"rtol": 0, "atol": 1e-12}

# float64 runs of one network in two forms (folded vs unfolded, NIR round trip): rounding,
# relative to values that may be large.
FLOAT64_REFORMED: Tolerance = {"rtol": 1e-12, "atol": 1e-12}

# Two float32 computations of the same currents in another order (ONNX vs ref-float heads,
# ref-float readout vs PyTorch): a few ulps of values of order 1.
FLOAT32_REORDERED: Tolerance = {"rtol": 1e-5, "atol": 1e-5}

# Our float32 pipeline against the official EMS-YOLO code's recorded outputs (or PyTorch's
# decoded predictions): decoding multiplies by strides and anchors, hence the wider atol.
OFFICIAL: Tolerance = {"rtol": 1e-5, "atol": 1e-4}

# Decoded detections, ONNX post-processing vs PyTorch's: boxes in pixels, scores in [0, 1].
BOX_PIXELS: Tolerance = {"rtol": 0, "atol": 1e-3}
SCORES: Tolerance = {"rtol": 0, "atol": 1e-5}
