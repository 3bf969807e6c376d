"""Images on demand beyond one call of the generator: a chosen digit from a label-free MNIST generator, labelled
datasets in bulk, and walks through the latent space.

    python cli.py generate --digit 7 --checkpoint unconditional.pth    # rejection sampling through the classifier
    python cli.py export --n 60000 --out synth --format idx            # a labelled MNIST-style dataset folder
    python cli.py interpolate --method slerp                          # images morphing into one another
    from digits import checked, keep_digit, export_samples, interpolate

The shipped MNIST classifier (evaluate.py) says what an MNIST generator cannot say itself: which digit an
unconditional sample is, and how sure it is that a sample is the digit it is labelled. A second one, the checker
(same recipe, another seed), redraws the digits a conditional MNIST model draws as another digit: a check made by
the classifier that scores would grade its own choice. This file builds on gan.py
(sampling), evaluate.py (the classifier) and files.py (locks, folders that appear whole); nothing imports it but
cli.py. Interpolation needs no classifier but is sampling beyond one call of G, like the rest.
"""

from __future__ import annotations

import csv
import errno
import json
import os
import shutil
import struct
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import evaluate
from config import BadValue, Drawing, Export, GANError, Walk, check_check, check_int, check_spread
from files import (EXPORT_MANIFEST, OLD, PARTIAL, FolderLock, StopRequest, new_folders, remove_orphans,
                   stop_signals_held, temporary)
from gan import Generator, check_not_misread, class_index, class_labels, device_of, draw, generate

# ---- the classifier's view of a sample ----


def class_probabilities(images: torch.Tensor) -> torch.Tensor:
    """The shipped MNIST classifier's probabilities (N, 10) for images (N, 1, 28, 28) in [0, 1]."""
    return evaluate.embed(evaluate.shipped_classifier(), images)[1]


