"""Model factories for tests: small EMS-YOLOs with BN statistics that make neurons fire."""

from __future__ import annotations

import contextlib

import torch

from emsdeploy.models import EMSYOLO, TdBatchNorm, build_model

GEN1_ANCHORS = [[10, 14, 23, 27, 37, 58], [81, 82, 135, 169, 216, 269]]


def randomize_bn(model: torch.nn.Module, seed: int = 0, gain: float = 1.0) -> torch.nn.Module:
    """Give every tdBN random running statistics and affine parameters, so that the model's
    LIFs fire at realistic rates (a fresh model's BN would normalise nothing)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, TdBatchNorm):
                c = m.num_features
                m.running_mean.copy_(torch.randn(c, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(c, generator=g) * 0.5 + 0.05)
                m.weight.copy_(gain * (0.6 + 0.4 * torch.rand(c, generator=g)))
                m.bias.copy_(0.3 * torch.randn(c, generator=g) + 0.2)
    return model.eval()


def tiny_ee(time_steps: int = 3, encoding: str = "direct", seed: int = 0, width: float = 0.25) -> EMSYOLO:
    """res10-ee at reduced width with random firing BN statistics."""
    torch.manual_seed(seed)
    cfg = {**build_model("res10-ee").config, "width_multiple": width}
    return randomize_bn(EMSYOLO(cfg, time_steps, encoding), seed)


@contextlib.contextmanager
def edit_hdf5(path):
    """Open one of our sealed HDF5 files for editing and seal it again afterwards, as a file
    written that way by our writer would be (so a test reaches the check after the checksum)."""
    import h5py

    from emsdeploy.fileio import USERBLOCK_SIZE, seal_hdf5

    with open(path, "rb") as fh:
        sealed = fh.read(9) == b"EMSDEPLOY"
    with h5py.File(path, "r+") as f:
        yield f
    if sealed:
        with open(path, "r+b") as fh:
            fh.write(bytes(USERBLOCK_SIZE))
        seal_hdf5(path)
