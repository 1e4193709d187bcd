"""Shared pieces of the stepwise-ONNX tests: small models, traced graphs, exported sessions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from emsdeploy.exporters.onnx import StepwiseSession, build_onnx
from emsdeploy.ir import Graph
from emsdeploy.pipeline import load_graph
from emsdeploy.tracer import trace
from tests.conftest import OfficialFixture
from tests.helpers import tiny_ee

SIZE = (64, 64)


def session(graph: Graph, **kw) -> StepwiseSession:
    build = {k: kw.pop(k) for k in ("spikes", "isolate", "dtype") if k in kw}
    return StepwiseSession(build_onnx(graph, **build), threads=kw.pop("threads", 2), **kw)


def boost_objectness(model, obj: float = 1.0) -> None:
    """Raise the Detect objectness bias so that a random model reports some boxes."""
    det = model.detect
    with torch.no_grad():
        for conv in det.m:
            b = conv.bias.view(det.na, det.no)
            b[:, 4] = obj
            b[:, 5:] = 0.0


def lif_margins(ref_trace, graph: Graph) -> float:
    """Smallest |U − V_th| / V_th over every LIF membrane of a ref-float run."""
    worst = np.inf
    for name, rec in ref_trace.records.items():
        if "u" in rec:
            v_th = graph[name].op.v_th
            worst = min(worst, float((rec["u"].double() - v_th).abs().min()) / v_th)
    return worst


@pytest.fixture(scope="session")
def fixture_b(fixtures_dir) -> OfficialFixture:
    return OfficialFixture(fixtures_dir / "tiny_all_coco_T4")


@pytest.fixture(scope="session")
def fixture_b_graph(fixture_b) -> Graph:
    return load_graph(fixture_b.checkpoint, SIZE).graph


@pytest.fixture(scope="session")
def tiny_direct():
    """(model, graph): res10-ee at width 0.25, direct encoding, T = 3, with boxes to detect."""
    model = tiny_ee(time_steps=3, encoding="direct", seed=3)
    boost_objectness(model)
    return model, trace(model, SIZE)


@pytest.fixture(scope="session")
def tiny_frames():
    model = tiny_ee(time_steps=3, encoding="frames", seed=4)
    return model, trace(model, SIZE)
