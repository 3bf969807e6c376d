"""What a GPU or a notebook gets, pinned on any machine: the precision rule by the device's own capability (faked
here), the CUDA switches set for a run and restored after it, and nothing process-wide left changed by a training
(matplotlib's backend, torch's random state). The GPU itself is exercised by tests/test_gpu.py (pytest -m gpu)."""

import copy
from dataclasses import replace

import matplotlib
import pytest
import torch

import device
import gan
from conftest import config, quiet


def fake_gpus(monkeypatch, capabilities: dict[int, tuple[int, int]], current: int = 0) -> None:
    """CUDA devices 0, 1, ... with these compute capabilities; torch.cuda answers for the one asked about."""
    asked = lambda d=None: capabilities[current if d is None else torch.device("cuda", d).index  # noqa: E731
                                        if isinstance(d, int) else d.index if d.index is not None else current]
    monkeypatch.setattr(torch.cuda, "get_device_capability", asked)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: current)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)  # what emulation says: not asked


@pytest.mark.parametrize("capability, expected", [
    ((7, 5), "fp32"),  # T4: bf16 only emulated
    ((7, 0), "fp32"),  # V100
    ((8, 0), "bf16"),  # A100
    ((8, 6), "bf16"),  # RTX 30xx, A10
    ((9, 0), "bf16"),  # H100
])
def test_auto_picks_bf16_on_a_gpu_only_where_it_is_native(capability, expected, monkeypatch):
    fake_gpus(monkeypatch, {0: capability})
    assert device.resolve_precision("auto", torch.device("cuda"), "dcgan", batch_size=256) == expected
    assert device.resolve_precision("auto", torch.device("cuda:0"), "dcgan", batch_size=256) == expected
    assert device.resolve_precision("auto", torch.device("cuda"), "mlp", batch_size=256) == "fp32"


def test_the_precision_rule_asks_the_gpu_the_run_uses_not_the_current_one(monkeypatch):
    fake_gpus(monkeypatch, {0: (7, 5), 1: (9, 0)}, current=0)
    assert device.resolve_precision("auto", torch.device("cuda:1"), "dcgan", batch_size=256) == "bf16"
    assert device.resolve_precision("auto", torch.device("cuda:0"), "dcgan", batch_size=256) == "fp32"
    assert device.resolve_precision("auto", torch.device("cuda"), "dcgan", batch_size=256) == "fp32"  # current: 0
    fake_gpus(monkeypatch, {0: (7, 5), 1: (9, 0)}, current=1)
    assert device.resolve_precision("auto", torch.device("cuda"), "dcgan", batch_size=256) == "bf16"
    assert device.resolve_precision("auto", torch.device("cuda:0"), "dcgan", batch_size=256) == "fp32"


def cuda_switches():
    matmul = torch.backends.cuda.matmul
    return (torch.backends.cudnn.benchmark, getattr(matmul, "fp32_precision", None) or matmul.allow_tf32,
            getattr(torch.backends.cudnn.conv, "fp32_precision", None))


@pytest.mark.parametrize("capability, precision, tf32", [((8, 0), "fp32", True), ((7, 5), "fp32", False),
                                                        ((9, 0), "bf16", False)])
def test_a_gpu_run_sets_cudnn_benchmark_and_tf32_for_itself_and_restores_them(capability, precision, tf32,
                                                                              monkeypatch):
    fake_gpus(monkeypatch, {0: capability})
    before = cuda_switches()
    with device.device_settings(torch.device("cuda"), precision):
        inside = cuda_switches()
        assert inside[0] is True  # cuDNN times its kernels once for the fixed shapes
        assert (inside[1] in ("tf32", True)) == tf32, inside
    assert cuda_switches() == before
    with pytest.raises(KeyboardInterrupt):  # restored however the run ends
        with device.device_settings(torch.device("cuda"), precision):
            raise KeyboardInterrupt
    assert cuda_switches() == before
    with device.device_settings(torch.device("cpu"), "fp32"):
        assert cuda_switches() == before  # nothing changes for a CPU run


def test_a_training_leaves_matplotlib_backend_and_torch_random_state_as_they_were(tmp_path, small_data):
    matplotlib.use("svg")  # a backend with no display that is not Agg: the loss plot used to force Agg
    try:
        torch.manual_seed(1234)
        expected = torch.rand(3)
        torch.manual_seed(1234)
        gan.train(replace(config(tmp_path, small_data, epochs=1), arch="dcgan", width=4), console=quiet())
        assert (tmp_path / "ck" / "training_loss.png").stat().st_size > 1000  # the plot was still drawn
        assert matplotlib.get_backend() == "svg"
        assert torch.equal(torch.rand(3), expected)  # the caller's random numbers go on as if nothing had run
    finally:
        matplotlib.use("Agg")


def test_the_moving_average_in_one_fused_call_is_the_per_tensor_update():
    cfg = gan.Config(arch="dcgan", width=4)
    G = gan.build_generator(cfg)
    G_ema, reference = copy.deepcopy(G), copy.deepcopy(G)
    with torch.no_grad():
        for p in G.parameters():
            p.add_(torch.randn_like(p))
        for b in G.buffers():
            b.add_(1)
    gan.update_ema(G_ema, G, decay=0.999, step=50)
    decay = min(0.999, 51 / 60)
    with torch.no_grad():
        for mine, theirs in zip(reference.parameters(), G.parameters()):
            mine.lerp_(theirs, 1 - decay)
        for mine, theirs in zip(reference.buffers(), G.buffers()):
            mine.copy_(theirs)
    for a, b in zip(G_ema.state_dict().values(), reference.state_dict().values()):
        assert torch.equal(a, b)
    assert not torch.equal(next(G_ema.parameters()), next(G.parameters()))  # averaged, not copied


def test_fused_adam_where_torch_has_it(monkeypatch):
    cfg = gan.Config(arch="dcgan", width=4)
    G, D = gan.build_networks(cfg)
    assert all(opt.defaults["fused"] for opt in gan.make_optimizers(G, D, cfg))
    import torch.optim.optimizer as optimizer
    monkeypatch.setattr(optimizer, "_get_fused_kernels_supported_devices", lambda: ["cuda"])
    assert not any(opt.defaults["fused"] for opt in gan.make_optimizers(G, D, cfg))


def test_a_checkpoint_with_a_broken_cuda_random_state_is_refused_in_one_line(tmp_path, small_data):
    path = gan.train(config(tmp_path, small_data, epochs=1), console=quiet())
    state = torch.load(path, weights_only=True)
    state["rng"]["cuda"] = torch.zeros(3, dtype=torch.float32)
    torch.save(state, path)
    with pytest.raises(gan.GANError, match="random-number state"):
        gan.load_checkpoint(path)
