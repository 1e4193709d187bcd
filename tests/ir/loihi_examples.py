"""One valid instance of each Loihi fixed-point op, for the registry walk in test_ops.py."""

import numpy as np

from emsdeploy.ir import Kind
from emsdeploy.ir.ops import loihi

_B = np.zeros((4, 4, 4), np.int32)
_EYE = dict(indices=np.arange(64), indptr=np.arange(65), in_shape=(4, 4, 4), out_shape=(4, 4, 4))

LOIHI_EXAMPLES = {
    "LoihiLIF": (
        loihi.LoihiLIF(4095, 3072, 64, _B, 0, 128.0),
        [(4, 4, 4)] * 2,
        [Kind.CURRENT] * 2,
        (4, 4, 4),
        Kind.SPIKE,
    ),
    "LoihiReadout": (
        loihi.LoihiReadout(4095, 0, 131071, _B, 0, 64.0),
        [(4, 4, 4)],
        [Kind.CURRENT],
        (4, 4, 4),
        Kind.ANALOG,
    ),
    "FixedMaxPool": (loihi.FixedMaxPool(_B, 2, 64.0), [(4, 4, 4)], [Kind.CURRENT], (4, 2, 2), Kind.ANALOG),
    "FixedSiLU": (loihi.FixedSiLU(_B, 0.25, True, 64.0, 64.0), [(4, 4, 4)], [Kind.CURRENT], (4, 4, 4), Kind.ANALOG),
    "LoihiIntegerLIF": (
        loihi.LoihiIntegerLIF(_B, 4, 2, 6, 64.0),
        [(4, 4, 4)] * 2,
        [Kind.CURRENT] * 2,
        (4, 4, 4),
        Kind.INTEGER,
    ),
    "GradedRelay": (loihi.GradedRelay(_B, 64.0), [(4, 4, 4)] * 2, [Kind.CURRENT] * 2, (4, 4, 4), Kind.ANALOG),
    "SynConv": (loihi.SynConv(np.ones((4, 3, 3, 3)), 1, 2, 1), [(3, 8, 8)], [Kind.SPIKE], (4, 4, 4), Kind.CURRENT),
    "SynSparse": (loihi.SynSparse(np.ones(64), **_EYE), [(4, 4, 4)], [Kind.ANALOG], (4, 4, 4), Kind.CURRENT),
    "HostConv": (
        loihi.HostConv(np.ones((4, 3, 3, 3)), 4, 255.0, 2, 1),
        [(3, 8, 8)],
        [Kind.ANALOG],
        (4, 4, 4),
        Kind.CURRENT,
    ),
    "HostSparse": (loihi.HostSparse(np.ones(64), **_EYE), [(4, 4, 4)], [Kind.ANALOG], (4, 4, 4), Kind.CURRENT),
}
