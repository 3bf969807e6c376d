"""A small, fast GAN that learns MNIST and draws new handwritten digits.

    python cli.py train --epochs 10 --data-dir ./data     # checkpoints/ and samples/ fill as it learns
    python cli.py generate --n 16                         # a grid of new digits from the newest checkpoint
    from gan import generate_and_plot_samples             # the same from Python

Everything about the GAN lives in this file, in the order the data flows:
config -> data -> networks -> training step -> training loop -> checkpoints -> sampling and plots.
Importing it only defines things: no downloads, folders or device probing happen until a function is called.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import math
import os
import signal
import struct
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn


class GANError(Exception):
    """A problem the user can fix (bad input, missing file, full disk); the CLI prints it as one line."""


class TrainingInterrupted(GANError):
    """Training stopped on Ctrl-C or SIGTERM after saving a checkpoint."""


# ---- config ----

ARCHS = ("mlp", "mlp-bn", "dcgan", "dcgan-tf")
MODEL_FIELDS = ("arch", "latent_dim", "width", "g_act", "d_dropout", "conditional", "dataset")  # fixed for a run
DATASETS = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST", "kmnist": "KMNIST"}  # torchvision class names


@dataclass
class Config:
    # model
    arch: str = "dcgan"  # mlp | mlp-bn | dcgan | dcgan-tf
    latent_dim: int = 100
    width: int = 16  # dcgan: channels of D's first layer (the DCGAN paper uses 64); G mirrors it
    g_act: str = "relu"  # mlp: activation of the generator's hidden layers, relu or leaky
    d_dropout: float = 0.0  # dropout after each hidden layer of D (mlp archs)
    ema: float = 0.999  # decay of a moving average of G's weights that draws the samples (0: off)
    conditional: bool = True  # G and D see the class label (FID 5.1 vs 20.5 without, same 16 epochs; bench.py)
    dataset: str = "mnist"  # mnist | fashion-mnist | kmnist
    # optimisation
    epochs: int = 16  # the defaults: about 10 minutes on 2 CPU cores (see bench.py)
    batch_size: int = 64
    lr: float = 2e-4
    lr_g: float | None = None  # overrides lr for G
    lr_d: float | None = None  # overrides lr for D
    beta1: float = 0.5
    label_smoothing: float | None = None  # target for real labels in D's loss, e.g. 0.9; None: 1.0
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    # files
    data_dir: str = "data"
    checkpoint_dir: str = "checkpoints"
    sample_dir: str = "samples"
    save_every: int = 1  # epochs
    sample_every: int = 1  # epochs
    keep_last: int = 3  # epoch checkpoints kept (0: all); the final one is always kept
    eval_every: int = 0  # epochs between built-in quality evaluations (0: none)
    eval_n: int = 2000  # samples per evaluation
    tensorboard: bool = False

    @property
    def lr_generator(self) -> float:
        return self.lr_g if self.lr_g is not None else self.lr

    @property
    def lr_discriminator(self) -> float:
        return self.lr_d if self.lr_d is not None else self.lr


def validate(cfg: Config) -> None:
    """Reject values that cannot train, with a message that says which option to fix."""
    if cfg.arch not in ARCHS:
        raise GANError(f"unknown --arch {cfg.arch!r}: choose one of {', '.join(ARCHS)}")
    if cfg.g_act not in ("relu", "leaky"):
        raise GANError(f"unknown --g-act {cfg.g_act!r}: choose relu or leaky")
    positive = {"epochs": cfg.epochs, "batch-size": cfg.batch_size, "latent-dim": cfg.latent_dim,
                "width": cfg.width, "lr": cfg.lr, "save-every": cfg.save_every, "sample-every": cfg.sample_every}
    positive.update({"lr-g": cfg.lr_g} if cfg.lr_g is not None else {})
    positive.update({"lr-d": cfg.lr_d} if cfg.lr_d is not None else {})
    for name, value in positive.items():
        if not value > 0 or not math.isfinite(value):
            raise GANError(f"--{name} must be a positive number, got {value}")
    for name, value in (("lr", cfg.lr), ("lr-g", cfg.lr_g), ("lr-d", cfg.lr_d)):
        if value is not None and value > 1:  # beyond ~1e38 Adam's step does not even fit a float32
            raise GANError(f"--{name} must be at most 1 (Adam moves each weight by about this much per step; "
                           f"2e-4 is typical), got {value}")
    for name, value, most in (("latent-dim", cfg.latent_dim, 10_000), ("width", cfg.width, 512)):
        if value > most:
            raise GANError(f"--{name} {value} is too large (at most {most:,}): the networks would not fit in memory")
    if not 0 <= cfg.beta1 < 1:
        raise GANError(f"--beta1 must be in [0, 1), got {cfg.beta1}")
    if not 0 <= cfg.d_dropout < 1:
        raise GANError(f"--d-dropout must be in [0, 1), got {cfg.d_dropout}")
    if cfg.label_smoothing is not None and not 0.5 < cfg.label_smoothing <= 1:
        raise GANError(f"--label-smoothing is the target for real labels and must be in (0.5, 1], got {cfg.label_smoothing}")
    if cfg.dataset not in DATASETS:
        raise GANError(f"unknown --dataset {cfg.dataset!r}: choose one of {', '.join(DATASETS)}")
    if not 0 <= cfg.ema < 1:
        raise GANError(f"--ema is a decay in [0, 1) (0: off, 0.999 typical), got {cfg.ema}")
    if cfg.eval_every < 0 or cfg.eval_n < 100:
        raise GANError(f"--eval-every must be 0 (off) or more and --eval-n at least 100, got {cfg.eval_every} and {cfg.eval_n}")
    if cfg.eval_every and cfg.dataset != "mnist":
        raise GANError("--eval-every measures digits with an MNIST classifier: use it with --dataset mnist only")
    if cfg.keep_last < 0:
        raise GANError(f"--keep-last must be 0 (keep all) or more, got {cfg.keep_last}")


def resolve_device(name: str = "auto") -> torch.device:
    """auto picks CUDA, then Apple's MPS, then the CPU; a named device that is missing is an error."""
    has_mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise GANError(f"unknown --device {name!r}: use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise GANError(f"--device {name} was asked for but this PyTorch sees no CUDA GPU: use --device auto or cpu")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise GANError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) here")
    if device.type == "mps" and not has_mps:
        raise GANError(f"--device {name} was asked for but Apple's MPS is not available: use --device auto or cpu")
    if device.type not in ("cpu", "cuda", "mps"):
        raise GANError(f"unsupported --device {name!r}: use auto, cpu, cuda, cuda:N or mps")
    return device


def device_of(module: nn.Module) -> torch.device:
    """Where a module's weights live (the CPU for one without any)."""
    for tensor in (*module.parameters(), *module.buffers()):
        return tensor.device
    return torch.device("cpu")


# ---- data ----

MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def load_dataset(name: str, data_dir: str | Path, train: bool = True, device: torch.device | str = "cpu"):
    """A whole 28x28 dataset as one tensor on `device`: images (N, 1, 28, 28) scaled to [-1, 1], labels (N,).

    torchvision finds the files in DATA_DIR/<MNIST|FashionMNIST|KMNIST>/raw or downloads them there. Holding
    the whole set on the device and slicing batches out of it is much faster than a DataLoader with
    per-image PIL transforms.
    """
    import torchvision.datasets

    if name not in DATASETS:
        raise GANError(f"unknown --dataset {name!r}: choose one of {', '.join(DATASETS)}")
    folder = DATASETS[name]
    raw = Path(data_dir) / folder / "raw"
    unpack_gz(raw)
    try:
        dataset = getattr(torchvision.datasets, folder)(root=str(data_dir), train=train, download=True)
    except RuntimeError as e:
        if "download" not in str(e).lower():
            raise GANError(f"could not read {folder} from {raw}: {e}. Delete the damaged files and try again") from None
        raise GANError(f"{folder} is not in {raw} and could not be downloaded (no network?): put "
                       f"{', '.join(MNIST_FILES)} (or their .gz) in {raw}/, or pass --data-dir to a folder that has "
                       f"{folder}/raw/ with them") from None
    except (OSError, ValueError, IndexError, EOFError, KeyError, TypeError, AssertionError) as e:
        # torchvision checks an IDX header with bare asserts and an unknown type code with a dict lookup
        detail = f"{type(e).__name__}: {e}" if str(e) else "bad IDX header"
        raise GANError(f"could not read {folder} from {raw} ({detail}): the IDX files look damaged; "
                       f"delete them and download again") from None
    images, labels = dataset.data, dataset.targets
    if images.dtype != torch.uint8 or images.dim() != 3 or tuple(images.shape[1:]) != (28, 28) or len(images) != len(labels):
        raise GANError(f"the files in {raw} do not hold 28x28 images with one label each: they look damaged")
    images = images.to(device).unsqueeze(1).float().div_(127.5).sub_(1.0)  # uint8 0..255 -> [-1, 1], like tanh
    return images, labels.long().to(device)


def unpack_gz(raw: Path) -> None:
    """Unpack FILE.gz to FILE where only the .gz is there. torchvision would first check the .gz against the
    official checksum and try to download on a mismatch, which fails offline for re-compressed copies (Debian's
    Fashion-MNIST package ships such copies); the unpacked IDX files are then read and checked as usual."""
    import gzip
    import shutil

    for name in MNIST_FILES:
        packed, unpacked = raw / f"{name}.gz", raw / name
        if packed.is_file() and not unpacked.exists():
            try:
                with gzip.open(packed, "rb") as src:
                    atomic_write(unpacked, lambda f: shutil.copyfileobj(src, f))
            except (OSError, EOFError) as e:
                raise GANError(f"could not unpack {packed} ({e}): the file looks damaged; delete it and try again") from None


def load_mnist(data_dir: str | Path, train: bool = True, device: torch.device | str = "cpu"):
    """MNIST's images (N, 1, 28, 28) in [-1, 1] and labels (N,); see load_dataset."""
    return load_dataset("mnist", data_dir, train, device)


# ---- networks ----

N_CLASSES = 10


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


def up(cin: int, cout: int, kernel: int, stride: int, padding: int, output_padding: int = 0,
       act: nn.Module | None = None) -> list[nn.Module]:
    """Transposed convolution -> BatchNorm -> ReLU (or `act`): one upsampling step of a DCGAN generator."""
    return [nn.ConvTranspose2d(cin, cout, kernel, stride, padding, output_padding, bias=False),
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
    classes = N_CLASSES if cfg.conditional else 0
    z, w = cfg.latent_dim + classes, cfg.width
    if cfg.arch in ("mlp", "mlp-bn"):
        norm = cfg.arch == "mlp-bn"
        act = (lambda: nn.LeakyReLU(0.2, inplace=True)) if cfg.g_act == "leaky" or norm else (lambda: nn.ReLU(inplace=True))
        body = nn.Sequential(*dense(z, 256, act(), norm), *dense(256, 512, act(), norm), *dense(512, 1024, act(), norm),
                             nn.Linear(1024, 784, bias=not norm), nn.Tanh(),
                             nn.Unflatten(1, (1, 28, 28)))                     # (B, 784) -> (B, 1, 28, 28)
    elif cfg.arch == "dcgan":
        body = nn.Sequential(nn.Unflatten(1, (z, 1, 1)),                         # (B, z) -> (B, z, 1, 1)
                             *up(z, 8 * w, 4, 1, 0),                             # -> (B, 8w, 4, 4)
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
    classes = N_CLASSES if cfg.conditional else 0
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
    """G and D on `device`, convolutional ones in the channels-last layout (measured 12% faster here)."""
    G, D = build_generator(cfg).to(device), build_discriminator(cfg).to(device)
    if cfg.arch.startswith("dcgan"):
        G, D = G.to(memory_format=torch.channels_last), D.to(memory_format=torch.channels_last)
    return G, D


def model_summary(G: Generator, D: Discriminator, cfg: Config) -> str:
    """Each network's layers with output shapes and parameter counts, as a text table."""
    def table(net: nn.Module, layers: list[tuple[str, nn.Module]], inputs: tuple, title: str) -> list[str]:
        rows, hooks = [], []
        for name, module in layers:
            hooks.append(module.register_forward_hook(
                lambda m, i, o, name=name: rows.append((name, type(m).__name__, tuple(o.shape[1:]),
                                                        sum(p.numel() for p in m.parameters())))))
        was_training = net.training
        net.eval()
        with torch.no_grad():
            net(*inputs)
        net.train(was_training)
        for h in hooks:
            h.remove()
        total = sum(p.numel() for p in net.parameters())
        lines = [f"{title}  (input {tuple(inputs[0].shape[1:])}, batch dimension omitted)",
                 f"{'#':>6}  {'layer':<18} {'output shape':<18} {'params':>10}"]
        lines += [f"{n:>6}  {kind:<18} {str(shape):<18} {params:>10,}" for n, kind, shape, params in rows]
        if getattr(net, "n_classes", 0):
            lines.append(f"{'':>6}  conditioned on the label (one-hot into G, projection in D)")
        lines += [f"{'':>6}  {'total':<18} {'':<18} {total:>10,}", ""]
        return lines

    device = device_of(G)
    labels = torch.zeros(2, dtype=torch.long, device=device) if cfg.conditional else None
    lines = [f"arch {cfg.arch}, latent_dim {cfg.latent_dim}" + (f", width {cfg.width}" if cfg.arch == "dcgan" else "")
             + (", conditional" if cfg.conditional else ""), ""]
    lines += table(G, list(G.body.named_children()), (torch.zeros(2, cfg.latent_dim, device=device), labels), "Generator")
    lines += table(D, [*D.features.named_children(), ("head", D.head)],
                   (torch.zeros(2, 1, 28, 28, device=device), labels), "Discriminator")
    return "\n".join(lines)


# ---- training step ----

def train_step(G: Generator, D: Discriminator, opt_g: torch.optim.Optimizer, opt_d: torch.optim.Optimizer,
               real: torch.Tensor, labels: torch.Tensor | None, real_target: float) -> torch.Tensor:
    """One update of D, then one of G. Returns [d_loss, g_loss, D(x), D(G(z))] as a tensor on the device,
    so the caller can sum it without forcing a host sync every step. `labels` only for conditional GANs."""
    z = torch.randn(real.size(0), G.latent_dim, device=real.device)
    fake_labels = torch.randint(0, N_CLASSES, (real.size(0),), device=real.device) if G.n_classes else None
    fake = G(z, fake_labels)

    # (1) D: maximise log D(x) + log(1 - D(G(z)))
    if D.batchnorm:  # BatchNorm must see real and fake batches apart, as in the DCGAN paper
        d_real, d_fake = D(real, labels), D(fake.detach(), fake_labels)
    else:  # one pass over both halves: bigger matrix products, fewer kernel launches
        both_labels = torch.cat([labels, fake_labels]) if labels is not None else None
        d_real, d_fake = D(torch.cat([real, fake.detach()]), both_labels).split(real.size(0))
    d_loss = (F.binary_cross_entropy_with_logits(d_real, torch.full_like(d_real, real_target))
              + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake)))
    opt_d.zero_grad(set_to_none=True)
    d_loss.backward()
    opt_d.step()

    # (2) G: maximise log D(G(z)), the non-saturating form of minimising log(1 - D(G(z)))
    d_fake_for_g = D(fake, fake_labels)
    g_loss = F.binary_cross_entropy_with_logits(d_fake_for_g, torch.ones_like(d_fake_for_g))
    opt_g.zero_grad(set_to_none=True)
    g_loss.backward()
    opt_g.step()

    return torch.stack([d_loss, g_loss, torch.sigmoid(d_real).mean(), torch.sigmoid(d_fake).mean()]).detach()


