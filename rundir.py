"""The shell around a training run: its folders (which run owns them, which file has trained furthest, which old ones
may go) and what the loop asks at its edges (start, the end of each epoch, a stop, the end).

    with RunFolder("checkpoints", "samples").session(s, cfg, ...) as session:   # folders held, Ctrl-C a request
        ... session.end_epoch(means, quality, grid) ...                          # record, checkpoint, grid
    path, note = find_generator()                              # newest checkpoint, or the shipped model

Checkpoints name their run and lineage inside the file, sample grids inside the PNG, so a folder that holds another
run's files (or later ones of this run) is refused instead of pruned or overwritten, and a run resumed into a new
folder is not mistaken for a stranger. Builds on files.py (locks, stop requests), checkpoint.py (the format) and
record.py (metrics, plots, grids); gan.py's loop calls it, never the other way round.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import asdict
from pathlib import Path

import torch

from checkpoint import (DIVERGED_ADVICE, TrainingState, data_fingerprint, finished_generator, lineage, origin_of,
                        progress_of, resume_command)
from config import STAT_NAMES, BadValue, Config, GANError
from files import LINEAGE_TAG, RUN_TAG, StopRequest, TrainingInterrupted, held_folder, png_text, write_text
from record import describe, format_stats, make_grid, model_summary, save_grid, tensorboard, write_record, write_report

SHIPPED_GENERATOR = Path(__file__).resolve().parent / "assets" / "mnist_gan_generator.pth"
FINAL = "generator_final.pth"


class RunFolder:
    """Where a run's files go: checkpoints and records in checkpoint_dir, sample grids in sample_dir."""

    def __init__(self, checkpoint_dir: str | Path, sample_dir: str | Path):
        self.dir, self.samples = Path(checkpoint_dir), Path(sample_dir)
        self.summary, self.report = self.dir / "summary.txt", self.dir / "report.md"
        self.metrics_csv, self.metrics_json = self.dir / "metrics.csv", self.dir / "metrics.json"
        self.loss_plot, self.final_generator = self.dir / "training_loss.png", self.dir / FINAL

    @contextlib.contextmanager
    def hold(self, s: TrainingState, resume: Path | None = None, untagged_grids_ok: bool = False):
        """Create both folders, lock them for as long as the run lasts and check that they hold nothing this run
        would replace or prune without owning it, before any time is spent training. `s`: the run's state as it
        starts (its run, history and progress); `untagged_grids_ok`: grids from before runs tagged theirs
        (resuming a checkpoint of format 3 or older) count as this run's."""
        folders = {}
        for folder, flag in ((self.dir, "--checkpoint-dir"), (self.samples, "--sample-dir")):
            folders.setdefault(os.path.realpath(folder), flag)  # one folder named twice (a/../a, a link) held once
        with contextlib.ExitStack() as stack:
            for folder, flag in folders.items():
                stack.enter_context(held_folder(folder, flag))
            self.check_owner(s, resume, untagged_grids_ok)
            yield self

    def check_owner(self, s: TrainingState, resume: Path | None, untagged_grids_ok: bool) -> None:
        """Refuse folders that hold files this run does not own: another run's or the user's, its own from beyond
        the point it starts at (resuming an older checkpoint would replace them), or another branch's of it."""
        start, ours = (s.epoch, int(s.pos > 0)), False
        # each folder is checked for both kinds of files: another run's grids in --checkpoint-dir, or its
        # checkpoints in --sample-dir, would mix two runs' files as surely as the usual places
        both = [(self.dir, "--checkpoint-dir"), (self.samples, "--sample-dir")]
        both = both[:1] if os.path.realpath(self.dir) == os.path.realpath(self.samples) else both
        for folder, flag in both:
            for path in (*folder.glob("gan_epoch_*.pth"), folder / FINAL):
                if path.exists() and (problem := self.stranger(path, s, start)):
                    raise GANError(self.refusal(problem, path, resume, flag))
                ours = ours or (path.exists() and folder == self.dir)
        records = [p.name for p in self.records if os.path.lexists(p)]
        if records and not ours:  # a run writes its records with its first checkpoint: these are someone else's
            raise GANError(f"{self.dir} holds {records[0]}, which this run did not write: pass a --checkpoint-dir of "
                           f"its own, or move the file away")
        for folder, flag in both:
            self.check_grids(folder, flag, s, resume, untagged_grids_ok)

    def check_grids(self, folder: Path, flag: str, s: TrainingState, resume: Path | None, untagged_ok: bool) -> None:
        """The epoch grids in `folder` are this run's, of its own branch, and from no later than where it starts."""
        for grid in sorted(folder.glob("epoch_*.png")):
            tags, epoch = png_text(grid), grid.stem.removeprefix("epoch_")
            owner, mark = tags.get(RUN_TAG), tags.get(LINEAGE_TAG)
            if not (owner == s.run_id or (owner is None and untagged_ok)):
                raise GANError(f"{folder} already holds another run's sample grids ({grid.name}): pass "
                               f"{flag} DIR for this run's files, or move them away")
            if epoch.isdigit() and int(epoch) > s.epoch:
                raise GANError(self.refusal("later", grid, resume, flag))
            if epoch.isdigit() and mark is not None and mark != lineage(s.history[:int(epoch)]):
                raise GANError(self.refusal("branch", grid, resume, flag))

    @property
    def records(self) -> tuple[Path, ...]:
        return self.summary, self.report, self.metrics_csv, self.metrics_json, self.loss_plot

    def stranger(self, path: Path, s: TrainingState, start: tuple[int, int]) -> str | None:
        """Why this run must not replace or prune `path` ("other", "later", "branch"), or None when it may."""
        run, mark = origin_of(path)
        if run != s.run_id:
            return "other"
        progress = named_progress(path) if path != self.final_generator else progress_of(path)
        epoch, pos = progress or (0, 0)
        if (epoch, int(pos > 0)) > start:
            return "later"
        if mark is not None and mark != lineage(s.history[:epoch]):
            return "branch"
        return None

    def refusal(self, problem: str, path: Path, resume: Path | None, flag: str = "--checkpoint-dir") -> str:
        folder, newest = path.parent, newest_checkpoint(self.dir, resumable=True)
        branch = "--checkpoint-dir DIR --sample-dir DIR"
        if problem == "other":
            how = f": continue it with `{resume_command(newest)}`" if newest else f" ({path.name}): keep it"
            return f"{folder} already holds another run{how}, or start this one in a folder of its own with {branch}"
        if problem == "branch":
            return (f"{folder} holds {path.name} from another branch of this run (resumed from an older checkpoint): "
                    f"give this one new folders with {branch}")
        later = newest is not None and resume is not None and Path(resume).resolve() != newest.resolve() and \
            named_progress(newest) is not None and named_progress(newest) > (named_progress(Path(resume)) or (0, 0))
        how = (f"continue from the newest (`{resume_command(newest)}`)" if later else
               "move it away (its checkpoints are gone or elsewhere)")
        return (f"{flag} {folder} holds {path.name}, from later in this run than {resume}: resuming here would "
                f"replace it. Either {how}, or branch from {Path(resume).name if resume else 'here'} into new folders "
                f"with {branch}")

    def check_resumable(self, saved: dict | None, epochs: int, resume: Path | None) -> None:
        """A resume must have epochs left to train (a run that has trained all its epochs but lacks its final
        generator, stopped while writing it, may resume to write it), and a copy of a run's folder may not draw its
        grids into the original's sample folder."""
        if not saved:
            return
        if saved["epoch"] >= epochs:
            done = saved["epoch"]
            if saved["pos"]:
                raise GANError(f"{resume} stopped in the middle of epoch {done + 1}: pass --epochs {done + 1} or more "
                               f"to finish it")
            if done > epochs or finished_generator(Path(resume).parent / FINAL, done):
                raise GANError(f"{resume} has already trained {done} epochs: pass --epochs larger than {done}")
        old = Path(saved["config"]["checkpoint_dir"])
        if self.samples == Path(saved["config"]["sample_dir"]) and not self.samples.is_relative_to(old) and \
                is_copy(Path(resume).parent, old):
            raise GANError(f"{resume} is a copy of the run in {old}, which is still there: its grids would go to "
                           f"{self.samples} beside the original's; pass --sample-dir for this copy's")

    def session(self, s: TrainingState, cfg: Config, resume, saved: dict | None, precision: str, minutes, say):
        return Session(self, s, cfg, resume, saved is not None and saved["format"] < 4, precision, minutes, say)

    def checkpoint(self, epoch: int) -> Path:
        return self.dir / f"gan_epoch_{epoch}.pth"

    def partial_checkpoint(self, epochs_done: int) -> Path:
        return self.dir / f"gan_epoch_{epochs_done}_interrupted.pth"

    def sample_grid(self, epoch: int) -> Path:
        return self.samples / f"epoch_{epoch:04d}.png"

    def prune_checkpoints(self, s: TrainingState, keep: int) -> None:
        """Delete all but the `keep` newest epoch checkpoints (after the newest is safely on disk), and the
        interrupted ones that the complete epoch supersedes: only files of this run's own branch, never one copied
        in from elsewhere meanwhile."""
        old = list(self.dir.glob("gan_epoch_*_interrupted.pth"))
        if keep > 0:
            old += [path for epoch, path in epoch_checkpoints(self.dir)[:-keep] if epoch < s.epoch]
        for path in old:
            if self.stranger(path, s, (s.epoch, 0)) is None:
                path.unlink(missing_ok=True)


