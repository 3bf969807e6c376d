"""Command line for the MNIST GAN: a thin Typer skin over gan.py (and evaluate.py, digits.py).

    python cli.py train --epochs 10 --data-dir ./data
    python cli.py resume checkpoints/gan_epoch_5.pth --epochs 20
    python cli.py generate --n 16

Each command turns its options into a call of one function and draws the progress; the GAN's user errors become
one line on stderr and a non-zero exit.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Train a GAN on MNIST and draw new handwritten digits.")

# gan.py imports torch (seconds), so each command imports it when it runs and `--help` answers at once.


def shared(kind, help: str):
    """An option train and resume share, declared once: train's form, and resume's, whose default (None) means
    "the value saved in the checkpoint", so that its --help shows no default that would not apply."""
    return (Annotated[kind, typer.Option(help=help)],
            Annotated[Optional[kind], typer.Option(help=f"{help} Default: the saved value.", show_default=False)])


Epochs, EpochsR = shared(int, "Total epochs to train (on resume: the epoch to stop at).")
BatchSize, BatchSizeR = shared(int, "Images per batch.")
LrG, LrGR = shared(Optional[float], "Adam learning rate of G (default: 2e-4 with labels, 8e-4 with --no-conditional).")
LrD, LrDR = shared(Optional[float], "Adam learning rate of D (default: 2e-4 with labels, 8e-4 with --no-conditional).")
R1, R1R = shared(Optional[float], "Weight of the R1 penalty on D's gradient at real images, which speeds up label-free "
                                  "training; 0: off (default: 0 with labels, 1 with --no-conditional).")
Device, DeviceR = shared(str, "auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps.")
DataDir, DataDirR = shared(Path, "Folder with MNIST/raw/ (downloaded there if missing).")
CheckpointDir, CheckpointDirR = shared(Path, "Where checkpoints, metrics, plots and the report go.")
SampleDir, SampleDirR = shared(Path, "Where the per-epoch sample grids go.")
SaveEvery, SaveEveryR = shared(int, "Save a checkpoint every N epochs (and always at the end).")
SampleEvery, SampleEveryR = shared(int, "Write a sample grid every N epochs (and always at the end).")
KeepLast, KeepLastR = shared(int, "Epoch checkpoints to keep, newest first (0: keep all).")
Tensorboard, TensorboardR = shared(bool, "Also log to TensorBoard (needs `pip install tensorboard`).")
EvalEvery, EvalEveryR = shared(int, "Every N epochs add FID, coverage, precision/recall to the record (0: off).")
EvalN, EvalNR = shared(int, "Samples per --eval-every evaluation.")
Lr = Annotated[Optional[float], typer.Option(help="Adam learning rate for both networks: sets --lr-g and --lr-d.")]
Minutes = Annotated[Optional[float], typer.Option(help="Stop after this many minutes, saving a checkpoint to resume from.")]
Seed = Annotated[int, typer.Option(help="Random seed (weights, noise, shuffling).")]
GeneratorFile = Annotated[Optional[Path], typer.Option(help="Checkpoint or exported generator (default: newest in --checkpoint-dir).")]
Digit = Annotated[Optional[int], typer.Option(help="Only this digit: a conditional model draws it; for an unconditional one, samples are kept only when the shipped classifier calls them this digit with --min-confidence (rejection sampling).")]
DrawFrom = Annotated[Optional[Path], typer.Option("--checkpoint-dir", show_default=False, help="Folder whose newest checkpoint draws (default: checkpoints/, and failing that the shipped model).")]
MinConfidence = Annotated[float, typer.Option(help="Classifier confidence needed to keep a sample for --digit.")]


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


class TrainingBars:
    """Rich progress for gan.train: a bar for the epochs and one for the steps of the epoch in progress, fed by
    the loop's on_step hook; the loop's per-epoch lines print above them."""

    def __init__(self):
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                   TimeRemainingColumn)
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                                 TextColumn("{task.fields[stats]}"))
        self.console, self.epochs_bar, self.steps_bar, self.epoch = self.progress.console, None, None, None

    def on_step(self, epoch: int, epochs: int, step: int, steps: int, stats: str) -> None:
        if self.epochs_bar is None:
            self.epochs_bar = self.progress.add_task("epochs", total=epochs, completed=epoch - 1, stats="")
        if epoch != self.epoch:
            self.steps_bar = self.progress.add_task(f"epoch {epoch}", total=steps, stats="")
            self.epoch = epoch
        self.progress.update(self.steps_bar, completed=step, stats=stats)
        if step == steps:
            self.progress.remove_task(self.steps_bar)
            self.progress.update(self.epochs_bar, completed=epoch)

    def __enter__(self):
        self.progress.start()
        return self

    def __exit__(self, *exc):
        self.progress.stop()


def start_training(overrides: dict, resume: Path | None, minutes: float | None, lr: float | None):
    """Train anew from the options, or resume `resume` with only the options the user gave changed."""
    def action(gan):
        import evaluate
        if lr is not None:  # --lr sets both rates, unless one is given on its own
            gan.check_rate("lr", lr)
            for name in ("lr_g", "lr_d"):
                if overrides.get(name) is None:
                    overrides[name] = lr
        for name in ("data_dir", "checkpoint_dir", "sample_dir"):
            if name in overrides:
                overrides[name] = str(overrides[name])
        with TrainingBars() as bars:
            hooks = dict(minutes=minutes, console=bars.console, on_step=bars.on_step,
                         evaluate=evaluate.evaluate_during_training)
            if resume is not None:
                return gan.resume(resume, overrides, **hooks)
            return gan.train(gan.Config(**overrides), **hooks)
    run_gan(action)


def given(ctx: typer.Context, options: dict) -> dict:
    """The options the user typed (as opposed to those that took their default)."""
    def typed(name):
        source = ctx.get_parameter_source(name)
        return source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP")
    return {name: value for name, value in options.items() if typed(name)}


@app.command()
def train(ctx: typer.Context, epochs: Epochs = 16,
          arch: Annotated[str, typer.Option(help="Network: mlp, mlp-bn (BatchNorm, no biases), dcgan, dcgan-tf (TensorFlow tutorial's).")] = "dcgan",
          batch_size: BatchSize = 64, lr: Lr = None, lr_g: LrG = None, lr_d: LrD = None, r1: R1 = None,
          beta1: Annotated[float, typer.Option(help="Adam beta1 (0.5 as in the DCGAN paper).")] = 0.5,
          latent_dim: Annotated[int, typer.Option(help="Size of the noise vector z.")] = 100,
          width: Annotated[int, typer.Option(help="dcgan only: channels of D's first layer; compute grows with its square (paper: 64).")] = 16,
          g_act: Annotated[str, typer.Option(help="mlp only: generator activation, relu or leaky.")] = "relu",
          d_dropout: Annotated[float, typer.Option(help="mlp/mlp-bn only: dropout after each hidden layer of D (0: none).")] = 0.0,
          label_smoothing: Annotated[Optional[float], typer.Option(help="Target for real labels in D's loss, e.g. 0.9 (default: off, 1.0).")] = None,
          seed: Seed = 0, device: Device = "auto", data_dir: DataDir = Path("data"),
          checkpoint_dir: CheckpointDir = Path("checkpoints"), sample_dir: SampleDir = Path("samples"),
          save_every: SaveEvery = 1, sample_every: SampleEvery = 1, keep_last: KeepLast = 3,
          tensorboard: Tensorboard = False,
          conditional: Annotated[bool, typer.Option(help="G and D see each image's label, and generate --digit draws that digit; --no-conditional learns digits without labels (see README).")] = True,
          dataset: Annotated[str, typer.Option(help="mnist, fashion-mnist or kmnist (28x28, through torchvision); other datasets get their own default folders.")] = "mnist",
          ema: Annotated[float, typer.Option(help="Sample from a moving average of G's weights with this decay (0: off).")] = 0.999,
          eval_every: EvalEvery = 0, eval_n: EvalN = 2000, minutes: Minutes = None,
          resume: Annotated[Optional[Path], typer.Option(help="Continue from this checkpoint with its saved config (as the resume command).")] = None):
    """Train a GAN on MNIST, saving checkpoints and a sample grid every epoch."""
    options = {k: v for k, v in locals().items() if k not in ("ctx", "resume", "minutes", "lr")}
    if resume:
        return start_training(given(ctx, options), resume, minutes, lr)
    for name in ("checkpoint_dir", "sample_dir"):  # other datasets get their own folders by default
        if dataset != "mnist" and name not in given(ctx, options):
            options[name] = options[name] / dataset
    start_training(options, None, minutes, lr)


@app.command()
def resume(checkpoint: Annotated[Path, typer.Argument(help="A gan_epoch_N.pth checkpoint.")],
           epochs: EpochsR = None, batch_size: BatchSizeR = None, lr: Lr = None, lr_g: LrGR = None,
           lr_d: LrDR = None, r1: R1R = None, device: DeviceR = None, data_dir: DataDirR = None,
           checkpoint_dir: CheckpointDirR = None,
           sample_dir: SampleDirR = None, save_every: SaveEveryR = None, sample_every: SampleEveryR = None,
           keep_last: KeepLastR = None, tensorboard: TensorboardR = None, eval_every: EvalEveryR = None,
           eval_n: EvalNR = None, minutes: Minutes = None):
    """Continue training from a checkpoint. Every option defaults to the value saved in it: give only what should
    change (--epochs to go further, a learning rate, the folders)."""
    options = {k: v for k, v in locals().items() if k not in ("checkpoint", "minutes", "lr") and v is not None}
    start_training(options, checkpoint, minutes, lr)


def check_draw_options(nrow: int | None, min_confidence: float) -> None:
    if nrow is not None and nrow <= 0:
        fail(f"--nrow must be at least 1, got {nrow}")
    if not 0 < min_confidence <= 1:
        fail(f"--min-confidence must be in (0, 1], got {min_confidence}")


@app.command()
def generate(n: Annotated[int, typer.Option(help="How many digits to draw.")] = 16,
             checkpoint: GeneratorFile = None,
             checkpoint_dir: DrawFrom = None,
             out: Annotated[Optional[Path], typer.Option(help="Output: a .png grid (one row per digit for a conditional model) or an .npy (n, 1, 28, 28) float array in [0, 1].")] = None,
             seed: Annotated[Optional[int], typer.Option(help="Seed for repeatable samples.")] = None,
             nrow: Annotated[Optional[int], typer.Option(help="Images per row of the grid (default: square, or one row per digit).")] = None,
             digit: Digit = None, min_confidence: MinConfidence = 0.9,
             fmt: Annotated[Optional[str], typer.Option("--format", help="Same as the export command: a labelled dataset folder at --out.")] = None,
             force: Annotated[bool, typer.Option(help="With --format: replace an existing --out folder.")] = False,
             device: Device = "auto"):
    """Draw new digits from a trained generator into a PNG grid or an .npy array."""
    if fmt is not None:  # the older spelling of `export`
        return export(n, checkpoint, checkpoint_dir, out, fmt, seed, digit, min_confidence, force, device)
    check_draw_options(nrow, min_confidence)

    def action(gan):
        import digits
        from runfiles import default_output
        target = out or default_output("generated", ".png")
        if target.suffix.lower() not in (".png", ".npy"):
            fail(f"--out {target}: use a .png (grid) or .npy (array) file name, or the export command for a folder")
        gan.generate_and_plot_samples(checkpoint, n=n, nrow=nrow, seed=seed, out=target, show=False, digit=digit,
                                      sampler=digits.rejection_sampler(min_confidence), checkpoint_dir=checkpoint_dir,
                                      device=device)
        source = f" from {checkpoint}" if checkpoint else ""
        typer.echo(f"wrote {n} {f'{digit}s' if digit is not None else 'images'}{source} to {target}")
    run_gan(action)


@app.command("export")
def export(n: Annotated[int, typer.Option(help="How many images to write.")] = 60_000,
           checkpoint: GeneratorFile = None, checkpoint_dir: DrawFrom = None,
           out: Annotated[Optional[Path], typer.Option(help="The folder to write (default: samples/export_<time>).")] = None,
           fmt: Annotated[str, typer.Option("--format", help="png (one file each), npy or idx (MNIST's own format).")] = "idx",
           seed: Annotated[Optional[int], typer.Option(help="Seed for a repeatable dataset.")] = None,
           digit: Digit = None, min_confidence: MinConfidence = 0.9,
           force: Annotated[bool, typer.Option(help="Replace an existing --out folder (only once the new one is complete).")] = False,
           device: Device = "auto"):
    """Write a labelled dataset of generated digits to a folder: images as png, npy or idx, and labels.csv with
    each label and the shipped classifier's confidence in it."""
    check_draw_options(None, min_confidence)

    def action(gan):
        import digits
        from rich.progress import Progress
        from runfiles import default_output
        path, note = (checkpoint, "") if checkpoint else gan.find_generator(checkpoint_dir)
        G, cfg = gan.load_generator(path, device=gan.resolve_device(device))
        target = out or default_output("export", "")
        with Progress() as progress:
            task = progress.add_task(f"writing {fmt}", total=n)
            digits.export_samples(G, cfg, n, target, fmt, seed=seed, digit=digit, min_confidence=min_confidence,
                                  force=force, progress=lambda k: progress.advance(task, k))
        typer.echo(f"wrote {n} images with labels from {path} to {target}/ ({fmt})" + (f"; {note}" if note else ""))
    run_gan(action)


