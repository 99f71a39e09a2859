"""Every CUDA path of inference and training, run on the GPU (`pytest -m cuda`; the `cuda`
parameters skip without one). Each test body also runs on the CPU in the ordinary suite, so the
test itself is exercised everywhere; the CPU's stated tolerances are the same or tighter.

Stated agreements (fraction of mask pixels equal; tiny random networks, whose probabilities sit
near 0.5, are the hard case): fp32 on CUDA (TF32 convolutions) vs the CPU's fp32 >= 99.5 %;
fp16 >= 99 %; bf16 >= 98 % (99.6 % on the CPU); channels_last, batch size 4 vs 1 and torch.compile vs eager on the
same device >= 99.9 % (identical files on the CPU for batch size and threads). Resume after
SIGTERM vs an uninterrupted run: weights within 1e-4 (identical on the CPU). torch.export vs
eager: logits within 1e-3.
"""

import os
import signal
import socket

import numpy as np
import pytest
import torch
from PIL import Image

import main
from datasets.davis import index_davis
from inference_handlers.inference.engine import SaliencyEngine
from inference_handlers.inference.runner import run_inference
from loss import LOSSES
from network import build_model
from tasks.distributed import destroy_process_group, init_process_group
from network.exported import dynamic_shapes, example_clip
from checkpoints.training import Progress
from tasks.train import Training, build_network, check_step, train_step, wrap_for_processes
from utils.config import InferenceConfig, InputConfig, load_config

from support.data_trees import write_mini_davis
from support.paths import TINY_CONFIG

CUDA_MISSING = not torch.cuda.is_available()
CPU = pytest.param("cpu", id="cpu")
CUDA = pytest.param("cuda", id="cuda", marks=[pytest.mark.cuda,
                                              pytest.mark.skipif(CUDA_MISSING, reason="needs a CUDA GPU")])
DEVICES = [CPU, CUDA]
MASK_AGREEMENT = {"fp32": 0.995, "fp16": 0.99, "bf16": 0.98}  # vs the CPU's fp32 masks
SAME_DEVICE_AGREEMENT = 0.999


def tiny_network(device: str) -> torch.nn.Module:
    """The tiny model with random weights, its last layer scaled and shifted so that its masks
    are about half foreground and depend on the frames (unchanged, it says foreground everywhere)."""
    torch.manual_seed(0)
    network = build_model(load_config(TINY_CONFIG).model).eval()
    last = network.decoders[0].pred2
    with torch.no_grad():
        last.weight.mul_(100)
        last.bias.mul_(100)
        logits = network(torch.rand(1, 3, 8, 64, 128, generator=torch.Generator().manual_seed(1)))
        last.bias[1] -= (logits[:, 1] - logits[:, 0]).median()
    return network.to(device)


def engine_on(device: str, network, prefetch_frames=0, **inference) -> SaliencyEngine:
    settings = InferenceConfig(clip_overlap=3, tail="repeat_first", prefetch_frames=prefetch_frames, **inference)
    return SaliencyEngine(network, settings, InputConfig(clip_length=8, test_resize="unchanged", test_size=[64]),
                          torch.device(device))


def files_of(folder) -> dict:
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def masks_of(folder) -> dict:
    return {str(path.relative_to(folder)): np.array(Image.open(path)) for path in sorted(folder.glob("*/*.png"))}


def agreement(masks, reference) -> float:
    assert masks.keys() == reference.keys() and masks
    equal = sum(int((masks[name] == reference[name]).sum()) for name in reference)
    return equal / sum(mask.size for mask in reference.values())


@pytest.fixture(scope="module")
def sequences(tmp_path_factory):
    return index_davis(write_mini_davis(tmp_path_factory.mktemp("data") / "DAVIS", num_frames=13), "2017/val.txt")


def infer(engine, sequences, folder, write_queue=0) -> dict:
    run_inference(engine, sequences, InferenceConfig(write_queue=write_queue), results_dir=folder, show_progress=False)
    return masks_of(folder)


