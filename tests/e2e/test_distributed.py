"""Two processes under torchrun (gloo on CPU): identical weights on both ranks, files from rank 0
only, the logged loss is the mean of the ranks' losses, validation split across the ranks. Run
as users do: on a fresh synthetic data root with DataLoader workers, a launcher killed and the
same command run again at once, and two launchers on this machine acting as two nodes."""

import gc
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
from PIL import Image
from torch.nn.parallel import DistributedDataParallel
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import main
import tasks.distributed
from datasets.io import read_mask, read_rgb
from datasets.synthetic import MARKER, TMP_INFIX
from inference_handlers.evaluation.report_figures import thumbnail
from network import build_model
from tasks.distributed import gather_rows, is_initialized, parameters_digest, shard
from utils.config import load_config

from support.data_trees import write_mini_davis
from support.paths import REPO_ROOT, TINY_CONFIG
from support.training_state import assert_same_training_state

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


def test_a_torchrun_worker_has_left_its_process_group_when_main_returns(tmp_path, monkeypatch):
    """A worker (here the only one of a gloo group of one, as torchrun describes it in the
    environment) leaves the process group inside main(), not during the interpreter's teardown,
    with no DistributedDataParallel left holding it."""
    for name, value in {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1",
                        "MASTER_PORT": str(free_port())}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(tasks.distributed, "die_with_launcher", lambda: None)  # pytest's parent is no launcher
    data = write_mini_davis(tmp_path / "DAVIS", num_frames=8, height=32, width=64)
    monkeypatch.chdir(tmp_path)
    assert main.main(["-c", str(TINY_CONFIG), "--task", "train", f"data.train_root={data}", f"data.test_root={data}",
                      "data.clips_per_sequence=2", "train.epochs=1", "train.validate_every=1"]) == 0
    assert "process 0 of 1 (gloo)" in (tmp_path / "saved_models/tiny/train.log").read_text()
    assert not dist.is_initialized()
    assert not [item for item in gc.get_objects() if type(item) is DistributedDataParallel]


def test_a_single_process_has_no_process_group_and_collectives_are_identities():
    assert not is_initialized()
    assert shard([1, 2, 3]) == [1, 2, 3]
    values = torch.tensor([0.5, 1.0])
    assert torch.equal(gather_rows(values), values[None].double())


# A fresh data root, killed launchers, two nodes ---------------------------------------------------

FRESH_SYNTHETIC = [  # generated on first use into the working folder; 6 x 2 clips = 3 steps of 2 x 2 per epoch
    "--task", "train", "data.train=synthetic", "data.test=synthetic", "data.train_root=data/synthetic",
    "data.test_root=data/synthetic", "data.synthetic.num_train=6", "data.synthetic.num_val=2",
    "data.synthetic.num_frames=8", "data.synthetic.height=32", "data.synthetic.width=64", "data.clips_per_sequence=2",
    "train.epochs=2", "train.validate_every=1", "train.log_every=1", "train.checkpoint_every=1",
    "loader.num_workers=1"]
KILL_AFTER = "saved checkpoint saved_models/tiny/last.pth (epoch 0, iteration 1)"  # mid-epoch 1


