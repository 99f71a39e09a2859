"""Two processes under torchrun (gloo on CPU): identical weights on both ranks, files from rank 0
only, the logged loss is the mean of the ranks' losses, validation split across the ranks."""

import json
import os
import re
import subprocess
import sys

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import main
from conftest import REPO_ROOT, TINY_CONFIG, write_mini_davis
from tasks.distributed import gather_rows, is_initialized, parameters_digest, shard
from network import build_model
from utils.config import load_config

pytestmark = pytest.mark.slow  # torchrun with two processes


@pytest.fixture(scope="module")
def torchrun_run(tmp_path_factory):
    """`torchrun --standalone --nproc_per_node=2 main.py ... --task train`: 2 iterations, one
    validation; returns (working folder, completed process)."""
    folder = tmp_path_factory.mktemp("torchrun")
    data = write_mini_davis(folder / "DAVIS", num_frames=8, height=32, width=64)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               str(REPO_ROOT / "main.py"), "-c", str(TINY_CONFIG), "--task", "train",
               f"data.train_root={data}", f"data.test_root={data}", "data.clips_per_sequence=2",
               "train.epochs=2", "train.validate_every=2", "train.log_every=1"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    result = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return folder, result


def test_both_ranks_end_with_the_weights_rank_0_saved(torchrun_run):
    folder, _ = torchrun_run
    log = (folder / "saved_models/tiny/train.log").read_text()
    digests = re.search(r"parameters identical on all 2 processes \(sha256 per rank: (\w+), (\w+)\)", log).groups()
    assert digests[0] == digests[1]
    model = build_model(load_config(TINY_CONFIG).model)
    model.load_state_dict(torch.load(folder / "saved_models/tiny/last.pth", weights_only=True)["model"])
    assert parameters_digest(model) == digests[0]


def test_logged_loss_is_the_mean_of_the_ranks_losses(torchrun_run):
    folder, _ = torchrun_run
    log = (folder / "saved_models/tiny/train.log").read_text()
    steps = re.findall(r"iteration (\d+) \(\d+/1 of the epoch\): loss ([\d.]+) \(per rank: ([\d.]+), ([\d.]+)\)", log)
    assert [int(step[0]) for step in steps] == [1, 2]  # 4 clips = 1 batch of 2 per rank and epoch
    for _, mean, first, second in steps:
        assert float(first) != float(second)  # each rank trained on its own share of the clips
        assert float(mean) == pytest.approx((float(first) + float(second)) / 2, abs=2e-6)


def test_only_rank_0_writes_files_and_validation_covers_both_ranks_shares(torchrun_run):
    folder, result = torchrun_run
    run_dir = folder / "saved_models/tiny"
    assert sorted(path.name for path in run_dir.iterdir()) == [".lock", "best.pth", "config.yaml", "last.pth",
                                                               "tensorboard", "train.log"]
    assert len(list((run_dir / "tensorboard").iterdir())) == 1
    assert not (folder / "results").exists()
    log = (run_dir / "train.log").read_text()
    assert log.count("resolved config") == 1 and log.count("saved checkpoint") == 2
    assert "process 0 of 2 (gloo)" in log
    assert re.search(r"epoch 2/2: mean loss [\d.]+, val J&F [\d.]+ \(2 sequences\)", log)
    assert "[rank 1]" not in result.stderr  # rank 1 logs warnings and errors only


def test_a_single_process_has_no_process_group_and_collectives_are_identities():
    assert not is_initialized()
    assert shard([1, 2, 3]) == [1, 2, 3]
    values = torch.tensor([0.5, 1.0])
    assert torch.equal(gather_rows(values), values[None].double())


def test_validation_split_across_ranks_scores_what_one_process_scores(torchrun_run, tmp_path, monkeypatch):
    folder, _ = torchrun_run
    events = EventAccumulator(str(folder / "saved_models/tiny/tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    validated = {tag.removeprefix("val/"): events.Scalars(tag)[-1].value for tag in events.Tags()["scalars"]
                 if tag.startswith("val/")}
    monkeypatch.chdir(tmp_path)  # one process, the weights validated at epoch 2, the same test set
    assert main.main(["-c", str(TINY_CONFIG), "--task", "infer", "--wts", str(folder / "saved_models/tiny/last.pth"),
                      f"data.test_root={folder / 'DAVIS'}"]) == 0
    metrics = json.loads((tmp_path / "results/tiny/metrics.json").read_text())["metrics"]
    assert validated.keys() == metrics.keys() and "J&F" in metrics
    assert validated == pytest.approx(metrics, rel=1e-6, abs=1e-7)  # tensorboard keeps float32
