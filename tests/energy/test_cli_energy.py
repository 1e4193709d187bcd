"""``emsdeploy energy`` as a user runs it: inputs, profiles, JSON, plot, and clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from emsdeploy.checkpoint import from_model, save_checkpoint
from emsdeploy.cli import cli
from tests.helpers import tiny_ee

SIZE = 64
RECIPE = {
    "kind": "shapes",
    "seed": 3,
    "size": SIZE,
    "train": 4,
    "val": 3,
    "max_objects": 2,
    "min_size": 8,
    "max_size": 20,
}


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    folder = tmp_path_factory.mktemp("energy")
    paths = {}
    for name, model, meta in (
        ("synth", tiny_ee(time_steps=2), {"input_size": SIZE, "data": {**RECIPE, "split": "train"}}),
        ("plain", tiny_ee(time_steps=2), {"input_size": SIZE}),
        ("frames", tiny_ee(time_steps=3, encoding="frames"), {"input_size": SIZE}),
    ):
        paths[name] = save_checkpoint(folder / f"{name}.pt", from_model(model, meta))
    return paths


def energy(*args):
    return CliRunner().invoke(cli, ["energy", *map(str, args)], catch_exceptions=False)


def _consistent(r: dict) -> None:
    t, layers = r["total"], r["layers"]
    assert t["sop_ac"] == pytest.approx(sum(x["ac"] for x in layers))
    assert t["mac"] == pytest.approx(sum(x["mac"] for x in layers))
    assert t["energy_mJ"] * 1e9 == pytest.approx(sum(x["energy_pj"] for x in layers + r["neurons"] + r["elementwise"]))
    assert r["ann"]["mac"] == sum(x["flops"] for x in layers)
    for row in layers:
        assert set(row) >= {"name", "input_kind", "firing_rate", "sop_exact", "sop_formula", "mac", "energy_pj"}
    assert set(t) >= {"sop_ac", "mac", "neuron_updates", "energy_mJ"}
    assert set(r) >= {"layers", "total", "ann", "ratio_ann_over_snn", "profile"}


def test_default_input_is_the_checkpoints_synthetic_val_split(ckpts):
    res = energy(ckpts["synth"], "--json", "--limit", "2")
    assert res.exit_code == 0, res.output
    r = json.loads(res.stdout)  # stdout holds nothing but the JSON
    assert r["input"]["kind"] == "synthetic-val" and r["samples"] == 2 and r["time_steps"] == 2
    assert "val split" in r["input"]["description"]
    _consistent(r)


def test_without_a_recipe_the_default_is_a_stated_random_input(ckpts):
    res = energy(ckpts["plain"], "--json", "--limit", "1", "--profile", "loihi")
    r = json.loads(res.stdout)
    assert r["input"]["kind"] == "random" and "names no synthetic dataset" in r["input"]["note"]
    assert r["profile"]["name"] == "loihi"
    _consistent(r)


def test_table_and_plot(ckpts, tmp_path):
    plot = tmp_path / "e.png"
    res = energy(ckpts["plain"], "--limit", "1", "--plot", plot, "--time-steps", "3")
    assert res.exit_code == 0, res.output
    assert "model.0.conv" in res.stdout and "analog (MAC)" in res.stdout and "spike (AC)" in res.stdout
    assert "mJ per frame" in res.stdout and "ANN/SNN" in res.stdout and "T = 3" in res.stdout
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_npy_image_and_folder_inputs(ckpts, tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    arr = rng.random((2, 3, SIZE, SIZE), dtype=np.float32)
    np.save(tmp_path / "x.npy", arr)
    r = json.loads(energy(ckpts["plain"], "--json", "--input", tmp_path / "x.npy").stdout)
    assert r["input"]["kind"] == "user" and r["samples"] == 2
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(2):
        Image.fromarray((rng.random((40, 50, 3)) * 255).astype(np.uint8)).save(folder / f"{i}.png")
    r = json.loads(energy(ckpts["plain"], "--json", "--input", folder, "--limit", "1").stdout)
    assert r["samples"] == 1 and "1 of 2 samples" in r["input"]["description"]
    r = json.loads(energy(ckpts["plain"], "--json", "--input", folder / "0.png").stdout)
    assert r["samples"] == 1
    _consistent(r)


def test_frames_from_npy_are_counted_per_frame(ckpts, tmp_path):
    frames = (np.random.default_rng(1).random((2, 3, 3, SIZE, SIZE)) < 0.05).astype(np.float32)
    np.save(tmp_path / "f.npy", frames)
    r = json.loads(energy(ckpts["frames"], "--json", "--input", tmp_path / "f.npy").stdout)
    assert r["time_steps"] == 3 and r["samples"] == 2 and r["model"]["encoding"] == "frames"
    first = r["layers"][0]
    assert first["name"] == "model.0.conv" and first["firing_rate"] == pytest.approx(float((frames != 0).mean()))
    r = json.loads(energy(ckpts["frames"], "--json", "--limit", "1").stdout)
    assert r["input"]["kind"] == "random" and "event frames" in r["input"]["description"]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: ["--profile", "nope"], "unknown energy profile 'nope'"),
        (lambda d: ["--profile", _write(d / "bad.toml", 'name = "x"\n[costs.ac]\npj = 1\n')], "needs source"),
        (lambda d: ["--input", _mkdir(d / "empty")], "no images in this folder"),
        (lambda d: ["--input", _write(d / "broken.png", "not an image")], "not a readable image"),
    ],
    ids=["unknown-profile", "malformed-profile", "empty-folder", "unreadable-image"],
)
def test_errors_are_clear(ckpts, tmp_path, make, message):
    res = energy(ckpts["plain"], *make(tmp_path))
    assert res.exit_code == 2
    assert res.stderr.startswith("error: ") and message in res.stderr and "Traceback" not in res.stderr


def _write(path, text):
    path.write_text(text)
    return path


def _mkdir(path):
    path.mkdir()
    return path
