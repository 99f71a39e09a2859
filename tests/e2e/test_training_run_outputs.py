"""What a whole training run writes (tensorboard curves and clip images, snapshots, best.pth) and
starts from: `--wts last.pth` resumes, train.init_weights of another run sets the weights only and
a resumed run ignores them."""

from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import main
from tasks.train import build_network
from utils.config import load_config

from support.data_trees import write_mini_davis
from support.paths import TINY_CONFIG

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return write_mini_davis(tmp_path_factory.mktemp("data") / "DAVIS", num_frames=8, height=32, width=64)


@pytest.fixture
def args(data_root):
    return ["-c", str(TINY_CONFIG), "--task", "train", f"data.train_root={data_root}",
            f"data.test_root={data_root}", "data.clips_per_sequence=2"]  # 2 iterations per epoch


def tensorboard_tags(run_dir: Path) -> dict:
    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    return events.Tags()


@pytest.mark.slow
def test_a_run_writes_curves_clip_images_snapshots_and_best_then_wts_last_pth_resumes(tmp_path, monkeypatch,
                                                                                      caplog, args):
    monkeypatch.chdir(tmp_path)
    caplog.set_level("INFO")
    assert main.main(args + ["train.epochs=2", "train.snapshot_every=1", "train.image_every=2"]) == 0
    run_dir = tmp_path / "saved_models/tiny"
    tags = tensorboard_tags(run_dir)
    assert {"train/loss", "train/iou", "train/lr", "val/J&F", "val/J_mean"} <= set(tags["scalars"])
    fixed = ["val/bear/00004", "val/cows/00004"]  # the middle annotated frame of each test sequence
    assert sorted(tags["images"]) == ["train/clip", *fixed]
    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"images": 0, "tensors": 0})
    events.Reload()
    for tag in fixed:  # every validation (epochs 1 and 2) logs the same frames: frame | ground truth | prediction
        assert [(image.step, image.width, image.height) for image in events.Images(tag)] == [(1, 3 * 64 + 6, 32), (2, 3 * 64 + 6, 32)]
    table = events.Tensors("val/sequences/text_summary")[-1].tensor_proto.string_val[0].decode()
    assert table.startswith("| sequence | frames | J_mean") and "| bear | 8 |" in table and "| cows | 8 |" in table
    assert (run_dir / "epoch_001.pth").is_file() and (run_dir / "epoch_002.pth").is_file()
    assert torch.load(run_dir / "epoch_001.pth", weights_only=True)["iteration"] == 2
    best = torch.load(run_dir / "best.pth", weights_only=True)
    best_epoch = best["training"]["progress"]["best_epoch"]
    assert best["epoch"] + 1 == best_epoch and f"after epoch {best_epoch} (best.pth)" in caplog.text

    caplog.clear()  # --wts naming the run's own last.pth continues it (so does the plain command)
    assert main.main(args + ["--wts", "saved_models/tiny/last.pth", "train.epochs=3", "train.validate_every=0"]) == 0
    assert "resuming from saved_models/tiny/last.pth: epoch 2, iteration 4" in caplog.text
    assert torch.load(run_dir / "last.pth", weights_only=True)["iteration"] == 6
    assert not torch.distributed.is_initialized()


@pytest.mark.slow
def test_init_weights_of_another_run_set_weights_only_and_a_resumed_run_ignores_them(tmp_path, monkeypatch,
                                                                                    caplog, args):
    monkeypatch.chdir(tmp_path)
    caplog.set_level("INFO")
    quick = ["train.validate_every=0", "solver.base_lr=0.0"]  # lr 0: the weights stay as loaded
    assert main.main(args + ["name=first", "solver.base_lr=1e-2", "train.validate_every=0"]) == 0
    first = torch.load("saved_models/first/last.pth", weights_only=True)

    assert main.main(args + ["name=second", "train.init_weights=saved_models/first/last.pth"] + quick) == 0
    second = torch.load("saved_models/second/last.pth", weights_only=True)
    assert second["iteration"] == 2 and "resuming" not in caplog.text and "unfinished" not in caplog.text
    parameters = dict(torch.nn.Module.named_parameters(build_network(load_config(TINY_CONFIG), CPU, None)))
    for name in parameters:
        assert torch.equal(second["model"][name], first["model"][name]), name

    caplog.clear()
    assert main.main(args + ["name=second", "--wts", "saved_models/first/last.pth", "train.epochs=2"] + quick) == 0
    assert "--wts saved_models/first/last.pth is not used: this run resumes from saved_models/second/last.pth" \
        in caplog.text
    assert torch.load("saved_models/second/last.pth", weights_only=True)["iteration"] == 4

    caplog.clear()
    assert main.main(args + ["name=second", "train.resume=false"] + quick) == 0
    assert "starting over" in caplog.text
    assert torch.load("saved_models/second/last.pth", weights_only=True)["iteration"] == 2
