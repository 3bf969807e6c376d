"""Command line for the MNIST GAN: a thin Typer skin over gan.py.

    python cli.py train --epochs 10 --data-dir ./data
    python cli.py resume checkpoints/gan_epoch_5.pth --epochs 20
    python cli.py generate --n 16
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Train a GAN on MNIST and draw new handwritten digits.")

# gan.py imports torch (seconds), so each command imports it when it runs and `--help` answers at once.

Arch = Annotated[str, typer.Option(help="Network: mlp, mlp-bn (BatchNorm, no biases), dcgan, dcgan-tf (TensorFlow tutorial's).")]
Epochs = Annotated[int, typer.Option(help="Total epochs to train (on resume: the epoch to stop at).")]
BatchSize = Annotated[int, typer.Option(help="Images per batch.")]
Lr = Annotated[float, typer.Option(help="Adam learning rate for both networks.")]
LrG = Annotated[Optional[float], typer.Option(help="Learning rate for G only (overrides --lr).")]
LrD = Annotated[Optional[float], typer.Option(help="Learning rate for D only (overrides --lr).")]
Beta1 = Annotated[float, typer.Option(help="Adam beta1 (0.5 as in the DCGAN paper).")]
LatentDim = Annotated[int, typer.Option(help="Size of the noise vector z.")]
Width = Annotated[int, typer.Option(help="dcgan: channels of D's first layer; compute grows with its square (paper: 64).")]
GAct = Annotated[str, typer.Option(help="mlp: generator activation, relu or leaky.")]
DDropout = Annotated[float, typer.Option(help="mlp/mlp-bn: dropout after each hidden layer of D (0: none).")]
Smoothing = Annotated[Optional[float], typer.Option(help="Target for real labels in D's loss, e.g. 0.9 (default: off, 1.0).")]
Seed = Annotated[int, typer.Option(help="Random seed (weights, noise, shuffling).")]
Device = Annotated[str, typer.Option(help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps.")]
DataDir = Annotated[Path, typer.Option(help="Folder with MNIST/raw/ (downloaded there if missing).")]
CheckpointDir = Annotated[Path, typer.Option(help="Where checkpoints, metrics, plots and the report go.")]
SampleDir = Annotated[Path, typer.Option(help="Where the per-epoch sample grids go.")]
SaveEvery = Annotated[int, typer.Option(help="Save a checkpoint every N epochs (and always at the end).")]
SampleEvery = Annotated[int, typer.Option(help="Write a sample grid every N epochs (and always at the end).")]
KeepLast = Annotated[int, typer.Option(help="Epoch checkpoints to keep, newest first (0: keep all).")]
Tensorboard = Annotated[bool, typer.Option(help="Also log to TensorBoard (needs `pip install tensorboard`).")]
Resume = Annotated[Optional[Path], typer.Option(help="Continue from this checkpoint with its saved config.")]
GeneratorFile = Annotated[Optional[Path], typer.Option(help="Checkpoint or exported generator (default: newest in --checkpoint-dir).")]
Conditional = Annotated[bool, typer.Option(help="G and D see each image's label, and generate --digit draws that digit; --no-conditional learns digits without labels (a blurrier, slower start: see README).")]
Dataset = Annotated[str, typer.Option(help="mnist, fashion-mnist or kmnist (28x28, through torchvision).")]
Ema = Annotated[float, typer.Option(help="Sample from a moving average of G's weights with this decay (0: off).")]
EvalEvery = Annotated[int, typer.Option(help="Every N epochs add FID, coverage, precision/recall to the record (0: off).")]
EvalN = Annotated[int, typer.Option(help="Samples per --eval-every evaluation.")]
Minutes = Annotated[Optional[float], typer.Option(help="Stop after this many minutes, saving a checkpoint to resume from.")]

def fail(message: str, code: int = 1):
    typer.echo(f"Error: {message}", err=True)
    raise typer.Exit(code)


def run_gan(action):
    """Run `action`, turning the GAN's user errors into one line on stderr and a non-zero exit."""
    import gan
    try:
        return action(gan)
    except gan.TrainingInterrupted as e:
        typer.echo(str(e), err=True)
        raise typer.Exit(130)
    except gan.GANError as e:
        fail(str(e))
    except KeyboardInterrupt:
        fail("interrupted", 130)


def given(ctx: typer.Context, name: str) -> bool:
    """Whether the user typed this option (as opposed to it taking its default)."""
    source = ctx.get_parameter_source(name)
    return source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP")


