"""A small, fast GAN that learns MNIST and draws new handwritten digits.

    python cli.py train --epochs 10 --data-dir ./data     # checkpoints/ and samples/ fill as it learns
    python cli.py generate --n 16                         # new digits from the newest checkpoint (or the shipped one)
    from gan import generate_and_plot_samples             # the same from Python

This file is the GAN itself, in the order the data flows: data -> networks -> training step -> training loop ->
loading a saved run -> sampling. What a run is asked to do is a config.Config; what it writes goes through
checkpoint.py (the file format), rundir.py (its folders) and record.py (metrics, plots, grids). The quality metrics
and the classifier live in evaluate.py, which builds on this file, never the other way round (the training loop
takes an evaluation as a hook). Importing it only defines things: no downloads, folders or device probing happen
until a function is called.
"""

from __future__ import annotations

import contextlib
import copy
import math
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from checkpoint import (DIVERGED_ADVICE, STAT_NAMES, TrainingState, check_weights, checked_config, data_fingerprint,
                        finished_generator, fixed_noise_ok, read_checkpoint_file, read_training_checkpoint)
from config import LABEL_FREE, LABELS  # noqa: F401  (the label-dependent defaults, for readers of gan.LABELS)
from config import (DATASETS, R1_EVERY, BadType, BadValue, Config, GANError, check_drawing, check_folder_name, check_int,
                    check_minutes, resumed, validate)
from device import autocast, device_of, device_settings, own_random_state, resolve_device, resolve_precision
from files import StopRequest, TrainingInterrupted, write_text
from idx import read_idx
from record import (check_sample_count, describe, grid_layout, load_matplotlib, make_grid, model_summary, save_drawing,
                    save_grid, show_or_save_grid, tensorboard, write_record, write_report)
from rundir import RunFolder, find_generator, newest_checkpoint

# ---- data ----

def load_dataset(name: str, data_dir: str | Path, train: bool = True, device: torch.device | str = "cpu"):
    """A whole 28x28 dataset as one tensor on `device`: images (N, 1, 28, 28) scaled to [-1, 1], labels (N,).

    torchvision finds the files in DATA_DIR/<MNIST|FashionMNIST|KMNIST>/raw or downloads them there. Holding the
    whole set on the device and slicing batches out of it is much faster than a DataLoader with per-image PIL
    transforms.
    """
    if name not in DATASETS:
        raise BadValue(f"unknown {{dataset}} {name!r}: choose one of {', '.join(DATASETS)}")
    check_folder_name("data_dir", data_dir)
    images, labels = read_idx(DATASETS[name], Path(data_dir), train)  # uint8 (N, 28, 28), (N,)
    images = images.to(device).unsqueeze(1).float().div_(127.5).sub_(1.0)  # uint8 0..255 -> [-1, 1], like tanh
    return images, labels.long().to(device)


def load_training_data(cfg: Config, say) -> tuple[torch.Tensor, torch.Tensor]:
    """What cfg trains on, on the CPU: a torchvision dataset, or with cfg.images a folder of your own (images.py), as
    in load_dataset; files of the folder that do not decode are skipped and named."""
    if cfg.images is None:
        return load_dataset(cfg.dataset, cfg.data_dir)
    from config import image_classes
    from images import load_folder
    images, labels, skipped = load_folder(cfg.images, cfg.classes or [])
    new = sorted(set(image_classes(cfg.images)) - set(cfg.classes or [])) if cfg.classes else []
    if new:
        say(f"note: {cfg.images} now also holds {', '.join(new)}: this run trains on the classes it began with")
    if skipped:
        say(f"note: {len(skipped)} of {len(images) + len(skipped)} files in {cfg.images} were skipped: "
            f"{', '.join(skipped[:3])}" + (", ..." if len(skipped) > 3 else ""))
    return images.unsqueeze(1).float().div_(127.5).sub_(1.0), labels


def load_mnist(data_dir: str | Path, train: bool = True, device: torch.device | str = "cpu"):
    """MNIST's images (N, 1, 28, 28) in [-1, 1] and labels (N,); see load_dataset."""
    return load_dataset("mnist", data_dir, train, device)


# ---- networks ----

class Generator(nn.Module):
    """z (B, latent_dim) -> images (B, 1, 28, 28) in [-1, 1].

    A conditional generator also takes labels (B,) and reads each as a one-hot vector appended to z; without
    them it draws a random digit for each z, so it serves wherever an unconditional one would.
    """

    def __init__(self, body: nn.Sequential, latent_dim: int, n_classes: int = 0):
        super().__init__()
        self.latent_dim, self.n_classes, self.body = latent_dim, n_classes, body

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.n_classes:
            if labels is None:
                labels = torch.randint(0, self.n_classes, (z.size(0),), device=z.device)
            z = torch.cat([z, F.one_hot(labels, self.n_classes).to(z.dtype)], dim=1)  # (B, latent + classes)
        return self.body(z)