def epoch_checkpoints(folder: Path) -> list[tuple[int, Path]]:
    """gan_epoch_N.pth files (not the interrupted ones), oldest first."""
    found = []
    for p in Path(folder).glob("gan_epoch_*.pth"):
        number = p.stem.removeprefix("gan_epoch_")
        if number.isdigit():
            found.append((int(number), p))
    return sorted(found)


def named_progress(path: Path) -> tuple[int, int] | None:
    """How far a checkpoint got, from its name alone: gan_epoch_N.pth is (N, 0), gan_epoch_N_interrupted.pth
    is (N, 1), somewhere into epoch N + 1."""
    number = path.stem.removeprefix("gan_epoch_").removesuffix("_interrupted")
    return (int(number), int(path.stem.endswith("_interrupted"))) if number.isdigit() else None


def is_copy(here: Path, old: Path) -> bool:
    """Whether a checkpoint folder is a copy of the run's first folder (which still holds its checkpoints), rather
    than that folder moved, or the folder itself."""
    try:
        return old.is_dir() and here.resolve() != old.resolve() and any(old.glob("gan_epoch_*.pth"))
    except OSError:
        return False


def newest_checkpoint(folder: str | Path, resumable: bool = False) -> Path | None:
    """The file in `folder` that has trained furthest: the one rule that `generate`, the divergence message and
    the folder check share. Epoch checkpoints are ranked by their names; only generator_final.pth is opened to
    read how far it got. At a tie the generator file wins, being the smaller; with `resumable`, only full
    checkpoints count. A file that does not read is passed over for the next."""
    folder = Path(folder)
    ranked = [(progress, False, p) for p in folder.glob("gan_epoch_*.pth") if (progress := named_progress(p))]
    final = folder / FINAL
    if not resumable and final.is_file() and (progress := progress_of(final)) is not None:
        ranked.append((progress, True, final))
    for *_, path in sorted(ranked, key=lambda r: (r[0], r[1]), reverse=True):
        if path == final or progress_of(path) is not None:
            return path
    return None