def classify(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The shipped MNIST classifier's label and confidence for each image."""
    confidence, labels = class_probabilities(images).max(dim=1)
    return labels, confidence


CHECKER = evaluate.CHECKER  # `train-classifier --seed 1`: the scoring classifier's recipe, not the scoring classifier
_checker: list = []


def checker_confidence(images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The checker's probability that each image (N, 1, 28, 28) in [0, 1] is its label."""
    if not _checker:
        restore = (f"it is the checker of --check, which ships with the project: restore it (git checkout "
                   f"{CHECKER.parent.name}/{CHECKER.name}), or pass --check 0 to draw unchecked")
        if not CHECKER.is_file():
            raise GANError(f"no checker at {CHECKER}: {restore}")
        try:
            model = evaluate.load_classifier(CHECKER)
        except GANError:
            raise GANError(f"{CHECKER} does not load as a classifier (damaged?): {restore}") from None
        if model.shape != (1, 28, 28) or model.n_classes != 10:
            raise GANError(f"{CHECKER} reads {model.shape} images in {model.n_classes} classes, not MNIST's digits: "
                           f"{restore}")
        scorer = evaluate.shipped_classifier().state_dict()
        if all(torch.equal(v, scorer[k]) for k, v in model.state_dict().items()):
            raise GANError(f"{CHECKER} is the scoring classifier itself, which would grade its own choice: {restore}")
        _checker.append(model)
    return evaluate.embed(_checker[0], images)[1][torch.arange(len(labels)), labels]


def is_mnist(G: Generator) -> bool:
    """Whether G draws MNIST digits, which the shipped classifier can read."""
    return G.cfg.dataset == "mnist"


# ---- a chosen digit: asked of a conditional generator, or kept from an unconditional one ----

def keep_digit(G: Generator, n: int, digit: int, seed: int | None = None, min_confidence: float = 0.9,
               max_draws: int | None = None, spread: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """n images of `digit` from an unconditional MNIST generator and the classifier's confidence in each: samples
    are kept only when the classifier calls them `digit` with at least `min_confidence` (rejection sampling), up to
    max_draws draws (default 50 n + 10,000)."""
    check_can_keep(G)
    digit = check_int("digit", digit, 0, 9)
    max_draws, spread = max_draws or 50 * n + 10_000, check_spread(spread)
    rng = torch.Generator().manual_seed(seed) if seed is not None else None
    kept, confidences, found, drawn = [], [], 0, 0
    while found < n and drawn < max_draws:
        z = torch.randn(min(1000, max_draws - drawn), G.latent_dim, generator=rng) * spread
        images = draw(G, z.to(device_of(G)))
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


def checked(G: Generator, n: int, seed: int | None = None, digit: int | str | None = None, spread: float = 1.0,
            check: float = 0.5, rounds: int = 10) -> tuple[torch.Tensor, int]:
    """gan.generate's n images, each digit that the checker gives its label a probability below `check` drawn again
    from new noise (up to `rounds` times), and how many are left as first drawn (a model that rarely draws them as
    asked). Only a conditional MNIST model is checked; any other's draw, and check 0, is gan.generate's."""
    check, rounds = check_check(check), check_int("rounds", rounds, 0)
    images = generate(G, n, seed=seed, digit=digit, spread=spread)
    if not check or not G.n_classes or not is_mnist(G):
        return images, 0
    labels = class_labels(G, n, digit)
    rng = torch.Generator().manual_seed(seed) if seed is not None else None
    if rng is not None:  # on past the first draw's noise: no other seed's draw is met again
        torch.randn(n, G.latent_dim, generator=rng)
    todo = torch.nonzero(checker_confidence(images, labels) < check).flatten()
    for _ in range(rounds):
        if not len(todo):
            break
        z = torch.randn(len(todo), G.latent_dim, generator=rng) * spread
        again = torch.cat([draw(G, z[i:i + 1024].to(device_of(G)), labels[todo[i:i + 1024]])
                           for i in range(0, len(todo), 1024)])
        kept = checker_confidence(again, labels[todo]) >= check
        images[todo[kept]] = again[kept]
        todo = todo[~kept]
    return images, len(todo)


def check_can_keep(G: Generator) -> None:
    """Only an MNIST model's samples can be told apart by digit (the shipped classifier knows no other images)."""
    if not is_mnist(G):
        what = "a flat folder" if G.cfg.images else G.cfg.dataset
        raise GANError(f"{getattr(G, 'origin', 'this model')} learnt {what} without labels, so it has no classes to "
                       f"ask for: train with a subfolder per class (or, for MNIST, without --no-conditional)")


def rejection_sampler(min_confidence: float = 0.9, spread: float = 1.0, check: float = Drawing.check):
    """A sampler for gan.generate_and_plot_samples (and evaluate) that draws a chosen digit from any MNIST generator,
    its noise scaled by `spread`, a conditional MNIST one's digits `checked` at `check` as the commands draw them.
    `.unchecked` counts the digits of all its draws so far left as first drawn (a conditional MNIST model's)."""
    spread, check = check_spread(spread), check_check(check)

    def sample(G: Generator, n: int, seed: int | None = None, digit: int | str | None = None) -> torch.Tensor:
        if digit is None or G.n_classes:
            images, left = checked(G, n, seed, digit, spread, check)
            sample.unchecked += left
            return images
        check_can_keep(G)
        return keep_digit(G, n, digit, seed, min_confidence, spread=spread)[0]
    sample.check, sample.spread, sample.unchecked = check, spread, 0
    return sample


def unchecked_note(left: int, n: int, check: float, which: str = "") -> str:
    return (f"note: {left:,} of {n:,} {which + ' ' if which else ''}digits are kept as first drawn: the checker gave "
            f"their label below {check:.15g} "
            f"in every one of their draws (a model that rarely draws them as asked: train longer, or pass --check 0)")


# ---- bulk export ----

def labelled(G: Generator, n: int, seed: int, digit: int | None, min_confidence: float, spread: float = 1.0,
             check: float = 0.0):
    """n images with a label each (-1: none known) and the MNIST classifier's confidence that the image is that digit
    (NaN where there is no classifier to ask: the label is the model's condition, or none), and how many digits were
    left unchecked (see `checked`)."""
    if not is_mnist(G):
        images, labels = generate(G, n, seed=seed, digit=digit, spread=spread), class_labels(G, n, digit)
        return images, labels if labels is not None else torch.full((n,), -1), torch.full((n,), float("nan")), 0
    if digit is not None and not G.n_classes:
        images, confidence = keep_digit(G, n, digit, seed, min_confidence, spread=spread)
        return images, torch.full((n,), digit), confidence, 0
    (images, left), labels = checked(G, n, seed, digit, spread, check), class_labels(G, n, digit)
    probs = class_probabilities(images)
    labels = labels if labels is not None else probs.argmax(dim=1)
    return images, labels, probs[torch.arange(n), labels], left


class ImageFile:
    """Streams images into one npy or idx file (header first, then a batch at a time); png writes a file each."""

    def __init__(self, folder: Path, fmt: str, shape: tuple[int, ...]):
        self.folder, self.fmt, self.written, self.file = folder, fmt, 0, None
        if fmt == "npy":
            self.file = open(folder / "images.npy", "wb")
            np.lib.format.write_array_header_1_0(self.file, {"descr": "<f4", "fortran_order": False, "shape": shape})
        elif fmt == "idx":  # MNIST's header: magic, count, rows, columns
            self.file = open(folder / "images-idx3-ubyte", "wb")
            self.file.write(struct.pack(">IIII", 0x0803, shape[0], shape[2], shape[3]))

    def write(self, images: torch.Tensor) -> None:
        pixels = (images * 255).round().to(torch.uint8)  # (count, C, H, W)
        if self.fmt == "npy":
            self.file.write(images.numpy().astype("<f4").tobytes())
        elif self.fmt == "idx":
            self.file.write(pixels.numpy().tobytes())
        else:
            from PIL import Image
            for i, image in enumerate(pixels.permute(0, 2, 3, 1).numpy()):  # (H, W, C)
                Image.fromarray(image[..., 0] if image.shape[2] == 1 else image).save(
                    self.folder / f"{self.written + i:05d}.png")
        self.written += len(images)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.file:
            self.file.close()


def write_labels(folder: Path, fmt: str, labels: np.ndarray) -> None:
    """labels.npy or labels-idx1-ubyte beside the images, when every image has a label."""
    if (labels < 0).any():  # an unconditional model of your own pictures has no labels
        return
    if fmt == "npy":
        np.save(folder / "labels.npy", labels)
    elif fmt == "idx":
        header = struct.pack(">II", 0x0801, len(labels))  # MNIST's: magic, count
        (folder / "labels-idx1-ubyte").write_bytes(header + labels.astype(np.uint8).tobytes())


def export_samples(G: Generator, n: int = Export.n, out: str | Path | None = None, format: str = Export.format,
                   seed: int | None = None, digit: int | str | None = None,
                   min_confidence: float = Export.min_confidence, force: bool = Export.force, batch: int = 1000,
                   progress=None, spread: float = Export.spread, check: float = Export.check) -> Path:
    """Write n generated images and their labels to the folder `out`, a batch at a time (memory stays bounded).

    png: 00000.png ...; npy: images.npy, float32 (n, C, H, W) in [0, 1], and labels.npy; idx: MNIST's own format
    (images-idx3-ubyte, labels-idx1-ubyte; 28x28 grey only), which torchvision and most MNIST loaders read. Every
    format also gets labels.csv (the label, the MNIST classifier's confidence in it, and a class's name) and
    export.json, what was written (the seed, the noise's `spread` and the `check` included). A conditional MNIST
    model's digits are `checked` at `check`. The folder appears whole at the end,
    and no other export writes it meanwhile; an existing one is replaced only with `force`, and only if it is an
    earlier export. Ctrl-C leaves nothing behind.
    """
    ask = Export(n=n, out=None if out is None else str(out), format=format, seed=seed, digit=digit,
                 min_confidence=min_confidence, force=force, spread=spread, check=check)
    if ask.format == "idx" and (G.cfg.size, G.cfg.n_channels) != (28, 1):
        raise BadValue(f"{{format}} idx (the default) holds 28x28 grey images only; "
                       f"{getattr(G, 'origin', 'this model')} draws {G.cfg.size}x{G.cfg.size} "
                       f"{'colour' if G.cfg.n_channels == 3 else 'grey'}: pass {{format}} png or {{format}} npy")
    out_dir = Path(ask.out or default_export()).absolute()
    if out_dir.parent == out_dir or not out_dir.name or out_dir.name in (".", ".."):
        raise GANError(f"--out {out_dir} cannot be an export folder: name a new folder, such as synth/")
    if out_dir.is_symlink():
        raise GANError(f"--out {out_dir} is a link: name the folder itself")
    index = class_index(G, ask.digit)
    check_not_misread(G, ask.digit)
    if index is not None and not G.n_classes:
        check_can_keep(G)
    with (StopRequest(raise_at_once=True), new_folders(out_dir.parent, "--out"),
          FolderLock(out_dir, "--out", beside=True)):
        before = check_target(out_dir, ask.force)
        remove_orphans(out_dir.parent)
        tmp = temporary(out_dir, PARTIAL)
        base_seed = ask.seed if ask.seed is not None else int(torch.randint(0, 2**31, ()).item())
        try:
            tmp.mkdir()
            write_export(G, ask, tmp, base_seed, index, batch, progress)
            replace_folder(tmp, out_dir, before)
        except OSError as e:
            with stop_signals_held():
                shutil.rmtree(tmp, ignore_errors=True)
            raise GANError(f"could not write {out_dir}: {e.strerror or e}") from None
        except BaseException:
            with stop_signals_held():  # a second Ctrl-C waits until the partial folder is gone
                shutil.rmtree(tmp, ignore_errors=True)
            raise
    return out_dir


def default_export() -> Path:
    from record import default_output
    return default_output("export", "")


def check_target(out_dir: Path, force: bool) -> int | None:
    """An existing --out may be replaced only with --force, and only when it is an earlier export; returns the
    identity (inode) of the export to replace, or None when there is none."""
    if not out_dir.exists():
        return None
    exported = out_dir.is_dir() and (out_dir / EXPORT_MANIFEST).is_file()
    strangers = [p.name for p in out_dir.iterdir() if not (p.is_file() and is_export_file(p.name))] if exported else []
    if not force:  # --force is offered only where it would work
        hint = ", or pass --force to replace this earlier export" if exported and not strangers else \
            " (it is not an export of this tool, so --force would not replace it either)"
        raise GANError(f"{out_dir} already exists: choose another --out{hint}")
    if not exported or strangers:
        what = f"holds {strangers[0]}, which no export writes" if strangers else "is not an export of this tool"
        raise GANError(f"--force replaces only an earlier export, and {out_dir} {what}: choose another --out")
    return out_dir.stat().st_ino


def is_export_file(name: str) -> bool:
    stem = name.removesuffix(".png")
    return name in (EXPORT_MANIFEST, "labels.csv", "images.npy", "labels.npy", "images-idx3-ubyte",
                    "labels-idx1-ubyte") or (name.endswith(".png") and stem.isdigit())


def write_export(G: Generator, ask: Export, folder: Path, base_seed: int, digit: int | None, batch: int,
                 progress) -> None:
    cfg, n, left = G.cfg, ask.n, 0
    all_labels, names = np.zeros(n, dtype=np.int64), cfg.classes or None  # --images runs: the classes' names too
    shape = (n, cfg.n_channels, cfg.size, cfg.size)
    with ImageFile(folder, ask.format, shape) as images_out, open(folder / "labels.csv", "w", newline="") as file:
        table = csv.writer(file, lineterminator="\n")  # quotes a class name with a comma, a quote or a newline
        table.writerow(["index", "label", "confidence", *(["class"] if names else [])])
        for start in range(0, n, batch):
            count = min(batch, n - start)  # each batch its own seed: repeatable, and no giant noise tensor
            images, labels, confidence, unchecked = labelled(G, count, base_seed + start, digit, ask.min_confidence,
                                                             ask.spread, ask.check)
            left += unchecked
            images_out.write(images)
            all_labels[start:start + count] = labels.numpy()
            table.writerows([start + i, int(label), f"{float(c):.4f}", *([names[int(label)]] if names else [])]
                            for i, (label, c) in enumerate(zip(labels, confidence)))
            if progress:
                progress(count)
    write_labels(folder, ask.format, all_labels)
    checks = bool(cfg.conditional and is_mnist(G) and ask.check)
    manifest = {"n": n, "format": ask.format, "seed": base_seed, "spread": ask.spread,
                "check": ask.check if checks else None, "unchecked": left if checks else None, "digit": digit,
                "dataset": cfg.dataset, "conditional": cfg.conditional, "classes": cfg.classes,
                "shape": list(shape[1:])}
    (folder / EXPORT_MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")


def replace_folder(new: Path, target: Path, before: int | None) -> None:
    """Move a finished folder into place; an old export (--force) goes only once the new one is complete, and only if
    it is still the one checked at the start. Whatever appeared at `target` meanwhile (a run's folder, a folder of
    the user's) is never replaced: the rename refuses a folder that is not empty, and the export says so."""
    old = temporary(target, OLD)
    if before is not None:
        target.rename(old)  # atomic: from here the name is free, and the old export is under a name of ours
        if old.stat().st_ino != before or check_target(old, True) is None:
            old.rename(target)
            raise GANError(f"{target} changed while exporting: it is kept, and this export is not written")
    try:
        os.rename(new, target)  # fails on a folder that is not empty: nothing of anyone's is replaced
    except OSError as e:
        if before is not None:
            old.rename(target)
        if e.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR, errno.EISDIR):
            raise GANError(f"{target} appeared while exporting: it is kept, and this export is not written; choose "
                           f"another --out") from None
        raise
    if before is not None:
        shutil.rmtree(old, ignore_errors=True)


# ---- walks through the latent space ----

def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation: keeps the path near the shell where Gaussian noise vectors live."""
    cos = F.cosine_similarity(a, b, dim=-1).clamp(-1, 1).unsqueeze(-1)
    omega = torch.acos(cos)
    so = torch.sin(omega)
    linear = (1 - t) * a + t * b
    spherical = (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / so.clamp_min(1e-8)
    return torch.where(so.abs() < 1e-6, linear, spherical)  # nearly parallel vectors: the lerp is exact enough


def interpolate(G: Generator, rows: int = Walk.rows, steps: int = Walk.steps, method: str = Walk.method,
                seed: int | None = None) -> torch.Tensor:
    """rows x steps images in [0, 1]: each row walks from one random latent point to another (a conditional G: row
    r draws class r, modulo the classes)."""
    ask = Walk(rows=rows, steps=steps, method=method, seed=seed)
    rng = torch.Generator().manual_seed(ask.seed) if ask.seed is not None else None
    a, b = torch.randn(2, ask.rows, 1, G.latent_dim, generator=rng)               # (rows, 1, latent)
    labels = class_labels(G, ask.rows, None)
    labels = labels.repeat_interleave(ask.steps) if labels is not None else None
    t = torch.linspace(0, 1, ask.steps).view(1, ask.steps, 1)                     # (1, steps, 1)
    z = slerp(a, b, t) if ask.method == "slerp" else (1 - t) * a + t * b          # (rows, steps, latent)
    return draw(G, z.reshape(ask.rows * ask.steps, G.latent_dim).to(device_of(G)), labels)
