"""Every source in the layout users download: what its indexer returns, what its samples hold,
and one error line for each broken tree."""

import json
import warnings

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader
from torchvision.transforms import v2

from datasets import build_train_dataset
from datasets.clip_dataset import ClipDataset
from datasets.coco import CocoClipDataset, decode_labels, index_coco
from datasets.crops import ObjectCrop
from datasets.davis import index_davis
from datasets.fbms import index_fbms
from datasets.io import DataFileError, read_mask, write_jpeg
from datasets.pseudo_clips import affine_step, elastic_step
from datasets.visal import index_visal
from datasets.youtube_vos import index_youtube_vos
from tools.fbms import main as fbms_main
from utils.config import CocoConfig, load_config
from utils.errors import UserError

from support.data_trees import (HEIGHT, WIDTH, moving_objects, write_coco, write_davis2016, write_davis2017_semi,
                                write_fbms_official, write_visal_flat, write_visal_toolbox, write_youtube_vos)
from support.paths import TINY_CONFIG


def clip_dataset(sequences, clip_length=4, **kwargs):
    options = dict(clip_length=clip_length, max_temporal_gap=8, clips_per_sequence=1,
                   resize_mode="unchanged", resize_size=[64], seed=0)
    return ClipDataset(sequences, **{**options, **kwargs})


# DAVIS


def test_davis2016_release_reads_path_pairs_and_0_255_masks(tmp_path):
    root = write_davis2016(tmp_path / "DAVIS")
    sequences = index_davis(root, "480p/val.txt")
    assert [s.name for s in sequences] == ["blackswan", "camel"]
    assert sequences[0].annotated_indices == list(range(6))
    assert sequences[0].ground_truth == "DAVIS-2016 Annotations/480p (0/255)"
    assert set(np.unique(read_mask(sequences[0].mask_paths[0]))) == {0, 255}
    assert [s.name for s in index_davis(root, "480p/train.txt")] == ["blackswan"]
    assert [s.name for s in index_davis(root, "2016/train.txt")] == ["blackswan"]  # the 2017 releases' list name


def test_davis2017_semi_supervised_masks_merge_every_object(tmp_path):
    (sequence,) = index_davis(write_davis2017_semi(tmp_path / "DAVIS"), "2017/val.txt")
    assert "Annotations/480p" in sequence.ground_truth and "merged" in sequence.ground_truth
    sample = clip_dataset([sequence])[0]
    expected = np.stack([moving_objects(f, num_objects=2)[1] != 0 for f in sample["info"]["frames"]])
    assert np.array_equal(sample["masks"][0, :, 8:56].numpy() != 0, expected)  # 48 rows padded to 64
    assert set(sample["masks"].unique().tolist()) == {0, 1, 2}  # ids kept; any non-zero is foreground


def test_davis_annotation_folder_auto_and_forced(tmp_path, mini_davis):
    write_davis2017_semi(mini_davis, names=("bear", "cows"), num_frames=10, height=64, width=112)
    assert "Annotations/480p" in index_davis(mini_davis, "2016/val.txt")[0].ground_truth  # DAVIS-2016 truth
    assert index_davis(mini_davis, "2017/val.txt")[0].ground_truth == "DAVIS-2017 Annotations_unsupervised/480p"
    forced = index_davis(mini_davis, "2016/val.txt", annotations="unsupervised")
    assert forced[0].mask_paths[0].parts[-4] == "Annotations_unsupervised"


def test_davis2016_split_of_a_2017_tree_warns_that_it_reads_the_2017_semi_supervised_masks(tmp_path, caplog):
    root = write_davis2017_semi(tmp_path / "DAVIS")
    (root / "ImageSets/2016").mkdir()
    (root / "ImageSets/2016/val.txt").write_text("dogs-jump\n")
    index_davis(root, "2016/val.txt")
    assert "DAVIS split 2016/val.txt" in caplog.text and "neither the DAVIS-2016 ground truth" in caplog.text
    caplog.clear()
    index_davis(write_davis2016(tmp_path / "DAVIS2016"), "2016/val.txt")  # the DAVIS-2016 release
    index_davis(root, "2017/val.txt")
    assert "neither" not in caplog.text


# YouTube-VOS


