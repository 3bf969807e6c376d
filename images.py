"""Your own pictures as a dataset: a folder of PNG, JPEG, BMP or GIF files, one subfolder per class or flat, in colour
or grey, at 28, 32 or 64 pixels.

    python cli.py train --images my_icons/ --size 64     # my_icons/cat/*.png, my_icons/dog/*.png ...: a class each
    python cli.py generate --class dog --n 16

Each file is read as torchvision's ImageFolder reads it (through PIL; a GIF's first frame; transparent pixels laid on
white), kept in colour or made grey, resized so that its shorter side is the run's size and cut to the centre
square (torchvision's Resize + CenterCrop: nothing is stretched). The whole folder is decoded once, on a few
threads, into one uint8 tensor (N, C, S, S): 100,000 pictures of 64x64 in colour take 1.2 GB. Files that do not
decode are skipped and named in one line; a class with none that decodes is refused. The class names come from
config.image_classes. Builds on torchvision, PIL and config.py only.
"""

from __future__ import annotations

import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from config import Config, GANError, image_classes, image_files, unreadable_advice


def decode(path: Path, size: int = 28, channels: str = "1") -> torch.Tensor | str:
    """One file as uint8 (C, size, size), or why it was skipped ("does not decode", "too large to decode", "has pixels
    that are not numbers", "cannot be read: permission denied").
    channels "1": grey; "3" and "auto": colour (auto is settled once the whole folder is read)."""
    import numpy as np
    from PIL import Image, UnidentifiedImageError
    from torchvision.transforms.v2 import functional as TF
    try:
        with Image.open(path) as image:
            if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):  # 16-bit, 32-bit or float grey: scale
                pixels = np.asarray(image, dtype=np.float32)
                if not np.isfinite(pixels).all():
                    return "has pixels that are not numbers"
                top = float(pixels.max())
                # 16 bits (PNG's 16-bit grey opens as I;16 or I): 65535 is white, whatever the brightest pixel;
                # floats: 1.0 is white where all are within [0, 1], 255 within [0, 255]; wider: the brightest pixel
                scale = (257.0 if image.mode != "F" and top <= 65535 else 1 / 255 if top <= 1 else 1.0 if top <= 255
                         else top / 255)
                clear = pixels == image.info["transparency"] if "transparency" in image.info else None
                pixels = np.rint(pixels / scale).clip(0, 255)
                if clear is not None:  # the transparent grey value: laid on white, as 8-bit transparency is
                    pixels[clear] = 255
                image = Image.fromarray(pixels.astype(np.uint8))
            if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:  # transparent: laid on white
                rgba = image.convert("RGBA")
                image = Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba)
            pixels = TF.pil_to_tensor(image.convert("L" if channels == "1" else "RGB"))  # (C, H, W) uint8
    except Image.DecompressionBombError:
        return "too large to decode"
    except PermissionError:
        return "cannot be read: permission denied"
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError):
        return "does not decode"
    if pixels.shape[1:] == (size, size):  # already the size (MNIST written out as files): nothing to resample
        return pixels
    return TF.center_crop(TF.resize(pixels, size, antialias=True), [size, size])


def load_folder(cfg: Config, say=print) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images (N, C, S, S) and labels (N,) as indices into cfg.classes (all 0 for a flat folder). With
    channels auto, C is 3 if any picture has colour (its red, green and blue differ somewhere), else 1."""
    from PIL import Image
    root, classes = Path(cfg.images), cfg.classes or []
    files = folder_files(root, classes)
    new = sorted(set(image_classes(cfg.images)) - set(classes)) if classes else []
    if new:
        say(f"note: {root} now also holds {', '.join(new)}: this run trains on the classes it began with")
    images = torch.empty(len(files), 1 if cfg.channels == "1" else 3, cfg.size, cfg.size, dtype=torch.uint8)
    kept, skipped = torch.zeros(len(files), dtype=torch.bool), []

    def put(i: int) -> None:  # into the one tensor, in place: no second copy of the folder
        pixels = decode(files[i][0], cfg.size, cfg.channels)
        if isinstance(pixels, str):
            skipped.append(f"{files[i][0].relative_to(root)} ({pixels})")
        else:
            images[i], kept[i] = pixels, True
    with warnings.catch_warnings(), ThreadPoolExecutor(max_workers=4) as pool:  # PIL's decoders release the GIL
        # a large photo is no attack here; the filters are the process's, so set once for all the threads
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        list(pool.map(put, range(len(files))))
    labels = torch.tensor([label for _, label in files], dtype=torch.long)[kept]
    images = images[kept] if not kept.all() else images
    check_decoded(root, classes, labels, skipped)
    if skipped:
        say(f"note: {len(skipped)} of {len(files)} files in {root} were skipped: {', '.join(sorted(skipped)[:3])}"
            + (", ..." if len(skipped) > 3 else ""))
    grey = images.size(1) == 3 and not any((part != part[:, :1]).any() for part in images.split(4096))
    if grey and cfg.channels == "auto":
        images = images[:, :1].clone()  # every picture grey: one channel
    elif grey:  # colour asked for, or kept by a resumed run whose folder has turned grey since
        say(f"note: every picture in {root} is grey, and this run draws in colour (channels 3: asked for, or kept "
            f"from its start): it will learn to draw grey in three channels; for one, start a new run with "
            f"--channels auto")
    return images, labels


def folder_files(root: Path, classes: list[str]) -> list[tuple[Path, int]]:
    """Every image file of the folder with its class index, class by class."""
    try:
        groups = [image_files(root / name) if (root / name).is_dir() else [] for name in classes] or [
            image_files(root)]
    except OSError as e:
        raise GANError(f"cannot read {e.filename or root} ({e.strerror or e})" + unreadable_advice(e)) from None
    missing = [name for name, files in zip(classes, groups) if not files]
    if missing:
        raise GANError(f"{root} no longer holds images of the class {missing[0]!r} this run trained on: restore it, "
                       f"or train a new run")
    return [(path, label) for label, group in enumerate(groups) for path in group]


def check_decoded(root: Path, classes: list[str], labels: torch.Tensor, skipped: list[str]) -> None:
    """A folder needs pictures that decode, and each class at least one."""
    if len(labels) < 2:
        raise GANError(f"{root} holds {len(labels)} image{'s' if len(labels) != 1 else ''} that decode"
                       f"{'s' if len(labels) == 1 else ''}" + (f" ({len(skipped)} did not, such as {skipped[0]})"
                                                               if skipped else "") +
                       ": a GAN needs many, a few thousand at least")
    counts = torch.bincount(labels, minlength=len(classes))
    empty = [name for name, count in zip(classes, counts.tolist()) if not count]
    if empty:
        raise GANError(f"{root}: no file of the class {empty[0]!r} decodes as an image: add images that do, or remove "
                       f"the subfolder")
