"""Tests of weight loading and export (network/weights.py, network/backbone_formats.py) and of
the `python -m network.convert_weights` command.

Synthetic files are built from random tensors. Their source names are written out here by
rules independent of the library's key tables, so a wrong table entry fails a test.
"""

import logging
import os
import pickle
import re
import subprocess
import sys
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch

from network.backbone_formats import BACKBONE_FORMATS, backbone_key_table
from network.csn import CSN152_DEPTHS, CSNEncoder
from network.model import build_saliency_network
from network.weights import (
    export_original, infer_model_shape, load_backbone_weights, load_model_weights, load_weights,
    save_original_checkpoint, strip_prefixes)
from utils.checkpoint import save_checkpoint
from utils.errors import UserError

REPO_ROOT = Path(__file__).resolve().parents[1]
DEPTHS = (1, 2, 1, 1)  # layer2 has two blocks, so caffe2's global block index != index in stage
WIDTH, DECODER_WIDTH = 8, 16
PIXEL_MEAN = (114.7748, 107.7354, 99.4750)
BN_SUFFIXES = {"weight": "s", "bias": "b", "running_mean": "rm", "running_var": "riv"}


def tiny_model(depths=DEPTHS, decoder_width=DECODER_WIDTH):
    return build_saliency_network(depths, WIDTH, decoder_width, 2, bn_mode="train", bn_eps=1e-5,
                                  pixel_mean=PIXEL_MEAN, pixel_std=(1.0, 1.0, 1.0))


def tiny_encoder(depths=DEPTHS):
    return CSNEncoder(depths=depths, width=WIDTH, pixel_mean=PIXEL_MEAN)


def random_like(state: dict, seed: int) -> OrderedDict:
    """Random tensors with the names, shapes and dtypes of `state`."""
    generator = torch.Generator().manual_seed(seed)
    result = OrderedDict()
    for key, value in state.items():
        if value.dtype == torch.long:
            result[key] = torch.randint(1, 1000, value.shape, generator=generator)
        else:
            result[key] = torch.randn(value.shape, generator=generator)
    return result


def assert_state_equals(actual: dict, expected: dict) -> None:
    assert sorted(actual) == sorted(expected)
    for key, value in actual.items():
        assert torch.equal(value, expected[key]), key


def original_checkpoint(state: dict, multi_gpu: bool = False) -> dict:
    """An original 3DC-Seg training checkpoint holding our tensors `state` (SPEC §5.1)."""
    noise = torch.Generator().manual_seed(99)
    model = OrderedDict()
    model["encoder.conv1_p.weight"] = torch.randn(WIDTH, 1, 7, 7, 7, generator=noise)
    for key, value in state.items():
        if key.startswith(("encoder.conv1.", "encoder.layer")):
            model["encoder.resnet." + key.removeprefix("encoder.")] = value
        elif key.startswith("encoder.bn1."):  # a stale, different copy after SyncBN conversion
            model["encoder.resnet." + key.removeprefix("encoder.")] = value + 1
    model["encoder.resnet.fc.weight"] = torch.randn(400, 32 * WIDTH, generator=noise)
    model["encoder.resnet.fc.bias"] = torch.randn(400, generator=noise)
    model.update(state)
    for head in ("pred3", "pred4", "pred5"):
        for field in ("weight", "bias"):
            reference = state[f"decoders.0.pred2.{field}"]
            model[f"decoders.0.{head}.{field}"] = torch.randn(reference.shape, generator=noise)
    if multi_gpu:
        model = OrderedDict(("module." + key, value) for key, value in model.items())
    return {"epoch": 4, "iter": 1234, "model": model, "optimizer": {"state": {}, "param_groups": []}}


@pytest.fixture(scope="module")
def model_state():
    return random_like(tiny_model().state_dict(), seed=0)


# ----- backbone files, named by hand -------------------------------------------------------

VMZ_PYTORCH_RULES = [(r"^conv1\.", "stem.0."), (r"^bn1\.", "stem.1."),
                     (r"\.conv(\d)\.weight$", r".conv\1.0.weight"), (r"\.bn(\d)\.", r".conv\1.1.")]