def free_port() -> int:
    """A TCP port no one listens on now (the system's choice for port 0)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def torchrun(cwd: Path, launcher: list[str], log_name: str) -> subprocess.Popen:
    """`torchrun LAUNCHER main.py -c tiny.yaml FRESH_SYNTHETIC` in `cwd`, its output in `cwd/log_name`."""
    cwd.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "torch.distributed.run", *launcher, str(REPO_ROOT / "main.py"),
               "-c", str(TINY_CONFIG), *FRESH_SYNTHETIC]
    with open(cwd / log_name, "w") as log:
        return subprocess.Popen(command, cwd=cwd, env=dict(os.environ, OMP_NUM_THREADS="1"), stdout=log,
                                stderr=subprocess.STDOUT)


def standalone(cwd: Path, log_name: str) -> subprocess.Popen:
    return torchrun(cwd, ["--standalone", "--nproc_per_node=2"], log_name)


def two_nodes(folders: tuple[Path, Path], log_name: str) -> list[subprocess.Popen]:
    """Two launchers as two nodes of one process each, meeting at a c10d rendezvous on this machine."""
    endpoint = f"127.0.0.1:{free_port()}"
    return [torchrun(folder, ["--nnodes=2", f"--node-rank={node}", "--nproc-per-node=1", "--rdzv-backend=c10d",
                              f"--rdzv-endpoint={endpoint}", "--rdzv-id=two-nodes"], f"node{node}-{log_name}")
            for node, folder in enumerate(folders)]


def finish(processes: list[subprocess.Popen], folder: Path) -> None:
    for process in processes:
        logs = sorted(folder.rglob("*.out"))  # a folder per node keeps its launcher's log
        assert process.wait(timeout=600) == 0, "\n".join(log.read_text()[-3000:] for log in logs)


def wait_until_gone(pid: int) -> None:
    """Until process `pid` has ended (a zombie no one reaps counts as ended)."""
    while True:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return
        if state in ("Z", "X"):
            return
        time.sleep(0.02)


def kill_when_checkpointed(victim: subprocess.Popen, others: list[subprocess.Popen], folders) -> None:
    """SIGKILL `victim` (a launcher) once rank 0 logged KILL_AFTER in any of `folders`; the
    launchers left must then end by themselves (their workers fail without the killed ones), and
    rank 0 must have died with them, not trained on as an orphan (holding the run's lock)."""
    run_dirs = [folder / "saved_models/tiny" for folder in folders]
    logs = [run_dir / "train.log" for run_dir in run_dirs]
    while victim.poll() is None and not any(log.is_file() and KILL_AFTER in log.read_text() for log in logs):
        time.sleep(0.02)
    (run_dir,) = {run_dir for run_dir in run_dirs if (run_dir / "train.log").is_file()}
    rank_0 = int((run_dir / ".lock").read_text().split()[1])  # "process <pid> on <host> since ..."
    victim.kill()
    assert victim.wait(timeout=60) == -signal.SIGKILL
    for other in others:
        assert other.wait(timeout=300) != 0
    wait_until_gone(rank_0)
    assert not torch.load(run_dir / "last.pth", weights_only=True)["training"]["progress"]["finished"]


def assert_data_generated_once_and_whole(folder: Path) -> None:
    assert (folder / "data/synthetic" / MARKER).is_file()
    assert not list((folder / "data").glob(f"synthetic{TMP_INFIX}*"))


@pytest.fixture(scope="module")
def fresh_root_run(tmp_path_factory) -> Path:
    """The issue's first case: `torchrun --standalone --nproc_per_node=2` on a fresh data root,
    both ranks needing the synthetic data at once; its folder (reference of the kill tests)."""
    folder = tmp_path_factory.mktemp("fresh-root")
    finish([standalone(folder, "run.out")], folder)
    return folder


def test_two_processes_on_a_fresh_data_root_generate_it_once_and_train(fresh_root_run):
    assert_data_generated_once_and_whole(fresh_root_run)
    checkpoint = torch.load(fresh_root_run / "saved_models/tiny/last.pth", weights_only=True)
    assert checkpoint["iteration"] == 6 and checkpoint["training"]["progress"]["finished"]


@pytest.mark.slow
def test_launcher_killed_then_the_same_command_at_once_resumes_exactly(tmp_path, fresh_root_run):
    """SIGKILL of torchrun: its workers (and theirs) die with it, so the same command started at
    once is not refused by the run folder's lock, resumes, and ends with the uninterrupted run's
    model and optimiser state."""
    launcher = standalone(tmp_path, "killed.out")
    kill_when_checkpointed(launcher, [], [tmp_path])
    finish([standalone(tmp_path, "rerun.out")], tmp_path)
    assert "resuming from saved_models/tiny/last.pth" in (tmp_path / "saved_models/tiny/train.log").read_text()
    assert_same_training_state(torch.load(tmp_path / "saved_models/tiny/last.pth", weights_only=True),
                               torch.load(fresh_root_run / "saved_models/tiny/last.pth", weights_only=True))


@pytest.mark.slow
@pytest.mark.parametrize("layout, killed", [("shared", 1), ("per_node", 0)])
def test_two_nodes_train_and_resume_after_either_launcher_is_killed(tmp_path, fresh_root_run, layout, killed):
    """Two launchers as two nodes (c10d rendezvous on a free port), with one shared working folder
    (data and runs, as on a shared filesystem) or one each (local disks: each node makes its own
    data; only rank 0's node writes the run). One launcher is killed mid-epoch, the other ends
    by itself; both commands again resume, whichever node rank 0 lands on, to the uninterrupted
    run's state."""
    folders = (tmp_path, tmp_path) if layout == "shared" else (tmp_path / "node0", tmp_path / "node1")
    launchers = two_nodes(folders, "killed.out")
    kill_when_checkpointed(launchers[killed], [launchers[1 - killed]], folders)
    finish(two_nodes(folders, "rerun.out"), tmp_path)
    for folder in set(folders):
        assert_data_generated_once_and_whole(folder)
    finals = [torch.load(path, weights_only=True) for folder in set(folders)
              for path in [folder / "saved_models/tiny/last.pth"] if path.is_file()]
    final = max(finals, key=lambda checkpoint: checkpoint["iteration"])
    assert_same_training_state(final, torch.load(fresh_root_run / "saved_models/tiny/last.pth", weights_only=True))


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
    pictures = EventAccumulator(str(folder / "saved_models/tiny/tensorboard"), size_guidance={"images": 0})
    pictures.Reload()
    for name in ("bear", "cows"):  # one sequence per rank, the pictures gathered on rank 0
        encoded = pictures.Images(f"val/{name}/00004")[-1].encoded_image_string
        frame = read_rgb(folder / f"DAVIS/JPEGImages/480p/{name}/00004.jpg")
        masks = [read_mask(folder / f"DAVIS/Annotations_unsupervised/480p/{name}/00004.png"),
                 read_mask(tmp_path / f"results/tiny/{name}/00004.png")]
        expected = thumbnail(frame, masks, height=frame.shape[0])
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(encoded)).convert("RGB")), expected), name
