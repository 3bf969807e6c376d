"""The quality metrics mean what they say: on controlled inputs built from 500 real MNIST digits
(tests/fixtures/mnist_real_500.npz, see tests/fixtures/README.md) and the shipped classifier weights.

The reference is the fixture's 250 test-set digits. The floor is 125 training digits scored against it; a second,
disjoint 125 training digits play a perfect generator, and damaged copies of them play bad ones.
"""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import cli
import evaluate as ev

FIXTURE = Path(__file__).parent / "fixtures" / "mnist_real_500.npz"
KEYS = {"n", "fid", "inception_score", "coverage_entropy", "precision", "recall", *(f"share_{d}" for d in range(10))}


@pytest.fixture(scope="module")
def digits():
    """images (500, 1, 28, 28) in [0, 1], labels (500,), is_test (500,): 250 test digits, then 250 training digits."""
    data = np.load(FIXTURE)
    images = torch.from_numpy(data["images"]).float().div(255).unsqueeze(1)
    return images, torch.from_numpy(data["labels"]).long(), torch.from_numpy(data["is_test"])


@pytest.fixture(scope="module")
def reference(digits):
    images, labels, is_test = digits
    return images[is_test]


@pytest.fixture(scope="module")
def floor(digits, reference):
    images, labels, is_test = digits
    return ev.compare_images(images[~is_test][:125], reference)


@pytest.fixture(scope="module")
def candidates(digits):
    """125 real training digits not used by the floor (12 or 13 of each digit)."""
    images, labels, is_test = digits
    return images[~is_test][125:]


def gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    x = torch.arange(-4, 5, dtype=torch.float32)
    kernel_1d = torch.exp(-x ** 2 / (2 * sigma ** 2))
    kernel = torch.outer(kernel_1d, kernel_1d) / kernel_1d.sum() ** 2  # (9, 9), sums to 1
    return F.conv2d(images, kernel[None, None], padding=4)


def test_classifier_is_accurate_on_real_digits(digits):
    images, labels, is_test = digits
    model = ev.load_classifier()
    _, probs = ev.embed(model, images)
    correct = probs.argmax(1) == labels
    assert correct[is_test].float().mean() >= 0.97  # digits it never saw in training
    assert correct.float().mean() >= 0.97


def test_classifier_weights_are_small_and_plain():
    assert ev.WEIGHTS.stat().st_size < 1_000_000
    state = torch.load(ev.WEIGHTS, weights_only=True)
    assert state["kind"] == ev.CLASSIFIER_KIND and state["test_accuracy"] >= 0.99


def test_frechet_distance_of_a_set_with_itself_is_zero_and_it_is_symmetric():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(300, 16, generator=g) @ torch.randn(16, 16, generator=g)
    b = torch.randn(200, 16, generator=g) * 2 + 1
    assert ev.frechet_distance(a, a) == pytest.approx(0, abs=1e-6 * a.var(0).sum().item())
    assert ev.frechet_distance(a, b) == pytest.approx(ev.frechet_distance(b, a), rel=1e-6)
    # two Gaussians with equal covariance: the distance is the squared distance between the means
    shifted = a + torch.tensor([3.0] + [0.0] * 15)
    assert ev.frechet_distance(a, shifted) == pytest.approx(9.0, rel=1e-4)


def test_inception_score_and_coverage_on_known_probabilities():
    confident_even = torch.eye(10).repeat(5, 1)  # (50, 10): every digit five times, with certainty
    assert ev.inception_score(confident_even) == pytest.approx(10.0, rel=1e-6)
    assert ev.inception_score(torch.full((50, 10), 0.1)) == pytest.approx(1.0, rel=1e-6)
    shares, entropy = ev.class_coverage(confident_even)
    assert shares == pytest.approx([0.1] * 10) and entropy == pytest.approx(1.0)
    shares, entropy = ev.class_coverage(torch.eye(10)[[3] * 50])
    assert shares[3] == 1.0 and entropy == 0.0


def test_precision_recall_of_identical_and_of_distant_sets():
    points = torch.randn(200, 8, generator=torch.Generator().manual_seed(0))
    assert ev.precision_recall(points, points, chunk=64) == (1.0, 1.0)
    assert ev.precision_recall(points, points + 100, chunk=64) == (0.0, 0.0)


def test_real_digits_score_near_the_floor(floor, candidates, reference):
    real = ev.compare_images(candidates, reference)
    assert set(real) == KEYS and real["n"] == floor["n"] == 125
    assert real["fid"] < 1.5 * floor["fid"]
    assert real["inception_score"] > 8.5 and floor["inception_score"] > 8.5
    assert real["coverage_entropy"] > 0.97
    assert abs(real["precision"] - floor["precision"]) < 0.1 and real["precision"] > 0.7
    assert abs(real["recall"] - floor["recall"]) < 0.1 and real["recall"] > 0.7


