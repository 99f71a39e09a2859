"""Every model variant (model.backbone, model.inter_block, model.refine_block): tiny forward
shapes, full-size names and parameter counts against SPEC §4.2/§4.6 (meta device, no forward),
and checkpoints of one variant refused by another (original-format checkpoints of each loaded
back through `main.py --wts`: tests/e2e/test_variant_checkpoints_through_wts.py)."""

import pytest
import torch

import main
from checkpoints.convert import save_original_checkpoint
from checkpoints.weights import load_model_weights
from network import BACKBONES, INTER_BLOCKS, REFINE_BLOCKS, build_model
from network.csn import CSN152_DEPTHS
from utils.config import ModelConfig
from utils.errors import UserError

from support.data_trees import write_mini_davis
from support.paths import REPO_ROOT, TINY_CONFIG
from support.variants import IDS, VARIANTS, build
from support.weight_files import PIXEL_MEAN


BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def full_size(depths=CSN152_DEPTHS, **variant):
    with torch.device("meta"):
        return build_model(ModelConfig(depths=list(depths), bn_mode="train", pixel_mean=list(PIXEL_MEAN), **variant))


def shapes(module, prefix="") -> dict:
    return {key[len(prefix):]: tuple(value.shape) for key, value in module.state_dict().items()
            if key.startswith(prefix)}


def parameters(module) -> int:
    return sum(parameter.numel() for parameter in module.parameters())


@pytest.mark.parametrize("backbone, inter, refine, decoder_width", VARIANTS, ids=IDS)
def test_tiny_variant_keeps_the_clip_shape(backbone, inter, refine, decoder_width):
    model = build(backbone, inter, refine, decoder_width).eval()
    with torch.no_grad():
        assert model(torch.rand(1, 3, 8, 64, 96)).shape == (1, 2, 8, 64, 96)


def test_ip_csn_keeps_the_clip_length_the_original_stem_grew_to_12():
    encoder = build("csn_ip").encoder.eval()
    with torch.no_grad():
        r5, r4, r3, r2 = encoder(torch.rand(1, 3, 8, 32, 32))
    assert (r2.shape[2], r3.shape[2], r4.shape[2], r5.shape[2]) == (8, 4, 2, 1)
    assert encoder.conv1.padding == (1, 3, 3) and encoder.conv1.kernel_size == (3, 7, 7)


# ----- full size, against SPEC §4.2 (parameter counts there include the unused 400-way fc) ----

@pytest.mark.parametrize("backbone, depths, with_fc", [
    ("csn_ir", (3, 8, 36, 3), 29_703_568), ("csn_ir", (3, 4, 6, 3), 13.1e6),
    ("csn_ip", (3, 8, 36, 3), 33.0e6), ("resnet", (3, 4, 6, 3), 47.0e6),
    ("resnet", (3, 4, 23, 3), 86.1e6), ("resnet", (3, 8, 36, 3), 118.2e6)])
def test_full_size_encoders_have_the_original_parameter_counts(backbone, depths, with_fc):
    with torch.device("meta"):
        encoder = BACKBONES[backbone](depths, 64, 1e-5, PIXEL_MEAN, (1.0, 1.0, 1.0))
    fc = 2048 * 400 + 400
    assert encoder.out_channels == [256, 512, 1024, 2048]
    if isinstance(with_fc, int):
        assert parameters(encoder) + fc == with_fc
    else:
        assert round((parameters(encoder) + fc) / 1e6, 1) == with_fc / 1e6


def test_full_size_ip_csn_block_is_conv1_to_conv4():
    block = shapes(full_size(backbone="csn_ip"), "encoder.layer3.1.")
    expected = {"conv1.weight": (256, 1024, 1, 1, 1), "conv2.weight": (256, 256, 1, 1, 1),
                "conv3.weight": (256, 1, 3, 3, 3), "conv4.weight": (1024, 256, 1, 1, 1)}
    expected.update({f"bn{i}.{field}": () if field == "num_batches_tracked" else (1024 if i == 4 else 256,)
                     for i in range(1, 5) for field in BN})
    assert block == expected


def test_full_size_basic_resnet_ends_in_512_channels_and_the_decoder_follows():
    model = full_size(backbone="resnet_basic", depths=(2, 2, 2, 2))
    assert model.encoder.out_channels == [64, 128, 256, 512]
    assert shapes(model)["encoder.conv1.weight"] == (64, 3, 7, 7, 7)
    assert shapes(model)["decoders.0.GC.conv_l1.weight"] == (256, 512, 1, 7, 1)
    assert shapes(model)["decoders.0.RF2.convFS1.weight"] == (256, 64, 3, 3, 3)


def conv(out, inp, *kernel, bias=True):
    entries = {"weight": (out, inp, *kernel)}
    return entries | ({"bias": (out,)} if bias else {})


def norm(channels, batch=False):
    return {field: () if field == "num_batches_tracked" else (channels,)
            for field in (BN if batch else ("weight", "bias"))}


