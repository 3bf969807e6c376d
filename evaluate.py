"""How good is a generator? Scores in the feature space of a small MNIST classifier that ships with the project.

    python cli.py evaluate --n 10000 --data-dir ./data      # newest checkpoint vs the MNIST test set, and the floor
    python cli.py train-classifier --data-dir ./data        # retrain assets/mnist_classifier.pt (a few minutes)
    from evaluate import evaluate_generator, real_floor

For digits the Inception network behind the usual FID is the wrong lens, so, as is usual for MNIST, everything here
is measured by a LeNet-style classifier trained on MNIST (over 99% test accuracy):

- FID: the Frechet distance between Gaussians fitted to its penultimate-layer features of the samples and of the
  10,000 test images (lower is better).
- Inception Score: exp E[KL(p(y|x) || p(y))] of its class probabilities; 10 at most, for confident and even digits.
- Class coverage: the share of each predicted digit, and its entropy divided by log 10 (1.0: all ten equally often;
  0.0: a single digit, mode collapse).
- Precision and recall (Kynkaanniemi et al. 2019): the share of samples inside the k-nearest-neighbour balls of the
  real features (quality), and the share of real images inside the balls of the samples (variety).
  Read precision with FID and recall: the classifier maps images that are no digit at all (noise, heavy blur) to
  the low-activation region that a few faint or ambiguous real digits share, whose large balls cover it, so such
  samples still count as precise. Recall, FID, the Inception Score and coverage all see them.

Every number depends on n, so each is reported next to the same number for n real training images: the floor that
a perfect generator would reach. Images come in as gan.generate returns them: (N, 1, 28, 28) in [0, 1].
This file builds on gan.py (data, sampling), checkpoint.py (safe files) and rundir.py (which model); gan.py never imports it: the training
loop's --eval-every gets evaluate_during_training as a hook from cli.py. Importing it only defines things; the
weights load when a function needs them.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from checkpoint import check_weights, read_torch_file, save_state
from config import BadValue, Config, GANError, check_int, check_seed
from files import make_folder
from device import resolve_device, own_random_state
from gan import generate, load_generator, load_mnist
from record import check_sample_count
from rundir import find_generator

WEIGHTS = Path(__file__).resolve().parent / "assets" / "mnist_classifier.pt"
CLASSIFIER_KIND = "mnist-lenet-classifier"
FORMAT = 1
K = 3  # neighbours for precision and recall, as in Kynkaanniemi et al. 2019
MIN_SAMPLES = 10  # FID needs a covariance and precision/recall need more than K neighbours
BATCH = 1000  # images per classifier forward pass


# ---- the classifier ----

class Classifier(nn.Module):
    """LeNet-style CNN: images (B, 1, 28, 28) in [-1, 1] -> logits (B, 10); `features` is the layer before them."""

    n_features = 128

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 16, kernel_size=5, padding=2), nn.ReLU(inplace=True),   # (B, 1, 28, 28) -> (B, 16, 28, 28)
            nn.MaxPool2d(2),                                                     # -> (B, 16, 14, 14)
            nn.Conv2d(16, 32, kernel_size=5), nn.ReLU(inplace=True),             # -> (B, 32, 10, 10)
            nn.MaxPool2d(2),                                                     # -> (B, 32, 5, 5)
            nn.Flatten(),                                                        # -> (B, 800)
            nn.Linear(32 * 5 * 5, self.n_features), nn.ReLU(inplace=True))       # -> (B, 128)
        self.head = nn.Sequential(nn.Dropout(0.3), nn.Linear(self.n_features, 10))  # -> (B, 10)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The penultimate-layer embedding (B, 128) that FID and precision/recall are measured in."""
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def augment(x: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
    """A random small affine warp per image (rotate +-10 degrees, scale +-10%, shift +-2 pixels), on (B, 1, 28, 28)."""
    b = x.size(0)
    uniform = lambda *shape: torch.rand(*shape, generator=rng, device=rng.device).mul_(2).sub_(1)  # noqa: E731  U(-1, 1)
    angle, scale = uniform(b) * math.radians(10), 1 + 0.1 * uniform(b)
    shift = uniform(b, 2) * (2 / 14)  # affine_grid spans the 28 pixels with [-1, 1]: one pixel is 1/14
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1),
                         torch.stack([sin, cos, shift[:, 1]], 1)], 1)   # (B, 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x + 1, grid, align_corners=False) - 1  # shifted so that the zero padding is background, -1