def test_noise_scores_clearly_worse(floor, reference):
    noise = torch.rand(125, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    bad = ev.compare_images(noise, reference)
    assert bad["fid"] > 10 * floor["fid"]
    assert bad["recall"] < 0.05 and bad["inception_score"] < 2 and bad["coverage_entropy"] < 0.3
    # (precision does not see noise in this feature space: see the docstring of evaluate.py)


def test_blurred_digits_score_clearly_worse(floor, candidates, reference):
    bad = ev.compare_images(gaussian_blur(candidates, sigma=1.5), reference)
    assert bad["fid"] > 3 * floor["fid"]
    assert bad["recall"] < floor["recall"] - 0.5
    assert bad["inception_score"] < floor["inception_score"] - 1


def test_one_digit_repeated_is_mode_collapse(floor, candidates, reference):
    bad = ev.compare_images(candidates[:1].repeat(125, 1, 1, 1), reference)
    assert bad["fid"] > 5 * floor["fid"]
    assert bad["recall"] < 0.05  # the samples cover none of the variety of real digits
    assert bad["coverage_entropy"] == 0.0 and max(bad[f"share_{d}"] for d in range(10)) == 1.0
    assert bad["inception_score"] < 1.1


def test_half_of_the_digits_shows_low_coverage(digits, floor, reference):
    images, labels, is_test = digits
    low = images[~is_test & (labels < 5)]  # the 125 training digits 0-4
    half = ev.compare_images(low, reference)
    assert half["coverage_entropy"] < 0.75  # five even classes give log 5 / log 10 = 0.70
    assert floor["coverage_entropy"] > 0.97
    assert sum(half[f"share_{d}"] for d in range(5, 10)) < 0.03
    assert half["recall"] < floor["recall"] - 0.25
    assert half["fid"] > 3 * floor["fid"]


# ---- the command ----

def test_evaluate_command_prints_json(run_cli, train_args, mnist_dir, tmp_path):
    assert run_cli("train", *train_args("--epochs", "1")).exit_code == 0
    checkpoint = tmp_path / "ckpt" / "gan_epoch_1.pth"
    result = run_cli("evaluate", checkpoint, "--n", "64", "--data-dir", mnist_dir, "--device", "cpu", "--json")
    assert result.exit_code == 0, result
    report = json.loads(result.stdout, parse_constant=lambda c: pytest.fail(f"{c} is not JSON"))  # as strict as
    assert report["n"] == 64 and report["checkpoint"] == str(checkpoint)  # other languages' readers
    per_class = {"precision_per_class", "recall_per_class"}  # a conditional model's, next to the real digits' own
    assert set(report["generator"]) == KEYS | per_class and set(report["real_floor"]) == KEYS | per_class
    assert report["real_floor"]["n"] == 64
    assert sum(report["generator"][f"share_{d}"] for d in range(10)) == pytest.approx(1.0)
    table = run_cli("evaluate", "--checkpoint-dir", tmp_path / "ckpt", "--n", "64", "--data-dir", mnist_dir,
                    "--device", "cpu")
    assert table.exit_code == 0, table
    assert "real floor" in table.output and "FID" in table.output and "recall" in table.output


def test_a_score_that_is_nan_is_null_in_json():
    """Found by a hostile pass: a class with no samples has no precision, and --json wrote NaN, which is not JSON."""
    report = {"generator": {"precision_per_class": [0.9, float("nan")], "fid": 3.0}, "classes": ("0", "1")}
    assert json.loads(json.dumps(cli.no_nan(report), allow_nan=False)) == {
        "generator": {"precision_per_class": [0.9, None], "fid": 3.0}, "classes": ["0", "1"]}


@pytest.mark.parametrize("args, says", [
    (("--n", "0"), "--n must be at least"),
    (("missing.pth",), "no checkpoint at missing.pth"),
    (("--checkpoint-dir", "nowhere"), "no checkpoint in nowhere"),
])
def test_evaluate_rejects_bad_input_in_one_line(run_cli, mnist_dir, args, says):
    result = run_cli("evaluate", *args, "--data-dir", mnist_dir, "--device", "cpu")
    assert result.exit_code != 0
    message = (result.stderr or result.output).strip()
    assert says in message and len(message.splitlines()) == 1 and "Traceback" not in message



def test_train_classifier_command_saves_loadable_weights(run_cli, mnist_dir, tmp_path):
    out = tmp_path / "clf" / "classifier.pt"
    result = run_cli("train-classifier", "--data-dir", mnist_dir, "--out", out, "--epochs", "1", "--device", "cpu")
    assert result.exit_code == 0, result
    assert "test accuracy" in result.output
    model = ev.load_classifier(out)
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    assert torch.load(out, weights_only=True)["epochs"] == 1


def test_eval_every_adds_quality_to_the_record(run_cli, train_args, tmp_path):
    import csv
    result = run_cli("train", *train_args("--epochs", "3", "--eval-every", "2", "--eval-n", "100"))
    assert result.exit_code == 0, result
    assert "FID" in result.output
    with open(tmp_path / "ckpt" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    assert rows[0]["fid"] == "" and float(rows[1]["fid"]) > 0 and float(rows[2]["fid"]) > 0  # every 2, and the end
    assert 0 <= float(rows[1]["coverage_entropy"]) <= 1 and "recall" in rows[1]
    record = json.loads((tmp_path / "ckpt" / "metrics.json").read_text())
    assert "fid" not in record[0] and record[1]["fid"] == float(rows[1]["fid"])
    import record
    assert (tmp_path / "ckpt" / "training_loss.png").stat().st_size > 10_000
    fig = record.loss_figure(record_rows := json.loads((tmp_path / "ckpt" / "metrics.json").read_text()))
    assert [ax.get_title() for ax in fig.axes] == ["Losses", "Discriminator's view", "Quality (lower is better)"]
    fid = fig.axes[2].lines[0]
    assert list(fid.get_xdata()) == [2, 3] and list(fid.get_ydata()) == [r["fid"] for r in record_rows if "fid" in r]