def test_youtube_vos_frames_in_numeric_order_with_gaps(tmp_path):
    root = write_youtube_vos(tmp_path / "YouTubeVOS")
    sequences = index_youtube_vos(root, "train")
    assert [s.name for s in sequences] == ["0a2f2bd294", "0b6f9105fc"]
    long = sequences[1]
    assert [p.name for p in long.frame_paths] == [f"{5 * i:05d}.jpg" for i in range(6)]
    assert long.annotated_indices == list(range(6)) and long.frame_numbers == (0, 5, 10, 15, 20, 25)
    assert long.output_name(2, "original_index") == "00010"
    assert set(np.unique(read_mask(long.mask_paths[0]))) == {0, 1, 2}
    valid = index_youtube_vos(root, "valid")
    assert [s.annotated_indices for s in valid] == [[0], [0]]  # first-appearance frames only


def test_youtube_vos_train_all_frames_reads_train_annotations(tmp_path):
    root = write_youtube_vos(tmp_path / "YouTubeVOS")
    long = index_youtube_vos(root, "train_all_frames")[1]
    assert long.num_frames == 26 and long.annotated_indices == list(range(0, 26, 5))
    sample = clip_dataset([long], clip_length=8, clips_per_sequence=4)[1]
    assert sample["info"]["annotated"] == [f % 5 == 0 for f in sample["info"]["frames"]]


def test_youtube_vos_video_shorter_than_a_clip_repeats_its_first_frame(tmp_path):
    short = index_youtube_vos(write_youtube_vos(tmp_path / "YouTubeVOS"), "train")[0]
    sample = clip_dataset([short], clip_length=8, clips_per_sequence=0)[0]  # the clip starting at frame 0
    assert short.num_frames == 3 and sample["info"]["frames"] == [0] * 6 + [1, 2]
    assert sample["images"].shape[1] == 8


def test_youtube_vos_meta_naming_a_missing_video_is_an_error(tmp_path):
    root = write_youtube_vos(tmp_path / "YouTubeVOS")
    (root / "train/meta.json").write_text('{"videos": {"ffffffffff": {"objects": {}}}}')
    with pytest.raises(UserError, match="ffffffffff"):
        index_youtube_vos(root, "train")


# COCO


def test_coco_keeps_polygon_and_rle_objects_and_drops_crowd_and_small_boxes(tmp_path):
    root = write_coco(tmp_path / "COCO")
    images = index_coco(root, "train2017", CocoConfig())
    assert [image.path.name for image in images] == ["000000000001.jpg", "000000000002.jpg"]
    assert images[0].path.parent.name == "train2017"
    polygon, rle = decode_labels(images[0]), decode_labels(images[1])
    assert polygon.shape == (HEIGHT, WIDTH) and polygon[12, 30] == 1 and polygon[38, 12] == 0
    assert rle[10:40, 20:55].all() and rle.sum() == 30 * 35
    only_cars = index_coco(root, "train2017", CocoConfig(categories=["car"]))
    assert [image.path.name for image in only_cars] == ["000000000002.jpg"]
    with pytest.raises(UserError, match="'bus' is not a category"):
        index_coco(root, "train2017", CocoConfig(categories=["bus"]))


def test_coco_tree_loads_and_decodes_without_a_warning(tmp_path):
    """pycocotools' numpy 2 DeprecationWarning is nothing a user can act on: filtered where it arises."""
    root = write_coco(tmp_path / "COCO")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        labels = [decode_labels(image) for image in index_coco(root, "train2017", CocoConfig())]
    assert all(np.any(label) for label in labels)


def test_coco_image_filter_keeps_every_annotation_of_an_image_with_a_listed_category(tmp_path):
    root = write_coco(tmp_path / "COCO")
    path = root / "annotations/instances_train2017.json"
    annotations = json.loads(path.read_text())
    annotations["annotations"].append({"id": 6, "image_id": 2, "category_id": 1, "iscrowd": 0, "area": 640.0,
                                       "bbox": [10, 8, 40, 32], "segmentation": [[10, 8, 50, 8, 30, 40]]})
    path.write_text(json.dumps(annotations))  # image 2: a car (RLE), then a person (polygon)

    def kept(categories, category_filter):
        images = index_coco(root, "train2017", CocoConfig(categories=categories, category_filter=category_filter))
        return {image.name[-1]: len(image.segmentations) for image in images}
    assert kept(["car"], "annotations") == {"2": 1}
    assert kept(["car"], "images") == {"2": 2}  # the original COCOv2 list: the person stays too
    assert kept(["person"], "annotations") == {"1": 1, "2": 1}
    assert kept(["person"], "images") == {"1": 1, "2": 2}
    assert kept([], "images") == kept([], "annotations") == {"1": 1, "2": 2}


