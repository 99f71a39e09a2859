"""The training loop's pieces (precision, skipped fp16 steps, gradient clipping, clip images,
validation pictures) and the checks of what a run starts from (--wts, train.init_weights,
train.resume). (What a whole run writes and resumes from: tests/e2e/test_training_run_outputs.py.)"""

from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import main
from checkpoints.training import Progress, save_checkpoint
from checkpoints.weights import read_model_checkpoint
from datasets import index_sequences
from datasets.io import read_rgb
from inference_handlers.inference import build_engine
from inference_handlers.evaluation.report_figures import thumbnail
from loss import LOSSES
from tasks.clip_images import clip_overlay
from tasks.train import Training, build_network, check_step, train_step, warn_if_unfinished
from tasks.train import validate as validate_epoch
from utils.config import Task, load_config, train_sources, validate
from utils.errors import UserError
from utils.precision import autocast_for, check_precision

from support.data_trees import write_mini_davis
from support.paths import REPO_ROOT, TINY_CONFIG

CPU = torch.device("cpu")


def small_training(**changes) -> Training:
    model = torch.nn.Conv3d(3, 2, kernel_size=1)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    fields = dict(model=model, network=model, optimizer=optimizer,
                  scheduler=torch.optim.lr_scheduler.LambdaLR(optimizer, lambda iteration: 1.0),
                  scaler=torch.amp.GradScaler("cpu", enabled=False), loss_fn=LOSSES["ce"], device=CPU,
                  precision="fp32", clip_grad_norm=0.0, writer=None, model_dir=Path("."), iterations_per_epoch=1)
    return Training(**{**fields, **changes})


def small_batch() -> dict:
    generator = torch.Generator().manual_seed(0)
    return {"images": torch.rand(2, 3, 2, 8, 8, generator=generator),
            "masks": (torch.rand(2, 1, 2, 8, 8, generator=generator) > 0.5).to(torch.uint8)}


def test_bf16_autocasts_convolutions_on_cpu_and_fp16_needs_cuda():
    conv = torch.nn.Conv3d(3, 4, kernel_size=3)
    with autocast_for(CPU, "bf16"):
        assert conv(torch.rand(1, 3, 4, 8, 8)).dtype == torch.bfloat16
    with autocast_for(CPU, "fp32"):
        assert conv(torch.rand(1, 3, 4, 8, 8)).dtype == torch.float32
    with autocast_for(CPU, "fp16"):  # inference with a paper config (fp16) on the CPU runs fp32
        assert conv(torch.rand(1, 3, 4, 8, 8)).dtype == torch.float32
    with pytest.raises(UserError, match="fp16 needs a CUDA device"):
        check_precision(CPU, "fp16")


@pytest.mark.filterwarnings("ignore:Detected call of:UserWarning")  # the scheduler steps on skipped steps too
def test_overflowing_fp16_steps_are_skipped_and_too_many_in_a_row_stop_training():
    training = small_training(scaler=torch.amp.GradScaler("cpu", enabled=True),
                              loss_fn=lambda logits, masks: logits.float().sum() * 1e35)  # x 65536: inf
    weights = training.network.weight.detach().clone()
    cfg = load_config(TINY_CONFIG, ["train.max_skipped_steps=3", "train.precision=fp16"])
    progress = Progress()
    with pytest.raises(UserError, match=r"3 consecutive fp16 steps skipped .* up to iteration 3 \(epoch 1\)"):
        for _ in range(3):
            _, _, skipped = train_step(training, small_batch())
            assert skipped
            progress.iteration += 1
            check_step(float("inf"), skipped, progress, cfg)
    assert torch.equal(training.network.weight, weights)


def test_a_finite_step_resets_the_skip_count_and_a_non_finite_fp32_loss_stops_at_once():
    fp16 = load_config(TINY_CONFIG, ["train.max_skipped_steps=2", "train.precision=fp16"])
    progress = Progress(iteration=7)
    check_step(float("inf"), True, progress, fp16)
    check_step(0.5, False, progress, fp16)
    check_step(float("inf"), True, progress, fp16)
    assert progress.skipped_steps == 1
    with pytest.raises(UserError, match="the loss is nan at iteration 7"):  # fp16, not skipped
        check_step(float("nan"), False, progress, fp16)
    with pytest.raises(UserError, match="the loss is inf at iteration 7"):  # fp32: even when skipped
        check_step(float("inf"), True, Progress(iteration=7), load_config(TINY_CONFIG))


