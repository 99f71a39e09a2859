"""COCO images as training pseudo-clips (SPEC 7.3), annotations read with pycocotools.

    ROOT/annotations/instances_train2017.json + ROOT/train2017/<file_name>      (data.coco defaults, split train2017)
    ROOT/annotations/instances_train.json + ROOT/train2014/, ROOT/val2014/      (the original: split train,
                                                                                 image_folders [train2014, val2014])

Filtering as the original's training mode: images with any crowd annotation are dropped, then
annotations whose box is narrower or lower than data.coco.min_box_size, then, with
data.coco.categories, annotations of other categories (data.coco.category_filter: annotations)
or images without a listed category, keeping every annotation of the others (images: the
original COCOv2's category list), then images left without annotations. The mask of an image
paints annotation k (1-based, in file order) with id k over the earlier ones (polygons and RLE
alike). A sample is one image made into a clip of clip_length frames (datasets/pseudo_clips.py),
in the sample dict of datasets/clip_dataset.py, with info {"sequence": file stem, "frames": [0] * T,
"annotated": [True] * T}.
"""

import contextlib
import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from torch.utils.data import Dataset

from datasets.io import DataFileError, check_plain_name, image_size, read_rgb
from datasets.transforms import (build_train_transform, prepare_training_clip, resize_image,
                                 resize_labels, resized_shape)
from utils.errors import UserError


# pycocotools' decode under numpy 2 (its RLE objects' __array__ lacks numpy 2's `copy` argument):
# harmless, and nothing a user can change
PYCOCOTOOLS_NUMPY2_WARNING = r"__array__ implementation doesn't accept a copy keyword"


@dataclass(frozen=True)
class CocoImage:
    """One image and the segmentations (polygon lists or RLE dicts) of its kept annotations."""

    path: Path
    height: int
    width: int
    segmentations: tuple

    @property
    def name(self) -> str:
        return self.path.stem


def image_folder(folders: list[Path], file_name: str) -> Path:
    """The first folder whose name occurs in the file name (COCO_val2014_... -> val2014), else the first."""
    return next((folder for folder in folders if folder.name in file_name), folders[0])


def load_annotations(path: Path) -> COCO:
    if not path.is_file():
        raise UserError(f"COCO annotation file not found: {path} (data.coco.annotation_file)")
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
            return COCO(str(path))
    except (ValueError, KeyError, TypeError) as error:
        raise UserError(f"cannot read COCO annotations {path}: {error}") from error


def category_ids(coco: COCO, names: list[str], path: Path) -> set[int] | None:
    """Ids of the named categories; None = all."""
    if not names:
        return None
    by_name = {category["name"]: category["id"] for category in coco.loadCats(coco.getCatIds())}
    unknown = [name for name in names if name not in by_name]
    if unknown:
        raise UserError(f"data.coco.categories: '{unknown[0]}' is not a category of {path}; "
                        f"choose from {', '.join(sorted(by_name))}")
    return {by_name[name] for name in names}


def index_coco(root, split: str, coco_config) -> list[CocoImage]:
    """Images of ROOT/<annotation_file> that keep at least one annotation, in id order."""
    root = Path(root)
    annotation_path = root / coco_config.annotation_file.format(split=split)
    coco = load_annotations(annotation_path)
    folders = [root / folder.format(split=split) for folder in coco_config.image_folders]
    if not folders:
        raise UserError("data.coco.image_folders is empty")
    keep_categories = category_ids(coco, coco_config.categories, annotation_path)
    images = []
    for image_id in sorted(coco.getImgIds()):
        annotations = coco.loadAnns(coco.getAnnIds(imgIds=image_id))
        if any(annotation.get("iscrowd", 0) for annotation in annotations):
            continue
        kept = [annotation for annotation in annotations if min(annotation["bbox"][2:]) >= coco_config.min_box_size]
        if keep_categories is not None:
            listed = [annotation for annotation in kept if annotation["category_id"] in keep_categories]
            if coco_config.category_filter == "annotations" or not listed:
                kept = listed
        if kept:
            info = coco.imgs[image_id]
            check_plain_name(info["file_name"], annotation_path, f"image id {image_id}, file_name")
            images.append(CocoImage(image_folder(folders, info["file_name"]) / info["file_name"],
                                    int(info["height"]), int(info["width"]),
                                    tuple(annotation["segmentation"] for annotation in kept)))
    if not images:
        raise UserError(f"no COCO image of {annotation_path} keeps an annotation after filtering "
                        f"(data.coco.categories, data.coco.min_box_size)")
    if not images[0].path.is_file():
        raise UserError(f"COCO image not found: {images[0].path} (data.coco.image_folders)")
    check_size(images[0], image_size(images[0].path))
    return images


