"""ir-CSN backbone files in the four published formats (checkpoints/backbone_formats.py)."""

import logging
import pickle
import re
from collections import OrderedDict

import numpy as np
import pytest
import torch
from torchvision.models.video import resnet as video

from checkpoints.backbone_formats import BACKBONE_FORMATS, backbone_key_table
from network.csn import CSN152_DEPTHS, csn_ip, csn_ir
from checkpoints.weights import (
    load_backbone_weights, load_model_weights)
from checkpoints.training import save_checkpoint
from utils.errors import UserError

from support.weight_files import (MMACTION2_RULES, WIDTH, assert_state_equals, backbone_file_object, encoder_weights,
                                  expected_encoder_state, renamed, tiny_encoder, tiny_model, write_backbone_file)


# ----- backbone files ----------------------------------------------------------------------

@pytest.mark.parametrize("fmt, protocol", [("3dcseg", None), ("vmz_pytorch", None), ("mmaction2", None),
                                           ("vmz_caffe2", 2), ("vmz_caffe2", None), ("vmz_caffe2", 5)])
def test_backbone_file_loads_every_tensor(tmp_path, caplog, fmt, protocol):
    weights = encoder_weights()
    path = write_backbone_file(tmp_path / "backbone.bin", fmt, weights, protocol=protocol)
    encoder = tiny_encoder()
    with caplog.at_level(logging.INFO, logger="checkpoints.weights"):
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
    obj["blobs"]["comp_0_conv_5_w"] = np.zeros(3, np.float32)
    path = tmp_path / "odd_csn.pkl"
    path.write_bytes(pickle.dumps(obj))
    with pytest.raises(UserError, match=r"1 unexpected \(comp_0_conv_5_w\)"):
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
        encoder_keys = set(csn_ir().state_dict()) - {"mean", "std"}
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


# ----- ip-CSN backbone files -----------------------------------------------------------------

@pytest.mark.parametrize("fmt", BACKBONE_FORMATS)
def test_ip_csn_backbone_file_loads_every_tensor(tmp_path, fmt):
    weights = encoder_weights(backbone=csn_ip)
    path = write_backbone_file(tmp_path / "ipcsn.bin", fmt, weights, block="ip")
    encoder = tiny_encoder(backbone=csn_ip)
    assert load_backbone_weights(encoder, path) == fmt
    expected = expected_encoder_state(fmt, weights)
    assert_state_equals(encoder.state_dict(), expected)


@pytest.mark.parametrize("fmt", BACKBONE_FORMATS)
def test_ip_csn_file_for_an_ir_csn_model_names_both(tmp_path, fmt):
    path = write_backbone_file(tmp_path / "ipcsn.bin", fmt, encoder_weights(backbone=csn_ip), block="ip")
    with pytest.raises(UserError, match=re.escape("backbone file holds ip-CSN blocks (csn_ip); "
                                                  "config builds csn_ir (model.backbone)")):
        load_backbone_weights(tiny_encoder(), path)


def test_full_size_ip_caffe2_table_uses_the_vmz_ip_names():
    table = backbone_key_table("vmz_caffe2", CSN152_DEPTHS, block="ip")
    assert table["layer1.0.conv2.weight"] == "comp_0_conv_2_middle_w"
    assert table["layer1.0.bn3.running_var"] == "comp_0_spatbn_2_riv"
    assert table["layer4.2.conv4.weight"] == "comp_49_conv_3_w"


def test_resnet_backbone_in_a_vmz_format_is_refused():
    with pytest.raises(UserError, match="hold CSN encoders only"):
        backbone_key_table("vmz_pytorch", CSN152_DEPTHS, block="bottleneck")