@app.command()
def interpolate(checkpoint: GeneratorFile = None,
                checkpoint_dir: DrawFrom = None,
                rows: Annotated[int, typer.Option(help="Number of walks, one per row.")] = 8,
                steps: Annotated[int, typer.Option(help="Images per walk, ends included.")] = 10,
                method: Annotated[str, typer.Option(help="linear, or slerp (spherical: stays where Gaussian noise lives).")] = "linear",
                out: Annotated[Optional[Path], typer.Option(help="PNG to write (default: samples/interpolation_<time>.png).")] = None,
                seed: Annotated[Optional[int], typer.Option(help="Seed for repeatable walks.")] = None,
                device: Device = "auto"):
    """Draw digits morphing smoothly between random points of the latent space."""
    def action(gan):
        from runfiles import default_output, save_grid
        path, note = (checkpoint, "") if checkpoint else gan.find_generator(checkpoint_dir)
        target = out or default_output("interpolation", ".png")
        if target.suffix.lower() != ".png":
            fail(f"--out {target}: interpolations are written as .png")
        G, cfg = gan.load_generator(path, device=gan.resolve_device(device))
        images = gan.interpolate(G, rows=rows, steps=steps, method=method, seed=seed)
        save_grid(images, target, nrow=steps)
        typer.echo(f"wrote {rows} {method} walks of {steps} steps from {path} to {target}" + (f"; {note}" if note else ""))
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
             data_dir: DataDir = Path("data"), checkpoint_dir: DrawFrom = None,
             seed: Annotated[int, typer.Option(help="Seed for the samples and for the real images of the floor.")] = 0,
             as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON only.")] = False,
             cas: Annotated[bool, typer.Option("--cas", help="Also train a classifier on n generated digits and on n real ones and compare their MNIST test accuracy (a conditional model; under a minute at n = 10,000 on 2 CPU cores).")] = False,
             device: Device = "auto"):
    """Score a generator in an MNIST classifier's feature space: FID, Inception Score, class coverage, precision and
    recall, next to the same numbers for real digits (the floor a perfect generator would reach)."""
    def action(gan):
        import json
        import evaluate as ev
        report = ev.evaluate_file(checkpoint, n, data_dir, checkpoint_dir, seed=seed, device=gan.resolve_device(device),
                                  cas=cas)
        if as_json:
            typer.echo(json.dumps(report, indent=1))
            return
        print_scores(report["generator"], report["real_floor"],
                     f"{report['note'] or report['checkpoint']}: {n:,} samples vs the MNIST test set, "
                     f"{report['seconds']:.1f}s")
        if report["label_agreement"]:
            typer.echo("classifier agrees with the asked-for digit: " +
                       "  ".join(f"{d}: {share:.1%}" for d, share in report["label_agreement"].items()))
        if report["classification_accuracy"]:
            score = report["classification_accuracy"]
            typer.echo(f"a classifier trained on {score['n']:,} generated digits scores {score['generated']:.2%} on the "
                       f"MNIST test set; trained on as many real ones, {score['real']:.2%} (gap "
                       f"{100 * score['gap']:.2f} points)")
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


if __name__ == "__main__":
    app()