class Discriminator(nn.Module):
    """images (B, 1, 28, 28) -> one logit per image (B,); the losses apply the sigmoid.

    A conditional discriminator adds <embed(label), features> to the logit: the projection discriminator of
    Miyato & Koyama (2018), which asks "is this a real 7?" rather than "is this real?" and "is this a 7?".
    """

    def __init__(self, features: nn.Sequential, n_features: int, n_classes: int = 0):
        super().__init__()
        self.n_classes, self.features, self.head = n_classes, features, nn.Linear(n_features, 1)
        self.batchnorm = any(isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) for m in features.modules())
        if n_classes:
            self.embed = nn.Embedding(n_classes, n_features)
            nn.init.zeros_(self.embed.weight)  # start unconditional; the projection grows as D learns it

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        h = self.features(images)                                                # (B, n_features)
        logit = self.head(h).squeeze(1)                                          # (B,)
        if self.n_classes:
            logit = logit + (self.embed(labels) * h).sum(dim=1)
        return logit


def init_dcgan_weights(module: nn.Module) -> None:
    """The DCGAN paper's init: conv and dense weights from N(0, 0.02), BatchNorm scales from N(1, 0.02)."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


def dense(cin: int, cout: int, act: nn.Module, norm: bool = False, dropout: float = 0.0) -> list[nn.Module]:
    """Linear -> [BatchNorm] -> activation -> [Dropout]. BatchNorm makes the bias redundant, so it has none."""
    layers = [nn.Linear(cin, cout, bias=not norm)]
    layers += [nn.BatchNorm1d(cout)] if norm else []
    layers += [act]
    layers += [nn.Dropout(dropout)] if dropout else []
    return layers


class FromLatent(nn.ConvTranspose2d):
    """The first layer of a DCGAN generator, z (B, n, 1, 1) -> (B, C, k, k): a transposed convolution of a 1x1 input,
    which is one matrix product. Computed as one, forward and backward ran 4x faster here in bf16 and 2x in fp32;
    the weights keep the ConvTranspose2d's shape, so checkpoints load either way."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        n, c, k, _ = self.weight.shape
        out = z.flatten(1) @ self.weight.permute(0, 2, 3, 1).reshape(n, k * k * c)  # (B, k * k * C)
        return out.view(-1, k, k, c).permute(0, 3, 1, 2)                           # -> (B, C, k, k), channels last


def up(cin: int, cout: int, kernel: int, stride: int, padding: int, output_padding: int = 0,
       act: nn.Module | None = None, conv: type = nn.ConvTranspose2d) -> list[nn.Module]:
    """Transposed convolution -> BatchNorm -> ReLU (or `act`): one upsampling step of a DCGAN generator."""
    return [conv(cin, cout, kernel, stride, padding, output_padding, bias=False),
            nn.BatchNorm2d(cout), act or nn.ReLU(inplace=True)]


def down(cin: int, cout: int, kernel: int, stride: int, padding: int, norm: bool = True,
         dropout: float = 0.0) -> list[nn.Module]:
    """Strided convolution -> [BatchNorm] -> LeakyReLU(0.2) -> [Dropout]: one step of a DCGAN discriminator."""
    layers = [nn.Conv2d(cin, cout, kernel, stride, padding, bias=not norm)]
    layers += [nn.BatchNorm2d(cout)] if norm else []
    layers += [nn.LeakyReLU(0.2, inplace=True)]
    layers += [nn.Dropout(dropout)] if dropout else []
    return layers


