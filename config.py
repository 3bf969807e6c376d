"""What a run is asked to do: the one config, each option's default, help and choices, and the rules between them.

    from config import Config
    Config(epochs=30, lr=4e-4)          # the same rules as `python cli.py train --epochs 30 --lr 4e-4`

This file is torch-free on purpose: cli.py builds every option of `train` and `resume` from the fields below
(their defaults, help texts, choices and panels), so `python cli.py --help` answers without importing torch and
nothing here is written a second time anywhere else. gan.py trains what a Config says and stores it in every
checkpoint; the checkpoint format upgrades older configs (checkpoint.py).
"""

from __future__ import annotations

import math
import operator
import re
from dataclasses import InitVar, asdict, dataclass, field, fields
from pathlib import Path


class GANError(Exception):
    """A problem the user can fix (bad input, missing file, full disk); the CLI prints it as one line."""


class BadValue(GANError, ValueError):
    """A value out of range. The message names options as {name}: Python callers read `name`, the CLI `--name`."""

    def __init__(self, template: str):
        super().__init__(re.sub(r"\{(\w+)\}", r"\1", template))
        self.template = template

    def for_cli(self) -> str:
        return re.sub(r"\{(\w+)\}", lambda m: "--" + m.group(1).replace("_", "-"), self.template)


class BadType(GANError, TypeError):
    """A value of the wrong type, from Python (the CLI's parser checks types itself)."""


ARCHS = ("mlp", "mlp-bn", "dcgan", "dcgan-tf")
DATASETS = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST", "kmnist": "KMNIST"}  # torchvision class names
DEVICES = "auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps"
PRECISIONS = ("auto", "fp32", "bf16")
N_CLASSES = 10
MAX_SEED = 2**63 - 1

# The defaults that depend on labels. Without them, the GAN learns far faster with a higher rate and the R1
# penalty (docs/results.md). With labels, batches of 256 at the DCGAN paper's rate scaled with the batch (2e-4 per
# 64 images) reached a better FID per epoch than batches of 64, 128 or 512, and run faster per image in either
# precision; 30 epochs took 11.5 minutes on 2 cores of an AMD EPYC in bf16 (docs/speed.md).
LABELS = {"batch_size": 256, "lr_g": 8e-4, "lr_d": 8e-4, "r1": 0.0, "epochs": 30}
LABEL_FREE = {"batch_size": 64, "lr_g": 8e-4, "lr_d": 8e-4, "r1": 1.0, "epochs": 16}
R1_EVERY = 16  # steps between R1 penalties, each weighted by 16: the lazy regularisation of StyleGAN2


def option(default, help: str, panel: str, *, choices=None, model: bool = False, resume: bool = False,
           cli: bool = True):
    """A Config field with what the CLI needs to offer it. `model`: it defines the networks, so resume refuses to
    change it; `resume`: the resume command offers it (default: the saved value); `cli`: it is an option at all
    (not one that a run works out for itself)."""
    return field(default=default, metadata={"help": help, "panel": panel, "choices": choices, "model": model,
                                            "resume": resume, "cli": cli})


def rate_help(network: str) -> str:
    labels, label_free = LABELS["lr_g"], LABEL_FREE["lr_g"]
    default = (f"{labels:g} with or without labels" if labels == label_free else
               f"{labels:g} with labels, {label_free:g} with --no-conditional")
    return f"Adam learning rate of {network} (default: {default})."


