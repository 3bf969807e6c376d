"""How good is a generator? Scores in the feature space of a small classifier: the MNIST one that ships with the
project, or for a model of your own class folders one trained on that folder.

    python cli.py evaluate --n 10000 --data-dir ./data      # newest checkpoint vs the MNIST test set, and the floor
    python cli.py train-classifier --data-dir ./data        # retrain the MNIST classifier (under 2 minutes)
    from evaluate import evaluate_generator, real_floor, mnist_lens

For small images the Inception network behind the usual FID is the wrong lens, so, as is usual for MNIST,
everything is measured by a LeNet-style classifier (over 99% test accuracy on MNIST):

- FID: the Frechet distance between Gaussians fitted to its penultimate-layer features of the samples and of the
  real test images (lower is better).
- Inception Score: exp E[KL(p(y|x) || p(y))] of its class probabilities; the number of classes at most.
- Class coverage: the share of each predicted class, and its entropy over log(classes) (1.0: all equally often).
- Precision and recall (Kynkaanniemi et al. 2019): the share of samples inside the k-nearest-neighbour balls of the
  real features (quality), and the share of real images inside the balls of the samples (variety); for a
  conditional model also per class, each class's samples against the real images of that class. Precision is
  blind to noise-like samples here (the classifier maps them where faint real digits lie): read it with FID.
- The accuracy score (Ravuri & Vinyals 2019): a fresh classifier trained on generated images only, tested on real
  ones, next to the same trained on as many real images.

A Lens is what a generator is scored against: a classifier and real images it has not trained on. Every number
depends on n, so each is reported next to the same number for n real training images: the floor a perfect
generator would reach. Images come in as gan.generate returns them: (N, C, H, W) in [0, 1]. This file builds on
gan.py (data, sampling); gan.py never imports it: --eval-every reaches the loop as a hook from cli.py.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from checkpoint import check_weights, read_torch_file, save_state
from config import BadValue, ClassifierRun, Config, GANError, Scoring
from device import own_random_state, resolve_device
from files import FolderLock, new_folders
from gan import class_labels, generate, load_generator, load_pixels
from metrics import K, class_coverage, frechet_distance, inception_score, precision_recall, score  # noqa: F401
from record import check_sample_count

WEIGHTS = Path(__file__).resolve().parent / "assets" / "mnist_classifier.pt"
CHECKER = WEIGHTS.parent / "mnist_checker.pt"  # the same recipe, seed 1: what --check asks (digits.py); never scores
CLASSIFIER_KIND = "mnist-lenet-classifier"
FORMAT = 2  # 2: the file names the images' channels and size and the number of classes (1: MNIST's 1, 28, 10)
BATCH = 1000  # images per classifier forward pass


# ---- the classifier ----

class Classifier(nn.Module):
    """LeNet-style CNN: images (B, C, S, S) in [-1, 1] -> logits (B, classes); `features` is the layer before them.
    The shipped MNIST one is Classifier(1, 28, 10)."""

    n_features = 128

    def __init__(self, channels: int = 1, size: int = 28, n_classes: int = 10):
        super().__init__()
        side = (size // 2 - 4) // 2                                              # 28: 5, 32: 6, 64: 14
        self.shape, self.n_classes = (channels, size, size), n_classes
        self.body = nn.Sequential(
            nn.Conv2d(channels, 16, kernel_size=5, padding=2), nn.ReLU(inplace=True),  # (B, C, S, S) -> (B, 16, S, S)
            nn.MaxPool2d(2),                                                     # -> (B, 16, S/2, S/2)
            nn.Conv2d(16, 32, kernel_size=5), nn.ReLU(inplace=True),             # -> (B, 32, S/2 - 4, S/2 - 4)
            nn.MaxPool2d(2),                                                     # -> (B, 32, side, side)
            nn.Flatten(),                                                        # -> (B, 32 side^2); 28: 800
            nn.Linear(32 * side * side, self.n_features), nn.ReLU(inplace=True))  # -> (B, 128)
        self.head = nn.Sequential(nn.Dropout(0.3), nn.Linear(self.n_features, n_classes))  # -> (B, classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The penultimate-layer embedding (B, 128) that FID and precision/recall are measured in."""
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def augment(x: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
    """A random small affine warp per image (rotate +-10 degrees, scale +-10%, shift +-2 pixels of 28)."""
    b = x.size(0)
    uniform = lambda *shape: torch.rand(*shape, generator=rng, device=rng.device).mul_(2).sub_(1)  # noqa: E731  U(-1, 1)
    angle, scale = uniform(b) * math.radians(10), 1 + 0.1 * uniform(b)
    shift = uniform(b, 2) * (2 / 14)  # affine_grid spans the image with [-1, 1]: 2 pixels of 28 is 2/14
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1),
                         torch.stack([sin, cos, shift[:, 1]], 1)], 1)   # (B, 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x + 1, grid, align_corners=False) - 1  # shifted so that the zero padding is background, -1


