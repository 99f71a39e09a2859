"""An original-format checkpoint of every model variant (backbone, inter block, refine block) loads
back into the variant and evaluates through `main.py --task eval --wts`."""

import logging

import pytest

import main
from checkpoints.convert import save_original_checkpoint
from checkpoints.weights import load_model_weights

from support.data_trees import write_mini_davis
from support.paths import TINY_CONFIG
from support.variants import IDS, VARIANTS, build
from support.weight_files import assert_state_equals, random_like


def variant_overrides(backbone, inter, refine, decoder_width):
    return [f"model.backbone={backbone}", f"model.inter_block={inter}", f"model.refine_block={refine}",
            f"model.decoder_width={decoder_width}"]


@pytest.fixture(scope="module")
def one_clip_davis(tmp_path_factory):
    """A DAVIS tree of one 8-frame sequence at 64x64: one window per evaluation."""
    return write_mini_davis(tmp_path_factory.mktemp("davis") / "DAVIS", names=("bear",), num_frames=8,
                            height=64, width=64)


@pytest.mark.slow
@pytest.mark.parametrize("backbone, inter, refine, decoder_width", VARIANTS, ids=IDS)
def test_original_checkpoint_of_each_variant_loads_through_wts(
        tmp_path, monkeypatch, caplog, one_clip_davis, backbone, inter, refine, decoder_width):
    state = random_like(build(backbone, inter, refine, decoder_width).state_dict(), seed=1)
    path = tmp_path / "original.pth"
    save_original_checkpoint(path, state, epoch=2, iteration=9)
    model = build(backbone, inter, refine, decoder_width)
    assert load_model_weights(model, path) == "original"
    assert_state_equals(model.state_dict(), state)

    monkeypatch.chdir(tmp_path)
    caplog.set_level(logging.INFO)
    args = ["-c", str(TINY_CONFIG), "--task", "eval", "--wts", str(path), f"data.test_root={one_clip_davis}",
            *variant_overrides(backbone, inter, refine, decoder_width)]
    assert main.main(args) == 0
    assert "loaded original 3DC-Seg checkpoint" in caplog.text and "epoch 2, iteration 9" in caplog.text