@dataclass
class Config:
    # model: fixed for a run
    arch: str = option("dcgan", "Network (mlp-bn: the MLP with BatchNorm and no biases; dcgan-tf: the TensorFlow "
                       "tutorial's DCGAN).", "model", choices=ARCHS, model=True)
    latent_dim: int = option(100, "Size of the noise vector z.", "model", model=True)
    width: int = option(16, "dcgan only: channels of D's first layer; compute grows with its square (paper: 64).",
                        "model", model=True)
    g_act: str = option("relu", "mlp only: generator activation.", "model", choices=("relu", "leaky"), model=True)
    d_dropout: float = option(0.0, "mlp/mlp-bn only: dropout after each hidden layer of D (0: none).", "model",
                              model=True)
    conditional: bool = option(True, "G and D see each image's label, and generate --digit draws that digit; "
                               "--no-conditional learns without labels.", "model", model=True)
    dataset: str = option("mnist", "28x28 dataset, read through torchvision; other datasets get their own default "
                          "folders.", "model", choices=tuple(DATASETS), model=True)
    images: str | None = option(None, "Train on your own images instead: a folder of PNG, JPEG, BMP or GIF files, "
                                "with a subfolder per class (a labelled GAN) or flat (label-free); made grey and "
                                "28x28.", "model", model=True)
    classes: list[str] | None = option(None, "", "model", model=True, cli=False)  # the folder's class names
    ema: float = option(0.999, "Sample from a moving average of G's weights with this decay (0: off).", "model")
    # optimisation
    epochs: int | None = option(None, f"Total epochs to train; on resume, the epoch to stop at (default: "
                                f"{LABELS['epochs']} with labels, {LABEL_FREE['epochs']} with --no-conditional).",
                                "optimisation", resume=True)
    batch_size: int | None = option(None, f"Images per batch (default: {LABELS['batch_size']} with labels, "
                                    f"{LABEL_FREE['batch_size']} with --no-conditional).", "optimisation", resume=True)
    lr_g: float | None = option(None, rate_help("G"), "optimisation", resume=True)
    lr_d: float | None = option(None, rate_help("D"), "optimisation", resume=True)
    r1: float | None = option(None, f"Weight of the R1 penalty on D's gradient at real images; 0: off (default: "
                              f"{LABELS['r1']:g} with labels, {LABEL_FREE['r1']:g} with --no-conditional).",
                              "optimisation", resume=True)
    beta1: float = option(0.5, "Adam beta1 (0.5 as in the DCGAN paper).", "optimisation")
    label_smoothing: float | None = option(None, "Target for real labels in D's loss, e.g. 0.9 (default: 1.0).",
                                           "optimisation")
    seed: int = option(0, "Random seed (weights, noise, shuffling).", "optimisation")
    # files: None means the default folder of the dataset (checkpoints/, or checkpoints/<dataset>/ for others)
    data_dir: str = option("data", "Folder with MNIST/raw/ (downloaded there if missing).", "files", resume=True)
    checkpoint_dir: str | None = option(None, "Where checkpoints, metrics, plots and the report go (default: "
                                        "checkpoints/, or checkpoints/DATASET).", "files", resume=True)
    sample_dir: str | None = option(None, "Where the per-epoch sample grids go (default: samples/, or "
                                    "samples/DATASET).", "files", resume=True)
    save_every: int = option(1, "Save a checkpoint every N epochs (and always at the end).", "files", resume=True)
    sample_every: int = option(1, "Write a sample grid every N epochs (and always at the end).", "files", resume=True)
    keep_last: int = option(3, "Epoch checkpoints to keep, newest first (0: keep all).", "files", resume=True)
    # run
    device: str = option("auto", DEVICES + ".", "run", resume=True)
    precision: str = option("auto", "Arithmetic of the training step: bf16 autocast where it measured faster (a CUDA "
                            "GPU with bf16, or a CPU with AMX or AVX512-BF16, for the DCGANs at batches of 128 or "
                            "more), fp32 elsewhere; or say fp32 or bf16. Weights, optimizer and losses stay fp32.",
                            "run",
                            choices=PRECISIONS, resume=True)
    eval_every: int = option(0, "Every N epochs add FID, coverage, precision/recall to the record (0: off).", "run",
                             resume=True)
    eval_n: int = option(2000, "Samples per --eval-every evaluation.", "run", resume=True)
    tensorboard: bool = option(False, "Also log to TensorBoard (needs `pip install tensorboard`).", "run", resume=True)
    lr: InitVar[float | None] = None  # sets lr_g and lr_d where they are not given themselves

    def __post_init__(self, lr: float | None):
        if lr is not None:
            check_rate("lr", lr)
        for name in ("data_dir", "checkpoint_dir", "sample_dir", "images"):
            check_folder_name(name, getattr(self, name))
        if self.images is not None and self.dataset not in ("mnist", "images"):
            raise BadValue(f"{{dataset}} {self.dataset} and {{images}} both say what to train on: give one")
        if self.images is not None:  # absolute, so that a resume from another folder finds it
            self.images, self.dataset = str(Path(self.images).absolute()), "images"
            if self.classes is None:  # a new run: the folder says; a saved run keeps the classes it trained on
                self.classes = image_classes(self.images)
            self.conditional = self.conditional and bool(self.classes)  # a flat folder has no labels
        defaults = LABELS if self.conditional else LABEL_FREE
        for name, value in defaults.items():
            if getattr(self, name) is None:
                setattr(self, name, lr if lr is not None and name in ("lr_g", "lr_d") else value)
        suffix = "" if self.dataset == "mnist" else f"/{Path(self.images).name}" if self.images else f"/{self.dataset}"
        self.checkpoint_dir = str(self.checkpoint_dir) if self.checkpoint_dir is not None else "checkpoints" + suffix
        self.sample_dir = str(self.sample_dir) if self.sample_dir is not None else "samples" + suffix
        self.data_dir = str(self.data_dir)

    @property
    def n_classes(self) -> int:
        """Classes a conditional model draws: ten for the 28x28 datasets, one per subfolder for --images."""
        return len(self.classes) if self.classes is not None else N_CLASSES


