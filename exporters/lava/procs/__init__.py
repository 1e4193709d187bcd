"""Lava processes and ProcessModels emsdeploy adds (kept in their own folder: Lava's compiler
imports every module beside a Process class when it looks for ProcessModels)."""

from .processes import (
    CurrentMaxPool,
    PyConvModelFast,
    PyCurrentMaxPoolModel,
    PyDelaySparseModelFast,
    PySiLUFixedModel,
    Recorder,
    SiLUFixed,
    conv_true_whc,
    recorder_model,
)

__all__ = [
    "CurrentMaxPool",
    "PyConvModelFast",
    "PyDelaySparseModelFast",
    "PyCurrentMaxPoolModel",
    "PySiLUFixedModel",
    "Recorder",
    "SiLUFixed",
    "conv_true_whc",
    "recorder_model",
]
