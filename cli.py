"""Command line for the MNIST GAN: a thin Typer skin over gan.py (and evaluate.py, digits.py).

    python cli.py train --epochs 10 --data-dir ./data
    python cli.py resume checkpoints/gan_epoch_5.pth --epochs 20
    python cli.py generate --n 16

`train` and `resume` take their options from config.Config (default, help, choices and panel of each field), so
no option is declared twice. Each command turns its options into a call of one function and draws the progress;
the GAN's user errors, and Typer's own usage errors, become one line on stderr and a non-zero exit.
"""

from __future__ import annotations

import signal

if __name__ == "__main__" and hasattr(signal, "pthread_sigmask"):
    # a Ctrl-C while torch loads is swallowed mid-import and leaves numpy half loaded: the kernel holds it (and
    # SIGTERM, SIGHUP) until run_gan has imported the GAN and lets it through
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM, signal.SIGHUP})

import dataclasses
import enum
import inspect
import os
import sys
import typing
from pathlib import Path
from typing import Annotated, Optional

import typer
from typer.core import TyperGroup

try:
    from typer._click.exceptions import ClickException  # Typer 0.2x carries its own Click
except ImportError:
    from click.exceptions import ClickException

from config import DEVICES, LR_HELP, Config, help_of

# gan.py imports torch (seconds), so each command imports it when it runs and `--help` answers at once.


class OneLineErrors(TyperGroup):
    """Typer's usage errors (a bad number, an unknown option) as one line, like every other error here."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except ClickException as e:
            if type(e).__name__ == "NoArgsIsHelpError":  # the help is already printed: that is the whole answer
                sys.exit(e.exit_code)
            where = f"`{e.ctx.command_path} --help`" if getattr(e, "ctx", None) else "--help"
            typer.echo(f"Error: {e.format_message()} (see {where})", err=True)
            code = e.exit_code
        except typer.Abort:
            typer.echo("Error: aborted", err=True)
            code = 1
        if not standalone_mode:
            return code
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(cls=OneLineErrors, add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Train a GAN on MNIST and draw new handwritten digits.")


# ---- train's and resume's options, from the config ----

PANELS = {"model": "Model", "optimisation": "Optimisation", "files": "Files", "run": "Run"}
CHOICES = {}  # one Enum per field with choices, so that Typer itself checks and lists them


def choice(name: str, values) -> type[enum.Enum]:
    if name not in CHOICES:
        CHOICES[name] = enum.Enum(name, {v: v for v in values}, type=str)
    return CHOICES[name]


def config_option(f: dataclasses.Field, hint, for_resume: bool) -> inspect.Parameter:
    """A Config field as a Typer option: on resume every option defaults to None, "the value saved"."""
    kinds = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
    kind = choice(f.name, f.metadata["choices"]) if f.metadata["choices"] else kinds[0]
    nullable = for_resume or f.default is None
    info = typer.Option(help=f.metadata["help"] + (" Default: the saved value." if for_resume else ""),
                        rich_help_panel=PANELS[f.metadata["panel"]], show_default=not nullable)
    annotation = Annotated[Optional[kind] if nullable else kind, info]
    default = None if for_resume else kind(f.default) if isinstance(kind, type) and issubclass(kind, enum.Enum) else f.default
    return inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)


def extra(name: str, kind, help: str, panel: str, default=None) -> inspect.Parameter:
    annotation = Annotated[Optional[kind], typer.Option(help=help, rich_help_panel=PANELS[panel])]
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)


def with_config_options(for_resume: bool, *extras: inspect.Parameter):
    """Give a command `def f(ctx, checkpoint=None, **options)` the Config fields as options (resume: only those
    that may change), plus `extras`; `options` reach it as plain values."""
    hints = typing.get_type_hints(Config)
    fields = [f for f in dataclasses.fields(Config) if f.metadata["cli"] and (f.metadata["resume"] or not for_resume)]
    params = [config_option(f, hints[f.name], for_resume) for f in fields] + list(extras)

    def decorate(body):
        def command(ctx: typer.Context, **options):
            return body(ctx, **{k: v.value if isinstance(v, enum.Enum) else v for k, v in options.items()})
        own = [p for p in inspect.signature(body).parameters.values() if p.kind != inspect.Parameter.VAR_KEYWORD]
        own = [p.replace(annotation=typing.get_type_hints(body, include_extras=True).get(p.name, p.annotation))
               for p in own]
        command.__signature__ = inspect.Signature([*own, *params])
        command.__annotations__ = {p.name: p.annotation for p in (*own, *params)}
        command.__doc__, command.__name__ = body.__doc__, body.__name__
        return command
    return decorate


def fail(message: str, code: int = 1):
    typer.echo(f"Error: {message}", err=True)
    raise typer.Exit(code)


def quiet_when_piped(console):
    """Rich exits with status 1 when stdout's reader goes away (`| head`); here the work goes on, output discarded."""
    def on_broken_pipe():
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    console.on_broken_pipe = on_broken_pipe
    return console


