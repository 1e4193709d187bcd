"""``train --weights`` fine-tunes our checkpoints and official ones (the parent is recorded),
``--freeze`` holds the first layers, and ``--recipe official`` runs end to end (EMA, autoanchor,
augmentation, the best checkpoint by fitness). Tiny data: a few steps each."""

import pytest
import torch
from click.testing import CliRunner

from emsdeploy.checkpoint import load_checkpoint, read_torch_file
from emsdeploy.cli import cli
from emsdeploy.fileio import sha256_file

from ..conftest import shipped_checkpoint

TINY = "shapes:size=64,train=4,val=2,max_objects=2,min_size=16,max_size=30"


def _train(*args):
    r = CliRunner().invoke(cli, ["train", "--data", TINY, "--epochs", "1", "-b", "2", "--threads", "1", *args])
    assert r.exit_code == 0, r.output
    return r


def test_fine_tune_the_shipped_model_with_frozen_layers(tmp_path):
    parent_path = shipped_checkpoint()
    parent = load_checkpoint(parent_path)
    out = tmp_path / "ft.pt"
    _train("--weights", str(parent_path), "--freeze", "3", "-T", "1", "--max-steps", "2", "--no-eval", "-o", str(out))
    ckpt = load_checkpoint(out)
    meta = ckpt.meta
    assert meta["parent"] == {
        "path": str(parent_path),
        "sha256": sha256_file(parent_path),
        "format": "emsdeploy",
        "transferred": len(parent.state_dict),
        "of": len(parent.state_dict),
    }
    assert ckpt.config == parent.config and meta["train"]["frozen_layers"] == 3
    assert "--weights" in meta["train"]["command"] and "--freeze 3" in meta["train"]["command"]
    moved = []
    for k, v in ckpt.state_dict.items():
        frozen_param = k.startswith(("model.0.", "model.1.", "model.2.")) and "running" not in k and "tracked" not in k
        if frozen_param:
            assert torch.equal(v, parent.state_dict[k]), k  # frozen: exactly the parent's
        elif v.is_floating_point() and not torch.equal(v, parent.state_dict[k]):
            moved.append(k)
    assert any(k.startswith("model.11.") for k in moved) and any(k.startswith("model.5.") for k in moved)


def test_fine_tune_a_converted_official_checkpoint(tmp_path, fixtures_dir):
    parent_path = fixtures_dir / "tiny_all_coco_T4" / "checkpoint_last_fp32.pt"
    out = tmp_path / "off-ft.pt"
    _train("--weights", str(parent_path), "-T", "1", "--max-steps", "2", "--no-eval", "-o", str(out))
    ckpt = load_checkpoint(out)
    parent = ckpt.meta["parent"]
    assert parent["format"] == "official-emsyolo" and parent["sha256"] == sha256_file(parent_path)
    # an 80-class COCO head cannot take 4 classes: everything but the head's class convs transfers
    assert parent["of"] - parent["transferred"] == 4 and int(ckpt.config["nc"]) == 4
    assert ckpt.config["backbone"] == load_checkpoint_config(parent_path)["backbone"]


def load_checkpoint_config(path):
    from emsdeploy.checkpoint import load_any

    return load_any(path).config


def test_weights_errors_are_clean(tmp_path):
    r = CliRunner().invoke(cli, ["train", "--data", TINY, "--weights", str(tmp_path / "none.pt"), "-o", "x.pt"])
    assert r.exit_code == 2 and "none.pt" in r.stderr and "Traceback" not in r.stderr
    r = CliRunner().invoke(
        cli, ["train", "--data", TINY, "--weights", str(shipped_checkpoint()), "--config", "resnet10", "-o", "x.pt"]
    )
    assert r.exit_code == 2 and "drop --config" in r.stderr


@pytest.fixture(scope="module")
def official_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("official") / "off.pt"
    data = "shapes:size=64,train=8,val=2,max_objects=2,min_size=16,max_size=30"
    args = ["train", "--recipe", "official", "--data", data, "--epochs", "2", "-b", "4", "-T", "1", "--threads", "1"]
    r = CliRunner().invoke(cli, [*args, "-o", str(out)])
    assert r.exit_code == 0, r.output
    return out