MMACTION2_RULES = [(r"^conv1\.weight$", "conv1.conv.weight"), (r"^bn1\.", "conv1.bn."),
                   (r"\.conv2\.weight$", ".conv2.0.conv.weight"), (r"\.bn2\.", ".conv2.0.bn."),
                   (r"\.conv([13])\.weight$", r".conv\1.conv.weight"), (r"\.bn([13])\.", r".conv\1.bn."),
                   (r"\.downsample\.0\.", ".downsample.conv."), (r"\.downsample\.1\.", ".downsample.bn.")]


def renamed(key: str, rules) -> str:
    for pattern, replacement in rules:
        key = re.sub(pattern, replacement, key)
    return key


def caffe2_blob_name(key: str, depths) -> str | None:
    """VMZ caffe2 blob of an encoder tensor (SPEC §5.4); None for num_batches_tracked."""
    *module, field = key.split(".")
    if field == "num_batches_tracked":
        return None
    if module == ["conv1"]:
        return "conv1_w"
    if module == ["bn1"]:
        return f"conv1_spatbn_relu_{BN_SUFFIXES[field]}"
    stage, block, part = int(module[0].removeprefix("layer")), int(module[1]), ".".join(module[2:])
    index = sum(depths[:stage - 1]) + block
    convs = {"conv1": f"comp_{index}_conv_1", "conv2": f"comp_{index}_conv_3",
             "conv3": f"comp_{index}_conv_4", "downsample.0": f"shortcut_projection_{index}"}
    norms = {"bn1": f"comp_{index}_spatbn_1", "bn2": f"comp_{index}_spatbn_3",
             "bn3": f"comp_{index}_spatbn_4", "downsample.1": f"shortcut_projection_{index}_spatbn"}
    return convs[part] + "_w" if part in convs else f"{norms[part]}_{BN_SUFFIXES[field]}"


def encoder_weights(depths=DEPTHS, seed=3) -> OrderedDict:
    """Random encoder tensors under our names, without the mean/std buffers."""
    state = random_like(tiny_encoder(depths).state_dict(), seed)
    del state["mean"], state["std"]
    return state


def backbone_file_object(fmt: str, weights: dict, depths=DEPTHS):
    head = {"weight": torch.randn(400, 32 * WIDTH), "bias": torch.randn(400)}
    if fmt == "3dcseg":
        return OrderedDict(weights, **{"fc.weight": head["weight"], "fc.bias": head["bias"]})
    if fmt == "vmz_pytorch":
        state = OrderedDict((renamed(key, VMZ_PYTORCH_RULES), value) for key, value in weights.items())
        return OrderedDict(state, **{"fc.weight": head["weight"], "fc.bias": head["bias"]})
    if fmt == "mmaction2":
        state = OrderedDict(("backbone." + renamed(key, MMACTION2_RULES), value)
                            for key, value in weights.items())
        state["cls_head.fc_cls.weight"], state["cls_head.fc_cls.bias"] = head["weight"], head["bias"]
        return {"meta": {"mmcv_version": "1.3.0", "epoch": 58}, "state_dict": state}
    blobs = {caffe2_blob_name(key, depths): value.numpy() for key, value in weights.items()
             if caffe2_blob_name(key, depths)}
    blobs["last_out_L400_w"], blobs["last_out_L400_b"] = head["weight"].numpy(), head["bias"].numpy()
    return {"blobs": blobs}


def write_backbone_file(path: Path, fmt: str, weights: dict, depths=DEPTHS, protocol=None) -> Path:
    obj = backbone_file_object(fmt, weights, depths)
    if fmt == "vmz_caffe2":
        with path.open("wb") as handle:
            pickle.dump(obj, handle, protocol=protocol)
    else:
        torch.save(obj, path)
    return path


def expected_encoder_state(fmt: str, weights: dict) -> dict:
    """What the encoder must hold after loading: the file's tensors, the configured mean/std,
    and num_batches_tracked = 0 where the format does not store it (caffe2)."""
    fresh = tiny_encoder().state_dict()
    expected = OrderedDict(weights, mean=fresh["mean"], std=fresh["std"])
    if fmt == "vmz_caffe2":
        for key in expected:
            if key.endswith("num_batches_tracked"):
                expected[key] = torch.tensor(0)
    return expected


# ----- prefixes and strict loading ---------------------------------------------------------

def test_strip_prefixes_removes_module_and_orig_mod():
    state = {"module.encoder.mean": 1, "_orig_mod.decoders.0.x": 2, "module._orig_mod.a": 3, "b": 4}
    assert list(strip_prefixes(state)) == ["encoder.mean", "decoders.0.x", "a", "b"]