def start_training(ctx: typer.Context, options: dict, resume: Path | None, minutes: float | None):
    def action(gan):
        options["data_dir"], options["checkpoint_dir"], options["sample_dir"] = (
            str(options["data_dir"]), str(options["checkpoint_dir"]), str(options["sample_dir"]))
        if resume is None:
            dataset = options.get("dataset", "mnist")
            for name in ("checkpoint_dir", "sample_dir"):  # other datasets get their own folders by default
                if dataset != "mnist" and not given(ctx, name):
                    options[name] = str(Path(options[name]) / dataset)
            return gan.train(gan.Config(**options), minutes=minutes)
        state = gan.load_checkpoint(resume)
        saved = state["config_obj"]
        changed = [f"--{name.replace('_', '-')}" for name in gan.MODEL_FIELDS  # these define the saved networks
                   if given(ctx, name) and options[name] != getattr(saved, name)]
        if changed:
            fail(f"{', '.join(changed)} would change the networks saved in {resume}: leave them out when resuming "
                 f"(start a new run with another --checkpoint-dir to train a different model)")
        overrides = {name: value for name, value in options.items() if given(ctx, name) and name not in gan.MODEL_FIELDS}
        cfg = gan.Config(**{**gan.asdict(saved), **overrides})
        return gan.train(cfg, resume=resume, minutes=minutes)
    run_gan(action)


@app.command()
def train(ctx: typer.Context, epochs: Epochs = 16, arch: Arch = "dcgan", batch_size: BatchSize = 64, lr: Lr = 2e-4,
          lr_g: LrG = None, lr_d: LrD = None, beta1: Beta1 = 0.5, latent_dim: LatentDim = 100, width: Width = 16,
          g_act: GAct = "relu", d_dropout: DDropout = 0.0, label_smoothing: Smoothing = None, seed: Seed = 0,
          device: Device = "auto", data_dir: DataDir = Path("data"), checkpoint_dir: CheckpointDir = Path("checkpoints"),
          sample_dir: SampleDir = Path("samples"), save_every: SaveEvery = 1, sample_every: SampleEvery = 1,
          keep_last: KeepLast = 3, tensorboard: Tensorboard = False, conditional: Conditional = True,
          dataset: Dataset = "mnist", ema: Ema = 0.999, eval_every: EvalEvery = 0, eval_n: EvalN = 2000,
          minutes: Minutes = None, resume: Resume = None):
    """Train a GAN on MNIST, saving checkpoints and a sample grid every epoch."""
    options = {k: v for k, v in locals().items() if k not in ("ctx", "resume", "minutes")}
    start_training(ctx, options, resume, minutes)


@app.command()
def resume(ctx: typer.Context, checkpoint: Annotated[Path, typer.Argument(help="A gan_epoch_N.pth checkpoint.")],
           epochs: Epochs = 16, batch_size: BatchSize = 64, lr: Lr = 2e-4, lr_g: LrG = None, lr_d: LrD = None,
           device: Device = "auto", data_dir: DataDir = Path("data"),
           checkpoint_dir: CheckpointDir = Path("checkpoints"), sample_dir: SampleDir = Path("samples"),
           save_every: SaveEvery = 1, sample_every: SampleEvery = 1, keep_last: KeepLast = 3,
           tensorboard: Tensorboard = False, eval_every: EvalEvery = 0, eval_n: EvalN = 2000,
           minutes: Minutes = None):
    """Continue training from a checkpoint with its saved config (--epochs sets where to stop)."""
    options = {k: v for k, v in locals().items() if k not in ("ctx", "checkpoint", "minutes")}
    start_training(ctx, options, checkpoint, minutes)