def check_size(image: CocoImage, size: tuple[int, int]) -> None:
    if size != (image.height, image.width):
        raise DataFileError(f"COCO image {image.path} is {size[1]}x{size[0]}, its annotations say "
                            f"{image.width}x{image.height}")


def decode_labels(image: CocoImage) -> np.ndarray:
    """uint8 (H, W): annotation k (1-based) painted with id k, later ones on top."""
    labels = np.zeros((image.height, image.width), dtype=np.uint8)
    with warnings.catch_warnings():  # here only: not thread-safe, but the loader decodes in one thread per process
        warnings.filterwarnings("ignore", message=PYCOCOTOOLS_NUMPY2_WARNING, category=DeprecationWarning)
        for number, segmentation in enumerate(image.segmentations, start=1):
            if isinstance(segmentation, list):  # polygons
                rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, image.height, image.width))
            elif isinstance(segmentation["counts"], list):  # uncompressed RLE
                rle = mask_utils.frPyObjects(segmentation, image.height, image.width)
            else:  # compressed RLE
                rle = segmentation
            labels[mask_utils.decode(rle) > 0] = min(number, 255)
    return labels


class CocoClipDataset(Dataset):
    """One pseudo-clip per image and epoch, drawn from a generator seeded by (seed, epoch, item):
    new every epoch, yet reproducible; call `set_epoch` before each epoch.

    warp "before_padding" warps the resized image, then crops and pads the clip (the crop sees the
    union of the warped masks); "after_padding" (the original) warps the cropped, zero-padded
    image, so the zero border moves into the frames. crop: input.train_crop; affine_scale:
    data.coco.affine_scale (anisotropic: x and y scale drawn independently, as the original).
    """

    def __init__(self, images: list[CocoImage], *, clip_length: int, resize_mode: str, resize_size,
                 warp: str, seed: int, crop: str = "object", affine_scale: str = "anisotropic"):
        self.sequences = images  # one pseudo-sequence per image (train.py logs their number)
        self.clip_length = clip_length
        self.resize_mode = resize_mode
        self.resize_size = resize_size
        self.crop = build_train_transform(resize_mode, resize_size, crop)
        self.warp = warp
        self.anisotropic = affine_scale == "anisotropic"
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.sequences)

    def __getitem__(self, item: int) -> dict:
        return self.sample(item, np.random.default_rng((self.seed, self.epoch, item)))

    def sample(self, item: int, rng: np.random.Generator) -> dict:
        from datasets.pseudo_clips import pseudo_clip  # torchvision: imported by training only
        image = self.sequences[item]
        rgb = read_rgb(image.path)
        check_size(image, rgb.shape[:2])
        shape = resized_shape(image.height, image.width, self.resize_mode, self.resize_size)
        rgb, labels = resize_image(rgb, shape), resize_labels(decode_labels(image), shape)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(rng.integers(2**31)))
            if self.warp == "before_padding":
                frames, masks = pseudo_clip(torch.from_numpy(rgb).permute(2, 0, 1),
                                            torch.from_numpy(labels)[None], self.clip_length, rng,
                                            self.anisotropic)
                images, masks = prepare_training_clip(list(frames.permute(0, 2, 3, 1).numpy()),
                                                      list(masks[:, 0].numpy()), "unchanged", None, self.crop)
            else:
                padded, padded_mask = prepare_training_clip([rgb], [labels], "unchanged", None, self.crop)
                frames, masks = pseudo_clip((padded[:, 0] * 255).round().to(torch.uint8), padded_mask[:, 0],
                                            self.clip_length, rng, self.anisotropic)   # (T, 3, H, W), (T, 1, H, W)
                images, masks = frames.permute(1, 0, 2, 3).float() / 255, masks.permute(1, 0, 2, 3)
        return {"images": images.contiguous(), "masks": masks.contiguous(),
                "info": {"sequence": image.name, "frames": [0] * self.clip_length,
                         "annotated": [True] * self.clip_length}}