def build_generator(cfg: Config) -> Generator:
    classes = cfg.n_classes if cfg.conditional else 0
    z, w = cfg.latent_dim + classes, cfg.width
    if cfg.arch in ("mlp", "mlp-bn"):
        norm = cfg.arch == "mlp-bn"
        act = (lambda: nn.LeakyReLU(0.2, inplace=True)) if cfg.g_act == "leaky" or norm else (lambda: nn.ReLU(inplace=True))
        body = nn.Sequential(*dense(z, 256, act(), norm), *dense(256, 512, act(), norm), *dense(512, 1024, act(), norm),
                             nn.Linear(1024, 784, bias=not norm), nn.Tanh(),
                             nn.Unflatten(1, (1, 28, 28)))                     # (B, 784) -> (B, 1, 28, 28)
    elif cfg.arch == "dcgan":
        body = nn.Sequential(nn.Unflatten(1, (z, 1, 1)),                         # (B, z) -> (B, z, 1, 1)
                             *up(z, 8 * w, 4, 1, 0, conv=FromLatent),            # -> (B, 8w, 4, 4)
                             *up(8 * w, 4 * w, 4, 2, 1),                         # -> (B, 4w, 8, 8)
                             *up(4 * w, 2 * w, 4, 2, 2),                         # -> (B, 2w, 14, 14)
                             nn.ConvTranspose2d(2 * w, 1, 4, 2, 1, bias=False),  # -> (B, 1, 28, 28)
                             nn.Tanh())
        body.apply(init_dcgan_weights)
    else:  # dcgan-tf: the TensorFlow DCGAN tutorial's generator
        leaky = lambda: nn.LeakyReLU(0.3, inplace=True)  # Keras' LeakyReLU default slope
        body = nn.Sequential(*dense(z, 7 * 7 * 128, leaky(), norm=True),
                             nn.Unflatten(1, (128, 7, 7)),                       # (B, 6272) -> (B, 128, 7, 7)
                             *up(128, 64, 5, 1, 2, act=leaky()),                 # -> (B, 64, 7, 7)
                             *up(64, 32, 5, 2, 2, output_padding=1, act=leaky()),  # -> (B, 32, 14, 14)
                             nn.ConvTranspose2d(32, 1, 5, 2, 2, output_padding=1, bias=False),  # -> (B, 1, 28, 28)
                             nn.Tanh())
        body.apply(init_dcgan_weights)
    return Generator(body, cfg.latent_dim, classes)


def build_discriminator(cfg: Config) -> Discriminator:
    classes = cfg.n_classes if cfg.conditional else 0
    w, p = cfg.width, cfg.d_dropout
    if cfg.arch in ("mlp", "mlp-bn"):
        norm = cfg.arch == "mlp-bn"
        leaky = lambda: nn.LeakyReLU(0.2, inplace=True)
        features = nn.Sequential(nn.Flatten(),                                   # (B, 1, 28, 28) -> (B, 784)
                                 *dense(784, 1024, leaky(), norm, p), *dense(1024, 512, leaky(), norm, p),
                                 *dense(512, 256, leaky(), norm, p))             # -> (B, 256)
        return Discriminator(features, 256, classes)
    if cfg.arch == "dcgan":
        features = nn.Sequential(*down(1, w, 4, 2, 1, norm=False),              # (B, 1, 28, 28) -> (B, w, 14, 14)
                                 *down(w, 2 * w, 4, 2, 1),                       # -> (B, 2w, 7, 7)
                                 *down(2 * w, 4 * w, 3, 2, 1),                   # -> (B, 4w, 4, 4)
                                 nn.Flatten())                                   # -> (B, 64w); the paper's last 4x4
        D = Discriminator(features, 4 * w * 4 * 4, classes)                      # conv is this dense layer
    else:  # dcgan-tf: two strided 5x5 convolutions with LeakyReLU and Dropout(0.3), then a dense logit
        features = nn.Sequential(*down(1, 64, 5, 2, 2, norm=False, dropout=0.3),  # (B, 1, 28, 28) -> (B, 64, 14, 14)
                                 *down(64, 128, 5, 2, 2, norm=False, dropout=0.3),  # -> (B, 128, 7, 7)
                                 nn.Flatten())                                   # -> (B, 6272)
        D = Discriminator(features, 128 * 7 * 7, classes)
    D.features.apply(init_dcgan_weights)
    D.head.apply(init_dcgan_weights)
    return D


def build_networks(cfg: Config, device: torch.device | str = "cpu") -> tuple[Generator, Discriminator]:
    """G and D on `device`, convolutional ones in the channels-last layout on CPUs and CUDA GPUs (measured 12% faster
    here; MPS keeps the default layout, which some of its kernels handle better)."""
    G, D = build_generator(cfg).to(device), build_discriminator(cfg).to(device)
    if cfg.arch.startswith("dcgan") and torch.device(device).type in ("cpu", "cuda"):
        G, D = G.to(memory_format=torch.channels_last), D.to(memory_format=torch.channels_last)
    return G, D


# ---- training step ----