@app.command()
def generate(n: Annotated[int, typer.Option(help="How many digits to draw.")] = 16,
             checkpoint: GeneratorFile = None,
             checkpoint_dir: CheckpointDir = Path("checkpoints"),
             out: Annotated[Optional[Path], typer.Option(help="Output: a .png grid, an .npy (n, 1, 28, 28) float array in [0, 1], or with --format a folder.")] = None,
             seed: Annotated[Optional[int], typer.Option(help="Seed for repeatable samples.")] = None,
             nrow: Annotated[Optional[int], typer.Option(help="Images per row of the grid (default: square).")] = None,
             digit: Annotated[Optional[int], typer.Option(help="Only this digit: a conditional model draws it; for an unconditional one, samples are kept only when the shipped classifier calls them this digit with --min-confidence (rejection sampling).")] = None,
             min_confidence: Annotated[float, typer.Option(help="Classifier confidence needed to keep a sample for --digit.")] = 0.9,
             fmt: Annotated[Optional[str], typer.Option("--format", help="Bulk export to the folder --out as png (one file each), npy or idx (MNIST's format), with labels.csv.")] = None,
             force: Annotated[bool, typer.Option(help="With --format: replace an existing --out folder.")] = False,
             device: Device = "auto"):
    """Draw new digits from a trained generator into a PNG grid, an .npy array, or a labelled dataset folder."""
    def action(gan):
        if nrow is not None and nrow <= 0:
            fail(f"--nrow must be at least 1, got {nrow}")
        if not 0 < min_confidence <= 1:
            fail(f"--min-confidence must be in (0, 1], got {min_confidence}")
        if fmt is not None:
            return export(gan, n, checkpoint or newest_checkpoint(checkpoint_dir), out, fmt, seed, digit,
                          min_confidence, force, device)
        target = out or Path("samples") / f"generated_{time_stamp()}.png"
        if target.suffix.lower() not in (".png", ".npy"):
            fail(f"--out {target}: use a .png (grid) or .npy (array) file name, or --format png|npy|idx for a folder")
        gan.check_sample_count(n, as_grid=target.suffix.lower() == ".png")
        path = checkpoint or newest_checkpoint(checkpoint_dir)
        G, cfg = gan.load_generator(path, device=gan.resolve_device(device))
        if digit is not None and not G.n_classes and cfg.dataset != "mnist":
            fail("--digit on an unconditional model needs the MNIST classifier: "
                 "train a conditional model (the default, without --no-conditional)")
        ensure_parent(target)
        gan.generate_and_plot_samples(G, n=n, nrow=nrow, seed=seed, out=target, show=False, digit=digit,
                                      min_confidence=min_confidence)
        what = f"{digit}s" if digit is not None else "digits" if cfg.dataset == "mnist" else f"{cfg.dataset} images"
        typer.echo(f"wrote {n} {what} from {path} to {target}")
    run_gan(action)


def export(gan, n, path, out, fmt, seed, digit, min_confidence, force, device):
    from rich.progress import Progress

    G, cfg = gan.load_generator(path, device=gan.resolve_device(device))
    target = out or Path("samples") / f"export_{time_stamp()}"
    with Progress() as progress:
        task = progress.add_task(f"writing {fmt}", total=n)
        gan.export_samples(G, cfg, n, target, fmt, seed=seed, digit=digit, min_confidence=min_confidence,
                           force=force, progress=lambda k: progress.advance(task, k))
    typer.echo(f"wrote {n} images with labels from {path} to {target}/ ({fmt})")


@app.command()
def interpolate(checkpoint: GeneratorFile = None,
                checkpoint_dir: CheckpointDir = Path("checkpoints"),
                rows: Annotated[int, typer.Option(help="Number of walks, one per row.")] = 8,
                steps: Annotated[int, typer.Option(help="Images per walk, ends included.")] = 10,
                method: Annotated[str, typer.Option(help="linear, or slerp (spherical: stays where Gaussian noise lives).")] = "linear",
                out: Annotated[Optional[Path], typer.Option(help="PNG to write (default: samples/interpolation_<time>.png).")] = None,
                seed: Annotated[Optional[int], typer.Option(help="Seed for repeatable walks.")] = None,
                device: Device = "auto"):
    """Draw digits morphing smoothly between random points of the latent space."""
    def action(gan):
        path = checkpoint or newest_checkpoint(checkpoint_dir)
        target = out or Path("samples") / f"interpolation_{time_stamp()}.png"
        if target.suffix.lower() != ".png":
            fail(f"--out {target}: interpolations are written as .png")
        G, cfg = gan.load_generator(path, device=gan.resolve_device(device))
        images = gan.interpolate(G, rows=rows, steps=steps, method=method, seed=seed)
        ensure_parent(target)
        gan.save_grid(images, target, nrow=steps)
        typer.echo(f"wrote {rows} {method} walks of {steps} steps from {path} to {target}")
    run_gan(action)