# ---- training loop ----

STAT_NAMES = ("d_loss", "g_loss", "d_real", "d_fake")
LOG_EVERY = 25  # steps between reads of the running sums (each read is a host sync on a GPU)


class _StopRequest:
    """Turns the first Ctrl-C or SIGTERM into a flag the loop checks between steps; a second one stops at once."""

    def __init__(self):
        self.signal_name: str | None = None
        self._previous = {}

    def _handle(self, signum, frame):
        if self.signal_name is not None:  # second signal: give up now; checkpoint writes are atomic anyway
            raise KeyboardInterrupt
        self.signal_name = signal.Signals(signum).name

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: signals cannot be caught here
                pass
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def make_optimizers(G: nn.Module, D: nn.Module, cfg: Config):
    """Adam for each network. The fused kernel (one pass over all weights) measured 7-25% faster here for the
    MLP; it exists for CPU and CUDA tensors."""
    betas = (cfg.beta1, 0.999)
    fused = device_of(G).type in ("cpu", "cuda")
    return (torch.optim.Adam(G.parameters(), lr=cfg.lr_generator, betas=betas, fused=fused),
            torch.optim.Adam(D.parameters(), lr=cfg.lr_discriminator, betas=betas, fused=fused))


def update_ema(G_ema: nn.Module, G: nn.Module, decay: float, step: int) -> None:
    """G_ema <- decay * G_ema + (1 - decay) * G. The warm-up (1 + t) / (10 + t) keeps the random init from
    lingering in the average early on. BatchNorm statistics are copied, not averaged."""
    decay = min(decay, (1 + step) / (10 + step))
    with torch.no_grad():
        torch._foreach_lerp_(list(G_ema.parameters()), list(G.parameters()), 1 - decay)
        for mine, theirs in zip(G_ema.buffers(), G.buffers()):
            mine.copy_(theirs)


def fixed_inputs(cfg: Config) -> tuple[torch.Tensor, torch.Tensor | None, int]:
    """The noise (and labels) behind every epoch's sample grid, and the grid's row length. A conditional
    grid has one row per class: 10 x 10."""
    rng = torch.Generator().manual_seed(cfg.seed)
    if cfg.conditional:
        return torch.randn(100, cfg.latent_dim, generator=rng), torch.arange(N_CLASSES).repeat_interleave(10), 10
    return torch.randn(64, cfg.latent_dim, generator=rng), None, 8


