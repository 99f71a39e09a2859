"""main.py on every source as downloaded: a few training iterations of the tiny model on COCO,
YouTube-VOS and a mixture with DAVIS; the paper's test configs on FBMS, ViSal (both layouts)
and DAVIS-2016 trees write a mask for every frame and score the annotated ones."""

import json

import pytest
import torch

import main
from conftest import REPO_ROOT, TINY_CONFIG
from data_trees import (write_coco, write_davis2016, write_fbms_official, write_visal_flat,
                        write_visal_toolbox, write_youtube_vos)

NO_VALIDATION = ["train.validate_every=0"]
TINY_MODEL = ["device=cpu", "model.depths=[1,1,1,1]", "model.width=8", "model.decoder_width=16",
              "model.backbone_weights=\"\"", "train.precision=fp32", "input.test_resize=unchanged"]


def train(args) -> dict:
    assert main.main(["-c", str(TINY_CONFIG), "--task", "train", *NO_VALIDATION, *args]) == 0
    return torch.load("saved_models/tiny/last.pth", weights_only=True)


@pytest.fixture(scope="module")
def youtube_vos_checkpoint(tmp_path_factory):
    """The tiny model after training on a YouTube-VOS tree (used by the inference tests)."""
    work = tmp_path_factory.mktemp("youtube_vos_run")
    root = write_youtube_vos(work / "YouTubeVOS")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(work)
        checkpoint = train(["data.train=youtube_vos", f"data.train_root={root}", "data.train_split=train",
                            "data.clips_per_sequence=2", "train.epochs=1"])
    return checkpoint, work / "saved_models/tiny/last.pth"


def test_training_on_youtube_vos(youtube_vos_checkpoint):
    checkpoint, _ = youtube_vos_checkpoint
    assert checkpoint["iteration"] == 2  # 2 videos x 2 clips, batch 2


def test_training_on_coco(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    root = write_coco(tmp_path / "COCO")
    checkpoint = train(["data.train=coco", f"data.train_root={root}", "data.train_split=train2017",
                        "train.epochs=2"])
    assert checkpoint["iteration"] == 2  # 2 images kept, batch 2, 2 epochs


def test_training_on_a_mixture_of_coco_youtube_vos_and_davis(tmp_path, monkeypatch, mini_davis, caplog):
    monkeypatch.chdir(tmp_path)
    coco, youtube_vos = write_coco(tmp_path / "COCO"), write_youtube_vos(tmp_path / "YouTubeVOS")
    sources = (f"[{{dataset: coco, root: {coco}, split: train2017, weight: 0.25}},"
               f" {{dataset: youtube_vos, root: {youtube_vos}, split: train, weight: 0.45}},"
               f" {{dataset: davis, root: {mini_davis}, split: 2017/train.txt, weight: 0.3}}]")
    caplog.set_level("INFO")
    checkpoint = train([f"data.train={sources}", "data.epoch_length=6", "input.train_resize=resize_short_edge_and_crop",
                        "input.train_size=[48,64]"])
    assert checkpoint["iteration"] == 3
    assert "training mixture: coco" in caplog.text and "weight 0.45" in caplog.text


def infer(config: str, root, checkpoint_path, *extra) -> dict:
    args = ["-c", str(REPO_ROOT / "run_configs" / config), "--task", "infer", "--wts", str(checkpoint_path),
            f"data.test_root={root}", *TINY_MODEL, *extra]
    assert main.main(args) == 0
    name = config.removesuffix(".yaml")
    return json.loads((root.parent / "results" / name / "metrics.json").read_text())


def mask_count(folder) -> int:
    return len(list(folder.glob("*.png")))


def test_fbms_config_on_the_official_download(tmp_path, monkeypatch, youtube_vos_checkpoint):
    monkeypatch.chdir(tmp_path)
    root = write_fbms_official(tmp_path / "FBMS")
    metrics = infer("bmvc_fbms.yaml", root, youtube_vos_checkpoint[1])
    for sequence in ("cars1", "tennis"):
        assert mask_count(tmp_path / "results/bmvc_fbms" / sequence) == 7  # every frame
    assert metrics["num_frames"] == 6  # 3 annotated frames per sequence are scored
    assert 0 <= metrics["mean_J"] <= 1


@pytest.mark.parametrize("writer", [write_visal_flat, write_visal_toolbox])
def test_visal_config_on_both_layouts(tmp_path, monkeypatch, youtube_vos_checkpoint, writer):
    monkeypatch.chdir(tmp_path)
    root = writer(tmp_path / "ViSal")
    metrics = infer("bmvc_visal.yaml", root, youtube_vos_checkpoint[1])
    frames = {"boat": 4, "boat2": 3} if writer is write_visal_flat else {"car": 5, "cat": 5}
    for sequence, count in frames.items():
        assert mask_count(tmp_path / "results/bmvc_visal" / sequence) == count
    assert metrics["num_frames"] == 4 and 0 <= metrics["mean_J"] <= 1


def test_final_config_on_a_davis2016_tree(tmp_path, monkeypatch, youtube_vos_checkpoint):
    monkeypatch.chdir(tmp_path)
    root = write_davis2016(tmp_path / "DAVIS")
    metrics = infer("bmvc_final.yaml", root, youtube_vos_checkpoint[1])  # 2016/val.txt -> ImageSets/480p/val.txt
    assert mask_count(tmp_path / "results/bmvc_final/blackswan") == 6
    assert metrics["num_frames"] == 12 and 0 <= metrics["mean_J"] <= 1
