"""train --images DIR: a folder of your own pictures, with a subfolder per class (labels) or flat (label-free)."""

import csv
import json
import unicodedata

import numpy as np
import pytest
import torch
from PIL import Image

import gan
import images
from conftest import assert_refused, grid_size, synthetic_digits

SMALL = ("--arch", "mlp", "--batch-size", "32", "--device", "cpu")
FORMATS = ("png", "jpg", "bmp", "gif")


def write_folder(root, classes=("bar", "dot", "ring"), per_class=48, seed=0):
    """Synthetic pictures in every format, grey and colour, of several sizes: class k is a bright band at row 3 + 8k
    of a 28x28 picture (scaled up for the larger files)."""
    rng = np.random.default_rng(seed)
    for k, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 30, (28, 28), dtype=np.uint8)
            pixels[3 + 8 * k:7 + 8 * k, 4:24] = 255
            image = Image.fromarray(pixels)
            if i % 3 == 1:
                image = image.resize((56, 56)).convert("RGB")  # colour, larger: made grey and 28x28 again
            image.save(root / name / f"{i:03d}.{FORMATS[i % 4]}")
    return root


def test_a_folder_of_class_subfolders_trains_a_labelled_gan_and_everything_downstream_works(tmp_path, run_cli):
    data = write_folder(tmp_path / "pictures")
    ck, samples = tmp_path / "ck", tmp_path / "samples"
    result = run_cli("train", "--images", data, *SMALL, "--epochs", "1", "--checkpoint-dir", ck, "--sample-dir", samples)
    assert result.exit_code == 0, result
    state = torch.load(ck / "gan_epoch_1.pth", weights_only=True)
    assert state["config"]["classes"] == ["bar", "dot", "ring"] and state["config"]["conditional"] is True
    assert state["config"]["dataset"] == "images" and state["G"]["body.0.weight"].shape[1] == 100 + 3  # z + 3 classes
    assert Image.open(samples / "epoch_0001.png").size == grid_size(30, 10)  # a row of 10 per class
    # generate by class name, and by index
    result = run_cli("generate", "--checkpoint-dir", ck, "--class", "ring", "--n", "4", "--out", tmp_path / "r.npy")
    assert result.exit_code == 0 and np.load(tmp_path / "r.npy").shape == (4, 1, 28, 28), result
    assert_refused(run_cli("generate", "--checkpoint-dir", ck, "--class", "star"), r"no class 'star': it knows bar, dot, ring")
    assert_refused(run_cli("generate", "--checkpoint-dir", ck, "--digit", "3"), r"digit must be between 0 and 2")
    assert_refused(run_cli("generate", "--checkpoint-dir", ck, "--digit", "0", "--class", "dot"),
                   r"^Error: --class and --digit both choose a class: give one$")
    result = run_cli("generate", "--checkpoint-dir", ck, "--digit", "1", "--n", "2", "--out", tmp_path / "d.npy")
    assert result.exit_code == 0 and "wrote 2 images of 'dot' from" in result.output, result  # not "of 1"
    # export: the labels are the class names
    result = run_cli("export", "--checkpoint-dir", ck, "--n", "6", "--out", tmp_path / "ex", "--format", "npy")
    assert result.exit_code == 0, result
    rows = list(csv.DictReader(open(tmp_path / "ex" / "labels.csv")))
    assert [r["class"] for r in rows] == ["bar", "dot", "ring"] * 2 and [r["label"] for r in rows] == ["0", "1", "2"] * 2
    assert json.loads((tmp_path / "ex" / "export.json").read_text())["classes"] == ["bar", "dot", "ring"]
    # interpolate, resume, and evaluate through a classifier trained on the folder (cached beside the run)
    assert run_cli("interpolate", "--checkpoint-dir", ck, "--rows", "3", "--out", tmp_path / "walk.png").exit_code == 0
    result = run_cli("resume", ck / "gan_epoch_1.pth", "--epochs", "2")
    assert result.exit_code == 0, result
    result = run_cli("evaluate", ck / "gan_epoch_2.pth", "--n", "100", "--json", "--device", "cpu")
    assert result.exit_code == 0, result
    report = json.loads(result.stdout)
    assert report["lens"].startswith(f"a held-out fifth of {data}") and report["classes"] == ["bar", "dot", "ring"]
    assert report["classifier_accuracy"] > 0.9  # three bands at three heights: an easy folder to tell apart
    assert (ck / "folder_classifier.pt").is_file() and "training a classifier on" in result.stderr
    again = run_cli("evaluate", ck / "gan_epoch_2.pth", "--n", "100", "--json", "--device", "cpu")
    assert "training a classifier" not in again.stderr and json.loads(again.stdout)["generator"] == report["generator"]