def test_coco_original_file_names_and_image_folders(tmp_path):
    root = write_coco(tmp_path / "COCO", split="train", image_folder="val2014", file_prefix="COCO_val2014_")
    config = CocoConfig(image_folders=["train2014", "val2014"])
    images = index_coco(root, "train", config)
    assert (root / "annotations/instances_train.json").is_file()
    assert images[0].path == root / "val2014/COCO_val2014_000000000001.jpg"


def coco_dataset(root, **kwargs):
    options = dict(clip_length=4, resize_mode="unchanged", resize_size=[64], warp="before_padding", seed=0)
    return CocoClipDataset(index_coco(root, "train2017", CocoConfig()), **{**options, **kwargs})


def test_coco_pseudo_clips_move_the_object_with_its_mask(tmp_path):
    dataset = coco_dataset(write_coco(tmp_path / "COCO"), clip_length=6)
    sample = dataset[0]
    assert sample["images"].shape == (3, 6, 64, 64) and sample["masks"].shape == (1, 6, 64, 64)
    assert sample["images"].dtype == torch.float32 and sample["masks"].dtype == torch.uint8
    image = np.array(Image.open(dataset.sequences[0].path))
    assert torch.allclose(sample["images"][:, 0, 8:56], torch.from_numpy(image).permute(2, 0, 1) / 255)
    assert np.array_equal(sample["masks"][0, 0, 8:56].numpy(), decode_labels(dataset.sequences[0]))
    masks = sample["masks"][0]
    assert all(not torch.equal(masks[t], masks[t + 1]) for t in range(5))  # a warp at every step
    assert all(masks[t].sum() > 0 for t in range(6))
    assert sample["info"] == {"sequence": "000000000001", "frames": [0] * 6, "annotated": [True] * 6}


@pytest.mark.parametrize("step", [affine_step, elastic_step])
def test_each_warp_moves_image_and_mask_together(step):
    mask = torch.from_numpy(moving_objects(3)[1])[None]                    # (1, H, W)
    image = (mask * 200).repeat(3, 1, 1)                                    # the object, drawn from its mask
    warped_image, warped_mask = step(image, mask, np.random.default_rng(1))
    assert warped_image.dtype == torch.uint8 and warped_mask.shape == mask.shape
    assert not torch.equal(warped_mask, mask)
    drawn, labelled = warped_image[0] > 100, warped_mask[0] > 0
    assert (drawn & labelled).sum() / (drawn | labelled).sum() > 0.95


def axis_ratio(mask: torch.Tensor) -> float:
    """sqrt of the ratio of the principal variances of the foreground pixel coordinates (1 = a disk)."""
    coordinates = torch.nonzero(mask[0]).double()
    variances = torch.linalg.eigvalsh(torch.cov(coordinates.T))
    return float((variances[1] / variances[0]).sqrt())


def test_affine_scale_is_drawn_per_axis_unless_isotropic():
    rows, cols = np.mgrid[:64, :64]
    disk = torch.from_numpy(((rows - 31.5) ** 2 + (cols - 31.5) ** 2 <= 12 ** 2).astype(np.uint8))[None]
    image = (disk * 200).repeat(3, 1, 1)

    def ratios(anisotropic):
        return [axis_ratio(affine_step(image, disk, np.random.default_rng(seed), anisotropic)[1]) for seed in range(8)]
    assert max(ratios(anisotropic=False)) < 1.05  # one scale: the disk stays a disk
    anisotropic = ratios(anisotropic=True)
    assert max(anisotropic) > 1.2 and sum(ratio > 1.05 for ratio in anisotropic) >= 5  # ellipses


def test_crop_and_affine_scale_settings_reach_the_datasets(tmp_path, mini_davis):
    sources = (f"data.train=[{{dataset: coco, root: {write_coco(tmp_path / 'COCO')}, split: train2017}},"
               f" {{dataset: davis, root: {mini_davis}}}]")
    crop = ["input.train_resize=resize_short_edge_and_crop", "input.train_size=[48, 48]"]
    defaults = build_train_dataset(load_config(TINY_CONFIG, [sources] + crop)).sources
    assert all(isinstance(source.crop, ObjectCrop) and source.crop.bounds == "object" for source in defaults)
    assert defaults[0].anisotropic
    changed = build_train_dataset(load_config(TINY_CONFIG, [sources] + crop + [
        "input.train_crop=uniform", "data.coco.affine_scale=isotropic"])).sources
    assert all(isinstance(source.crop, v2.RandomCrop) for source in changed) and not changed[0].anisotropic


