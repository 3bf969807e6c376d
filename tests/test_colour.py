"""Your own pictures as they are: colour kept, 32 or 64 pixels a side, and everything downstream (grids, generate,
export, interpolate, evaluate, resume) in that shape; MNIST's 28x28 grey networks and files unchanged."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

import gan
import images
from conftest import ROOT, assert_identical_runs, assert_refused, make_mnist, quiet

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (40, 60, 230)}


def colour_folder(root, per_class=40, seed=0):
    """Three classes of coloured shapes on a pale, noisy background, as PNG (some with transparency), JPEG and BMP
    files of assorted sizes: red discs, green squares, blue bars."""
    rng = np.random.default_rng(seed)
    for k, (name, rgb) in enumerate(COLOURS.items()):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            w, h = int(rng.integers(40, 90)), int(rng.integers(40, 90))
            pixels = (rng.integers(200, 256, (h, w, 3))).astype(np.uint8)
            y, x = np.mgrid[:h, :w]
            cy, cx, r = h / 2 + rng.integers(-5, 6), w / 2 + rng.integers(-5, 6), min(h, w) / 4
            shape = [(y - cy) ** 2 + (x - cx) ** 2 < r * r, (abs(y - cy) < r) & (abs(x - cx) < r),
                     abs(y - cy) < r / 3][k]
            pixels[shape] = rgb
            image = Image.fromarray(pixels)
            if i % 4 == 1:  # transparent around the shape: laid on white when read
                alpha = np.where(shape, 255, 0).astype(np.uint8)
                image = Image.fromarray(np.dstack([pixels, alpha]), "RGBA")
            image.save(root / name / f"{i:03d}.{('png', 'png', 'jpg', 'bmp')[i % 4]}")
    return root


@pytest.fixture(scope="module")
def icons(tmp_path_factory):
    return colour_folder(tmp_path_factory.mktemp("colour") / "shapes")


def small(*extra, size="64"):
    return ["--size", size, "--width", "4", "--batch-size", "20", "--device", "cpu", *extra]


@pytest.fixture(scope="module")
def run64(tmp_path_factory, icons):
    """Four epochs of a 64x64 colour run on the shapes, keeping its checkpoints."""
    tmp = tmp_path_factory.mktemp("run64")
    cfg = gan.Config(images=str(icons), size=64, width=8, batch_size=10, epochs=4, device="cpu", keep_last=0,
                     checkpoint_dir=str(tmp / "ck"), sample_dir=str(tmp / "samples"))
    gan.train(cfg, console=quiet())
    return tmp


def is_colour(path) -> bool:
    """Red and green differ by more than 5 grey levels on average: a picture with colour, not a grey one."""
    with Image.open(path) as image:
        pixels = np.asarray(image.convert("RGB")).astype(int)
    return image.mode == "RGB" and np.abs(pixels[..., 0] - pixels[..., 1]).mean() > 5


def test_a_colour_folder_is_read_in_colour_at_the_size_asked(icons):
    for size in (32, 64):
        said = []
        x, y = images.load_folder(gan.Config(images=str(icons), size=size), said.append)
        assert x.shape == (120, 3, size, size) and x.dtype == torch.uint8 and said == []
        assert torch.bincount(y).tolist() == [40, 40, 40]
        red = x[y == sorted(COLOURS).index("red")].float().mean((0, 2, 3))  # red discs: more red than green or blue
        assert red[0] > red[1] + 10 and red[0] > red[2] + 10
    said = []
    grey, _ = images.load_folder(gan.Config(images=str(icons), channels="1"), said.append)
    assert grey.shape == (120, 1, 28, 28) and said == []  # grey as asked: nothing to note
    # transparent pixels are laid on white, not on whatever colour hides under them
    corner = images.decode(icons / "red" / "001.png", 32, "3")[:, 0, 0]
    assert corner.min() == 255


def test_a_grey_folder_stays_one_channel_with_channels_auto(tmp_path):
    root = tmp_path / "grey" / "a"
    root.mkdir(parents=True)
    for i in range(4):
        Image.fromarray(np.full((30, 30), 60 * i, np.uint8)).convert("RGB").save(root / f"{i}.png")  # RGB, but grey
    x, _ = images.load_folder(gan.Config(images=str(tmp_path / "grey"), size=32))
    assert x.shape == (4, 1, 32, 32)


def test_a_64x64_colour_run_writes_colour_grids_and_a_checkpoint_of_its_shape(run64):
    state = torch.load(run64 / "ck" / "gan_epoch_4.pth", weights_only=True)
    assert state["config"]["size"] == 64 and state["config"]["channels"] == "3"
    assert state["config"]["classes"] == sorted(COLOURS)  # in name order, as torchvision's ImageFolder
    grid = run64 / "samples" / "epoch_0004.png"
    assert Image.open(grid).size == (10 * 66 + 2, 3 * 66 + 2) and is_colour(grid)  # a row of 10 per class
    G, cfg = gan.load_generator(run64 / "ck" / "generator_final.pth")
    assert gan.generate(G, 5, seed=0).shape == (5, 3, 64, 64)
    summary = (run64 / "ck" / "summary.txt").read_text()
    assert "(3, 64, 64)" in summary and "64x64 colour" in summary


def test_a_colour_run_resumes_bit_exactly(tmp_path, icons, run64):
    cfg = gan.Config(images=str(icons), size=64, width=8, batch_size=10, epochs=1, device="cpu",
                     checkpoint_dir=str(tmp_path / "ck"), sample_dir=str(tmp_path / "samples"))
    gan.train(cfg, console=quiet())
    gan.resume(tmp_path / "ck" / "gan_epoch_1.pth", {"epochs": 4}, console=quiet())
    assert_identical_runs(run64 / "ck" / "gan_epoch_4.pth", tmp_path / "ck" / "gan_epoch_4.pth")


def test_a_colour_run_resumed_on_a_folder_turned_grey_says_so_and_keeps_colour(tmp_path, icons):
    import shutil
    folder = shutil.copytree(icons, tmp_path / "shapes")
    cfg = gan.Config(images=str(folder), size=32, width=4, batch_size=20, epochs=1, device="cpu",
                     checkpoint_dir=str(tmp_path / "ck"), sample_dir=str(tmp_path / "samples"))
    first = quiet()
    gan.train(cfg, console=first)
    assert "grey" not in first.file.getvalue()  # colour pictures, drawn in colour: nothing to say
    for path in folder.rglob("*.*"):  # the same names, each picture made grey (kept in its own format)
        with Image.open(path) as image:
            image.convert("L").convert(image.mode).save(path)
    said = quiet()
    gan.resume(tmp_path / "ck" / "gan_epoch_1.pth", {"epochs": 2}, console=said)
    out = said.file.getvalue()
    assert out.count(f"every picture in {folder} is grey") == 1 and "--channels auto" in out
    state = torch.load(tmp_path / "ck" / "gan_epoch_2.pth", weights_only=True)
    assert state["config"]["channels"] == "3" and state["epoch"] == 2  # trained on, in colour as it began
    fresh = []
    x, _ = images.load_folder(gan.Config(images=str(folder), size=32), fresh.append)
    assert x.shape[1] == 1 and fresh == []  # a new run on it: grey, one channel, nothing to say
    mixed = shutil.copytree(icons, tmp_path / "mixed")
    with Image.open(mixed / "red" / "000.png") as image:
        image.convert("L").save(mixed / "red" / "000.png")  # one grey picture among colour ones
    for channels in ("3", "auto"):
        x, _ = images.load_folder(gan.Config(images=str(mixed), size=32, channels=channels), fresh.append)
        assert x.shape[1] == 3 and fresh == [], channels  # colour still: no note


def test_generate_export_and_interpolate_draw_in_colour(tmp_path, run64, run_cli):
    ck = run64 / "ck"
    result = run_cli("generate", "--checkpoint-dir", ck, "--class", "blue", "--n", "6", "--out", tmp_path / "b.npy")
    assert result.exit_code == 0, result
    assert np.load(tmp_path / "b.npy").shape == (6, 3, 64, 64)
    assert run_cli("generate", "--checkpoint-dir", ck, "--class", "green", "--out", tmp_path / "g.png").exit_code == 0
    assert is_colour(tmp_path / "g.png") and Image.open(tmp_path / "g.png").size == (4 * 66 + 2, 4 * 66 + 2)
    for fmt, check in (("npy", lambda out: np.load(out / "images.npy").shape == (9, 3, 64, 64)),
                       ("png", lambda out: Image.open(out / "00004.png").size == (64, 64)
                        and Image.open(out / "00004.png").mode == "RGB")):
        result = run_cli("export", "--checkpoint-dir", ck, "--n", "9", "--format", fmt, "--out", tmp_path / fmt)
        assert result.exit_code == 0 and check(tmp_path / fmt), result
        assert json.loads((tmp_path / fmt / "export.json").read_text())["shape"] == [3, 64, 64]
    assert_refused(run_cli("export", "--checkpoint-dir", ck, "--n", "9", "--out", tmp_path / "idx"),
                   r"--format idx \(the default\) holds 28x28 grey images only; .* draws 64x64 colour: pass --format png or "
                   r"--format npy$")
    assert not (tmp_path / "idx").exists()
    result = run_cli("interpolate", "--checkpoint-dir", ck, "--rows", "3", "--steps", "4", "--out", tmp_path / "w.png")
    assert result.exit_code == 0 and is_colour(tmp_path / "w.png"), result
    assert Image.open(tmp_path / "w.png").size == (4 * 66 + 2, 3 * 66 + 2)


def test_evaluate_scores_a_colour_folder_model_through_its_own_classifier(run64, run_cli):
    result = run_cli("evaluate", run64 / "ck" / "generator_final.pth", "--n", "60", "--device", "cpu", "--json")
    assert result.exit_code == 0, result
    report = json.loads(result.stdout)
    assert report["classes"] == sorted(COLOURS) and report["classifier_accuracy"] >= 0.9  # shapes of three colours
    assert set(report["label_agreement"]) == {"0", "1", "2"}
    for scores in (report["generator"], report["real_floor"]):
        assert scores["fid"] >= 0 and 0 <= scores["precision"] <= 1 and len(scores["recall_per_class"]) == 3
    assert report["real_floor"]["fid"] < report["generator"]["fid"]  # four epochs of width 8 are no match for real
    table = run_cli("evaluate", run64 / "ck" / "generator_final.pth", "--n", "60", "--device", "cpu")
    assert table.exit_code == 0 and "precision / recall of blue" in table.stdout, table


def test_a_flat_folder_model_gets_a_note_instead_of_scores(tmp_path, icons, run_cli):
    flat = tmp_path / "flat"
    flat.mkdir()
    for p in (icons / "red").iterdir():
        (flat / p.name).write_bytes(p.read_bytes())
    assert run_cli("train", "--images", flat, *small("--epochs", "1", size="32"), "--checkpoint-dir", tmp_path / "ck",
                   "--sample-dir", tmp_path / "s").exit_code == 0
    result = run_cli("evaluate", tmp_path / "ck" / "generator_final.pth", "--n", "20")
    assert result.exit_code == 0 and "no classifier can score it" in result.stdout, result
    assert len(result.stdout.strip().splitlines()) == 1


@pytest.mark.parametrize("args, said", [
    (["--size", "48"], r"Invalid value for '--size'"),
    (["--arch", "mlp"], r"--arch mlp draws 28x28 grey images only: use --arch dcgan for --size 64 or colour"),
    (["--channels", "2"], r"Invalid value for '--channels'"),
])
def test_sizes_and_networks_that_do_not_fit_are_one_line(args, said, icons, run_cli, tmp_path):
    result = run_cli("train", "--images", icons, "--size", "64", *args, "--checkpoint-dir", tmp_path / "ck",
                     "--sample-dir", tmp_path / "s", "--device", "cpu")
    assert_refused(result, said)
    assert not (tmp_path / "ck").exists()


def test_size_and_colour_are_for_your_own_pictures(run_cli, tmp_path, small_data):
    assert_refused(run_cli("train", "--size", "32", "--data-dir", small_data, "--checkpoint-dir", tmp_path / "ck"),
                   r"--size and --channels shape your own pictures \(--images DIR\); mnist is 28x28 grey")


def test_help_says_what_size_and_channels_do(run_cli):
    text = " ".join(run_cli("train", "--help").output.replace("│", " ").split())
    assert "--size" in text and "pixels per side (28, 32 or 64)" in text
    assert "--channels" in text and "auto: 3 if any picture has colour" in text


def test_mnist_networks_and_files_from_before_colour_are_unchanged(tmp_path):
    """A conditional width-4 DCGAN trained one epoch on make_mnist(128) by the previous version (checkpoint format 4),
    and 8 images that version drew from it: this version builds the same networks, draws the same images and resumes
    the file, twice to the same bit."""
    fixture = ROOT / "tests" / "fixtures" / "format4"
    assert torch.load(fixture / "gan_epoch_1.pth", weights_only=True)["format"] == 4
    G, cfg = gan.load_generator(fixture / "gan_epoch_1.pth")
    assert (cfg.size, cfg.n_channels, cfg.arch, cfg.width) == (28, 1, "dcgan", 4)
    drawn = torch.load(fixture / "drawn_by_format4.pt", weights_only=True)["images"]
    assert torch.allclose(gan.generate(G, 8, seed=0), drawn, atol=1e-4)  # kernels differ a little between CPUs
    data = make_mnist(tmp_path / "data", n_train=128, n_test=16)
    for run in ("a", "b"):
        checkpoint = tmp_path / run / "gan_epoch_1.pth"
        checkpoint.parent.mkdir()
        checkpoint.write_bytes((fixture / "gan_epoch_1.pth").read_bytes())
        gan.resume(checkpoint, {"epochs": 2, "data_dir": str(data), "sample_dir": str(tmp_path / run / "s")},
                   console=quiet())
    assert_identical_runs(tmp_path / "a" / "gan_epoch_2.pth", tmp_path / "b" / "gan_epoch_2.pth")
    resumed = torch.load(tmp_path / "a" / "gan_epoch_2.pth", weights_only=True)
    assert resumed["format"] == 6  # written in the format of today
    assert (resumed["config"]["beta1"], resumed["config"]["ema"]) == (0.5, 0.999)  # its own, not today's defaults
    assert resumed["opt_g"]["param_groups"][0]["betas"] == (0.5, 0.999)
