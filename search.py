"""The quality search of issue 28: each lever alone against the default, per epoch, through the real training loop.

    python search.py --data-dir ../shared/data --lever "beta1=0" --seed 0 --epochs 30 --at 10 20 30 > rows.jsonl

Each run trains the labelled default of the search's time (`python cli.py train --width 16 --beta1 0.5 --ema 0.999`:
DCGAN, batch 256, Adam 8e-4, bf16 where the CPU is fast at it) with one lever changed, and scores G's moving average
at the epochs --at names with the built-in evaluation (n = 10,000 against the MNIST test set: FID, precision, recall).
The levers that are not options of the product are defined here, as small changes to gan.py's step and networks; the
moving-average decay is measured in every run at once, from extra averages of the same G. No checkpoints are written:
it is a measurement, not a run. With --train FOLDER it is a run instead: the lever trains through gan.train itself,
writing checkpoints, grids and the final generator as `cli.py train` does, and --resume (with --lr, a new rate)
continues such a run; that is how the shipped model v8 was trained (50 epochs, then on at half the rate; it is the
second run's epoch 65, runs/v8/checkpoints/gan_epoch_65.pth):

    python search.py --data-dir data --lever "G 40, D 48, rp, R1+R2 0.3, no-bn D" --epochs 50 --seed 3 --train runs/v8
    python search.py --data-dir data --lever "G 40, D 48, rp, R1+R2 0.3, no-bn D" --epochs 70 --lr 4e-4 \
        --train runs/v8 --resume runs/v8/checkpoints/gan_epoch_50.pth
"""

from __future__ import annotations

import signal

if __name__ == "__main__" and hasattr(signal, "pthread_sigmask"):  # as in cli.py: a Ctrl-C while Python
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM, signal.SIGHUP})  # loads waits for main()

import argparse
import contextlib
import copy
import hashlib
import json
import os
import shlex
import sys
import time
import weakref
from dataclasses import replace
from pathlib import Path
from unittest import mock

import torch
import torch.nn.functional as F
from torch import nn

import evaluate
import gan
import rundir
from checkpoint import (CHECKPOINT_KIND, RESUME_COMMAND, has_batchnorm, path_of, peek, resume_command, run_of,
                        save_state, shell_path)
from config import BadValue, one_line
from device import resolve_precision
from files import TrainingInterrupted, hold_stop_signals

# Moving averages kept side by side in every run; with the warm-up (1 + t) / (10 + t), a higher decay is the same as
# 0.999 for the first 30 epochs.
DECAYS = (0.98, 0.99, 0.995, 0.999)


# ---- the levers that are not product options ----

def no_batchnorm(cfg):
    """D as the DCGAN's, without BatchNorm: it sees real and fake in one pass."""
    w = [cfg.width_of_d << i for i in range(gan.dcgan_stages(cfg))]
    layers = gan.down(cfg.n_channels, w[0], norm=False)
    for i in range(1, len(w)):
        layers += gan.down(w[i - 1], w[i], kernel=3 if cfg.size == 28 and i == 2 else 4, norm=False)
    D = gan.Discriminator(nn.Sequential(*layers, nn.Flatten()), w[-1] * 16, cfg.n_classes)
    D.features.apply(gan.init_dcgan_weights), D.head.apply(gan.init_dcgan_weights)
    return D


def spectral(cfg):
    """No BatchNorm, and spectral normalisation on D's convolutions and head (Miyato et al. 2018; not on the class
    embedding, which starts at zero, where the normalisation divides 0 by 0)."""
    D = no_batchnorm(cfg)
    for m in list(D.modules()):
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.utils.parametrizations.spectral_norm(m)
    return D


class ClassifyingDiscriminator(gan.Discriminator):
    """D with a second head that names the digit, as AC-GAN's (Odena et al. 2017), beside the class projection: with
    classes=True it returns that head's 10 logits too. The step trains the head on real digits only and asks G to
    draw digits it names as asked (`make_step(classes=...)`). D keeps the terms' weight and whether G's applies to
    the digits the head misnames only (`naming`: the two as floats, and a third, 1, where the head is a probe: trained
    on D's features detached, so that its term shapes the head alone, not D) with its weights, so that a checkpoint
    says which lever trained it."""

    def __init__(self, features: nn.Sequential, n_features: int, n_classes: int, naming: tuple):
        super().__init__(features, n_features, n_classes)
        self.classify = nn.Linear(n_features, n_classes)  # registered last: its weights come last in parameters()
        self.register_buffer("naming", as_stored(naming))

    def forward(self, images, labels=None, classes: bool = False, detach: bool = False):
        h = self.features(images)
        logit = self.head(h).squeeze(1) + (self.embed(labels) * h).sum(dim=1)
        return (logit, self.classify(h.detach() if detach else h)) if classes else logit


def classifying(weight: float, misnamed_only: bool = False, probe: bool = False):
    """A builder of the no-BatchNorm D with a head that names the digit (`ClassifyingDiscriminator`), for the terms'
    `weight`, G's term on misnamed digits only or not, and the head a probe or not (the builder's .naming)."""
    def build(cfg):
        D = no_batchnorm(cfg)
        D = ClassifyingDiscriminator(D.features, D.head.in_features, cfg.n_classes, build.naming)
        D.head.apply(gan.init_dcgan_weights), D.classify.apply(gan.init_dcgan_weights)
        return D
    build.naming = (float(weight), bool(misnamed_only)) + ((True,) if probe else ())
    return build


