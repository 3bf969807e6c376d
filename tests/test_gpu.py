"""On a CUDA GPU (`bash .ci/gpu`; skipped, not failed, without one): exact resume in each precision, checkpoints
moved between the CPU and the GPU both ways, and bf16 against fp32 in quality after a few epochs of real MNIST."""

import os
from dataclasses import replace
from pathlib import Path

import pytest
import torch

import gan
from conftest import ROOT, assert_identical_runs, config, quiet

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]
MNIST = Path(os.environ.get("GAN_DATA_DIR", ROOT.parent / "shared" / "data"))


def gpu_config(tmp: Path, data: Path, epochs: int, **extra) -> gan.Config:
    return replace(config(tmp, data, epochs), arch="dcgan", width=8, device="cuda", **extra)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_resume_on_the_gpu_is_bit_identical(precision, tmp_path, small_data, monkeypatch):
    # cuDNN's default kernels may sum in another order from run to run: exact resume on a GPU needs deterministic ones
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", True)
    straight = gan.train(gpu_config(tmp_path / "straight", small_data, 3, precision=precision), console=quiet())
    first = gan.train(gpu_config(tmp_path / "split", small_data, 2, precision=precision), console=quiet())
    resumed = gan.train(gpu_config(tmp_path / "split", small_data, 3, precision=precision), resume=first,
                        console=quiet())
    assert_identical_runs(straight, resumed)


@pytest.mark.parametrize("first, then", [("cpu", "cuda"), ("cuda", "cpu")])
def test_a_checkpoint_moves_between_the_cpu_and_the_gpu(first, then, tmp_path, small_data):
    path = gan.train(gpu_config(tmp_path, small_data, 1, device=first), console=quiet())
    assert torch.load(path, weights_only=True)["G"]["body.1.weight"].device.type == "cpu"  # saved device-free
    last = gan.resume(path, {"epochs": 2, "device": then}, console=quiet())
    state, cfg = gan.load_checkpoint(last)
    assert state["epoch"] == 2 and cfg.device == then
    G, _ = gan.load_generator(last, device=then)
    images = gan.generate_and_plot_samples(G, n=16, seed=0, show=False, out=tmp_path / "g.npy")
    assert images.shape == (16, 1, 28, 28) and torch.isfinite(images).all() and images.std() > 0.01


@pytest.mark.skipif(not (MNIST / "MNIST" / "raw").is_dir(), reason="needs real MNIST in GAN_DATA_DIR")
def test_bf16_trains_as_well_as_fp32_on_the_gpu(tmp_path):
    import evaluate
    if not gan.resolve_precision("auto", torch.device("cuda"), "dcgan", 256) == "bf16":
        pytest.skip("this GPU has no native bf16")
    fid = {}
    for precision in ("fp32", "bf16"):
        cfg = gan.Config(epochs=3, device="cuda", precision=precision, data_dir=str(MNIST), seed=0,
                         checkpoint_dir=str(tmp_path / precision / "ck"), sample_dir=str(tmp_path / precision / "s"))
        gan.train(cfg, console=quiet())
        G, _ = gan.load_generator(tmp_path / precision / "ck" / "generator_final.pth", device="cuda")
        fid[precision] = evaluate.evaluate_generator(G, 5000, MNIST, seed=0, device="cuda")["fid"]
    print(f"FID after 3 epochs on {torch.cuda.get_device_name()}: {fid}")
    assert fid["bf16"] < 1.5 * fid["fp32"] + 1.0, fid  # within seed noise (docs/speed.md: about +-15% on the CPU)
    assert fid["fp32"] < 30, fid  # and both learned digits