@app.command("train-classifier")
def train_classifier(data_dir: DataDir = Path("data"),
                     out: Annotated[Optional[Path], typer.Option(help="Where to save the weights (default: assets/mnist_classifier.pt, the file `evaluate` uses).")] = None,
                     epochs: Annotated[int, typer.Option(help="Passes over the 60,000 training images (about a minute each on a CPU).")] = 8,
                     seed: Seed = 0, device: Device = "auto"):
    """Train the MNIST classifier that `evaluate` measures in, and report its test accuracy."""
    def action(gan):
        import evaluate as ev
        ev.train_classifier(data_dir, out or ev.WEIGHTS, epochs=epochs, seed=seed, device=device, log=typer.echo)
    run_gan(action)


@app.command()
def evaluate(checkpoint: Annotated[Optional[Path], typer.Argument(help="Checkpoint or exported generator (default: newest in --checkpoint-dir).")] = None,
             n: Annotated[int, typer.Option(help="Digits to generate and score; the floor uses as many real ones.")] = 10_000,
             data_dir: DataDir = Path("data"), checkpoint_dir: CheckpointDir = Path("checkpoints"),
             seed: Annotated[int, typer.Option(help="Seed for the samples and for the real images of the floor.")] = 0,
             as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON only.")] = False,
             device: Device = "auto"):
    """Score a generator in an MNIST classifier's feature space: FID, Inception Score, class coverage, precision and
    recall, next to the same numbers for real digits (the floor a perfect generator would reach)."""
    def action(gan):
        import json
        import time
        import evaluate as ev
        if n < ev.MIN_SAMPLES:
            fail(f"--n must be at least {ev.MIN_SAMPLES} (FID needs a covariance, precision/recall {ev.K}+1 neighbours), got {n}")
        gan.check_sample_count(n, as_grid=False)
        path = checkpoint or newest_checkpoint(checkpoint_dir)
        dev = gan.resolve_device(device)
        G, cfg = gan.load_generator(path, device=dev)
        if cfg.dataset != "mnist":
            fail(f"{path} draws {cfg.dataset}: evaluate measures MNIST digits with an MNIST classifier")
        t0 = time.perf_counter()
        scores = ev.evaluate_generator(G, n, data_dir, seed=seed, device=dev)
        floor = ev.real_floor(data_dir, n, seed=seed, device=dev)
        agreement = ev.label_agreement(G, max(100, n // 10), seed, dev) if G.n_classes else None
        seconds = time.perf_counter() - t0
        if as_json:
            typer.echo(json.dumps({"checkpoint": str(path), "n": n, "seed": seed, "generator": scores,
                                   "real_floor": floor, "label_agreement": agreement, "seconds": round(seconds, 2)},
                                  indent=1))
            return
        print_scores(scores, floor, f"{path}: {n:,} samples vs the MNIST test set, {seconds:.1f}s")
        if agreement:
            typer.echo("classifier agrees with the asked-for digit: " +
                       "  ".join(f"{d}: {share:.1%}" for d, share in agreement.items()))
    run_gan(action)


def print_scores(scores: dict, floor: dict, title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(caption="Precision is blind to noise-like samples in this feature space: read it with FID and recall.",
                  caption_justify="left")
    for column in ("metric", "generator", "real floor"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    rows = [("FID (lower is better)", "fid", "{:.2f}"), ("Inception Score (max 10)", "inception_score", "{:.2f}"),
            ("class coverage (entropy, 1 = even)", "coverage_entropy", "{:.3f}"),
            ("precision (quality)", "precision", "{:.3f}"), ("recall (variety)", "recall", "{:.3f}"),
            *((f"share of digit {d}", f"share_{d}", "{:.1%}") for d in range(10)), ("images", "n", "{:,}")]
    for label, key, form in rows:
        table.add_row(label, form.format(scores[key]), form.format(floor[key]))
    console = Console()
    console.print(title, markup=False, highlight=False)
    console.print(table)


def newest_checkpoint(folder: Path) -> Path:
    found = [p for p in folder.glob("*.pth") if p.name.startswith(("gan_epoch_", "generator_"))] if folder.is_dir() else []
    if not found:
        fail(f"no checkpoint in {folder}/: train first (python cli.py train) or pass --checkpoint PATH")
    return max(found, key=lambda p: p.stat().st_mtime)


def ensure_parent(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        fail(f"cannot create {path.parent} ({e.strerror}): choose another --out")


def time_stamp() -> str:
    import time
    return time.strftime("%Y%m%d-%H%M%S")


if __name__ == "__main__":
    app()