def train_step(G: Generator, D: Discriminator, opt_g: torch.optim.Optimizer, opt_d: torch.optim.Optimizer,
               real: torch.Tensor, labels: torch.Tensor | None, real_target: float, r1: float = 0.0,
               amp: Callable = contextlib.nullcontext) -> torch.Tensor:
    """One update of D, then one of G. Returns [d_loss, g_loss, D(x), D(G(z))] as a tensor on the device,
    so the caller can sum it without forcing a host sync every step. `labels` only for conditional GANs; `r1`
    weighs the penalty on D's gradient at the real images (0: none this step). The forward passes run inside
    `amp()` (bf16 autocast, say); the backward passes, the penalty's gradient and the optimizer steps outside it,
    on fp32 weights."""
    if r1:
        real = real.detach().requires_grad_(True)
    z = torch.randn(real.size(0), G.latent_dim, device=real.device)
    fake_labels = torch.randint(0, G.n_classes, (real.size(0),), device=real.device) if G.n_classes else None

    # (1) D: maximise log D(x) + log(1 - D(G(z)))
    with amp():
        fake = G(z, fake_labels)
        if D.batchnorm:  # BatchNorm must see real and fake batches apart, as in the DCGAN paper
            d_real, d_fake = D(real, labels), D(fake.detach(), fake_labels)
        else:  # one pass over both halves: bigger matrix products, fewer kernel launches
            both_labels = torch.cat([labels, fake_labels]) if labels is not None else None
            d_real, d_fake = D(torch.cat([real, fake.detach()]), both_labels).split(real.size(0))
        d_real, d_fake = d_real.float(), d_fake.float()
        d_loss = (F.binary_cross_entropy_with_logits(d_real, torch.full_like(d_real, real_target))
                  + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake)))
    if r1:  # R1 (Mescheder et al. 2018): D's surface stays flat at the real images, so G's gradients stay useful
        grad, = torch.autograd.grad(d_real.sum(), real, create_graph=True)
        d_loss = d_loss + r1 / 2 * grad.float().pow(2).flatten(1).sum(1).mean()
    opt_d.zero_grad(set_to_none=True)
    d_loss.backward()
    opt_d.step()

    # (2) G: maximise log D(G(z)), the non-saturating form of minimising log(1 - D(G(z)))
    D.requires_grad_(False)  # G's step needs gradients through D, not of D's weights: skip computing them
    with amp():
        d_fake_for_g = D(fake, fake_labels).float()
        g_loss = F.binary_cross_entropy_with_logits(d_fake_for_g, torch.ones_like(d_fake_for_g))
    opt_g.zero_grad(set_to_none=True)
    g_loss.backward()
    opt_g.step()
    D.requires_grad_(True)

    return torch.stack([d_loss, g_loss, torch.sigmoid(d_real).mean(), torch.sigmoid(d_fake).mean()]).detach()


# ---- training loop ----

LOG_EVERY = 25  # steps between reads of the running sums (each read is a host sync on a GPU)


def make_optimizers(G: nn.Module, D: nn.Module, cfg: Config):
    """Adam for each network. The fused kernel (one pass over all weights) measured 7-25% faster here for the
    MLP; it is used wherever this torch has it (CPU, CUDA, MPS)."""
    try:  # a private helper of torch's: where it is missing, the devices that have had the kernel longest
        from torch.optim.optimizer import _get_fused_kernels_supported_devices as fused_devices
    except ImportError:
        fused_devices = lambda: ("cpu", "cuda")  # noqa: E731
    betas = (cfg.beta1, 0.999)
    fused = device_of(G).type in fused_devices()
    return (torch.optim.Adam(G.parameters(), lr=cfg.lr_g, betas=betas, fused=fused),
            torch.optim.Adam(D.parameters(), lr=cfg.lr_d, betas=betas, fused=fused))


def update_ema(G_ema: nn.Module, G: nn.Module, decay: float, step: int) -> None:
    """G_ema <- decay * G_ema + (1 - decay) * G. The warm-up (1 + t) / (10 + t) keeps the random init from
    lingering in the average early on. BatchNorm statistics are copied, not averaged."""
    decay = min(decay, (1 + step) / (10 + step))
    with torch.no_grad():  # one fused call each, not a kernel launch per tensor (what a small net costs on a GPU)
        torch._foreach_lerp_(list(G_ema.parameters()), list(G.parameters()), 1 - decay)
        if buffers := list(G_ema.buffers()):  # BatchNorm's statistics; an MLP without BatchNorm has none
            torch._foreach_copy_(buffers, list(G.buffers()))


def fixed_inputs(cfg: Config) -> tuple[torch.Tensor, torch.Tensor | None, int]:
    """The noise (and labels) behind every epoch's sample grid, and the grid's row length. A conditional
    grid has one row of 10 per class: 10 x 10 for digits."""
    rng = torch.Generator().manual_seed(cfg.seed)
    if cfg.conditional:
        k = cfg.n_classes
        return torch.randn(10 * k, cfg.latent_dim, generator=rng), torch.arange(k).repeat_interleave(10), 10
    return torch.randn(64, cfg.latent_dim, generator=rng), None, 8


def new_training_state(cfg: Config, device: torch.device, run_id: str | None = None) -> TrainingState:
    G, D = build_networks(cfg, device)
    G_ema = copy.deepcopy(G).requires_grad_(False) if cfg.ema else None
    return TrainingState(G, D, G_ema, *make_optimizers(G, D, cfg), fixed_inputs(cfg)[0], run_id)