@torch.no_grad()
def accuracy(model: Classifier, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Share of images (N, 1, 28, 28) in [-1, 1] whose predicted digit is the label."""
    model.eval()
    correct = sum(int((model(images[i:i + BATCH]).argmax(1) == labels[i:i + BATCH]).sum())
                  for i in range(0, len(images), BATCH))
    return correct / len(images)


def fit_classifier(images: torch.Tensor, labels: torch.Tensor, epochs: int, seed: int = 0, batch_size: int = 128,
                   lr: float = 2e-3, on_epoch=None) -> Classifier:
    """A fresh classifier trained on images (N, 1, 28, 28) in [-1, 1] with labels (N,): Adam with a one-cycle
    schedule and light augmentation, on the images' device. on_epoch(epoch, mean loss, model) after each epoch."""
    with own_random_state(images.device):  # a classifier built mid-run leaves the run's random numbers as they were
        torch.manual_seed(seed)
        return train_classifier_loop(images, labels, epochs, seed, batch_size, lr, on_epoch)


def train_classifier_loop(images, labels, epochs, seed, batch_size, lr, on_epoch) -> Classifier:
    rng = torch.Generator(images.device).manual_seed(seed)  # on the images' device: no host copies per step
    model = Classifier().to(images.device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    steps = max(1, len(images) // batch_size)  # the last incomplete batch is dropped
    schedule = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * steps)
    for epoch in range(1, epochs + 1):
        model.train()
        perm = torch.randperm(len(images), generator=rng, device=images.device)
        loss_sum = torch.zeros((), device=images.device)
        for step in range(steps):
            idx = perm[step * batch_size:(step + 1) * batch_size]
            loss = F.cross_entropy(model(augment(images[idx], rng)), labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            schedule.step()
            loss_sum += loss.detach()
        if on_epoch:
            on_epoch(epoch, loss_sum.item() / steps, model)
    return model.eval()


TRAINED = Path("checkpoints") / "mnist_classifier.pt"  # where train-classifier writes unless told: never the shipped one


def train_classifier(data_dir: str | Path, out_path: str | Path = TRAINED, epochs: int = 8, seed: int = 0,
                     device: str = "auto", log=print) -> dict:
    """Train the classifier on MNIST's training set with light augmentation, report its test accuracy and save it.

    The file holds only the state_dict and a few plain values, so load_classifier can read it with weights_only=True.
    About a minute per epoch on two CPU cores. Returns the saved metadata (test_accuracy among it).
    """
    check_int("epochs", epochs, 1, 1000)
    check_seed("seed", seed)
    out_path = Path(out_path)
    if out_path.resolve() == WEIGHTS.resolve():
        raise BadValue(f"{{out}} {out_path} is the classifier that ships with the project, which every score is "
                       f"measured in: it is not replaced; choose another {{out}}")
    if out_path.is_dir():
        raise BadValue(f"{{out}} {out_path} is a folder: name the file to write, such as {out_path / 'classifier.pt'}")
    device = resolve_device(device)
    train_images, train_labels = load_mnist(data_dir, train=True, device=device)
    test_images, test_labels = load_mnist(data_dir, train=False, device=device)
    make_folder(out_path.parent, "--out")  # before the minutes of training, not after
    if out_path.exists():  # retraining replaces a classifier, never a checkpoint or anything else
        try:
            read_torch_file(out_path, (CLASSIFIER_KIND,), "classifier of this tool")
        except GANError:
            raise GANError(f"{out_path} is not a classifier of this tool, so it is not replaced: choose another "
                           f"--out") from None
    device = resolve_device(device)
    train_images, train_labels = load_mnist(data_dir, train=True, device=device)
    test_images, test_labels = load_mnist(data_dir, train=False, device=device)
    t0, accuracies = time.perf_counter(), []

    def report(epoch, loss, model):
        accuracies.append(accuracy(model, test_images, test_labels))
        log(f"epoch {epoch}/{epochs}  loss {loss:.4f}  test accuracy {accuracies[-1]:.2%}  {time.perf_counter() - t0:.0f}s")

    model = fit_classifier(train_images, train_labels, epochs, seed, on_epoch=report)
    test_acc = accuracies[-1]
    meta = {"format": FORMAT, "kind": CLASSIFIER_KIND, "test_accuracy": test_acc, "epochs": epochs, "seed": seed,
            "n_features": Classifier.n_features}
    state = {**meta, "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}}
    save_state(out_path, state)
    log(f"saved {out_path} (test accuracy {test_acc:.2%}{'' if test_acc >= 0.99 else ', below 99%: train longer'})")
    return meta


def load_classifier(path: str | Path = WEIGHTS, device: torch.device | str = "cpu") -> Classifier:
    """The shipped classifier (or one saved by train_classifier), in eval mode; weights_only=True runs no code."""
    how = "restore it from the repository or retrain it with `python cli.py train-classifier --data-dir DIR`"
    state = read_torch_file(path, (CLASSIFIER_KIND,), f"MNIST classifier weights: {how}")
    model = Classifier()
    check_weights(model, state.get("state_dict"), path, f"classifier ({how})")
    model.load_state_dict(state["state_dict"])
    return model.to(device).eval()


# ---- features ----

@torch.no_grad()
def embed(model: Classifier, images01: torch.Tensor, device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Images (N, 1, 28, 28) in [0, 1] -> features (N, 128) and class probabilities (N, 10), on the CPU."""
    if images01.dim() != 4 or tuple(images01.shape[1:]) != (1, 28, 28):
        raise ValueError(f"expected images of shape (N, 1, 28, 28), got {tuple(images01.shape)}")
    model.eval()
    feats, probs = [], []
    for i in range(0, len(images01), BATCH):
        x = images01[i:i + BATCH].to(device, torch.float32) * 2 - 1  # [0, 1] -> [-1, 1], as the classifier was trained
        f = model.features(x)
        feats.append(f.cpu())
        probs.append(model.head(f).softmax(1).cpu())
    return torch.cat(feats), torch.cat(probs)


# ---- metrics ----

def _sqrt_psd(matrix: torch.Tensor) -> torch.Tensor:
    """Square root of a symmetric positive semi-definite matrix by eigendecomposition (tiny negative eigenvalues -> 0)."""
    values, vectors = torch.linalg.eigh(matrix)
    return (vectors * values.clamp(min=0).sqrt()) @ vectors.T


def frechet_distance(feats_a: torch.Tensor, feats_b: torch.Tensor) -> float:
    """||mu_a - mu_b||^2 + tr(C_a) + tr(C_b) - 2 tr((C_a^1/2 C_b C_a^1/2)^1/2) for features (N, D) and (M, D)."""
    a, b = feats_a.cpu().double(), feats_b.cpu().double()  # float64: the trace terms nearly cancel
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = torch.cov(a.T), torch.cov(b.T)  # (D, D)
    root_a = _sqrt_psd(cov_a)
    middle = root_a @ cov_b @ root_a  # symmetric, with the eigenvalues of C_a C_b, so its root's trace is the term
    trace_root = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp(min=0).sqrt().sum()
    fid = (mu_a - mu_b).square().sum() + cov_a.trace() + cov_b.trace() - 2 * trace_root
    return max(0.0, float(fid))  # not below 0 by rounding


def inception_score(probs: torch.Tensor) -> float:
    """exp(mean KL(p(y|x) || p(y))) over class probabilities (N, 10): 1 at worst, 10 for confident, even digits."""
    probs = probs.double().clamp(min=1e-12)
    marginal = probs.mean(0, keepdim=True)  # (1, 10)
    return float((probs * (probs.log() - marginal.log())).sum(1).mean().exp())


def class_coverage(probs: torch.Tensor) -> tuple[list[float], float]:
    """Share of each predicted digit (10 values summing to 1) and their entropy / log 10 (1.0: uniform, 0.0: one digit)."""
    counts = torch.bincount(probs.argmax(1), minlength=probs.size(1)).double()
    shares = counts / counts.sum()
    nonzero = shares[shares > 0]
    entropy = float(-(nonzero * nonzero.log()).sum() / math.log(probs.size(1)))
    return shares.tolist(), max(0.0, entropy)


def _knn_radii(feats: torch.Tensor, k: int, chunk: int) -> torch.Tensor:
    """Distance from each point (N, D) to its k-th nearest other point: (N,)."""
    radii = [torch.cdist(feats[i:i + chunk], feats).topk(k + 1, dim=1, largest=False).values[:, -1]  # (chunk,)
             for i in range(0, len(feats), chunk)]  # k + 1: the nearest point is the point itself
    return torch.cat(radii)


def _share_inside(points: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor, chunk: int) -> float:
    """Share of points (N, D) within radii[j] of at least one centre j (M, D)."""
    inside = sum(int((torch.cdist(points[i:i + chunk], centres) <= radii).any(1).sum())  # (chunk, M) -> count
                 for i in range(0, len(points), chunk))
    return inside / len(points)


def precision_recall(real_feats: torch.Tensor, fake_feats: torch.Tensor, k: int = K, chunk: int = 1000) -> tuple[float, float]:
    """Improved precision and recall (Kynkaanniemi et al. 2019): each set's manifold is the union of balls reaching
    from every point to its k-th nearest neighbour; precision is the share of fakes on the real manifold, recall the
    share of reals on the fake one. Distances are computed `chunk` rows at a time to bound memory."""
    if min(len(real_feats), len(fake_feats)) <= k:
        raise ValueError(f"precision/recall with k={k} needs more than {k} points in each set")
    real, fake = real_feats.float(), fake_feats.float()
    precision = _share_inside(fake, real, _knn_radii(real, k, chunk), chunk)
    recall = _share_inside(real, fake, _knn_radii(fake, k, chunk), chunk)
    return precision, recall


def score(fake_feats: torch.Tensor, fake_probs: torch.Tensor, real_feats: torch.Tensor, k: int = K) -> dict:
    """All metrics of one set of samples against reference features, as a flat dict of numbers.

    FID uses every reference image; precision and recall use a fixed random subset of the reference as large as the
    sample set (the paper compares equal numbers), so they mean the same at any n.
    """
    n = len(fake_feats)
    subset = torch.randperm(len(real_feats), generator=torch.Generator().manual_seed(0))[:n]
    precision, recall = precision_recall(real_feats[subset], fake_feats, k=k)
    shares, entropy = class_coverage(fake_probs)
    return {"n": n, "fid": frechet_distance(fake_feats, real_feats), "inception_score": inception_score(fake_probs),
            "coverage_entropy": entropy, "precision": precision, "recall": recall,
            **{f"share_{digit}": share for digit, share in enumerate(shares)}}


# ---- evaluation ----

_classifiers: dict[str, Classifier] = {}
_test_features: dict[tuple[str, str], torch.Tensor] = {}  # the test set's features, once per process


def shipped_classifier(device: torch.device | str = "cpu") -> Classifier:
    key = str(device)
    if key not in _classifiers:
        _classifiers[key] = load_classifier(WEIGHTS, device)
    return _classifiers[key]


def mnist_test_features(data_dir: str | Path, device: torch.device | str = "cpu") -> torch.Tensor:
    """Features (10000, 128) of the MNIST test set, computed once per process and data folder."""
    key = (str(Path(data_dir).resolve()), str(device))
    if key not in _test_features:
        images, _ = load_mnist(data_dir, train=False)  # (N, 1, 28, 28) in [-1, 1]
        _test_features[key], _ = embed(shipped_classifier(device), (images + 1) / 2, device)
    return _test_features[key]


def compare_images(images01: torch.Tensor, real01: torch.Tensor, device: torch.device | str = "cpu", k: int = K) -> dict:
    """Metrics of images (N, 1, 28, 28) in [0, 1] against reference images of the same kind."""
    model = shipped_classifier(device)
    fake_feats, fake_probs = embed(model, images01, device)
    real_feats, _ = embed(model, real01, device)
    return score(fake_feats, fake_probs, real_feats, k=k)


def evaluate_images(images01: torch.Tensor, data_dir: str | Path, device: torch.device | str = "cpu", k: int = K) -> dict:
    """Metrics of images (N, 1, 28, 28) in [0, 1] against the MNIST test set in data_dir."""
    real_feats = mnist_test_features(data_dir, device)
    fake_feats, fake_probs = embed(shipped_classifier(device), images01, device)
    return score(fake_feats, fake_probs, real_feats, k=k)


def evaluate_generator(G: nn.Module, n: int, data_dir: str | Path, seed: int = 0,
                       device: torch.device | str = "cpu") -> dict:
    """Draw n digits from G (repeatable for a seed) and score them against the MNIST test set."""
    real_feats = mnist_test_features(data_dir, device)  # first, so that missing data fails before any generating
    images = generate(G, n, seed=seed)  # (n, 1, 28, 28) in [0, 1]
    fake_feats, fake_probs = embed(shipped_classifier(device), images, device)
    return score(fake_feats, fake_probs, real_feats)


def check_enough(data_dir: str | Path, have: int, part: str, least: int) -> None:
    """A data folder with too few real digits to score against is one line, not an error deep in the metrics."""
    if have < least:
        raise GANError(f"{data_dir} holds only {have} MNIST {part} digits: the scores need at least {least}; "
                       f"pass a --data-dir with the full MNIST files")


def real_floor(data_dir: str | Path, n: int, seed: int = 0, device: torch.device | str = "cpu") -> dict:
    """The same metrics for n random real training images against the test set: what a perfect generator would score.
    With fewer than n training images in data_dir, all of them are used (the result's n says how many)."""
    images, _ = load_mnist(data_dir, train=True)
    check_enough(data_dir, len(images), "training", K + 1)
    pick = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[:n]
    return evaluate_images((images[pick] + 1) / 2, data_dir, device)


def label_agreement(G: nn.Module, n_per_digit: int, seed: int = 0, device: torch.device | str = "cpu") -> dict:
    """For a conditional generator: the share of samples asked to be digit d that the classifier calls d."""
    model = shipped_classifier(device)
    shares = {}
    for digit in range(10):
        _, probs = embed(model, generate(G, n_per_digit, seed=seed + digit, digit=digit), device)
        shares[digit] = float((probs.argmax(1) == digit).float().mean())
    return shares


CAS_EPOCHS = 10  # passes over the n training digits: enough for the real ones to level off at n = 10,000
CAS_RECIPE = ("a fresh LeNet-style classifier (the evaluation one), {epochs} passes over the n digits in batches of "
              "{batch}, Adam at 2e-3 with a one-cycle schedule, light affine augmentation; tested on the {test:,} MNIST "
              "test digits")


def classification_accuracy_score(G: nn.Module, n: int, data_dir: str | Path, seed: int = 0, epochs: int = CAS_EPOCHS,
                                  device: torch.device | str = "cpu", batch_size: int = 128) -> dict:
    """Is G's output good training data? The MNIST test accuracy of a classifier trained only on n labelled digits
    drawn from G (n / 10 of each; n is rounded down to a multiple of 10 and to the real training digits at
    hand), next to the same classifier trained the same way on n real training digits:
    the Classification Accuracy Score of Ravuri & Vinyals (2019). G must be conditional: its labels are the
    digits it was asked for. The real reference is trained twice (seeds `seed` and `seed + 1`: other digits, other
    initial weights and batches), and the gap is to their mean: their spread is the noise of the score itself, so
    a gap of about that size means nothing."""
    if not getattr(G, "n_classes", 0):
        raise GANError("the accuracy score trains on the digits a model was asked for: it needs a conditional model")
    test_images, test_labels = load_mnist(data_dir, train=False, device=device)
    real_images, real_labels = load_mnist(data_dir, train=True, device=device)
    n = min(n, len(real_images)) // 10 * 10  # as many of each digit, and no more than the real digits to compare
    if n < 10:
        raise GANError(f"the accuracy score needs at least 10 digits (one of each), and as many real training digits "
                       f"(there are {len(real_images)}): pass --n 10 or more")
    fake_images = generate(G, n, seed=seed).to(device) * 2 - 1  # [0, 1] -> [-1, 1], as the classifier trains
    fake_labels = (torch.arange(n) % 10).to(device)
    fit = lambda images, labels, s: accuracy(fit_classifier(images, labels, epochs, s, batch_size=batch_size),  # noqa
                                             test_images, test_labels)
    real = []
    for s in (seed, seed + 1):
        pick = torch.randperm(len(real_images), generator=torch.Generator().manual_seed(s))[:n].to(real_images.device)
        real.append(fit(real_images[pick], real_labels[pick], s))
    generated, mean = fit(fake_images, fake_labels, seed), sum(real) / 2
    recipe = CAS_RECIPE.format(epochs=epochs, batch=batch_size, test=len(test_images))
    return {"n": n, "epochs": epochs, "recipe": recipe,
            "generated": generated, "real": mean, "real_seeds": real, "real_spread": abs(real[0] - real[1]),
            "gap": mean - generated}


def evaluate_file(path: str | Path | None, n: int, data_dir: str | Path, checkpoint_dir: str | Path | None = None,
                  seed: int = 0, device: torch.device | str = "cpu", cas: bool = False) -> dict:
    """What `python cli.py evaluate` reports for a checkpoint or generator file (None: the newest in checkpoint_dir,
    or the shipped model): its scores, the real-data floor, and for a conditional model how often the classifier
    agrees with the asked-for digit."""
    check_int("n", n)
    if n < MIN_SAMPLES:
        raise BadValue(f"{{n}} must be at least {MIN_SAMPLES} (FID needs a covariance, precision/recall {K}+1 "
                       f"neighbours), got {n}")
    check_sample_count(n, as_grid=False)
    check_seed("seed", seed)
    path, note = (path, None) if path else find_generator(checkpoint_dir)
    G, cfg = load_generator(path, device=device)
    if cfg.dataset != "mnist":
        raise GANError(f"{path} draws {cfg.images or cfg.dataset}, not MNIST digits: evaluate's classifier only knows "
                       f"MNIST digits, so its scores would mean nothing here")
    if cas and not G.n_classes:
        raise GANError(f"--cas trains on the digits a model was asked for: {path} is unconditional (no labels); "
                       f"leave out --cas, or evaluate a model trained with labels")
    t0 = time.perf_counter()
    check_enough(data_dir, len(mnist_test_features(data_dir, device)), "test", K + 1)  # cached for the scores
    floor = real_floor(data_dir, n, seed=seed, device=device)  # first: it checks the training digits
    if cas:  # before the minutes of generating and scoring
        check_enough(data_dir, floor["n"], "training", 10)
    scores = evaluate_generator(G, n, data_dir, seed=seed, device=device)
    agreement = label_agreement(G, max(100, n // 10), seed, device) if G.n_classes else None
    accuracy_score = classification_accuracy_score(G, n, data_dir, seed, device=device) if cas else None
    return {"checkpoint": str(path), "n": n, "seed": seed, "generator": scores, "real_floor": floor,
            "label_agreement": agreement, "classification_accuracy": accuracy_score,
            "seconds": round(time.perf_counter() - t0, 2), "note": note}


def evaluate_during_training(G: nn.Module, cfg: Config, device) -> dict:
    """The hook behind train --eval-every: the built-in quality numbers of G, rounded for the record."""
    numbers = evaluate_generator(G, cfg.eval_n, cfg.data_dir, seed=cfg.seed, device=device)
    return {k: round(float(v), 4) for k, v in numbers.items() if isinstance(v, (int, float))}
