"""A run's folders: which run owns them, which file in them has trained furthest, and which old ones may go.

    with RunFolder("checkpoints", "samples").hold(run_id):    # locked while the run trains; other runs refused
        ...
    path, note = find_generator()                              # newest checkpoint, or the shipped model

Checkpoints name their run inside the file, sample grids inside the PNG, so a folder that holds another run's
files is refused instead of pruned or overwritten, and a run resumed into a new folder is not mistaken for a
stranger. Builds on files.py (locks), checkpoint.py (reading a file's run) and record.py (a grid's run).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from checkpoint import TrainingState, lineage, origin_of, progress_of
from config import GANError
from files import held_folder
from record import grid_run

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
            folders.setdefault(Path(folder).resolve(), flag)  # one folder named twice is held once
        with contextlib.ExitStack() as stack:
            for folder, flag in folders.items():
                stack.enter_context(held_folder(folder, flag))
            self.check_owner(s, resume, untagged_grids_ok)
            yield self

    def check_owner(self, s: TrainingState, resume: Path | None, untagged_grids_ok: bool) -> None:
        """Refuse folders that hold files this run does not own: another run's, or its own from beyond the point it
        starts at (resuming an older checkpoint would replace them) or from another branch of it."""
        start = (s.epoch, int(s.pos > 0))
        for path in (*self.dir.glob("gan_epoch_*.pth"), self.final_generator):
            if path.exists() and (problem := self.stranger(path, s, start)):
                raise GANError(self.refusal(problem, path, resume))
        for grid in sorted(self.samples.glob("epoch_*.png")):
            owner, epoch = grid_run(grid), grid.stem.removeprefix("epoch_")
            mine = owner == s.run_id or (owner is None and untagged_grids_ok)
            if not mine:
                raise GANError(f"{self.samples} already holds another run's sample grids ({grid.name}): pass "
                               f"--sample-dir DIR for this run's grids, or move them away")
            if epoch.isdigit() and int(epoch) > s.epoch:
                raise GANError(self.refusal("later", grid, resume, "--sample-dir"))

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
            how = f": continue it with `python cli.py resume {newest}`" if newest else f" ({path.name}): keep it"
            return f"{folder} already holds another run{how}, or start this one in a folder of its own with {branch}"
        if problem == "later":
            return (f"{flag} {folder} holds {path.name}, from later in this run than {resume}: resuming here would "
                    f"replace it. Continue from the newest"
                    + (f" (`python cli.py resume {newest}`)" if newest else "")
                    + f", or branch from {Path(resume).name if resume else 'here'} into new folders with {branch}")
        return (f"{folder} holds {path.name} from another branch of this run (resumed from an older checkpoint): "
                f"give this one new folders with {branch}")

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
        return found, f"drawing from {found}, the newest checkpoint in {folder}/"
    if named:
        raise GANError(f"no checkpoint in {folder}/: train into it first, pass --checkpoint PATH, or leave out "
                       f"--checkpoint-dir to draw from checkpoints/ or the shipped model")
    others = sorted(d for d in folder.iterdir() if d.is_dir() and newest_checkpoint(d)) if folder.is_dir() else []
    hint = (f"; {others[0]}/ holds a run of other data: pass --checkpoint-dir {others[0]}" if others else
            " (train your own with: python cli.py train)")
    if SHIPPED_GENERATOR.is_file():
        return SHIPPED_GENERATOR, f"no checkpoint in {folder}/: drawing from the shipped model {SHIPPED_GENERATOR.name}{hint}"
    raise GANError(f"no checkpoint in {folder}/: train first (python cli.py train) or pass --checkpoint PATH")