def test_coco_clips_differ_between_epochs_and_repeat_for_the_same_seed_and_epoch(tmp_path):
    root = write_coco(tmp_path / "COCO")
    first, again = coco_dataset(root), coco_dataset(root)
    a, b = first[1], again[1]
    assert torch.equal(a["images"], b["images"]) and torch.equal(a["masks"], b["masks"])
    first.set_epoch(1)
    assert not torch.equal(first[1]["masks"], a["masks"])


def test_coco_original_warp_moves_the_zero_padding_into_the_frames(tmp_path):
    root = write_coco(tmp_path / "COCO")
    padding_rows = torch.ones(64, 64, dtype=torch.bool)
    padding_rows[8:56] = False  # 48 image rows padded to 64 after the warps
    ours = coco_dataset(root, clip_length=4)[0]["images"]
    black = ours.sum(0) == 0                                                  # (T, H, W)
    assert all(torch.equal(black[t], padding_rows) for t in range(4))
    original = coco_dataset(root, clip_length=4, warp="after_padding")[0]["images"]
    black = original.sum(0) == 0
    assert torch.equal(black[0], padding_rows) and not torch.equal(black[3], padding_rows)


# FBMS


def test_fbms_as_downloaded_matches_sparse_ppm_and_pgm_truth_by_number(tmp_path):
    root = write_fbms_official(tmp_path / "FBMS")
    cars, tennis = index_fbms(root, "Testset")
    assert [p.name for p in cars.frame_paths] == [f"cars1_{n:02d}.jpg" for n in range(1, 8)]
    assert [p.name for p in tennis.frame_paths] == [f"tennis_{n:03d}.jpg" for n in range(1, 8)]
    for sequence in (cars, tennis):
        assert sequence.annotated_indices == [0, 3, 6] and sequence.ground_truth == "FBMS GroundTruth .ppm/.pgm"
        merged = moving_objects(4, num_objects=2)[1] != 0
        assert np.array_equal(read_mask(sequence.mask_paths[3]) != 0, merged)  # white .ppm background is 0
    assert cars.output_name(3, "original_index") == "00004"


def test_fbms_convert_writes_the_png_layout_the_loader_reads(tmp_path):
    root = write_fbms_official(tmp_path / "FBMS")
    assert fbms_main(["convert", str(root), str(tmp_path / "converted")]) == 0
    converted = index_fbms(tmp_path / "converted", "Testset")
    assert (tmp_path / "converted/inst/test/cars1/cars1_04.png").is_file()
    for before, after in zip(index_fbms(root, "Testset"), converted):
        assert [p.name for p in before.frame_paths] == [p.name for p in after.frame_paths]
        assert after.annotated_indices == before.annotated_indices and "converted" in after.ground_truth
        for index in after.annotated_indices:
            assert np.array_equal(read_mask(after.mask_paths[index]), read_mask(before.mask_paths[index]) != 0)


def test_fbms_truth_matching_no_frame_is_an_error(tmp_path):
    root = write_fbms_official(tmp_path / "FBMS")
    for path in (root / "Testset/tennis/GroundTruth").glob("*.pgm"):
        path.rename(path.with_name(path.name.replace("tennis_00", "tennis_09")))
    with pytest.raises(UserError, match="tennis/GroundTruth"):
        index_fbms(root, "Testset")


# ViSal


def test_visal_flat_layout_assigns_truth_by_the_prefix_rule(tmp_path):
    boat, boat2 = index_visal(write_visal_flat(tmp_path / "ViSal"))
    assert [p.name for p in boat.frame_paths] == ["boat_000.bmp", "boat_001.bmp", "boat_002.png", "boat_003.png"]
    assert boat.annotated_indices == [0, 2] and boat2.annotated_indices == [0, 2]
    assert boat2.mask_paths[0].name == "boat2_000.bmp"


def test_visal_truth_without_its_frame_is_an_error(tmp_path):
    root = write_visal_flat(tmp_path / "ViSal")
    Image.fromarray(np.zeros((HEIGHT, WIDTH), np.uint8)).save(root / "GroundTruth/boat_009.png")
    with pytest.raises(UserError, match="boat_009.png"):
        index_visal(root)


