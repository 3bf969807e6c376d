"""Command line for the GAN: a thin Typer skin over gan.py (and evaluate.py, digits.py).

    python cli.py train --epochs 10 --data-dir ./data
    python cli.py resume checkpoints/gan_epoch_10.pth --epochs 20
    python cli.py generate --n 16

Every command's options come from a dataclass of config.py (default, help, choices and panel of each field), the
same ones the Python API takes its defaults from, so no option is declared twice. Each command turns its options
into a call of one function and draws the progress; the GAN's user errors, and Typer's own usage errors, become one
line on stderr and a non-zero exit.
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
import math
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

import config
from config import LR_HELP, BadValue, ClassifierRun, Config, Drawing, Export, Scoring, Walk

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
            typer.echo(f"Error: {config.one_line(e.format_message())} (see {where})", err=True)
            code = e.exit_code
        except typer.Abort:
            typer.echo("Error: aborted", err=True)
            code = 1
        if not standalone_mode:
            return code
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(cls=OneLineErrors, add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Train a GAN on MNIST (or your own pictures) and draw new images.")


# ---- options, from config.py's dataclasses ----

PANELS = {"model": "Model", "optimisation": "Optimisation", "files": "Files", "run": "Run", "source": "Source",
          "drawing": "Drawing", "export": "Export", "walk": "Walk", "scoring": "Scoring", "classifier": "Classifier"}
CHOICES = {}  # one Enum per field with choices, so that Typer itself checks and lists them


def choice(name: str, values) -> type[enum.Enum]:
    if name not in CHOICES:
        CHOICES[name] = enum.Enum(name, {str(v): str(v) for v in values}, type=str)
    return CHOICES[name]


def cli_option(f: dataclasses.Field, hint, for_resume: bool = False) -> inspect.Parameter:
    """A dataclass field as a Typer option: on resume every option defaults to None, "the value saved"."""
    kinds = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
    kind = choice(f.name, f.metadata["choices"]) if f.metadata["choices"] else kinds[0]
    nullable = for_resume or f.default is None
    shown = False if for_resume else f.metadata["default_text"] or (not nullable)
    info = typer.Option(*([f.metadata["flag"]] if f.metadata["flag"] else []),
                        help=f.metadata["help"] + (" Default: the saved value." if for_resume else ""),
                        rich_help_panel=PANELS[f.metadata["panel"]], show_default=shown)
    default = None if nullable else kind(str(f.default)) if isinstance(kind, type) and issubclass(kind, enum.Enum) \
        else f.default
    return inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=default,
                             annotation=Annotated[Optional[kind] if nullable else kind, info])


def extra(name: str, kind, help: str, panel: str, default=None, flag: str | None = None) -> inspect.Parameter:
    annotation = Annotated[Optional[kind], typer.Option(*([flag] if flag else []), help=help,
                                                        rich_help_panel=PANELS[panel])]
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)


def with_options(owner, *extras: inspect.Parameter, for_resume: bool = False, leave_out: tuple = ()):
    """Give a command `def f(ctx, ..., **options)` the fields of the dataclass `owner` as options (resume: only those
    it may change), plus `extras`; `options` reach it as plain values (a choice as the field's own type)."""
    hints = typing.get_type_hints(owner)
    fields = [f for f in dataclasses.fields(owner) if f.init and f.metadata.get("cli", True) and f.name not in leave_out
              and (f.metadata["resume"] or not for_resume)]
    params = [cli_option(f, hints[f.name], for_resume) for f in fields] + list(extras)
    plain = {f.name: type(f.default) for f in fields if f.metadata["choices"]}

    def value(name, v):  # a choice back to the field's own type (--size 64 is the int 64)
        return plain[name](v.value) if isinstance(v, enum.Enum) and plain.get(name) in (int, str) else v

    def decorate(body):
        def command(ctx: typer.Context, **options):
            return body(ctx, **{k: value(k, v) for k, v in options.items()})
        own = [p for p in inspect.signature(body).parameters.values() if p.kind != inspect.Parameter.VAR_KEYWORD]
        own = [p.replace(annotation=typing.get_type_hints(body, include_extras=True).get(p.name, p.annotation))
               for p in own]
        command.__signature__ = inspect.Signature([*own, *params])
        command.__annotations__ = {p.name: p.annotation for p in (*own, *params)}
        command.__doc__, command.__name__ = body.__doc__, body.__name__
        return command
    return decorate


def fail(message: str, code: int = 1):
    typer.echo(f"Error: {config.one_line(message)}", err=True)  # one line, even for a name with a newline
    raise typer.Exit(code)


def asked(owner, **options):
    """The dataclass `owner` built from a command's options: its checks run now, before torch is imported."""
    try:
        return owner(**options)
    except BadValue as e:
        fail(e.for_cli())
    except config.GANError as e:
        fail(str(e))


def run_gan(action):
    """Run `action`, turning the GAN's user errors into one line on stderr and a non-zero exit."""
    from files import TrainingInterrupted, hold_stop_signals, stop_was_asked
    try:
        try:
            import gan  # Ctrl-C is held back while torch loads (see the top of this file), and let through now
        except (ImportError, OSError) as e:
            fail(config.torch_failed(e))
        hold_stop_signals(False)
        try:
            return action(gan)
        except Exception as e:  # a Ctrl-C that a library turned into an error of its own (an ImportError, say)
            if stop_was_asked() and not isinstance(e, typer.Exit):
                raise KeyboardInterrupt from None
            raise
    except TrainingInterrupted as e:  # saved, and says how to continue: not an error
        stopping()
        typer.echo(config.one_line(str(e)), err=True)
        raise typer.Exit(130) from None
    except BadValue as e:
        fail(e.for_cli())
    except config.GANError as e:
        fail(str(e))
    except KeyboardInterrupt:
        stopping()
        fail("interrupted", 130)
    except MemoryError:
        fail("out of memory: ask for fewer images at a time, a smaller --batch-size, or raise the memory limit")
    except OSError as e:  # a path the system refuses (too long, a loop of links...), wherever it was met
        fail(f"cannot use {e.filename or 'a file'} ({e.strerror or e})")
    except RuntimeError as e:
        if "allocate" not in str(e) and "out of memory" not in str(e):
            raise
        fail(f"out of memory ({str(e).splitlines()[0][:120]}): ask for fewer images at a time or a smaller "
             f"--batch-size")


def stopping() -> None:
    """Stopped as asked: a second Ctrl-C now would only cut short the line that says so, or kill Python mid-exit by
    its signal (a shell's 128+N, no word), so the stop signals are ignored until the process ends. Only as `python
    cli.py`: a program that imports the CLI (the tests) keeps its own signals."""
    if __name__ == "__main__":  # ignored, not masked: torch's worker threads would take a masked one and die of it
        from files import STOP_SIGNALS
        for sig in STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)