def test_evaluate_refuses_a_class_too_small_to_hold_one_out_before_training_a_classifier(tmp_path, run_cli):
    """A class of one picture left nothing to train the folder's classifier on: a traceback from affine_grid."""
    data = write_folder(tmp_path / "pictures", per_class=12)
    (data / "lone").mkdir()
    Image.fromarray(np.full((28, 28), 90, dtype=np.uint8)).save(data / "lone" / "only.png")
    ck = tmp_path / "ck"
    result = run_cli("train", "--images", data, *SMALL, "--epochs", "1", "--checkpoint-dir", ck, "--sample-dir",
                     tmp_path / "s")
    assert result.exit_code == 0, result
    assert_refused(run_cli("evaluate", ck / "gan_epoch_1.pth", "--n", "20", "--device", "cpu"),
                   r"the class 'lone' has 1 image that decodes, and scoring needs at least 2 of every class")
    assert not (ck / "folder_classifier.pt").exists()


def test_a_class_name_is_found_whatever_the_spelling_of_its_accents(tmp_path):
    """A Mac names a folder 'café' with the accent apart (NFD); the name a user types is 'café' in one character
    (NFC): the two look the same, and the class was refused as one the model did not know."""
    nfd, nfc = unicodedata.normalize("NFD", "café"), unicodedata.normalize("NFC", "café")
    assert nfd != nfc
    G = gan.build_generator(gan.Config(arch="dcgan", width=4, images=str(tmp_path), channels="3",
                                       classes=[nfd, "dog"]))
    assert gan.class_index(G, nfc) == 0 and gan.class_index(G, nfd) == 0 and gan.class_index(G, "dog") == 1
    with pytest.raises(gan.BadValue, match="has no class 'cafe'"):
        gan.class_index(G, "cafe")


def test_digit_refuses_a_number_that_names_another_class(tmp_path, run_cli):
    """Folders named 3 and 7: --digit 1 drew the class '7' and said "images of 1"."""
    data = write_folder(tmp_path / "pictures", classes=("3", "7"), per_class=24)
    ck = tmp_path / "ck"
    assert run_cli("train", "--images", data, *SMALL, "--epochs", "1", "--checkpoint-dir", ck, "--sample-dir",
                   tmp_path / "s").exit_code == 0
    assert_refused(run_cli("generate", "--checkpoint-dir", ck, "--digit", "1", "--out", tmp_path / "x.png"),
                   r"names its classes 3, 7, so --digit 1 \(by place: '7'\) is easy to misread: ask by name, as "
                   r"--class 7 \(from Python: digit='7'\)$")
    assert_refused(run_cli("generate", "--checkpoint-dir", ck, "--digit", "7"), r"--digit must be between 0 and 1")
    result = run_cli("generate", "--checkpoint-dir", ck, "--class", "7", "--n", "2", "--out", tmp_path / "7.npy")
    assert result.exit_code == 0 and "wrote 2 images of '7' from" in result.output, result
    assert_refused(run_cli("export", "--checkpoint-dir", ck, "--digit", "0", "--n", "4", "--out", tmp_path / "ex"),
                   r"--digit 0 \(by place: '3'\) is easy to misread")
    # the check is for what a user asks: evaluate asks for every class by place, and scores them all
    result = run_cli("evaluate", ck / "gan_epoch_1.pth", "--n", "20", "--json", "--device", "cpu")
    assert result.exit_code == 0, result
    assert set(json.loads(result.stdout)["label_agreement"]) == {"0", "1"}  # both classes scored, by place
    # without labels the classes are not the model's to ask for: one line, whatever the number
    flat = tmp_path / "flat"
    assert run_cli("train", "--images", data, *SMALL, "--epochs", "1", "--no-conditional", "--checkpoint-dir", flat,
                   "--sample-dir", tmp_path / "s2").exit_code == 0
    for digit in ("1", "5"):
        assert_refused(run_cli("generate", "--checkpoint-dir", flat, "--digit", digit, "--out", tmp_path / "u.npy"),
                       r"learnt a flat folder without labels, so it has no classes to ask for")


def test_a_flat_folder_trains_label_free_with_the_label_free_defaults(tmp_path, run_cli):
    flat = tmp_path / "flat"
    flat.mkdir()
    for i, image in enumerate(synthetic_digits(64, seed=3)[0]):
        Image.fromarray(image).save(flat / f"{i}.png")
    result = run_cli("train", "--images", flat, *SMALL, "--epochs", "1", "--checkpoint-dir", tmp_path / "ck",
                     "--sample-dir", tmp_path / "s")
    assert result.exit_code == 0, result
    config = torch.load(tmp_path / "ck" / "gan_epoch_1.pth", weights_only=True)["config"]
    assert config["conditional"] is False and config["classes"] == [] and config["r1"] == gan.LABEL_FREE["r1"]
    assert Image.open(tmp_path / "s" / "epoch_0001.png").size == grid_size(64, 8)


