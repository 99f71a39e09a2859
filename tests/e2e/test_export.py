"""`python -m tasks.export`: the exported network (torch.export and ONNX) computes what the eager
model computes, at sizes other than the one it was traced with."""

import onnxruntime
import pytest
import torch

from checkpoints.training import save_checkpoint
from network import build_model
from tools import export
from utils.config import load_config, to_dict

from support.paths import TINY_CONFIG


pytestmark = pytest.mark.slow  # torch.export and ONNX export


@pytest.fixture
def tiny_checkpoint(tmp_path):
    cfg = load_config(TINY_CONFIG)
    torch.manual_seed(0)
    model = build_model(cfg.model)
    path = tmp_path / "tiny.pth"
    save_checkpoint(path, model_state=model.state_dict(), epoch=0, iteration=0, config=to_dict(cfg))
    return model.eval(), path


@torch.no_grad()
def test_exported_program_and_onnx_match_eager_at_new_sizes(tmp_path, monkeypatch, capfd, tiny_checkpoint):
    model, weights = tiny_checkpoint
    monkeypatch.chdir(tmp_path)
    assert export.main(["-c", str(TINY_CONFIG), "--wts", str(weights), "--check-height", "64",
                        "--check-width", "96"]) == 0
    console = capfd.readouterr().err  # the export's own lines only: no exporter passes, no temp-name warning
    assert "exporting results/tiny/export/tiny.onnx" in console
    assert not [line for line in console.splitlines() if "onnxscript" in line or "onnx_ir" in line]
    assert "Expect archive file" not in console and "resolved config" not in console
    out_dir = tmp_path / "results/tiny/export"
    clip = torch.rand(3, 3, 8, 96, 160)  # batch and size differ from the traced example
    expected = model(clip)

    program = torch.export.load(out_dir / "tiny.pt2").module()
    assert torch.allclose(program(clip), expected, atol=1e-4)

    session = onnxruntime.InferenceSession(str(out_dir / "tiny.onnx"), providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {session.get_inputs()[0].name: clip.numpy()})
    assert torch.allclose(torch.from_numpy(logits), expected, atol=1e-4)


def test_check_size_must_be_a_multiple_of_32(tmp_path, capsys, tiny_checkpoint):
    _, weights = tiny_checkpoint
    assert export.main(["-c", str(TINY_CONFIG), "--wts", str(weights), "--check-height", "50"]) == 2
    assert "multiples of 32" in capsys.readouterr().err
