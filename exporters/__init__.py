"""Exporters: lower the IR to deployment targets (``onnx``: stepwise graph; ``lava``: lava-nc
processes in Loihi fixed point; ``nir``: interop). Each stands on :mod:`emsdeploy.ir` and never
imports the simulators; each exposes ``export_cli(graph, output, options)`` for
``emsdeploy export --target <name>``."""
