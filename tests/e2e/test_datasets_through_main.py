"""main.py on every source as downloaded: a few training iterations of the tiny model on COCO,
YouTube-VOS and a mixture with DAVIS; the paper's test configs on FBMS, ViSal (both layouts)
and DAVIS-2016 trees write a mask for every frame and score the annotated ones."""

import json

import pytest
import torch

import main
from network import build_model
from utils.config import load_config

from support.data_trees import (moving_objects, write_coco, write_davis2016, write_fbms_official, write_visal_flat,
                                write_visal_toolbox, write_youtube_vos)
from support.masks import mean_j
from support.paths import REPO_ROOT, TINY_CONFIG


pytestmark = pytest.mark.slow  # trains the tiny model on every source, runs the paper's test configs

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


@pytest.fixture(scope="module")
def split_weights(youtube_vos_checkpoint, tmp_path_factory):
    """That checkpoint with the classifier's foreground bias moved by the median logit difference
    on a random clip: its masks cover about half of a frame, so that J depends on which ground
    truth a mask is scored against (the trained model's masks are empty: J = 0 everywhere)."""
    checkpoint, _ = youtube_vos_checkpoint
    model = build_model(load_config(TINY_CONFIG).model)
    model.load_state_dict(checkpoint["model"])
    with torch.no_grad():
        logits = model.eval()(torch.rand(1, 3, 8, 48, 64, generator=torch.Generator().manual_seed(0)))
    bias = checkpoint["model"]["decoders.0.pred2.bias"].clone()
    bias[1] -= (logits[0, 1] - logits[0, 0]).median()
    checkpoint["model"]["decoders.0.pred2.bias"] = bias
    path = tmp_path_factory.mktemp("split_weights") / "split.pth"
    torch.save(checkpoint, path)
    return path


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


def drawn_objects(annotated: dict, num_objects: int = 1) -> dict:
    """{sequence: {mask name: the objects the tree's writer drew in frame `index`}} from
    {sequence: {mask name: index}}."""
    return {sequence: {name: moving_objects(index, num_objects=num_objects)[1] for name, index in frames.items()}
            for sequence, frames in annotated.items()}


def test_fbms_config_on_the_official_download(tmp_path, monkeypatch, split_weights):
    monkeypatch.chdir(tmp_path)
    root = write_fbms_official(tmp_path / "FBMS")
    metrics = infer("bmvc_fbms.yaml", root, split_weights)
    for sequence in ("cars1", "tennis"):
        assert mask_count(tmp_path / "results/bmvc_fbms" / sequence) == 7  # every frame
    assert metrics["num_frames"] == 6  # 3 annotated frames per sequence are scored
    annotated = {name: {f"{n:05d}": n for n in (1, 4, 7)} for name in ("cars1", "tennis")}  # original_index
    assert metrics["mean_J"] == pytest.approx(mean_j(tmp_path / "results/bmvc_fbms", drawn_objects(annotated, 2)))


@pytest.mark.parametrize("writer", [write_visal_flat, write_visal_toolbox])
def test_visal_config_on_both_layouts(tmp_path, monkeypatch, split_weights, writer):
    monkeypatch.chdir(tmp_path)
    root = writer(tmp_path / "ViSal")
    metrics = infer("bmvc_visal.yaml", root, split_weights)
    frames = {"boat": 4, "boat2": 3} if writer is write_visal_flat else {"car": 5, "cat": 5}
    for sequence, count in frames.items():
        assert mask_count(tmp_path / "results/bmvc_visal" / sequence) == count
    if writer is write_visal_flat:  # masks named by position (original_index); ground truth of every second frame
        annotated = {name: {"00000": 0, "00002": 2} for name in ("boat", "boat2")}
    else:  # frames 1 to 5, ground truth of the first and the last
        annotated = {name: {"00000": 1, "00004": 5} for name in ("car", "cat")}
    assert metrics["num_frames"] == 4
    assert metrics["mean_J"] == pytest.approx(mean_j(tmp_path / "results/bmvc_visal", drawn_objects(annotated)))


def test_final_config_on_a_davis2016_tree(tmp_path, monkeypatch, split_weights):
    monkeypatch.chdir(tmp_path)
    root = write_davis2016(tmp_path / "DAVIS")
    metrics = infer("bmvc_final.yaml", root, split_weights)  # 2016/val.txt -> ImageSets/480p/val.txt
    assert mask_count(tmp_path / "results/bmvc_final/blackswan") == 6
    annotated = {name: {f"{i:05d}": i for i in range(6)} for name in ("blackswan", "camel")}
    assert metrics["num_frames"] == 12
    assert metrics["mean_J"] == pytest.approx(mean_j(tmp_path / "results/bmvc_final", drawn_objects(annotated)))
