"""From a PyTorch EMS-YOLO to the IR (torch.fx with neuron and layer modules as leaves)."""

from .trace import supported_modules, trace

__all__ = ["supported_modules", "trace"]