def test_visal_toolbox_layout(tmp_path):
    car, cat = index_visal(write_visal_toolbox(tmp_path / "ViSal"))
    assert [p.name for p in car.frame_paths] == [f"car_{i}.jpg" for i in range(1, 6)]
    assert car.annotated_indices == [0, 4] and car.ground_truth == "ViSal GT_object_level (per sequence)"


# Indexing errors


def test_broken_trees_fail_at_indexing_with_one_line_naming_the_path(tmp_path, mini_davis):
    with pytest.raises(UserError, match="nowhere"):
        index_davis(tmp_path / "nowhere", "2017/val.txt")
    (mini_davis / "ImageSets/2017/val.txt").write_text("bear\nghost\n")
    with pytest.raises(UserError, match="JPEGImages/480p/ghost"):
        index_davis(mini_davis, "2017/val.txt")
    (mini_davis / "JPEGImages/480p/ghost").mkdir()
    with pytest.raises(UserError, match="no frames in .*ghost"):
        index_davis(mini_davis, "2017/val.txt")
    (mini_davis / "ImageSets/2017/val.txt").write_text("bear\n")
    (mini_davis / "JPEGImages/480p/bear/00000.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DataFileError, match="bear/00000.jpg") as error:
        index_davis(mini_davis, "2017/val.txt")
    assert "\n" not in str(error.value)
    write_jpeg(mini_davis / "JPEGImages/480p/bear/00000.jpg", np.zeros((32, 32, 3), np.uint8))
    with pytest.raises(UserError, match="mask .*bear/00000.png is 112x64, its frame .*00000.jpg is 32x32"):
        index_davis(mini_davis, "2017/val.txt")


def test_zero_annotated_frames_while_truth_exists_is_an_error(tmp_path, mini_davis):
    for path in (mini_davis / "Annotations_unsupervised/480p/bear").glob("*.png"):
        path.rename(path.with_name("x" + path.name))
    with pytest.raises(UserError, match="Annotations_unsupervised/480p/bear"):
        index_davis(mini_davis, "2017/val.txt")


def test_unreadable_file_in_a_loader_worker_is_one_line_naming_it(mini_davis):
    dataset = clip_dataset(index_davis(mini_davis, "2017/train.txt"), clip_length=10, max_temporal_gap=10,
                           clips_per_sequence=0)  # the clip starting at frame 0 reads every frame
    (mini_davis / "JPEGImages/480p/cows/00005.jpg").write_bytes(b"broken")
    with pytest.raises(DataFileError) as error:
        list(DataLoader(dataset, batch_size=1, num_workers=1))
    message = str(error.value)
    assert "\n" not in message and message.startswith("cannot read image") and "cows/00005.jpg" in message


# Mixtures


def test_mixture_draws_sources_in_proportion_to_their_weights(tmp_path, mini_davis):
    cfg = load_config(TINY_CONFIG, [
        f"data.train=[{{dataset: coco, root: {write_coco(tmp_path / 'COCO')}, split: train2017, weight: 1}},"
        f" {{dataset: davis, root: {mini_davis}, split: 2017/train.txt, weight: 3}}]", "data.epoch_length=4000"])
    mixture = build_train_dataset(cfg)
    assert len(mixture) == 4000 and len(mixture.sequences) == 2 + 2  # COCO images + DAVIS sequences
    sources = np.array([mixture.draw(item)[0] for item in range(len(mixture))])
    assert abs((sources == 1).mean() - 0.75) < 0.03
    assert [mixture.draw(i)[:2] for i in (7, 3)] == [mixture.draw(i)[:2] for i in (7, 3)]  # any order
    first_epoch = [mixture.draw(i)[:2] for i in range(50)]
    mixture.set_epoch(1)
    assert [mixture.draw(i)[:2] for i in range(50)] != first_epoch
    sample = mixture[0]
    assert sample["images"].shape[:2] == (3, 8) and set(sample["info"]) == {"sequence", "frames", "annotated"}


def test_mixture_epoch_length_zero_is_the_sum_of_the_sources(tmp_path, mini_davis):
    cfg = load_config(TINY_CONFIG, [
        f"data.train=[{{dataset: coco, root: {write_coco(tmp_path / 'COCO')}, split: train2017}},"
        f" {{dataset: davis, root: {mini_davis}}}]", "data.clips_per_sequence=3"])
    assert len(build_train_dataset(cfg)) == 2 + 2 * 3