def test_strip_prefixes_rejects_a_key_present_with_and_without_prefix():
    with pytest.raises(UserError, match="twice"):
        strip_prefixes({"module.a": 1, "a": 2})


def test_load_weights_reports_missing_unexpected_and_mismatched_in_one_error(model_state):
    state = OrderedDict(model_state)
    del state["encoder.conv1.weight"]
    state["decoders.0.extra.weight"] = torch.zeros(1)
    state["decoders.0.pred2.bias"] = torch.zeros(3)
    with pytest.raises(UserError) as error:
        load_weights(tiny_model(), state)
    message = str(error.value)
    assert "\n" not in message
    assert "1 missing (encoder.conv1.weight)" in message
    assert "1 unexpected (decoders.0.extra.weight)" in message
    assert "decoders.0.pred2.bias: file [3], model [2]" in message


def test_load_weights_truncates_long_name_lists(model_state):
    with pytest.raises(UserError, match=r"\+\d+ more"):
        load_weights(tiny_model(), {})


def test_load_weights_not_strict_loads_what_fits(model_state):
    state = OrderedDict(model_state)
    state["decoders.0.pred2.bias"] = torch.zeros(3)
    model = tiny_model()
    before = model.state_dict()["decoders.0.pred2.bias"].clone()
    load_weights(model, state, strict=False)
    loaded = model.state_dict()
    assert torch.equal(loaded["decoders.0.pred2.bias"], before)
    assert torch.equal(loaded["encoder.conv1.weight"], model_state["encoder.conv1.weight"])


# ----- full-model checkpoints --------------------------------------------------------------

def test_original_checkpoint_takes_encoder_bn1_not_resnet_bn1(tmp_path, model_state):
    path = tmp_path / "bmvc_final.pth"
    torch.save(original_checkpoint(model_state), path)
    model = tiny_model()
    assert load_model_weights(model, path) == "original"
    loaded = model.state_dict()
    assert_state_equals(loaded, model_state)
    stale = torch.load(path, weights_only=True)["model"]["encoder.resnet.bn1.weight"]
    assert not torch.equal(loaded["encoder.bn1.weight"], stale)


def test_multi_gpu_original_checkpoint_loads_every_tensor_and_logs_the_prefix(tmp_path, model_state, caplog):
    path = tmp_path / "checkpoint_10000.pth"
    torch.save(original_checkpoint(model_state, multi_gpu=True), path)
    model = tiny_model()
    with caplog.at_level(logging.INFO, logger="network.weights"):
        assert load_model_weights(model, path) == "original"
    assert_state_equals(model.state_dict(), model_state)
    assert "multi-GPU `module.` prefix" in caplog.text
    assert "epoch 4, iteration 1234" in caplog.text


@pytest.mark.parametrize("prefix", ["", "_orig_mod."])
def test_our_checkpoint_loads_every_tensor(tmp_path, model_state, prefix):
    path = tmp_path / "last.pth"
    state = OrderedDict((prefix + key, value) for key, value in model_state.items())
    save_checkpoint(path, model_state=state, epoch=1, iteration=2, config=None)
    model = tiny_model()
    assert load_model_weights(model, path) == "ours"
    assert_state_equals(model.state_dict(), model_state)


def test_checkpoint_of_another_depth_is_rejected_naming_the_missing_block(tmp_path):
    shallow = random_like(tiny_model(depths=(1, 1, 1, 1)).state_dict(), seed=5)
    path = tmp_path / "shallow.pth"
    torch.save(original_checkpoint(shallow), path)
    with pytest.raises(UserError) as error:
        load_model_weights(tiny_model(), path)
    message = str(error.value)
    assert "a model with depths (1, 1, 1, 1)" in message
    assert "the configured one has depths (1, 2, 1, 1)" in message
    assert "missing (encoder.layer2.1.conv1.weight" in message


def test_checkpoint_with_other_shapes_is_rejected_naming_the_mismatch(tmp_path):
    wide = random_like(tiny_model(decoder_width=32).state_dict(), seed=6)
    path = tmp_path / "wide.pth"
    torch.save(original_checkpoint(wide), path)
    with pytest.raises(UserError) as error:
        load_model_weights(tiny_model(), path)
    expected = "decoders.0.GC.conv_l1.weight: file [32, 256, 1, 7, 1], model [16, 256, 1, 7, 1]"
    assert expected in str(error.value)


