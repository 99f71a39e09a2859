"""Miniature dataset trees in the layouts users download (docs/data.md), for tests.

Frames are noise with one or two moving ellipses; every writer returns the tree's root.
"""

import json
from pathlib import Path

import numpy as np
from PIL import Image

from datasets.io import write_jpeg, write_palette_png

HEIGHT, WIDTH = 48, 64


def moving_objects(index: int, num_objects: int = 1, height: int = HEIGHT, width: int = WIDTH, seed: int = 0):
    """uint8 (H, W, 3) noise frame and uint8 (H, W) ids of `num_objects` ellipses moving right."""
    rng = np.random.default_rng((seed, index))
    rows, cols = np.mgrid[:height, :width]
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    labels = np.zeros((height, width), dtype=np.uint8)
    for number in range(1, num_objects + 1):
        center_x, center_y = 10 + 3 * index + 20 * (number - 1), height * number / (num_objects + 1)
        inside = ((cols - center_x) / 8.0) ** 2 + ((rows - center_y) / 6.0) ** 2 <= 1
        image[inside] = (220, 40 * number, 40)
        labels[inside] = number
    return image, labels


def write_davis2016(root: Path, names=("blackswan", "camel"), num_frames=6) -> Path:
    """The DAVIS-2016 release: 0/255 grayscale masks in Annotations/480p, ImageSets/480p path pairs."""
    for name in names:
        for index in range(num_frames):
            image, labels = moving_objects(index)
            write_jpeg(root / "JPEGImages/480p" / name / f"{index:05d}.jpg", image)
            path = root / "Annotations/480p" / name / f"{index:05d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.where(labels > 0, 255, 0).astype(np.uint8), mode="L").save(path)
    (root / "ImageSets/480p").mkdir(parents=True, exist_ok=True)
    pairs = [f"/JPEGImages/480p/{name}/{index:05d}.jpg /Annotations/480p/{name}/{index:05d}.png"
             for name in names for index in range(num_frames)]
    (root / "ImageSets/480p/val.txt").write_text("\n".join(pairs) + "\n")
    (root / "ImageSets/480p/train.txt").write_text("\n".join(pairs[:num_frames]) + "\n")
    return root


def write_davis2017_semi(root: Path, names=("dogs-jump",), num_frames=6, height=HEIGHT, width=WIDTH) -> Path:
    """A DAVIS-2017 semi-supervised tree: two objects per palette mask in Annotations/480p."""
    for name in names:
        for index in range(num_frames):
            image, labels = moving_objects(index, num_objects=2, height=height, width=width)
            write_jpeg(root / "JPEGImages/480p" / name / f"{index:05d}.jpg", image)
            write_palette_png(root / "Annotations/480p" / name / f"{index:05d}.png", labels)
    (root / "ImageSets/2017").mkdir(parents=True, exist_ok=True)
    (root / "ImageSets/2017/val.txt").write_text("\n".join(names) + "\n")
    return root


YOUTUBE_VIDEOS = {"0b6f9105fc": 6, "0a2f2bd294": 3}  # video -> frames (every 5th frame number)