def run_gan(action):
    """Run `action`, turning the GAN's user errors into one line on stderr and a non-zero exit."""
    from config import BadValue
    from files import hold_stop_signals
    try:
        import gan  # Ctrl-C is held back while torch loads (see the end of this file), and let through now
        hold_stop_signals(False)
        return action(gan)
    except gan.TrainingInterrupted as e:
        typer.echo(str(e), err=True)
        raise typer.Exit(130)
    except BadValue as e:
        fail(e.for_cli())
    except gan.GANError as e:
        fail(str(e))
    except KeyboardInterrupt:
        fail("interrupted", 130)
    except MemoryError:
        fail("out of memory: ask for fewer images at a time, a smaller --batch-size, or raise the memory limit")
    except RuntimeError as e:
        if "allocate" not in str(e) and "out of memory" not in str(e):
            raise
        fail(f"out of memory ({str(e).splitlines()[0][:120]}): ask for fewer images at a time or a smaller "
             f"--batch-size")


class TrainingBars:
    """Rich progress for gan.train: a bar for the epochs and one for the steps of the epoch in progress, fed by
    the loop's on_step hook; the loop's per-epoch lines print above them. If stdout goes away (`| head`), the
    bars and lines stop and training goes on to its end, saving as usual."""

    def __init__(self):
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                   TimeRemainingColumn)
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                                 TextColumn("{task.fields[stats]}"))
        quiet_when_piped(self.progress.console)
        self.console, self.epochs_bar, self.steps_bar, self.epoch = self, None, None, None
        self.closed = False

    def print(self, *args, **kwargs) -> None:  # into a file or pipe, a line stays one line (for grep)
        kwargs.setdefault("soft_wrap", not self.progress.console.is_terminal)
        self.safely(self.progress.console.print, *args, **kwargs)

    def safely(self, write, *args, **kwargs) -> None:
        if self.closed:
            return
        try:
            write(*args, **kwargs)
        except (BrokenPipeError, OSError, SystemExit):  # stdout's reader is gone (Rich says so with SystemExit)
            self.closed = True
            sys.stdout = open(os.devnull, "w")
            self.progress.console.file = sys.stdout
            self.progress.live.transient = True

    def on_step(self, epoch: int, epochs: int, step: int, steps: int, stats: str) -> None:
        self.safely(self._on_step, epoch, epochs, step, steps, stats)

    def _on_step(self, epoch, epochs, step, steps, stats):
        if self.epochs_bar is None:
            self.epochs_bar = self.progress.add_task("epochs", total=epochs, completed=epoch - 1, stats="")
        if epoch != self.epoch:
            self.steps_bar = self.progress.add_task(f"epoch {epoch}", total=steps, stats="")
            self.epoch = epoch
        self.progress.update(self.steps_bar, completed=step, stats=stats)
        if step == steps:
            self.progress.remove_task(self.steps_bar)
            self.progress.update(self.epochs_bar, completed=epoch)
            self.progress.refresh()

    def __enter__(self):
        self.safely(self.progress.start)
        return self

    def __exit__(self, *exc):
        self.safely(self.progress.stop)


