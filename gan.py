"""A small, fast GAN that learns MNIST (or your own pictures) and draws new images.

    python cli.py train --epochs 10 --data-dir ./data     # checkpoints/ and samples/ fill as it learns
    python cli.py generate --n 16                         # new digits from the newest checkpoint (or the shipped one)
    from gan import generate_and_plot_samples             # the same from Python

This file is the GAN itself, in the order the data flows: data -> networks -> training step -> training loop ->
sampling. What a run is asked to do is a config.Config. What guards a run (its folders, checkpoints, records, grids
and stop requests) is the shell in rundir.py, which the loop calls at each epoch's end; the file format is
checkpoint.py's. Quality metrics live in evaluate.py, which builds on this file and reaches the loop as a hook.
Importing this file only defines things: no downloads, folders or device probing happen until a function is called.
"""

from __future__ import annotations

import contextlib
import copy
import math
import sys
import time
import unicodedata
from dataclasses import replace
from functools import partial
from pathlib import Path
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from checkpoint import TrainingState, read_generator, read_training_checkpoint
from config import LABEL_FREE, LABELS  # noqa: F401  (the label-dependent defaults, for readers of gan.LABELS)
from config import (DATASETS, KEPT_FIELDS, MODEL_FIELDS, R1_EVERY, STAT_NAMES, BadType, BadValue, Config, Drawing,
                    GANError, check_minutes, check_spread, check_unchanged, one_line, resumed)
from device import autocast, device_of, device_settings, own_random_state, resolve_device, resolve_precision
from files import TrainingInterrupted  # noqa: F401  (what train raises on Ctrl-C, for callers of gan)
from record import check_sample_count, check_tensorboard, format_stats, load_matplotlib, plot_samples
import references
from rundir import Diverged, RunFolder, find_generator

# ---- data ----

def load_pixels(cfg: Config, train: bool = True, say=print) -> tuple[torch.Tensor, torch.Tensor]:
    """What cfg trains on, whole, as uint8 images (N, C, H, W) and labels (N,) on the CPU: MNIST-style IDX files
    through torchvision (idx.py), or with cfg.images a folder of your own pictures (images.py). Slicing batches out
    of one tensor is much faster than a DataLoader with per-image PIL transforms."""
    if cfg.images is not None:
        from images import load_folder
        return load_folder(cfg, say)
    from idx import read_idx
    images, labels = read_idx(DATASETS[cfg.dataset], Path(cfg.data_dir), train)
    return images.unsqueeze(1), labels.long()


def to_signed(images: torch.Tensor) -> torch.Tensor:
    """uint8 pixels 0..255 -> floats in [-1, 1], the range of G's tanh."""
    return images.float().div_(127.5).sub_(1.0)


def load_mnist(data_dir: str | Path, train: bool = True, device: torch.device | str = "cpu"):
    """MNIST's images (N, 1, 28, 28) in [-1, 1] and labels (N,) on `device`."""
    images, labels = load_pixels(Config(data_dir=str(data_dir)), train)
    return to_signed(images.to(device)), labels.to(device)


# ---- networks ----

class Generator(nn.Module):
    """z (B, latent_dim) -> images (B, C, H, W) in [-1, 1]. A conditional generator also takes labels (B,), read as
    one-hot vectors appended to z; without them it draws a random class for each z. `cfg`: the config it was built
    from (its dataset, size, colour and class names; an MNIST model's by default)."""

    def __init__(self, body: nn.Sequential, latent_dim: int, n_classes: int = 0, cfg: Config | None = None):
        super().__init__()
        self.latent_dim, self.n_classes, self.body = latent_dim, n_classes, body
        self.cfg = cfg or Config(latent_dim=latent_dim, conditional=bool(n_classes))

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.n_classes:
            if labels is None:
                labels = torch.randint(0, self.n_classes, (z.size(0),), device=z.device)
            z = torch.cat([z, F.one_hot(labels, self.n_classes).to(z.dtype)], dim=1)  # (B, latent + classes)
        return self.body(z)


