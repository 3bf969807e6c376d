"""Digits on demand: conditional training, --digit by rejection sampling, bulk export, other 28x28 datasets."""

import csv
import re
from pathlib import Path
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import digits
import gan
from conftest import FIXTURE, ROOT, RealDigitsOfLabel, assert_refused, grid_size, make_mnist
from rundir import SHIPPED_GENERATOR as SHIPPED



@pytest.fixture(scope="module")
def conditional_checkpoint(mnist_dir, tmp_path_factory):
    """A conditional MLP GAN trained one epoch on the tiny data (its digits are bars, not real digits)."""
    out = tmp_path_factory.mktemp("cond")
    cfg = gan.Config(arch="mlp", conditional=True, epochs=1, batch_size=64, device="cpu", data_dir=str(mnist_dir),
                     checkpoint_dir=str(out / "ckpt"), sample_dir=str(out / "samples"))
    from rich.console import Console
    import io
    gan.train(cfg, console=Console(file=io.StringIO()))
    return out


def test_conditional_run_records_it_and_grids_one_row_per_digit(conditional_checkpoint):
    state = torch.load(conditional_checkpoint / "ckpt" / "gan_epoch_1.pth", weights_only=True)
    assert state["config"]["conditional"] is True
    assert state["fixed_z"].shape == (100, 100)
    assert Image.open(conditional_checkpoint / "samples" / "epoch_0001.png").size == grid_size(100, 10)
    summary = (conditional_checkpoint / "ckpt" / "summary.txt").read_text()
    assert "conditional" in summary