def find_generator(folder: str | Path | None = None) -> tuple[Path, str]:
    """The newest checkpoint of the user's own in `folder`. With no folder named: checkpoints/, and failing that
    the generator that ships with the project. A named folder with no checkpoint is an error, since a mistyped
    path should not quietly draw from another model. Returns the path and a line that says which it is."""
    named = folder is not None
    folder = Path(folder) if named else Path("checkpoints")
    found = newest_checkpoint(folder) if folder.is_dir() else None
    if found is not None:
        unread = sorted(p.name for p in folder.glob("gan_epoch_*.pth")
                        if (named_progress(p) or (0, 0)) > (named_progress(found) or (0, 0)) and progress_of(p) is None)
        return found, (f"drawing from {found}, the newest checkpoint in {folder}/ that reads"
                       + passed_over(unread, "read"))
    tried = (sorted(p.name for p in folder.glob("gan_epoch_*.pth") if named_progress(p))  # what newest_checkpoint
             + [FINAL] * (folder / FINAL).is_file()) if folder.is_dir() else []       # opened: none of them read
    where = f"{folder}/" + (f" that reads{passed_over(tried)}" if tried else "")
    if named:
        raise GANError(f"no checkpoint in {where}: train into it first, pass --checkpoint PATH, or leave out "
                       f"--checkpoint-dir to draw from checkpoints/ or the shipped model")
    others = sorted(d for d in folder.iterdir() if d.is_dir() and newest_checkpoint(d)) if folder.is_dir() else []
    hint = (f"; {others[0]}/ holds a run of other data: pass --checkpoint-dir {others[0]}" if others else
            " (train your own with: python cli.py train)")
    if SHIPPED_GENERATOR.is_file():
        return SHIPPED_GENERATOR, (f"no checkpoint in {where}: drawing from the shipped model "
                                   f"{SHIPPED_GENERATOR.name}{hint}")
    raise GANError(f"no checkpoint in {where}: train first (python cli.py train) or pass --checkpoint PATH")