def train(cfg: Config, resume: str | Path | None = None, console=None, minutes: float | None = None) -> Path:
    """Train (or continue training) a GAN as `cfg` says; returns the path of the last checkpoint written.

    With `resume`, the networks, optimizers, epoch, fixed noise, history and random-number state come from that
    checkpoint and training continues exactly where it stopped, up to cfg.epochs epochs in all. With `minutes`,
    training stops after that much time, saving where it got to, as Ctrl-C does.
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    console = console or Console()
    validate(cfg)
    if minutes is not None and not minutes > 0:
        raise GANError(f"--minutes must be a positive number, got {minutes}")
    state = load_checkpoint(resume) if resume is not None else None
    start_epoch = state["epoch"] if state else 0
    if start_epoch >= cfg.epochs and not (state and state["pos"]):
        raise GANError(f"{resume} has already trained {start_epoch} epochs: pass --epochs larger than {start_epoch}")
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)

    run = RunFiles(cfg)
    run.prepare()
    images, labels = load_dataset(cfg.dataset, cfg.data_dir, device=device)
    n_images, batch = len(images), cfg.batch_size
    if n_images < batch:
        raise GANError(f"--batch-size {batch} is larger than the {n_images} training images: use a smaller one")
    steps = n_images // batch  # the last incomplete batch is dropped: tiny batches upset BatchNorm

    G, D = build_networks(cfg, device)
    G_ema = copy.deepcopy(G).requires_grad_(False) if cfg.ema else None
    G_sample = G_ema or G  # what grids, exports and evaluations draw from
    opt_g, opt_d = make_optimizers(G, D, cfg)
    fixed_z, fixed_labels, grid_row = fixed_inputs(cfg)
    history: list[dict] = []
    if state:
        G.load_state_dict(state["G"])
        D.load_state_dict(state["D"])
        if G_ema is not None:
            G_ema.load_state_dict(state.get("G_ema") or state["G"])
        opt_g.load_state_dict(state["opt_g"])
        opt_d.load_state_dict(state["opt_d"])
        for opt, lr in ((opt_g, cfg.lr_generator), (opt_d, cfg.lr_discriminator)):
            for group in opt.param_groups:
                group["lr"] = lr  # an explicit --lr on resume wins over the saved one
        fixed_z, history = state["fixed_z"], list(state["history"])
        set_rng_state(state["rng"], device)
    run.write_text(run.summary, model_summary(G, D, cfg) + "\n")
    run.write_metrics(history)
    writer = run.tensorboard() if cfg.tensorboard else None

    def save(path: Path, epochs_done: int, **partial) -> Path:
        nets = {"G": G, "D": D, "opt_g": opt_g, "opt_d": opt_d, **({"G_ema": G_ema} if G_ema is not None else {})}
        return save_checkpoint(path, cfg, nets, epochs_done, fixed_z, history, device, **partial)

    real_target = cfg.label_smoothing if cfg.label_smoothing is not None else 1.0
    deadline = time.perf_counter() + 60 * minutes if minutes else math.inf
    last_path = None
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("eta"), TimeRemainingColumn(), TextColumn("{task.fields[stats]}"))
    with _StopRequest() as stop, Progress(*columns, console=console, transient=False) as progress:
        epochs_bar = progress.add_task("epochs", total=cfg.epochs, completed=start_epoch, stats="")
        for epoch in range(start_epoch + 1, cfg.epochs + 1):
            if state is not None and state["pos"] and epoch == start_epoch + 1:  # finish an interrupted epoch
                perm, pos = state["perm"].to(device), state["pos"]
                sums, seconds_before = state["sums"].to(device), state["seconds"]
            else:
                perm, pos = torch.randperm(n_images, device=device), 0
                sums, seconds_before = torch.zeros(len(STAT_NAMES), device=device), 0.0
            done_steps = pos // batch
            batches_bar = progress.add_task(f"epoch {epoch}", total=steps, completed=done_steps, stats="")
            t0 = time.perf_counter()
            G.train(), D.train()
            for step in range(done_steps, steps):
                idx = perm[step * batch:(step + 1) * batch]
                sums += train_step(G, D, opt_g, opt_d, images[idx], labels[idx] if cfg.conditional else None,
                                   real_target)
                if G_ema is not None:
                    update_ema(G_ema, G, cfg.ema, (epoch - 1) * steps + step)
                reason = stop.signal_name or ("the time limit" if time.perf_counter() > deadline else None)
                if reason:
                    check_finite(sums, epoch, step + 1, run)
                    path = save(run.partial_checkpoint(epoch - 1), epoch - 1, perm=perm, pos=(step + 1) * batch,
                                sums=sums, seconds=seconds_before + time.perf_counter() - t0)
                    if stop.signal_name:
                        progress.stop()
                        raise TrainingInterrupted(f"stopped by {reason} in epoch {epoch} after step {step + 1}/"
                                                  f"{steps}; saved {path}. Continue with: python cli.py resume {path}")
                    export_generator(run.final_generator, cfg, G_sample, fixed_z)
                    console.print(f"stopped at {reason} ({minutes:g} min) in epoch {epoch}, step {step + 1}/{steps};"
                                  f" saved {path}; continue with: python cli.py resume {path}")
                    return path
                if (step + 1) % LOG_EVERY == 0 or step + 1 == steps:
                    means = check_finite(sums, epoch, step + 1, run) / (step + 1)
                    rate = (step + 1 - done_steps) * batch / (time.perf_counter() - t0)
                    progress.update(batches_bar, completed=step + 1, stats=format_stats(means, rate))
            progress.remove_task(batches_bar)

            # end of epoch: record, grid, checkpoint, plots
            seconds = seconds_before + time.perf_counter() - t0
            means = check_finite(sums, epoch, steps, run) / steps
            row = {"epoch": epoch, **{k: round(float(v), 5) for k, v in zip(STAT_NAMES, means)},
                   "epoch_time_s": round(seconds, 2), "images_per_s": round(steps * batch / seconds, 1),
                   "lr_g": opt_g.param_groups[0]["lr"], "lr_d": opt_d.param_groups[0]["lr"]}
            if cfg.eval_every and (epoch % cfg.eval_every == 0 or epoch == cfg.epochs):
                row.update(evaluate_during_training(G_sample, cfg, device))
            history.append(row)
            notes = []
            if epoch % cfg.sample_every == 0 or epoch == cfg.epochs:
                grid = sample_images(G_sample, fixed_z.to(device), fixed_labels)
                notes.append(str(save_grid(grid, run.sample_grid(epoch), nrow=grid_row)))
                if writer:
                    writer.add_image("samples", make_grid(grid, nrow=grid_row), epoch)
            if epoch % cfg.save_every == 0 or epoch == cfg.epochs:
                last_path = save(run.checkpoint(epoch), epoch)
                run.prune_checkpoints(keep=cfg.keep_last, newest=epoch)
                notes.append(str(last_path))
            run.write_metrics(history)
            run.plot_losses(history)
            if writer:
                for key, value in row.items():
                    if key != "epoch" and isinstance(value, (int, float)):
                        writer.add_scalar(key, value, epoch)
            progress.update(epochs_bar, completed=epoch)
            quality = f"  FID {row['fid']:.2f}" if "fid" in row else ""
            progress.console.print(f"epoch {epoch}/{cfg.epochs}  {format_stats(means, row['images_per_s'])}{quality}"
                                   f"  {seconds:.1f}s" + (f"  -> {', '.join(notes)}" if notes else ""))
    if writer:
        writer.close()
    final = export_generator(run.final_generator, cfg, G_sample, fixed_z)
    report = run.write_report(history, final, last_path)
    console.print(f"done: {cfg.epochs} epochs; generator {final}; report {report}")
    return last_path


def evaluate_during_training(G: nn.Module, cfg: Config, device) -> dict:
    """The built-in quality numbers (evaluate.py) for --eval-every, rounded for the record."""
    import evaluate

    numbers = evaluate.evaluate_generator(G, cfg.eval_n, cfg.data_dir, seed=cfg.seed, device=device)
    return {k: round(float(v), 4) for k, v in numbers.items() if isinstance(v, (int, float))}


def format_stats(means, images_per_s: float) -> str:
    d_loss, g_loss, d_real, d_fake = (float(v) for v in means)
    return f"D {d_loss:.3f}  G {g_loss:.3f}  D(x) {d_real:.2f}  D(G(z)) {d_fake:.2f}  {images_per_s:,.0f} img/s"


def check_finite(sums: torch.Tensor, epoch: int, step: int, run: "RunFiles") -> torch.Tensor:
    """Read the running sums (one host sync) and stop if a loss has become NaN or infinite."""
    sums = sums.cpu()
    if not torch.isfinite(sums).all():
        good = run.newest_checkpoint()
        keep = f"the last good checkpoint, {good}, is kept" if good else "no checkpoint had been written yet"
        raise GANError(f"training diverged at epoch {epoch}, step {step} (a loss became NaN or infinite); {keep}. "
                       f"Try a lower --lr or --label-smoothing 0.9")
    return sums


def sample_images(G: nn.Module, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
    """G(z) in eval mode (BatchNorm uses its running statistics), as images in [0, 1] on the CPU."""
    was_training = G.training
    G.eval()
    with torch.no_grad():
        labels = labels.to(z.device) if labels is not None else None
        images = G(z, labels).add_(1).div_(2).clamp_(0, 1).cpu()
    G.train(was_training)
    return images


# ---- checkpoints and run files ----

FORMAT = 1
CHECKPOINT_KIND = "mnist-gan-checkpoint"
GENERATOR_KIND = "mnist-gan-generator"


def get_rng_state(device: torch.device) -> dict:
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    if device.type == "mps":
        state["mps"] = torch.mps.get_rng_state()
    return state


def set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["cpu"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)
    if device.type == "mps" and "mps" in state:
        torch.mps.set_rng_state(state["mps"])


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def atomic_write(path: Path, write) -> Path:
    """Write through a temporary file in the same folder, then rename it over `path`.

    A crash at any moment leaves either the old file or the new one under `path`, never half of one.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise GANError(f"could not write {path}: {e.strerror or e}; anything already saved there is unchanged") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def save_checkpoint(path: Path, cfg: Config, nets: dict, epoch: int, fixed_z, history, device,
                    perm=None, pos: int = 0, sums=None, seconds: float = 0.0) -> Path:
    """Everything needed to continue exactly: networks and optimizers (`nets`: G, D, opt_g, opt_d and G_ema if
    used), epoch, config, fixed noise, history and RNG state.

    A checkpoint written mid-epoch (on Ctrl-C) also holds the epoch's shuffle order, how far it got and the
    running sums, so that resuming finishes that epoch as if nothing had happened.
    """
    # the losses are checked before the last update of an epoch, so the weights themselves are checked here
    broken = [name for name in ("G", "D", "G_ema") if name in nets and not all(
        torch.isfinite(t).all() for t in nets[name].state_dict().values() if t.is_floating_point())]
    if broken:
        raise GANError(f"training diverged (the weights of {', '.join(broken)} became NaN or infinite): {path.name} "
                       f"was not written and the checkpoints already in {path.parent} are kept. Try a lower --lr or "
                       f"--label-smoothing 0.9")
    state = {"format": FORMAT, "kind": CHECKPOINT_KIND, "config": asdict(cfg), "epoch": epoch,
             **{name: net.state_dict() for name, net in nets.items()},
             "fixed_z": fixed_z.cpu(), "history": history, "rng": get_rng_state(device),
             "pos": pos, "perm": perm.cpu() if perm is not None else None,
             "sums": sums.cpu() if sums is not None else None, "seconds": seconds}
    return save_state(path, state)