LR_HELP = "Adam learning rate for both networks: sets --lr-g and --lr-d where they are not given."


def help_of(name: str) -> str:
    """The help text of a Config field, for a command outside train/resume that takes the same option."""
    return next(f.metadata["help"] for f in fields(Config) if f.name == name)
MODEL_FIELDS = tuple(f.name for f in fields(Config) if f.metadata["model"] and f.metadata["cli"])
RESUME_FIELDS = tuple(f.name for f in fields(Config) if f.metadata["resume"])
DEFAULTS = {f.name: f.default for f in fields(Config)}


# ---- checks, each naming the option it is about ----

def check_int(name: str, value, minimum: int | None = None, maximum: int | None = None, counted: bool = False) -> int:
    """`value` as a Python int in [minimum, maximum] (a bool or a float is refused, not rounded). `counted`: the
    message says "at least 1" rather than "a positive number", for counts of things to draw."""
    original = value
    try:  # numpy's and torch's integers are whole numbers too; a bool, a float or a string is not
        value = operator.index(value) if not isinstance(value, bool) else None
    except TypeError:
        value = None
    if value is None:
        raise BadType(f"{name} must be a whole number, got {original!r} ({type(original).__name__})")
    if minimum is not None and maximum is not None and not minimum <= value <= maximum:
        raise BadValue(f"{{{name}}} must be between {minimum:,} and {maximum:,}, got {value}")
    if minimum is not None and value < minimum:
        least = "a positive number" if minimum == 1 and not counted else f"at least {minimum}"
        raise BadValue(f"{{{name}}} must be {least}, got {value}")
    if maximum is not None and value > maximum:
        raise BadValue(f"{{{name}}} must be at most {maximum:,}, got {value}")
    return value


def check_folder_name(name: str, value) -> None:
    """A folder option that is given must name a folder: an empty one would mean this folder by accident."""
    if value is not None and not str(value).strip():
        raise BadValue(f"{{{name}}} is empty: name a folder (. for this one)")


def check_seed(name: str, seed) -> int | None:
    return None if seed is None else check_int(name, seed, 0, MAX_SEED)


def check_minutes(minutes) -> None:
    if minutes is not None and (isinstance(minutes, bool) or not isinstance(minutes, (int, float))
                                or not 0 < minutes < math.inf):
        raise BadValue(f"{{minutes}} must be a positive number, got {minutes}")


def check_drawing(generator, n, nrow, seed, out, digit) -> tuple[bool, int, int | None, int | None, int | None]:
    """Check what a drawing asks for (generate_and_plot_samples' arguments), naming the one that is wrong; returns
    whether `out` names an .npy array (else a .png grid, or None: a new file in samples/), and n, nrow, seed and
    digit as Python ints. `generator`: a network (anything callable with a latent_dim), a checkpoint's path, or None."""
    if isinstance(generator, (str, Path)):
        if not str(generator).strip():
            raise BadValue("generator is an empty path: pass a checkpoint's path, or None for the newest checkpoint")
    elif generator is not None and not (callable(generator) and hasattr(generator, "latent_dim")):
        raise BadType(f"generator must be a Generator, a checkpoint's path or None, got {type(generator).__name__}")
    n = check_int("n", n, 1, counted=True)
    nrow = check_int("nrow", nrow, 1, counted=True) if nrow is not None else None
    seed = check_seed("seed", seed)
    digit = check_int("digit", digit, 0) if digit is not None else None
    if out is None:
        return False, n, nrow, seed, digit
    if not isinstance(out, (str, Path)) or not str(out).strip():
        raise BadValue(f"{{out}} must be a file name ending in .png or .npy, got {out!r}")
    suffix = Path(out).suffix.lower()
    if suffix not in (".png", ".npy"):
        raise BadValue(f"{{out}} {out}: use a .png (grid) or .npy (array) file name (the export command writes folders)")
    return suffix == ".npy", n, nrow, seed, digit


