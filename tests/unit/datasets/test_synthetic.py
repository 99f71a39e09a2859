"""Tests of the synthetic motion-only DAVIS dataset (datasets/synthetic.py); processes that
generate it together or are killed midway: tests/e2e/test_synthetic_generation_processes.py."""

import contextlib
import errno
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import main
from datasets.io import read_mask, read_rgb
from datasets.synthetic import (TMP_INFIX, add_pixel_noise, ensure_synthetic_davis, generate_synthetic_davis,
                                render_sequence)

from support.paths import TINY_CONFIG
from support.synthetic import SMALL, all_files


def centroid(mask: np.ndarray) -> np.ndarray:
    return np.argwhere(mask).mean(axis=0)


@pytest.fixture(scope="module")
def small_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synthetic") / "davis"
    generate_synthetic_davis(root, **SMALL)
    return root


def test_layout(small_root):
    for year in ("2016", "2017"):
        for split, count in (("train", 4), ("val", 2)):
            names = (small_root / "ImageSets" / year / f"{split}.txt").read_text().split()
            assert names == [f"{split}_{index:04d}" for index in range(count)]
    for name in ["train_0000", "train_0003", "val_0000", "val_0001"]:
        frames = sorted((small_root / "JPEGImages" / "480p" / name).iterdir())
        masks = sorted((small_root / "Annotations_unsupervised" / "480p" / name).iterdir())
        assert [path.name for path in frames] == [f"{index:05d}.jpg" for index in range(6)]
        assert [path.name for path in masks] == [f"{index:05d}.png" for index in range(6)]
        with_foreground = 0
        for frame_path, mask_path in zip(frames, masks):
            assert read_rgb(frame_path).shape == (64, 96, 3)
            mask = read_mask(mask_path)
            assert mask.shape == (64, 96)
            assert set(np.unique(mask)) <= {0, 1}
            with_foreground += int(mask.any())
        assert with_foreground >= 5
    assert not list(small_root.parent.glob("*.tmp-*"))


def test_same_seed_gives_identical_files(tmp_path, small_root):
    generate_synthetic_davis(tmp_path / "again", **SMALL)
    assert all_files(tmp_path / "again") == all_files(small_root)


def test_different_seed_gives_different_files(tmp_path, small_root):
    generate_synthetic_davis(tmp_path / "other", **{**SMALL, "seed": 1})
    other, reference = all_files(tmp_path / "other"), all_files(small_root)
    assert other.keys() == reference.keys()
    name = "JPEGImages/480p/val_0000/00000.jpg"
    assert other[name] != reference[name]


def test_val_does_not_depend_on_num_train_and_differs_from_train(tmp_path, small_root):
    generate_synthetic_davis(tmp_path / "fewer", **{**SMALL, "num_train": 2})
    fewer, reference = all_files(tmp_path / "fewer"), all_files(small_root)
    val_files = [name for name in reference if "/val_" in name]
    assert val_files and all(fewer[name] == reference[name] for name in val_files)
    train_frame = read_rgb(small_root / "JPEGImages/480p/train_0000/00000.jpg")
    val_frame = read_rgb(small_root / "JPEGImages/480p/val_0000/00000.jpg")
    assert not np.array_equal(train_frame, val_frame)


@pytest.mark.parametrize("seed", range(5))
def test_foreground_moves_and_distractor_is_static(seed):
    rendered = render_sequence(np.random.default_rng(seed), 6, 64, 96, 2)
    path = np.linalg.norm(np.diff(rendered.fg_positions, axis=0), axis=1)
    assert path.sum() >= 6.0
    assert np.linalg.norm(centroid(rendered.fg_masks[-1]) - centroid(rendered.fg_masks[0])) > 3.0
    assert rendered.fg_masks.all(axis=0).sum() < rendered.fg_masks[0].sum()
    for frame_index in range(1, 6):
        unoccluded = ~(rendered.fg_masks[0] | rendered.fg_masks[frame_index])
        assert np.array_equal(rendered.distractor_masks[frame_index] & unoccluded,
                              rendered.distractor_masks[0] & unoccluded)
        assert np.array_equal(rendered.frames[frame_index][unoccluded], rendered.frames[0][unoccluded])
    assert rendered.distractor_masks[0].any(axis=(1, 2)).all()


