"""What the benchmarks share: models whose neurons fire like a trained one's, and the description of
the machine recorded beside every figure (the machine is usually shared, so figures need it).

The benchmarks run as scripts (``python bench/NAME.py``), so this imports as ``common``; the tests
import it as ``bench.common`` (tests/helpers.py) for the same firing models.
"""

from __future__ import annotations

import json
import platform
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

RESULTS = Path(__file__).resolve().parent / "results"  # git-ignored


def firing_bn(model: torch.nn.Module, seed: int = 0, gain: float = 1.0) -> torch.nn.Module:
    """Give every tdBN random running statistics and affine parameters, so that the model's LIFs
    fire at realistic rates (a fresh model's BN would normalise nothing); returns it in eval mode."""
    import torch  # here, not at the top: a benchmark's parent process stays light

    from emsdeploy.models import TdBatchNorm

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


def cpu_info() -> dict[str, Any]:
    """Platform, Python, and from /proc/cpuinfo (where there is one) the CPU model, flags and core count."""
    info: dict[str, Any] = {"platform": platform.platform(), "python": sys.version.split()[0]}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return info
    for line in text.splitlines():
        if line.startswith("model name") and "cpu" not in info:
            info["cpu"] = line.split(":", 1)[1].strip()
        if line.startswith("flags") and "flags" not in info:
            info["flags"] = line.split(":", 1)[1].strip()
    info["cores"] = text.count("processor\t:")
    return info


def cpu_name() -> str:
    """The CPU model, or what ``platform`` knows."""
    return cpu_info().get("cpu") or platform.processor() or "unknown CPU"


def save_results(name: str, data: Any, markdown: str) -> None:
    """Write ``bench/results/NAME.json`` (the figures) and ``NAME.md`` (their table)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(data, indent=1) + "\n")
    (RESULTS / f"{name}.md").write_text(markdown)