def run_epoch(s: TrainingState, cfg: Config, images: torch.Tensor, labels: torch.Tensor,
              should_stop: Callable[[], bool], on_step: Callable | None = None, precision: str = "fp32") -> bool:
    """Train epoch s.epoch + 1 from position s.pos. Returns True when it is complete, False when should_stop()
    said so between two steps (s.pos, s.perm and s.sums then say where it got to). `precision`: fp32 or bf16."""
    batch, steps = cfg.batch_size, len(images) // cfg.batch_size  # the last incomplete batch is dropped
    if not s.pos:
        s.perm, s.pos, s.seconds = torch.randperm(len(images), device=images.device), 0, 0.0
        s.sums = torch.zeros(len(STAT_NAMES), device=images.device)
    real_target = cfg.label_smoothing if cfg.label_smoothing is not None else 1.0
    first, t0, amp = s.pos // batch, time.perf_counter(), lambda: autocast(precision, images.device)
    s.G.train(), s.D.train()
    for step in range(first, steps):
        idx = s.perm[step * batch:(step + 1) * batch]
        r1 = cfg.r1 * R1_EVERY if cfg.r1 and (s.epoch * steps + step) % R1_EVERY == 0 else 0.0
        s.sums += train_step(s.G, s.D, s.opt_g, s.opt_d, images[idx], labels[idx] if cfg.conditional else None,
                             real_target, r1, amp)
        if s.G_ema is not None:
            update_ema(s.G_ema, s.G, cfg.ema, s.epoch * steps + step)
        s.pos = (step + 1) * batch
        if should_stop():
            s.seconds += time.perf_counter() - t0
            check_finite(s.sums, s.epoch + 1, step + 1)
            return False
        if on_step and ((step + 1) % LOG_EVERY == 0 or step + 1 == steps):
            means = check_finite(s.sums, s.epoch + 1, step + 1) / (step + 1)
            rate = (step + 1 - first) * batch / (time.perf_counter() - t0)
            on_step(s.epoch + 1, cfg.epochs, step + 1, steps, format_stats(means, rate))
    s.seconds += time.perf_counter() - t0
    s.epoch, s.pos = s.epoch + 1, 0
    return True


class Diverged(GANError):
    """A loss became NaN or infinite."""


def check_finite(sums: torch.Tensor, epoch: int, step: int) -> torch.Tensor:
    """Read the running sums (one host sync) and stop if a loss has become NaN or infinite."""
    sums = sums.cpu()
    if not torch.isfinite(sums).all():
        raise Diverged(f"training diverged at epoch {epoch}, step {step} (a loss became NaN or infinite)")
    return sums


def format_stats(means, images_per_s: float) -> str:
    d_loss, g_loss, d_real, d_fake = (float(v) for v in means)
    return f"D {d_loss:.3f}  G {g_loss:.3f}  D(x) {d_real:.2f}  D(G(z)) {d_fake:.2f}  {images_per_s:,.0f} img/s"


def end_of_epoch(s: TrainingState, cfg: Config, run: RunFolder, steps: int, writer, evaluate, precision: str) -> str:
    """Record the finished epoch, draw its grid, save its checkpoint; returns the line that reports it."""
    epoch, means = s.epoch, check_finite(s.sums, s.epoch, steps) / steps
    row = {"epoch": epoch, **{k: round(float(v), 5) for k, v in zip(STAT_NAMES, means)},
           "epoch_time_s": round(s.seconds, 2), "images_per_s": round(steps * cfg.batch_size / s.seconds, 1),
           "lr_g": s.opt_g.param_groups[0]["lr"], "lr_d": s.opt_d.param_groups[0]["lr"], "precision": precision}
    last = epoch == cfg.epochs
    if cfg.eval_every and (epoch % cfg.eval_every == 0 or last):
        row.update(evaluate(s.G_sample, cfg, device_of(s.G)))
    s.history.append(row)
    notes = []
    if epoch % cfg.save_every == 0 or last:  # the checkpoint before the grid: no grid of a run that left no checkpoint
        s.last_checkpoint = s.save(run.checkpoint(epoch), asdict(cfg))
        run.prune_checkpoints(s, keep=cfg.keep_last)
        notes.append(str(s.last_checkpoint))
    if epoch % cfg.sample_every == 0 or last:
        _, fixed_labels, grid_row = fixed_inputs(cfg)
        grid = sample_images(s.G_sample, s.fixed_z.to(device_of(s.G)), fixed_labels)
        notes.insert(0, str(save_grid(grid, run.sample_grid(epoch), nrow=grid_row, run_id=s.run_id)))
        if writer:
            writer.add_image("samples", make_grid(grid, nrow=grid_row), epoch)
    write_record(run, s.history, writer)
    quality = f"  FID {row['fid']:.2f}" if "fid" in row else ""
    return (f"epoch {epoch}/{cfg.epochs}  {format_stats(means, row['images_per_s'])}{quality}  {s.seconds:.1f}s"
            + (f"  -> {', '.join(notes)}" if notes else ""))