def as_stored(naming: tuple) -> torch.Tensor:
    """A naming head's settings as D's `naming` buffer keeps them: float32 (0.1 is 0.10000000149)."""
    return torch.tensor([float(v) for v in naming])


def naming_of(lever: str) -> tuple | None:
    """A lever's naming head: its terms' weight, whether G's is on misnamed digits only (and True where the head is
    a probe); None without one."""
    return getattr(parts(lever)[1], "naming", None)


def said(naming) -> str:
    """A naming head's settings in words: 'weight 1', 'weight 1 on misnamed digits only', 'a probe, weight 1'."""
    weight, only, *probe = naming
    return ("a probe, " if any(probe) else "") + f"weight {weight:g}" + (" on misnamed digits only" if only else "")


def with_classifier(path: str, folder: str, seed: int, naming: tuple) -> str:
    """How a run of a naming lever starts from an epoch of another lever's run: a copy of checkpoint `path` with a new
    naming head (DCGAN init, from `seed`; its terms as `naming` says) added to D and to D's optimizer (no moments yet,
    as Adam has for a weight before its first step), as a run of its own (a new run id, so it can never write into,
    prune or replace the checkpoints of the run it came from), written to folder/start/ and used again by the same
    start. Returns the copy's path; `path` itself where it is not a checkpoint of a D without BatchNorm and without
    the head (a naming run's own, or a file that gan.resume will refuse in one line)."""
    saved = peek(Path(path))
    weights = (saved or {}).get("D")
    if saved is None or saved.get("kind") != CHECKPOINT_KIND or not isinstance(weights, dict) or \
            has_batchnorm(weights) or "classify.weight" in weights or "embed.weight" not in weights:
        return path
    run = hashlib.sha256(f"{saved.get('run')} {saved.get('lineage')} {saved.get('epoch')} {saved.get('pos')} {seed} "
                         f"naming head {said(naming)}".encode()).hexdigest()[:12]
    others = sorted(p for p in (Path(folder) / "checkpoints").glob("*.pth") if run_of(p) != run)
    if others:  # its own folder, say: the start is checked here, before a file is written
        raise gan.GANError(f"{others[0]} is another run's, and a run with a naming head is a run of its own: pass a "
                           f"new --train folder (not {folder})")
    out = Path(folder) / "start" / Path(path).name
    if os.path.lexists(out):
        return started(out, run, path, seed)
    n_classes, n_features = weights["embed.weight"].shape
    head = {"weight": torch.empty(n_classes, n_features), "bias": torch.zeros(n_classes)}
    nn.init.normal_(head["weight"], 0.0, 0.02, generator=torch.Generator().manual_seed(seed))  # the DCGAN init's
    saved = {**saved, "run": run, "D": {**weights, **{f"classify.{k}": v for k, v in head.items()},
                                        "naming": as_stored(naming)}}
    group = saved["opt_d"]["param_groups"][0]  # the head comes last in D.parameters() (ClassifyingDiscriminator)
    saved["opt_d"] = {**saved["opt_d"], "param_groups": [{**group, "params": [*group["params"], *range(
        len(group["params"]), len(group["params"]) + 2)]}]}
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise gan.GANError(f"could not make the folder {out.parent} ({e.strerror}): move away what is in its place, "
                           "or pass another --train folder") from None
    try:
        return str(save_state(out, saved, replace=False))
    except FileExistsError:  # another command, started at the same moment, wrote it first
        return started(out, run, path, seed)


def started(out: Path, run: str, path: str, seed: int) -> str:
    """`out`, where a start is there already: used again if it is this run's (an earlier try of the same command,
    one refused for want of --epochs, say, or a second command started at once), refused if not."""
    there = peek(out)
    if there and there.get("run") == run and "classify.weight" in (there.get("D") or {}):
        return str(out)
    raise gan.GANError(f"{out} is there already and is not the start of this run (of {path} with --seed {seed} and "
                       "this lever): pass another --train folder, or move it away")


DEFAULT_D = gan.build_discriminator  # gan's own, kept here: a run patches gan.build_discriminator with a lever's
DEFAULT_G = gan.build_generator  # the same for G