def export_generator(path: Path, cfg: Config, G: nn.Module, fixed_z) -> Path:
    """The generator alone (no D, no optimizer state): a small file to share; `generate` accepts it."""
    state = {"format": FORMAT, "kind": GENERATOR_KIND, "config": asdict(cfg), "G": G.state_dict(),
             "fixed_z": fixed_z.cpu()}
    return save_state(path, state)


def save_state(path: Path, state: dict) -> Path:
    """torch.save through atomic_write, serialised in memory first: torch's file writer turns a full disk or a
    Ctrl-C in mid-write into an opaque RuntimeError, where a plain write raises OSError or KeyboardInterrupt."""
    buf = io.BytesIO()
    torch.save(state, buf)
    return atomic_write(path, lambda f: f.write(buf.getbuffer()))


def read_checkpoint_file(path: str | Path) -> dict:
    """torch.load with weights_only=True (never runs code from the file), every failure as one clear line."""
    import pickle
    import warnings
    import zipfile

    path = Path(path)
    if not path.is_file():
        raise GANError(f"no checkpoint at {path}: check the path (checkpoints are written to --checkpoint-dir)")
    if path.stat().st_size == 0:
        raise GANError(f"{path} is empty: it is not a checkpoint (use another one from the same folder)")
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols it did not write: noise, not news
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        text = str(e)
        if "GLOBAL" in text or "global" in text or "reduce" in text.lower():
            raise GANError(f"refused to load {path}: it asks to import or call Python code, which a checkpoint of "
                           f"this tool never does (a malicious or foreign file?); nothing in it was run") from None
        raise GANError(f"{path} is damaged or not a PyTorch checkpoint (it does not unpickle as tensors and "
                       f"plain values): use another checkpoint") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError, AttributeError, TypeError,
            IndexError, KeyError) as e:
        first = (str(e).splitlines() or [type(e).__name__])[0][:120]
        raise GANError(f"{path} is damaged or not a PyTorch checkpoint ({first}): use another checkpoint") from None
    if not isinstance(state, dict) or state.get("kind") not in (CHECKPOINT_KIND, GENERATOR_KIND):
        raise GANError(f"{path} is not a checkpoint of this tool (a plain state_dict or another project's file?): "
                       f"use one written by `python cli.py train`")
    if not isinstance(state.get("format"), int) or isinstance(state["format"], bool) or state["format"] < 1:
        raise GANError(f"{path} has no valid checkpoint format number ({state.get('format')!r}): it is damaged")
    if state["format"] > FORMAT:
        raise GANError(f"{path} has checkpoint format {state['format']}, newer than this version "
                       f"understands ({FORMAT}): update this tool")
    return state


def config_from_state(state: dict, path) -> Config:
    defaults = {f.name: f.default for f in fields(Config)}
    saved = state.get("config")
    if not isinstance(saved, dict):
        raise GANError(f"{path} has no config: it is not a complete checkpoint of this tool")
    wrong = [k for k, v in saved.items() if k in defaults and not _same_kind(defaults[k], v)]
    if wrong:
        raise GANError(f"{path} holds an invalid config ({', '.join(wrong)} of the wrong type): the file is damaged "
                       f"or not from this tool")
    cfg = Config(**{k: v for k, v in saved.items() if k in defaults})
    try:
        validate(cfg)
    except GANError as e:
        raise GANError(f"{path} holds an invalid config ({e})") from None
    return cfg


def _same_kind(default, value) -> bool:
    """Whether a saved config value has the type of the field's default (a float field also takes an int)."""
    if isinstance(default, (bool, str, int)):
        return type(value) is type(default)
    return type(value) in (int, float) or (default is None and value is None)


def load_checkpoint(path: str | Path) -> dict:
    """A full training checkpoint, checked to match the networks its config describes."""
    state = read_checkpoint_file(path)
    if state["kind"] != CHECKPOINT_KIND:
        raise GANError(f"{path} holds only a generator (no discriminator or optimizer state), so training cannot "
                       f"resume from it: use a gan_epoch_N.pth checkpoint")
    cfg = config_from_state(state, path)
    _check_weights(build_generator(cfg), state.get("G"), path, "generator")
    _check_weights(build_discriminator(cfg), state.get("D"), path, "discriminator")
    missing = [k for k in ("opt_g", "opt_d", "epoch", "fixed_z", "history", "rng") if k not in state]
    if missing:
        raise GANError(f"{path} is incomplete (missing {', '.join(missing)}): use another checkpoint")
    state["config_obj"] = cfg
    state.setdefault("pos", 0)
    return state