def test_the_official_recipe_runs_end_to_end(official_run):
    ckpt = load_checkpoint(official_run)
    train = ckpt.meta["train"]
    assert train["recipe"]["name"] == "official" and train["recipe"]["obj_target"] == "last"
    assert train["epochs_done"] == 2 and train["steps"] == 4 and train["augmented"] is True
    assert train["optimizer_steps"] == 4  # warmup: accumulation rises from 1 batch, so early batches each step
    assert train["autoanchor"]["bpr"] > 0.98 and not train["autoanchor"]["replaced"]
    assert ckpt.meta["letterbox"] is True and "map50" in ckpt.meta["metrics"]
    # the saved weights are the EMA, the trained ones live in the training state for --resume
    state = read_torch_file(official_run.with_name(official_run.name + ".state"))
    ema = state["ema"]["weights"]
    for k, v in ckpt.state_dict.items():
        assert torch.equal(v, ema[k]), k
    assert state["ema"]["updates"] == 4
    assert any(not torch.equal(state["weights"][k], v) for k, v in ckpt.state_dict.items() if v.is_floating_point())


def test_the_best_checkpoint_is_kept_by_fitness(official_run):
    train = load_checkpoint(official_run).meta["train"]
    assert [v["epoch"] for v in train["val"]] == [1, 2]
    for v in train["val"]:
        assert v["fitness"] == pytest.approx(0.1 * v["map50"] + 0.9 * v["map50_95"], abs=1e-6)
    best = max(train["val"], key=lambda v: (v["fitness"], v["epoch"]))  # of equals, the later (official rule)
    assert {k: train["best"][k] for k in best} == best
    best_ckpt = load_checkpoint(official_run.with_name("off.best.pt"))
    assert best_ckpt.meta["train"]["best"]["epoch"] == best["epoch"]
    assert best_ckpt.meta["metrics"]["map50_95"] == best["map50_95"]


def test_an_official_run_resumes_exactly_with_its_ema(tmp_path):
    """Stopped after epoch 1 and resumed through the state file, it ends with the same EMA
    (augmentation, accumulation and the EMA's update count all continue where they were)."""
    from emsdeploy.models import build_model
    from emsdeploy.models.data import SyntheticShapes, SynthRecipe
    from emsdeploy.models.training import TrainConfig, TrainState, train
    from emsdeploy.models.training.recipe import OFFICIAL

    data = SyntheticShapes(SynthRecipe(size=64, train=4, val=2, max_objects=2, min_size=16, max_size=30), "train")
    cfg = TrainConfig(epochs=2, batch_size=2, recipe=OFFICIAL.with_values(autoanchor=False), seed=1)
    torch.manual_seed(0)
    straight, resumed = build_model("emsyolo-tiny", time_steps=1), build_model("emsyolo-tiny", time_steps=1)
    resumed.load_state_dict(straight.state_dict())

    def keep(info, model, state) -> None:
        if info.epoch == 0:
            torch.save({"state": state.to_dict()}, tmp_path / "s.pt")

    train(straight, data, cfg, on_epoch_end=keep)
    saved = read_torch_file(tmp_path / "s.pt")  # the checked reader takes the state as written
    # the checkpoint holds the EMA; the trained weights come from the state, as --resume loads them
    resumed.load_state_dict(saved["state"]["weights"])
    result = train(resumed, data, cfg, resume=TrainState.from_dict(saved["state"]))
    assert [e.epoch for e in result.epochs] == [1]
    for (k, va), vb in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(va, vb), k


def test_the_official_recipe_never_augments_event_data():
    from emsdeploy.models import build_model
    from emsdeploy.models.data import SyntheticEvents, SynthRecipe
    from emsdeploy.models.training import TrainConfig, train
    from emsdeploy.models.training.recipe import OFFICIAL

    data = SyntheticEvents(SynthRecipe(kind="events", size=64, train=2, val=1, time_bins=2, min_size=16, max_size=30))
    model = build_model("emsyolo-tiny", time_steps=2, encoding="frames", nc=4)
    result = train(model, data, TrainConfig(epochs=1, batch_size=2, recipe=OFFICIAL, max_steps=1))
    assert result.steps == 1 and not result.augmented and result.anchors is not None
