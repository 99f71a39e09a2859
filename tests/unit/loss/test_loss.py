import pytest
import torch

from loss import LOSSES
from loss.segmentation import clip_iou
from utils.config import SolverConfig
from tasks.schedule import learning_rate


def logits_and_masks():
    torch.manual_seed(0)
    logits = torch.randn(2, 2, 4, 8, 8, requires_grad=True)
    masks = (torch.rand(2, 1, 4, 8, 8) > 0.7).to(torch.uint8) * 3  # label ids, not just 0/1
    return logits, masks


def test_original_bce_trains_only_the_foreground_channel():
    logits, masks = logits_and_masks()
    LOSSES["bce_fg"](logits, masks).backward()
    assert logits.grad[:, 0].abs().sum() == 0 and logits.grad[:, 1].abs().sum() > 0


def test_cross_entropy_trains_both_channels_and_matches_two_class_softmax():
    logits, masks = logits_and_masks()
    loss = LOSSES["ce"](logits, masks)
    loss.backward()
    assert logits.grad[:, 0].abs().sum() > 0 and logits.grad[:, 1].abs().sum() > 0
    probabilities = torch.softmax(logits.detach(), dim=1)
    target = (masks[:, 0] != 0)
    expected = -torch.where(target, probabilities[:, 1], probabilities[:, 0]).log().mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_clip_iou_is_per_frame_and_counts_empty_frames_as_one():
    masks = torch.zeros(1, 1, 2, 4, 4, dtype=torch.uint8)
    masks[0, 0, 0, :2] = 1                      # frame 0: 8 foreground pixels, frame 1 empty
    logits = torch.zeros(1, 2, 2, 4, 4)
    logits[0, 1, 0, :1] = 1                     # predict 4 of them in frame 0, nothing in frame 1
    assert clip_iou(logits, masks).item() == pytest.approx((0.5 + 1.0) / 2)


def test_step_schedule_drops_after_the_milestone_epoch_like_the_original():
    solver = SolverConfig(base_lr=5e-5, lr_milestones=[10], lr_gamma=0.1)
    per_epoch = 7  # iterations per epoch: the step schedule is constant within an epoch
    assert [learning_rate(solver, epoch * per_epoch, per_epoch, 100 * per_epoch) for epoch in (0, 10)] == [5e-5, 5e-5]
    assert learning_rate(solver, 11 * per_epoch - 1, per_epoch, 100 * per_epoch) == 5e-5
    assert learning_rate(solver, 11 * per_epoch, per_epoch, 100 * per_epoch) == pytest.approx(5e-6)


def test_poly_and_cosine_schedules_run_from_base_lr_to_zero_per_iteration():
    poly = SolverConfig(base_lr=1e-3, lr_schedule="poly", poly_power=0.9)
    cosine = SolverConfig(base_lr=1e-3, lr_schedule="cosine")
    assert learning_rate(poly, 0, 10, 100) == learning_rate(cosine, 0, 10, 100) == 1e-3
    assert learning_rate(poly, 50, 10, 100) == pytest.approx(1e-3 * 0.5 ** 0.9)
    assert learning_rate(cosine, 50, 10, 100) == pytest.approx(0.5e-3)
    assert learning_rate(cosine, 25, 10, 100) == pytest.approx(1e-3 * (1 + 0.5 ** 0.5) / 2)
    assert learning_rate(poly, 100, 10, 100) == learning_rate(cosine, 100, 10, 100) == 0


def test_linear_warmup_multiplies_the_schedule():
    solver = SolverConfig(base_lr=1e-3, lr_schedule="cosine", warmup_iterations=10, warmup_factor=0.1)
    assert learning_rate(solver, 0, 10, 1000) == pytest.approx(1e-4)
    halfway = 0.1 + 0.9 * 0.5
    assert learning_rate(solver, 5, 10, 1000) == pytest.approx(halfway * learning_rate(
        SolverConfig(base_lr=1e-3, lr_schedule="cosine"), 5, 10, 1000))
    assert learning_rate(solver, 10, 10, 1000) == learning_rate(
        SolverConfig(base_lr=1e-3, lr_schedule="cosine"), 10, 10, 1000)