class Discriminator(nn.Module):
    """images (B, C, H, W) -> one logit per image (B,); the losses apply the sigmoid. A conditional discriminator
    adds <embed(label), features> to the logit: the projection discriminator of Miyato & Koyama (2018), which asks
    "is this a real 7?" rather than "is this real?" and "is this a 7?"."""

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
        return logit + (self.embed(labels) * h).sum(dim=1) if self.n_classes else logit


def init_dcgan_weights(module: nn.Module) -> None:
    """The DCGAN paper's init: conv and dense weights from N(0, 0.02), BatchNorm scales from N(1, 0.02)."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class FromLatent(nn.ConvTranspose2d):
    """A DCGAN generator's first layer, z (B, n, 1, 1) -> (B, C, k, k): a transposed convolution of a 1x1 input is one
    matrix product, and computed as one it ran 2-4x faster here; the weights keep ConvTranspose2d's shape."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        n, c, k, _ = self.weight.shape
        out = z.flatten(1) @ self.weight.permute(0, 2, 3, 1).reshape(n, k * k * c)  # (B, k * k * C)
        return out.view(-1, k, k, c).permute(0, 3, 1, 2)                           # -> (B, C, k, k), channels last


def up(cin: int, cout: int, kernel: int = 4, stride: int = 2, padding: int = 1,
       conv: type = nn.ConvTranspose2d) -> list[nn.Module]:
    """Transposed convolution -> BatchNorm -> ReLU: one upsampling step of a DCGAN generator."""
    return [conv(cin, cout, kernel, stride, padding, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


def down(cin: int, cout: int, kernel: int = 4, norm: bool = True, dropout: float = 0.0) -> list[nn.Module]:
    """Strided convolution -> [BatchNorm] -> LeakyReLU(0.2) [-> Dropout]: one step of a DCGAN discriminator."""
    return [nn.Conv2d(cin, cout, kernel, 2, 1, bias=not norm), *([nn.BatchNorm2d(cout)] if norm else []),
            nn.LeakyReLU(0.2, inplace=True), *([nn.Dropout(dropout)] if dropout else [])]


def dcgan_stages(cfg: Config) -> int:
    """Resolutions a DCGAN passes below the image's own: 4, 8, 14 for 28x28; 4, 8, 16 for 32; 4 ... 32 for 64."""
    return 3 if cfg.size == 28 else int(math.log2(cfg.size // 4))


def build_generator(cfg: Config) -> Generator:
    """The DCGAN of the paper, a stage per doubling from 4x4 (28x28: 4 -> 8 -> 14 -> 28), or a reference network."""
    classes = cfg.n_classes if cfg.conditional else 0
    z = cfg.latent_dim + classes
    if cfg.arch == "dcgan":
        w = [8 * cfg.width >> i for i in range(dcgan_stages(cfg))]              # [8w, 4w, 2w(, w)]
        body = nn.Sequential(nn.Unflatten(1, (z, 1, 1)),                         # (B, z) -> (B, z, 1, 1)
                             *up(z, w[0], 4, 1, 0, conv=FromLatent),             # -> (B, 8w, 4, 4)
                             *(layer for i in range(1, len(w)) for layer in       # -> (B, 2w, S/2, S/2); 28: 14x14
                               up(w[i - 1], w[i], padding=2 if cfg.size == 28 and i == 2 else 1)),
                             nn.ConvTranspose2d(w[-1], cfg.n_channels, 4, 2, 1, bias=False),  # -> (B, C, S, S)
                             nn.Tanh())
    else:
        body = references.generator_body(cfg, z)
    if cfg.arch in ("dcgan", "dcgan-tf"):
        body.apply(init_dcgan_weights)
    return Generator(body, cfg.latent_dim, classes, cfg)


def build_discriminator(cfg: Config) -> Discriminator:
    """(B, C, S, S) -> (B, w, S/2, S/2) -> ... -> (B, 4w (8w at 64), 4, 4) -> a logit (28: 28 -> 14 -> 7 -> 4);
    w is --d-width where given, else --width."""
    if cfg.arch == "dcgan":
        w = [cfg.width_of_d << i for i in range(dcgan_stages(cfg))]              # [w, 2w, 4w(, 8w)]
        layers = down(cfg.n_channels, w[0], norm=False, dropout=cfg.d_dropout)
        for i in range(1, len(w)):
            layers += down(w[i - 1], w[i], kernel=3 if cfg.size == 28 and i == 2 else 4, dropout=cfg.d_dropout)
        features, n = nn.Sequential(*layers, nn.Flatten()), w[-1] * 4 * 4        # the paper's last 4x4 conv is the head
    else:
        features, n = references.discriminator_features(cfg)
    D = Discriminator(features, n, cfg.n_classes if cfg.conditional else 0)
    if cfg.arch in ("dcgan", "dcgan-tf"):
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
    """One update of D, then one of G. Returns [d_loss, g_loss, D(x), D(G(z))] as a tensor on the device, so the
    caller can sum it without forcing a host sync every step. `labels` only for conditional GANs; `r1` weighs the
    penalty on D's gradient at the real images (0: none this step). The forward passes run inside `amp()` (bf16
    autocast, say); the backward passes, the penalty's gradient and the optimizer steps outside it, on fp32 weights."""
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
    """Adam for each network, with the fused kernel (one pass over all weights; 7-25% faster here) wherever this
    torch has it."""
    try:  # a private helper of torch's: where it is missing, the devices that have had the kernel longest
        from torch.optim.optimizer import _get_fused_kernels_supported_devices as fused_devices
    except ImportError:
        fused_devices = lambda: ("cpu", "cuda")  # noqa: E731
    betas, fused = (cfg.beta1, 0.999), device_of(G).type in fused_devices()
    return (torch.optim.Adam(G.parameters(), lr=cfg.lr_g, betas=betas, fused=fused),
            torch.optim.Adam(D.parameters(), lr=cfg.lr_d, betas=betas, fused=fused))


def update_ema(G_ema: nn.Module, G: nn.Module, decay: float, step: int) -> None:
    """G_ema <- decay * G_ema + (1 - decay) * G, with the warm-up (1 + t) / (10 + t) so the random init does not
    linger; BatchNorm statistics are copied, not averaged. One fused call each, not a kernel launch per tensor."""
    decay = min(decay, (1 + step) / (10 + step))
    with torch.no_grad():
        torch._foreach_lerp_(list(G_ema.parameters()), list(G.parameters()), 1 - decay)
        if buffers := list(G_ema.buffers()):  # an MLP without BatchNorm has none
            torch._foreach_copy_(buffers, list(G.buffers()))


def fixed_inputs(cfg: Config) -> tuple[torch.Tensor, torch.Tensor | None, int]:
    """The noise (and labels) behind every epoch's sample grid, and its row length: a conditional grid has one row
    of 10 per class (10 x 10 for digits), an unconditional one 8 x 8."""
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
    """Train epoch s.epoch + 1 from position s.pos on uint8 `images`. Returns True when it is complete, False when
    should_stop() said so between two steps (s.pos, s.perm and s.sums then say where it got to)."""
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
        s.sums += train_step(s.G, s.D, s.opt_g, s.opt_d, to_signed(images[idx]),
                             labels[idx] if cfg.conditional else None, real_target, r1, amp)
        if s.G_ema is not None:
            update_ema(s.G_ema, s.G, cfg.ema, s.epoch * steps + step)
        s.pos = (step + 1) * batch
        if should_stop():
            s.seconds += time.perf_counter() - t0
            check_finite(s.sums, s.epoch + 1, step + 1)
            return False
        if on_step and ((step + 1) % LOG_EVERY == 0 or step + 1 == steps):
            means = check_finite(s.sums, s.epoch + 1, step + 1) / (step + 1)
            on_step(s.epoch + 1, cfg.epochs, step + 1, steps,
                    format_stats(means, (step + 1 - first) * batch / (time.perf_counter() - t0)))
    s.seconds += time.perf_counter() - t0
    s.epoch, s.pos = s.epoch + 1, 0
    return True


def check_finite(sums: torch.Tensor, epoch: int, step: int) -> torch.Tensor:
    """Read the running sums (one host sync) and stop if a loss has become NaN or infinite."""
    sums = sums.cpu()
    if not torch.isfinite(sums).all():
        raise Diverged(f"training diverged at epoch {epoch}, step {step} (a loss became NaN or infinite)")
    return sums


def train(cfg: Config, resume: str | Path | None = None, minutes: float | None = None, console=None,
          on_step: Callable | None = None, evaluate: Callable | None = None, saved: dict | None = None) -> Path:
    """Train (or continue training) a GAN as `cfg` says; returns the path of the last checkpoint written.

    With `resume`, everything comes from that checkpoint (networks, optimizers, epoch, fixed noise, history, random
    state) and training continues exactly where it stopped, up to cfg.epochs epochs in all. With `minutes`, it
    stops after that much time, saving where it got to, as Ctrl-C does. Hooks: `console.print` gets a line per epoch
    (as it is: a Rich console of your own may read a folder's name as markup; without one, print, one line each),
    `on_step(epoch, epochs, step, steps, stats)` the progress within one, and `evaluate(G, cfg, device) -> dict`
    quality numbers every cfg.eval_every epochs. `saved`: the checkpoint `resume` names, if read already.
    """
    say = console.print if console is not None else lambda line: print(one_line(line))  # a folder's name as it is
    check_minutes(minutes)
    if cfg.eval_every and evaluate is None:
        raise GANError("--eval-every needs an evaluation hook: pass evaluate=evaluate.evaluate_during_training")
    load_matplotlib()  # the loss plot needs it: a broken MPLBACKEND is said now, not after the first epoch
    check_tensorboard(cfg.tensorboard)
    device = resolve_device(cfg.device)
    if resume is not None and saved is None:  # train(cfg, resume=path): cfg must be that run's
        saved, saved_cfg = load_checkpoint(resume)
        check_unchanged(saved_cfg, {name: getattr(cfg, name) for name in MODEL_FIELDS + KEPT_FIELDS}, resume,
                        "pass the saved values, or call gan.resume(path, overrides), which starts from them")
    run = RunFolder(cfg.checkpoint_dir, cfg.sample_dir)
    run.check_resumable(saved, cfg.epochs, resume)
    with own_random_state(device):  # the caller's random numbers (a notebook's, say) are theirs again afterwards
        images, labels = load_pixels(cfg, say=say)
        cfg = settle_channels(cfg, images)
        torch.manual_seed(cfg.seed)
        s = new_training_state(cfg, device)
        if saved:
            s.restore(saved, device, lr_g=cfg.lr_g, lr_d=cfg.lr_d, path=resume)
        precision = resolve_precision(cfg.precision, device, cfg.arch, cfg.batch_size)
        with run.session(s, cfg, resume, saved, precision, minutes, say) as session, device_settings(device, precision):
            session.start(images, labels)
            images, labels = images.to(device), labels.to(device)  # the checksum was taken on the host copy
            while s.epoch < cfg.epochs:
                if not run_epoch(s, cfg, images, labels, session.should_stop, on_step, precision):
                    return session.stopped()
                due = cfg.eval_every and (s.epoch % cfg.eval_every == 0 or s.epoch == cfg.epochs)
                session.end_epoch(check_finite(s.sums, s.epoch, len(images) // cfg.batch_size),
                                  evaluate(s.G_sample, cfg, device) if due else {}, lambda: epoch_grid(s, cfg))
            return session.finish()


def settle_channels(cfg: Config, images: torch.Tensor) -> Config:
    """A new run on --images with --channels auto learns colour where a picture has it (images.load_folder kept 3
    channels then), else grey; a saved run keeps what it trained on."""
    return replace(cfg, channels=str(images.size(1))) if cfg.channels == "auto" and cfg.images else cfg


def epoch_grid(s: TrainingState, cfg: Config) -> tuple[torch.Tensor, int]:
    """The images of an epoch's sample grid (the fixed noise, through the averaged G) and its row length."""
    _, labels, row = fixed_inputs(cfg)
    return draw(s.G_sample, s.fixed_z.to(device_of(s.G)), labels), row


def resume(path: str | Path, overrides: dict, **hooks) -> Path:
    """Continue the run saved in `path` with its own config, changed only by `overrides` (option values the user
    gave: epochs, learning rates, folders...; see config.resumed); options that would change the networks are
    refused. The run writes where `path` is, unless overrides name other folders."""
    saved, saved_cfg = load_checkpoint(path)
    return train(resumed(saved_cfg, overrides, path), resume=path, saved=saved, **hooks)


def load_checkpoint(path: str | Path) -> tuple[dict, Config]:
    """A full training checkpoint, every part checked against the networks its config builds, and that config."""
    return read_training_checkpoint(path, build_generator, build_discriminator, lambda cfg: len(fixed_inputs(cfg)[0]))


# ---- sampling ----

def load_generator(source: str | Path | None = None, device: torch.device | str = "cpu",
                   checkpoint_dir: str | Path | None = None) -> tuple[Generator, Config]:
    """The generator to draw from and its config: from a checkpoint or exported generator file (its moving-average
    weights when the run kept them: they draw best), or with no source the newest checkpoint in checkpoint_dir
    (default checkpoints/, and failing that the shipped model: rundir.find_generator). G.origin names the file, and
    G.note, when no source was given, says which one was found, for the caller to tell the user."""
    note = None
    if source is None:
        source, note = find_generator(checkpoint_dir)
    weights, cfg = read_generator(source, build_generator)
    G = build_generator(cfg)
    G.load_state_dict(weights)
    G.origin, G.note = str(source), note  # for messages: where it came from
    return G.to(resolve_device(str(device))).eval(), cfg


def draw(G: nn.Module, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
    """What G draws for the noise z (and labels), in eval mode (BatchNorm's running statistics), as images in
    [0, 1] on the CPU."""
    was_training = G.training
    G.eval()
    with torch.no_grad():
        images = G(z, labels.to(z.device) if labels is not None else None).add_(1).div_(2).clamp_(0, 1).cpu()
    G.train(was_training)
    return images


def generate(G: Generator, n: int, seed: int | None = None, digit: int | str | None = None,
             batch: int = 1024, spread: float = 1.0) -> torch.Tensor:
    """n new images (n, C, H, W) in [0, 1] on the CPU, repeatable for a seed. A conditional generator draws the class
    `digit` (an index, or a class name of a model of your own folders), or its classes in turn when it is None.
    `spread` scales the noise: above 1 more varied images, below 1 more typical ones."""
    spread = check_spread(spread)
    rng = torch.Generator().manual_seed(seed) if seed is not None else None
    labels = class_labels(G, n, digit)
    chunks = []
    for start in range(0, n, batch):  # each chunk its own draw of noise: bounded memory for any n
        z = torch.randn(min(batch, n - start), G.latent_dim, generator=rng) * spread
        chunks.append(draw(G, z.to(device_of(G)), labels[start:start + len(z)] if labels is not None else None))
    return torch.cat(chunks)


def class_index(G: Generator, digit: int | str | None) -> int | None:
    """The class asked for as an index: a name looked up among the classes G was trained on."""
    cfg = getattr(G, "cfg", None)
    if isinstance(digit, str):
        names = cfg.classes if cfg is not None and cfg.conditional and cfg.classes else None
        if names is None:
            origin = getattr(G, "origin", "this generator")
            if cfg is not None and cfg.images is not None:
                raise BadValue(f"{origin} was trained on a folder without class subfolders: it has no classes to "
                               f"ask for {digit!r}; leave the class out")
            raise BadValue(f"{origin} has no class named {digit!r}: classes by name belong to models trained on "
                           f"--images DIR with a subfolder per class: to draw from such a run, pass its "
                           f"--checkpoint-dir (or --checkpoint PATH); or ask this one for a digit by its number "
                           f"({{digit}} 0-9)")
        if digit not in names:  # one spelling of its accents for another (a Mac's folder names against typed ones)
            digit = next((name for name in names if unicodedata.normalize("NFC", name) ==
                          unicodedata.normalize("NFC", digit)), digit)
        if digit not in names:
            raise BadValue(f"{getattr(G, 'origin', 'this generator')} has no class {digit!r}: it knows "
                           f"{', '.join(names)}")
        return names.index(digit)
    if digit is not None and G.n_classes and not 0 <= digit < G.n_classes:
        raise BadValue(f"{{digit}} must be between 0 and {G.n_classes - 1}, got {digit}")
    return digit


def check_not_misread(G: Generator, digit: int | str | None) -> None:
    """A user's class number, refused where G's classes are named by numbers that differ from their places (folders
    3 and 7: 1 would draw the 7s). Only for what a user asked for: code may ask for class 1 by place."""
    cfg = getattr(G, "cfg", None)
    names = cfg.classes if cfg is not None and cfg.conditional and cfg.classes else []
    if isinstance(digit, int) and 0 <= digit < len(names) and any(name.isdecimal() for name in names) and \
            names[digit] != str(digit):
        raise BadValue(f"{getattr(G, 'origin', 'this generator')} names its classes {', '.join(names)}, so {{digit}} "
                       f"{digit} (by place: {names[digit]!r}) is easy to misread: ask by name, as --class "
                       f"{names[digit]} (from Python: digit={names[digit]!r})")


def class_title(G: Generator, digit: int | str) -> str:
    """The class asked for as a reader knows it: its name where G's classes have names, else the digit."""
    names = getattr(getattr(G, "cfg", None), "classes", None)
    return repr(names[digit]) if names and isinstance(digit, int) else repr(digit)


def class_labels(G: Generator, n: int, digit: int | str | None) -> torch.Tensor | None:
    """The labels a conditional G is asked for: all `digit`, or its classes in turn; None for an unconditional G."""
    digit = class_index(G, digit)
    if not G.n_classes:
        return None
    return torch.full((n,), digit) if digit is not None else torch.arange(n) % G.n_classes


def check_drawn(images, n: int) -> torch.Tensor:
    """What a sampler returned, if it is n images (n, 1 or 3, H, W) of floats in [0, 1]; else one line saying what."""
    if not torch.is_tensor(images) or images.layout != torch.strided or images.is_meta or images.dim() != 4 or \
            len(images) != n or images.shape[1] not in (1, 3) or min(images.shape[2:]) < 1 or \
            not images.is_floating_point():
        what = " ".join(str(x) for x in (type(images).__name__, tuple(getattr(images, "shape", ())),
                                         getattr(images, "dtype", "")) if x != "")
        raise BadType(f"the sampler returned {what}, not {n} images as a float tensor (n, 1 or 3, height, width)")
    if not bool(((images >= 0) & (images <= 1)).all()):
        raise BadValue(f"the sampler returned values outside [0, 1] (from {float(images.min()):g} to "
                       f"{float(images.max()):g}{', or NaN' if bool(images.isnan().any()) else ''}): images are "
                       f"floats in [0, 1]")
    return images.detach().float()


def generate_and_plot_samples(generator: nn.Module | str | Path | None = None, n: int = Drawing.n,
                              nrow: int | None = None, seed: int | None = None, out: str | Path | None = None,
                              show: bool | None = None, digit: int | str | None = None,
                              sampler: Callable | None = None, checkpoint_dir: str | Path | None = None,
                              device: torch.device | str = Drawing.device, force: bool = Drawing.force,
                              say: Callable | None = None, spread: float = Drawing.spread) -> torch.Tensor:
    """Draw n images from `generator` and plot them: a module, the path of a checkpoint or exported generator, or
    None for the newest checkpoint in checkpoint_dir (default checkpoints/, and failing that the shipped model).

    The grid is shown in a matplotlib figure where there is a display (a desktop or a notebook) and saved to `out`
    otherwise (default: a new samples/generated_<time>.png, said through `say`); an `out` ending in .npy saves the
    array. An existing `out` is replaced only with `force`, and only when it is an earlier drawing. `digit`: one
    class (by index, or by name for a model of your own folders); an unconditional MNIST model needs a
    `sampler(G, n, seed, digit) -> images` such as digits.rejection_sampler(); `spread` scales the noise of the
    default sampler (above 1, more varied images; a sampler of your own has its own). A conditional generator's classes
    come in order, a row per class when n is a multiple of them. Returns the images: (n, C, H, W) floats in [0, 1].
    """
    ask = Drawing(checkpoint=None, checkpoint_dir=checkpoint_dir, n=n, out=out, nrow=nrow, seed=seed, digit=digit,
                  device=str(device), force=force, spread=spread)
    if generator is not None and not isinstance(generator, (str, Path)) and not (
            callable(generator) and hasattr(generator, "latent_dim")):
        raise BadType(f"generator must be a Generator, a checkpoint's path or None, got {type(generator).__name__}")
    if isinstance(generator, (str, Path)) or generator is None:
        generator, _ = load_generator(generator, ask.device, ask.checkpoint_dir)
    if ask.digit is not None and not generator.n_classes and sampler is None:
        raise GANError("an unconditional generator cannot be asked for a digit: pass sampler=digits.rejection_sampler()"
                       " (the command line does), or train a conditional model")
    class_labels(generator, 1, ask.digit)  # a class the model does not have is refused before anything is said
    if sampler is not None and ask.spread != 1:
        raise BadValue("spread scales the default sampler's noise, and a sampler of your own draws its own: give the "
                       "spread to the sampler instead, e.g. digits.rejection_sampler(spread=1.2)")
    for name, f in (("sampler", sampler), ("say", say)):
        if f is not None and not callable(f):
            raise BadType(f"{name} must be a function, got {type(f).__name__}")
    if show is not None and not isinstance(show, bool):
        raise BadType(f"show must be True, False or None, got {show!r}")
    shape = getattr(generator, "cfg", None)
    check_sample_count(ask.n, not str(ask.out).lower().endswith(".npy"),
                       shape.n_channels * shape.size ** 2 if shape else 784)
    check_not_misread(generator, ask.digit)
    sampler = sampler or partial(generate, spread=ask.spread)
    images = check_drawn(sampler(generator, ask.n, seed=ask.seed, digit=ask.digit), ask.n)
    by_class = class_labels(generator, ask.n, None) if ask.digit is None and ask.nrow is None else None
    written = plot_samples(images, by_class, generator.n_classes, ask.out, ask.nrow, show, ask.force)
    if getattr(generator, "note", None):  # said once the drawing is done: one line on stderr, never before an error
        print(one_line(generator.note), file=sys.stderr)
    if written is not None and say is not None:
        say(f"wrote {ask.n} images{f' of {class_title(generator, ask.digit)}' if ask.digit is not None else ''} from "
            f"{getattr(generator, 'origin', 'the generator')} to {written}")
    return images
