"""Shared fixtures and helpers: a tiny MNIST written as real IDX files, a CLI runner that returns plain text, the
checks every test of an error uses (one clear line), small training configs and bit-for-bit comparison of runs."""

import io
import re
import signal
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import cli  # noqa: E402
import gan  # noqa: E402

FIXTURE = ROOT / "tests" / "fixtures" / "mnist_real_500.npz"


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
        self.stdout = ANSI.sub("", result.stdout)
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
    def args(*extra: str, arch: str = "dcgan") -> list[str]:
        small = ["--width", "4"] if arch == "dcgan" and "--width" not in extra else []  # 1 MB checkpoints
        return ["--arch", arch, *small, "--batch-size", "64", "--data-dir", mnist_dir, "--device", "cpu",
                "--checkpoint-dir", tmp_path / "ckpt", "--sample-dir", tmp_path / "samples", *extra]
    return args


# ---- helpers shared by the test modules ----

def one_clear_line(text: str, *patterns: str) -> str:
    """The error output is one line, with no traceback, naming the problem (each regex must match)."""
    lines = [line for line in text.splitlines() if line.strip()]
    assert "Traceback" not in text, text
    assert len(lines) == 1, f"expected one line, got:\n{text}"
    for pattern in patterns:
        assert re.search(pattern, lines[0], re.IGNORECASE), f"{pattern!r} not in: {lines[0]}"
    return lines[0]


def assert_refused(result, *patterns: str, work_began: bool = False) -> str:
    """A command invoked through Typer's runner failed cleanly: non-zero exit, no exception escaped, one line, and,
    unless its work began (and said so) before it failed, nothing on stdout (no bar of work that never began)."""
    assert result.exit_code not in (0, None), result
    assert isinstance(result.exception, SystemExit), f"a traceback escaped: {result.exception!r}"
    assert work_began or not result.stdout, f"a refusal printed on stdout: {result.stdout[-500:]!r}"
    return one_clear_line(result.stderr, *patterns)


# ---- processes: real `python cli.py` runs, and cheap forks of one that has already imported torch ----

ENV = {"OMP_NUM_THREADS": "1", "NO_COLOR": "1", "COLUMNS": "200"}
_forkserver = []


def forkserver():
    """A process that has imported torch, torchvision and the CLI once; each command forked from it starts in
    milliseconds instead of the seconds a fresh interpreter spends importing torch."""
    if not _forkserver:
        import multiprocessing
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["gan", "cli", "evaluate", "digits", "torchvision.datasets", "torchvision.utils",
                                    "matplotlib.figure", "rich.progress", "conftest"])
        _forkserver.append(ctx)
    return _forkserver[0]


def _cli_in_fork(argv: list[str], out: str, err: str, cwd: str) -> None:
    """The body of a forked command: exactly what `python cli.py ARGV` runs, stdout and stderr to files."""
    import os
    for fd, name in ((1, out), (2, err)):
        f = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(f, fd)
        os.close(f)
    os.environ.update(ENV)
    torch.set_num_threads(1)
    os.chdir(cwd)
    sys.argv = ["cli.py", *argv]
    cli.app(args=argv, prog_name="cli.py")


class CliProcess:
    """`python cli.py ARGV` forked from the forkserver, with the part of subprocess.Popen's interface the tests use:
    pid, poll, wait, communicate, send_signal, kill, returncode. Signals and exit codes are the real ones."""

    count = 0
    started, logs = [], []

    def __init__(self, *argv, cwd=ROOT):
        import tempfile
        CliProcess.count += 1
        logs = Path(tempfile.mkdtemp(prefix="cli-"))
        CliProcess.logs.append(logs)
        self.out, self.err = logs / "out", logs / "err"
        self.process = forkserver().Process(target=_cli_in_fork, args=([str(a) for a in argv], str(self.out),
                                                                          str(self.err), str(cwd)))
        self.process.start()
        CliProcess.started.append(self.process)
        self.pid = self.process.pid

    @property
    def returncode(self):
        return self.process.exitcode

    def poll(self):
        return self.process.exitcode

    def wait(self, timeout: float | None = None) -> int:
        import subprocess
        self.process.join(timeout)
        if self.process.exitcode is None:
            raise subprocess.TimeoutExpired(["cli.py"], timeout)
        return self.process.exitcode

    def communicate(self, timeout: float | None = None) -> tuple[str, str]:
        self.wait(timeout)
        return tuple(p.read_text() if p.exists() else "" for p in (self.out, self.err))

    def send_signal(self, sig: int) -> None:
        import os
        os.kill(self.pid, sig)

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
            self.process.join()


def cli_process(*argv, cwd=ROOT) -> CliProcess:
    return CliProcess(*argv, cwd=cwd)


@pytest.fixture(scope="session", autouse=True)
def no_command_left_running():
    """A failed test leaves no forked command running behind it, and no log folder."""
    yield
    for process in CliProcess.started:
        if process.is_alive():
            process.kill()
            process.join()
    import shutil
    for logs in CliProcess.logs:
        shutil.rmtree(logs, ignore_errors=True)


@pytest.fixture(scope="module")
def small_data(tmp_path_factory) -> Path:
    """128 training images: 4 steps of 32 per epoch, so epochs (and saves) come quickly."""
    return make_mnist(tmp_path_factory.mktemp("small"), n_train=128, n_test=16)


def quiet():
    from rich.console import Console
    return Console(file=io.StringIO(), width=200)


def config(tmp: Path, data: Path, epochs: int, **extra) -> gan.Config:
    return gan.Config(arch="dcgan", width=4, batch_size=32, device="cpu", epochs=epochs, seed=0, data_dir=str(data),
                      checkpoint_dir=str(tmp / "ck"), sample_dir=str(tmp / "samples"), **extra)


def same(a, b, where="") -> list[str]:
    """Where two checkpoint states differ, bit for bit (tensors with torch.equal)."""
    if isinstance(a, torch.Tensor):
        return [] if isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b) else [where]
    if isinstance(a, dict):
        if not isinstance(b, dict) or a.keys() != b.keys():
            return [where + " (keys)"]
        return [d for k in a for d in same(a[k], b[k], f"{where}.{k}")]
    if isinstance(a, (list, tuple)):
        if type(a) is not type(b) or len(a) != len(b):
            return [where + " (length)"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in same(x, y, f"{where}[{i}]")]
    return [] if a == b else [where]


def assert_identical_runs(a: Path, b: Path) -> None:
    sa, sb = torch.load(a, weights_only=True), torch.load(b, weights_only=True)
    assert sa["epoch"] == sb["epoch"]
    for key in ("G", "D", "G_ema", "opt_g", "opt_d", "rng", "fixed_z"):
        assert key in sa or key == "G_ema"
        if key in sa:
            assert not same(sa[key], sb[key], key), same(sa[key], sb[key], key)
    # the losses recorded for every epoch agree too (times naturally differ)
    stats = [[row[k] for k in ("epoch", *gan.STAT_NAMES)] for row in sa["history"]]
    assert stats == [[row[k] for k in ("epoch", *gan.STAT_NAMES)] for row in sb["history"]]


class RealDigitsOfLabel(nn.Module):
    """A stand-in conditional body: returns a real fixture digit of the label it is given (shifted by `shift`)."""

    def __init__(self, shift: int = 0):
        super().__init__()
        data = np.load(FIXTURE)
        self.shift = shift
        self.register_buffer("images", torch.from_numpy(data["images"]).float().div(127.5).sub(1).unsqueeze(1))
        self.register_buffer("labels", torch.from_numpy(data["labels"]).long())

    def forward(self, z_and_onehot):
        wanted = (z_and_onehot[:, -10:].argmax(dim=1) + self.shift) % 10
        pick = (z_and_onehot[:, 0].abs() * 1e4).long()
        out = []
        for digit, k in zip(wanted, pick):
            candidates = self.images[self.labels == digit]
            out.append(candidates[k % len(candidates)])
        return torch.stack(out)


def grid_size(n: int, nrow: int) -> tuple[int, int]:
    """Pixel size of a torchvision grid of 28x28 images with padding 2."""
    rows = -(-n // nrow)
    return (nrow * 30 + 2, rows * 30 + 2)


@pytest.fixture
def run_bench(monkeypatch, capsys):
    """bench.py's main() in this process (no second interpreter to import torch): exit code, stdout, stderr."""
    def run(*args, cwd=None):
        import bench
        monkeypatch.setattr(sys, "argv", ["bench.py", *map(str, args)])
        if cwd is not None:
            monkeypatch.chdir(cwd)
        capsys.readouterr()
        try:
            bench.main()
            code = 0
        except SystemExit as e:  # as the interpreter would: a message goes to stderr with status 1
            code = e.code if isinstance(e.code, int) else 1 if e.code else 0
            if isinstance(e.code, str):
                print(e.code, file=sys.stderr)
        out = capsys.readouterr()
        return code, out.out, out.err
    return run


def pytest_configure(config):
    # the commands started here get the usual stop signals even when this suite runs under nohup or as a background
    # job, which start it ignoring SIGHUP or Ctrl-C (the commands keep a signal they were started to ignore)
    for sig, usual in ((signal.SIGINT, signal.default_int_handler), (signal.SIGHUP, signal.SIG_DFL)):
        if signal.getsignal(sig) == signal.SIG_IGN:
            signal.signal(sig, usual)
    config.addinivalue_line("markers", "gpu: needs a CUDA GPU (tests/test_gpu.py); run them with `bash .ci/gpu`")
