"""Digits on demand beyond one call of the generator: a chosen digit from a label-free generator, labelled
datasets in bulk, and walks through the latent space.

    python cli.py generate --digit 7 --checkpoint unconditional.pth    # rejection sampling through the classifier
    python cli.py export --n 60000 --out synth --format idx            # a labelled MNIST-style dataset folder
    python cli.py interpolate --method slerp                          # digits morphing into one another
    from digits import sample_digit, export_samples, interpolate

Both need the shipped MNIST classifier (evaluate.py) for what the generator cannot say itself: which digit an
unconditional sample is, and how sure the classifier is that a sample is the digit it is labelled. This file
builds on gan.py (sampling), evaluate.py (the classifier) and files.py (locks, atomic folders); nothing imports it
but cli.py. Interpolation needs no classifier but is sampling beyond one call of G, like the rest.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import struct
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import evaluate
from config import BadValue, GANError, check_int, check_seed
from files import FolderLock, StopRequest, remove_orphans
from gan import Config, Generator, check_digit_source, class_labels, device_of, generate, sample_images
from record import MAX_GRID


# ---- the classifier's view of a sample ----

def class_probabilities(images: torch.Tensor) -> torch.Tensor:
    """The shipped MNIST classifier's probabilities (N, 10) for images (N, 1, 28, 28) in [0, 1]."""
    return evaluate.embed(evaluate.shipped_classifier(), images)[1]


