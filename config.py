"""What each command is asked to do: its options, their defaults, help and choices, and the checks on their values.

    from config import Config
    Config(epochs=30, lr=4e-4)          # the same rules as `python cli.py train --epochs 30 --lr 4e-4`
    Config(epochs=0)                    # BadValue: epochs must be a positive number, got 0

Config is the training run (stored in every checkpoint); Drawing, Export, Walk, Scoring and ClassifierRun are the
other commands. cli.py builds every command's options from these fields, and the Python API's functions take their
defaults from them, so nothing is declared twice. Each class checks its values when it is built, with the message
the CLI prints. This file is torch-free on purpose: `python cli.py --help` answers without importing torch. It also
reads what an image folder holds (its class names), since a run's defaults depend on whether it has labels.
"""

from __future__ import annotations

import math
import numbers
import operator
import re
from dataclasses import InitVar, asdict, dataclass, field, fields
from pathlib import Path


class GANError(Exception):
    """A problem the user can fix (bad input, missing file, full disk); the CLI prints it as one line."""


def one_line(text: str) -> str:
    """`text` with each character that does not print (a line break, a terminal escape, in a folder's name, say)
    written as Python writes it in a string (\\n, \\x1b): one line that a terminal shows as it is."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class BadValue(GANError, ValueError):
    """A value out of range. The message names options as {name}: Python callers read `name`, the CLI `--name`."""

    def __init__(self, template: str):
        super().__init__(re.sub(r"\{(\w+)\}", r"\1", template))
        self.template = template

    def for_cli(self) -> str:
        return re.sub(r"\{(\w+)\}", lambda m: OTHER_FLAGS.get(m.group(1), "--" + m.group(1).replace("_", "-")),
                      self.template)


CLASS_FLAG = "--class"  # the one option not spelt after its field (class_name: `class` is Python's)
OTHER_FLAGS = {"class_name": CLASS_FLAG}  # field -> option, where it is not --field


class BadType(GANError, TypeError):
    """A value of the wrong type, from Python (the CLI's parser checks types itself)."""


ARCHS = ("mlp", "mlp-bn", "dcgan", "dcgan-tf")
DATASETS = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST", "kmnist": "KMNIST"}  # torchvision class names
SIZES = (28, 32, 64)
PRECISIONS = ("auto", "fp32", "bf16")
N_CLASSES = 10
MAX_SEED = 2**63 - 1
STAT_NAMES = ("d_loss", "g_loss", "d_real", "d_fake")  # what a training step reports, in this order

# The defaults that depend on labels. Without them, the GAN learns far faster with a higher rate and the R1
# penalty (docs/results.md). With labels, batches of 256 at the DCGAN paper's rate scaled with the batch (2e-4 per
# 64 images) reached a better FID per epoch than batches of 64, 128 or 512, and run faster per image in either
# precision (docs/speed.md).
# With labels, Adam without momentum (beta1 0) and a short moving average of G (decay 0.99) reached a better FID
# than the DCGAN paper's beta1 0.5 and a decay of 0.999, at every epoch measured (docs/results.md); label-free
# training was not searched again and keeps them. With labels, width 20 drew better digits than 16 after 10 minutes
# of training and had more variety at the end of its 30 epochs, at 1.3x the time per epoch; it was level at 5
# minutes and behind at 2.5 (docs/results.md). Label-free training was not measured at 20 and keeps 16. Only the
# DCGAN has a width: the other archs' is None.
LABELS = {"batch_size": 256, "lr_g": 8e-4, "lr_d": 8e-4, "r1": 0.0, "epochs": 30, "beta1": 0.0, "ema": 0.99,
          "width": 20}
LABEL_FREE = {"batch_size": 64, "lr_g": 8e-4, "lr_d": 8e-4, "r1": 1.0, "epochs": 16, "beta1": 0.5, "ema": 0.999,
              "width": 16}
R1_EVERY = 16  # steps between R1 penalties, each weighted by 16: the lazy regularisation of StyleGAN2


def option(default, help: str, panel: str, *, choices=None, model: bool = False, resume: bool = False,
           cli: bool = True, default_text: str | None = None, flag: str | None = None):
    """A field with what the CLI needs to offer it. `model`: it defines the networks, so resume refuses to change it;
    `resume`: the resume command offers it; `cli`: it is an option at all (not one a run works out for itself);
    `default_text`: the default as --help states it, where the value alone would not say it; `flag`: the option's
    name on the command line where it is not the field's."""
    return field(default=default, metadata={"help": help, "panel": panel, "choices": choices, "model": model,
                                            "resume": resume, "cli": cli, "default_text": default_text, "flag": flag})


def by_labels(name: str, form: str = "{:g}") -> str:
    """How --help states a default that depends on labels."""
    with_labels, without = form.format(LABELS[name]), form.format(LABEL_FREE[name])
    return (f"{with_labels} with or without labels" if with_labels == without else
            f"{with_labels} with labels, {without} with --no-conditional")


DEVICE_HELP = "Where to compute: auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps."


@dataclass
class Config:
    """A training run: everything `train` is asked, stored in every checkpoint and rebuilt from it."""
    # model: fixed for a run
    arch: str = option("dcgan", "Network (mlp-bn: the MLP with BatchNorm and no biases; dcgan-tf: the TensorFlow "
                       "tutorial's DCGAN).", "model", choices=ARCHS, model=True)
    latent_dim: int = option(100, "Size of the noise vector z.", "model", model=True)
    width: int | None = option(None, "dcgan only: D's channels start at this (unless --d-width) and double per layer, "
                               "G's halve from 8x it; compute grows with its square (paper: 64).", "model", model=True,
                               default_text=by_labels("width"))
    d_width: int | None = option(None, "dcgan only: D's own --width, where D should be narrower or wider than G (a "
                                 "stronger D can cost variety).", "model", model=True, default_text="--width")
    g_act: str = option("relu", "mlp only: generator activation.", "model", choices=("relu", "leaky"), model=True)
    d_dropout: float = option(0.0, "Dropout after each hidden layer of D (mlp, mlp-bn) or each of its LeakyReLUs "
                              "(dcgan); 0: none. More variety, less sharpness (docs/results.md).", "model", model=True)
    conditional: bool = option(True, "G and D see each image's label, and generate --digit draws that digit; "
                               "--no-conditional learns without labels.", "model", model=True)
    dataset: str = option("mnist", "28x28 grey dataset, read through torchvision; other datasets get their own "
                          "default folders.", "model", choices=tuple(DATASETS), model=True)
    images: str | None = option(None, "Train on your own images instead: a folder of PNG, JPEG, BMP or GIF files, "
                                "with a subfolder per class (a labelled GAN) or flat (label-free).", "model",
                                model=True)
    size: int = option(28, "--images only: pixels per side (28, 32 or 64); each picture is resized and cut to the "
                       "centre square, as torchvision's Resize + CenterCrop do.", "model", choices=SIZES, model=True)
    channels: str = option("auto", "--images only: 3 keeps colour, 1 makes grey; auto: 3 if any picture has colour.",
                           "model", choices=("auto", "1", "3"), model=True)
    classes: list[str] | None = option(None, "", "model", model=True, cli=False)  # the folder's class names
    ema: float | None = option(None, "Sample from a moving average of G's weights with this decay (0: off).", "model",
                               default_text=by_labels("ema"))
    # optimisation
    epochs: int | None = option(None, "Total epochs to train; on resume, the epoch to stop at.", "optimisation",
                                resume=True, default_text=by_labels("epochs"))
    batch_size: int | None = option(None, "Images per batch.", "optimisation", resume=True,
                                    default_text=by_labels("batch_size"))
    lr_g: float | None = option(None, "Adam learning rate of G.", "optimisation", resume=True,
                                default_text=by_labels("lr_g"))
    lr_d: float | None = option(None, "Adam learning rate of D.", "optimisation", resume=True,
                                default_text=by_labels("lr_d"))
    r1: float | None = option(None, "Weight of the R1 penalty on D's gradient at real images; 0: off.",
                              "optimisation", resume=True, default_text=by_labels("r1"))
    beta1: float | None = option(None, "Adam beta1 (the DCGAN paper's: 0.5).", "optimisation",
                                 default_text=by_labels("beta1"))
    label_smoothing: float | None = option(None, "Target for real labels in D's loss, e.g. 0.9.", "optimisation",
                                           default_text="1.0")
    seed: int = option(0, "Random seed (weights, noise, shuffling).", "optimisation")
    # files: None means the default folder of the dataset (checkpoints/, or checkpoints/<dataset>/ for others)
    data_dir: str = option("data", "Folder with MNIST/raw/ (downloaded there if missing).", "files", resume=True)
    checkpoint_dir: str | None = option(None, "Where checkpoints, metrics, plots and the report go.", "files",
                                        resume=True, default_text="checkpoints/, or checkpoints/DATASET")
    sample_dir: str | None = option(None, "Where the per-epoch sample grids go.", "files", resume=True,
                                    default_text="samples/, or samples/DATASET")
    save_every: int = option(1, "Save a checkpoint every N epochs (and always at the end).", "files", resume=True)
    sample_every: int = option(1, "Write a sample grid every N epochs (and always at the end).", "files", resume=True)
    keep_last: int = option(3, "Epoch checkpoints to keep, newest first (0: keep all).", "files", resume=True)
    # run
    device: str = option("auto", DEVICE_HELP, "run", resume=True)
    precision: str = option("auto", "Arithmetic of the training step: bf16 autocast where it measured faster (a CUDA "
                            "GPU with bf16, or a CPU with AMX or AVX512-BF16, for the DCGANs at batches of 128 or "
                            "more), fp32 elsewhere; or say fp32 or bf16. Weights, optimizer and losses stay fp32.",
                            "run", choices=PRECISIONS, resume=True)
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
            if getattr(self, name) is None and (name != "width" or self.arch == "dcgan"):  # only a DCGAN has one
                setattr(self, name, lr if lr is not None and name in ("lr_g", "lr_d") else value)
        suffix = "" if self.dataset == "mnist" else f"/{Path(self.images).name}" if self.images else f"/{self.dataset}"
        self.checkpoint_dir = str(self.checkpoint_dir) if self.checkpoint_dir is not None else "checkpoints" + suffix
        self.sample_dir = str(self.sample_dir) if self.sample_dir is not None else "samples" + suffix
        self.data_dir = str(self.data_dir)
        validate(self)

    @property
    def width_of_d(self) -> int | None:
        """The DCGAN D's first channels: --d-width where given, else --width (None for the other archs)."""
        return self.d_width or self.width

    @property
    def n_classes(self) -> int:
        """Classes a conditional model draws: ten for the 28x28 datasets, one per subfolder for --images."""
        return len(self.classes) if self.classes is not None else N_CLASSES

    @property
    def n_channels(self) -> int:
        """1 (grey) or 3 (colour); "auto" is settled when a run first reads its images (gan.settle_channels)."""
        if self.channels == "auto" and self.images is not None:
            raise GANError("the colour of the images is not known until they are read")
        return 1 if self.channels == "auto" else int(self.channels)


def validate(cfg: Config) -> None:
    """Reject values that cannot train, with a message that names the option to fix (the first one wrong)."""
    check_types(cfg)
    for ok, message in rules(cfg):
        if not ok:
            raise BadValue(message)


def check_types(cfg: Config) -> None:
    """Each value of the type its option takes; values of numpy's or torch's types become Python's, so that what a
    checkpoint stores is plain."""
    for name in ("epochs", "batch_size", "latent_dim", "save_every", "sample_every", "size", "eval_n"):
        setattr(cfg, name, check_int(name, getattr(cfg, name), 1))
    if cfg.width is not None or cfg.arch == "dcgan":  # the other archs have none
        cfg.width = check_int("width", cfg.width, 1)
    if cfg.d_width is not None:  # None: D's width is G's
        cfg.d_width = check_int("d_width", cfg.d_width, 1)
    cfg.keep_last, cfg.eval_every = check_int("keep_last", cfg.keep_last, 0), check_int("eval_every", cfg.eval_every, 0)
    cfg.seed = check_seed("seed", cfg.seed)
    cfg.lr_g, cfg.lr_d = check_rate("lr_g", cfg.lr_g), check_rate("lr_d", cfg.lr_d)
    for name in ("beta1", "r1", "d_dropout", "ema", "label_smoothing"):
        if getattr(cfg, name) is not None or name != "label_smoothing":
            setattr(cfg, name, check_real(name, getattr(cfg, name)))
    check_flags(cfg)
    for name in ("arch", "g_act", "dataset", "device", "precision", "channels", "data_dir"):
        if not isinstance(getattr(cfg, name), str):
            raise BadType(f"{name} must be a text, got {getattr(cfg, name)!r}")
    if cfg.classes is not None and (cfg.images is None or not isinstance(cfg.classes, list) or not all(
            isinstance(c, str) for c in cfg.classes) or len(set(cfg.classes)) != len(cfg.classes)):
        raise BadValue("{classes} are the class folders of {images} DIR, read from the folder: leave them out")
    for name in ("arch", "g_act", "precision", "channels", "size"):
        check_choice(name, getattr(cfg, name), Config)


def rules(cfg: Config) -> list[tuple[bool, str]]:
    """What the values must be together: (holds, the message when it does not), in the order they are checked."""
    defaults = {f.name: f.default for f in fields(Config)}
    return [
        (cfg.dataset in DATASETS or cfg.images is not None,
         f"unknown {{dataset}} {cfg.dataset!r}: choose one of {', '.join(DATASETS)}, or pass {{images}} DIR"),
        (cfg.latent_dim <= 10_000, f"{{latent_dim}} {cfg.latent_dim} is too large (at most 10,000): the networks "
                                   f"would not fit in memory"),
        (cfg.width is None or cfg.width <= 512,
         f"{{width}} {cfg.width} is too large (at most 512): the networks would not fit in memory"),
        (cfg.d_width is None or cfg.d_width <= 512,
         f"{{d_width}} {cfg.d_width} is too large (at most 512): the networks would not fit in memory"),
        (cfg.batch_size <= 1_000_000, f"{{batch_size}} {cfg.batch_size:,} is too large (at most 1,000,000)"),
        (cfg.batch_size >= 2 or cfg.arch == "mlp", f"{{batch_size}} 1 cannot train {cfg.arch}: its BatchNorm needs at "
                                                   f"least 2 images per batch"),
        (cfg.epochs <= 1_000_000, f"{{epochs}} {cfg.epochs:,} is too many (at most 1,000,000)"),
        (0 <= cfg.beta1 < 1, f"{{beta1}} must be in [0, 1), got {cfg.beta1}"),
        (0 <= cfg.r1 <= 1000, f"{{r1}} must be 0 (off) or a weight up to 1000 (1 is typical), got {cfg.r1}"),
        (0 <= cfg.d_dropout < 1, f"{{d_dropout}} must be in [0, 1), got {cfg.d_dropout}"),
        # options that shape one arch only are refused for the others, rather than silently ignored
        (cfg.width is None or cfg.arch == "dcgan",
         f"{{width}} sets the channels of {{arch}} dcgan; {cfg.arch} has fixed layer sizes: leave it out"),
        (cfg.d_width is None or cfg.arch == "dcgan",
         f"{{d_width}} sets the channels of {{arch}} dcgan's D; {cfg.arch} has fixed layer sizes: leave it out"),
        (cfg.g_act == defaults["g_act"] or cfg.arch == "mlp",
         f"{{g_act}} applies to {{arch}} mlp only ({cfg.arch} has its own activations): leave it out"),
        (cfg.d_dropout == defaults["d_dropout"] or cfg.arch in ("mlp", "mlp-bn", "dcgan"),
         f"{{d_dropout}} applies to {{arch}} mlp, mlp-bn and dcgan ({cfg.arch} has its own): leave it out"),
        (cfg.images is not None or (cfg.size == 28 and cfg.channels in ("auto", "1")),
         f"{{size}} and {{channels}} shape your own pictures (--images DIR); {cfg.dataset} is 28x28 grey"),
        (cfg.arch == "dcgan" or (cfg.size == 28 and cfg.channels in ("auto", "1")),
         f"{{arch}} {cfg.arch} draws 28x28 grey images only: use {{arch}} dcgan for {{size}} {cfg.size} or colour"),
        (cfg.label_smoothing is None or 0.5 < cfg.label_smoothing <= 1,
         f"{{label_smoothing}} is the target for real labels and must be in (0.5, 1], got {cfg.label_smoothing}"),
        (0 <= cfg.ema < 1, f"{{ema}} is a decay in [0, 1) (0: off, 0.99 typical), got {cfg.ema}"),
        (100 <= cfg.eval_n <= 100_000, f"{{eval_n}} must be between 100 and 100,000, got {cfg.eval_n}"),
        (cfg.images is None or not any(Path(d).resolve().is_relative_to(Path(cfg.images).resolve()) for d in
                                       (cfg.checkpoint_dir, cfg.sample_dir)),
         f"{{checkpoint_dir}} and {{sample_dir}} would put the run's files inside {cfg.images}, the image folder it "
         f"reads: name folders outside it"),
        (not cfg.eval_every or cfg.dataset == "mnist",
         "{eval_every} measures digits with an MNIST classifier: use it with {dataset} mnist only"),
    ]


MODEL_FIELDS = tuple(f.name for f in fields(Config) if f.metadata["model"] and f.metadata["cli"])
# What a run keeps for its whole life without defining the networks: its recipe (beta1, label smoothing), its moving
# average of G (--ema 0 would drop it) and its seed (the checkpoint's random state is restored, so a new one would
# change nothing but the record). The resume command does not offer them; neither does `train --resume`.
KEPT_FIELDS = tuple(f.name for f in fields(Config) if f.metadata["cli"] and not f.metadata["model"]
                    and not f.metadata["resume"])
LR_HELP = "Adam learning rate for both networks: sets --lr-g and --lr-d where they are not given."


# ---- the other commands ----

@dataclass
class Source:
    """Which generator a drawing command draws from, and where it computes."""
    checkpoint: str | None = option(None, "Checkpoint or exported generator to draw from.", "source",
                                    default_text="the newest in --checkpoint-dir")
    checkpoint_dir: str | None = option(None, "Folder whose newest checkpoint draws.", "source",
                                        default_text="checkpoints/, and failing that the shipped model")
    device: str = option("auto", DEVICE_HELP, "source")

    def __post_init__(self):
        for name in ("checkpoint", "checkpoint_dir"):
            if getattr(self, name) is not None and not isinstance(getattr(self, name), (str, Path)):
                raise BadType(f"{name} must be a path, got {getattr(self, name)!r}")
            check_folder_name(name, getattr(self, name))
        self.checkpoint = None if self.checkpoint is None else str(self.checkpoint)
        self.checkpoint_dir = None if self.checkpoint_dir is None else str(self.checkpoint_dir)
        check_flags(self)


def seed_field(what: str = "repeatable results"):
    return option(None, f"Seed for {what}.", "drawing")


def spread_field(panel: str):
    return option(1.0, "How wide the noise is drawn (its standard deviation): above 1, more varied and less typical "
                  "images; below 1, more typical and more alike (the truncation trick). At 1.1 the shipped model's "
                  "recall rises from 0.86 to 0.87 (real digits': 0.875) and its FID from 2.4 to 3.9 (docs/results.md).",
                  panel)


def check_field(panel: str):
    return option(0.5, "MNIST models with labels: redraw any digit that a second classifier (assets/mnist_checker.pt, "
                  "not the one that scores) gives its label a probability below this; 0 keeps every draw as the model "
                  "made it. At 0.5 the shipped model draws each digit as asked 99.1% of the time or more, against "
                  "98.0% unchecked, at a recall 0.002 lower (docs/results.md).", panel)


MIN_SPREAD, MAX_SPREAD = 0.01, 3.0  # at 3 a DCGAN draws mostly noise; below 0.01 every image of a class is alike


def check_spread(value) -> float:
    value = check_real("spread", value)
    if not MIN_SPREAD <= value <= MAX_SPREAD:
        raise BadValue(f"{{spread}} must be from {MIN_SPREAD:g} to {MAX_SPREAD:g} (1 draws as trained), "
                       f"got {value:.10g}")
    return value


def digit_field():
    return option(None, "Only this digit (or class index): a conditional model is asked for it; an unconditional "
                  "MNIST model's samples are kept when the shipped classifier calls them this digit with "
                  "--min-confidence (rejection sampling).", "drawing")


def class_field():
    return option(None, "Only this class, by name: a model trained on --images DIR with a subfolder per class.",
                  "drawing", flag=CLASS_FLAG)


def check_class(digit, class_name) -> int | str | None:
    """The class asked for, by index (a digit) or by name (--class); not both."""
    if digit is not None and class_name is not None:
        raise BadValue("{class_name} and {digit} both choose a class: give one")
    if class_name is not None:
        if not isinstance(class_name, str):
            raise BadType(f"class_name must be a text, got {class_name!r}")
        return class_name
    return digit if digit is None or isinstance(digit, str) else check_int("digit", digit, 0)


@dataclass
class Drawing(Source):
    """`generate`: new images as a grid or an array."""
    n: int = option(16, "How many images to draw.", "drawing")
    out: str | None = option(None, "A .png grid (near-square; a row per class when --n is a multiple of the classes) "
                             "or an .npy (n, channels, height, width) float array in [0, 1].", "drawing",
                             default_text="a new samples/generated_<time>.png")
    nrow: int | None = option(None, "Images per row of the grid.", "drawing", default_text="near-square")
    seed: int | None = seed_field()
    digit: int | None = digit_field()
    class_name: str | None = class_field()
    min_confidence: float = option(0.9, "Classifier confidence needed to keep a sample (unconditional --digit).",
                                   "drawing")
    check: float = check_field("drawing")
    spread: float = spread_field("drawing")
    force: bool = option(False, "Replace an --out file that an earlier generate or interpolate drew.", "drawing")

    def __post_init__(self):
        super().__post_init__()
        self.n = check_int("n", self.n, 1, counted=True)
        self.nrow = None if self.nrow is None else check_int("nrow", self.nrow, 1, counted=True)
        self.seed = check_seed("seed", self.seed)
        self.digit, self.class_name = check_class(self.digit, self.class_name), None
        check_confidence(self.min_confidence)
        self.check = check_check(self.check)
        self.spread = check_spread(self.spread)
        if self.out is not None:
            self.out = check_drawing_name(self.out)


@dataclass
class Export(Source):
    """`export`: a labelled dataset of generated images in a folder."""
    n: int = option(60_000, "How many images to write.", "export")
    out: str | None = option(None, "The folder to write.", "export", default_text="samples/export_<time>")
    format: str = option("idx", "Image files: png (one file each), npy (one array) or idx (MNIST's own format, "
                         "28x28 grey only).", "export", choices=("png", "npy", "idx"))
    seed: int | None = seed_field()
    digit: int | None = digit_field()
    class_name: str | None = class_field()
    min_confidence: float = option(0.9, "Classifier confidence needed to keep a sample (unconditional --digit).",
                                   "export")
    check: float = check_field("export")
    spread: float = spread_field("export")
    force: bool = option(False, "Replace an earlier export at --out (only an export, and only once the new one is "
                         "complete).", "export")

    def __post_init__(self):
        super().__post_init__()
        self.n = check_int("n", self.n, 1, MAX_EXPORT)
        self.seed = check_seed("seed", self.seed)
        self.digit, self.class_name = check_class(self.digit, self.class_name), None
        check_confidence(self.min_confidence)
        self.check = check_check(self.check)
        self.spread = check_spread(self.spread)
        check_choice("format", self.format, Export)
        check_folder_name("out", self.out)
        if self.out is not None and Path(self.out).suffix.lower() in (".png", ".npy", ".csv", ".json", ".pt", ".pth"):
            raise BadValue(f"{{out}} {self.out} names a file, but an export is a folder of files: name a folder, "
                           f"such as synth/")


MAX_EXPORT = 10_000_000  # 7.8 GB of idx images; more is a mistake more often than a wish
MAX_GRID = 10_000  # images in one picture


@dataclass
class Walk(Source):
    """`interpolate`: rows of images morphing between random points of the latent space."""
    rows: int = option(8, "Number of walks, one per row.", "walk")
    steps: int = option(10, "Images per walk, ends included.", "walk")
    method: str = option("linear", "How to walk: slerp is spherical, staying where Gaussian noise lives.", "walk",
                         choices=("linear", "slerp"))
    out: str | None = option(None, "PNG to write.", "walk", default_text="a new samples/interpolation_<time>.png")
    seed: int | None = seed_field()
    force: bool = option(False, "Replace an --out file that an earlier generate or interpolate drew.", "walk")

    def __post_init__(self):
        super().__post_init__()
        self.rows, self.steps = check_int("rows", self.rows, 1, 1000), check_int("steps", self.steps, 2, 1000)
        if self.rows * self.steps > MAX_GRID:
            raise BadValue(f"{{rows}} x {{steps}} is {self.rows * self.steps:,} images, more than one picture holds "
                           f"({MAX_GRID:,})")
        check_choice("method", self.method, Walk)
        self.seed = check_seed("seed", self.seed)
        if self.out is not None and check_drawing_name(self.out) and Path(self.out).suffix.lower() != ".png":
            raise BadValue(f"{{out}} {self.out}: interpolations are written as .png")


@dataclass
class Scoring(Source):
    """`evaluate`: scores of a generator next to the same scores of real images."""
    n: int = option(10_000, "Images to generate and score; the floor uses as many real ones.", "scoring")
    data_dir: str = option("data", "Folder with MNIST/raw/ (for MNIST models; a model of your own folders is scored "
                           "against that folder).", "scoring")
    seed: int = option(0, "Seed for the samples and for the real images of the floor.", "scoring")
    cas: bool = option(False, "Also train a classifier on n generated images and, with two seeds, on n real ones, and "
                       "compare their test accuracy (a conditional model; about a minute at n = 10,000 on 2 CPU "
                       "cores).", "scoring")
    spread: float = spread_field("scoring")
    check: float = check_field("scoring")

    def __post_init__(self):
        super().__post_init__()
        self.check = check_check(self.check)
        self.n = check_int("n", self.n, MIN_SCORED)
        self.seed = check_seed("seed", self.seed)
        self.spread = check_spread(self.spread)
        check_folder_name("data_dir", self.data_dir)


MIN_SCORED = 10  # FID needs a covariance and precision/recall more than 3 neighbours


@dataclass
class ClassifierRun:
    """`train-classifier`: the MNIST classifier that evaluate measures in."""
    data_dir: str = option("data", "Folder with MNIST/raw/ (downloaded there if missing).", "classifier")
    out: str = option("checkpoints/mnist_classifier.pt", "Where to save the weights; the shipped "
                      "assets/mnist_classifier.pt is never replaced.", "classifier")
    epochs: int = option(8, "Passes over the 60,000 training images (about 10 s each on 2 CPU cores).", "classifier")
    seed: int = option(0, "Random seed (weights, shuffling).", "classifier")
    device: str = option("auto", DEVICE_HELP, "classifier")
    force: bool = option(False, "Replace an existing classifier at --out (only a classifier of this tool).",
                         "classifier")

    def __post_init__(self):
        check_folder_name("data_dir", self.data_dir)
        check_folder_name("out", self.out)
        self.epochs, self.seed = check_int("epochs", self.epochs, 1, 1000), check_seed("seed", self.seed)
        check_flags(self)


# ---- checks, each naming the option it is about ----

def check_flags(options) -> None:
    """Each yes/no option of a command's dataclass is True or False: `force="no"` would read as yes."""
    for f in fields(options):
        if f.type in ("bool", bool) and not isinstance(getattr(options, f.name), bool):
            raise BadType(f"{f.name} must be True or False, got {getattr(options, f.name)!r}")


def check_int(name: str, value, minimum: int | None = None, maximum: int | None = None, counted: bool = False) -> int:
    """`value` as a Python int in [minimum, maximum] (a bool or a float is refused, not rounded; numpy's and torch's
    integers are taken). `counted`: the message says "at least 1" rather than "a positive number"."""
    try:
        whole = operator.index(value) if not isinstance(value, bool) else None
    except TypeError:
        whole = None
    if whole is None:
        raise BadType(f"{name} must be a whole number, got {value!r} ({type(value).__name__})")
    if minimum is not None and maximum is not None and not minimum <= whole <= maximum:
        raise BadValue(f"{{{name}}} must be between {minimum:,} and {maximum:,}, got {whole}")
    if minimum is not None and whole < minimum:
        least = "a positive number" if minimum == 1 and not counted else f"at least {minimum}"
        raise BadValue(f"{{{name}}} must be {least}, got {whole}")
    if maximum is not None and whole > maximum:
        raise BadValue(f"{{{name}}} must be at most {maximum:,}, got {whole}")
    return whole


def check_seed(name: str, seed) -> int | None:
    return None if seed is None else check_int(name, seed, 0, MAX_SEED)


def check_choice(name: str, value, owner) -> None:
    choices = next(f.metadata["choices"] for f in fields(owner) if f.name == name)
    if value not in choices:
        raise BadValue(f"unknown {{{name}}} {value!r}: choose one of {', '.join(map(str, choices))}")


def check_folder_name(name: str, value) -> None:
    """A path option that is given must name something: an empty one would mean this folder by accident."""
    if value is not None and not str(value).strip():
        raise BadValue(f"{{{name}}} is empty: name a folder or file (. for this folder)")


def check_check(value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        shown = f"{value:.15g}" if isinstance(value, (int, float)) and not isinstance(value, bool) else repr(value)
        raise BadValue(f"{{check}} must be in [0, 1) (0: no check), got {shown}")
    return float(value)


def check_confidence(value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise BadValue(f"{{min_confidence}} must be in (0, 1], got {value}")


def check_drawing_name(out) -> str:
    """A drawing's file name: .png (a grid) or .npy (an array)."""
    if not isinstance(out, (str, Path)) or not str(out).strip():
        raise BadValue(f"{{out}} must be a file name ending in .png or .npy, got {out!r}")
    if Path(out).suffix.lower() not in (".png", ".npy"):
        raise BadValue(f"{{out}} {out}: use a .png (grid) or .npy (array) file name (the export command writes "
                       f"folders)")
    return str(out)


def torch_failed(e: BaseException) -> str:
    """What to say when torch itself cannot be imported (under `ulimit -v` its libraries fail to map)."""
    return (f"cannot load PyTorch ({str(e).splitlines()[0][:160]}): raise the process's memory limit (ulimit -v) or "
            f"reinstall torch")


def check_minutes(minutes) -> None:
    if minutes is not None and (isinstance(minutes, bool) or not isinstance(minutes, (int, float))
                                or not 0 < minutes < math.inf):
        raise BadValue(f"{{minutes}} must be a positive number, got {minutes}")


def check_real(name: str, value) -> float:
    """`value` as a Python float (numpy's and torch's numbers taken; a bool or a text refused; the range of each is
    validate's rule)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise BadValue(f"{{{name}}} must be a number, got {value!r}")
    return float(value)


def check_rate(name: str, value) -> float:
    value = float(value) if isinstance(value, numbers.Real) and not isinstance(value, bool) else value
    if not isinstance(value, float) or not value > 0 or not math.isfinite(value):
        raise BadValue(f"{{{name}}} must be a positive number, got {value}")
    if value > 1:  # beyond ~1e38 Adam's step does not even fit a float32
        raise BadValue(f"{{{name}}} must be at most 1 (Adam moves each weight by about this much per step; "
                       f"2e-4 is typical), got {value:g}")
    return value


# ---- a resumed run's config ----

def same_value(name: str, given, saved) -> bool:
    """Whether an option given for a resume says what the checkpoint saved (no label smoothing is a target of 1.0;
    channels auto is whatever the run settled on)."""
    if name == "label_smoothing":
        given, saved = (1.0 if v is None else v for v in (given, saved))
    return given == saved or (name == "channels" and given == "auto")


def check_unchanged(saved: Config, values: dict, checkpoint: str | Path, how: str = "leave them out when resuming"
                    ) -> dict:
    """`values` (options given for a resume of `checkpoint`; None: not given) without those that are None or say
    what it saved (its value is kept, not a float32 or an int that compares equal). Those that would change the
    networks, or what a run keeps for life (KEPT_FIELDS), are refused in one line that names them all."""
    fixed = MODEL_FIELDS + KEPT_FIELDS
    kept_value = lambda k: saved.width_of_d if k == "d_width" else getattr(saved, k)  # noqa: E731
    values = {k: v for k, v in values.items() if v is not None and not (k in fixed and same_value(k, v, kept_value(k)))}
    no_width = [n for n in ("width", "d_width") if n in values and saved.arch != "dcgan"]  # a network without one
    model, kept = ([n for n in names if n in values and n not in no_width] for names in (MODEL_FIELDS, KEPT_FIELDS))
    listed = lambda names: ", ".join("{" + n + "}" for n in names)  # noqa: E731
    why = ([f"{listed(no_width)} set{'s' * (len(no_width) == 1)} the channels of {{arch}} dcgan, and {checkpoint} "
            f"holds {{arch}} {saved.arch}, which has fixed layer sizes"] if no_width else []) + (
        [f"{listed(model)} would change the networks saved in {checkpoint}"] if model else []) + (
        [f"{listed(kept)} stay as {checkpoint} saved them for the rest of its run"] if kept else [])
    if why:
        raise BadValue(f"{' and '.join(why)}: {how} (start a new run in another {{checkpoint_dir}} to train a "
                       f"different model or with other values)")
    return values


def resumed(saved: Config, overrides: dict, checkpoint: str | Path) -> Config:
    """The config a resume of `checkpoint` trains with: the saved one, changed only by `overrides` (the options the
    user gave; `lr` sets both rates unless one is given). Options that would change the networks, and those a run
    keeps for life (KEPT_FIELDS), are refused. The run writes where the checkpoint now is, unless --checkpoint-dir
    says otherwise, so a moved run folder resumes in place; its sample grids move along when they lived inside the
    checkpoint folder."""
    overrides = check_unchanged(saved, overrides, checkpoint)
    lr = overrides.pop("lr", None)
    if lr is not None:
        check_rate("lr", lr)
        for name in ("lr_g", "lr_d"):
            overrides.setdefault(name, lr)
    config = {**asdict(saved), **overrides}
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


def unreadable_advice(e: OSError) -> str:
    """What to do about a folder of pictures that cannot be read, where the error says."""
    if isinstance(e, PermissionError):
        return ": give yourself the right to read it"
    if isinstance(e, FileNotFoundError):
        return ": it has gone; put it back where it was, or train a new run"
    return ""


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
        raise GANError(f"cannot read {e.filename or root} ({e.strerror or e})" + unreadable_advice(e)) from None
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