def start_training(overrides: dict, resume: Path | None, minutes: float | None):
    """Train anew from the options, or resume `resume` with only the options the user gave changed."""
    def action(gan):
        import evaluate
        with TrainingBars() as bars:
            hooks = dict(minutes=minutes, console=bars, on_step=bars.on_step,
                         evaluate=evaluate.evaluate_during_training)
            if resume is not None:
                gan.resume(resume, overrides, **hooks)
            else:
                gan.train(gan.Config(**overrides), **hooks)
    run_gan(action)


def typed(ctx: typer.Context, options: dict) -> dict:
    """The options the user typed (as opposed to those that took their default)."""
    def given(name):
        source = ctx.get_parameter_source(name)
        return source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP")
    return {name: value for name, value in options.items() if given(name)}


LR = extra("lr", float, LR_HELP, "optimisation")
MINUTES = extra("minutes", float, "Stop after this many minutes, saving a checkpoint to resume from.", "run")
RESUME = extra("resume", Path, "Continue from this checkpoint with its saved config (as the resume command).", "files")


@app.command()
@with_config_options(False, LR, MINUTES, RESUME)
def train(ctx: typer.Context, **options):
    """Train a GAN on MNIST, saving checkpoints and a sample grid every epoch."""
    resume, minutes = options.pop("resume"), options.pop("minutes")
    if resume is not None:
        return start_training(typed(ctx, options), resume, minutes)
    start_training(options, None, minutes)


@app.command()
@with_config_options(True, LR, MINUTES)
def resume(ctx: typer.Context, checkpoint: Annotated[Path, typer.Argument(help="A gan_epoch_N.pth checkpoint.")],
           **options):
    """Continue training from a checkpoint, writing beside it. Every option defaults to the value saved in it: give
    only what should change (--epochs to go further, a learning rate, the folders)."""
    minutes = options.pop("minutes")
    start_training({k: v for k, v in options.items() if v is not None}, checkpoint, minutes)


# ---- drawing from a trained generator ----

Device = Annotated[str, typer.Option(help=DEVICES + ".")]
GeneratorFile = Annotated[Optional[Path], typer.Option(help="Checkpoint or exported generator (default: newest in --checkpoint-dir).")]
Digit = Annotated[Optional[int], typer.Option(help="Only this digit: a conditional model draws it; for an unconditional one, samples are kept only when the shipped classifier calls them this digit with --min-confidence (rejection sampling).")]
DrawFrom = Annotated[Optional[Path], typer.Option("--checkpoint-dir", show_default=False, help="Folder whose newest checkpoint draws (default: checkpoints/, and failing that the shipped model).")]
MinConfidence = Annotated[float, typer.Option(help="Classifier confidence needed to keep a sample for --digit.")]
Seed = Annotated[Optional[int], typer.Option(help="Seed for repeatable results.")]
ClassName = Annotated[Optional[str], typer.Option("--class", show_default=False, help="Only this class, by name: a model trained on --images DIR with a subfolder per class (--digit takes its index).")]


def by_class(gan, checkpoint, checkpoint_dir, class_name: str | None, digit: int | None, device: str):
    """What to draw from and which class, for --class NAME: the generator (loaded, so that its class names are known)
    and the index of NAME; without --class, the checkpoint as given and --digit."""
    if class_name is None:
        return checkpoint, digit
    path, note = (checkpoint, "") if checkpoint else gan.find_generator(checkpoint_dir)
    G, cfg = gan.load_generator(path, device=gan.resolve_device(device))
    return G, class_index(cfg, path, class_name, digit, note)


def class_index(cfg, path, class_name: str | None, digit: int | None, note: str = "") -> int | None:
    """The index of --class NAME among the classes a model trained on (or --digit, without --class)."""
    if class_name is None:
        return digit
    if digit is not None:
        fail("--class and --digit both choose a class: give one")
    if not cfg.classes or not cfg.conditional:
        fail(f"--class picks a class of a model trained on --images DIR with a subfolder per class; {path} has none"
             + (f" ({note.split('; ', 1)[1]})" if "; " in note else ": use --digit"))
    if class_name not in cfg.classes:
        fail(f"{path} has no class {class_name!r}: it knows {', '.join(cfg.classes)}")
    return cfg.classes.index(class_name)


