"""``emsdeploy run``: detect objects with a stepwise ONNX model in onnxruntime."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from ..distributed.jobs import sweep_options
from .options import encoding_option, gen1_mode_option, provider_option

NOT_ONNX = (".pt", ".pth", ".emsir", ".h5", ".hdf5")


@click.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.option(
    "--input",
    "input_spec",
    required=True,
    type=click.Path(),
    help="An image, a folder of images, a .npy of [B,C,H,W] images / [B,T,C,H,W] event frames, or Gen1 "
    "*_td.dat data (binned per --gen1-mode; an ONNX model does not record it, so the default is per-bin).",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(),
    default=None,
    help="Draw the detections to this PNG (a folder when there are several inputs).",
)
@click.option(
    "--conf", type=click.FloatRange(0, 1), default=0.25, show_default=True, help="Confidence threshold (obj·cls)."
)
@click.option(
    "--iou", type=click.FloatRange(0, 1), default=0.45, show_default=True, help="NMS IoU threshold (per class)."
)
@click.option(
    "--max-det", type=click.IntRange(min=1), default=300, show_default=True, help="Detections kept per input."
)
@click.option(
    "--time-steps",
    "-T",
    type=click.IntRange(min=1),
    default=None,
    help="Steps per image (direct encoding; default: the model's).",
)
@click.option(
    "--threads", type=click.IntRange(min=1), default=None, help="onnxruntime threads (default: one per core)."
)
@click.option("--json", "as_json", is_flag=True, help="Print the detections as JSON.")
@gen1_mode_option
@encoding_option
@provider_option
@sweep_options
def run(
    model: str,
    input_spec: str,
    output: str | None,
    conf: float,
    iou: float,
    max_det: int,
    time_steps: int | None,
    threads: int | None,
    as_json: bool,
    gen1_mode: str | None,
    encoding: str | None,
    provider: str,
    results: str | None,
    resume: bool,
) -> None:
    """Run MODEL (a stepwise .onnx from `emsdeploy export --target onnx`) on --input.

    Each image is fed for T steps (direct encoding); event frames one per step, carrying the
    neuron state between steps. The head is averaged over the steps, decoded, and filtered by
    per-class NMS. Boxes are printed as x1 y1 x2 y2 in the pixels of the original image
    (mapped back through the letterbox), or of the model input for .npy inputs. Under torchrun
    the inputs are shared among the ranks and printed in input order (docs/distributed.md).
    """
    from ..distributed.jobs import SweepArgs, file_digest, run_sweep_entries, sweep_wanted
    from ..errors import InputError
    from ..exporters.onnx import StepwiseSession
    from ..inputs import count_inputs, iter_inputs
    from ..pipeline import check_run_size
    from ..providers import ort_providers

    check_run_size(time_steps, None)
    if Path(model).suffix.lower() in NOT_ONNX:
        raise InputError(
            f"{model}: `emsdeploy run` takes a stepwise ONNX model; make one with "
            f"`emsdeploy export {model} --target onnx -o model.onnx`"
        )
    session = StepwiseSession(model, threads=threads, providers=ort_providers(provider))
    if encoding is not None:  # how inputs are fed (the graph is the same): an override for mis-recorded exports
        import dataclasses

        session.meta = dataclasses.replace(session.meta, encoding=encoding)
    meta = session.meta
    if meta.decode is None:
        raise InputError(f"{model}: the graph has no Decode (no anchors), so it cannot detect boxes")
    if time_steps is not None and meta.encoding != "direct":
        raise InputError("--time-steps applies to direct-encoded models; event frames set T themselves")
    n_inputs = count_inputs(input_spec, meta.encoding)
    out_dir = None
    if output is not None and n_inputs > 1:
        out_dir = Path(output)
        if out_dir.suffix.lower() == ".png":
            raise InputError(f"--output {output}: {n_inputs} inputs need a folder, not one PNG")
        out_dir.mkdir(parents=True, exist_ok=True)
    names = list(meta.names) or [str(i) for i in range(meta.nc)]

    def detect(sample) -> dict:
        t0 = time.perf_counter()
        trace = session.run(sample.x, time_steps)
        det = session.nms(trace, conf, iou, max_det)[0]
        ms = 1000 * (time.perf_counter() - t0) / trace.time_steps
        boxes = det.boxes
        if sample.letterbox is not None:
            import torch

            boxes = sample.letterbox.to_image(torch.from_numpy(boxes.copy())).numpy()
        else:  # clipped to the model input, as the letterbox mapping clips to the image
            _, h, w = meta.input_shape
            boxes = boxes.clip(0, [w, h, w, h])
        entry = {
            "input": sample.name,
            "time_steps": trace.time_steps,
            "ms_per_step": round(ms, 3),
            "box_pixels": "image" if sample.letterbox is not None else "model input",
            "detections": [
                {
                    "class": int(c),
                    "name": names[int(c)] if int(c) < len(names) else str(int(c)),
                    "score": round(float(s), 5),
                    "box": [round(float(v), 2) for v in b],
                }
                for b, s, c in zip(boxes, det.scores, det.classes)
            ],
        }
        if output is not None:
            target = (out_dir / f"{_file_stem(sample.name)}.png") if out_dir else Path(output)
            _draw(sample, input_spec, entry, target)
            entry["drawn"] = str(target)
        return entry

    samples = iter_inputs(input_spec, meta.input_shape, meta.encoding, gen1_mode=gen1_mode)
    if sweep_wanted(results, resume):
        options = {"conf": conf, "iou": iou, "max_det": max_det, "time_steps": time_steps, "output": output}
        fingerprint = {"model": str(model), "sha256": file_digest(model), "input": str(input_spec), **options}
        swept = run_sweep_entries(samples, n_inputs, detect, SweepArgs(results, resume), fingerprint)
        if swept is None:  # another rank than 0: rank 0 reports
            return
        entries = swept
        if not as_json:
            for entry in entries:
                _echo(entry)
    else:
        entries = []
        for sample in samples:
            entry = detect(sample)
            entries.append(entry)
            if not as_json:
                _echo(entry)
    if as_json:
        click.echo(json.dumps({"model": str(model), "conf": conf, "iou": iou, "results": entries}, indent=2))


def _file_stem(name: str) -> str:
    """``scene.png`` -> ``scene``; ``frames.npy[3]`` -> ``frames_3``."""
    if name.endswith("]") and "[" in name:
        base, _, index = name[:-1].rpartition("[")
        return f"{Path(base).stem}_{index}"
    return Path(name).stem


def _echo(entry: dict) -> None:
    dets = entry["detections"]
    click.echo(
        f"{entry['input']}: {len(dets)} detection{'s' if len(dets) != 1 else ''} "
        f"(T = {entry['time_steps']}, {entry['ms_per_step']:.1f} ms/step; boxes in {entry['box_pixels']} pixels)"
    )
    if dets:
        width = max(5, *(len(d["name"]) for d in dets))
        click.echo(f"  {'class':<{width}} {'score':>5}  {'x1':>7} {'y1':>7} {'x2':>7} {'y2':>7}")
    for d in dets:
        x1, y1, x2, y2 = d["box"]
        click.echo(f"  {d['name']:<{width}} {d['score']:.3f}  {x1:7.1f} {y1:7.1f} {x2:7.1f} {y2:7.1f}")
    if "drawn" in entry:
        click.echo(f"  drawn to {entry['drawn']}")


def _draw(sample, input_spec: str, entry: dict, target: Path) -> None:
    """Boxes on the original image (image inputs) or on a picture of the model input (.npy),
    enlarged when small so that labels can be read (emsdeploy/drawing.py)."""
    import numpy as np
    from PIL import Image

    from ..drawing import draw_detections
    from ..fileio import atomic_write, open_image

    if sample.letterbox is not None:
        src = Path(input_spec)
        with open_image(src if src.is_file() else src / sample.name) as im:
            canvas = im.convert("RGB")
    else:
        x = sample.x[0].numpy()
        if x.ndim == 4:  # event frames [T, C, H, W]: event count per pixel, scaled to 0..255
            x = np.abs(x).sum(0)
            x = x / max(float(x.max()), 1e-9)
        img = np.clip(x.mean(0) if x.shape[0] != 3 else x.transpose(1, 2, 0), 0, 1)
        canvas = Image.fromarray((img * 255).astype(np.uint8)).convert("RGB")
    canvas = draw_detections(canvas, entry["detections"])
    atomic_write(target, lambda tmp: canvas.save(tmp, format="PNG"))
