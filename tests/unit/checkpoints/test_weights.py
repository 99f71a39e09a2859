"""Full-model weights: our and the original 3DC-Seg checkpoint formats, unreadable and unsafe
files, export to the original format (the command line `python -m network.convert_weights`:
tests/e2e/test_convert_weights_command.py)."""

import dataclasses
import logging
import os
import pickle
from collections import OrderedDict
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from checkpoints.convert import export_original, save_original_checkpoint
from checkpoints.state_dicts import meta_tensors, strip_prefixes
from checkpoints.training import save_checkpoint
from checkpoints.variants import infer_model_shape
from checkpoints.weights import load_backbone_weights, load_model, load_model_weights, load_weights
from network.csn import CSN152_DEPTHS
from network import build_model
from tasks.train import build_network as build_training_network
from utils.config import ModelConfig
from utils.errors import UserError

from support.weight_files import (DECODER_WIDTH, DEPTHS, PIXEL_MEAN, WIDTH, assert_state_equals, encoder_weights,
                                  original_checkpoint, random_like, tiny_encoder, tiny_model, write_backbone_file)


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
    with caplog.at_level(logging.INFO, logger="checkpoints.weights"):
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


# ----- the --wts path: built on the meta device, the file read once ---------------------------

def tiny_config(**changes) -> ModelConfig:
    return dataclasses.replace(ModelConfig(depths=list(DEPTHS), width=WIDTH, decoder_width=DECODER_WIDTH,
                                           pixel_mean=list(PIXEL_MEAN)), **changes)


@pytest.mark.parametrize("kind", ["original", "ours"])
def test_load_model_holds_every_tensor_of_the_file_and_predicts_as_a_copy_into_a_built_model(
        tmp_path, model_state, kind):
    cfg = tiny_config(bn_mode="frozen")
    model_state = OrderedDict((key, value.abs() + 0.5 if key.endswith(("running_var", "std")) else value)
                              for key, value in model_state.items())  # a network that computes numbers
    path = tmp_path / "weights.pth"
    if kind == "original":
        torch.save(original_checkpoint(model_state), path)
    else:
        save_checkpoint(path, model_state=model_state, epoch=1, iteration=2, config={"model": dataclasses.asdict(cfg)})
    model, checkpoint = load_model(cfg, path)
    assert checkpoint.kind == kind and meta_tensors(model) == []
    assert_state_equals(model.state_dict(), model_state)  # BN running statistics, encoder mean / std included
    assert not model.encoder.bn1.weight.requires_grad and model.decoders[0].pred2.weight.requires_grad
    reference = build_model(cfg)
    load_model_weights(reference, path)
    clip = torch.rand(1, 3, 8, 64, 64)
    with torch.no_grad():
        logits = model.eval()(clip)
        assert torch.isfinite(logits).all() and torch.equal(logits, reference.eval()(clip))


def test_load_model_reads_the_file_once_memory_mapped_and_safely(tmp_path, model_state, monkeypatch):
    path = tmp_path / "last.pth"
    save_checkpoint(path, model_state=model_state, epoch=1, iteration=2, config=None,
                    training_state={"progress": {"epoch": 1, "finished": False}})
    calls = []
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda *args, **kwargs: calls.append(kwargs) or real_load(*args, **kwargs))
    build_training_network(SimpleNamespace(model=tiny_config(), train=SimpleNamespace(init_weights="")),
                           torch.device("cpu"), str(path))
    assert [(call["mmap"], call["weights_only"]) for call in calls] == [(True, True)]


def test_our_checkpoint_of_another_configuration_names_the_keys(tmp_path, model_state):
    path = tmp_path / "last.pth"
    save_checkpoint(path, model_state=model_state, epoch=1, iteration=2,
                    config={"model": dataclasses.asdict(tiny_config(inter_block="C3D"))})
    with pytest.raises(UserError) as error:
        load_model(tiny_config(), path)
    assert str(error.value) == (f"cannot load {path} (our checkpoint): checkpoint was trained with "
                                f"model.inter_block = C3D; config builds GC3d (model.inter_block)")


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


# ----- export ------------------------------------------------------------------------------

def test_export_original_has_all_1915_keys_of_the_full_model():
    with torch.device("meta"):
        state = build_model(ModelConfig(depths=list(CSN152_DEPTHS), bn_mode="train",
                                        pixel_mean=list(PIXEL_MEAN))).state_dict()
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
    assert infer_model_shape(model_state) == {
        "depths": DEPTHS, "width": WIDTH, "decoder_width": DECODER_WIDTH, "num_classes": 2,
        "backbone": "csn_ir", "inter_block": "GC3d", "refine_block": "Refine3d"}
    with pytest.raises(UserError, match="cannot tell the model's shape"):
        infer_model_shape({"encoder.conv1.weight": torch.zeros(8, 3, 3, 7, 7)})


def test_a_2d_resnet_state_dict_is_not_taken_for_an_ircsn_backbone(tmp_path):
    from torchvision.models import resnet18
    path = tmp_path / "resnet18.pth"
    torch.save(resnet18().state_dict(), path)
    with pytest.raises(UserError, match="not a CSN or 3D ResNet backbone file"):
        load_backbone_weights(tiny_encoder(), path)
    with pytest.raises(UserError, match="not a 3DC-Seg model checkpoint"):
        load_model_weights(tiny_model(), path)
