"""Your own images as a dataset: a folder of PNG, JPEG, BMP or GIF files, one subfolder per class or flat.

    python cli.py train --images my_letters/          # my_letters/a/*.png, my_letters/b/*.png ... : one class each
    python cli.py generate --class b --n 16

Each file is read as torchvision's ImageFolder reads it (through PIL), made grey, resized so that its shorter side is 28 pixels and cut to the centre
28x28 (torchvision's Resize + CenterCrop: the aspect ratio is kept and nothing is stretched), then the whole set is
held as one tensor, as MNIST is. Files that do not decode are skipped and named in one line; a folder with none that
decodes is refused. The class names come from config.image_classes. Builds on torchvision and config.py only.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from config import GANError, image_files

SIZE = 28


def decode(path: Path) -> torch.Tensor | str:
    """One file as uint8 (28, 28), or why it was skipped: it does not decode (truncated, not an image, unsupported)
    or it is too large to decode safely. Read as torchvision's ImageFolder reads a file (PIL; a GIF's first frame),
    made grey, then Resize + CenterCrop."""
    import warnings

    import numpy as np
    from PIL import Image, UnidentifiedImageError
    from torchvision.transforms.v2 import functional as TF
    try:
        with warnings.catch_warnings(), Image.open(path) as image:
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # a large photo is no attack here
            if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):  # 16-bit or float grey: scale, do not clip
                pixels = np.asarray(image, dtype=np.float32)
                top = float(pixels.max())
                scale = 1.0 if top <= 255 else 257.0 if top <= 65535 else top / 255  # 16 bits: 65535 is white
                image = Image.fromarray((pixels / scale).clip(0, 255).astype(np.uint8))
            grey = TF.pil_to_tensor(image.convert("L"))  # (1, H, W) uint8
    except Image.DecompressionBombError:
        return "too large to decode"
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError):
        return "does not decode"
    if grey.shape[1:] == (SIZE, SIZE):  # already the size (MNIST written out as files): nothing to resample
        return grey[0]
    return TF.center_crop(TF.resize(grey, SIZE, antialias=True), [SIZE, SIZE])[0]


def load_folder(root: str | Path, classes: list[str]) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """uint8 images (N, 28, 28), labels (N,) as indices into `classes` (all 0 for a flat folder), and the names of
    the files skipped because they did not decode. Decoding runs on a few threads (PIL's decoders release the
    interpreter lock)."""
    root = Path(root)
    gone = [name for name in classes if not (root / name).is_dir()]
    try:
        groups = [image_files(root / name) if name not in gone else [] for name in classes] if classes else [
            image_files(root)]
    except OSError as e:
        raise GANError(f"cannot read {root} ({e.strerror or e}): check --images") from None
    missing = [name for name, files in zip(classes, groups) if not files]
    if missing:
        raise GANError(f"{root} no longer holds images of the class {missing[0]!r} this run trained on: restore it, "
                       f"or train a new run")
    files = [(path, label) for label, group in enumerate(groups) for path in group]
    with ThreadPoolExecutor(max_workers=4) as pool:
        decoded = list(pool.map(lambda item: decode(item[0]), files))
    kept = [(image, label) for image, (_, label) in zip(decoded, files) if torch.is_tensor(image)]
    skipped = [f"{path.relative_to(root)} ({image})" for image, (path, _) in zip(decoded, files) if isinstance(image, str)]
    empty = [name for label, name in enumerate(classes) if not any(k == label for _, k in kept)]
    if empty:
        raise GANError(f"{root}: no file of the class {empty[0]!r} decodes as an image: add images that do, or remove "
                       f"the subfolder")
    if len(kept) < 2:
        raise GANError(f"{root} holds {len(kept)} image{'s' if len(kept) != 1 else ''} that decode{'s' if len(kept) == 1 else ''}"
                       + (f" ({len(skipped)} did not, such as {skipped[0]})" if skipped else "")
                       + ": a GAN needs many, a few thousand at least")
    images = torch.stack([image for image, _ in kept])
    labels = torch.tensor([label for _, label in kept], dtype=torch.long)
    return images, labels, skipped