class MinibatchStd(nn.Module):
    """StyleGAN's minibatch standard deviation (Karras et al. 2018): one more channel holding how much the images of
    each group of 4 differ, so D can tell a batch of too-similar fakes from a real one."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        g = 4 if b % 4 == 0 else 1
        spread = x.float().view(g, b // g, c, h, w).std(dim=0, correction=0).mean(dim=(1, 2, 3))  # (b / g,)
        return torch.cat([x, spread.to(x.dtype).repeat(g).view(b, 1, 1, 1).expand(b, 1, h, w)], dim=1)


def minibatch_std(cfg):
    """The default D with the minibatch standard deviation before its head."""
    D = DEFAULT_D(cfg)
    c = D.head.in_features // 16
    D = gan.Discriminator(nn.Sequential(*D.features[:-1], MinibatchStd(), nn.Flatten()), (c + 1) * 16, cfg.n_classes)
    D.head.apply(gan.init_dcgan_weights)
    return D


def wider_d(factor: int):
    """The default D with `factor` times the channels (G keeps its width). At the same width D costs about a sixth of
    G's multiply-adds, but its cost grows with the square of the factor and it runs three times a step (real and fake
    for D's loss, fake again for G's): four times as wide, the run took 3.5x as long per epoch."""
    def build(cfg):
        return DEFAULT_D(replace(cfg, d_width=cfg.width_of_d * factor))
    return build


class ClassBatchNorm(nn.BatchNorm2d):
    """BatchNorm whose scale and shift are looked up per class (conditional BatchNorm, as in the projection paper's
    and BigGAN's generators): the label reaches every stage of G, not only its input."""

    def __init__(self, channels: int, n_classes: int):
        super().__init__(channels, affine=False)
        self.scale, self.shift = nn.Embedding(n_classes, channels), nn.Embedding(n_classes, channels)
        nn.init.normal_(self.scale.weight, 1.0, 0.02), nn.init.zeros_(self.shift.weight)  # the DCGAN init's

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        x = super().forward(x)
        return x * self.scale(labels)[:, :, None, None] + self.shift(labels)[:, :, None, None]


class ClassNormGenerator(gan.Generator):
    """gan.Generator whose BatchNorm layers take the labels as well."""

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if labels is None:
            labels = torch.randint(0, self.n_classes, (z.size(0),), device=z.device)
        x = torch.cat([z, F.one_hot(labels, self.n_classes).to(z.dtype)], dim=1)
        for layer in self.body:
            x = layer(x, labels) if isinstance(layer, ClassBatchNorm) else layer(x)
        return x


def class_norm_generator(cfg):
    """The default G with each BatchNorm made a class-conditional one."""
    G = DEFAULT_G(cfg)
    body = nn.Sequential(*(ClassBatchNorm(m.num_features, cfg.n_classes) if isinstance(m, nn.BatchNorm2d) else m
                           for m in G.body))
    return ClassNormGenerator(body, G.latent_dim, G.n_classes, cfg)


def second_half_decay(epoch: int, epochs: int) -> float:
    """The learning rate's factor in `epoch` (0-based): 1 for the first half, then straight down towards 0."""
    return min(1.0, 2 * (epochs - epoch) / epochs)


def translate_cutout(x: torch.Tensor) -> torch.Tensor:
    """DiffAugment (Zhao et al. 2020) for digits: a shift of up to 1/8 of the side and a cutout of half the side,
    differentiable, the same kind of change for real and fake images."""
    b, _, h, w = x.shape
    s = h // 8
    shift = torch.randint(-s, s + 1, (2,)).tolist()  # one shift per batch: torch.roll, then zero what wrapped round
    x = torch.roll(x, shifts=shift, dims=(2, 3))
    mask = torch.ones(b, 1, h, w, device=x.device, dtype=x.dtype)
    cy, cx = torch.randint(0, h, (b,)), torch.randint(0, w, (b,))
    ys, xs = torch.arange(h).view(1, h, 1), torch.arange(w).view(1, 1, w)
    hole = ((ys - cy.view(b, 1, 1)).abs() < h // 4) & ((xs - cx.view(b, 1, 1)).abs() < w // 4)
    mask[:, 0][hole.to(x.device)] = 0
    return (x + 1) * mask - 1  # cut to black (-1), the background of digits


def translate_only(x: torch.Tensor) -> torch.Tensor:
    """DiffAugment's shift alone."""
    s = x.size(2) // 8
    return torch.roll(x, shifts=torch.randint(-s, s + 1, (2,)).tolist(), dims=(2, 3))


def shift_each(x: torch.Tensor, s: int = 2) -> torch.Tensor:
    """Each image moved by its own random shift of up to `s` pixels each way, the edge filled with background (-1):
    the translation of consistency regularisation (Zhang et al. 2020), which D is asked not to notice."""
    b, _, h, w = x.shape
    padded = F.pad(x, (s, s, s, s), value=-1.0).permute(0, 2, 3, 1)  # (b, h + 2s, w + 2s, c)
    dy, dx = (torch.randint(0, 2 * s + 1, (b, 1, 1), device=x.device) for _ in range(2))
    rows = dy + torch.arange(h, device=x.device).view(1, h, 1)  # (b, h, 1): the rows each image keeps
    cols = dx + torch.arange(w, device=x.device).view(1, 1, w)
    return padded[torch.arange(b, device=x.device).view(b, 1, 1), rows, cols].permute(0, 3, 1, 2)


def consistency(D, real, fake, labels, fake_labels, d_real, d_fake, weights) -> torch.Tensor:
    """bCR (Zhao et al. 2021): D's logit on each image shifted a little (`shift_each`) should be its logit on the
    image, for real images at weights[0] and generated ones at weights[1]. Only D's loss holds it: G never sees a
    shifted image, so, unlike DiffAugment, nothing lets G draw its digits off centre."""
    on_real, on_fake = D(shift_each(real), labels).float(), D(shift_each(fake), fake_labels).float()
    return weights[0] * (on_real - d_real).pow(2).mean() + weights[1] * (on_fake - d_fake).pow(2).mean()


def penalty(d_real, d_fake, real, fake, r1: float, r2: float) -> torch.Tensor:
    """R1 and R2: half the weighted squared norm of D's gradient at the real and at the fake images."""
    g_real, g_fake = torch.autograd.grad((d_real.sum(), d_fake.sum()), (real, fake), create_graph=True)
    squared = lambda g: g.float().pow(2).flatten(1).sum(1).mean()  # noqa: E731
    return (r1 * squared(g_real) + r2 * squared(g_fake)) / 2


def noise_and_labels(G, n: int, device, paired: bool = False):
    """z and the labels to ask G for (None for a label-free G); paired: image i and i + n // 2 ask for one digit."""
    z = torch.randn(n, G.latent_dim, device=device)
    labels = torch.randint(0, G.n_classes, (n,), device=device) if G.n_classes else None
    if paired and labels is not None:
        labels[n // 2:n // 2 * 2] = labels[:n // 2]
    return z, labels


def nearness(fake: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """MSGAN's term: 1 / (how far apart the batch's two halves are drawn, per unit of distance between their noises).
    With paired labels (`noise_and_labels`) the halves ask for the same digits: it pushes G to vary within a digit."""
    half = len(z) // 2
    if half == 0:  # one image: no pair to draw apart
        return fake.new_zeros((), dtype=torch.float32)
    apart = (fake[:half].float() - fake[half:2 * half].float()).abs().mean()
    return 1 / (apart / (z[:half] - z[half:2 * half]).abs().mean() + 1e-5)


def naming_term(logits: torch.Tensor, asked: torch.Tensor, misnamed_only: bool = False) -> torch.Tensor:
    """G's naming term: the cross-entropy of the head's logits against the digits asked for; with `misnamed_only`,
    counted for the digits the head names otherwise only (0 for the rest, the mean over all), so that G is asked to
    redraw what reads as another digit and is left free in the rest."""
    if not misnamed_only:
        return F.cross_entropy(logits, asked)
    return (F.cross_entropy(logits, asked, reduction="none") * (logits.argmax(1) != asked)).mean()


def steps_taken(opt: torch.optim.Optimizer) -> int:
    """How many steps Adam has taken (its count for the first weight; 0 before the first)."""
    first = opt.param_groups[0]["params"][0]
    return int(opt.state[first]["step"]) if first in opt.state else 0


def d_logits(D, images, labels, named: bool = False, detach: bool = False):
    """D's logits, and with `named` its naming head's (else None), as floats; `detach`: the head's from D's features
    detached (a probe's term then trains the head alone)."""
    if not named:
        return D(images, labels).float(), None
    logits, names = D(images, labels, classes=True, detach=detach)
    return logits.float(), names.float()


def d_pair(D, real, fake, labels, fake_labels, aug, named: bool = False, detach: bool = False):
    """D's logits on real and fake, in one pass where D has no BatchNorm, and with `named` its naming head's on each
    (else None; `detach` as `d_logits`), all after `aug`."""
    if D.batchnorm:
        if named:
            raise gan.GANError("the naming head's terms need D without BatchNorm (search.classifying builds one)")
        return D(aug(real), labels).float(), D(aug(fake), fake_labels).float(), None
    both = torch.cat([labels, fake_labels]) if labels is not None else None
    logits, names = d_logits(D, aug(torch.cat([real, fake])), both, named, detach)
    n = real.size(0)
    return (*logits.split(n), names.split(n) if names is not None else None)


def make_step(loss: str = "bce", r1: float = 0.0, r2: float = 0.0, augment=None, every: int = gan.R1_EVERY,
              mode_seeking: float = 0.0, cr: tuple[float, float] = (0.0, 0.0), classes: float = 0.0,
              misnamed_only: bool = False, probe: bool = False):
    """A train_step like gan.train_step with a choice of loss (bce: the default's; rp: relativistic pairing, R3GAN),
    lazy R1 and R2 penalties (every `every` steps, weight times `every`), an augmentation of D's inputs, and MSGAN's
    mode-seeking term (Mao et al. 2019; `nearness`) in G's loss at weight `mode_seeking` (the G loss it returns holds
    the term), bCR's consistency (`consistency`) in D's at weights `cr` (real, generated), and with a
    `ClassifyingDiscriminator` the cross-entropy of its naming head at weight `classes`: on the real digits' labels
    in D's loss, on the asked-for labels of the generated ones in G's (AC-GAN's terms, D's on real digits only, so the
    head learns what real digits look like, not what G draws; G's, with `misnamed_only`, on the digits the head names
    otherwise only: `naming_term`; with `probe`, D's term reaches the head alone, through D's features detached, so
    that the head reads D without reshaping it). The penalties fall on
    the run's steps 0, every, 2 every...: counted by D's optimizer, whose state a checkpoint keeps, so a resumed run
    puts them where the uninterrupted run would (read once per optimizer: on a GPU each read would wait for it)."""
    aug = augment or (lambda x: x)
    taken = weakref.WeakKeyDictionary()  # D's optimizer -> steps it has taken

    def step(G, D, opt_g, opt_d, real, labels, real_target, _r1=0.0, amp=None):  # D's loss holds its naming term
        done = taken[opt_d] if opt_d in taken else steps_taken(opt_d)
        taken[opt_d], lazy = done + 1, done % every == 0
        z, fake_labels = noise_and_labels(G, real.size(0), real.device, paired=bool(mode_seeking))
        with amp():
            fake = G(z, fake_labels)
        fake_in = fake.detach().float()
        penal = lazy and (r1 or r2)
        if penal:
            real, fake_in = real.detach().requires_grad_(True), fake_in.requires_grad_(True)
        with amp():
            d_real, d_fake, named = d_pair(D, real, fake_in, labels, fake_labels, aug, bool(classes), probe)
            d_loss = (F.softplus(-(d_real - d_fake)).mean() if loss == "rp"
                      else F.softplus(-d_real).mean() + F.softplus(d_fake).mean())
        if penal:
            d_loss = d_loss + every * penalty(d_real, d_fake, real, fake_in, r1, r2)
        if classes:
            d_loss = d_loss + classes * F.cross_entropy(named[0], labels)
        if any(cr):
            with amp():
                d_loss = d_loss + consistency(D, real, fake_in, labels, fake_labels, d_real, d_fake, cr)
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()

        D.requires_grad_(False)
        with amp():
            if loss == "rp":
                d_real_g, d_fake_g, named = d_pair(D, real.detach(), fake, labels, fake_labels, aug, bool(classes))
                g_loss = F.softplus(-(d_fake_g - d_real_g)).mean()
            else:
                d_fake_g, fake_named = d_logits(D, aug(fake), fake_labels, bool(classes))
                named = (None, fake_named)
                g_loss = F.softplus(-d_fake_g).mean()
        if mode_seeking:
            g_loss = g_loss + mode_seeking * nearness(fake, z)
        if classes:
            g_loss = g_loss + classes * naming_term(named[1], fake_labels, misnamed_only)
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
        D.requires_grad_(True)
        return torch.stack([d_loss, g_loss, torch.sigmoid(d_real).mean(), torch.sigmoid(d_fake).mean()]).detach()

    step.probe = probe
    return step


BEFORE = {"beta1": 0.5, "ema": 0.999, "width": 16}  # the labelled default before this search: every lever changes it
NOW = {"beta1": 0.0, "ema": 0.99, "width": 16}  # the labelled default after its first round: the later rounds' base
# (the fourth look's width 20 became the default after it: config.LABELS)
def naming_lever(weight: float, misnamed_only: bool = False, probe: bool = False) -> tuple:
    """v7's recipe (G 40, D 32, rp, R1+R2 0.3, no-bn D) with a naming head: its D and its step, told the head's
    settings once."""
    return ({**NOW, "width": 40, "d_width": 32}, classifying(weight, misnamed_only, probe),
            make_step("rp", r1=0.3, r2=0.3, classes=weight, misnamed_only=misnamed_only, probe=probe))


LEVERS = {  # name -> (config changes, D builder or None, train_step or None[, rate factor or None[, G builder]])
    "baseline": ({}, None, None),
    "beta1=0": ({"beta1": 0.0}, None, None),
    "no-bn D, beta1=0": ({"beta1": 0.0}, no_batchnorm, None),
    "spectral norm D": ({}, spectral, None),
    "diffaugment": ({}, None, make_step(augment=translate_cutout)),
    "diffaugment, translation only": ({}, None, make_step(augment=translate_only)),
    "R1+R2 0.3, no-bn D": ({}, no_batchnorm, make_step(r1=0.3, r2=0.3)),
    "rp, R1+R2 0.3, no-bn D, beta1=0": ({"beta1": 0.0}, no_batchnorm, make_step("rp", r1=0.3, r2=0.3)),
    "rp, R1+R2 0.3, no-bn D, beta1=0, Adam 2e-4": ({"beta1": 0.0, "lr_g": 2e-4, "lr_d": 2e-4}, no_batchnorm,
                                                   make_step("rp", r1=0.3, r2=0.3)),
    # the second round, for recall at the default's 30 epochs
    "default": (NOW, None, None),
    "default, minibatch std D": (NOW, minibatch_std, None),
    "default, rate down in the second half": (NOW, None, None, second_half_decay),
    "default, D at half the rate": ({**NOW, "lr_d": 4e-4}, None, None),
    # the third round: capacity
    "default, D four times as wide": (NOW, wider_d(4), None),
    "default, width 24": ({**NOW, "width": 24}, None, None),
    "default, width 20": ({**NOW, "width": 20}, None, None),  # a fourth look: the cheaper step of capacity
    "default, D at twice the rate": ({**NOW, "lr_d": 1.6e-3}, None, None),
    # a fifth round (today's default, width 20): the label at every stage of G
    "width 20, class BatchNorm G": ({**NOW, "width": 20}, None, None, None, class_norm_generator),
    # a sixth round (today's default): a term in G's loss for variety within a digit
    "width 20, mode seeking 1": ({**NOW, "width": 20}, None, make_step(mode_seeking=1.0)),
    # a seventh round: D kept from pulling away, by dropout after each of its LeakyReLUs (`--d-dropout`, as the Keras
    # ACGAN example's D and the dcgan-tf reference have it; the last one drops the class projection's features too)
    "width 20, D dropout 0.3": ({**NOW, "width": 20, "d_dropout": 0.3}, None, None),
    "width 20, D dropout 0.1": ({**NOW, "width": 20, "d_dropout": 0.1}, None, None),
    # an eighth round: D asked to give an image shifted by a pixel or two the logit it gives the image (bCR), on
    # real and generated images (the paper's weights, 10 each) and on real ones only (CR, as BigGAN-CR had it)
    "width 20, bCR 10": ({**NOW, "width": 20}, None, make_step(cr=(10.0, 10.0))),
    "width 20, CR 10 on real": ({**NOW, "width": 20}, None, make_step(cr=(10.0, 0.0))),
    # the first round's R3GAN recipe (behind at its 10 epochs, but catching up) to today's default's length
    "width 20, rp, R1+R2 0.3, no-bn D": ({**NOW, "width": 20}, no_batchnorm, make_step("rp", r1=0.3, r2=0.3)),
    # the same at the shipped model's size: v5's recipe (`--train`, 50 epochs, seed 0), v6's and v7's first 50 epochs
    "G 40, D 32, rp, R1+R2 0.3, no-bn D": ({**NOW, "width": 40, "d_width": 32}, no_batchnorm,
                                           make_step("rp", r1=0.3, r2=0.3)),
    # its D half as wide again: for the last two targets (recall, every digit drawn as asked), D's capacity
    "G 40, D 48, rp, R1+R2 0.3, no-bn D": ({**NOW, "width": 40, "d_width": 48}, no_batchnorm,
                                           make_step("rp", r1=0.3, r2=0.3)),
    # G half as wide again (R3GAN's game keeps D from pulling away, which sank G 48 under the old one): for recall
    "G 48, D 32, rp, R1+R2 0.3, no-bn D": ({**NOW, "width": 48, "d_width": 32}, no_batchnorm,
                                           make_step("rp", r1=0.3, r2=0.3)),
    # v7's recipe with a head in D that names the digit (AC-GAN's terms, weight 1), for the target of every digit
    # drawn as asked: trained as v7's second stage, from its first stage's epoch 50 (`with_classifier`)
    "G 40, D 32, rp, R1+R2 0.3, no-bn D, naming head 1": naming_lever(1.0),
    # at weight 1 every digit was drawn as asked and recall fell: the same at lower weights, for the trade between them
    **{f"G 40, D 32, rp, R1+R2 0.3, no-bn D, naming head {w}": naming_lever(w) for w in (0.1, 0.03)},
    # all of them cost recall: G's term on the digits the head misnames only, the others left free
    "G 40, D 32, rp, R1+R2 0.3, no-bn D, naming head 1 on misnamed": naming_lever(1.0, misnamed_only=True),
    # so did that: is it the head's term reshaping D's features? The head as a probe, on D's features detached (its
    # term trains the head alone), with G's term on all digits at 0.1 and on misnamed digits only at 1
    "G 40, D 32, rp, R1+R2 0.3, no-bn D, naming probe 0.1": naming_lever(0.1, probe=True),
    "G 40, D 32, rp, R1+R2 0.3, no-bn D, naming probe 1 on misnamed": naming_lever(1.0, misnamed_only=True, probe=True),
}


def parts(lever: str) -> tuple:
    """A lever's five parts, the optional ones None: config changes, D builder, step, rate factor, G builder."""
    return (*LEVERS[lever], None, None)[:5]


def lever_config(lever: str, **fields) -> gan.Config:
    """The config a lever trains with: the default before the search, `fields` (data_dir, seed...), its changes."""
    return replace(gan.Config(**fields), **{**BEFORE, **LEVERS[lever][0]})


@contextlib.contextmanager
def patched(lever: str):
    """gan.py with the lever's D builder, G builder and training step in place of its own, as it was again after."""
    _, build_d, step, _, build_g = parts(lever)
    with contextlib.ExitStack() as patches:
        for name, new in (("build_discriminator", build_d), ("build_generator", build_g), ("train_step", step)):
            if new:
                patches.enter_context(mock.patch.object(gan, name, new))
        yield patches


def train(lever: str, seed: int, epochs: int | None, data_dir: str, folder: str, resume: str | None = None,
          lr: float | None = None, keep_last: int | None = None) -> Path:
    """Train with `lever` through gan.train itself, as `python cli.py train` does (checkpoints every 5 epochs,
    grids, the final generator, the run's records in folder/checkpoints and folder/samples): how a lever that is not
    an option of the product trains a model to keep. With `resume` (a checkpoint of such a run), continue it into
    folder, to `epochs` in all where given, and at the Adam rate `lr` (both networks) where given, as `cli.py resume`
    does for the product's runs: in the run's own folder it goes on, in a copy's the copy does, and in a new folder it
    branches (gan.train refuses a folder of another run). `keep_last`: epoch checkpoints to keep (0: all; None: the
    run's, 3 for a new one). Only here are the lever's D and step built. Returns the path of the final generator."""
    _, _, _, rate, build_g = parts(lever)
    if rate or build_g:
        raise gan.GANError(f"--train takes levers that change the config, D or the training step; {lever!r} "
                           f"{'changes the rate per epoch' if rate else 'builds a G of its own'}, which the model "
                           "would not keep: score it without --train")
    with patched(lever):
        if resume is not None:
            check_trained_with(lever, resume, new_rate=lr is not None)
            if naming_of(lever) is not None:  # another lever's run: D gets its naming head
                resume = with_classifier(resume, folder, seed, naming_of(lever))
            given = {"epochs": epochs or None, "lr": lr, "keep_last": keep_last}
            # into folder: the run's own, a copy's, or a new branch's
            last = gan.resume(resume, {"data_dir": data_dir, "checkpoint_dir": f"{folder}/checkpoints",
                                       "sample_dir": f"{folder}/samples",
                                       **{k: v for k, v in given.items() if v is not None}})
        else:
            kept = {"keep_last": keep_last} if keep_last is not None else {}
            last = gan.train(lever_config(lever, data_dir=data_dir, seed=seed, epochs=epochs or 10, save_every=5,
                                          checkpoint_dir=f"{folder}/checkpoints", sample_dir=f"{folder}/samples",
                                          **kept))
    return last.parent / rundir.FINAL  # beside the last checkpoint


def check_trained_with(lever: str, path: str, new_rate: bool = False) -> None:
    """Refuse a checkpoint whose config is not the lever's (another lever's, a product run's); with `new_rate` (--lr
    given now) the rates are not compared. Levers that differ only in their step (diffaugment and the baseline, say)
    look alike here: the printed --resume command names the run's."""
    saved = peek(Path(path))
    if why := named_as(lever, saved):
        raise gan.GANError(f"{path} was not trained with the lever {lever!r} ({why}): pass the lever it was trained "
                           "with (the one whose name says its naming head)")
    wrong = unlike(lever, saved, new_rate)
    if wrong:
        said = ", ".join(f"{k} is {v}" for k, v in wrong.items())
        raise gan.GANError(f"{path} was not trained with the lever {lever!r} (its {said}): pass the lever it was "
                           "trained with, and the --lr it was resumed with if one was given (a run of cli.py "
                           f"train goes on with `{resume_command(path)}`)")


def named_as(lever: str, saved: dict | None) -> str | None:
    """Why a checkpoint (as peek reads it) is not a run of `lever` by its naming head, or None: a head the lever does
    not have, or one trained otherwise. A naming lever takes checkpoints without the head as well (`with_classifier`
    gives them one)."""
    weights, naming = (saved or {}).get("D"), naming_of(lever)
    if not isinstance(weights, dict) or "classify.weight" not in weights:
        return None
    if naming is None:
        return "its D has a head that names the digit, which the lever does not have"
    trained = weights.get("naming")
    if not torch.is_tensor(trained) or trained.shape not in ((2,), (3,)):  # (3,): a probe's (`classifying`)
        return f"its D's naming head has no settings recorded, the lever's are {said(naming)}"
    if trained.tolist() != as_stored(naming).tolist():
        return f"its D's naming head was trained at {said(trained.tolist())}, not {said(naming)}"
    return None


def unlike(lever: str, saved: dict | None, new_rate: bool) -> dict:
    """The options of a checkpoint (as peek reads it) that are not the lever's, with their values; the rates left
    out with `new_rate`. Nothing for a file that cannot be read (the resume then says why)."""
    config = (saved or {}).get("config")
    if not isinstance(config, dict):
        return {}
    return {k: config.get(k) for k, v in {**BEFORE, **LEVERS[lever][0]}.items()
            if config.get(k) != v and not (new_rate and k in ("lr_g", "lr_d"))}


def run(lever: str, seed: int, epochs: int, at: list[int], data_dir: str, n: int) -> list[dict]:
    """Train the default before, with `lever` changed, for `epochs` epochs, scoring at the epochs `at` names: a row
    (a dict, also printed as a JSON line) per score. gan.py is as it was again when it returns."""
    cfg, rate = lever_config(lever, data_dir=data_dir, seed=seed, device="cpu"), parts(lever)[3]
    torch.manual_seed(seed)
    images, labels = gan.load_pixels(cfg)
    with patched(lever) as patches:
        s = gan.new_training_state(cfg, torch.device("cpu"))
        emas = {d: s.G_ema if d == cfg.ema else copy.deepcopy(s.G_ema) for d in DECAYS}
        update = gan.update_ema
        patches.enter_context(mock.patch.object(gan, "update_ema", lambda _, G, __, t: [
            update(e, G, d, t) for d, e in emas.items()]))
        return train_and_score(s, cfg, images, labels, emas, epochs, at, n, lever, rate)


def train_and_score(s, cfg, images, labels, emas: dict, epochs: int, at: list[int], n: int, lever: str,
                    rate=None) -> list[dict]:
    """Epochs of gan.run_epoch, every moving average scored at the last mark, the default's at the others; `rate`
    (epoch, epochs) -> factor scales the learning rates per epoch (None: 1 throughout)."""
    rate = rate or (lambda epoch, epochs: 1.0)
    precision = resolve_precision(cfg.precision, torch.device("cpu"), cfg.arch, cfg.batch_size)
    lens, rows, seconds = evaluate.mnist_lens(cfg.data_dir), [], 0.0
    while s.epoch < epochs:
        for opt, lr in ((s.opt_g, cfg.lr_g), (s.opt_d, cfg.lr_d)):
            opt.param_groups[0]["lr"] = lr * rate(s.epoch, epochs)
        t = time.perf_counter()
        gan.run_epoch(s, cfg, images, labels, lambda: False, precision=precision)
        seconds += time.perf_counter() - t
        gan.check_finite(s.sums, s.epoch, len(images) // cfg.batch_size)  # a NaN loss ends the run in one line
        if s.epoch not in at:
            continue
        for decay, G in emas.items() if s.epoch == max(at) else [(cfg.ema, s.G_ema)]:
            try:
                scores = evaluate.evaluate_generator(G, n, lens, seed=0)
            except torch.linalg.LinAlgError:  # features with NaN in them: a run that fell apart
                scores = dict.fromkeys(("fid", "precision", "recall"), float("nan"))
            rows.append({"lever": lever, "seed": cfg.seed, "epoch": s.epoch, "ema": decay,
                         "s_per_epoch": seconds / s.epoch, **{k: scores[k] for k in ("fid", "precision", "recall")}})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    """The command line. Stop signals held while torch loaded arrive now; one during a run saves it and says how to
    continue, and a second (or one before the run) ends the script in one line, as in cli.py."""
    try:
        hold_stop_signals(False)
        command_line()
    except KeyboardInterrupt:
        print("Error: interrupted", file=sys.stderr)
        raise SystemExit(130) from None


def command_line() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", required=True)
    p.add_argument("--lever", choices=list(LEVERS), required=True, metavar="LEVER",
                   help="one of: " + "; ".join(LEVERS))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, help="epochs to train (default 10; with --resume, the run's own)")
    p.add_argument("--at", type=int, nargs="+", default=[5, 10], help="epochs to score at")
    p.add_argument("--n", type=int, default=10_000, help="samples per score")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's choice)")
    p.add_argument("--train", metavar="FOLDER", help="train through gan.train into FOLDER/checkpoints and "
                   "FOLDER/samples, keeping the model (no scores; --at and --n are not used)")
    p.add_argument("--resume", metavar="CHECKPOINT", help="with --train: continue that run from this checkpoint")
    p.add_argument("--lr", type=float, help="with --resume: the Adam rate of both networks from there on (as "
                   "cli.py resume --lr)")
    p.add_argument("--keep-last", type=int, help="with --train: epoch checkpoints to keep, newest first (0: all; "
                   "default 3, or with --resume the run's), as cli.py train --keep-last")
    a = p.parse_args()
    check_args(a)
    if a.threads:
        torch.set_num_threads(a.threads)
    try:
        if a.train is not None:
            train(a.lever, a.seed, a.epochs, a.data_dir, a.train, a.resume, a.lr, a.keep_last)
        else:
            run(a.lever, a.seed, a.epochs or 10, a.at, a.data_dir, a.n)
    except (TrainingInterrupted, gan.GANError) as e:  # one line, as from every command of the project, options named
        said = e.for_cli() if isinstance(e, BadValue) else str(e)  # as this script spells them: --lr, not lr
        raise SystemExit(tell(said, a, "" if isinstance(e, TrainingInterrupted) else "Error: ")) from e


def tell(message: str, a: argparse.Namespace, prefix: str) -> int:
    """Print gan.train's message (a stop, a refusal) on stderr with its advice for cli.py turned into this script's:
    `python cli.py resume PATH`, where PATH is this lever's, into the --train --resume command that builds the lever's
    networks (with this command's --epochs where PATH has fewer, and after a stop its --lr). Returns the exit status:
    130 after a stop, 1 after an error."""
    *_, command = [None, *RESUME_COMMAND.finditer(message)]  # the last: a folder's name may hold the words
    if command:
        path = path_of(command[1])
        saved = peek(Path(path))
        if lever_of(a.lever, saved):
            message = message[:command.start()] + again(a, path, saved, stopped=not prefix) + message[command.end():]
    if a.train is not None and ("--checkpoint-dir" in message or "--sample-dir" in message):
        message += " (here: --train FOLDER, whose checkpoints and samples go to FOLDER/checkpoints and FOLDER/samples)"
    print(prefix + one_line(message), file=sys.stderr)
    return 130 if not prefix else 1


def again(a: argparse.Namespace, path: str, saved: dict | None, stopped: bool) -> str:
    """The command that continues `path` (`saved`, as peek read it) with this lever."""
    epochs = a.epochs if a.epochs and a.epochs > (saved or {}).get("epoch", 0) else None
    return (f"python search.py --data-dir {shell_path(a.data_dir)} --lever {shlex.quote(a.lever)} --train "
            f"{shell_path(a.train) if a.train else 'FOLDER'} " + (f"--epochs {epochs} " if epochs else "")
            + (f"--lr {a.lr!r} " if a.lr is not None and stopped else "")  # the rate exact: 6 digits could change it
            + (f"--keep-last {a.keep_last} " if a.keep_last is not None else "") + "--resume " + shell_path(path))


def lever_of(lever: str, saved: dict | None) -> bool:
    """Whether a checkpoint (as peek read it) could be a run of `lever`: its config and its D's kind (True for a file
    that could not be read)."""
    weights = (saved or {}).get("D")
    return not unlike(lever, saved, new_rate=True) and not named_as(lever, saved) and (
        not isinstance(weights, dict) or has_batchnorm(weights) == (parts(lever)[1] is None))  # gan's D has BatchNorm


def check_args(a: argparse.Namespace) -> None:
    """One line for values that cannot work, before anything is read or written."""
    epochs = a.epochs or 10
    if a.train is not None and not a.train.strip():
        raise SystemExit("Error: --train needs a folder, e.g. --train runs/v7")
    if a.resume is not None and not a.resume.strip():
        raise SystemExit("Error: --resume needs a checkpoint of a --train run, e.g. --resume runs/v7/checkpoints/"
                         "gan_epoch_45.pth")
    if a.resume is not None and a.train is not None and Path(a.train).resolve() == Path(a.resume).resolve().parent:
        raise SystemExit(one_line(f"Error: --train {a.train} is the run's checkpoints folder: pass the run's folder, "
                                  f"the one above it ({Path(a.train).resolve().parent})"))
    if a.resume is not None and a.train is None:
        raise SystemExit("Error: --resume continues a --train run: pass --train with the run's folder too")
    if a.keep_last is not None and a.train is None:
        raise SystemExit("Error: --keep-last keeps the checkpoints of a --train run: pass --train too (a measurement "
                         "writes none)")
    if a.lr is not None and a.resume is None:
        raise SystemExit("Error: --lr changes the rate of a --train run resumed: pass --resume with its checkpoint (a "
                         "new run trains at the lever's)")
    most = 8 * (os.cpu_count() or 1)
    if a.threads > most:  # torch crashes (a segfault) at some huge counts
        raise SystemExit(f"Error: --threads {a.threads} is more than this machine can use: pass at most {most} "
                         f"({os.cpu_count()} cores), or 0 for torch's choice")
    measuring = a.train is None
    if (a.epochs is not None and a.epochs < 1 or a.threads < 0
            or measuring and (not all(1 <= e <= epochs for e in a.at) or a.n < 100)):
        raise SystemExit(f"Error: pass --epochs 1 or more and --threads 0 or more, and to score, --at epochs between 1 "
                         f"and --epochs ({epochs}) and --n 100 or more (got --epochs {a.epochs}, --threads "
                         f"{a.threads}, --at {a.at}, --n {a.n})")


if __name__ == "__main__":
    main()