def check_rate(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 or not math.isfinite(value):
        raise BadValue(f"{{{name}}} must be a positive number, got {value}")
    if value > 1:  # beyond ~1e38 Adam's step does not even fit a float32
        raise BadValue(f"{{{name}}} must be at most 1 (Adam moves each weight by about this much per step; "
                       f"2e-4 is typical), got {value}")


def validate(cfg: Config) -> None:
    """Reject values that cannot train, with a message that names the option to fix (the first one wrong)."""
    for name in ("epochs", "batch_size", "latent_dim", "width", "save_every", "sample_every"):
        check_int(name, getattr(cfg, name), 1)
    check_int("keep_last", cfg.keep_last, 0)
    check_int("eval_every", cfg.eval_every, 0)
    check_seed("seed", cfg.seed)
    check_rate("lr_g", cfg.lr_g)
    check_rate("lr_d", cfg.lr_d)
    rules = [
        (cfg.arch in ARCHS, f"unknown {{arch}} {cfg.arch!r}: choose one of {', '.join(ARCHS)}"),
        (cfg.g_act in ("relu", "leaky"), f"unknown {{g_act}} {cfg.g_act!r}: choose relu or leaky"),
        (cfg.dataset in DATASETS or cfg.images is not None,
         f"unknown {{dataset}} {cfg.dataset!r}: choose one of {', '.join(DATASETS)}, or pass {{images}} DIR"),
        (cfg.precision in PRECISIONS, f"unknown {{precision}} {cfg.precision!r}: choose one of {', '.join(PRECISIONS)}"),
        (cfg.latent_dim <= 10_000, f"{{latent_dim}} {cfg.latent_dim} is too large (at most 10,000): the networks "
                                   f"would not fit in memory"),
        (cfg.width <= 512, f"{{width}} {cfg.width} is too large (at most 512): the networks would not fit in memory"),
        (cfg.batch_size <= 1_000_000, f"{{batch_size}} {cfg.batch_size:,} is too large (at most 1,000,000)"),
        (cfg.batch_size >= 2 or cfg.arch == "mlp", f"{{batch_size}} 1 cannot train {cfg.arch}: its BatchNorm needs at "
                                                   f"least 2 images per batch"),
        (cfg.epochs <= 1_000_000, f"{{epochs}} {cfg.epochs:,} is too many (at most 1,000,000)"),
        (0 <= cfg.beta1 < 1, f"{{beta1}} must be in [0, 1), got {cfg.beta1}"),
        (0 <= cfg.r1 <= 1000, f"{{r1}} must be 0 (off) or a weight up to 1000 (1 is typical), got {cfg.r1}"),
        (0 <= cfg.d_dropout < 1, f"{{d_dropout}} must be in [0, 1), got {cfg.d_dropout}"),
        # options that shape one arch only are refused for the others, rather than silently ignored
        (cfg.width == DEFAULTS["width"] or cfg.arch == "dcgan",
         f"{{width}} sets the channels of {{arch}} dcgan; {cfg.arch} has fixed layer sizes: leave it out"),
        (cfg.g_act == DEFAULTS["g_act"] or cfg.arch == "mlp",
         f"{{g_act}} applies to {{arch}} mlp only ({cfg.arch} has its own activations): leave it out"),
        (cfg.d_dropout == DEFAULTS["d_dropout"] or cfg.arch in ("mlp", "mlp-bn"),
         f"{{d_dropout}} applies to {{arch}} mlp and mlp-bn only ({cfg.arch} has its own): leave it out"),
        (cfg.label_smoothing is None or 0.5 < cfg.label_smoothing <= 1,
         f"{{label_smoothing}} is the target for real labels and must be in (0.5, 1], got {cfg.label_smoothing}"),
        (0 <= cfg.ema < 1, f"{{ema}} is a decay in [0, 1) (0: off, 0.999 typical), got {cfg.ema}"),
        (cfg.eval_n >= 100, f"{{eval_n}} must be at least 100, got {cfg.eval_n}"),
        (cfg.images is None or not any(Path(d).resolve().is_relative_to(Path(cfg.images).resolve()) for d in
                                       (cfg.checkpoint_dir, cfg.sample_dir)),
         f"{{checkpoint_dir}} and {{sample_dir}} would put the run's files inside {cfg.images}, the image folder it "
         f"reads: name folders outside it"),
        (not cfg.eval_every or cfg.dataset == "mnist",
         "{eval_every} measures digits with an MNIST classifier: use it with {dataset} mnist only"),
    ]
    for ok, message in rules:
        if not ok:
            raise BadValue(message)


# ---- a resumed run's config ----

def resumed(saved: Config, overrides: dict, checkpoint: str | Path) -> Config:
    """The config a resume of `checkpoint` trains with: the saved one, changed only by `overrides` (the options the
    user gave; `lr` sets both rates unless one is given). Options that would change the networks are refused. The
    run writes where the checkpoint now is, unless --checkpoint-dir says otherwise, so a moved run folder resumes
    in place; its sample grids move along when they lived inside the checkpoint folder."""
    changed = [name for name in MODEL_FIELDS if name in overrides and overrides[name] != getattr(saved, name)]
    if changed:
        raise BadValue(f"{', '.join('{' + n + '}' for n in changed)} would change the networks saved in {checkpoint}: "
                       f"leave them out when resuming (start a new run in another {{checkpoint_dir}} to train a "
                       f"different model)")
    overrides = dict(overrides)
    lr = overrides.pop("lr", None)
    if lr is not None:
        check_rate("lr", lr)
        for name in ("lr_g", "lr_d"):
            overrides.setdefault(name, lr)
    config = {**asdict(saved), **{k: v for k, v in overrides.items() if v is not None}}
    here, old = Path(checkpoint).parent, Path(saved.checkpoint_dir)
    if overrides.get("checkpoint_dir") is None:
        config["checkpoint_dir"] = str(here)
        if overrides.get("sample_dir") is None and Path(saved.sample_dir).is_relative_to(old):
            config["sample_dir"] = str(here / Path(saved.sample_dir).relative_to(old))
    return Config(**config)


# ---- your own images: what a folder holds ----

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
MAX_CLASSES = 100


def image_files(folder: Path) -> list[Path]:
    """The image files directly in `folder`, by name (hidden files left out)."""
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
                  and p.is_file())