def signed(images: torch.Tensor, device) -> torch.Tensor:
    """Images as the classifier reads them: floats in [-1, 1] on `device`, from uint8 pixels or [0, 1] floats."""
    images = images.to(device)
    return images.float().div(127.5).sub(1) if images.dtype == torch.uint8 else images.float() * 2 - 1


@torch.no_grad()
def accuracy(model: Classifier, images: torch.Tensor, labels: torch.Tensor, per_class: bool = False):
    """Share of images (uint8, or floats in [0, 1]) whose predicted class is the label; per_class: one per class."""
    model.eval()
    device = next(model.parameters()).device
    predicted = torch.cat([model(signed(images[i:i + BATCH], device)).argmax(1).cpu()
                           for i in range(0, len(images), BATCH)])
    right = (predicted == labels.cpu()).float()
    if not per_class:
        return float(right.mean())
    return [float(right[labels.cpu() == c].mean()) for c in range(model.n_classes)]


def fit_classifier(images: torch.Tensor, labels: torch.Tensor, epochs: int, seed: int = 0, batch_size: int = 128,
                   lr: float = 2e-3, n_classes: int = 10, device="cpu", on_epoch=None) -> Classifier:
    """A fresh classifier trained on images (uint8, or floats in [0, 1]) with labels: Adam with a one-cycle schedule
    and light augmentation. on_epoch(epoch, mean loss, model) after each epoch. The caller's random state is kept."""
    with own_random_state(torch.device(device)):  # a classifier built mid-run leaves the run's random numbers alone
        torch.manual_seed(seed)
        rng = torch.Generator(device).manual_seed(seed)  # on the images' device: no host copies per step
        model = Classifier(images.size(1), images.size(2), n_classes).to(device)
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        steps = max(1, len(images) // batch_size)  # the last incomplete batch is dropped
        schedule = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * steps)
        images, labels = images.to(device), labels.to(device)
        for epoch in range(1, epochs + 1):
            model.train()
            perm, loss_sum = torch.randperm(len(images), generator=rng, device=device), torch.zeros((), device=device)
            for step in range(steps):
                idx = perm[step * batch_size:(step + 1) * batch_size]
                loss = F.cross_entropy(model(augment(signed(images[idx], device), rng)), labels[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                schedule.step()
                loss_sum += loss.detach()
            if on_epoch:
                on_epoch(epoch, loss_sum.item() / steps, model)
    return model.eval()


def save_classifier(model: Classifier, path: Path, meta: dict, replace: bool = True) -> None:
    state = {"format": FORMAT, "kind": CLASSIFIER_KIND, "n_features": Classifier.n_features, **meta,
             "channels": model.shape[0], "size": model.shape[1], "n_classes": model.n_classes,
             "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}}
    save_state(path, state, replace=replace)


def load_classifier(path: str | Path = WEIGHTS, device: torch.device | str = "cpu") -> Classifier:
    """A classifier saved by this tool (the shipped one, train-classifier's, or a folder's), in eval mode; `.meta` is
    what its file says of it (test_accuracy, and for a folder's the data it was trained on). Runs no code."""
    how = "restore it from the repository or retrain it with `python cli.py train-classifier --data-dir DIR`"
    state = read_torch_file(path, (CLASSIFIER_KIND,), f"classifier weights: {how}")
    shape = [state.get(key, default) for key, default in (("channels", 1), ("size", 28), ("n_classes", 10))]
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in shape) or shape[0] not in (1, 3) or \
            shape[1] not in (28, 32, 64) or not 2 <= shape[2] <= 100:
        raise GANError(f"{path} describes a classifier of an impossible shape {shape}: the file is damaged")
    model = Classifier(*shape)
    check_weights(model, state.get("state_dict"), path, f"classifier ({how})")
    model.load_state_dict(state["state_dict"])
    model.meta = {k: v for k, v in state.items() if k != "state_dict"}
    return model.to(device).eval()


def train_classifier(data_dir: str | Path = ClassifierRun.data_dir, out: str | Path = ClassifierRun.out,
                     epochs: int = ClassifierRun.epochs, seed: int = ClassifierRun.seed,
                     device: str = ClassifierRun.device, force: bool = ClassifierRun.force, log=print) -> dict:
    """Train the MNIST classifier on MNIST's training set with light augmentation, report its test accuracy and save
    it (never over the shipped one, nor over a file that is not a classifier). About 10 s per epoch on 2 cores."""
    ask = ClassifierRun(data_dir=str(data_dir), out=str(out), epochs=epochs, seed=seed, device=device, force=force)
    out = Path(ask.out)
    for shipped, what in ((WEIGHTS, "which every score is measured in"), (CHECKER, "the checker of --check")):
        if out.resolve() == shipped.resolve() or (out.exists() and shipped.exists() and out.samefile(shipped)):
            raise GANError(f"--out {out} is a classifier that ships with the project, {what}: it is not replaced; "
                           f"choose another --out")  # samefile: another spelling on a case-blind disk (a Mac's)
    if out.is_dir():
        raise GANError(f"--out {out} is a folder: name the file to write, such as {out / 'classifier.pt'}")
    device = resolve_device(ask.device)
    lens = mnist_lens(ask.data_dir, device, with_classifier=False)
    # the folder made before the minutes of training (removed again if they are stopped), and --out held meanwhile
    with new_folders(out.parent, "--out"), FolderLock(out, "--out", beside=True):
        replaces = check_classifier_out(out, ask.force)
        return fit_and_save(lens, ask, out, device, log, replaces)


def check_classifier_out(out: Path, force: bool) -> bool:
    """Whether `out` is an earlier classifier that --force replaces; anything else there is refused."""
    if not out.exists() and not out.is_symlink():
        return False
    try:
        read_torch_file(out, (CLASSIFIER_KIND,), "classifier of this tool")
    except GANError:
        raise GANError(f"{out} is not a classifier of this tool, so it is not replaced: choose another "
                       f"--out") from None
    if not force:
        raise GANError(f"{out} already exists: choose another --out, or pass --force to replace that classifier")
    return True


def fit_and_save(lens: Lens, ask: ClassifierRun, out: Path, device, log, replaces: bool) -> dict:
    t0, scores = time.perf_counter(), []

    def report(epoch, loss, model):
        scores.append(accuracy(model, *lens.test))
        log(f"epoch {epoch}/{ask.epochs}  loss {loss:.4f}  test accuracy {scores[-1]:.2%}  "
            f"{time.perf_counter() - t0:.0f}s")
    model = fit_classifier(*lens.train, ask.epochs, ask.seed, device=device, on_epoch=report)
    meta = {"test_accuracy": scores[-1], "epochs": ask.epochs, "seed": ask.seed}
    if replaces:  # still the classifier it was when training began, or refused now
        check_classifier_out(out, force=True)
    try:
        save_classifier(model, out, meta, replace=replaces)
    except FileExistsError:
        raise GANError(f"{out} appeared while the classifier trained, and is kept: the new classifier was not "
                       f"saved; run again with another --out") from None
    log(f"saved {out} (test accuracy {scores[-1]:.2%}{'' if scores[-1] >= 0.99 else ', below 99%: train longer'})")
    return meta


# ---- what a generator is scored against ----

@dataclass
class Lens:
    """A classifier and the real images it scores against: `test` (never trained on by it) and `train` (for the
    floor and the accuracy score's real reference), each uint8 images (N, C, S, S) and labels (N,) on the CPU."""
    model: Classifier | None
    test: tuple[torch.Tensor, torch.Tensor]
    train: tuple[torch.Tensor, torch.Tensor]
    accuracy: float | None  # the classifier's own test accuracy, said with the scores
    what: str  # the test images, in words
    names: list[str]  # the class names, for the report
    source: str  # where the real images come from, for messages
    test_features: torch.Tensor | None = None


_lenses: dict[tuple, Lens] = {}  # one per data folder and device: the test features are computed once per process


def mnist_lens(data_dir: str | Path, device: torch.device | str = "cpu", with_classifier: bool = True) -> Lens:
    """MNIST's test and training digits in data_dir, seen through the shipped classifier."""
    key = ("mnist", str(Path(data_dir).resolve()), str(device), with_classifier)
    if key not in _lenses:
        cfg = Config(data_dir=str(data_dir))
        test, train = load_pixels(cfg, train=False), load_pixels(cfg, train=True)
        model = load_classifier(WEIGHTS, device) if with_classifier else None
        _lenses[key] = Lens(model, test, train, model.meta.get("test_accuracy") if model else None,
                            f"the {len(test[0]):,} MNIST test digits",
                            [str(d) for d in range(10)], f"{data_dir} holds only {{have}} MNIST {{part}} digits")
    return _lenses[key]


def folder_lens(cfg: Config, cache: Path, device: torch.device | str = "cpu", log=print) -> Lens:
    """A folder of class subfolders, split once (a fixed fifth of each class held out), seen through a classifier
    trained on the other four fifths; the classifier is cached at `cache` and retrained when the folder changes."""
    from checkpoint import data_fingerprint
    images, labels = load_pixels(cfg, say=lambda line: None)
    held = torch.zeros(len(labels), dtype=torch.bool)
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))
    for c in range(cfg.n_classes):  # a fifth of every class, at least one image
        mine = order[labels[order] == c]
        if len(mine) < 2:  # nothing would be left to train the classifier on
            raise GANError(f"{cfg.images}: the class {cfg.classes[c]!r} has {len(mine)} image"
                           f"{'' if len(mine) == 1 else 's'} that decode{'s' if len(mine) == 1 else ''}, and "
                           "scoring needs at least 2 of every class (one held out, one to train a classifier on): "
                           "add images to it")
        held[mine[:max(1, len(mine) // 5)]] = True
    test, train = (images[held], labels[held]), (images[~held], labels[~held])
    data = data_fingerprint(images, labels)
    model, meta = cached_classifier(cache, data, device)
    if model is None:
        epochs = max(5, min(30, 60_000 // max(1, len(train[0]))))
        log(f"training a classifier on {len(train[0]):,} images of {cfg.images} ({epochs} epochs; cached at {cache})")
        model = fit_classifier(*train, epochs, seed=0, n_classes=cfg.n_classes, device=device)
        meta = {"test_accuracy": accuracy(model, *test), "epochs": epochs, "data": data}
        try:
            save_classifier(model, cache, meta)
        except GANError as e:
            log(f"note: the classifier was not cached ({e})")
    return Lens(model, test, train, meta["test_accuracy"], f"a held-out fifth of {cfg.images} ({len(test[0]):,} "
                f"images)", list(cfg.classes), f"{cfg.images} holds only {{have}} {{part}} images")


def cached_classifier(cache: Path, data: dict, device) -> tuple[Classifier | None, dict]:
    """The classifier cached for a folder, if it was trained on this very folder (same images and labels)."""
    if not cache.is_file():
        return None, {}
    try:
        model = load_classifier(cache, device)
    except GANError:
        return None, {}
    return (model, model.meta) if model.meta.get("data") == data else (None, {})


# ---- features ----

@torch.no_grad()
def embed(model: Classifier, images: torch.Tensor, device: torch.device | str | None = None
          ) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (N, C, S, S), uint8 or in [0, 1] -> features (N, 128) and class probabilities (N, classes), on the CPU."""
    if images.dim() != 4 or tuple(images.shape[1:]) != model.shape:
        raise ValueError(f"expected images of shape (N, {', '.join(map(str, model.shape))}), got {tuple(images.shape)}")
    model.eval()
    device = next(model.parameters()).device
    feats, probs = [], []
    for i in range(0, len(images), BATCH):
        f = model.features(signed(images[i:i + BATCH], device))
        feats.append(f.cpu())
        probs.append(model.head(f).softmax(1).cpu())
    return torch.cat(feats), torch.cat(probs)


def test_features(lens: Lens) -> torch.Tensor:
    if lens.test_features is None:
        lens.test_features = embed(lens.model, lens.test[0])[0]
    return lens.test_features


# ---- evaluation ----

def compare_images(images: torch.Tensor, reference: torch.Tensor, device: torch.device | str = "cpu",
                   k: int = K) -> dict:
    """Metrics of MNIST-like images (N, 1, 28, 28) in [0, 1] against reference images of the same kind."""
    model = shipped_classifier(device)
    fake_feats, fake_probs = embed(model, images)
    return score(fake_feats, fake_probs, embed(model, reference)[0], k=k)


def shipped_classifier(device: torch.device | str = "cpu") -> Classifier:
    key = ("shipped", str(device))
    if key not in _lenses:
        _lenses[key] = load_classifier(WEIGHTS, device)
    return _lenses[key]


def evaluate_generator(G: nn.Module, n: int, lens: Lens | str | Path, seed: int = 0,
                       device: torch.device | str = "cpu", spread: float = 1.0, sample=None) -> dict:
    """Draw n images from G (repeatable for a seed; a conditional G's classes in turn) and score them through
    `lens` (or the MNIST test set of the data folder it names), per class too for a conditional G. `sample(G, n,
    seed, digit)` draws instead of gan.generate (the CLI's: digits.rejection_sampler, its digits checked)."""
    lens = lens if isinstance(lens, Lens) else mnist_lens(lens, device)
    real = test_features(lens)  # first, so that missing data fails before any generating
    images = drawn(G, n, seed, None, spread, sample)
    fake_feats, fake_probs = embed(lens.model, images)
    return score(fake_feats, fake_probs, real, fake_labels=class_labels(G, n, None), real_labels=lens.test[1])


def drawn(G: nn.Module, n: int, seed: int, digit: int | None, spread: float, sample) -> torch.Tensor:
    return sample(G, n, seed, digit) if sample else generate(G, n, seed=seed, digit=digit, spread=spread)


def real_floor(lens: Lens | str | Path, n: int, seed: int = 0, device: torch.device | str = "cpu") -> dict:
    """The same metrics for n random real training images (all, where there are fewer) against the test images: what
    a perfect generator would score."""
    lens = lens if isinstance(lens, Lens) else mnist_lens(lens, device)
    images, labels = lens.train
    check_enough(lens, len(images), "training", K + 1)
    pick = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[:n]
    feats, probs = embed(lens.model, images[pick])
    return score(feats, probs, test_features(lens), fake_labels=labels[pick], real_labels=lens.test[1])


def check_enough(lens: Lens, have: int, part: str, least: int) -> None:
    """A data folder with too few real images to score against is one line, not an error deep in the metrics."""
    if have < least:
        raise GANError(f"{lens.source.format(have=have, part=part)}: the scores need at least {least}; pass a "
                       f"--data-dir with the full MNIST files (or train on a folder with more images)")


def label_agreement(G: nn.Module, n_per_class: int, seed: int = 0, device: torch.device | str = "cpu",
                    lens: Lens | None = None, spread: float = 1.0, sample=None) -> dict:
    """For a conditional generator: the share of samples asked to be class c that the classifier calls c."""
    model = lens.model if lens is not None else shipped_classifier(device)
    shares = {}
    for c in range(G.n_classes):
        _, probs = embed(model, drawn(G, n_per_class, seed + c, c, spread, sample))
        shares[c] = float((probs.argmax(1) == c).float().mean())
    return shares


CAS_EPOCHS = 10  # passes over the n training images: enough for real MNIST digits to level off at n = 10,000
CAS_RECIPE = ("a fresh LeNet-style classifier (the evaluation one), {epochs} passes over the n {unit} in batches of "
              "{batch}, Adam at 2e-3 with a one-cycle schedule, light affine augmentation; tested on {test}")


def classification_accuracy_score(G: nn.Module, n: int, lens: Lens | str | Path, seed: int = 0,
                                  epochs: int = CAS_EPOCHS, device: torch.device | str = "cpu",
                                  batch_size: int = 128, spread: float = 1.0, sample=None) -> dict:
    """Is G's output good training data? The test accuracy of a classifier trained only on n labelled images drawn
    from G (n / classes of each; n rounded down to a multiple of the classes and to the real training images at
    hand), next to the same classifier trained the same way on n real training images, twice (seeds `seed` and
    `seed + 1`): their spread is the noise of the score itself. Also per class, to name the classes G teaches worst."""
    lens = lens if isinstance(lens, Lens) else mnist_lens(lens, device)
    if not getattr(G, "n_classes", 0):
        raise GANError("the accuracy score trains on the classes a model was asked for: it needs a conditional model")
    classes, (real_images, real_labels) = G.n_classes, lens.train
    n = min(n, len(real_images)) // classes * classes
    if n < classes:
        raise GANError(f"the accuracy score needs at least {classes} images (one of each class), and as many real "
                       f"training images (there are {len(real_images)}): pass --n {classes} or more")
    fit = lambda images, labels, s: accuracy(fit_classifier(images, labels, epochs, s, batch_size, n_classes=classes,  # noqa
                                                            device=device), *lens.test, per_class=True)
    real = []
    for s in (seed, seed + 1):
        pick = torch.randperm(len(real_images), generator=torch.Generator().manual_seed(s))[:n]
        real.append(fit(real_images[pick], real_labels[pick], s))
    generated = fit(drawn(G, n, seed, None, spread, sample), class_labels(G, n, None), seed)
    test_labels = lens.test[1]
    overall = lambda per_class: float(sum(a * int((test_labels == c).sum()) for c, a in enumerate(per_class))  # noqa
                                      / len(test_labels))
    (first, second), mine = [overall(r) for r in real], overall(generated)
    gaps = [(a + b) / 2 - g for a, b, g in zip(*real, generated)]
    worst = sorted(range(classes), key=lambda c: -gaps[c])[:3]
    return {"n": n, "epochs": epochs, "generated": mine, "real": (first + second) / 2, "real_seeds": [first, second],
            "real_spread": abs(first - second), "gap": (first + second) / 2 - mine, "per_class_gap": gaps,
            "worst": [lens.names[c] for c in worst],
            "recipe": CAS_RECIPE.format(epochs=epochs, batch=batch_size, test=lens.what,
                                        unit="digits" if lens.names[0] == "0" else "images")}


def evaluate_file(checkpoint: str | Path | None = None, n: int = Scoring.n, data_dir: str | Path = Scoring.data_dir,
                  checkpoint_dir: str | Path | None = None, seed: int = Scoring.seed, device: str = Scoring.device,
                  cas: bool = Scoring.cas, log=print, spread: float = Scoring.spread, sample=None) -> dict:
    """What `python cli.py evaluate` reports for a checkpoint or generator file (None: the newest in checkpoint_dir,
    or the shipped model): its scores and the real-data floor through the lens that fits the model (MNIST's, or for
    a model of class folders a classifier trained on the folder), how often the classifier agrees with the asked-for
    class, and on request the accuracy score. A model of a flat folder or another dataset has no lens: None.
    `sample(G, n, seed, digit)`, where given, draws the images scored (its `check`, if any, is reported, and how many
    of the n scored were left unchecked); without it G's own draws are scored, where the CLI passes
    digits.rejection_sampler() so that evaluate scores what generate and export draw."""
    ask = Scoring(checkpoint=checkpoint, checkpoint_dir=checkpoint_dir, n=n, data_dir=str(data_dir), seed=seed,
                  device=str(device), cas=cas, spread=spread)
    check_sample_count(ask.n, as_grid=False)
    own = getattr(sample, "spread", ask.spread)  # a sampler of one's own that says nothing of a spread: not asked
    if own != ask.spread:
        raise BadValue(f"{{spread}} {ask.spread:.10g} is not the sampler's own ({own:.10g}), which draws the images "
                       f"scored: give the spread to the sampler only")
    device = resolve_device(ask.device)
    G, cfg = load_generator(ask.checkpoint, device, ask.checkpoint_dir)
    t0 = time.perf_counter()
    lens = lens_for(G, cfg, ask.data_dir, device, log)
    if lens is None:
        return {"checkpoint": G.origin, "note": G.note, "n": ask.n, "seed": ask.seed, "spread": ask.spread,
                "lens": None}
    if ask.cas and not G.n_classes:
        raise GANError(f"--cas trains on the classes a model was asked for: {G.origin} is unconditional (no labels); "
                       f"leave out --cas, or evaluate a model trained with labels")
    check_enough(lens, len(lens.test[0]), "test", K + 1)
    floor = real_floor(lens, ask.n, seed=ask.seed, device=device)  # first: it checks the training images
    if ask.cas:  # before the minutes of generating and scoring
        check_enough(lens, floor["n"], "training", G.n_classes)
    before = getattr(sample, "unchecked", 0)
    scores = evaluate_generator(G, ask.n, lens, seed=ask.seed, device=device, spread=ask.spread, sample=sample)
    unchecked = getattr(sample, "unchecked", 0) - before  # of the n scored (the agreement and --cas draw more)
    agreement = (label_agreement(G, max(100, ask.n // G.n_classes), ask.seed, lens=lens, spread=ask.spread,
                                 sample=sample) if G.n_classes else None)
    accuracy_score = (classification_accuracy_score(G, ask.n, lens, ask.seed, device=device, spread=ask.spread,
                                                    sample=sample) if ask.cas else None)
    checks = G.n_classes and cfg.dataset == "mnist" and getattr(sample, "check", 0)
    return {"checkpoint": G.origin, "note": G.note, "n": ask.n, "seed": ask.seed, "spread": ask.spread,
            "check": sample.check if checks else None, "unchecked": unchecked if checks else None,
            "lens": lens.what,
            "classes": lens.names,
            "classifier_accuracy": lens.accuracy, "generator": scores, "real_floor": floor,
            "label_agreement": agreement, "classification_accuracy": accuracy_score,
            "seconds": round(time.perf_counter() - t0, 2)}


def lens_for(G: nn.Module, cfg: Config, data_dir: str, device, log) -> Lens | None:
    """MNIST's lens for an MNIST model, a folder's for a model of class folders, None for the rest."""
    if cfg.dataset == "mnist":
        return mnist_lens(data_dir, device)
    if cfg.images and cfg.classes:
        return folder_lens(cfg, Path(G.origin).parent / "folder_classifier.pt", device, log)
    return None


def evaluate_during_training(G: nn.Module, cfg: Config, device) -> dict:
    """The hook behind train --eval-every: the built-in quality numbers of G, rounded for the record."""
    numbers = evaluate_generator(G, cfg.eval_n, mnist_lens(cfg.data_dir, device), seed=cfg.seed, device=device)
    return {k: round(float(v), 4) for k, v in numbers.items() if isinstance(v, (int, float))}