def passed_over(names: list[str], verb: str = "") -> str:
    """The note on checkpoint files that did not read: ' (a.pth does not read, and was passed over)'."""
    one = len(names) == 1
    return (f" ({', '.join(names)} {'does' if one else 'do'} not{' ' + verb if verb else ''}, and "
            f"{'was' if one else 'were'} passed over)" if names else "")


class Diverged(GANError):
    """A loss became NaN or infinite."""


class Session:
    """One training run's time in its folders: they are held (and checked) while it lasts, Ctrl-C, SIGTERM and SIGHUP
    become a stop request, and the loop's edges write what a run leaves: the summary, each epoch's record,
    checkpoint and grid, a checkpoint to resume from when it stops, the final generator and report at its end."""

    def __init__(self, run: RunFolder, s: TrainingState, cfg: Config, resume, untagged_ok: bool, precision: str,
                 minutes: float | None, say):
        self.run, self.s, self.cfg, self.resume, self.precision, self.say = run, s, cfg, resume, precision, say
        # resumed from a checkpoint in its own folder (not branched into a new one, which has none of its checkpoints
        # yet): its records go on at once
        self.resumed_here = resume is not None and os.path.realpath(Path(resume).parent) == os.path.realpath(run.dir)
        self.untagged_ok, self.stack, self.writer, self.stop = untagged_ok, contextlib.ExitStack(), None, None
        self.steps = 0
        self.deadline = time.perf_counter() + 60 * minutes if minutes else None
        self.minutes = minutes

    def __enter__(self):
        with self.stack as stack:
            self.stop = stack.enter_context(StopRequest())  # first: a signal while the folders are taken is a request
            stack.enter_context(self.run.hold(self.s, self.resume, self.untagged_ok))
            self.writer = stack.enter_context(tensorboard(self.run, self.cfg.tensorboard))
            self.stack = stack.pop_all()
        return self

    def __exit__(self, kind, error, trace):
        try:
            if isinstance(error, Diverged):
                good = newest_checkpoint(self.run.dir, resumable=True)
                keep = f"the last good checkpoint, {good}, is kept" if good else "no checkpoint had been written yet"
                raise GANError(f"{error}; {keep}. {DIVERGED_ADVICE}") from None
        finally:
            self.stack.close()

    def start(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        """Check that a mid-epoch checkpoint continues on the same data and batches (else the epoch starts again
        from its first batch, its finished steps kept), say what trains where, write the summary and the record."""
        if not self.s.continues_on(data_fingerprint(images, labels), self.cfg.batch_size):
            self.say(f"note: epoch {self.s.epoch + 1} was interrupted on other data or another --batch-size; it "
                     f"starts again from its first batch")
        device, self.steps = next(self.s.G.parameters()).device, len(images) // self.cfg.batch_size
        if not self.steps:
            raise BadValue(f"{{batch_size}} {self.cfg.batch_size} is larger than the {len(images)} training images: "
                           f"use a smaller one")
        shape = "x".join(map(str, images.shape[1:]))
        self.say(f"{describe(self.cfg)}: {len(images):,} images ({shape}) on {device}, precision {self.precision}"
                 + (f" (--precision {self.cfg.precision})" if self.cfg.precision != self.precision else ""))

    def should_stop(self) -> bool:
        return self.stop.signal_name is not None or (self.deadline is not None and time.perf_counter() > self.deadline)

    def end_epoch(self, sums: torch.Tensor, quality: dict, grid) -> None:
        """Record the finished epoch, save its checkpoint, then draw its grid (`grid()`: images and row length)."""
        s, cfg, steps = self.s, self.cfg, self.steps
        epoch, means = s.epoch, sums / steps
        row = {"epoch": epoch, **{k: round(float(v), 5) for k, v in zip(STAT_NAMES, means)},
               "epoch_time_s": round(s.seconds, 2), "images_per_s": round(steps * cfg.batch_size / s.seconds, 1),
               "lr_g": s.opt_g.param_groups[0]["lr"], "lr_d": s.opt_d.param_groups[0]["lr"],
               "precision": self.precision, **quality}
        s.history.append(row)
        last, notes = epoch == cfg.epochs, []
        if epoch % cfg.save_every == 0 or last:  # the checkpoint before the grid: no grid of a run without one
            s.last_checkpoint = s.save(self.run.checkpoint(epoch), asdict(cfg))
            self.run.prune_checkpoints(s, keep=cfg.keep_last)
            notes.append(str(s.last_checkpoint))
        if epoch % cfg.sample_every == 0 or last:
            images, row_length = grid()
            notes.insert(0, str(save_grid(images, self.run.sample_grid(epoch), nrow=row_length, run_id=s.run_id,
                                          lineage=lineage(s.history))))
            if self.writer:
                self.writer.add_image("samples", make_grid(images, nrow=row_length), epoch)
        if s.last_checkpoint or self.resumed_here:  # the records come with the run's first checkpoint in this folder
            if not self.run.summary.exists():
                write_text(self.run.summary, model_summary(s.G, s.D, f"{describe(cfg)}, precision {self.precision}")
                           + "\n")
            write_record(self.run, s.history, self.writer)
        fid = f"  FID {row['fid']:.2f}" if "fid" in row else ""
        self.say(f"epoch {epoch}/{cfg.epochs}  {format_stats(means, row['images_per_s'])}{fid}  {s.seconds:.1f}s"
                 + (f"  -> {', '.join(notes)}" if notes else ""))

    def stopped(self) -> Path:
        """Save a mid-epoch checkpoint after Ctrl-C, SIGTERM, SIGHUP or the time limit, and say how to continue."""
        s, cfg = self.s, self.cfg
        path = s.save(self.run.partial_checkpoint(s.epoch), asdict(cfg))
        where = f"in epoch {s.epoch + 1} after step {s.pos // cfg.batch_size}"
        if self.stop.signal_name:
            raise TrainingInterrupted(f"stopped by {self.stop.signal_name} {where}; saved {path}. "
                                      f"Continue with: {resume_command(path)}")
        s.export(self.run.final_generator, asdict(cfg))
        self.say(f"stopped at the time limit ({self.minutes:g} min) {where}; saved {path}; continue with: "
                 f"{resume_command(path)}")
        return path

    def finish(self) -> Path:
        """The final generator and the report; returns the last checkpoint."""
        s = self.s
        final = s.export(self.run.final_generator, asdict(self.cfg))  # a Ctrl-C here waits: nothing is half done
        last = s.last_checkpoint or Path(self.resume)
        report = write_report(self.run, asdict(self.cfg), s.history, final, last)
        self.say(f"done: {self.cfg.epochs} epochs; generator {final}; report {report}")
        return last