def start(cfg: Config, resume, saved: dict | None, run: RunFolder, device: torch.device) -> TrainingState:
    """A fresh state, or the one saved in `resume`, checked against how far cfg.epochs asks to go. A run that has
    trained all its epochs but lacks its final generator (stopped while writing it) may resume to write it."""
    if saved and saved["epoch"] >= cfg.epochs:
        done = saved["epoch"]
        if saved["pos"]:
            raise GANError(f"{resume} stopped in the middle of epoch {done + 1}: pass --epochs {done + 1} or more to "
                           f"finish it")
        if done > cfg.epochs or finished_generator(Path(resume).parent / run.final_generator.name, done):
            raise GANError(f"{resume} has already trained {done} epochs: pass --epochs larger than {done}")
    s = new_training_state(cfg, device)
    if saved:
        s.restore(saved, device, lr_g=cfg.lr_g, lr_d=cfg.lr_d, path=resume)
    return s


def restart_if_other_data(s: TrainingState, cfg: Config, images: torch.Tensor, labels: torch.Tensor, say) -> None:
    """A mid-epoch checkpoint continues exactly only on the same data in the same batches: otherwise the epoch in
    progress starts again from its first batch (its finished steps stay trained), and the user is told so."""
    if not s.continues_on(data_fingerprint(images, labels), cfg.batch_size):
        say(f"note: epoch {s.epoch + 1} was interrupted on other data or another --batch-size; it starts again from "
            f"its first batch")


def train(cfg: Config, resume: str | Path | None = None, minutes: float | None = None, console=None,
          on_step: Callable | None = None, evaluate: Callable | None = None, saved: dict | None = None) -> Path:
    """Train (or continue training) a GAN as `cfg` says; returns the path of the last checkpoint written.

    With `resume`, the networks, optimizers, epoch, fixed noise, history and random-number state come from that
    checkpoint and training continues exactly where it stopped, up to cfg.epochs epochs in all. With `minutes`,
    training stops after that much time, saving where it got to, as Ctrl-C does. Hooks: `console.print` gets a
    line per epoch (default: print), `on_step(epoch, epochs, step, steps, stats)` the progress within an epoch,
    and `evaluate(G, cfg, device) -> dict` adds quality numbers every cfg.eval_every epochs (cli.py passes
    evaluate.evaluate_during_training). `saved` is the checkpoint `resume` names, when the caller has read it
    already (see resume), so that it is read once. The run holds its folders while it lasts (rundir.py).
    """
    say = console.print if console is not None else print
    validate(cfg)
    check_minutes(minutes)
    load_matplotlib()  # the loss plot needs it: a broken MPLBACKEND is said now, not after the first epoch
    if cfg.eval_every and evaluate is None:
        raise GANError("--eval-every needs an evaluation hook: pass evaluate=evaluate.evaluate_during_training")
    device = resolve_device(cfg.device)
    precision = resolve_precision(cfg.precision, device, cfg.arch, cfg.batch_size)
    if resume is not None and saved is None:
        saved, _ = load_checkpoint(resume)
    with own_random_state(device):  # the caller's random numbers (a notebook's, say) are theirs again afterwards
        return run_training(cfg, resume, saved, device, precision, minutes, say, on_step, evaluate)