@pytest.fixture(scope="module")
def cpu_fp32_masks(sequences, tmp_path_factory):
    return infer(engine_on("cpu", tiny_network("cpu")), sequences, tmp_path_factory.mktemp("cpu_fp32"))


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
@pytest.mark.parametrize("device", DEVICES)
def test_masks_at_each_precision_agree_with_the_cpus_fp32_masks(device, precision, sequences, tmp_path,
                                                               cpu_fp32_masks):
    masks = infer(engine_on(device, tiny_network(device), precision=precision), sequences, tmp_path)
    assert agreement(masks, cpu_fp32_masks) >= MASK_AGREEMENT[precision]


@pytest.mark.parametrize("device", DEVICES)
def test_batch_size_and_reader_writer_threads_do_not_change_the_results(device, sequences, tmp_path):
    network = tiny_network(device)
    infer(engine_on(device, network), sequences, tmp_path / "plain")
    infer(engine_on(device, network, prefetch_frames=4), sequences, tmp_path / "threads", write_queue=4)
    infer(engine_on(device, network, batch_size=4, prefetch_frames=4), sequences, tmp_path / "batched",
          write_queue=4)
    assert files_of(tmp_path / "threads") == files_of(tmp_path / "plain")
    if device == "cpu":
        assert files_of(tmp_path / "batched") == files_of(tmp_path / "plain")
    else:  # cuDNN may pick other kernels for another batch size
        assert agreement(masks_of(tmp_path / "batched"), masks_of(tmp_path / "plain")) >= SAME_DEVICE_AGREEMENT


@pytest.mark.parametrize("device", DEVICES)
def test_the_engine_keeps_its_buffers_for_the_next_sequence_on_the_cpu_only(device, sequences, tmp_path):
    """On a GPU the caching allocator reuses the memory, which training can then use between
    validations; on the CPU the engine keeps it, and its pools, to spare page faults."""
    engine = engine_on(device, tiny_network(device), prefetch_frames=2)
    infer(engine, sequences, tmp_path / "out", write_queue=2)
    on_cpu = device == "cpu"
    assert set(engine.buffers) == ({"clips", "probabilities"} if on_cpu else set())
    assert (engine.frame_pool.take() is not None) == on_cpu and (engine.mean_pool.take() is not None) == on_cpu


@pytest.mark.parametrize("device", DEVICES)
def test_frames_prepared_on_the_device_give_the_files_of_frames_prepared_on_the_host(device, sequences, tmp_path):
    """CUDA prepares frames on the device (uint8 copied, converted there), the CPU on the host;
    each is checked against the other path on the same device."""
    network = tiny_network(device)
    default = engine_on(device, network, prefetch_frames=2)
    other = engine_on(device, network, prefetch_frames=2)
    other.prepare_on_device = not default.prepare_on_device
    assert default.prepare_on_device == (device == "cuda")
    infer(default, sequences, tmp_path / "default")
    infer(other, sequences, tmp_path / "other")
    assert files_of(tmp_path / "other") == files_of(tmp_path / "default")


@pytest.mark.parametrize("device", DEVICES)
def test_channels_last_masks_agree_with_the_default_layout(device, sequences, tmp_path):
    plain = infer(engine_on(device, tiny_network(device)), sequences, tmp_path / "plain")
    channels_last = infer(engine_on(device, tiny_network(device), channels_last=True), sequences,
                          tmp_path / "channels_last")
    assert agreement(channels_last, plain) >= SAME_DEVICE_AGREEMENT


@pytest.mark.cuda
@pytest.mark.skipif(CUDA_MISSING, reason="needs a CUDA GPU")
def test_compiled_network_masks_agree_with_eager_on_cuda(sequences, tmp_path, caplog):
    eager = infer(engine_on("cuda", tiny_network("cuda")), sequences, tmp_path / "eager")
    engine = engine_on("cuda", tiny_network("cuda"), compile=True)
    compiled = infer(engine, sequences, tmp_path / "compiled")
    assert engine.compiled is not None and "torch.compile failed" not in caplog.text  # no fallback to eager
    assert agreement(compiled, eager) >= SAME_DEVICE_AGREEMENT


