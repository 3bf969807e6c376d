"""Shared fixtures: a tiny MNIST written as real IDX files, and a CLI runner that returns plain text."""

import re
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import cli  # noqa: E402


def write_idx(path: Path, array: np.ndarray) -> None:
    """The IDX format MNIST ships in: magic (0x08 = unsigned byte, then the number of dims), dims, raw bytes."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = struct.pack(">I", 0x0800 + array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.tobytes())


def synthetic_digits(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n 28x28 images of ten easy classes (a bright bar whose row depends on the label), with noise."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n).astype(np.uint8)
    images = rng.integers(0, 40, (n, 28, 28)).astype(np.uint8)
    for image, label in zip(images, labels):
        row = 3 + 2 * int(label)
        image[row:row + 3, 6:22] = 255
    return images, labels


def make_mnist(root: Path, n_train: int = 256, n_test: int = 64) -> Path:
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for prefix, n, seed in (("train", n_train, 0), ("t10k", n_test, 1)):
        images, labels = synthetic_digits(n, seed)
        write_idx(raw / f"{prefix}-images-idx3-ubyte", images)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels)
    return root


@pytest.fixture(scope="session")
def mnist_dir(tmp_path_factory) -> Path:
    """A data dir with MNIST/raw/ holding 256 training and 64 test images as real IDX files."""
    return make_mnist(tmp_path_factory.mktemp("data"))


ANSI = re.compile(r"\x1b\[[0-9;?]*[a-zA-Z]")


class Result:
    def __init__(self, result):
        self.exit_code = result.exit_code
        self.exception = result.exception
        self.output = ANSI.sub("", result.output)
        try:
            self.stderr = ANSI.sub("", result.stderr)
        except ValueError:  # older Click: stderr mixed into output
            self.stderr = ""

    def __repr__(self):
        return f"<exit {self.exit_code}: {self.output[-2000:]}{self.stderr[-2000:]}>"


@pytest.fixture
def run_cli(monkeypatch):
    """Invoke the real Typer app in-process; returns exit code and ANSI-free output."""
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setenv("NO_COLOR", "1")
    runner = CliRunner()

    def run(*args: str) -> Result:
        return Result(runner.invoke(cli.app, [str(a) for a in args]))

    return run


@pytest.fixture
def train_args(mnist_dir, tmp_path):
    """Options for a fast training run on the tiny data, writing into this test's temp dir."""
    def args(*extra: str, arch: str = "mlp") -> list[str]:
        return ["--arch", arch, "--batch-size", "64", "--data-dir", mnist_dir, "--device", "cpu",
                "--checkpoint-dir", tmp_path / "ckpt", "--sample-dir", tmp_path / "samples", *extra]
    return args