Format = choice("format", ("png", "npy", "idx"))
Method = choice("method", ("linear", "slerp"))


def check_new_output(out: Path | None, force: bool) -> None:
    """files.check_replaceable, before any model is loaded: an existing --out needs --force and must be a drawing."""
    from config import BadValue
    from files import check_replaceable
    try:
        check_replaceable(out, force) if out is not None else None
    except BadValue as e:
        fail(e.for_cli())


def check_confidence(min_confidence: float) -> None:
    if not 0 < min_confidence <= 1:
        fail(f"--min-confidence must be in (0, 1], got {min_confidence}")


@app.command()
def generate(n: Annotated[int, typer.Option(help="How many digits to draw.")] = 16,
             checkpoint: GeneratorFile = None,
             checkpoint_dir: DrawFrom = None,
             out: Annotated[Optional[Path], typer.Option(help="Output: a .png grid (near-square; a row per digit when --n is a multiple of 10) or an .npy (n, 1, 28, 28) float array in [0, 1]. Default: a new samples/generated_<time>.png.")] = None,
             seed: Seed = None,
             nrow: Annotated[Optional[int], typer.Option(help="Images per row of the grid (default: near-square).")] = None,
             digit: Digit = None, class_name: ClassName = None, min_confidence: MinConfidence = 0.9,
             fmt: Annotated[Optional[Format], typer.Option("--format", help="Same as the export command: a labelled dataset folder at --out.")] = None,
             force: Annotated[bool, typer.Option(help="Replace an existing --out file (with --format: an earlier export).")] = False,
             device: Device = "auto"):
    """Draw new digits from a trained generator into a PNG grid or an .npy array."""
    if fmt is not None:  # the older spelling of `export`
        return export(n, checkpoint, checkpoint_dir, out, fmt, seed, digit, class_name, min_confidence, force, device)
    check_confidence(min_confidence)
    check_new_output(out, force)

    def action(gan):
        import digits
        source, chosen = by_class(gan, checkpoint, checkpoint_dir, class_name, digit, device)
        _, written = gan.draw_samples(source, n=n, nrow=nrow, seed=seed, out=out, show=False, digit=chosen,
                                      sampler=digits.rejection_sampler(min_confidence), checkpoint_dir=checkpoint_dir,
                                      device=device, force=force)
        origin = f" from {checkpoint}" if checkpoint else ""
        what = f"{class_name!r} images" if class_name else f"{digit}s" if digit is not None else "images"
        typer.echo(f"wrote {n} {what}{origin} to {written}")
    run_gan(action)


@app.command("export")
def export(n: Annotated[int, typer.Option(help="How many images to write.")] = 60_000,
           checkpoint: GeneratorFile = None, checkpoint_dir: DrawFrom = None,
           out: Annotated[Optional[Path], typer.Option(help="The folder to write (default: samples/export_<time>).")] = None,
           fmt: Annotated[Format, typer.Option("--format", help="Image files: png (one file each), npy (one array) or idx (MNIST's own format).")] = Format.idx,
           seed: Seed = None, digit: Digit = None, class_name: ClassName = None, min_confidence: MinConfidence = 0.9,
           force: Annotated[bool, typer.Option(help="Replace an earlier export at --out (only an export, and only once the new one is complete).")] = False,
           device: Device = "auto"):
    """Write a labelled dataset of generated digits to a folder: images as png, npy or idx, and labels.csv with
    each label and the shipped classifier's confidence in it."""
    check_confidence(min_confidence)
    fmt = Format(fmt).value

    def action(gan):
        import digits
        from rich.progress import Progress
        from record import default_output
        path, note = (checkpoint, "") if checkpoint else gan.find_generator(checkpoint_dir)
        G, cfg = gan.load_generator(path, device=gan.resolve_device(device))
        chosen = class_index(cfg, path, class_name, digit)  # the generator is loaded once
        target = out or default_output("export", "")
        with Progress() as progress:
            quiet_when_piped(progress.console)
            task = progress.add_task(f"writing {fmt}", total=n)
            digits.export_samples(G, cfg, n, target, fmt, seed=seed, digit=chosen, min_confidence=min_confidence,
                                  force=force, progress=lambda k: progress.advance(task, k))
        typer.echo(f"wrote {n} images with labels from {path} to {target}/ ({fmt})" + (f"; {note}" if note else ""))
    run_gan(action)


