"""MNIST-style datasets on disk: the four IDX files read through torchvision, and what is wrong when they do not read.

    images, labels = read_idx("MNIST", Path("data"), train=True)    # uint8 (60000, 28, 28), (60000,)

torchvision finds the files in DATA_DIR/<MNIST|FashionMNIST|KMNIST>/raw, or downloads them there. Everything that can
go wrong on the way (no network, a truncated or foreign file, a .gz that is not one, a FIFO named like a data file)
becomes one line naming the file and what to do. gan.py's load_dataset is the short path that calls this.
"""

from __future__ import annotations

import contextlib
import gzip
import math
from pathlib import Path

import torch

from config import N_CLASSES, GANError
from files import atomic_write

IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def read_idx(folder: str, data_dir: Path, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images (N, 28, 28) and labels (N,) through torchvision; a missing, damaged or wrong file is one line."""
    raw = data_dir / folder / "raw"
    if data_dir.exists() and not data_dir.is_dir():
        raise GANError(f"--data-dir {data_dir} is a file: pass the folder that holds {folder}/raw/")
    odd = [name for name in IDX_FILES if (raw / name).exists() and not (raw / name).is_file()]
    if odd:  # a FIFO or device would never end a read
        raise GANError(f"{raw / odd[0]} is not a regular file: put the real {odd[0]} there")
    unpack_gz(raw)
    try:
        images, labels = download_or_read(folder, data_dir, train)
    except RuntimeError as e:
        if "download" not in str(e).lower():
            raise GANError(f"could not read {folder} from {raw}: {idx_problem(raw, train)}") from None
        raise GANError(f"{folder} is not in {raw} and could not be downloaded (no network?): put "
                       f"{', '.join(IDX_FILES)} (or their .gz) in {raw}/, or pass --data-dir to a folder that has "
                       f"{folder}/raw/ with them") from None
    except (OSError, ValueError, IndexError, EOFError, KeyError, TypeError, AssertionError, MemoryError) as e:
        # torchvision checks an IDX header with bare asserts and an unknown type code with a dict lookup
        if isinstance(e, OSError) and not any(raw.glob("*-ubyte")):
            raise GANError(f"cannot use {raw} ({e.strerror or e}): pass a --data-dir that holds "
                           f"{folder}/raw/") from None
        raise GANError(f"could not read {folder} from {raw}: {idx_problem(raw, train)}") from None
    if images.dtype != torch.uint8 or tuple(images.shape[1:]) != (28, 28) or len(images) != len(labels):
        raise GANError(f"the files in {raw} do not hold 28x28 images with one label each: they look damaged")
    if len(labels) and not 0 <= int(labels.min()) <= int(labels.max()) < N_CLASSES:
        raise GANError(f"the labels in {raw} run from {int(labels.min())} to {int(labels.max())}, outside the "
                       f"{N_CLASSES} classes 0-{N_CLASSES - 1}: the label file is damaged or from another dataset")
    return images, labels


def download_or_read(folder: str, data_dir: Path, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """torchvision's dataset class `folder`, downloaded where missing; the folders a failed download made (empty) are
    removed again, so a failed command leaves nothing behind."""
    import torchvision.datasets

    made = [p for p in (data_dir, data_dir / folder, data_dir / folder / "raw") if not p.exists()]
    try:
        dataset = getattr(torchvision.datasets, folder)(root=str(data_dir), train=train, download=True)
    except BaseException:
        for p in reversed(made):
            with contextlib.suppress(OSError):
                p.rmdir()  # only if empty
        raise
    return dataset.data, dataset.targets


def idx_problem(raw: Path, train: bool) -> str:
    """What is wrong with the IDX files torchvision could not read: which one, and how, and what to do."""
    for name in IDX_FILES[:2] if train else IDX_FILES[2:]:
        data = (raw / name).read_bytes() if (raw / name).is_file() else b""
        dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(data[3] if len(data) > 3 else 0)]
        promised = 4 + 4 * len(dims) + math.prod(dims)
        if len(data) < 8 or len(data) != promised:
            return (f"{name} is {len(data):,} bytes where its header promises {promised:,}: it is truncated or "
                    f"damaged; delete the damaged files and download again")
        if not dims[0]:
            return f"{name} holds no images; delete the damaged files and download again"
    return ("the IDX files do not match each other (one a label file, the other not?); delete the damaged files and "
            "download again")


def unpack_gz(raw: Path) -> None:
    """Unpack FILE.gz to FILE where only the .gz is there. torchvision would first check the .gz against the
    official checksum and try to download on a mismatch, which fails offline for re-compressed copies (Debian's
    Fashion-MNIST package ships such copies); the unpacked IDX files are then read and checked as usual."""
    for name in IDX_FILES:
        packed, unpacked = raw / f"{name}.gz", raw / name
        if packed.is_file() and not unpacked.exists():
            try:
                with gzip.open(packed, "rb") as src:
                    data = src.read()  # at most 47 MB; read whole, so that a bad .gz is a read error, not a write one
            except (OSError, EOFError) as e:
                raise GANError(f"could not unpack {packed} ({type(e).__name__}): the file is not a complete gzip "
                               f"file; delete it and try again") from None
            atomic_write(unpacked, lambda f: f.write(data))
