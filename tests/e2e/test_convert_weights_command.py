"""`python -m network.convert_weights` in a subprocess: backbone files and original checkpoints
converted into ours and back, refusals with exit status 2 and one line, and its former name."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from checkpoints.weights import load_backbone_weights, load_model_weights

from support.paths import REPO_ROOT
from support.weight_files import (assert_state_equals, encoder_weights, expected_encoder_state, original_checkpoint,
                                  tiny_encoder, tiny_model, write_backbone_file)


def convert(*args: Path | str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "network.convert_weights", *map(str, args)]
    return subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
def test_convert_cli_exits_2_with_one_line_on_a_bad_file(tmp_path):
    source = tmp_path / "notes.txt"
    source.write_text("not weights")
    result = convert(source, tmp_path / "out.pth")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: cannot read")
    assert not (tmp_path / "out.pth").exists()


@pytest.mark.slow
@pytest.mark.parametrize("module", ["checkpoints.convert", "network.convert_weights"])
def test_convert_cli_runs_under_its_name_and_its_former_name(tmp_path, model_state, module):
    source, out = tmp_path / "bmvc_final.pth", tmp_path / "ours.pth"
    torch.save(original_checkpoint(model_state), source)
    result = subprocess.run([sys.executable, "-m", module, str(source), str(out)], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    model = tiny_model()
    assert load_model_weights(model, out) == "ours"
    assert_state_equals(model.state_dict(), model_state)


@pytest.mark.slow
def test_convert_cli_refuses_to_export_a_backbone_as_an_original_checkpoint(tmp_path):
    source = write_backbone_file(tmp_path / "csn.pth", "3dcseg", encoder_weights())
    result = convert(source, tmp_path / "out.pth", "--to", "original")
    assert result.returncode == 2 and "needs a full-model checkpoint" in result.stderr