def _check_weights(net: nn.Module, weights, path, what: str) -> None:
    if not isinstance(weights, dict):
        raise GANError(f"{path} has no {what} weights: use another checkpoint")
    try:
        net.load_state_dict(weights)
    except RuntimeError:
        raise GANError(f"the {what} weights in {path} do not fit the architecture its config describes "
                       f"(different arch, width or latent size?): the file is inconsistent") from None


def load_generator(path: str | Path, device: torch.device | str = "cpu") -> tuple[Generator, Config]:
    """Rebuild the generator from the config stored in a checkpoint or exported generator file (its
    moving-average weights when the run kept them: those are the ones that draw best)."""
    state = read_checkpoint_file(path)
    cfg = config_from_state(state, path)
    G = build_generator(cfg)
    _check_weights(G, state.get("G_ema") or state.get("G"), path, "generator")
    return G.to(device).eval(), cfg


class RunFiles:
    """Where a run's files go: checkpoints and records in checkpoint_dir, sample grids in sample_dir."""

    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.dir, self.samples = Path(cfg.checkpoint_dir), Path(cfg.sample_dir)
        self.summary, self.report = self.dir / "summary.txt", self.dir / "report.md"
        self.metrics_csv, self.metrics_json = self.dir / "metrics.csv", self.dir / "metrics.json"
        self.loss_plot, self.final_generator = self.dir / "training_loss.png", self.dir / "generator_final.pth"

    def prepare(self) -> None:
        """Create the output folders and prove they are writable before any time is spent training."""
        for folder, flag in ((self.dir, "--checkpoint-dir"), (self.samples, "--sample-dir")):
            try:
                folder.mkdir(parents=True, exist_ok=True)
                probe = folder / f".write-test-{os.getpid()}"
                probe.write_bytes(b"")
                probe.unlink()
            except OSError as e:
                raise GANError(f"cannot write to {folder} ({e.strerror or e}): pass a writable {flag}") from None
            for stale in folder.glob(".*.tmp") if os.name == "posix" else ():  # os.kill(pid, 0) kills on Windows
                pid = stale.name.split(".")[-2]  # .NAME.PID.tmp, left by a run killed in mid-write
                if pid.isdigit() and not _process_alive(int(pid)):
                    stale.unlink(missing_ok=True)

    def checkpoint(self, epoch: int) -> Path:
        return self.dir / f"gan_epoch_{epoch}.pth"

    def partial_checkpoint(self, epochs_done: int) -> Path:
        return self.dir / f"gan_epoch_{epochs_done}_interrupted.pth"

    def sample_grid(self, epoch: int) -> Path:
        return self.samples / f"epoch_{epoch:04d}.png"

    def epoch_checkpoints(self) -> list[tuple[int, Path]]:
        found = []
        for p in self.dir.glob("gan_epoch_*.pth"):
            number = p.stem.removeprefix("gan_epoch_")
            if number.isdigit():
                found.append((int(number), p))
        return sorted(found)

    def newest_checkpoint(self) -> Path | None:
        found = self.epoch_checkpoints()
        return found[-1][1] if found else None

    def prune_checkpoints(self, keep: int, newest: int) -> None:
        """Delete all but the `keep` newest epoch checkpoints (after the newest is safely on disk)."""
        for path in self.dir.glob("gan_epoch_*_interrupted.pth"):  # superseded by the complete epoch
            path.unlink(missing_ok=True)
        if keep <= 0:
            return
        for epoch, path in self.epoch_checkpoints()[:-keep]:
            if epoch < newest:
                path.unlink(missing_ok=True)

    def write_text(self, path: Path, text: str) -> Path:
        return atomic_write(path, lambda f: f.write(text.encode()))

    def write_metrics(self, history: list[dict]) -> None:
        """metrics.csv and metrics.json, rewritten whole from the history (which lives in every checkpoint),
        so a resumed run continues one record with no duplicated or missing epochs."""
        columns = list(dict.fromkeys(["epoch", *STAT_NAMES, "epoch_time_s", "images_per_s", "lr_g", "lr_d",
                                      *(key for row in history for key in row)]))  # FID etc. on --eval-every epochs
        buf = io.StringIO()
        out = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
        out.writeheader()
        out.writerows(history)
        self.write_text(self.metrics_csv, buf.getvalue())
        self.write_text(self.metrics_json, json.dumps(history, indent=1) + "\n")

    def plot_losses(self, history: list[dict]) -> Path | None:
        if not history:
            return None
        return save_loss_plot(history, self.loss_plot)

    def tensorboard(self):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise GANError("--tensorboard needs the tensorboard package: pip install tensorboard") from None
        return SummaryWriter(log_dir=str(self.dir / "tensorboard"))

    def write_report(self, history: list[dict], generator: Path, checkpoint: Path | None) -> Path:
        cfg, last = self.cfg, history[-1]
        best_g = min(history, key=lambda r: r["g_loss"])
        best_d = min(history, key=lambda r: r["d_loss"])
        total = sum(r["epoch_time_s"] for r in history)
        lines = ["# Training report", "",
                 f"{len(history)} epochs of `{cfg.arch}` in {total / 60:.1f} min of training "
                 f"({total / len(history):.1f} s per epoch, {last['images_per_s']:,.0f} images/s in the last).", "",
                 "| | epoch | D loss | G loss | D(x) | D(G(z)) |", "|---|---|---|---|---|---|",
                 *(f"| {name} | {r['epoch']} | {r['d_loss']:.3f} | {r['g_loss']:.3f} | {r['d_real']:.3f} | "
                   f"{r['d_fake']:.3f} |" for name, r in (("final", last), ("lowest G loss", best_g),
                                                         ("lowest D loss", best_d))), "",
                 "## Files", "",
                 f"- checkpoint to resume from: `{checkpoint}`",
                 f"- generator alone, for `generate`: `{generator}`",
                 f"- sample grids (fixed noise, one per epoch): `{self.samples}/epoch_NNNN.png`",
                 f"- metrics: `{self.metrics_csv}`, `{self.metrics_json}`",
                 f"- loss curves: `{self.loss_plot}`", f"- model summary: `{self.summary}`", "",
                 "## Config", "", "```json", json.dumps(asdict(cfg), indent=1), "```", ""]
        return self.write_text(self.report, "\n".join(lines))


# ---- sampling and plots ----

def make_grid(images: torch.Tensor, nrow: int = 8) -> torch.Tensor:
    from torchvision.utils import make_grid as tv_make_grid
    return tv_make_grid(images, nrow=nrow, padding=2, pad_value=1.0)


