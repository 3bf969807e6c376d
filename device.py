"""Where a run computes: the device (CUDA, then Apple's MPS, then the CPU) and the precision of its arithmetic.

    resolve_device("auto")      # torch.device("cuda") where there is a GPU, else mps, else cpu

Builds on torch and config.py only; gan.py, evaluate.py and the CLI ask it.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from config import BadValue, GANError


def resolve_device(name: str = "auto") -> torch.device:
    """auto picks CUDA, then Apple's MPS, then the CPU; a named device that is missing is an error."""
    has_mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise BadValue(f"unknown {{device}} {name!r}: use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise GANError(f"--device {name} was asked for but this PyTorch sees no CUDA GPU: use --device auto or cpu")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise GANError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) here")
    if device.type == "mps" and not has_mps:
        raise GANError(f"--device {name} was asked for but Apple's MPS is not available: use --device auto or cpu")
    if device.type not in ("cpu", "cuda", "mps"):
        raise BadValue(f"unsupported {{device}} {name!r}: use auto, cpu, cuda, cuda:N or mps")
    return device


def device_of(module: nn.Module) -> torch.device:
    """Where a module's weights live (the CPU for one without any)."""
    for tensor in (*module.parameters(), *module.buffers()):
        return tensor.device
    return torch.device("cpu")


def native_bf16(device: torch.device) -> bool:
    """Whether `device` computes bf16 natively, much faster than fp32: a CUDA GPU of compute capability 8.0 or later
    (Ampere on; T4 and V100 emulate it, slowly, which torch.cuda.is_bf16_supported() counts as support), asked of
    the GPU the run uses, not the current one; or a CPU whose matrix units torch uses for it (Intel AMX,
    AVX512-BF16 on AMD Zen 4/5 and Intel). AVX2-only CPUs emulate bf16 dozens of times slower; MPS stays fp32."""
    if device.type == "cuda":
        return torch.cuda.get_device_capability(cuda_index(device)) >= (8, 0)
    if device.type == "cpu":
        cpu = getattr(torch, "cpu", None)
        return any(getattr(cpu, probe, lambda: False)() for probe in ("_is_amx_tile_supported",
                                                                      "_is_avx512_bf16_supported"))
    return False


def cuda_index(device: torch.device) -> int:
    """The index of a CUDA device; plain "cuda" means the current one."""
    return torch.cuda.current_device() if device.index is None else device.index


def resolve_precision(name: str, device: torch.device, arch: str, batch_size: int = 128) -> str:
    """fp32 or bf16 for `--precision name`. auto picks bf16 on native_bf16 hardware for the convolutional GANs at
    batches of 128 or more, where it measured faster (docs/speed.md); at batch 64 it measured 0.6-0.9x on AMX CPUs,
    and the MLPs stay fp32 too (0.22x on one AMX CPU)."""
    if name == "auto":
        return "bf16" if native_bf16(device) and arch.startswith("dcgan") and batch_size >= 128 else "fp32"
    if name not in ("fp32", "bf16"):
        raise BadValue(f"unknown {{precision}} {name!r}: use auto, fp32 or bf16")
    return name


def autocast(precision: str, device: torch.device):
    """The context the forward passes of a training step run in: bf16 autocast, or nothing for fp32."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


@contextlib.contextmanager
def device_settings(device: torch.device, precision: str):
    """The process-wide switches a training run wants, set for the run only and restored after it, so that a
    notebook or a caller's own work is left as it was: on a CUDA GPU, cuDNN picks its fastest kernels for the
    run's fixed shapes, and an fp32 run multiplies in TF32 where the GPU has it (capability 8.0 on: the tensor
    cores, 10 bits of mantissa in the products, fp32 sums). Nothing changes on the CPU or MPS."""
    if device.type != "cuda":
        yield
        return
    # cuDNN's timed kernel choice, unless the user asked for deterministic kernels (which exact GPU resume needs)
    switches = [] if torch.backends.cudnn.deterministic else [(torch.backends.cudnn, "benchmark", True)]
    if precision == "fp32" and native_bf16(device):
        matmul, conv = torch.backends.cuda.matmul, torch.backends.cudnn
        if hasattr(matmul, "fp32_precision"):  # torch 2.9 on
            switches += [(matmul, "fp32_precision", "tf32"), (conv.conv, "fp32_precision", "tf32")]
        else:
            switches += [(matmul, "allow_tf32", True), (conv, "allow_tf32", True)]
    saved = [(owner, name, getattr(owner, name)) for owner, name, _ in switches]
    try:
        for owner, name, value in switches:
            setattr(owner, name, value)
        yield
    finally:
        for owner, name, value in saved:
            setattr(owner, name, value)


def own_random_state(device: torch.device):
    """A context in which a run may seed and draw from torch's global random numbers (on the CPU and on `device`)
    without changing the caller's: they are restored when it ends, as a notebook expects."""
    gpu = [device] if device.type in ("cuda", "mps") else []
    return torch.random.fork_rng(devices=gpu, device_type=device.type if gpu else "cuda")
