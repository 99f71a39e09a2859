"""Nothing lost: a training run (with a DataLoader worker) and an inference run (with its reader
and writer threads) are killed (SIGKILL) at seeded random moments, several times, and each next
run is started at once. After every kill each file under its final name is whole (temp files of
utils.files.atomic_write, `.<name>.<random>.tmp`, may be left behind); the same command run again
until it finishes ends with the files of a run that was never stopped.

Kill moments: a delay drawn from a seeded RNG after a log line: for inference the line that ends
the run's set-up (imports done, model built), delay in (0.1, 0.9) x the duration of the
uninterrupted run; for training the start of the data loading and of a validation (delay in
(0, 0.5) s, so the kill lands in that phase). One kill per run lands inside a write whatever the
machine's speed: that run starts through tests/support/held_write_main.py, which holds a seeded
write open (its data in the temp file, not yet renamed) until the kill. The other kills come at
their delay or, at the latest, inside a write near the end of the run that the same script holds
(the last sequence's overlay video; the last epoch's snapshot, written before last.pth): a machine
fast enough to finish within the delay is killed there instead, so every killed run is killed and
leaves work for the next whatever the machine's speed. Every run uses one intra-op thread: on
shared cores two OpenMP threads make a step of the tiny model many times slower.
"""

import contextlib
import json
import logging
import os
import random
import signal
import time
from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image

import main
import tasks.train
from checkpoints.training import save_checkpoint
from network import build_model
from utils.config import load_config, to_dict

from support.data_trees import write_mini_davis
from support.kills import TEMP_FILE, run_until_killed, temp_files
from support.paths import TINY_CONFIG
from support.training_state import assert_same_optimizer_state, assert_same_training_state
from support.videos import decode_all


pytestmark = pytest.mark.slow  # kills and reruns training and inference in subprocesses

logger = logging.getLogger(__name__)

KILLS = 3                  # killed runs before the run that finishes
WRITE_KILL = 1             # which of them is killed inside a write
MAX_WRITES_BEFORE_HELD = 8  # the write killed is one of the first 8 of the run's result files
NUM_FRAMES, HEIGHT, WIDTH = 16, 64, 112  # inference data: frames per sequence and their size
SEQUENCES = ("a", "b", "c", "d", "e", "f")


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One intra-op thread here too, like the runs started with OMP_NUM_THREADS=1 (also for the
    module's reference runs: another thread count changes the sums' rounding)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def kill_several_times(args: list[str], cwd: Path, started: str, duration: float, final_names: str,
                       check, seed: int, backstop: tuple[str, int]) -> list[dict]:
    """KILLS killed runs of the same command (delays from a seeded RNG, at the latest inside the
    `backstop` write; one inside a write of a file matching `final_names`, after a seeded number of
    others), `check(cwd)` after each; returns their outcomes."""
    rng = random.Random(seed)
    outcomes = []
    for attempt in range(KILLS):
        delay = rng.uniform(0.1, 0.9) * duration
        held = (final_names, rng.randrange(MAX_WRITES_BEFORE_HELD)) if attempt == WRITE_KILL else None
        outcome = run_until_killed(args, cwd, cwd.parent / f"{cwd.name}-{attempt}.log", started, delay, held,
                                   None if held else backstop)
        check(cwd)
        outcomes.append(outcome)
    logger.info("kills: %s", outcomes)
    return outcomes