def discard_stdout() -> None:
    """Stdout's reader has gone (`| head`): what is still to be printed goes nowhere, and the work goes on."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def echo(line: str, raw: bool = False) -> None:
    """A line on stdout, one line that prints as it is (`config.one_line`; `raw`: as given, JSON's lines, say). When
    its reader has gone, the line and those after it are dropped: the work they report is done, and its exit status
    is the one to give."""
    try:
        typer.echo(line if raw else config.one_line(line))
    except BrokenPipeError:
        discard_stdout()


def quiet_when_piped(console):
    """Rich exits with status 1 when stdout's reader goes away (`| head`); here the work goes on, output discarded."""
    console.on_broken_pipe = discard_stdout
    return console


def bars_where_seen(progress):
    """Progress bars for a terminal or Jupyter only: into a file, a pipe or a dumb terminal Rich drew the last bar
    once more at the end, after the lines that say it all. Quiet when piped, as every console here."""
    quiet_when_piped(progress.console)
    progress.disable = not (progress.console.is_interactive or progress.console.is_jupyter)
    return progress


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
        bars_where_seen(self.progress)
        self.console, self.epochs_bar, self.steps_bar, self.epoch, self.closed = self, None, None, None, False

    def print(self, line: str) -> None:
        """A line as it is: one line into a file or pipe too (for grep), a folder named [x] or :smile: or with a
        line break not read as Rich's markup or emoji, nor run over two lines."""
        self.safely(self.progress.console.print, config.one_line(line), soft_wrap=not self.progress.console.is_terminal,
                    markup=False, highlight=False, emoji=False)

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
        if self.epochs_bar is None:  # the bars start with the first step: a run refused before it prints none
            self.progress.start()
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
        return self

    def __exit__(self, *exc):
        if self.epochs_bar is not None:
            self.safely(self.progress.stop)


# ---- training ----

def start_training(cfg_or_overrides, resume: Path | None, minutes: float | None):
    """Train anew from a Config, or resume `resume` with only the options the user gave changed."""
    try:
        config.check_minutes(minutes)
    except BadValue as e:
        fail(e.for_cli())

    def action(gan):
        import evaluate
        with TrainingBars() as bars:
            hooks = dict(minutes=minutes, console=bars, on_step=bars.on_step,
                         evaluate=evaluate.evaluate_during_training)
            if resume is not None:
                gan.resume(resume, cfg_or_overrides, **hooks)
            else:
                gan.train(cfg_or_overrides, **hooks)
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
@with_options(Config, LR, MINUTES, RESUME)
def train(ctx: typer.Context, **options):
    """Train a GAN on MNIST (or --images DIR), saving checkpoints and a sample grid every epoch."""
    resume, minutes = options.pop("resume"), options.pop("minutes")
    if resume is not None:
        return start_training(typed(ctx, options), resume, minutes)
    start_training(asked(Config, **options), None, minutes)


@app.command()
@with_options(Config, LR, MINUTES, for_resume=True)
def resume(ctx: typer.Context, checkpoint: Annotated[Path, typer.Argument(help="A gan_epoch_N.pth checkpoint.")],
           **options):
    """Continue training from a checkpoint, writing beside it. Every option defaults to the value saved in it: give
    only what should change (--epochs to go further, a learning rate, the folders)."""
    minutes = options.pop("minutes")
    start_training({k: v for k, v in options.items() if v is not None}, checkpoint, minutes)


# ---- drawing from a trained generator ----

OLD_FORMAT = extra("fmt", choice("format", ("png", "npy", "idx")), "Same as the export command: a labelled dataset "
                   "folder at --out.", "drawing", flag="--format")


@app.command()
@with_options(Drawing, OLD_FORMAT)
def generate(ctx: typer.Context, **options):
    """Draw new images from a trained generator into a PNG grid or an .npy array."""
    fmt = options.pop("fmt")
    if fmt is not None:  # the older spelling of `export`
        if options.pop("nrow") is not None:
            fail("--nrow lays out a grid, and --format writes a dataset folder instead: give one of them")
        return export_command({**options, "format": getattr(fmt, "value", fmt)})
    ask = asked(Drawing, **options)
    from files import check_replaceable
    try:
        check_replaceable(Path(ask.out), ask.force) if ask.out else None  # before any model loads
    except BadValue as e:
        fail(e.for_cli())
    wide = f" (noise spread {ask.spread:.10g})" if ask.spread != 1 else ""  # said after what was written

    def action(gan):
        import digits
        sampler = digits.rejection_sampler(ask.min_confidence, ask.spread, ask.check)
        gan.generate_and_plot_samples(ask.checkpoint, n=ask.n, nrow=ask.nrow, seed=ask.seed, out=ask.out, show=False,
                                      digit=ask.digit, sampler=sampler, checkpoint_dir=ask.checkpoint_dir,
                                      device=ask.device, force=ask.force, say=lambda line: echo(line + wide))
        if sampler.unchecked:  # said once the images are written
            echo(digits.unchecked_note(sampler.unchecked, ask.n, ask.check))
    run_gan(action)


@app.command("export")
@with_options(Export)
def export(ctx: typer.Context, **options):
    """Write a labelled dataset of generated images to a folder: images as png, npy or idx, and labels.csv with each
    label and, for MNIST, the shipped classifier's confidence in it."""
    export_command(options)


def export_command(options: dict) -> None:
    ask = asked(Export, **options)

    def action(gan):
        import json

        import digits
        from files import EXPORT_MANIFEST
        from rich.progress import Progress
        G, _ = gan.load_generator(ask.checkpoint, ask.device, ask.checkpoint_dir)
        progress, task = bars_where_seen(Progress()), []

        def advance(k):  # the bar starts with the first images written: a refusal before them prints no bar
            if not task:
                progress.start()
                task.append(progress.add_task(f"writing {ask.format}", total=ask.n))
            progress.advance(task[0], k)
        try:
            target = digits.export_samples(G, ask.n, ask.out, ask.format, ask.seed, ask.digit, ask.min_confidence,
                                           ask.force, progress=advance, spread=ask.spread, check=ask.check)
        finally:
            if task:
                progress.stop()
        echo(f"wrote {ask.n} images with labels from {G.origin} to {target}/ ({ask.format}"
             + (f", noise spread {ask.spread:.10g})" if ask.spread != 1 else ")")
             + (f"; {G.note}" if G.note else ""))
        left = json.loads((target / EXPORT_MANIFEST).read_text()).get("unchecked")
        if left:  # after the line of what was written, as generate says it
            echo(digits.unchecked_note(left, ask.n, ask.check))
    run_gan(action)


@app.command()
@with_options(Walk)
def interpolate(ctx: typer.Context, **options):
    """Draw images morphing smoothly between random points of the latent space."""
    ask = asked(Walk, **options)
    from files import check_replaceable
    try:
        check_replaceable(Path(ask.out), ask.force) if ask.out else None
    except BadValue as e:
        fail(e.for_cli())

    def action(gan):
        import digits
        from record import save_drawing
        G, _ = gan.load_generator(ask.checkpoint, ask.device, ask.checkpoint_dir)
        images = digits.interpolate(G, rows=ask.rows, steps=ask.steps, method=ask.method, seed=ask.seed)
        target = save_drawing(images, ask.out, "interpolation", nrow=ask.steps, force=ask.force)
        echo(f"wrote {ask.rows} {ask.method} walks of {ask.steps} steps from {G.origin} to {target}"
             + (f"; {G.note}" if G.note else ""))
    run_gan(action)


# ---- scores ----

@app.command("train-classifier")
@with_options(ClassifierRun)
def train_classifier(ctx: typer.Context, **options):
    """Train the MNIST classifier that `evaluate` measures in, and report its test accuracy."""
    ask = asked(ClassifierRun, **options)

    def action(gan):
        import evaluate
        evaluate.train_classifier(ask.data_dir, ask.out, ask.epochs, ask.seed, ask.device, ask.force, log=echo)
    run_gan(action)


@app.command()
@with_options(Scoring, extra("as_json", bool, "Print the results as JSON only.", "scoring", False, "--json"),
              leave_out=("checkpoint",))
def evaluate(ctx: typer.Context,
             checkpoint: Annotated[Optional[str], typer.Argument(help="Checkpoint or exported generator (default: "
                                                                      "newest in --checkpoint-dir).")] = None,
             **options):
    """Score a generator in a classifier's feature space (MNIST's, or one trained on your class folders): FID,
    Inception Score, class coverage, precision and recall, next to the same numbers for real images (the floor a
    perfect generator would reach)."""
    as_json = options.pop("as_json")
    ask = asked(Scoring, checkpoint=checkpoint, **options)

    def action(gan):
        import json

        import evaluate as ev
        from checkpoint import shell_path
        import digits
        sampler = digits.rejection_sampler(spread=ask.spread, check=ask.check)  # drawn as generate and export draw
        report = ev.evaluate_file(ask.checkpoint, ask.n, ask.data_dir, ask.checkpoint_dir, ask.seed, ask.device,
                                  ask.cas, log=lambda line: typer.echo(config.one_line(line), err=True),
                                  spread=ask.spread, sample=sampler)
        if report.get("unchecked"):  # on stderr: --json's stdout stays JSON
            typer.echo(digits.unchecked_note(report["unchecked"], report["n"], ask.check, "scored"), err=True)
        if as_json:
            echo(json.dumps(no_nan(report), indent=1, allow_nan=False), raw=True)
        elif report["lens"] is None:
            echo(f"{report['checkpoint']} draws a flat folder or a dataset without a classifier of its own: no "
                 f"classifier can score it. Look at its grids (python cli.py generate --checkpoint "
                 f"{shell_path(report['checkpoint'])}).")
        else:
            print_report(report)
    run_gan(action)


def no_nan(value):
    """`value` (a report) with each NaN or infinity as None: JSON has neither (a class with no samples has no
    precision)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: no_nan(v) for k, v in value.items()}
    return [no_nan(v) for v in value] if isinstance(value, (list, tuple)) else value


def print_report(report: dict) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    names, floor, scores = report["classes"], report["real_floor"], report["generator"]
    cells = [config.one_line(name) for name in names]  # a class folder's name, in a Text below: never Rich's markup
    table = Table(caption="Precision is blind to noise-like samples in this feature space: read it with FID and "
                          "recall.",
                  caption_justify="left")
    for column in ("metric", "generator", "real floor"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    rows = [("FID (lower is better)", "fid", "{:.2f}"),
            (f"Inception Score (max {len(names)})", "inception_score", "{:.2f}"),
            ("class coverage (entropy, 1 = even)", "coverage_entropy", "{:.3f}"),
            ("precision (quality)", "precision", "{:.3f}"), ("recall (variety)", "recall", "{:.3f}"),
            *((f"share of {name}", f"share_{c}", "{:.1%}") for c, name in enumerate(cells)), ("images", "n", "{:,}")]
    for label, key, form in rows:
        table.add_row(Text(label), form.format(scores[key]), form.format(floor[key]))
    for c, name in enumerate(cells if "recall_per_class" in scores else []):
        table.add_row(Text(f"precision / recall of {name}"), f"{scores['precision_per_class'][c]:.3f} / "
                      f"{scores['recall_per_class'][c]:.3f}", f"{floor['precision_per_class'][c]:.3f} / "
                      f"{floor['recall_per_class'][c]:.3f}")
    console = quiet_when_piped(Console(emoji=False, markup=False, highlight=False))  # :cat: in a name stays :cat:
    accuracy = report["classifier_accuracy"]
    accuracy = f" (its classifier: {accuracy:.2%} test accuracy)" if accuracy else ""
    spread = f" (noise spread {report['spread']:.10g})" if report["spread"] != 1 else ""
    spread += f", checked at {report['check']:.10g}" if report.get("check") else ""
    said = f"{report['note'] or report['checkpoint']}: {report['n']:,} samples{spread} vs {report['lens']}{accuracy}"
    console.print(config.one_line(f"{said}, {report['seconds']:.1f}s"), soft_wrap=True)
    console.print(table)
    if report["label_agreement"]:
        echo("classifier agrees with the asked-for class: " +
             "  ".join(f"{names[c]}: {share:.1%}" for c, share in report["label_agreement"].items()))
    if report["classification_accuracy"]:
        score = report["classification_accuracy"]
        first, second = score["real_seeds"]
        echo(f"accuracy score: a classifier trained on {score['n']:,} generated images scores "
             f"{score['generated']:.2%} on {report['lens']}; trained on as many real ones, {first:.2%} and "
             f"{second:.2%} with two seeds (spread {100 * score['real_spread']:.2f} points, the score's own "
             f"noise); gap {100 * score['gap']:.2f} points to their mean. Taught worst: "
             f"{', '.join(score['worst'])}. Recipe: {score['recipe']}.")


if __name__ == "__main__":
    try:
        app()
    except SystemExit as e:
        if e.code == 130:  # interrupted, and said so: skip Python's finalization, where a library's thread once aborted
            stopping()     # the process (a SIGABRT and "Fatal Python error" instead of exit 130, a stop during import)
            sys.stdout.flush(), sys.stderr.flush()
            os._exit(130)
        raise
    finally:  # the work is done and its outcome said: a stop signal during Python's exit would only kill it by signal
        stopping()