@app.command()
def interpolate(checkpoint: GeneratorFile = None,
                checkpoint_dir: DrawFrom = None,
                rows: Annotated[int, typer.Option(help="Number of walks, one per row.")] = 8,
                steps: Annotated[int, typer.Option(help="Images per walk, ends included.")] = 10,
                method: Annotated[Method, typer.Option(help="How to walk: slerp is spherical, staying where Gaussian noise lives.")] = Method.linear,
                out: Annotated[Optional[Path], typer.Option(help="PNG to write (default: a new samples/interpolation_<time>.png).")] = None,
                seed: Seed = None,
                force: Annotated[bool, typer.Option(help="Replace an existing --out file.")] = False,
                device: Device = "auto"):
    """Draw digits morphing smoothly between random points of the latent space."""
    method = getattr(method, "value", method)
    check_new_output(out, force)

    def action(gan):
        from record import save_drawing
        if out is not None and out.suffix.lower() != ".png":
            fail(f"--out {out}: interpolations are written as .png")
        path, note = (checkpoint, "") if checkpoint else gan.find_generator(checkpoint_dir)
        G, cfg = gan.load_generator(path, device=gan.resolve_device(device))
        import digits
        images = digits.interpolate(G, rows=rows, steps=steps, method=method, seed=seed)
        target = save_drawing(images, out, "interpolation", nrow=steps, force=force)
        typer.echo(f"wrote {rows} {method} walks of {steps} steps from {path} to {target}" + (f"; {note}" if note else ""))
    run_gan(action)


DataDir = Annotated[str, typer.Option(help=help_of("data_dir"))]  # a str: Path("") would be "."


@app.command("train-classifier")
def train_classifier(data_dir: DataDir = "data",
                     out: Annotated[Optional[Path], typer.Option(help="Where to save the weights (default: checkpoints/mnist_classifier.pt; the shipped assets/mnist_classifier.pt that `evaluate` uses is never replaced).")] = None,
                     epochs: Annotated[int, typer.Option(help="Passes over the 60,000 training images (about a minute each on a CPU).")] = 8,
                     seed: Annotated[int, typer.Option(help="Random seed (weights, shuffling).")] = 0,
                     device: Device = "auto"):
    """Train the MNIST classifier that `evaluate` measures in, and report its test accuracy."""
    def action(gan):
        import evaluate as ev
        ev.train_classifier(data_dir, out or ev.TRAINED, epochs=epochs, seed=seed, device=device, log=typer.echo)
    run_gan(action)


@app.command()
def evaluate(checkpoint: Annotated[Optional[Path], typer.Argument(help="Checkpoint or exported generator (default: newest in --checkpoint-dir).")] = None,
             n: Annotated[int, typer.Option(help="Digits to generate and score; the floor uses as many real ones.")] = 10_000,
             data_dir: DataDir = "data", checkpoint_dir: DrawFrom = None,
             seed: Annotated[int, typer.Option(help="Seed for the samples and for the real images of the floor.")] = 0,
             as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON only.")] = False,
             cas: Annotated[bool, typer.Option("--cas", help="Also train a classifier on n generated digits and, with two seeds, on n real ones, and compare their MNIST test accuracy (a conditional model; about a minute at n = 10,000 on 2 CPU cores).")] = False,
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
            first, second = score["real_seeds"]
            typer.echo(f"accuracy score: a classifier trained on {score['n']:,} generated digits scores "
                       f"{score['generated']:.2%} on the MNIST test set; trained on as many real ones, {first:.2%} and "
                       f"{second:.2%} with two seeds (spread {100 * score['real_spread']:.2f} points, the score's own "
                       f"noise); gap {100 * score['gap']:.2f} points to their mean. Recipe: {score['recipe']}.")
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