def final_files(folder: Path) -> list[Path]:
    """Files below `folder` under their final names: not temp files of atomic_write."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and not TEMP_FILE.fullmatch(p.name))


def timed_main(args: list[str], cwd: Path, monkeypatch) -> float:
    """Run main.main(args) in `cwd` (must succeed); its duration in seconds."""
    monkeypatch.chdir(cwd)
    start = time.monotonic()
    assert main.main(args) == 0
    return time.monotonic() - start


# Training ---------------------------------------------------------------------------------------

MAX_TRAINING_DELAY = 0.5  # seconds after the phase's log line: the kill lands in that phase
LAST_SNAPSHOT = (r"epoch_002\.pth", 0)  # held at the latest (a backstop): written before last.pth ends the run
TRAINING_KILLS = (  # (phase, the log line it starts after, kill inside a write of these files or None)
    ("loading data", "training sequences", None),
    ("validation", "validating epoch", None),
    ("checkpoint write", "training sequences", r"best\.pth|epoch_\d+\.pth"),
)


@pytest.fixture(scope="module")
def train_args(tmp_path_factory):
    """Two epochs with one DataLoader worker (as the demo), validated and checkpointed often."""
    root = write_mini_davis(tmp_path_factory.mktemp("data") / "DAVIS", num_frames=8, height=32, width=64)
    return ["-c", str(TINY_CONFIG), "--task", "train", f"data.train_root={root}", f"data.test_root={root}",
            "data.clips_per_sequence=3", "train.epochs=2", "train.validate_every=1", "train.log_every=1",
            "train.checkpoint_every=1", "train.snapshot_every=1", "loader.num_workers=1"]


@pytest.fixture(scope="module")
def uninterrupted_training(tmp_path_factory, train_args):
    """saved_models/tiny of a run that was never stopped."""
    folder = tmp_path_factory.mktemp("uninterrupted")
    with contextlib.chdir(folder):
        assert main.main(train_args) == 0
    reference_dir = folder / "saved_models/tiny"
    assert sorted(p.name for p in reference_dir.glob("*.pth")) == ["best.pth", "epoch_001.pth", "epoch_002.pth",
                                                                   "last.pth"]
    return reference_dir


def check_training_files(cwd: Path) -> None:
    """Every checkpoint and config.yaml under a final name loads completely."""
    for path in final_files(cwd / "saved_models/tiny"):
        if path.suffix == ".pth":
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
            assert checkpoint["model"] and checkpoint["training"]["progress"], path
        elif path.suffix == ".yaml":
            assert yaml.safe_load(path.read_text())["name"] == "tiny", path


def assert_same_checkpoints(folder: Path, reference_dir: Path) -> None:
    """last.pth equal to the reference in model, all optimiser state, schedule; the copies too."""
    assert_same_training_state(torch.load(folder / "last.pth", weights_only=True),
                               torch.load(reference_dir / "last.pth", weights_only=True))
    for name in ("best.pth", "epoch_001.pth", "epoch_002.pth"):
        checkpoint, reference = (torch.load(f / name, weights_only=True) for f in (folder, reference_dir))
        assert checkpoint["iteration"] == reference["iteration"], name
        assert all(torch.equal(checkpoint["model"][key], value) for key, value in reference["model"].items()), name
        assert_same_optimizer_state(checkpoint["optimizer"], reference["optimizer"])


def test_training_killed_at_seeded_moments_resumes_at_once_to_the_uninterrupted_checkpoints(
        tmp_path, monkeypatch, train_args, uninterrupted_training):
    """Killed while loading data, during validation and inside a checkpoint write, with a
    DataLoader worker: each next run starts at once (the killed run's worker may still be
    exiting: it must not hold the run folder's lock) and the last one ends as the uninterrupted run."""
    cwd = tmp_path / "killed"
    cwd.mkdir()
    rng = random.Random(11)
    outcomes = []
    for attempt, (phase, started, written) in enumerate(TRAINING_KILLS):
        delay = rng.uniform(0.0, MAX_TRAINING_DELAY)
        held = (written, 0) if written else None
        outcome = run_until_killed(train_args, cwd, tmp_path / f"killed-{attempt}.log", started, delay, held,
                                   None if held else LAST_SNAPSHOT)
        check_training_files(cwd)
        outcomes.append({"phase": phase, **outcome})
    logger.info("kills: %s", outcomes)
    assert all(outcome["killed"] for outcome in outcomes)  # none was refused, none had finished
    assert outcomes[-1]["new_temp_files"]  # killed inside a write of best.pth / epoch_NNN.pth

    timed_main(train_args, cwd, monkeypatch)
    check_training_files(cwd)
    folder = cwd / "saved_models/tiny"
    assert not temp_files(folder)  # the killed writes' temp files are removed by the rerun
    assert_same_checkpoints(folder, uninterrupted_training)


def test_sigterm_during_validation_stops_it_and_the_rerun_validates_again(tmp_path, monkeypatch, caplog,
                                                                        train_args, uninterrupted_training):
    """SIGTERM while epoch 1 is validated: the validation stops, last.pth holds the trained but
    unvalidated epoch, the exit status is 143; the same command validates epoch 1 and finishes
    as the uninterrupted run."""
    calls, run_inference = {"count": 0}, tasks.train.run_inference

    def sigterm_in_first_validation(*args, **kwargs):
        calls["count"] += 1
        if calls["count"] == 1:
            os.kill(os.getpid(), signal.SIGTERM)
        return run_inference(*args, **kwargs)

    monkeypatch.setattr(tasks.train, "run_inference", sigterm_in_first_validation)
    monkeypatch.chdir(tmp_path)
    caplog.set_level("INFO")
    assert main.main(train_args) == 128 + signal.SIGTERM
    assert calls["count"] == 1  # the second test sequence was not predicted
    assert "validation of epoch 1 stopped by SIGTERM; it is done again on resume" in caplog.text
    stopped = torch.load(tmp_path / "saved_models/tiny/last.pth", weights_only=True)
    progress = stopped["training"]["progress"]
    assert (progress["epoch"], progress["epoch_batches"], progress["epoch_finished"]) == (0, 3, False)
    assert not (tmp_path / "saved_models/tiny/best.pth").exists()

    monkeypatch.setattr(tasks.train, "run_inference", run_inference)
    caplog.clear()
    assert main.main(train_args) == 0
    assert "resuming from saved_models/tiny/last.pth: epoch 1, iteration 3 (3 of 3 batches" in caplog.text
    assert_same_checkpoints(tmp_path / "saved_models/tiny", uninterrupted_training)


# Inference --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def infer_args(tmp_path_factory):
    folder = tmp_path_factory.mktemp("infer-data")
    root = write_mini_davis(folder / "DAVIS", names=SEQUENCES, num_frames=NUM_FRAMES, height=HEIGHT, width=WIDTH)
    cfg = load_config(TINY_CONFIG)
    weights = folder / "tiny.pth"
    save_checkpoint(weights, model_state=build_model(cfg.model).state_dict(), epoch=0, iteration=0,
                    config=to_dict(cfg))
    return ["-c", str(TINY_CONFIG), "--task", "infer", "--wts", str(weights), f"data.test_root={root}",
            "inference.save_probs=true", "inference.overlay=true",
            "inference.prefetch_frames=4", "inference.write_queue=4"]  # the reader and writer threads on


def check_result_files(cwd: Path) -> None:
    """Every PNG decodes at the frame size, every video has all its frames, metrics and config
    parse, and a sequence has its marker only when all its files are there."""
    results = cwd / "results/tiny"
    for path in final_files(results):
        if path.suffix == ".png":
            with Image.open(path) as image:
                image.load()
                assert image.size == (WIDTH, HEIGHT), path
        elif path.suffix == ".mp4":
            assert len(decode_all(path)) == NUM_FRAMES, path
        elif path.name in ("metrics.json", ".complete.json"):
            json.loads(path.read_text())
        elif path.suffix == ".csv":
            assert len(path.read_text().splitlines()) >= 1 + len(SEQUENCES), path
        elif path.suffix == ".yaml":
            assert yaml.safe_load(path.read_text())["name"] == "tiny", path
    for marker in results.glob("*/.complete.json"):
        listed = json.loads(marker.read_text())["files"]
        assert len(listed) == 2 * NUM_FRAMES + 1, marker  # masks, probabilities, overlay
        assert all((results / name).is_file() for name in listed), marker


def result_bytes(cwd: Path) -> dict[str, bytes]:
    """Masks, probability PNGs and metrics.json by their path under results/tiny."""
    results = cwd / "results/tiny"
    paths = [*results.glob("*/*.png"), *results.glob("probs/*/*.png"), results / "metrics.json"]
    return {str(path.relative_to(results)): path.read_bytes() for path in paths}


def test_inference_killed_at_random_moments_reruns_to_the_uninterrupted_results(tmp_path, monkeypatch, infer_args):
    (tmp_path / "uninterrupted").mkdir()
    duration = timed_main(infer_args, tmp_path / "uninterrupted", monkeypatch)
    reference = result_bytes(tmp_path / "uninterrupted")
    assert len(reference) == 2 * len(SEQUENCES) * NUM_FRAMES + 1

    (tmp_path / "killed").mkdir()
    last_overlay = (rf"{SEQUENCES[-1]}\.mp4", 0)  # held at the latest: the last sequence stays incomplete
    outcomes = kill_several_times(infer_args, tmp_path / "killed", "loaded our checkpoint", duration,
                                  r".*\.(png|mp4|json|csv)", check_result_files, seed=12, backstop=last_overlay)
    assert outcomes[WRITE_KILL]["killed"] and outcomes[WRITE_KILL]["new_temp_files"]  # killed inside a write

    timed_main(infer_args, tmp_path / "killed", monkeypatch)
    check_result_files(tmp_path / "killed")
    results = tmp_path / "killed/results/tiny"
    assert not temp_files(results)  # removed: a sequence's when it is predicted again, the others at set-up
    assert result_bytes(tmp_path / "killed") == reference
    for name in SEQUENCES:
        video = f"results/tiny/overlays/{name}.mp4"
        frames, expected = decode_all(tmp_path / "killed" / video), decode_all(tmp_path / "uninterrupted" / video)
        assert all((frame == other).all() for frame, other in zip(frames, expected, strict=True)), name