def write_youtube_vos(root: Path) -> Path:
    """train/ (two objects, frame numbers 0, 5, 10, ...; the second video shorter than a clip),
    valid/ (only the first frame annotated) and train_all_frames/ (every number, no annotations)."""
    for video, num_frames in YOUTUBE_VIDEOS.items():
        for index in range(num_frames):
            image, labels = moving_objects(index, num_objects=2)
            write_jpeg(root / "train/JPEGImages" / video / f"{5 * index:05d}.jpg", image)
            write_palette_png(root / "train/Annotations" / video / f"{5 * index:05d}.png", labels)
            write_jpeg(root / "valid/JPEGImages" / video / f"{5 * index:05d}.jpg", image)
        for number in range(5 * (num_frames - 1) + 1):
            write_jpeg(root / "train_all_frames/JPEGImages" / video / f"{number:05d}.jpg",
                       moving_objects(number // 5, num_objects=2)[0])
        write_palette_png(root / "valid/Annotations" / video / "00000.png", moving_objects(0, num_objects=2)[1])
    meta = {"videos": {video: {"objects": {"1": {"category": "dog", "frames": ["00000"]}}}
                       for video in YOUTUBE_VIDEOS}}
    for split in ("train", "valid"):
        (root / split / "meta.json").write_text(json.dumps(meta))
    return root


def uncompressed_rle(mask: np.ndarray) -> dict:
    """COCO's uncompressed RLE: run lengths over the column-major pixels, starting with zeros."""
    flat = mask.flatten(order="F").astype(np.uint8)
    changes = np.flatnonzero(np.diff(np.concatenate([[0], flat, [1 - flat[-1]]])))
    counts = np.diff(np.concatenate([[0], changes])).tolist()
    return {"size": list(mask.shape), "counts": counts}


def write_coco(root: Path, split: str = "train2017", annotation_name: str = "instances_{split}.json",
               image_folder: str = "{split}", file_prefix: str = "") -> Path:
    """Four images: a polygon (person), an RLE object (car), a crowd image and a small-box-only
    image (both dropped in training)."""
    rows, cols = np.mgrid[:HEIGHT, :WIDTH]
    rectangle = ((rows >= 10) & (rows < 40) & (cols >= 20) & (cols < 55)).astype(np.uint8)
    annotations = [
        {"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0, "bbox": [10, 8, 40, 32], "area": 640.0,
         "segmentation": [[10, 8, 50, 8, 30, 40]]},
        {"id": 2, "image_id": 2, "category_id": 3, "iscrowd": 0, "bbox": [20, 10, 35, 30], "area": 1050.0,
         "segmentation": uncompressed_rle(rectangle)},
        {"id": 3, "image_id": 3, "category_id": 1, "iscrowd": 1, "bbox": [0, 0, 40, 40], "area": 1600.0,
         "segmentation": uncompressed_rle(rectangle)},
        {"id": 4, "image_id": 3, "category_id": 1, "iscrowd": 0, "bbox": [10, 8, 40, 32], "area": 640.0,
         "segmentation": [[10, 8, 50, 8, 30, 40]]},
        {"id": 5, "image_id": 4, "category_id": 1, "iscrowd": 0, "bbox": [2, 2, 10, 10], "area": 50.0,
         "segmentation": [[2, 2, 12, 2, 7, 12]]},
    ]
    images = []
    for image_id in range(1, 5):
        file_name = f"{file_prefix}{image_id:012d}.jpg"
        images.append({"id": image_id, "file_name": file_name, "height": HEIGHT, "width": WIDTH})
        write_jpeg(root / image_folder.format(split=split) / file_name, moving_objects(image_id)[0])
    categories = [{"id": 1, "name": "person", "supercategory": "person"},
                  {"id": 3, "name": "car", "supercategory": "vehicle"}]
    path = root / "annotations" / annotation_name.format(split=split)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return root


def write_fbms_official(root: Path, split: str = "Testset") -> Path:
    """cars1: 2-digit frame numbers from 1, .ppm ground truth (white background, two colours),
    a .bmf list and a PROB file; tennis: 3-digit numbers, .pgm ground truth, no .bmf."""
    for name, digits, suffix in (("cars1", 2, ".ppm"), ("tennis", 3, ".pgm")):
        folder = root / split / name
        for number in range(1, 8):
            write_jpeg(folder / f"{name}_{number:0{digits}d}.jpg", moving_objects(number, num_objects=2)[0])
        for number in (1, 4, 7):
            labels = moving_objects(number, num_objects=2)[1]
            path = folder / "GroundTruth" / f"{name}_{number:0{digits}d}_gt{suffix}"
            path.parent.mkdir(parents=True, exist_ok=True)
            if suffix == ".ppm":
                colours = np.array([[255, 255, 255], [255, 0, 0], [0, 0, 255]], dtype=np.uint8)
                Image.fromarray(colours[labels]).save(path)
            else:
                Image.fromarray((labels * 100).astype(np.uint8), mode="L").save(path)
        if suffix == ".ppm":
            Image.fromarray(np.zeros((HEIGHT, WIDTH), np.uint8)).save(folder / "GroundTruth" / "cars1_01_PROB.pgm")
            listed = [f"{name}_{number:0{digits}d}.ppm" for number in range(1, 8)]
            (folder / f"{name}.bmf").write_text(f"{len(listed)} 1\n" + "\n".join(listed) + "\n")
    return root


def write_visal_flat(root: Path) -> Path:
    """The original's layout: ViSal/<seq>/ frames (.bmp then .png), a flat GroundTruth/ folder;
    boat and boat2 test the prefix rule."""
    for name, count in (("boat", 4), ("boat2", 3)):
        for index in range(count):
            image, labels = moving_objects(index)
            suffix = ".bmp" if index < 2 else ".png"
            path = root / "ViSal" / name / f"{name}_{index:03d}{suffix}"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(path)
            if index % 2 == 0:
                (root / "GroundTruth").mkdir(parents=True, exist_ok=True)
                Image.fromarray(labels * 255, mode="L").save(root / "GroundTruth" / path.name)
    return root


def write_visal_toolbox(root: Path) -> Path:
    """The VSOD toolboxes' layout: ViSal/<seq>/Imgs/*.jpg and <seq>/GT_object_level/*.png."""
    for name in ("car", "cat"):
        for index in range(1, 6):
            image, labels = moving_objects(index)
            write_jpeg(root / "ViSal" / name / "Imgs" / f"{name}_{index}.jpg", image)
            if index in (1, 5):
                path = root / "ViSal" / name / "GT_object_level" / f"{name}_{index}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(labels * 255, mode="L").save(path)
    return root


def write_mini_davis(root: Path, names=("bear", "cows"), num_frames=10, height=64, width=112) -> Path:
    """A DAVIS tree: noise frames with a moving ellipse, palette masks, ImageSets 2016 and 2017."""
    rng = np.random.default_rng(0)
    rows, cols = np.mgrid[:height, :width]
    for name in names:
        for index in range(num_frames):
            center_x = 20 + 4 * index
            ellipse = ((cols - center_x) / 12.0) ** 2 + ((rows - height / 2) / 9.0) ** 2 <= 1
            image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
            image[ellipse] = (220, 40, 40)
            write_jpeg(root / "JPEGImages/480p" / name / f"{index:05d}.jpg", image)
            write_palette_png(root / "Annotations_unsupervised/480p" / name / f"{index:05d}.png",
                              ellipse.astype(np.uint8))
    for split in ("2016/val.txt", "2017/train.txt", "2017/val.txt"):
        (root / "ImageSets" / split).parent.mkdir(parents=True, exist_ok=True)
        (root / "ImageSets" / split).write_text("\n".join(names) + "\n")
    return root
