"""Run an exported Lava network in a fresh Python process, with a timeout.

Lava forks one worker per process model. Forking from a lean interpreter (this module imports
neither torch nor the model) is much faster than from a process holding a traced model, and a
separate process group lets a hung run be killed as a whole (lava-nc#236: runtime hangs).

    python -m emsdeploy.exporters.lava.runner NETWORK.lava.h5 INPUT.npy OUT.npz [--record all] [--raw]

:func:`run_in_subprocess` is the Python entry point; it returns the run contract's
:class:`~emsdeploy.ir.runtime.Trace`.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from emsdeploy.errors import SimulationError
from emsdeploy.ir.runtime import RecordSpec, Trace

from ._require import require_lava

__all__ = ["main", "run_in_subprocess"]

_SEP = "::"


def run_in_subprocess(
    network: str | Path,
    x: Any,
    *,
    time_steps: int | None = None,
    record: RecordSpec = None,
    raw: bool = False,
    fast_models: bool = True,
    timeout: float = 600.0,
) -> Trace:
    """Run ``network`` (an export folder or file, see :func:`~.loader.load`) on ``x`` in a child process.

    Raises :class:`SimulationError` if the child fails or runs past ``timeout`` seconds (then its
    whole process group, Lava's workers included, is killed), and
    :class:`~emsdeploy.errors.BackendUnavailableError` where Lava is not installed."""
    require_lava()
    x = x.numpy() if hasattr(x, "numpy") else np.asarray(x)
    with tempfile.TemporaryDirectory(prefix="emsdeploy-lava-run-") as d:
        xin, out = Path(d) / "x.npy", Path(d) / "out.npz"
        np.save(xin, x)
        cmd = [sys.executable, "-m", "emsdeploy.exporters.lava.runner", str(network), str(xin), str(out)]
        if record is not None:
            cmd += ["--record", json.dumps(record if isinstance(record, str) else list(record))]
        if raw:
            cmd.append("--raw")
        if not fast_models:
            cmd.append("--stock-models")
        if time_steps is not None:
            cmd += ["--time-steps", str(int(time_steps))]
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
        )
        try:
            log, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the runner and its Lava workers
            proc.communicate()
            raise SimulationError(f"the Lava run of {network} did not finish within {timeout:.0f} s (killed)") from None
        if proc.returncode != 0 or not out.exists():
            raise SimulationError(f"the Lava run of {network} failed (exit {proc.returncode}):\n{log[-4000:]}")
        return _load(out)


def _save(trace: Trace, path: Path) -> None:
    arrays: dict[str, np.ndarray] = {}
    for k, v in trace.outputs.items():
        arrays[f"out{_SEP}{k}"] = np.asarray(v)
    for n, r in trace.records.items():
        for k, v in r.items():
            arrays[f"rec{_SEP}{n}{_SEP}{k}"] = np.asarray(v)
    arrays["meta"] = np.array(json.dumps({"time_steps": trace.time_steps, "timings": trace.timings}))
    np.savez(path, **arrays)


def _load(path: Path) -> Trace:
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
        outputs: dict[str, Any] = {}
        records: dict[str, dict[str, Any]] = {}
        for key in z.files:
            parts = key.split(_SEP)
            if parts[0] == "out":
                outputs[_SEP.join(parts[1:])] = z[key]
            elif parts[0] == "rec":
                records.setdefault(parts[1], {})[parts[2]] = z[key]
    return Trace(outputs, records, int(meta["time_steps"]), meta["timings"])


def main(argv: list[str] | None = None) -> int:
    from .loader import load

    ap = argparse.ArgumentParser(prog="python -m emsdeploy.exporters.lava.runner", description=__doc__.split("\n")[0])
    ap.add_argument("network")
    ap.add_argument("input")
    ap.add_argument("output")
    ap.add_argument("--record", default=None, help='"neurons", "all" or a JSON list of population names')
    ap.add_argument("--raw", action="store_true", help="also keep all T + latency steps of each record")
    ap.add_argument("--stock-models", action="store_true", help="use lava's PyConvModelFixed instead of the fast model")
    ap.add_argument("--time-steps", type=int, default=None)
    a = ap.parse_args(argv)
    record = None
    if a.record is not None:
        try:  # a JSON string or list (what run_in_subprocess passes), else a bare word
            record = json.loads(a.record)
        except json.JSONDecodeError:
            record = a.record
    net = load(a.network, fast_models=not a.stock_models)
    trace = net.run(np.load(a.input), time_steps=a.time_steps, record=record, raw=a.raw)
    _save(trace, Path(a.output))
    return 0


if __name__ == "__main__":
    sys.exit(main())
