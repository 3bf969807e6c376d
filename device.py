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


def fast_bf16(device: torch.device) -> bool:
    """Whether `device` multiplies bf16 much faster than fp32: a CUDA GPU with bf16 (Ampere on), or a CPU whose
    matrix units torch uses for it (Intel AMX, AVX512-BF16 on AMD Zen 4/5 and Intel). AVX2-only CPUs emulate bf16
    dozens of times slower, and MPS is left in fp32."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        cpu = getattr(torch, "cpu", None)
        return any(getattr(cpu, probe, lambda: False)() for probe in ("_is_amx_tile_supported",
                                                                      "_is_avx512_bf16_supported"))
    return False


def resolve_precision(name: str, device: torch.device, arch: str, batch_size: int = 128) -> str:
    """fp32 or bf16 for `--precision name`. auto picks bf16 on fast_bf16 hardware for the convolutional GANs at
    batches of 128 or more, where it measured faster (docs/speed.md); at batch 64 it measured 0.6-0.9x on AMX CPUs,
    and the MLPs stay fp32 too (0.22x on one AMX CPU)."""
    if name == "auto":
        return "bf16" if fast_bf16(device) and arch.startswith("dcgan") and batch_size >= 128 else "fp32"
    if name not in ("fp32", "bf16"):
        raise BadValue(f"unknown {{precision}} {name!r}: use auto, fp32 or bf16")
    return name


def autocast(precision: str, device: torch.device):
    """The context the forward passes of a training step run in: bf16 autocast, or nothing for fp32."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