def run_training(cfg: Config, resume, saved: dict | None, device: torch.device, precision: str, minutes, say,
                 on_step, evaluate) -> Path:
    """train's work, once its arguments are checked: a run that holds its folders while it lasts (rundir.py)."""
    run = RunFolder(cfg.checkpoint_dir, cfg.sample_dir)
    torch.manual_seed(cfg.seed)
    s = start(cfg, resume, saved, run, device)
    untagged_ok = saved is not None and saved["format"] < 4  # grids from before grids were tagged
    with (run.hold(s, resume, untagged_ok), StopRequest() as stop, tensorboard(run, cfg.tensorboard) as writer,
          device_settings(device, precision)):
        images, labels = load_training_data(cfg, say)
        if len(images) < cfg.batch_size:
            raise BadValue(f"{{batch_size}} {cfg.batch_size} is larger than the {len(images)} training images: "
                           f"use a smaller one")
        restart_if_other_data(s, cfg, images, labels, say)  # its checksum on the host copy: no copy off a GPU
        images, labels = images.to(device), labels.to(device)
        say(f"{describe(cfg)}: {len(images):,} images on {device}, precision {precision}"
            + (f" (--precision {cfg.precision})" if cfg.precision != precision else ""))
        write_text(run.summary, model_summary(s.G, s.D, f"{describe(cfg)}, precision {precision}") + "\n")
        write_record(run, s.history)
        deadline = time.perf_counter() + 60 * minutes if minutes else math.inf
        should_stop = lambda: stop.signal_name is not None or time.perf_counter() > deadline  # noqa: E731
        try:
            while s.epoch < cfg.epochs:
                if not run_epoch(s, cfg, images, labels, should_stop, on_step, precision):
                    return stopped(s, cfg, run, stop.signal_name, minutes, say)
                say(end_of_epoch(s, cfg, run, len(images) // cfg.batch_size, writer, evaluate, precision))
        except Diverged as e:
            good = newest_checkpoint(run.dir, resumable=True)
            keep = f"the last good checkpoint, {good}, is kept" if good else "no checkpoint had been written yet"
            raise GANError(f"{e}; {keep}. {DIVERGED_ADVICE}") from None
        final = s.export(run.final_generator, asdict(cfg))  # a Ctrl-C here waits for the write: nothing is half done
        report = write_report(run, asdict(cfg), s.history, final, s.last_checkpoint or resume)
    say(f"done: {cfg.epochs} epochs; generator {final}; report {report}")
    return s.last_checkpoint or Path(resume)


def resume(path: str | Path, overrides: dict, **hooks) -> Path:
    """Continue the run saved in `path` with its own config, changed only by `overrides` (option values the user
    gave: epochs, learning rates, folders...; see config.resumed); options that would change the networks are
    refused. The run writes where `path` is, unless overrides name other folders."""
    saved, saved_cfg = load_checkpoint(path)
    return train(resumed(saved_cfg, overrides, path), resume=path, saved=saved, **hooks)


def stopped(s: TrainingState, cfg: Config, run: RunFolder, signal_name: str | None, minutes, say) -> Path:
    """Save a mid-epoch checkpoint after Ctrl-C, SIGTERM or the time limit, and say how to continue."""
    path = s.save(run.partial_checkpoint(s.epoch), asdict(cfg))
    where = f"in epoch {s.epoch + 1} after step {s.pos // cfg.batch_size}"
    if signal_name:
        raise TrainingInterrupted(f"stopped by {signal_name} {where}; saved {path}. "
                                  f"Continue with: python cli.py resume {path}")
    s.export(run.final_generator, asdict(cfg))
    say(f"stopped at the time limit ({minutes:g} min) {where}; saved {path}; continue with: python cli.py resume {path}")
    return path


# ---- loading what a run saved ----

def build_checked(build, cfg: Config, weights, path, what: str) -> nn.Module:
    """A network built from `cfg` with `weights` loaded, checked first on the meta device: a file whose config asks
    for huge networks, or whose weights do not fit its config, is refused before any memory is allocated."""
    with torch.device("meta"):
        check_weights(build(cfg), weights, path, what)
    net = build(cfg)
    net.load_state_dict(weights)
    return net


def load_checkpoint(path: str | Path) -> tuple[dict, Config]:
    """A full training checkpoint, every part checked against the config it holds, and that config."""
    state = read_training_checkpoint(path)
    cfg = checked_config(state, path)
    with torch.device("meta"):
        check_weights(build_generator(cfg), state.get("G"), path, "generator")
        check_weights(build_discriminator(cfg), state.get("D"), path, "discriminator")
        if state.get("G_ema") is not None:
            check_weights(build_generator(cfg), state["G_ema"], path, "generator average")
    rows = len(fixed_inputs(cfg)[0])
    if not fixed_noise_ok(state["fixed_z"], rows, cfg.latent_dim):
        raise GANError(f"{path} is damaged or inconsistent (its fixed noise is not {rows} x {cfg.latent_dim} "
                       f"floats): use another checkpoint")
    return state, cfg


def load_generator(path: str | Path, device: torch.device | str = "cpu") -> tuple[Generator, Config]:
    """Rebuild the generator from the config stored in a checkpoint or exported generator file (its
    moving-average weights when the run kept them: those are the ones that draw best)."""
    state = read_checkpoint_file(path)
    cfg = checked_config(state, path)
    G = build_checked(build_generator, cfg, state.get("G_ema") or state.get("G"), path, "generator")
    return G.to(device).eval(), cfg


# ---- sampling ----

def sample_images(G: nn.Module, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
    """G(z) in eval mode (BatchNorm uses its running statistics), as images in [0, 1] on the CPU."""
    was_training = G.training
    G.eval()
    with torch.no_grad():
        labels = labels.to(z.device) if labels is not None else None
        images = G(z, labels).add_(1).div_(2).clamp_(0, 1).cpu()
    G.train(was_training)
    return images


def generate(G: Generator, n: int, seed: int | None = None, digit: int | None = None, batch: int = 1024) -> torch.Tensor:
    """n new images in [0, 1], shape (n, 1, 28, 28), on the CPU; repeatable for a given seed. A conditional
    generator draws `digit`, or the classes 0-9 in turn when it is None."""
    device = device_of(G)
    rng = torch.Generator().manual_seed(seed) if seed is not None else None
    labels = class_labels(G, n, digit)
    chunks = []
    for start in range(0, n, batch):
        z = torch.randn(min(batch, n - start), G.latent_dim, generator=rng)
        chunk_labels = labels[start:start + len(z)] if labels is not None else None
        chunks.append(sample_images(G, z.to(device), chunk_labels))
    return torch.cat(chunks)


def class_labels(G: Generator, n: int, digit: int | None) -> torch.Tensor | None:
    classes = getattr(G, "n_classes", 0)
    if not classes:
        return None
    if digit is not None:
        check_int("digit", digit, 0, classes - 1)
    return torch.full((n,), digit) if digit is not None else torch.arange(n) % classes


def generate_and_plot_samples(generator: nn.Module | str | Path | None = None, n: int = 16, nrow: int | None = None,
                              seed: int | None = None, out: str | Path | None = None, show: bool | None = None,
                              digit: int | None = None, sampler: Callable | None = None,
                              checkpoint_dir: str | Path | None = None, device: torch.device | str = "cpu",
                              force: bool = False) -> torch.Tensor:
    """Draw n digits from `generator` and plot them: a module, the path of a checkpoint or exported generator, or
    None for the newest checkpoint in checkpoint_dir (default checkpoints/, and failing that the shipped
    model; see rundir.find_generator).

    The grid is shown in a matplotlib figure when there is a display (a desktop or a notebook) and saved to `out`
    otherwise (default: a new samples/generated_<time>.png); an `out` ending in .npy saves the raw array instead.
    An existing `out` is replaced only with `force`, and only when it is an earlier drawing of this tool.
    With `digit`, only that digit: a conditional generator is asked for it; an unconditional one needs a
    `sampler(G, n, seed, digit) -> images`, such as digits.rejection_sampler(), which keeps what the shipped
    classifier calls that digit. A conditional generator's digits come in order, row by row, in a near-square
    grid (a row per digit when n is a multiple of 10). Returns the images: (n, 1, 28, 28) floats in [0, 1].
    """
    return draw_samples(generator, n, nrow, seed, out, show, digit, sampler, checkpoint_dir, device, force)[0]


def draw_samples(generator, n=16, nrow=None, seed=None, out=None, show=None, digit=None, sampler=None,
                 checkpoint_dir=None, device="cpu", force=False) -> tuple[torch.Tensor, Path | None]:
    """generate_and_plot_samples, returning also the file it wrote (None when it only showed the grid)."""
    as_array, n, nrow, seed, digit = check_drawing(generator, n, nrow, seed, out, digit)
    check_sample_count(n, as_grid=not as_array)
    note = None
    if generator is None:
        generator, note = find_generator(checkpoint_dir)
    if isinstance(generator, (str, Path)):
        generator, cfg = load_generator(generator, resolve_device(str(device)))
        check_digit_source(generator, cfg, digit)
    conditional = getattr(generator, "n_classes", 0)
    if digit is not None and not conditional and sampler is None:
        raise GANError("an unconditional generator cannot be asked for a digit: pass sampler=digits.rejection_sampler()"
                       " (the command line does), or train a conditional model")
    class_labels(generator, n, digit)  # a digit the model does not have is refused before anything is said
    if note:
        print(note, file=sys.stderr)
    images = (sampler or generate)(generator, n, seed=seed, digit=digit)
    if not torch.is_tensor(images) or images.dim() != 4 or len(images) != n:
        raise BadType(f"the sampler returned {type(images).__name__} {tuple(getattr(images, 'shape', ()))}, not {n} "
                      f"images as a tensor (n, channels, height, width)")
    if as_array:
        return images, save_drawing(images, out, "generated", force=force)
    if digit is None and nrow is None:
        cells, nrow = grid_layout(images, class_labels(generator, n, None), conditional)
    else:
        cells, nrow = images, nrow or max(1, math.ceil(math.sqrt(n)))
    return images, show_or_save_grid(cells, nrow, out, show, force)


def check_digit_source(G: Generator, cfg: Config, digit: int | None) -> None:
    """An unconditional model is told a digit only through the MNIST classifier: other datasets cannot be."""
    if digit is not None and not G.n_classes and cfg.images is not None:
        raise GANError(f"{cfg.images} was a flat folder, so its model has no classes to ask for: train on a folder "
                       f"with a subfolder per class to draw one of them")
    if digit is not None and not G.n_classes and cfg.dataset != "mnist":
        raise GANError("--digit on an unconditional model needs the MNIST classifier: "
                       "train a conditional model (the default, without --no-conditional)")