def flat(**modules) -> dict:
    return {f"{name}.{field}": shape for name, entries in modules.items() for field, shape in entries.items()}


def refine_keys(refine: str, skip: int = 1024, c: int = 256) -> dict:
    """RF4 of the full-size decoder, written out from SPEC §4.6."""
    names = ("convFS1", "convFS2", "convFS3", "convMM1", "convMM2")
    keys = {}
    for name in names:
        inp = skip if name == "convFS1" else c
        parts = {
            "Refine3dLight": {"0": conv(c, inp, 1, 1, 1), "2": conv(c, 1, 3, 3, 3)},
            "Refine3dDG": ({"0": conv(c, inp, 1, 1, 1), "1": conv(c, 1, 3, 3, 3)} if name == "convFS1"
                           else {"0": conv(c, 1, 3, 3, 3)}),
            "Refine3dLightGN": {"0": conv(inp, 1, 3, 3, 3, bias=False), "1": norm(inp),
                                "3": conv(c, inp, 1, 1, 1, bias=False), "4": norm(c)},
            "Refine2plus1d": {"0": conv(2 * c + 32, inp, 1, 3, 3, bias=False), "1": norm(2 * c + 32, batch=True),
                              "3": conv(c, 2 * c + 32, 3, 1, 1, bias=False)},
        }[refine]
        keys.update(flat(**{f"{name}.{index}": entries for index, entries in parts.items()}))
    return keys


@pytest.mark.parametrize("refine", ["Refine3dLight", "Refine3dDG", "Refine3dLightGN", "Refine2plus1d"])
def test_full_size_refine_blocks_have_the_original_names(refine):
    assert shapes(full_size(refine_block=refine), "decoders.0.RF4.") == refine_keys(refine)


def test_full_size_refine_conv_transpose_and_simple_have_the_original_names():
    transpose = shapes(full_size(refine_block="Refine3dConvTranspose"), "decoders.0.RF3.")
    paper = shapes(full_size(), "decoders.0.RF3.")
    assert transpose == paper | flat(conv_t=conv(256, 256, 2, 2, 2))
    simple = shapes(full_size(refine_block="RefineSimple"), "decoders.0.RF4.")
    assert simple == flat(convMM1=conv(256, 1280, 3, 3, 3), convMM2=conv(256, 256, 3, 3, 3))


def test_full_size_inter_blocks_have_the_original_names():
    assert shapes(full_size(inter_block="C3D"), "decoders.0.GC.") == flat(c3d=conv(256, 2048, 3, 3, 3))
    assert shapes(full_size(inter_block="NL"), "decoders.0.GC.") == flat(**{
        "nl.0": conv(256, 2048, 1, 1, 1), "nl.1.g.0": conv(128, 256, 1, 1, 1),
        "nl.1.W.0": conv(256, 128, 1, 1, 1), "nl.1.W.1": norm(256, batch=True),
        "nl.1.theta": conv(128, 256, 1, 1, 1), "nl.1.phi.0": conv(128, 256, 1, 1, 1)})
    atrous = {f"pyramid_layers.{i}.{j}": entries for i in (1, 2, 3) for j, entries in (
        ("0", conv(2048, 32, 1, 3, 3, bias=False)), ("2", norm(2048)),
        ("3", conv(64, 2048, 1, 1, 1, bias=False)), ("5", norm(64)))}
    assert shapes(full_size(inter_block="ASPP"), "decoders.0.GC.") == flat(**{
        "pyramid_layers.0.0": conv(64, 2048, 1, 1, 1, bias=False), "pyramid_layers.0.2": norm(64),
        **atrous, "pyramid_layers.4.conv": conv(64, 2048, 1, 1, 1, bias=False),
        "pyramid_layers.4.gn": norm(64), "conv": conv(256, 320, 1, 1, 1, bias=False), "gn": norm(256)})


def test_full_size_paper_decoder_parts_have_the_spec_counts():
    decoder = full_size().decoders[0]
    counts = {name: parameters(getattr(decoder, name)) for name in ("GC", "convG1", "RF4", "RF3", "RF2")}
    assert {name: round(count / 1e6, 2) for name, count in counts.items()} == {
        "GC": 8.26, "convG1": 1.77, "RF4": 14.16, "RF3": 10.62, "RF2": 8.85}


# ----- block behaviour the original sets explicitly ---------------------------------------

def test_non_local_block_starts_as_the_identity_after_its_projection():
    block = INTER_BLOCKS["NL"](32, 16).train()
    x = torch.rand(2, 32, 2, 4, 6)
    assert torch.equal(block(x), block.nl[0](x))
    assert torch.equal(block.nl[1].W[1].weight, torch.zeros(16))


def test_aspp_convolutions_get_the_original_normal_init():
    torch.manual_seed(0)
    aspp = INTER_BLOCKS["ASPP"](512, 256)
    projection = aspp.pyramid_layers[0][0].weight  # (64, 512, 1, 1, 1): n = 1 * 1 * 64
    atrous = aspp.pyramid_layers[1][0].weight      # (512, 8, 1, 3, 3): n = 1 * 3 * 512
    assert projection.std().item() == pytest.approx((2 / 64) ** 0.5, rel=0.05)
    assert atrous.std().item() == pytest.approx((2 / (3 * 512)) ** 0.5, rel=0.05)