def test_original_checkpoint_with_an_unknown_tensor_is_rejected(tmp_path, model_state):
    checkpoint = original_checkpoint(model_state)
    checkpoint["model"]["decoders.0.pred6.weight"] = torch.zeros(2)
    path = tmp_path / "odd.pth"
    torch.save(checkpoint, path)
    with pytest.raises(UserError, match=r"1 unexpected \(decoders\.0\.pred6\.weight\)"):
        load_model_weights(tiny_model(), path)


def test_backbone_file_given_as_model_checkpoint_says_so(tmp_path):
    path = write_backbone_file(tmp_path / "csn.pth", "3dcseg", encoder_weights())
    with pytest.raises(UserError, match="backbone-only file .3dcseg.; use it as model.backbone_weights"):
        load_model_weights(tiny_model(), path)


def test_model_checkpoint_given_as_backbone_says_so(tmp_path, model_state):
    path = tmp_path / "bmvc_final.pth"
    torch.save(original_checkpoint(model_state), path)
    with pytest.raises(UserError, match="full-model checkpoint; pass it with --wts"):
        load_backbone_weights(tiny_encoder(), path)


def test_unrelated_dict_is_rejected_naming_its_keys(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"weights": torch.zeros(2), "step": 3}, path)
    with pytest.raises(UserError, match="not a 3DC-Seg model checkpoint: a dict with keys weights, step"):
        load_model_weights(tiny_model(), path)


def test_our_checkpoint_of_another_format_version_is_rejected(tmp_path, model_state):
    path = tmp_path / "future.pth"
    torch.save({"format": "3dcseg-rebuild/99", "model": model_state}, path)
    with pytest.raises(UserError, match="not supported"):
        load_model_weights(tiny_model(), path)


# ----- unreadable files --------------------------------------------------------------------