def test_files_are_read_as_written_and_odd_sizes_keep_their_aspect_and_centre(tmp_path):
    data = tmp_path / "digits" / "seven"
    data.mkdir(parents=True)
    pixels = synthetic_digits(5, seed=1)[0]
    for i, image in enumerate(pixels):
        Image.fromarray(image).save(data / f"{i}.png")
    said = []
    x, y = images.load_folder(gan.Config(images=str(tmp_path / "digits")), said.append)
    assert torch.equal(x[:, 0], torch.from_numpy(pixels)) and y.tolist() == [0] * 5 and said == []
    # a wide picture: black, white, black thirds; the shorter side becomes 28 and the centre is kept, unstretched
    wide = np.zeros((28, 84), dtype=np.uint8)
    wide[:, 28:56] = 255
    Image.fromarray(wide).save(data / "wide.png")
    Image.fromarray(np.kron(wide, np.ones((2, 2), dtype=np.uint8))).convert("RGB").save(data / "wide_big.jpg", quality=95)
    for name in ("wide.png", "wide_big.jpg"):
        cell = images.decode(data / name)[0]
        assert cell.shape == (28, 28) and cell[:, 4:24].float().mean() > 240 and cell.dtype == torch.uint8, name


@pytest.mark.parametrize("case, pattern", [
    ("empty folder", r"holds no images .* and no class subfolders"),
    ("no images", r"holds no images"),
    ("a file", r"--images .* is a file"),
    ("missing", r"--images .*: no such folder"),
    ("a class with no images", r"class 'empty' has no images"),
    ("images and subfolders", r"holds both images and subfolders"),
    ("one image", r"holds 1 image that decode.*a GAN needs many"),
    ("nothing decodes", r"holds 0 images that decode \(2 did not, such as"),
    ("too many classes", r"has 101 class subfolders, more than 100"),
])
def test_bad_folders_get_one_line_and_nothing_is_written(case, pattern, tmp_path, run_cli):
    root = tmp_path / "in"
    if case != "missing" and case != "a file":
        root.mkdir()
    if case == "no images":
        (root / "notes.txt").write_text("hello")
    elif case == "a file":
        root.write_text("x")
    elif case == "a class with no images":
        write_folder(root, classes=("full",), per_class=4)
        (root / "empty").mkdir()
    elif case == "images and subfolders":
        write_folder(root, classes=("a",), per_class=4)
        Image.new("L", (28, 28)).save(root / "loose.png")
    elif case == "one image":
        Image.new("L", (28, 28)).save(root / "only.png")
    elif case == "nothing decodes":
        (root / "a.png").write_bytes(b"\x89PNG\r\n\x1a\ntruncated")
        (root / "b.jpg").write_bytes(b"")
    elif case == "too many classes":
        for k in range(101):
            (root / f"c{k}").mkdir()
            Image.new("L", (28, 28)).save(root / f"c{k}" / "x.png")
    result = run_cli("train", "--images", root, *SMALL, "--epochs", "1", "--checkpoint-dir", tmp_path / "ck",
                     "--sample-dir", tmp_path / "s")
    assert_refused(result, pattern)
    assert not list(tmp_path.glob("ck/*.pth"))


