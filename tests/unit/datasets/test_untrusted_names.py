"""Names read from data files (DAVIS ImageSets lines, YouTube-VOS meta.json keys, FBMS .bmf
lists, COCO file_names, result markers) are plain names: anything that could lead a run outside
its dataset or output folder is refused at indexing with one line naming the file and the place,
and nothing is written or deleted outside the output folder."""

import contextlib
import json
import shutil

import pytest

import main
from checkpoints.training import save_checkpoint
from datasets.coco import index_coco
from datasets.davis import index_davis
from datasets.fbms import index_fbms
from datasets.io import check_plain_name
from datasets.youtube_vos import index_youtube_vos
from network import build_model
from utils.config import CocoConfig, load_config, to_dict
from utils.errors import UserError

from support.data_trees import write_coco, write_davis2016, write_fbms_official, write_mini_davis, write_youtube_vos
from support.paths import TINY_CONFIG


@pytest.mark.parametrize("name", ["..", ".", "", "../escape", "a/b", "/etc", "a\\b", "nul\0byte"])
def test_a_name_with_a_path_in_it_is_refused(tmp_path, name):
    with pytest.raises(UserError, match=r"list\.txt, line 7: .* is not a plain name"):
        check_plain_name(name, tmp_path / "list.txt", "line 7")


@pytest.mark.parametrize("name", ["bear", "dogs-jump", "a..b", "0b6f9105fc", "COCO_val2014_000000000001.jpg"])
def test_plain_names_pass(tmp_path, name):
    assert check_plain_name(name, tmp_path / "list.txt", "line 1") == name


def test_davis_list_escaping_the_frame_folder_is_refused_and_infer_writes_nothing(tmp_path, capsys):
    """The issue's case: ImageSets line '../escape' and a folder JPEGImages/escape beside 480p;
    --task infer used to write results/escape/, outside results/tiny/."""
    root = write_mini_davis(tmp_path / "DAVIS", num_frames=8, height=32, width=64)
    for folder in ("JPEGImages", "Annotations_unsupervised"):
        shutil.copytree(root / folder / "480p/bear", root / folder / "escape")
    with open(root / "ImageSets/2017/val.txt", "a") as listing:
        listing.write("../escape\n")
    weights = tmp_path / "tiny.pth"
    cfg = load_config(TINY_CONFIG)
    save_checkpoint(weights, model_state=build_model(cfg.model).state_dict(), epoch=0, iteration=0,
                    config=to_dict(cfg))
    with contextlib.chdir(tmp_path):
        code = main.main(["-c", str(TINY_CONFIG), "--task", "infer", "--wts", str(weights),
                          f"data.test_root={root}"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert lines[-1] == (f"error: {root}/ImageSets/2017/val.txt, line 3: '../escape' is not a plain name "
                         "(one path component, no '..', no '/' or '\\'); refusing to read or write outside "
                         "the dataset and output folders")
    assert sorted(path.name for path in (tmp_path / "results").iterdir()) == ["tiny"]
    assert not list((tmp_path / "results/tiny").glob("*/*.png"))


def test_davis2016_pair_list_escaping_is_refused(tmp_path):
    root = write_davis2016(tmp_path / "DAVIS")
    with open(root / "ImageSets/480p/val.txt", "a") as listing:
        listing.write("/JPEGImages/480p/../00000.jpg /Annotations/480p/../00000.png\n")
    with pytest.raises(UserError, match=r"ImageSets/480p/val\.txt, line 13: '\.\.' is not a plain name"):
        index_davis(root, "480p/val.txt")


def test_youtube_vos_meta_key_with_a_path_is_refused(tmp_path):
    root = write_youtube_vos(tmp_path / "YouTubeVOS")
    (root / "train/meta.json").write_text(json.dumps({"videos": {"../valid/JPEGImages/0b6f9105fc": {}}}))
    with pytest.raises(UserError, match=r"train/meta\.json, \"videos\" key: '\.\./valid/JPEGImages/0b6f9105fc' "
                                        r"is not a plain name"):
        index_youtube_vos(root, "train")


def test_fbms_bmf_line_with_a_path_is_refused(tmp_path):
    root = write_fbms_official(tmp_path / "FBMS")
    bmf = root / "Testset/cars1/cars1.bmf"
    bmf.write_text(bmf.read_text() + "../tennis/tennis_001.ppm\n")
    with pytest.raises(UserError, match=r"cars1\.bmf, line 9: '\.\./tennis/tennis_001\.ppm' is not a plain name"):
        index_fbms(root, "Testset")


def test_coco_file_name_with_a_path_is_refused(tmp_path):
    root = write_coco(tmp_path / "COCO")
    annotation_file = root / "annotations/instances_train2017.json"
    annotations = json.loads(annotation_file.read_text())
    annotations["images"][1]["file_name"] = "../../outside.jpg"
    annotation_file.write_text(json.dumps(annotations))
    with pytest.raises(UserError, match=r"instances_train2017\.json, image id 2, file_name: '\.\./\.\./outside\.jpg' "
                                        r"is not a plain name"):
        index_coco(root, "train2017", CocoConfig())


def test_a_result_marker_naming_a_file_outside_the_results_is_not_followed(tmp_path):
    """A rerun deletes the files an earlier run of a sequence wrote and this one does not: only
    inside results/<name>, whatever a (tampered) .complete.json lists."""
    root = write_mini_davis(tmp_path / "DAVIS", num_frames=8, height=32, width=64)
    weights = tmp_path / "tiny.pth"
    cfg = load_config(TINY_CONFIG)
    save_checkpoint(weights, model_state=build_model(cfg.model).state_dict(), epoch=0, iteration=0,
                    config=to_dict(cfg))
    arguments = ["-c", str(TINY_CONFIG), "--task", "infer", "--wts", str(weights), f"data.test_root={root}"]
    with contextlib.chdir(tmp_path):
        assert main.main(arguments) == 0
        marker = tmp_path / "results/tiny/bear/.complete.json"
        stored = json.loads(marker.read_text())
        victim = tmp_path / "victim.txt"
        victim.write_text("keep me")
        stored["files"].append("../../victim.txt")
        stored["num_frames"] += 1  # the sequence is predicted again, and its old files cleaned up
        marker.write_text(json.dumps(stored))
        assert main.main(arguments) == 0
    assert victim.read_text() == "keep me"


@pytest.mark.parametrize("given, name", [("..mp4", "."), ("/", "")])
def test_an_input_whose_name_is_not_a_plain_name_is_refused_before_anything_is_written(tmp_path, monkeypatch, capsys,
                                                                                     given, name):
    """An --input run writes into results/<name>/<input name>/: a video '..mp4' (stem '.') would
    write into results/<name>/ itself, the root folder (name '') likewise."""
    (tmp_path / "..mp4").write_bytes(b"not decoded: refused before")
    weights = tmp_path / "tiny.pth"
    cfg = load_config(TINY_CONFIG)
    save_checkpoint(weights, model_state=build_model(cfg.model).state_dict(), epoch=0, iteration=0,
                    config=to_dict(cfg))
    monkeypatch.chdir(tmp_path)
    code = main.main(["-c", str(TINY_CONFIG), "--task", "infer", "--wts", str(weights), "--input", given])
    assert code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"error: {given}, the name of --input: {name!r} is not a plain name (one path component, no '..', no '/' or "
        "'\\'); refusing to read or write outside the dataset and output folders")
    assert not (tmp_path / "results").exists()