@pytest.mark.filterwarnings("ignore:Detected call of:UserWarning")  # the scheduler steps on skipped steps too
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_non_finite_gradients_of_a_finite_loss_skip_the_step_and_too_many_in_a_row_stop(precision, caplog):
    training = small_training(precision=precision)
    poisoned = {"on": True}
    training.network.weight.register_hook(lambda grad: grad * float("nan") if poisoned["on"] else grad)
    cfg = load_config(TINY_CONFIG, ["train.max_skipped_steps=2", f"train.precision={precision}"])
    progress, weights = Progress(), [p.detach().clone() for p in training.network.parameters()]
    loss, _, skipped = train_step(training, small_batch())
    progress.iteration = 1
    check_step(float(loss), skipped, progress, cfg)
    assert skipped and torch.isfinite(loss) and progress.skipped_steps == 1
    assert all(torch.equal(p, w) for p, w in zip(training.network.parameters(), weights))  # no NaN taken
    assert f"iteration 1: {precision} step skipped, its gradients were not finite" in caplog.text
    poisoned["on"] = False
    loss, _, skipped = train_step(training, small_batch())
    check_step(float(loss), skipped, progress, cfg)
    assert not skipped and progress.skipped_steps == 0
    assert not torch.equal(training.network.weight, weights[0])
    poisoned["on"] = True
    with pytest.raises(UserError, match=rf"2 consecutive {precision} steps skipped for non-finite gradients"):
        for iteration in (3, 4):
            _, _, skipped = train_step(training, small_batch())
            progress.iteration = iteration
            check_step(0.5, skipped, progress, cfg)


def test_gradients_are_clipped_to_the_configured_norm():
    training = small_training(clip_grad_norm=1e-3)
    train_step(training, small_batch())
    norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in training.network.parameters()]))
    assert norm == pytest.approx(1e-3, rel=1e-3)


def test_clip_image_shows_ground_truth_in_green_on_top_and_the_prediction_in_red_below():
    images = torch.full((3, 2, 4, 4), 0.5)
    masks = torch.zeros(1, 2, 4, 4, dtype=torch.uint8)
    masks[0, 1, 0, 0] = 1                      # ground truth: frame 1, pixel (0, 0)
    logits = torch.zeros(2, 2, 4, 4)
    logits[1, 0, 3, 3] = 1                     # prediction: frame 0, pixel (3, 3)
    picture = clip_overlay(images, masks, logits)
    assert picture.shape == (3, 8, 8) and picture.dtype == torch.uint8
    assert picture[:, 0, 4].tolist() == [64, 191, 64]       # top row, frame 1: green
    assert picture[:, 7, 3].tolist() == [191, 64, 64]       # bottom row, frame 0: red
    assert picture[:, 0, 0].tolist() == [128, 128, 128]     # elsewhere: the frame


def test_frozen_batchnorm_without_pretrained_weights_warns(caplog):
    build_network(load_config(TINY_CONFIG, ["model.bn_mode=frozen"]), CPU, None)
    assert "BatchNorm keeps its initial statistics" in caplog.text
    caplog.clear()
    build_network(load_config(TINY_CONFIG, ["model.bn_mode=train"]), CPU, None)
    assert "BatchNorm" not in caplog.text


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return write_mini_davis(tmp_path_factory.mktemp("data") / "DAVIS", num_frames=8, height=32, width=64)


@pytest.fixture
def args(data_root):
    return ["-c", str(TINY_CONFIG), "--task", "train", f"data.train_root={data_root}",
            f"data.test_root={data_root}", "data.clips_per_sequence=2"]  # 2 iterations per epoch