def test_conditional_generator_follows_the_label():
    """With a body that draws its label as a bar, generate --digit must put the bar of that digit."""
    class Bars(nn.Module):
        def forward(self, z_and_onehot):
            digit = z_and_onehot[:, -10:].argmax(dim=1)
            images = -torch.ones(len(digit), 1, 28, 28)
            for i, d in enumerate(digit):
                images[i, 0, 2 * d + 3] = 1.0
            return images

    G = gan.Generator(Bars(), latent_dim=4, n_classes=10)
    images = gan.generate(G, 5, seed=0, digit=7)
    assert images.shape == (5, 1, 28, 28) and (images[:, 0, 17] == 1).all() and images[:, 0, 3].max() == 0
    rows = gan.generate(G, 20, seed=0)  # no digit: classes 0..9 in turn
    assert [int(r[0].sum(dim=1).argmax()) for r in rows[:10]] == [2 * d + 3 for d in range(10)]
    with pytest.raises(gan.GANError, match="^digit must be between 0 and 9"):
        gan.generate(G, 2, digit=12)
    # called like an unconditional generator, it draws a random digit for each z
    torch.manual_seed(0)
    drawn = [int(r[0].sum(dim=1).argmax() - 3) // 2 for r in G(torch.randn(200, 4))]
    assert set(drawn) == set(range(10))


def test_cli_generate_digit_from_a_conditional_checkpoint(conditional_checkpoint, run_cli, tmp_path):
    ckpt = conditional_checkpoint / "ckpt" / "generator_final.pth"
    out = tmp_path / "sevens.npy"
    result = run_cli("generate", "--checkpoint", ckpt, "--digit", "7", "--n", "12", "--out", out, "--seed", "1")
    assert result.exit_code == 0, result
    assert np.load(out).shape == (12, 1, 28, 28) and "12 images of 7 " in result.output
    grid = tmp_path / "rows.png"
    assert run_cli("generate", "--checkpoint", ckpt, "--n", "30", "--out", grid).exit_code == 0
    assert Image.open(grid).size == grid_size(30, 3)  # a conditional grid: one row per digit, 10 x 3


class RealDigits(nn.Module):
    """A stand-in 'generator' that returns real MNIST digits picked by the noise: rejection sampling run on it
    must keep exactly the asked-for digit."""

    def __init__(self):
        super().__init__()
        data = np.load(FIXTURE)
        self.register_buffer("images", torch.from_numpy(data["images"]).float().div(127.5).sub(1).unsqueeze(1))

    def forward(self, z):
        index = (z[:, 0].abs() * 1e4).long() % len(self.images)
        return self.images[index]


def test_rejection_sampling_keeps_only_the_asked_digit():
    G = gan.Generator(RealDigits(), latent_dim=8)
    images, confidence = digits.keep_digit(G, 20, digit=3, seed=0)
    assert images.shape == (20, 1, 28, 28) and (confidence >= 0.9).all()
    labels, _ = digits.classify(images)
    assert (labels == 3).all()
    with pytest.raises(gan.GANError, match="only .* of 20 images were a 3"):
        digits.keep_digit(G, 20, digit=3, seed=0, min_confidence=1.01)  # nothing can pass
    with pytest.raises(gan.GANError, match="rarely draws 3"):
        digits.keep_digit(G, 2000, digit=3, seed=0, max_draws=1000)


def test_plotting_a_digit_from_an_unconditional_generator_keeps_the_grid_shape(tmp_path):
    """generate --digit on an unconditional model goes through generate_and_plot_samples: --nrow and
    --min-confidence reach the rejection sampler and the grid alike."""
    G = gan.Generator(RealDigits(), latent_dim=8)
    out = tmp_path / "threes.png"
    images = gan.generate_and_plot_samples(G, n=6, nrow=3, seed=0, out=out, show=False, digit=3,
                                           sampler=digits.rejection_sampler(min_confidence=0.99))
    assert Image.open(out).size == grid_size(6, 3)
    labels, confidence = digits.classify(images)
    assert (labels == 3).all() and (confidence >= 0.99).all()
    with pytest.raises(gan.GANError, match="only .* of 6 images were a 3"):
        gan.generate_and_plot_samples(G, n=6, seed=0, out=out, show=False, digit=3,
                                      sampler=digits.rejection_sampler(min_confidence=1.01))


@pytest.mark.parametrize("fmt", ["npy", "idx", "png"])
def test_bulk_export_reads_back(fmt, conditional_checkpoint, run_cli, tmp_path):
    ckpt = conditional_checkpoint / "ckpt" / "generator_final.pth"
    out = tmp_path / "export"
    result = run_cli("generate", "--checkpoint", ckpt, "--n", "250", "--format", fmt, "--out", out, "--seed", "3")
    assert result.exit_code == 0, result
    with open(out / "labels.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 250 and [int(r["label"]) for r in rows[:12]] == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]
    assert all(0 <= float(r["confidence"]) <= 1 for r in rows)
    if fmt == "npy":
        images = np.load(out / "images.npy")
        assert images.shape == (250, 1, 28, 28) and images.dtype == np.float32 and 0 <= images.min() <= images.max() <= 1
        assert np.load(out / "labels.npy").tolist() == [int(r["label"]) for r in rows]
        expected = gan.generate(gan.load_generator(ckpt)[0], 250, seed=3)  # one batch: the seed carries over
        assert np.allclose(images, expected.numpy())
    elif fmt == "idx":
        from torchvision.datasets.mnist import read_image_file, read_label_file
        images, labels = read_image_file(str(out / "images-idx3-ubyte")), read_label_file(str(out / "labels-idx1-ubyte"))
        assert images.shape == (250, 28, 28) and images.dtype == torch.uint8
        assert labels.tolist() == [int(r["label"]) for r in rows]
    else:
        files = sorted(out.glob("*.png"))
        assert len(files) == 250 and files[0].name == "00000.png" and Image.open(files[0]).size == (28, 28)
    again = run_cli("generate", "--checkpoint", ckpt, "--n", "5", "--format", fmt, "--out", out)
    assert again.exit_code == 1 and "already exists" in again.output and "--force" in again.output
    assert len(list(csv.DictReader(open(out / "labels.csv")))) == 250  # untouched
    forced = run_cli("generate", "--checkpoint", ckpt, "--n", "5", "--format", fmt, "--out", out, "--force")
    assert forced.exit_code == 0, forced
    assert len(list(csv.DictReader(open(out / "labels.csv")))) == 5
    assert not list(tmp_path.glob(".export*"))  # no partial or old folders left behind


def peak_rss_mb(code: str) -> float:
    out = subprocess.run([sys.executable, "-c", code + "\nimport resource; print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    return int(out.stdout.split()[-1]) / 1024


def test_bulk_export_of_30000_runs_in_bounded_memory(tmp_path):
    """30,000 images (24 MB as uint8, 94 MB as float32) stream out a batch at a time: peak memory is about the same
    as for 10,000 (from 1,000 to 10,000 it grows by some 60 MB of buffers that the second batch allocates once)."""
    code = ("import digits, gan\n"
            "G = gan.build_generator(gan.Config(arch='mlp'))\n"
            "digits.export_samples(G, {n}, "
            "'{out}', 'idx', seed=0)\n")
    small = peak_rss_mb(code.format(n=10000, out=tmp_path / "small"))
    large = peak_rss_mb(code.format(n=30000, out=tmp_path / "large"))
    assert large - small < 30, (small, large)  # holding them as float32 would add 63 MB
    from torchvision.datasets.mnist import read_image_file, read_label_file
    images = read_image_file(str(tmp_path / "large" / "images-idx3-ubyte"))
    labels = read_label_file(str(tmp_path / "large" / "labels-idx1-ubyte"))
    assert images.shape == (30000, 28, 28) and labels.shape == (30000,) and int(labels.max()) <= 9
    assert len((tmp_path / "large" / "labels.csv").read_text().splitlines()) == 30001


def test_fashion_mnist_trains_into_its_own_folders(tmp_path, run_cli, monkeypatch):
    """Fashion-MNIST has MNIST's file names under FashionMNIST/raw; defaults go to */fashion-mnist/."""
    data = tmp_path / "data"
    make_mnist(data)
    (data / "MNIST").rename(data / "FashionMNIST")
    monkeypatch.chdir(tmp_path)
    result = run_cli("train", "--dataset", "fashion-mnist", "--arch", "mlp", "--epochs", "1", "--batch-size", "64",
                     "--data-dir", data, "--device", "cpu")
    assert result.exit_code == 0, result
    assert (tmp_path / "checkpoints" / "fashion-mnist" / "gan_epoch_1.pth").exists()
    assert (tmp_path / "samples" / "fashion-mnist" / "epoch_0001.png").exists()
    G, cfg = gan.load_generator(tmp_path / "checkpoints" / "fashion-mnist" / "gan_epoch_1.pth")
    assert cfg.dataset == "fashion-mnist"
    from torchvision.datasets import KMNIST
    monkeypatch.setattr(KMNIST, "mirrors", ["http://127.0.0.1:9/"])  # fail at once, as offline
    result = run_cli("train", "--dataset", "kmnist", "--epochs", "1", "--data-dir", data, "--arch", "mlp")
    assert result.exit_code == 1 and f"KMNIST is not in {data / 'KMNIST' / 'raw'}" in result.output
    result = run_cli("train", "--dataset", "cifar", "--data-dir", data)
    assert result.exit_code == 2 and "Invalid value for '--dataset'" in result.output and "'fashion-mnist'" in result.output


def test_evaluate_reports_label_agreement_for_a_conditional_model(conditional_checkpoint, run_cli, mnist_dir):
    import json
    ckpt = conditional_checkpoint / "ckpt" / "generator_final.pth"
    result = run_cli("evaluate", ckpt, "--n", "50", "--data-dir", mnist_dir, "--json", "--device", "cpu")
    assert result.exit_code == 0, result
    agreement = json.loads(result.stdout)["label_agreement"]
    assert sorted(agreement) == [str(d) for d in range(10)] and all(0 <= v <= 1 for v in agreement.values())


def test_spread_scales_the_noise_of_generate_export_and_evaluate(conditional_checkpoint, run_cli, mnist_dir, tmp_path):
    """--spread s draws from noise of standard deviation s, in every command that draws, and says so."""
    import json
    ckpt = conditional_checkpoint / "ckpt" / "generator_final.pth"
    G = gan.load_generator(ckpt)[0]
    z = torch.randn(20, G.latent_dim, generator=torch.Generator().manual_seed(3))
    wide = gan.generate(G, 20, seed=3, spread=1.5)
    assert torch.allclose(wide, gan.draw(G, z * 1.5, gan.class_labels(G, 20, None)))
    assert not torch.allclose(wide, gan.generate(G, 20, seed=3))
    result = run_cli("export", "--checkpoint", ckpt, "--n", "20", "--format", "npy", "--out", tmp_path / "ex", "--seed",
                     "3", "--spread", "1.5")
    assert result.exit_code == 0 and "noise spread 1.5" in result.output, result
    assert np.allclose(np.load(tmp_path / "ex" / "images.npy"), wide.numpy())
    assert json.loads((tmp_path / "ex" / "export.json").read_text())["spread"] == 1.5
    result = run_cli("generate", "--checkpoint", ckpt, "--n", "20", "--out", tmp_path / "g.npy", "--seed", "3",
                     "--spread", "1.5")
    assert result.exit_code == 0 and np.allclose(np.load(tmp_path / "g.npy"), wide.numpy()), result
    assert re.search(r"^wrote 20 images from .* to .*g\.npy \(noise spread 1\.5\)$", result.output, re.M), result.output
    assert np.allclose(gan.generate_and_plot_samples(G, n=20, seed=3, spread=1.5, show=False,
                                                     out=tmp_path / "p.npy").numpy(), wide.numpy())
    reports = []
    for spread in ("1", "1.5"):
        result = run_cli("evaluate", ckpt, "--n", "50", "--data-dir", mnist_dir, "--json", "--spread", spread)
        assert result.exit_code == 0, result
        reports.append(json.loads(result.stdout))
    assert [r["spread"] for r in reports] == [1, 1.5]
    assert reports[0]["generator"]["fid"] != reports[1]["generator"]["fid"]


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "3.5"])
def test_a_spread_out_of_range_is_one_line_for_every_command(value, run_cli, tmp_path):
    for command in (["generate"], ["export", "--out", tmp_path / "ex"], ["evaluate"]):
        line = assert_refused(run_cli(*command, "--spread", value),
                              r"--spread must be from 0.01 to 3 \(1 draws as trained\), got")
        assert line.endswith(value.lstrip("-")), line
    assert not list(tmp_path.iterdir())  # nothing written


def test_a_spread_that_is_not_a_number_is_refused_in_python(tmp_path):
    G = gan.Generator(nn.Linear(4, 784), latent_dim=4)
    for value in (True, "1.2", None):
        with pytest.raises(gan.BadValue, match=f"^spread must be a number, got {value!r}$"):
            digits.export_samples(G, 5, tmp_path / "ex", spread=value)
    with pytest.raises(gan.BadValue, match="^spread must be from 0.01 to 3"):
        gan.generate_and_plot_samples(G, n=4, spread=0.0, show=False, out=tmp_path / "p.png")
    with pytest.raises(gan.BadValue, match="give the spread to the sampler instead"):  # not silently dropped
        gan.generate_and_plot_samples(G, n=4, spread=1.5, sampler=digits.rejection_sampler(), show=False,
                                      out=tmp_path / "p.png")
    with pytest.raises(gan.BadValue, match=r"got 3\.000001$"):  # the value as given, not rounded to 3
        gan.generate_and_plot_samples(G, n=4, spread=3.000001, show=False, out=tmp_path / "p.png")
    assert not list(tmp_path.iterdir())
    # the functions beneath the commands check it too: a NaN spread drew NaN images
    for draw in (lambda s: gan.generate(G, 4, spread=s), lambda s: digits.rejection_sampler(spread=s),
                 lambda s: digits.keep_digit(gan.Generator(nn.Linear(4, 784), latent_dim=4), 1, 3, spread=s)):
        for value in (float("nan"), -1.0, float("inf"), 1e-320):  # the last underflowed to no noise at all
            with pytest.raises(gan.BadValue, match=r"^spread must be from 0.01 to 3 \(1 draws as trained\), "
                                                   r"got (nan|-1|inf|9\.999888672e-321)$"):
                draw(value)


def test_label_agreement_measures_whether_the_label_is_obeyed():
    import evaluate as ev
    good = gan.Generator(RealDigitsOfLabel(), latent_dim=4, n_classes=10)
    wrong = gan.Generator(RealDigitsOfLabel(shift=1), latent_dim=4, n_classes=10)
    assert min(ev.label_agreement(good, 40).values()) >= 0.9
    assert max(ev.label_agreement(wrong, 40).values()) <= 0.1


def test_export_of_an_unlabelled_model_writes_no_fake_labels(tmp_path):
    """An unconditional Fashion-MNIST model has no classifier to label it: labels.csv says -1, no label file."""
    cfg = gan.Config(arch="mlp", dataset="fashion-mnist", conditional=False)
    G = gan.build_generator(cfg)
    out = digits.export_samples(G, 30, tmp_path / "fashion", "idx", seed=0)
    assert (out / "images-idx3-ubyte").exists() and not (out / "labels-idx1-ubyte").exists()
    rows = list(csv.DictReader(open(out / "labels.csv")))
    assert len(rows) == 30 and {r["label"] for r in rows} == {"-1"} and rows[0]["confidence"] == "nan"


# ---- what a conditional model draws, and how its grid is laid out ----

def bar_row(images: torch.Tensor) -> torch.Tensor:
    """For the synthetic digits (a bright bar at rows 3 + 2 * label .. + 2): the label each image's bar says."""
    rows = images[:, 0, :, 6:22].mean(dim=2)  # (N, 28): brightness of each row
    top = rows.unfold(1, 3, 1).sum(dim=2).argmax(dim=1)  # (N,): the first of the 3 brightest adjacent rows
    return torch.div(top - 2, 2, rounding_mode="floor")  # bars of neighbouring labels share a row: 3 + 2d is d


@pytest.fixture(scope="module")
def learned_bars(tmp_path_factory):
    """A small conditional DCGAN trained (about 15 s) on 2,048 synthetic digits until it draws their bars without
    doubt: at 6 epochs an AMX CPU drew some digits only 77-83% right, at 8 every CPU tried drew all of them right.
    In fp32, so that it learns the same way on every CPU (bf16 is tested in test_precision.py)."""
    out = tmp_path_factory.mktemp("bars")
    data = make_mnist(out / "data", n_train=2048, n_test=16)
    cfg = gan.Config(arch="dcgan", width=8, epochs=10, batch_size=64, lr_g=1e-3, lr_d=1e-3, ema=0, device="cpu",
                     precision="fp32", data_dir=str(data), checkpoint_dir=str(out / "ckpt"),
                     sample_dir=str(out / "samples"))
    from rich.console import Console
    import io
    gan.train(cfg, console=Console(file=io.StringIO()))
    return out / "ckpt" / "generator_final.pth"


def test_a_short_conditional_run_draws_what_each_label_asks(learned_bars):
    G, _ = gan.load_generator(learned_bars)
    for digit in range(10):
        drawn = bar_row(gan.generate(G, 30, seed=digit, digit=digit))
        assert (drawn == digit).float().mean() >= 0.9, (digit, drawn.tolist())


def grid_cells(png: Path, rows: int, columns: int) -> torch.Tensor:
    """The 28x28 cells of a torchvision grid (padding 2) as images (rows, columns, 1, 28, 28) in [0, 1]."""
    pixels = torch.from_numpy(np.asarray(Image.open(png).convert("L"), dtype=np.float32) / 255)
    assert tuple(pixels.shape) == (rows * 30 + 2, columns * 30 + 2)
    return torch.stack([torch.stack([pixels[2 + 30 * r:30 + 30 * r, 2 + 30 * c:30 + 30 * c][None] for c in range(columns)])
                        for r in range(rows)])


def test_generate_draws_a_row_per_digit_or_a_near_square_grid_in_digit_order(learned_bars, run_cli, tmp_path):
    # a multiple of 10: a row per digit, as training draws them
    out = tmp_path / "grid30.png"
    assert run_cli("generate", "--checkpoint", learned_bars, "--n", 30, "--out", out, "--seed", "0").exit_code == 0
    cells = grid_cells(out, rows=10, columns=3)
    for digit in range(10):
        assert (bar_row(cells[digit]) == digit).all(), digit  # row d holds the d's
    # any other n: near-square (16 -> 4 x 4), the digits 0-9 in turn, sorted, read row by row
    out = tmp_path / "grid16.png"
    assert run_cli("generate", "--checkpoint", learned_bars, "--n", 16, "--out", out, "--seed", "0").exit_code == 0
    cells = grid_cells(out, rows=4, columns=4).reshape(16, 1, 28, 28)
    assert bar_row(cells).tolist() == sorted(d % 10 for d in range(16))
    # and the epoch grid the run wrote has the training layout: 10 x 10, row d drawn with label d
    cells = grid_cells(learned_bars.parent.parent / "samples" / "epoch_0010.png", rows=10, columns=10)
    assert all((bar_row(cells[digit]) == digit).float().mean() >= 0.9 for digit in range(10))


def test_only_mnist_models_get_a_classifier_confidence(tmp_path, monkeypatch, run_cli):
    data = tmp_path / "data"
    make_mnist(data)
    (data / "MNIST").rename(data / "FashionMNIST")
    monkeypatch.chdir(tmp_path)
    assert run_cli("train", "--dataset", "fashion-mnist", "--arch", "mlp", "--epochs", "1", "--data-dir", data,
                   "--device", "cpu").exit_code == 0
    ckpt = tmp_path / "checkpoints" / "fashion-mnist" / "generator_final.pth"
    for command in (["generate", "--digit", "3"], ["export"]):  # the older spelling of export, and export itself
        out = tmp_path / command[0]
        result = run_cli(*command, "--checkpoint", ckpt, "--n", "20", "--format", "npy", "--out", out)
        assert result.exit_code == 0, result
        rows = list(csv.DictReader(open(out / "labels.csv")))
        assert len(rows) == 20 and all(r["confidence"] == "nan" for r in rows)  # no MNIST classifier's view of a garment
        assert [int(r["label"]) for r in rows] == ([3] * 20 if "--digit" in command else [i % 10 for i in range(20)])


# ---- --check: a conditional MNIST model's digits read by a second classifier ----

def test_a_digit_the_model_never_draws_as_asked_is_kept_as_drawn_and_counted():
    """A model that always draws the next digit: every draw fails the check, so after its rounds of redrawing each
    digit is its first draw again (nothing invented), and the count says how many."""
    wrong = gan.Generator(RealDigitsOfLabel(shift=1), latent_dim=4, n_classes=10)
    images, left = digits.checked(wrong, 30, seed=2, check=0.5, rounds=3)
    assert left == 30 and torch.equal(images, gan.generate(wrong, 30, seed=2))
    good = gan.Generator(RealDigitsOfLabel(), latent_dim=4, n_classes=10)
    assert digits.checked(good, 30, seed=2, check=0.5)[1] == 0
    note = digits.unchecked_note(30, 30, 0.5)
    assert note.startswith("note: 30 of 30 digits are kept as first drawn") and "--check 0" in note
    assert "below 0.999999999999 in" in digits.unchecked_note(1, 2, 0.999999999999)  # not rounded up to 1


def test_check_is_said_by_generate_export_and_evaluate(conditional_checkpoint, run_cli, mnist_dir, tmp_path):
    """The tiny model's bars fail the check: generate and export say how many digits are unchecked, export.json and
    evaluate's report record the threshold; --check 0 draws as the model does and says nothing of a check."""
    import json
    ckpt = conditional_checkpoint / "ckpt" / "generator_final.pth"
    result = run_cli("generate", "--checkpoint", ckpt, "--n", "20", "--out", tmp_path / "g.png", "--seed", "1")
    assert result.exit_code == 0 and re.search(r"^note: \d+ of 20 digits are kept as first drawn", result.output,
                                                 re.M), result
    result = run_cli("export", "--checkpoint", ckpt, "--n", "20", "--format", "npy", "--out", tmp_path / "ex",
                     "--seed", "1")
    assert result.exit_code == 0, result
    manifest = json.loads((tmp_path / "ex" / "export.json").read_text())
    assert manifest["check"] == 0.5 and 0 < manifest["unchecked"] <= 20
    assert f"note: {manifest['unchecked']} of 20 digits are kept as first drawn" in result.output
    result = run_cli("export", "--checkpoint", ckpt, "--n", "20", "--format", "npy", "--out", tmp_path / "ex0",
                     "--seed", "1", "--check", "0")
    assert result.exit_code == 0 and "note:" not in result.output, result
    assert json.loads((tmp_path / "ex0" / "export.json").read_text())["check"] is None
    G = gan.load_generator(ckpt)[0]
    assert np.allclose(np.load(tmp_path / "ex0" / "images.npy"), gan.generate(G, 20, seed=1).numpy())
    reports, stderr = {}, {}
    for check in ("0.5", "0"):
        result = run_cli("evaluate", ckpt, "--n", "50", "--data-dir", mnist_dir, "--json", "--check", check)
        assert result.exit_code == 0, result
        reports[check], stderr[check] = json.loads(result.stdout), result.stderr  # a note: stderr; stdout is JSON
    assert "note:" not in stderr["0"]
    assert reports["0.5"]["check"] == 0.5 and reports["0"]["check"] is None
    checked = reports["0.5"]
    assert 0 < checked["unchecked"] <= 50  # of the 50 scored, not of the agreement's draws as well
    assert stderr["0.5"].count("note:") == 1
    assert f"note: {checked['unchecked']} of 50 scored digits are kept as first drawn" in stderr["0.5"]
    result = run_cli("evaluate", ckpt, "--n", "50", "--data-dir", mnist_dir)
    assert result.exit_code == 0 and "50 samples, checked at 0.5 vs" in result.stdout, result


@pytest.mark.parametrize("value", ["1", "-0.1", "nan", "2"])
def test_a_check_out_of_range_is_one_line_for_every_command(value, run_cli, tmp_path):
    for command in (["generate"], ["export", "--out", tmp_path / "ex"], ["evaluate"]):
        line = assert_refused(run_cli(*command, "--check", value), r"--check must be in \[0, 1\) \(0: no check\), got")
        assert line.endswith(value.lstrip("-")), line
    assert not list(tmp_path.iterdir())  # nothing written


def test_a_missing_damaged_or_foreign_checker_is_one_line_and_check_0_still_draws(run_cli, tmp_path, monkeypatch):
    import evaluate as ev
    foreign = tmp_path / "five.pt"  # a real classifier of this tool, but of five classes of colour images
    ev.save_classifier(ev.Classifier(3, 32, 5), foreign, {"test_accuracy": 0.9})
    scorer = tmp_path / "scorer.pt"
    scorer.write_bytes(ev.WEIGHTS.read_bytes())
    for path, content, says in ((tmp_path / "damaged.pt", b"not a torch file", "does not load as a classifier"),
                                (scorer, None, "is the scoring classifier itself"),
                                (tmp_path / "missing.pt", None, "no checker at"),
                                (foreign, None, r"reads \(3, 32, 32\) images in 5 classes")):
        if content is not None:
            path.write_bytes(content)
        monkeypatch.setattr(digits, "CHECKER", path)
        monkeypatch.setattr(digits, "_checker", [])  # not the one loaded by an earlier test
        line = assert_refused(run_cli("generate", "--n", "10", "--out", tmp_path / "g.png", "--checkpoint", SHIPPED),
                              says, r"it is the checker of --check", work_began=True)
        assert str(path) in line and "--check 0" in line, line
        assert not (tmp_path / "g.png").exists()
    result = run_cli("generate", "--n", "10", "--out", tmp_path / "g.png", "--checkpoint", SHIPPED, "--check", "0")
    assert result.exit_code == 0 and (tmp_path / "g.png").is_file(), result


def test_the_shipped_checker_is_never_written_over_and_the_api_refuses_bad_values(run_cli, mnist_dir, tmp_path):
    import evaluate as ev
    before = digits.CHECKER.read_bytes()
    result = run_cli("train-classifier", "--data-dir", mnist_dir, "--out", digits.CHECKER, "--force", "--epochs", "1")
    assert_refused(result, r"is a classifier that ships with the project, the checker of --check: it is not replaced")
    assert digits.CHECKER.read_bytes() == before
    good = gan.Generator(RealDigitsOfLabel(), latent_dim=4, n_classes=10)
    for rounds in (-1, 1.5, True, None):
        with pytest.raises(gan.GANError, match="rounds"):
            digits.checked(good, 10, seed=0, rounds=rounds)
    with pytest.raises(gan.GANError, match=r"spread 1.5 is not the sampler's own \(0.5\)"):
        ev.evaluate_file(SHIPPED, n=20, data_dir=mnist_dir, spread=1.5, sample=digits.rejection_sampler(spread=0.5))