def truncated_copy(path: Path) -> Path:
    data = path.read_bytes()
    cut = path.with_name("cut_" + path.name)
    cut.write_bytes(data[: len(data) // 2])
    return cut


def test_truncated_checkpoint_raises_user_error(tmp_path, model_state):
    path = tmp_path / "last.pth"
    save_checkpoint(path, model_state=model_state, epoch=0, iteration=0, config=None)
    with pytest.raises(UserError, match="cannot read"):
        load_model_weights(tiny_model(), truncated_copy(path))


def test_truncated_legacy_format_checkpoint_raises_user_error(tmp_path, model_state):
    path = tmp_path / "original.pth"
    save_original_checkpoint(path, model_state)
    with pytest.raises(UserError, match="cannot read"):
        load_model_weights(tiny_model(), truncated_copy(path))


@pytest.mark.parametrize("fmt", ["3dcseg", "vmz_caffe2"])
def test_truncated_backbone_file_raises_user_error(tmp_path, fmt):
    path = write_backbone_file(tmp_path / "backbone.bin", fmt, encoder_weights())
    with pytest.raises(UserError, match="cannot read"):
        load_backbone_weights(tiny_encoder(), truncated_copy(path))


def test_text_file_raises_user_error(tmp_path):
    path = tmp_path / "notes.pth"
    path.write_text("these are not weights\n")
    with pytest.raises(UserError, match="cannot read"):
        load_model_weights(tiny_model(), path)
    with pytest.raises(UserError, match="cannot read"):
        load_backbone_weights(tiny_encoder(), path)


def test_missing_file_raises_user_error(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_model_weights(tiny_model(), tmp_path / "absent.pth")


class RunsShellCommand:
    """Pickles as a call of os.system, the classic malicious-pickle payload."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def test_caffe2_pickle_with_os_system_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "was_run"
    path = tmp_path / "evil.pkl"
    blobs = {"conv1_w": RunsShellCommand(f"touch {marker}")}
    path.write_bytes(pickle.dumps({"blobs": blobs}, protocol=2))
    with pytest.raises(UserError, match="refusing to load .*system"):
        load_backbone_weights(tiny_encoder(), path)
    assert not marker.exists()


def test_caffe2_pickle_with_a_class_off_the_allow_list_is_refused(tmp_path):
    from fractions import Fraction
    path = tmp_path / "odd.pkl"
    path.write_bytes(pickle.dumps({"blobs": {"lr": Fraction(1, 3)}}))
    with pytest.raises(UserError, match="refusing to load .*fractions.Fraction"):
        load_backbone_weights(tiny_encoder(), path)


# ----- backbone files ----------------------------------------------------------------------

@pytest.mark.parametrize("fmt, protocol", [("3dcseg", None), ("vmz_pytorch", None), ("mmaction2", None),
                                           ("vmz_caffe2", 2), ("vmz_caffe2", None), ("vmz_caffe2", 5)])
def test_backbone_file_loads_every_tensor(tmp_path, caplog, fmt, protocol):
    weights = encoder_weights()
    path = write_backbone_file(tmp_path / "backbone.bin", fmt, weights, protocol=protocol)
    encoder = tiny_encoder()
    with caplog.at_level(logging.INFO, logger="network.weights"):
        assert load_backbone_weights(encoder, path) == fmt
    assert_state_equals(encoder.state_dict(), expected_encoder_state(fmt, weights))
    assert ("eps 1e-3" in caplog.text) == (fmt != "3dcseg")


def test_caffe2_blocks_use_the_global_block_index(tmp_path):
    weights = encoder_weights()
    blobs = backbone_file_object("vmz_caffe2", weights)["blobs"]
    path = tmp_path / "csn.pkl"
    path.write_bytes(pickle.dumps({"blobs": blobs}))
    encoder = tiny_encoder()
    load_backbone_weights(encoder, path)
    assert np.array_equal(encoder.layer3[0].conv1.weight.detach().numpy(), blobs["comp_3_conv_1_w"])
    assert np.array_equal(encoder.layer4[0].downsample[0].weight.detach().numpy(),
                          blobs["shortcut_projection_4_w"])


def test_mmaction2_backbone_only_file_without_prefix_loads(tmp_path):
    weights = encoder_weights()
    state = OrderedDict((renamed(key, MMACTION2_RULES), value) for key, value in weights.items())
    path = tmp_path / "ircsn_from_scratch.pth"
    torch.save({"state_dict": state}, path)
    encoder = tiny_encoder()
    assert load_backbone_weights(encoder, path) == "mmaction2"
    assert_state_equals(encoder.state_dict(), expected_encoder_state("mmaction2", weights))


def test_caffe2_training_leftovers_are_ignored(tmp_path):
    weights = encoder_weights()
    obj = backbone_file_object("vmz_caffe2", weights)
    obj["blobs"].update(model_iter=np.array([1000]), lr=np.array([0.01], dtype=np.float32),
                        comp_0_conv_1_w_momentum=np.zeros((WIDTH, WIDTH, 1, 1, 1), np.float32))
    path = tmp_path / "csn.pkl"
    path.write_bytes(pickle.dumps(obj))
    encoder = tiny_encoder()
    load_backbone_weights(encoder, path)
    assert_state_equals(encoder.state_dict(), expected_encoder_state("vmz_caffe2", weights))


def test_caffe2_unknown_blob_is_rejected_by_name(tmp_path):
    obj = backbone_file_object("vmz_caffe2", encoder_weights())
    obj["blobs"]["comp_0_conv_2_middle_w"] = np.zeros(3, np.float32)
    path = tmp_path / "ip_csn.pkl"
    path.write_bytes(pickle.dumps(obj))
    with pytest.raises(UserError, match=r"1 unexpected \(comp_0_conv_2_middle_w\)"):
        load_backbone_weights(tiny_encoder(), path)


def test_caffe2_blob_that_is_not_numeric_is_reported(tmp_path):
    obj = backbone_file_object("vmz_caffe2", encoder_weights())
    obj["blobs"]["conv1_spatbn_relu_s"] = np.array(["not", "numbers"])
    path = tmp_path / "odd.pkl"
    path.write_bytes(pickle.dumps(obj))
    with pytest.raises(UserError, match="bn1.weight: not a tensor but ndarray"):
        load_backbone_weights(tiny_encoder(), path)


def test_checkpoint_entry_that_is_not_a_tensor_is_reported(tmp_path, model_state):
    state = OrderedDict(model_state, **{"encoder.conv1.weight": 3})
    path = tmp_path / "odd.pth"
    save_checkpoint(path, model_state=state, epoch=0, iteration=0, config=None)
    with pytest.raises(UserError, match="encoder.conv1.weight: not a tensor but int"):
        load_model_weights(tiny_model(), path)


@pytest.mark.parametrize("fmt", BACKBONE_FORMATS)
def test_backbone_depth_mismatch_names_both_depths(tmp_path, fmt):
    path = write_backbone_file(tmp_path / "backbone.bin", fmt, encoder_weights())
    with pytest.raises(UserError, match=re.escape("backbone file is ir-CSN with depths (1, 2, 1, 1); "
                                                  "the model has (1, 1, 1, 1)")):
        load_backbone_weights(tiny_encoder(depths=(1, 1, 1, 1)), path)


def test_backbone_missing_and_misshaped_tensors_are_listed_together(tmp_path):
    weights = encoder_weights()
    state = backbone_file_object("vmz_pytorch", weights)
    del state["layer2.1.conv3.0.weight"]
    state["stem.1.bias"] = torch.zeros(WIDTH + 1)
    path = tmp_path / "vmz.pth"
    torch.save(state, path)
    with pytest.raises(UserError) as error:
        load_backbone_weights(tiny_encoder(), path)
    message = str(error.value)
    assert "1 missing (layer2.1.conv3.0.weight)" in message
    assert "bn1.bias: file [9], model [8]" in message


@pytest.mark.parametrize("fmt", BACKBONE_FORMATS)
def test_full_size_key_tables_cover_the_930_encoder_tensors_once(fmt):
    with torch.device("meta"):
        encoder_keys = set(CSNEncoder().state_dict()) - {"mean", "std"}
    table = backbone_key_table(fmt, CSN152_DEPTHS)
    sources = [source for source in table.values() if source is not None]
    assert len(encoder_keys) == 930 and set(table) == encoder_keys
    assert len(sources) == len(set(sources))
    bn_counters = sum(key.endswith("num_batches_tracked") for key in table)
    assert len(sources) == (930 - bn_counters if fmt == "vmz_caffe2" else 930)


def test_full_size_caffe2_table_uses_stage_starts_0_3_11_47():
    table = backbone_key_table("vmz_caffe2", CSN152_DEPTHS)
    assert table["layer2.0.downsample.0.weight"] == "shortcut_projection_3_w"
    assert table["layer3.0.downsample.1.running_var"] == "shortcut_projection_11_spatbn_riv"
    assert table["layer4.2.conv2.weight"] == "comp_49_conv_3_w"


def test_full_size_vmz_pytorch_table_matches_torchvision_videoresnet():
    video = pytest.importorskip("torchvision.models.video.resnet")

    class Depthwise(torch.nn.Conv3d):  # VMZ's Conv3DDepthwise (pt/vmz/models/utils.py)
        def __init__(self, in_planes, out_planes, midplanes=None, stride=1, padding=1):
            super().__init__(in_planes, out_planes, 3, stride=stride, padding=padding,
                             groups=in_planes, bias=False)

        @staticmethod
        def get_downsample_stride(stride):
            return stride, stride, stride

    with torch.device("meta"):
        reference = video.VideoResNet(block=video.Bottleneck, conv_makers=[Depthwise] * 4,
                                      layers=list(CSN152_DEPTHS), stem=video.BasicStem)
    table = backbone_key_table("vmz_pytorch", CSN152_DEPTHS)
    assert set(table.values()) | {"fc.weight", "fc.bias"} == set(reference.state_dict())


# ----- export ------------------------------------------------------------------------------

def test_export_original_has_all_1915_keys_of_the_full_model():
    with torch.device("meta"):
        state = build_saliency_network(CSN152_DEPTHS, 64, 256, 2, bn_mode="train", bn_eps=1e-5,
                                       pixel_mean=PIXEL_MEAN, pixel_std=(1.0, 1.0, 1.0)).state_dict()
    exported = export_original(state, epoch=3, iteration=7)
    model = exported["model"]
    assert (exported["epoch"], exported["iter"]) == (3, 7) and "optimizer" not in exported
    assert len(model) == 1915
    assert sum(key.startswith("encoder.resnet.") for key in model) == 932
    assert list(model["encoder.resnet.fc.weight"].shape) == [400, 2048]
    assert list(model["encoder.conv1_p.weight"].shape) == [64, 1, 7, 7, 7]
    assert list(model["decoders.0.pred5.weight"].shape) == [2, 256, 3, 3, 3]


def test_export_then_load_round_trip_gives_identical_tensors(tmp_path, model_state):
    path = tmp_path / "for_original_code.pth"
    count = save_original_checkpoint(path, model_state, epoch=2, iteration=50)
    exported = torch.load(path, weights_only=True)
    assert count == len(exported["model"]) == len(model_state) + len(
        [key for key in model_state if key.startswith(("encoder.conv1", "encoder.bn1", "encoder.layer"))]) + 9
    assert torch.equal(exported["model"]["encoder.resnet.layer2.1.bn2.running_var"],
                       model_state["encoder.layer2.1.bn2.running_var"])
    model = tiny_model()
    assert load_model_weights(model, path) == "original"
    assert_state_equals(model.state_dict(), model_state)


def test_export_copies_bn1_into_a_separate_resnet_bn1(model_state):
    model = export_original(model_state)["model"]
    assert torch.equal(model["encoder.resnet.bn1.weight"], model["encoder.bn1.weight"])
    assert model["encoder.resnet.bn1.weight"] is not model["encoder.bn1.weight"]
    assert model["encoder.resnet.layer1.0.conv1.weight"] is model["encoder.layer1.0.conv1.weight"]


def test_infer_model_shape_reads_depths_and_widths(model_state):
    assert infer_model_shape(model_state) == {"depths": DEPTHS, "width": WIDTH,
                                              "decoder_width": DECODER_WIDTH, "num_classes": 2}
    with pytest.raises(UserError, match="cannot tell the model's shape"):
        infer_model_shape({"encoder.conv1.weight": torch.zeros(8, 3, 3, 7, 7)})


# ----- convert CLI -------------------------------------------------------------------------

def convert(*args: Path | str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "network.convert_weights", *map(str, args)]
    return subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)


def test_convert_cli_turns_a_caffe2_backbone_into_our_encoder_names(tmp_path):
    weights = encoder_weights()
    source = write_backbone_file(tmp_path / "irCSN.pkl", "vmz_caffe2", weights)
    out = tmp_path / "converted.pth"
    result = convert(source, out)
    assert result.returncode == 0, result.stderr
    assert "vmz_caffe2 backbone" in result.stderr and f"{len(weights)} encoder tensors" in result.stderr
    encoder = tiny_encoder()
    assert load_backbone_weights(encoder, out) == "3dcseg"
    assert_state_equals(encoder.state_dict(), expected_encoder_state("vmz_caffe2", weights))


def test_convert_cli_turns_an_original_checkpoint_into_ours_and_back(tmp_path, model_state):
    source = tmp_path / "bmvc_final.pth"
    torch.save(original_checkpoint(model_state, multi_gpu=True), source)
    ours, original = tmp_path / "ours.pth", tmp_path / "original.pth"
    assert convert(source, ours).returncode == 0
    checkpoint = torch.load(ours, weights_only=True)
    assert (checkpoint["epoch"], checkpoint["iteration"], checkpoint["config"]) == (4, 1234, None)
    model = tiny_model()
    assert load_model_weights(model, ours) == "ours"
    assert_state_equals(model.state_dict(), model_state)
    result = convert(ours, original, "--to", "original")
    assert result.returncode == 0, result.stderr
    model = tiny_model()
    assert load_model_weights(model, original) == "original"
    assert_state_equals(model.state_dict(), model_state)


def test_convert_cli_refuses_to_export_a_backbone_as_an_original_checkpoint(tmp_path):
    source = write_backbone_file(tmp_path / "csn.pth", "3dcseg", encoder_weights())
    result = convert(source, tmp_path / "out.pth", "--to", "original")
    assert result.returncode == 2 and "needs a full-model checkpoint" in result.stderr


def test_convert_cli_exits_2_with_one_line_on_a_bad_file(tmp_path):
    source = tmp_path / "notes.txt"
    source.write_text("not weights")
    result = convert(source, tmp_path / "out.pth")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: cannot read")
    assert not (tmp_path / "out.pth").exists()


def test_a_2d_resnet_state_dict_is_not_taken_for_an_ircsn_backbone(tmp_path):
    from torchvision.models import resnet18
    path = tmp_path / "resnet18.pth"
    torch.save(resnet18().state_dict(), path)
    with pytest.raises(UserError, match="not an ir-CSN backbone file"):
        load_backbone_weights(tiny_encoder(), path)
    with pytest.raises(UserError, match="not a 3DC-Seg model checkpoint"):
        load_model_weights(tiny_model(), path)