def save_grid(images: torch.Tensor, path: str | Path, nrow: int = 8) -> Path:
    """A PNG grid of images in [0, 1], written atomically."""
    from torchvision.utils import save_image
    return atomic_write(Path(path), lambda f: save_image(make_grid(images, nrow=nrow), f, format="png"))


def save_array(images: torch.Tensor, path: str | Path) -> Path:
    """Images as a float32 .npy array of shape (n, 1, 28, 28), values in [0, 1]."""
    import numpy as np
    return atomic_write(Path(path), lambda f: np.save(f, images.numpy().astype(np.float32)))


def save_loss_plot(history: list[dict], path: Path) -> Path:
    import matplotlib
    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure  # a Figure object, not pyplot: no global state, no display needed

    epochs = [r["epoch"] for r in history]
    evaluated = [r for r in history if "fid" in r]  # --eval-every adds a third panel
    fig = Figure(figsize=(13.5 if evaluated else 9, 3.6), layout="constrained")
    losses, probs, *quality = fig.subplots(1, 3 if evaluated else 2)
    losses.plot(epochs, [r["d_loss"] for r in history], marker="o", label="D loss")
    losses.plot(epochs, [r["g_loss"] for r in history], marker="o", label="G loss")
    losses.set(xlabel="epoch", ylabel="mean loss (BCE)", title="Losses")
    probs.plot(epochs, [r["d_real"] for r in history], marker="o", label="D(x), real")
    probs.plot(epochs, [r["d_fake"] for r in history], marker="o", label="D(G(z)), fake")
    probs.axhline(0.5, color="grey", lw=0.8, ls="--")
    probs.set(xlabel="epoch", ylabel="mean D output", ylim=(0, 1), title="Discriminator's view")
    if evaluated:
        quality[0].plot([r["epoch"] for r in evaluated], [r["fid"] for r in evaluated], marker="o", label="FID")
        quality[0].set(xlabel="epoch", ylabel="FID in the classifier's space (log)", yscale="log",
                       title="Quality (lower is better)")
    for ax in (losses, probs, *quality):
        ax.legend()
        ax.grid(alpha=0.3)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return atomic_write(path, lambda f: f.write(buf.getvalue()))


MAX_GRID = 10_000


def check_sample_count(n: int, as_grid: bool) -> None:
    if n <= 0:
        raise GANError(f"--n must be at least 1, got {n}")
    if as_grid and n > MAX_GRID:
        raise GANError(f"--n {n} is too many for one picture (at most {MAX_GRID:,}): write an .npy with --out x.npy")
    need = n * 28 * 28 * 4 * 2  # the images, plus a copy while saving
    available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else None
    if available and need > available * 0.8:
        raise GANError(f"--n {n} needs about {need / 2**30:.1f} GiB of memory but only {available / 2**30:.1f} GiB "
                       f"is free: ask for fewer images at a time")


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
    if not getattr(G, "n_classes", 0):
        return None
    if digit is not None and not 0 <= digit < G.n_classes:
        raise GANError(f"--digit must be between 0 and {G.n_classes - 1}, got {digit}")
    return torch.full((n,), digit) if digit is not None else torch.arange(n) % G.n_classes


def _has_display() -> bool:
    import matplotlib
    backend = matplotlib.get_backend().lower()
    return not any(name in backend for name in ("agg", "pdf", "svg", "ps", "cairo", "template"))


def generate_and_plot_samples(generator: nn.Module | str | Path, n: int = 16, nrow: int | None = None,
                              seed: int | None = None, out: str | Path | None = None, show: bool | None = None,
                              digit: int | None = None, min_confidence: float = 0.9) -> torch.Tensor:
    """Draw n digits from `generator` (a module, or the path of a checkpoint or exported generator) and plot them.

    The grid is shown in a matplotlib figure when there is a display (a desktop or a notebook) and saved to `out`
    otherwise (default samples/generated_<time>.png); an `out` ending in .npy saves the raw array instead.
    With `digit`, only that digit: asked of a conditional generator, or kept from an unconditional one when the
    shipped classifier agrees with at least `min_confidence` (see sample_digit). A conditional generator draws
    one row per class otherwise.
    Returns the images: a float tensor of shape (n, 1, 28, 28) with values in [0, 1].
    """
    if isinstance(generator, (str, Path)):
        generator, _ = load_generator(generator)
    as_array = out is not None and str(out).endswith(".npy")
    check_sample_count(n, as_grid=not as_array)
    if digit is not None and not getattr(generator, "n_classes", 0):
        images = sample_digit(generator, n, digit, seed, min_confidence)[0]  # rejection sampling via the classifier
    else:
        images = generate(generator, n, seed=seed, digit=digit)
    nrow = nrow or (10 if getattr(generator, "n_classes", 0) and digit is None else max(1, math.ceil(math.sqrt(n))))
    if as_array:
        save_array(images, out)
        return images
    show = _has_display() if show is None else show
    if out is None and not show:
        out = Path("samples") / f"generated_{time.strftime('%Y%m%d-%H%M%S')}.png"
    if out is not None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        save_grid(images, out, nrow=nrow)
    if show:
        import matplotlib.pyplot as plt
        plt.figure(figsize=(nrow, math.ceil(n / nrow)))
        plt.imshow(make_grid(images, nrow=nrow).permute(1, 2, 0).numpy(), cmap="gray")
        plt.axis("off")
        plt.show()
    return images


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation: keeps the path near the shell where Gaussian noise vectors live."""
    cos = F.cosine_similarity(a, b, dim=-1).clamp(-1, 1).unsqueeze(-1)
    omega = torch.acos(cos)
    so = torch.sin(omega)
    linear = (1 - t) * a + t * b
    spherical = (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / so.clamp_min(1e-8)
    return torch.where(so.abs() < 1e-6, linear, spherical)  # nearly parallel vectors: the lerp is exact enough


def interpolate(G: Generator, rows: int = 8, steps: int = 10, method: str = "linear",
                seed: int | None = None) -> torch.Tensor:
    """rows x steps images in [0, 1]: each row walks from one random latent point to another."""
    if method not in ("linear", "slerp"):
        raise GANError(f"unknown --method {method!r}: use linear or slerp")
    if rows <= 0 or steps < 2:
        raise GANError(f"need --rows >= 1 and --steps >= 2, got {rows} and {steps}")
    rng = torch.Generator().manual_seed(seed) if seed is not None else None
    a, b = torch.randn(2, rows, 1, G.latent_dim, generator=rng)                # (rows, 1, latent)
    labels = class_labels(G, rows, None)                                        # a conditional G: row r is r % 10
    labels = labels.repeat_interleave(steps) if labels is not None else None
    t = torch.linspace(0, 1, steps).view(1, steps, 1)                          # (1, steps, 1)
    z = slerp(a, b, t) if method == "slerp" else (1 - t) * a + t * b          # (rows, steps, latent)
    device = device_of(G)
    return sample_images(G, z.reshape(rows * steps, G.latent_dim).to(device), labels)


# ---- digits on demand: rejection sampling and bulk export ----

def class_probabilities(images: torch.Tensor) -> torch.Tensor:
    """The shipped MNIST classifier's probabilities (N, 10) for images (N, 1, 28, 28) in [0, 1]."""
    import evaluate

    return evaluate.embed(evaluate.shipped_classifier(), images)[1]