def classify(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The shipped MNIST classifier's label and confidence for each image."""
    confidence, labels = class_probabilities(images).max(dim=1)
    return labels, confidence


# ---- a chosen digit: asked of a conditional generator, or kept from an unconditional one ----

def sample_digit(G: Generator, n: int, digit: int, seed: int | None = None, min_confidence: float = 0.9,
                 max_draws: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """n images of `digit` and the classifier's confidence in each. A conditional generator is asked for the
    digit; an unconditional one is sampled and only images the classifier calls `digit` with at least
    `min_confidence` are kept (rejection sampling), up to max_draws draws (default 50 n + 10,000)."""
    if G.n_classes:
        images = generate(G, n, seed=seed, digit=digit)
        return images, class_probabilities(images)[:, digit]
    check_int("digit", digit, 0, 9)
    max_draws = max_draws or 50 * n + 10_000
    rng = torch.Generator().manual_seed(seed) if seed is not None else None
    kept, confidences, found, drawn = [], [], 0, 0
    while found < n and drawn < max_draws:
        z = torch.randn(min(1000, max_draws - drawn), G.latent_dim, generator=rng)
        images = sample_images(G, z.to(device_of(G)))
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


def rejection_sampler(min_confidence: float = 0.9):
    """A sampler for gan.generate_and_plot_samples that draws a chosen digit from any generator."""
    def draw(G: Generator, n: int, seed: int | None = None, digit: int | None = None) -> torch.Tensor:
        if digit is None or G.n_classes:
            return generate(G, n, seed=seed, digit=digit)
        return sample_digit(G, n, digit, seed, min_confidence)[0]
    return draw


# ---- bulk export ----

EXPORT_FORMATS = ("png", "npy", "idx")


def draw_labelled(G: Generator, cfg: Config, n: int, seed: int, digit: int | None, min_confidence: float):
    """n images with a label each (-1: none known) and the classifier's confidence that the image is that digit
    (NaN where there is no MNIST classifier to ask: the label is the model's condition, or none)."""
    if cfg.dataset != "mnist":  # only MNIST models get the MNIST classifier's confidence
        images, labels = generate(G, n, seed=seed, digit=digit), class_labels(G, n, digit)
        return images, labels if labels is not None else torch.full((n,), -1), torch.full((n,), float("nan"))
    if digit is not None:
        images, confidence = sample_digit(G, n, digit, seed, min_confidence)
        return images, torch.full((n,), digit), confidence
    images, labels = generate(G, n, seed=seed), class_labels(G, n, None)
    probs = class_probabilities(images)
    labels = labels if labels is not None else probs.argmax(dim=1)
    return images, labels, probs[torch.arange(n), labels]


class ImageFile:
    """Streams images into one npy or idx file (header first, then a batch at a time); png writes a file each."""

    def __init__(self, folder: Path, fmt: str, n: int):
        self.folder, self.fmt, self.written, self.file = folder, fmt, 0, None
        if fmt == "npy":
            self.file = open(folder / "images.npy", "wb")
            np.lib.format.write_array_header_1_0(self.file, {"descr": "<f4", "fortran_order": False, "shape": (n, 1, 28, 28)})
        elif fmt == "idx":
            self.file = open(folder / "images-idx3-ubyte", "wb")
            self.file.write(struct.pack(">IIII", 0x0803, n, 28, 28))  # MNIST's header: magic, count, rows, columns

    def write(self, images: torch.Tensor) -> None:
        pixels = (images * 255).round().to(torch.uint8)  # (count, 1, 28, 28)
        if self.fmt == "npy":
            self.file.write(images.numpy().astype("<f4").tobytes())
        elif self.fmt == "idx":
            self.file.write(pixels.numpy().tobytes())
        else:
            from PIL import Image
            for i, image in enumerate(pixels[:, 0].numpy()):
                Image.fromarray(image, mode="L").save(self.folder / f"{self.written + i:05d}.png")
        self.written += len(images)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.file:
            self.file.close()


def write_labels(folder: Path, fmt: str, labels: np.ndarray) -> None:
    """labels.npy or labels-idx1-ubyte beside the images, when every image has a label."""
    if (labels < 0).any():  # an unconditional model of another dataset has no labels
        return
    if fmt == "npy":
        np.save(folder / "labels.npy", labels)
    elif fmt == "idx":
        (folder / "labels-idx1-ubyte").write_bytes(struct.pack(">II", 0x0801, len(labels)) + labels.astype(np.uint8).tobytes())


MAX_EXPORT = 10_000_000  # 7.8 GB of idx images; more is a mistake more often than a wish
MANIFEST = "export.json"  # marks a folder as an export, which --force may replace


def export_samples(G: Generator, cfg: Config, n: int, out_dir: str | Path, fmt: str, seed: int | None = None,
                   digit: int | None = None, min_confidence: float = 0.9, force: bool = False,
                   batch: int = 1000, progress=None) -> Path:
    """Write n generated images and their labels to the folder out_dir, a batch at a time (memory stays bounded).

    png: 00000.png ...; npy: images.npy, float32 (n, 1, 28, 28) in [0, 1], and labels.npy; idx: MNIST's own
    format (images-idx3-ubyte, labels-idx1-ubyte), which torchvision and most MNIST loaders read. Every format
    also gets labels.csv: the label (the condition of a conditional model, else the shipped classifier's call)
    and the classifier's confidence in it, and export.json, what was written. The folder appears whole at the
    end, and no other export writes it meanwhile; an existing one is replaced only with `force`, and only if it
    is an earlier export (never a folder of anything else). Ctrl-C or SIGTERM leaves nothing behind.
    """
    if fmt not in EXPORT_FORMATS:
        raise BadValue(f"unknown {{format}} {fmt!r}: choose one of {', '.join(EXPORT_FORMATS)}")
    check_int("n", n, 1, MAX_EXPORT)
    base_seed = check_seed("seed", seed)
    out_dir = Path(out_dir).absolute()
    if out_dir.parent == out_dir or not out_dir.name or out_dir.name in (".", ".."):
        raise BadValue(f"{{out}} {out_dir} cannot be an export folder: name a new folder, such as synth/")
    check_digit_source(G, cfg, digit)
    with FolderLock(out_dir, "--out", beside=True) as _, StopRequest(raise_at_once=True):
        check_target(out_dir, force)
        remove_orphans(out_dir.parent)
        tmp = out_dir.with_name(f".{out_dir.name}.partial-{os.getpid()}")
        try:
            tmp.mkdir()
        except OSError as e:
            raise GANError(f"cannot create {tmp.parent} ({e.strerror}): choose another --out") from None
        base_seed = base_seed if base_seed is not None else int(torch.randint(0, 2**31, ()).item())
        try:
            write_export(G, cfg, n, tmp, fmt, base_seed, digit, min_confidence, batch, progress)
            replace_folder(tmp, out_dir)
        except OSError as e:
            shutil.rmtree(tmp, ignore_errors=True)
            raise GANError(f"could not write {out_dir}: {e.strerror or e}") from None
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return out_dir


def check_target(out_dir: Path, force: bool) -> None:
    """An existing --out may be replaced only with --force, and only when it is an earlier export."""
    if not out_dir.exists():
        return
    if not force:
        raise GANError(f"{out_dir} already exists: choose another --out, or pass --force to replace an earlier export")
    exported = out_dir.is_dir() and (out_dir / MANIFEST).is_file()
    strangers = [p.name for p in out_dir.iterdir() if not (p.is_file() and is_export_file(p.name))] if exported else []
    if not exported or strangers:
        what = f"holds {strangers[0]}, which no export writes" if strangers else "is not an export of this tool"
        raise GANError(f"--force replaces only an earlier export, and {out_dir} {what}: choose another --out")


def is_export_file(name: str) -> bool:
    stem = name.removesuffix(".png")
    return name in (MANIFEST, "labels.csv", "images.npy", "labels.npy", "images-idx3-ubyte", "labels-idx1-ubyte") or (
        name.endswith(".png") and stem.isdigit())


def write_export(G, cfg, n, folder: Path, fmt, base_seed, digit, min_confidence, batch, progress) -> None:
    all_labels, names = np.zeros(n, dtype=np.int64), cfg.classes or None  # --images runs: the classes' names too
    with ImageFile(folder, fmt, n) as images_out, open(folder / "labels.csv", "w", newline="") as file:
        table = csv.writer(file, lineterminator="\n")  # quotes a class name with a comma, a quote or a newline
        table.writerow(["index", "label", "confidence", *(["class"] if names else [])])
        for start in range(0, n, batch):
            count = min(batch, n - start)  # each batch its own seed: repeatable, and no giant noise tensor
            images, labels, confidence = draw_labelled(G, cfg, count, base_seed + start, digit, min_confidence)
            images_out.write(images)
            all_labels[start:start + count] = labels.numpy()
            table.writerows([start + i, int(l), f"{float(c):.4f}", *([names[int(l)]] if names else [])]
                            for i, (l, c) in enumerate(zip(labels, confidence)))
            if progress:
                progress(count)
    write_labels(folder, fmt, all_labels)
    manifest = {"n": n, "format": fmt, "seed": base_seed, "digit": digit, "dataset": cfg.dataset,
                "conditional": cfg.conditional, "classes": cfg.classes}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")


def replace_folder(new: Path, target: Path) -> None:
    """Move a finished folder into place; an old one (--force) goes only once the new one is complete."""
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        target.rename(old)
        new.rename(target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        new.rename(target)


# ---- walks through the latent space ----

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
        raise BadValue(f"unknown {{method}} {method!r}: use linear or slerp")
    check_int("rows", rows, 1, 1000)
    check_int("steps", steps, 2, 1000)
    if rows * steps > MAX_GRID:
        raise BadValue(f"{{rows}} x {{steps}} is {rows * steps:,} images, more than one picture holds ({MAX_GRID:,})")
    seed = check_seed("seed", seed)
    rng = torch.Generator().manual_seed(seed) if seed is not None else None
    a, b = torch.randn(2, rows, 1, G.latent_dim, generator=rng)                # (rows, 1, latent)
    labels = class_labels(G, rows, None)                                        # a conditional G: row r is r % 10
    labels = labels.repeat_interleave(steps) if labels is not None else None
    t = torch.linspace(0, 1, steps).view(1, steps, 1)                          # (1, steps, 1)
    z = slerp(a, b, t) if method == "slerp" else (1 - t) * a + t * b          # (rows, steps, latent)
    return sample_images(G, z.reshape(rows * steps, G.latent_dim).to(device_of(G)), labels)