def test_unreadable_files_are_skipped_and_named(tmp_path, run_cli):
    data = write_folder(tmp_path / "pictures", per_class=32)
    (data / "dot" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    (data / "bar" / "empty.gif").write_bytes(b"")
    result = run_cli("train", "--images", data, *SMALL, "--epochs", "1", "--checkpoint-dir", tmp_path / "ck",
                     "--sample-dir", tmp_path / "s")
    assert result.exit_code == 0, result
    assert "note: 2 of 98 files in" in result.output and "bar/empty.gif" in result.output
    assert "dot/broken.png" in result.output


def test_a_large_photo_and_a_float_picture_with_nan_say_nothing_on_stderr(tmp_path, monkeypatch):
    """A photo over PIL's bomb limit printed its DecompressionBombWarning (the filter was set after the file was
    opened, and per thread); a float TIFF with a NaN pixel trained as an all-black picture, with numpy's warnings."""
    import warnings
    data = write_folder(tmp_path / "pictures", per_class=4)
    big = np.full((48, 48), 200, dtype=np.uint8)
    Image.fromarray(big).save(data / "bar" / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1600)  # 2,304 and 3,136 pixels: over, not twice over (an error)
    float_pixels = np.random.default_rng(0).random((20, 20)).astype(np.float32)
    for name, bad in (("nan.png", np.nan), ("inf.gif", np.inf)):
        float_pixels[0, 0] = bad
        Image.fromarray(float_pixels).save(data / "dot" / name, format="TIFF")
    said = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        x, y = images.load_folder(gan.Config(images=str(data)), said.append)
    assert [str(w.message) for w in caught] == []
    assert len(x) == 13 and x[y == 0].float().mean(dim=(1, 2, 3)).max() > 150  # the big photo is in, and bright
    assert "dot/nan.png (has pixels that are not numbers)" in said[0] and "dot/inf.gif (has pixels" in said[0], said


def test_a_file_or_class_folder_we_may_not_read_is_named_as_such(tmp_path, monkeypatch):
    """An unreadable picture was "does not decode" (the fix is a permission, not new images), and an unreadable class
    subfolder was blamed on its parent, with "check --images", an option resume does not have. As root, chmod does
    not stop a read, so the denial is made here."""
    import errno
    data = write_folder(tmp_path / "pictures", per_class=4)
    real_open = Image.open

    def guarded(path, *args, **kwargs):
        if str(path).endswith("dot/000.png"):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)
    monkeypatch.setattr(Image, "open", guarded)
    said = []
    images.load_folder(gan.Config(images=str(data)), said.append)
    assert "dot/000.png (cannot be read: permission denied)" in said[0], said
    real_files = images.image_files

    def files(folder):
        if folder.name == "ring":
            raise PermissionError(errno.EACCES, "Permission denied", str(folder))
        return real_files(folder)
    monkeypatch.setattr(images, "image_files", files)
    with pytest.raises(gan.GANError, match=rf"^cannot read {data}/ring \(Permission denied\): give yourself the "
                                           "right to read it$"):
        images.load_folder(gan.Config(images=str(data), classes=["bar", "dot", "ring"]), said.append)
    with pytest.raises(gan.GANError, match=r"^cannot read .*gone \(No such file or directory\): it has gone; put it "
                                           r"back where it was, or train a new run$"):  # a flat run's folder, moved
        images.folder_files(tmp_path / "gone", [])


def test_class_names_that_need_quoting_16_bit_pngs_and_a_class_gone_before_resume(tmp_path, run_cli, monkeypatch):
    data = write_folder(tmp_path / "pictures", classes=('a,b "q"', "plain"), per_class=32)
    deep = np.full((28, 28), 30000, dtype=np.uint16)  # 16-bit grey: about 117 on the 8-bit scale, not white
    Image.fromarray(deep).save(data / "plain" / "deep.png")
    assert 100 < images.decode(data / "plain" / "deep.png").float().mean() < 130
    ck = tmp_path / "ck"
    result = run_cli("train", "--images", data, *SMALL, "--epochs", "1", "--checkpoint-dir", ck, "--sample-dir", tmp_path / "s")
    assert result.exit_code == 0, result
    assert run_cli("export", "--checkpoint-dir", ck, "--n", "4", "--out", tmp_path / "ex", "--format", "npy").exit_code == 0
    rows = list(csv.DictReader(open(tmp_path / "ex" / "labels.csv", newline="")))
    assert [r["class"] for r in rows] == ['a,b "q"', "plain"] * 2  # quoted as CSV, read back whole
    import shutil
    shutil.rmtree(data / "plain")
    monkeypatch.chdir(tmp_path / "s")  # and from another folder: the image folder was saved as an absolute path
    assert_refused(run_cli("resume", ck / "gan_epoch_1.pth", "--epochs", "2"), r"no longer holds images of the class 'plain'")


def test_a_run_never_writes_into_its_image_folder_and_force_spares_a_runs_plot(tmp_path, run_cli, monkeypatch):
    data = write_folder(tmp_path / "pictures", per_class=32)
    monkeypatch.chdir(data)
    assert_refused(run_cli("train", "--images", ".", *SMALL, "--epochs", "1"), r"inside .*pictures, the image folder")
    assert not (data / "checkpoints").exists()
    ck = tmp_path / "ck"
    assert run_cli("train", "--images", data, *SMALL, "--epochs", "1", "--checkpoint-dir", ck, "--sample-dir",
                   tmp_path / "s").exit_code == 0
    plot = (ck / "training_loss.png").read_bytes()
    for command in ("generate", "interpolate"):
        assert_refused(run_cli(command, "--checkpoint-dir", ck, "--out", ck / "training_loss.png", "--force"),
                       r"is not a drawing that generate or interpolate made")
    assert (ck / "training_loss.png").read_bytes() == plot