def training_on(device: str, precision: str, network=None, model=None, loss_fn=LOSSES["ce"]) -> Training:
    torch.manual_seed(0)
    network = network if network is not None else build_network(load_config(TINY_CONFIG), torch.device(device), None)
    optimizer = torch.optim.Adam(network.parameters(), lr=1e-3)
    return Training(model=model if model is not None else network, network=network, optimizer=optimizer,
                    scheduler=torch.optim.lr_scheduler.LambdaLR(optimizer, lambda iteration: 1.0),
                    scaler=torch.amp.GradScaler(device, enabled=precision == "fp16"), loss_fn=loss_fn,
                    device=torch.device(device), precision=precision, clip_grad_norm=0.0, writer=None,
                    model_dir=None, iterations_per_epoch=1)


def clip_batch() -> dict:
    """Two 8 x 128 x 128 clips: at 64 x 64 (2 x 2 at 1/32) the CPU's bf16 backward of the decoder's
    1 x 7 x 1 convolutions gives non-finite gradients (PyTorch 2.14.1, oneDNN)."""
    generator = torch.Generator().manual_seed(0)
    return {"images": torch.rand(2, 3, 8, 128, 128, generator=generator),
            "masks": (torch.rand(2, 1, 8, 128, 128, generator=generator) > 0.7).to(torch.uint8)}