def test_missing_initial_weights_name_the_key_and_the_previous_stage(tmp_path, monkeypatch, capsys, args):
    monkeypatch.chdir(tmp_path)
    assert main.main(args + ["train.init_weights=saved_models/stage1/best.pth"]) == 2
    message = capsys.readouterr().err.strip().splitlines()[-1]
    assert message.startswith("error: train.init_weights: file not found: saved_models/stage1/best.pth")
    assert "train the previous stage first" in message


def test_a_stage_started_from_an_unfinished_run_warns(tmp_path, caplog):
    for finished in (True, False):
        save_checkpoint(tmp_path / f"{finished}.pth", model_state={}, epoch=4, iteration=9, config={},
                        training_state={"progress": {"epoch": 4, "finished": finished}})
    for finished in (True, False):
        path = tmp_path / f"{finished}.pth"
        warn_if_unfinished("train.init_weights", path, read_model_checkpoint(path).training)
        assert ("unfinished" in caplog.text) != finished
    assert "comes from an unfinished run (stopped in epoch 5)" in caplog.text


RECIPE = ["recipe_coco", "recipe_youtube_vos", "recipe_davis"]


@pytest.mark.parametrize("name", RECIPE + ["recipe_mixture"])
def test_recipe_stages_start_from_the_previous_stage_and_train_on_its_data(name):
    cfg = load_config(REPO_ROOT / "run_configs" / f"{name}.yaml")
    validate(cfg, Task.BENCHMARK)
    assert cfg.name == name and cfg.data.test_split == "2016/val.txt"
    if name in RECIPE[1:]:
        previous = RECIPE[RECIPE.index(name) - 1]
        assert cfg.train.init_weights == f"saved_models/{previous}/last.pth" and not cfg.model.backbone_weights
    else:
        assert cfg.model.backbone_weights and not cfg.train.init_weights
    datasets = {"recipe_coco": ["coco"], "recipe_youtube_vos": ["youtube_vos"], "recipe_davis": ["davis"],
                "recipe_mixture": ["davis", "coco", "youtube_vos"]}[name]
    assert [source.dataset for _, source in train_sources(cfg.data)] == datasets
    if name == "recipe_mixture":
        assert [source.weight for source in cfg.data.train] == [0.3, 0.25, 0.45]


class TensorboardStub:
    """The SummaryWriter calls validation makes, kept in memory."""

    def __init__(self):
        self.images = {}

    def add_scalar(self, tag, value, step):
        pass

    def add_text(self, tag, text, step):
        pass

    def add_image(self, tag, image, step, dataformats):
        self.images[tag] = image


def repredicted_picture(engine, sequence, index):
    """The picture as validation made it before it captured its own masks: the frame predicted
    again from the clip_length frames around it."""
    start = max(0, min(index - engine.clip_length // 2, sequence.num_frames - engine.clip_length))
    window = replace(sequence, frame_paths=sequence.frame_paths[start:start + engine.clip_length],
                     frame_numbers=None, mask_paths={index - start: sequence.mask_paths[index]})
    labels = next(p.labels() for p in engine.predict(window) if p.index == index - start)
    frame = read_rgb(sequence.frame_paths[index])
    return thumbnail(frame, [sequence.read_mask(index, frame.shape[:2]), labels], height=frame.shape[0])


def test_validation_pictures_are_the_validated_masks_and_nothing_is_predicted_again(data_root, monkeypatch):
    cfg = load_config(TINY_CONFIG, [f"data.test_root={data_root}", "train.val_images=2"])
    sequences = index_sequences(cfg.data, "test")  # 8 frames = clip_length: one window, as re-predicted
    engine = build_engine(cfg, build_network(cfg, CPU, None), CPU)
    predicted, predict = [], engine.predict
    monkeypatch.setattr(engine, "predict", lambda sequence, **options: predicted.append(sequence.name)
                        or predict(sequence, **options))
    writer = TensorboardStub()
    validate_epoch(engine, sequences, cfg, writer, epoch=1, stop=SimpleNamespace(received=None))
    assert predicted == ["bear", "cows"]  # once each, by the validation itself
    assert sorted(writer.images) == ["val/bear/00004", "val/cows/00004"]
    for sequence in sequences:
        expected = repredicted_picture(engine, sequence, 4)
        assert np.array_equal(writer.images[f"val/{sequence.name}/00004"], expected)