# ----- original-format checkpoints of every variant through main.py --wts ------------------


@pytest.fixture(scope="module")
def one_clip_davis(tmp_path_factory):
    """A DAVIS tree of one 8-frame sequence at 64x64: one window per evaluation."""
    return write_mini_davis(tmp_path_factory.mktemp("davis") / "DAVIS", names=("bear",), num_frames=8,
                            height=64, width=64)


@pytest.mark.parametrize("file_variant, config_variant, message", [
    ({"backbone": "csn_ip"}, {}, "checkpoint has conv4 in encoder blocks (csn_ip); config builds csn_ir (model.backbone)"),
    ({}, {"backbone": "resnet"}, "checkpoint has a depthwise 3x3x3 conv2 in encoder blocks (csn_ir); config builds resnet"),
    ({"inter_block": "C3D"}, {}, "checkpoint has c3d in decoders.0.GC (C3D); config builds GC3d (model.inter_block)"),
    ({"refine_block": "Refine3dLight"}, {"refine_block": "Refine3dDG"},
     "(Refine3dLight); config builds Refine3dDG (model.refine_block)"),
])
def test_checkpoint_of_another_variant_names_both(tmp_path, file_variant, config_variant, message):
    names = {"backbone": "csn_ir", "inter_block": "GC3d", "refine_block": "Refine3d"}
    file_names, config_names = names | file_variant, names | config_variant
    state = build(file_names["backbone"], file_names["inter_block"], file_names["refine_block"]).state_dict()
    path = tmp_path / "other.pth"
    save_original_checkpoint(path, state)
    model = build(config_names["backbone"], config_names["inter_block"], config_names["refine_block"])
    with pytest.raises(UserError) as error:
        load_model_weights(model, path)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_variant_mismatch_through_main_is_one_error_line(tmp_path, monkeypatch, capsys, one_clip_davis):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "ip.pth"
    save_original_checkpoint(path, build("csn_ip").state_dict())
    assert main.main(["-c", str(TINY_CONFIG), "--task", "eval", "--wts", str(path),
                      f"data.test_root={one_clip_davis}"]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"error: cannot load {path} (original 3DC-Seg checkpoint): checkpoint has conv4 in encoder "
        f"blocks (csn_ip); config builds csn_ir (model.backbone)")


@pytest.mark.parametrize("overrides, message", [
    (["model.inter_block=ASPP"], "model.inter_block ASPP needs model.decoder_width a multiple of 64"),
    (["model.refine_block=Refine3dLightGN"], "model.refine_block Refine3dLightGN needs model.decoder_width"),
    (["model.refine_block=Refine3dConvTranspose", "input.clip_length=4", "inference.clip_overlap=1"],
     "input.clip_length must be a multiple of 8"),
    (["model.refine_block=Refine3D"], "model.refine_block = 'Refine3D'; choose from Refine3d"),
])
def test_block_width_rules_are_user_errors_naming_the_keys(tmp_path, monkeypatch, one_clip_davis, overrides,
                                                          message, capsys):
    monkeypatch.chdir(tmp_path)
    args = ["-c", str(TINY_CONFIG), "--task", "eval", "--wts", str(tmp_path / "none.pth"),
            f"data.test_root={one_clip_davis}", *overrides]
    (tmp_path / "none.pth").write_bytes(b"")
    assert main.main(args) == 2
    assert message in capsys.readouterr().err


# ----- cost table (python -m tasks.benchmark --variants) ------------------------------------

def test_variant_cost_table_covers_every_name_and_counts_the_paper_model():
    from tasks.benchmark import VARIANTS, variant_costs
    from utils.config import load_config
    named = {key: {changes.get(key) for changes in VARIANTS.values()} - {None}
             for key in ("backbone", "inter_block", "refine_block")}
    assert named["backbone"] | {"csn_ir"} == set(BACKBONES)
    assert named["inter_block"] | {"GC3d"} == set(INTER_BLOCKS)
    assert named["refine_block"] | {"Refine3d"} == set(REFINE_BLOCKS)
    chosen = ("paper: csn_ir-152 + GC3d + Refine3d", "refine Refine3dLight")
    rows = variant_costs(load_config(REPO_ROOT / "run_configs" / "bmvc_final.yaml").model, 8, 64, 64,
                         {name: VARIANTS[name] for name in chosen})
    by_name = {row["variant"]: row for row in rows}
    paper = by_name["paper: csn_ir-152 + GC3d + Refine3d"]
    assert (paper["params_m"], paper["encoder_params_m"], paper["decoder_params_m"]) == (74.32, 28.88, 45.44)
    assert by_name["refine Refine3dLight"]["gflops"] < paper["gflops"] / 5