@pytest.mark.filterwarnings("ignore:Detected call of:UserWarning")  # the scheduler steps on skipped steps too
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
@pytest.mark.parametrize("device", DEVICES)
def test_training_steps_and_a_step_with_non_finite_gradients_is_skipped_counted_and_logged(device, precision, caplog):
    caplog.set_level("INFO")
    cross_entropy, overflow = LOSSES["ce"], {"on": False}

    def loss_fn(logits, masks):  # x 1e35, then x the GradScaler's 65536: infinite gradients
        return cross_entropy(logits, masks) * (1e35 if overflow["on"] else 1.0)

    training = training_on(device, precision, loss_fn=loss_fn)
    cfg, progress = load_config(TINY_CONFIG, [f"train.precision={precision}"]), Progress()
    for _ in range(2):
        before = [p.detach().clone() for p in training.network.parameters()]
        loss, logits, skipped = train_step(training, clip_batch())
        assert torch.isfinite(loss) and logits.shape == (2, 2, 8, 128, 128)
        changed = any(not torch.equal(p, b) for p, b in zip(training.network.parameters(), before))
        if (device, precision) == ("cpu", "bf16"):  # oneDNN's bf16 backward (PyTorch 2.14.1) now and then
            assert changed != skipped  # gives a non-finite gradient (1 of 45 fresh networks): skipped
        else:
            assert changed and not skipped
        assert all(bool(torch.isfinite(p).all()) for p in training.network.parameters())
    if precision == "bf16":  # a NaN gradient of a finite loss (as oneDNN's above): skipped too
        first = next(training.network.parameters())
        first.register_hook(lambda grad: grad * float("nan"))
        before = [p.detach().clone() for p in training.network.parameters()]
        loss, _, skipped = train_step(training, clip_batch())
        progress.iteration = 3
        check_step(float(loss), skipped, progress, cfg)
        assert skipped and torch.isfinite(loss) and progress.skipped_steps == 1
        assert all(torch.equal(p, b) for p, b in zip(training.network.parameters(), before))
        assert "iteration 3: bf16 step skipped, its gradients were not finite" in caplog.text
        return
    overflow["on"] = True
    before = [p.detach().clone() for p in training.network.parameters()]
    scale = training.scaler.get_scale()
    _, _, skipped = train_step(training, clip_batch())
    progress.iteration = 3
    check_step(float("inf"), skipped, progress, cfg)
    assert skipped and progress.skipped_steps == 1 and training.scaler.get_scale() < scale
    assert all(torch.equal(p, b) for p, b in zip(training.network.parameters(), before))
    assert "iteration 3: fp16 step skipped" in caplog.text


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("device", DEVICES)
def test_bn_mode_sync_trains_synchronised_batchnorm_in_a_one_process_group(device, monkeypatch):
    """NCCL and SyncBatchNorm on CUDA; on the CPU the same body runs gloo with bn_mode train
    (SyncBatchNorm needs CUDA)."""
    for name, value in {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1",
                        "MASTER_PORT": str(free_port())}.items():
        monkeypatch.setenv(name, value)
    process_device = init_process_group(torch.device(device))
    try:
        assert torch.distributed.get_backend() == ("nccl" if device == "cuda" else "gloo")
        cfg = load_config(TINY_CONFIG, [f"model.bn_mode={'sync' if device == 'cuda' else 'train'}"])
        network = build_network(cfg, process_device, None)
        model = wrap_for_processes(network, cfg, process_device)
        norms = [m for m in model.module.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        assert norms and all(isinstance(m, torch.nn.SyncBatchNorm) == (device == "cuda") for m in norms)
        running_mean = norms[0].running_mean.clone()
        loss, _, _ = train_step(training_on(device, "fp32", network=model.module, model=model), clip_batch())
        assert torch.isfinite(loss) and not torch.equal(norms[0].running_mean, running_mean)
        assert all(torch.isfinite(p.grad).all() for p in model.module.parameters() if p.grad is not None)
    finally:
        destroy_process_group()


@pytest.mark.parametrize("device", DEVICES)
def test_resume_after_sigterm_equals_an_uninterrupted_run(device, tmp_path, monkeypatch):
    data = write_mini_davis(tmp_path / "DAVIS", num_frames=8, height=32, width=64)
    args = ["-c", str(TINY_CONFIG), "--task", "train", f"data.train_root={data}", f"data.test_root={data}",
            "data.clips_per_sequence=3", "train.epochs=2", "train.validate_every=0", f"device={device}"]
    monkeypatch.chdir(tmp_path)
    assert main.main(args + ["name=whole"]) == 0
    calls, cross_entropy = {"count": 0}, LOSSES["ce"]

    def loss_then_sigterm(logits, masks):  # SIGTERM during step 3 of 6
        calls["count"] += 1
        if calls["count"] == 3:
            os.kill(os.getpid(), signal.SIGTERM)
        return cross_entropy(logits, masks)

    with monkeypatch.context() as patch:
        patch.setitem(LOSSES, "ce", loss_then_sigterm)
        assert main.main(args + ["name=stopped"]) == 128 + signal.SIGTERM
    assert main.main(args + ["name=stopped"]) == 0
    whole, resumed = (torch.load(f"saved_models/{name}/last.pth", weights_only=True) for name in ("whole", "stopped"))
    assert resumed["iteration"] == whole["iteration"] == 6
    for key, value in whole["model"].items():
        assert torch.allclose(resumed["model"][key].float(), value.float(), atol=1e-4, rtol=0), key


@pytest.mark.slow  # torch.export, about 5 s on the CPU
@pytest.mark.parametrize("device", DEVICES)
@torch.no_grad()
def test_exported_program_matches_eager_at_a_new_size(device, tmp_path):
    model = tiny_network(device)
    program = torch.export.export(model, (example_clip(8).to(device),), dynamic_shapes=dynamic_shapes())
    torch.export.save(program, tmp_path / "tiny.pt2")
    clip = torch.rand(3, 3, 8, 96, 160, device=device)  # batch and size differ from the traced example
    exported = torch.export.load(tmp_path / "tiny.pt2").module()(clip)
    assert exported.device.type == device
    assert torch.allclose(exported, model(clip), atol=1e-3)
