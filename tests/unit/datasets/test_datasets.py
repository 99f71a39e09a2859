import numpy as np
import pytest
import torch
from PIL import Image

from datasets import index_sequences
from datasets.clip_dataset import ClipDataset
from datasets.davis import index_davis
from datasets.fbms import index_fbms
from datasets.io import write_jpeg, write_palette_png
from datasets.transforms import crop_padding, pad_clip, padding_for, prepare_test_frame, resized_shape
from datasets.visal import index_visal
from utils.config import load_config
from utils.errors import UserError

from support.paths import TINY_CONFIG


def test_index_davis_lists_frames_and_masks(mini_davis):
    sequences = index_davis(mini_davis, "2017/val.txt")
    assert [s.name for s in sequences] == ["bear", "cows"]
    assert sequences[0].num_frames == 10 and sequences[0].annotated_indices == list(range(10))
    assert sequences[0].frame_name(3) == "00003"


def test_index_davis_missing_list_is_a_user_error(mini_davis):
    with pytest.raises(UserError, match="2016/train.txt"):
        index_davis(mini_davis, "2016/train.txt")


def test_clip_dataset_sample_layout_and_padding(mini_davis):
    dataset = ClipDataset(index_davis(mini_davis, "2017/train.txt"), clip_length=8, max_temporal_gap=10,
                          clips_per_sequence=0, resize_mode="unchanged", resize_size=[64], seed=0)
    assert len(dataset) == 20
    sample = dataset[3]
    assert sample["images"].shape == (3, 8, 64, 128) and sample["images"].dtype == torch.float32
    assert sample["masks"].shape == (1, 8, 64, 128) and sample["masks"].dtype == torch.uint8
    assert 0 <= sample["images"].min() and sample["images"].max() <= 1
    assert sample["masks"][..., :8].sum() == 0 and sample["images"][..., :8].abs().sum() == 0  # 112 -> 128, 8 left
    assert set(sample["masks"].unique().tolist()) == {0, 1}


def test_random_crop_is_the_same_for_every_frame_of_a_clip(mini_davis):
    dataset = ClipDataset(index_davis(mini_davis, "2017/train.txt"), clip_length=4, max_temporal_gap=4,
                          clips_per_sequence=2, resize_mode="resize_short_edge_and_crop",
                          resize_size=[64, 64], seed=0)
    sample = dataset[0]
    assert sample["images"].shape == (3, 4, 64, 64)
    columns = [torch.nonzero(sample["masks"][0, t].any(0)).flatten() for t in range(4)]
    centers = [c.float().mean().item() for c in columns if len(c)]
    assert len(centers) >= 2 and np.all(np.diff(centers) >= 0)  # the object moves right in every frame


def test_resize_rules_follow_the_original():
    assert resized_shape(480, 854, "resize_short_edge", [480]) == (480, 854)
    assert resized_shape(720, 1280, "resize_short_edge", [480]) == (480, 853)
    assert resized_shape(100, 200, "fixed_size", [64, 96]) == (64, 96)
    assert padding_for(480, 854) == ((0, 0), (5, 5)) and padding_for(65, 64) == ((15, 16), (0, 0))


def test_pad_and_crop_round_trip():
    clip = torch.rand(3, 2, 50, 70)
    pad = padding_for(50, 70)
    padded = pad_clip(clip, pad)
    assert padded.shape[-2:] == (64, 96) and torch.equal(crop_padding(padded, pad), clip)


def test_test_frame_is_bilinear_resized_like_pil():
    image = np.random.default_rng(0).integers(0, 256, (60, 90, 3), dtype=np.uint8)
    tensor, pad = prepare_test_frame(image, "resize_short_edge", [40])
    expected = np.array(Image.fromarray(image).resize((60, 40), Image.BILINEAR))
    assert torch.equal(crop_padding(tensor, pad), torch.from_numpy(expected).permute(2, 0, 1).float() / 255)


def write_frames(folder, names, shape=(32, 48)):
    for name in names:
        write_jpeg(folder / name, np.zeros(shape + (3,), dtype=np.uint8))


def test_index_fbms_orders_frames_by_number_and_keeps_sparse_masks(tmp_path):
    write_frames(tmp_path / "Testset/cars1", ["cars1_10.jpg", "cars1_2.jpg", "cars1_1.jpg"])
    write_palette_png(tmp_path / "inst/test/cars1/cars1_10.png", np.ones((32, 48), np.uint8))
    (sequence,) = index_fbms(tmp_path, "Testset")
    assert [p.name for p in sequence.frame_paths] == ["cars1_1.jpg", "cars1_2.jpg", "cars1_10.jpg"]
    assert sequence.annotated_indices == [2]
    assert sequence.output_name(2, "frame_name") == "cars1_10"
    assert sequence.output_name(2, "original_index") == "00010"  # the original's frame number


def test_index_visal_takes_bmp_then_png_and_flat_ground_truth(tmp_path):
    folder = tmp_path / "ViSal/boat"
    folder.mkdir(parents=True)
    for name in ("boat_002.png", "boat_001.bmp"):
        Image.fromarray(np.zeros((32, 48, 3), np.uint8)).save(folder / name)
    (tmp_path / "GroundTruth").mkdir()
    Image.fromarray(np.zeros((32, 48), np.uint8)).save(tmp_path / "GroundTruth/boat_002.png")
    (sequence,) = index_visal(tmp_path)
    assert [p.name for p in sequence.frame_paths] == ["boat_001.bmp", "boat_002.png"]
    assert sequence.annotated_indices == [1]
    assert sequence.output_name(1, "original_index") == "00001"  # the original's list position


def test_synthetic_source_is_generated_on_first_use(tmp_path):
    cfg = load_config(TINY_CONFIG, ["data.test=synthetic", f"data.test_root={tmp_path / 'synth'}",
                                    "data.synthetic.num_train=2", "data.synthetic.num_val=2",
                                    "data.synthetic.num_frames=4"])
    sequences = index_sequences(cfg.data, "test")
    assert len(sequences) == 2 and sequences[0].num_frames == 4
    assert (tmp_path / "synth/ImageSets/2017/val.txt").is_file()


def test_synthetic_source_refuses_a_foreign_non_empty_folder(tmp_path):
    (tmp_path / "synth").mkdir()
    (tmp_path / "synth" / "notes.txt").write_text("mine")
    cfg = load_config(TINY_CONFIG, ["data.test=synthetic", f"data.test_root={tmp_path / 'synth'}"])
    with pytest.raises(UserError, match="non-empty"):
        index_sequences(cfg.data, "test")