@pytest.mark.parametrize("seed", range(5))
def test_distractor_looks_exactly_like_the_moving_sprite(seed):
    rendered = render_sequence(np.random.default_rng(seed), 6, 64, 96, 1)
    frame = rendered.frames[0]
    offset = rendered.distractor_positions[0] - rendered.fg_positions[0]
    fg_pixels = np.argwhere(rendered.fg_masks[0])
    distractor_pixels = fg_pixels + offset
    visible = rendered.distractor_masks[0, 0][tuple(distractor_pixels.T)]
    assert visible.mean() > 0.5
    fg_values = frame[tuple(fg_pixels[visible].T)]
    distractor_values = frame[tuple(distractor_pixels[visible].T)]
    assert np.array_equal(fg_values, distractor_values)
    mean_difference = (frame[rendered.fg_masks[0]].mean(axis=0)
                       - frame[rendered.distractor_masks[0, 0]].mean(axis=0))
    assert np.abs(mean_difference).max() < 2.0


def test_noise_is_small_and_per_frame():
    rendered = render_sequence(np.random.default_rng(0), 2, 64, 96, 1)
    static = np.repeat(rendered.frames[:1], 2, axis=0)
    noisy = add_pixel_noise(np.random.default_rng(0), static)
    difference = noisy.astype(np.int16) - static
    assert 1.5 < difference.std() < 4.5
    assert not np.array_equal(noisy[0], noisy[1])


def test_ensure_generates_once_and_generate_refuses_non_empty_root(tmp_path):
    root = tmp_path / "davis"
    assert ensure_synthetic_davis(root, **SMALL) is True
    assert (root / "ImageSets" / "2017" / "val.txt").exists()
    assert ensure_synthetic_davis(root, **SMALL) is False
    with pytest.raises(ValueError):
        generate_synthetic_davis(root, **SMALL)
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "keep.txt").write_text("user data")
    with pytest.raises(ValueError):
        ensure_synthetic_davis(occupied, **SMALL)
    assert (occupied / "keep.txt").read_text() == "user data"
    empty = tmp_path / "empty"
    empty.mkdir()
    generate_synthetic_davis(empty, **SMALL)
    assert (empty / "ImageSets" / "2016" / "train.txt").exists()


def test_full_disk_while_generating_is_one_error_line_and_leaves_nothing(tmp_path, monkeypatch, capsys):
    """No space left on the 5th image: `error: cannot generate the synthetic dataset ROOT (...No
    space left on device)`, exit status 2, neither the root nor its temporary folder left."""
    save, calls = Image.Image.save, {"count": 0}

    def save_until_the_disk_is_full(image, *args, **kwargs):
        calls["count"] += 1
        if calls["count"] == 5:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return save(image, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", save_until_the_disk_is_full)
    root = tmp_path / "synth"
    arguments = ["-c", str(TINY_CONFIG), "--task", "train", "train.validate_every=0", "data.train=synthetic",
                 f"data.train_root={root}", "data.synthetic.num_train=2", "data.synthetic.num_val=2",
                 "data.synthetic.num_frames=4"]
    capsys.readouterr()
    with contextlib.chdir(tmp_path):
        assert main.main(arguments) == 2
    stderr = capsys.readouterr().err
    line = stderr.strip().splitlines()[-1]
    assert "Traceback" not in stderr and stderr.count("error:") == 1
    assert line.startswith(f"error: cannot generate the synthetic dataset {root} (cannot write "
                           f"{tmp_path}/synth{TMP_INFIX}")
    assert "No space left on device); its temporary copy" in line
    assert sorted(path.name for path in tmp_path.iterdir()) == [".synth.lock", "saved_models"]
