"""emsdeploy: deploy directly-trained spiking object detectors (EMS-YOLO) to Lava and ONNX."""

__version__ = "0.1.0"