def classify(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The shipped MNIST classifier's label and confidence for each image."""
    confidence, labels = class_probabilities(images).max(dim=1)
    return labels, confidence


def sample_digit(G: Generator, n: int, digit: int, seed: int | None = None, min_confidence: float = 0.9,
                 max_draws: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """n images of `digit` and the classifier's confidence in each. A conditional generator is asked for the
    digit; an unconditional one is sampled and only images the classifier calls `digit` with at least
    `min_confidence` are kept (rejection sampling), up to max_draws draws (default 50 n + 10,000)."""
    if G.n_classes:
        images = generate(G, n, seed=seed, digit=digit)
        return images, class_probabilities(images)[:, digit]
    if not 0 <= digit <= 9:
        raise GANError(f"--digit must be between 0 and 9, got {digit}")
    max_draws = max_draws or 50 * n + 10_000
    rng = torch.Generator().manual_seed(seed) if seed is not None else None
    device = device_of(G)
    kept, confidences, found, drawn = [], [], 0, 0
    while found < n and drawn < max_draws:
        z = torch.randn(min(1000, max_draws - drawn), G.latent_dim, generator=rng)
        images = sample_images(G, z.to(device))
        labels, confidence = classify(images)
        hit = (labels == digit) & (confidence >= min_confidence)
        kept.append(images[hit][:n - found])
        confidences.append(confidence[hit][:n - found])
        found, drawn = found + len(kept[-1]), drawn + len(z)
    if found < n:
        raise GANError(f"only {found} of {n} images were a {digit} with confidence >= {min_confidence} in {drawn:,} "
                       f"draws: this generator rarely draws {digit}; ask for fewer, lower --min-confidence, or train "
                       f"a conditional model (the default, without --no-conditional)")
    return torch.cat(kept), torch.cat(confidences)


EXPORT_FORMATS = ("png", "npy", "idx")


def export_samples(G: Generator, cfg: Config, n: int, out_dir: str | Path, fmt: str, seed: int | None = None,
                   digit: int | None = None, min_confidence: float = 0.9, force: bool = False,
                   batch: int = 1000, progress=None) -> Path:
    """Write n generated images and their labels to the folder out_dir, a batch at a time (memory stays bounded).

    png: 00000.png ...; npy: images.npy, float32 (n, 1, 28, 28) in [0, 1], and labels.npy; idx: MNIST's own
    format (images-idx3-ubyte, labels-idx1-ubyte), which torchvision and most MNIST loaders read. Every format
    also gets labels.csv: the label (the condition of a conditional model, else the shipped classifier's call)
    and the classifier's confidence in it. The folder appears whole at the end; an existing one is replaced
    only with `force`.
    """
    import shutil

    import numpy as np

    if fmt not in EXPORT_FORMATS:
        raise GANError(f"unknown --format {fmt!r}: choose one of {', '.join(EXPORT_FORMATS)}")
    check_sample_count(min(n, batch), as_grid=False)  # also refuses n <= 0
    out_dir = Path(out_dir)
    if out_dir.exists() and not force:
        raise GANError(f"{out_dir} already exists: choose another --out, or pass --force to replace it")
    can_classify = cfg.dataset == "mnist"
    if digit is not None and not G.n_classes and not can_classify:
        raise GANError("--digit on an unconditional model needs the MNIST classifier: "
                       "train a conditional model (the default, without --no-conditional)")
    tmp = out_dir.with_name(f".{out_dir.name}.partial-{os.getpid()}")
    try:
        tmp.mkdir(parents=True)
    except OSError as e:
        raise GANError(f"cannot create {tmp.parent} ({e.strerror}): choose another --out") from None
    rng_seed = seed if seed is not None else int(torch.randint(0, 2**31, ()).item())
    try:
        if fmt == "npy":  # a header for the whole array, then the data streamed after it
            images_out = open(tmp / "images.npy", "wb")
            np.lib.format.write_array_header_1_0(images_out, {"descr": "<f4", "fortran_order": False, "shape": (n, 1, 28, 28)})
        elif fmt == "idx":
            images_out = open(tmp / "images-idx3-ubyte", "wb")
            images_out.write(struct.pack(">IIII", 0x0803, n, 28, 28))
        all_labels = np.zeros(n, dtype=np.int64)
        with open(tmp / "labels.csv", "w") as table:
            table.write("index,label,confidence\n")
            for start in range(0, n, batch):
                count = min(batch, n - start)
                chunk_seed = rng_seed + start  # each batch its own seed: repeatable, and no giant noise tensor
                if digit is not None:
                    images, confidence = sample_digit(G, count, digit, chunk_seed, min_confidence)
                    labels = torch.full((count,), digit)
                else:
                    images = generate(G, count, seed=chunk_seed)
                    labels = class_labels(G, count, None)
                    if can_classify:
                        probs = class_probabilities(images)
                        labels = labels if labels is not None else probs.argmax(dim=1)
                        confidence = probs[torch.arange(count), labels]  # that the image is the digit it is labelled
                    else:
                        confidence = torch.full((count,), float("nan"))
                labels = labels if labels is not None else torch.full((count,), -1)
                pixels = (images * 255).round().to(torch.uint8)                      # (count, 1, 28, 28)
                if fmt == "npy":
                    images_out.write(images.numpy().astype("<f4").tobytes())
                elif fmt == "idx":
                    images_out.write(pixels.numpy().tobytes())
                else:
                    from PIL import Image
                    for i, image in enumerate(pixels[:, 0].numpy()):
                        Image.fromarray(image, mode="L").save(tmp / f"{start + i:05d}.png")
                all_labels[start:start + count] = labels.numpy()
                table.writelines(f"{start + i},{int(l)},{float(c):.4f}\n" for i, (l, c) in enumerate(zip(labels, confidence)))
                if progress:
                    progress(count)
        if fmt in ("npy", "idx"):
            images_out.close()
        labelled = (all_labels >= 0).all()  # an unconditional model of another dataset has no labels (-1)
        if fmt == "npy" and labelled:
            np.save(tmp / "labels.npy", all_labels)
        elif fmt == "idx" and labelled:
            (tmp / "labels-idx1-ubyte").write_bytes(struct.pack(">II", 0x0801, n) + all_labels.astype(np.uint8).tobytes())
        if out_dir.exists():  # --force: the old folder goes only once the new one is complete
            old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
            out_dir.rename(old)
            tmp.rename(out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(out_dir)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise GANError(f"could not write {out_dir}: {e.strerror or e}") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir
