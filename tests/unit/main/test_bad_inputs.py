"""The table of bad inputs and faults (docs/troubleshooting.md): each row is a run of main.py
that ends with a non-zero exit, no traceback and a last line naming the culprit (file, key or
value), except the short video, which must work.

Every row here runs main.main in this process (stderr captured); the rows that train for longer or
involve another process (a DataLoader worker, a second training process, a killed lock holder) are
in tests/e2e/test_bad_inputs_in_training_and_between_processes.py.
"""

import os
import pickle

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

import main
from datasets.io import write_palette_png

from support.bad_inputs import (fails_in_process, no_space_left, small_davis, tiny_run_args,
                                 train_tiny_weights)
from support.data_trees import write_coco, write_youtube_vos
from support.paths import TINY_CONFIG


@pytest.fixture
def data_root(tmp_path):
    return small_davis(tmp_path)


@pytest.fixture
def args(data_root):
    return tiny_run_args(data_root)


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    """A checkpoint of the tiny model, trained for one iteration."""
    return train_tiny_weights(tmp_path_factory.mktemp("weights"))


def tiny_config_file(path, extra: str):
    """A copy of the tiny config with `extra` YAML appended."""
    path.write_text(TINY_CONFIG.read_text() + extra)
    return path


# Config ------------------------------------------------------------------------------------------

def test_unknown_config_key_names_the_file_and_the_key(tmp_path, monkeypatch, capsys, data_root):
    monkeypatch.chdir(tmp_path)
    config = tiny_config_file(tmp_path / "run.yaml", "solver:\n  base_lrr: 0.1\n")
    line = fails_in_process(["-c", str(config), "--task", "train", f"data.train_root={data_root}"], capsys)
    assert str(config) in line and "solver.base_lrr" in line and "solver.base_lr" in line


def test_value_of_the_wrong_type_names_the_key_and_the_value(tmp_path, monkeypatch, capsys, data_root):
    monkeypatch.chdir(tmp_path)
    config = tiny_config_file(tmp_path / "run.yaml", "train:\n  batch_size: two\n")
    line = fails_in_process(["-c", str(config), "--task", "train", f"data.train_root={data_root}"], capsys)
    assert str(config) in line and "train.batch_size" in line and "'two'" in line


def test_missing_base_file_is_named(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "run.yaml").write_text("_BASE_: no_such_base.yaml\nname: x\n")
    line = fails_in_process(["-c", str(tmp_path / "run.yaml"), "--task", "train"], capsys)
    assert str(tmp_path / "no_such_base.yaml") in line


def test_yaml_that_would_run_a_command_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "command_ran"
    (tmp_path / "run.yaml").write_text(f"name: !!python/object/apply:os.system ['touch {marker}']\n")
    line = fails_in_process(["-c", str(tmp_path / "run.yaml"), "--task", "train"], capsys)
    assert str(tmp_path / "run.yaml") in line and "invalid YAML" in line
    assert not marker.exists()


def test_clip_overlap_not_below_clip_length_names_both_values(tmp_path, monkeypatch, capsys, args, tiny_weights):
    monkeypatch.chdir(tmp_path)
    line = fails_in_process(args + ["--task", "infer", "--wts", str(tiny_weights), "inference.clip_overlap=8"], capsys)
    assert "inference.clip_overlap" in line and "(8 vs 8)" in line


# Data --------------------------------------------------------------------------------------------

def test_missing_data_root_is_named(tmp_path, monkeypatch, capsys, args):
    monkeypatch.chdir(tmp_path)
    line = fails_in_process(args + ["--task", "train", "data.train_root=no/such/DAVIS"], capsys)
    assert "data.train_root" in line and "no/such/DAVIS" in line


def test_split_file_naming_a_sequence_absent_on_disk(tmp_path, monkeypatch, capsys, args, data_root):
    monkeypatch.chdir(tmp_path)
    (data_root / "ImageSets/2017/train.txt").write_text("bear\nghost\n")
    line = fails_in_process(args + ["--task", "train"], capsys)
    assert "'ghost'" in line and "ImageSets/2017/train.txt" in line and str(data_root / "JPEGImages/480p/ghost") in line


def test_sequence_without_frames_is_named(tmp_path, monkeypatch, capsys, args, data_root, tiny_weights):
    monkeypatch.chdir(tmp_path)
    for frame in (data_root / "JPEGImages/480p/cows").iterdir():
        frame.unlink()
    line = fails_in_process(args + ["--task", "eval", "--wts", str(tiny_weights)], capsys)
    assert "'cows' has no frames" in line and str(data_root / "JPEGImages/480p/cows") in line


def test_truncated_png_mask_is_named(tmp_path, monkeypatch, capsys, args, data_root, tiny_weights):
    monkeypatch.chdir(tmp_path)
    truncated = data_root / "Annotations_unsupervised/480p/cows/00004.png"
    truncated.write_bytes(truncated.read_bytes()[:60])
    line = fails_in_process(args + ["--task", "eval", "--wts", str(tiny_weights)], capsys)
    assert line.startswith(f"error: cannot read mask {truncated}")


@pytest.mark.parametrize("task", ["train", "eval"])
def test_mask_of_another_size_than_its_frame_names_both(tmp_path, monkeypatch, capsys, args, data_root,
                                                       tiny_weights, task):
    monkeypatch.chdir(tmp_path)
    mask = data_root / "Annotations_unsupervised/480p/bear/00007.png"
    write_palette_png(mask, np.ones((32, 48), np.uint8))
    line = fails_in_process(args + ["--task", task, "--wts", str(tiny_weights)], capsys)
    assert line == f"error: mask {mask} is 48x32, its frame {data_root}/JPEGImages/480p/bear/00007.jpg is 64x32"


def test_coco_annotation_file_that_is_not_json_is_named(tmp_path, monkeypatch, capsys, args):
    monkeypatch.chdir(tmp_path)
    annotations = write_coco(tmp_path / "coco") / "annotations/instances_train2017.json"
    annotations.write_text(annotations.read_text()[:200])
    line = fails_in_process(args + ["--task", "train", "data.train=coco", f"data.train_root={tmp_path / 'coco'}",
                                    "data.train_split=train2017"], capsys)
    assert line.startswith(f"error: cannot read COCO annotations {annotations}: ")


def test_coco_image_missing_on_disk_is_named(tmp_path, monkeypatch, capsys, args):
    """Not the first image (the index checks that one): found missing when its clip is made."""
    monkeypatch.chdir(tmp_path)
    missing = write_coco(tmp_path / "coco") / "train2017/000000000002.jpg"
    missing.unlink()
    line = fails_in_process(args + ["--task", "train", "data.train=coco", f"data.train_root={tmp_path / 'coco'}",
                                    "data.train_split=train2017"], capsys)
    assert line.startswith(f"error: cannot read image {missing}: ")


@pytest.mark.parametrize("meta, expected", [
    ("{not json", "cannot read the video list of {meta}: "),
    ('{"videos": {"ghost": {}}}', "{meta} lists video 'ghost', which is not on disk: "),
])
def test_youtube_vos_meta_json_broken_or_naming_an_absent_video(tmp_path, monkeypatch, capsys, args, meta, expected):
    monkeypatch.chdir(tmp_path)
    meta_path = write_youtube_vos(tmp_path / "ytvos") / "train/meta.json"
    meta_path.write_text(meta)
    line = fails_in_process(args + ["--task", "train", "data.train=youtube_vos",
                                    f"data.train_root={tmp_path / 'ytvos'}", "data.train_split=train"], capsys)
    assert line.startswith("error: " + expected.format(meta=meta_path))


# Weights -----------------------------------------------------------------------------------------

def write_other_architecture(path, tiny_weights):
    """The tiny model at another width: a valid checkpoint of a model the config does not build."""
    checkpoint = torch.load(tiny_weights, weights_only=True)
    checkpoint["model"] = {key: torch.cat([value, value]) if value.dim() else value
                           for key, value in checkpoint["model"].items()}
    torch.save(checkpoint, path)


WEIGHT_FILES = {
    "truncated": (lambda path, good: path.write_bytes(good.read_bytes()[:1000]), "truncated"),
    "random bytes": (lambda path, good: path.write_bytes(np.random.default_rng(0).bytes(4096)),
                     "not a PyTorch checkpoint"),
    "torchvision resnet18": (lambda path, good: torch.save(torchvision.models.resnet18().state_dict(), path),
                             "not a 3DC-Seg model checkpoint"),
    "another architecture": (write_other_architecture, "into the model"),
    "a pickle, not a checkpoint": (lambda path, good: path.write_bytes(pickle.dumps({"notes": [1, 2]})),
                                   "not a 3DC-Seg model checkpoint: a dict with keys notes"),
    "a list saved by torch": (lambda path, good: torch.save([1, 2, 3], path), "it holds a Python list"),
}


@pytest.mark.parametrize("kind", WEIGHT_FILES)
def test_bad_weights_file_is_named(tmp_path, monkeypatch, capsys, args, tiny_weights, kind):
    monkeypatch.chdir(tmp_path)
    write, expected = WEIGHT_FILES[kind]
    weights = tmp_path / "weights.pth"
    write(weights, tiny_weights)
    line = fails_in_process(args + ["--task", "infer", "--wts", str(weights)], capsys)
    assert str(weights) in line and expected in line


def test_corrupt_last_pth_in_the_run_folder_is_named_with_how_to_start_over(tmp_path, monkeypatch, capsys, args,
                                                                           tiny_weights):
    monkeypatch.chdir(tmp_path)
    last = tmp_path / "saved_models/tiny/last.pth"
    last.parent.mkdir(parents=True)
    last.write_bytes(tiny_weights.read_bytes()[:500])
    line = fails_in_process(args + ["--task", "train"], capsys)
    assert line.startswith("error: cannot read saved_models/tiny/last.pth as a PyTorch checkpoint")
    assert line.endswith("move it away or set train.resume=false to start over")


def test_missing_weights_file_is_named(tmp_path, monkeypatch, capsys, args):
    monkeypatch.chdir(tmp_path)
    line = fails_in_process(args + ["--task", "infer", "--wts", "no_such.pth"], capsys)
    assert line == f"error: --wts: file not found: no_such.pth; train first: python main.py -c {TINY_CONFIG} --task train"


# Videos ------------------------------------------------------------------------------------------

def test_video_that_does_not_decode_is_named(tmp_path, monkeypatch, capsys, args, tiny_weights):
    monkeypatch.chdir(tmp_path)
    video = tmp_path / "broken.mp4"
    video.write_bytes(b"\x00\x00\x00\x18ftypmp42" + np.random.default_rng(0).bytes(2000))
    line = fails_in_process(args + ["--task", "infer", "--wts", str(tiny_weights), "--input", str(video)], capsys)
    assert line.startswith(f"error: --input: cannot decode {video}")


def test_video_shorter_than_one_clip_is_segmented(tmp_path, monkeypatch, capsys, args, tiny_weights):
    import av
    monkeypatch.chdir(tmp_path)
    with av.open(str(tmp_path / "short.mp4"), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 32, "yuv420p"
        for value in (40, 120, 200):  # 3 frames, the clip is 8
            frame = av.VideoFrame.from_ndarray(np.full((32, 64, 3), value, np.uint8), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    assert main.main(args + ["--task", "infer", "--wts", str(tiny_weights), "--input", "short.mp4"]) == 0
    masks = sorted((tmp_path / "results/tiny/short/short").glob("*.png"))
    assert len(masks) == 3 and all(Image.open(mask).size == (64, 32) for mask in masks)


# Output and faults during a run ------------------------------------------------------------------

@pytest.mark.parametrize("task, blocked, expected", [
    ("infer", "results", "error: cannot write the results folder results/tiny: Not a directory"),
    ("train", "saved_models", "error: cannot write the run folder saved_models/tiny: Not a directory"),
])
def test_output_folder_blocked_by_a_file_is_named(tmp_path, monkeypatch, capsys, args, tiny_weights,
                                                   task, blocked, expected):
    monkeypatch.chdir(tmp_path)
    (tmp_path / blocked).write_text("a file where the output folder goes")
    line = fails_in_process(args + ["--task", task, "--wts", str(tiny_weights)], capsys)
    assert line == expected


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_run_folder_is_named(tmp_path, monkeypatch, capsys, args):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "saved_models/tiny").mkdir(parents=True)
    (tmp_path / "saved_models/tiny").chmod(0o500)
    try:
        line = fails_in_process(args + ["--task", "train"], capsys)
    finally:
        (tmp_path / "saved_models/tiny").chmod(0o700)
    assert line == "error: cannot write the run folder saved_models/tiny: Permission denied"


def test_disk_full_while_writing_a_mask(tmp_path, monkeypatch, capsys, args, tiny_weights):
    """The third mask fails: the run ends naming it, the first two stay whole, no temp file stays
    (masks after it that the writer's threads had in hand are written whole, or not at all)."""
    monkeypatch.chdir(tmp_path)
    save = Image.Image.save

    def save_until_full(image, target, *save_args, **save_kwargs):
        if os.path.basename(target).startswith(".00002.png."):  # the temp file of the third mask
            with open(target, "wb") as handle:
                handle.write(b"\x89PNG half")
            no_space_left()
        return save(image, target, *save_args, **save_kwargs)

    monkeypatch.setattr(Image.Image, "save", save_until_full)
    line = fails_in_process(args + ["--task", "infer", "--wts", str(tiny_weights)], capsys)
    monkeypatch.setattr(Image.Image, "save", save)
    assert line == "error: cannot write results/tiny/bear/00002.png: No space left on device"
    written = sorted(path.name for path in (tmp_path / "results/tiny/bear").iterdir())
    assert written[:2] == ["00000.png", "00001.png"] and "00002.png" not in written
    assert all(name.endswith(".png") and not name.startswith(".") for name in written)
    for name in written:
        Image.open(tmp_path / "results/tiny/bear" / name).load()