def image_classes(root: str) -> list[str]:
    """The class names of an image folder: its subfolders, each of which must hold images; [] for a flat folder of
    images (label-free). Anything else is one line saying what the folder should look like."""
    folder = Path(root)
    if not folder.exists():
        raise BadValue(f"{{images}} {root}: no such folder")
    if not folder.is_dir():
        raise BadValue(f"{{images}} {root} is a file: pass the folder that holds your images")
    try:
        subfolders = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
        loose = image_files(folder)
        empty = [p.name for p in subfolders if not image_files(p)]
    except OSError as e:
        raise GANError(f"cannot read {root} ({e.strerror or e})") from None
    if subfolders and loose:
        raise BadValue(f"{{images}} {root} holds both images and subfolders: put every image in a class subfolder, "
                       f"or use a flat folder of images only")
    if empty:
        raise BadValue(f"{{images}} {root}: class {empty[0]!r} has no images ({', '.join(IMAGE_SUFFIXES)}); "
                       f"add some or remove the subfolder")
    if not subfolders and not loose:
        raise BadValue(f"{{images}} {root} holds no images ({', '.join(IMAGE_SUFFIXES)}) and no class subfolders")
    odd = [p.name for p in subfolders if not p.name.isprintable()]
    if odd:
        raise BadValue(f"{{images}} {root}: the class folder {odd[0]!r} has a line break or control character in its "
                       f"name: rename it")
    if len(subfolders) > MAX_CLASSES:
        raise BadValue(f"{{images}} {root} has {len(subfolders)} class subfolders, more than {MAX_CLASSES}: a "
                       f"conditional GAN needs many images of each; group them into fewer classes")
    return [p.name for p in subfolders]
