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

from checkpoint import progress_of, run_of
from config import GANError
from files import FolderLock, make_folder, remove_orphans
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
    def hold(self, run_id: str, untagged_grids_ok: bool = False):
        """Create both folders, lock them for as long as the run lasts and check that no other run owns them,
        before any time is spent training. `untagged_grids_ok`: grids from before runs tagged theirs (resuming
        a checkpoint of format 3 or older) count as this run's."""
        folders = {self.dir.absolute(): "--checkpoint-dir", self.samples.absolute(): "--sample-dir"}
        with contextlib.ExitStack() as stack:
            for folder, flag in folders.items():
                make_folder(folder, flag)
                stack.enter_context(FolderLock(folder, flag))
                remove_orphans(folder)
            self.check_owner(run_id, untagged_grids_ok)
            yield self

    def check_owner(self, run_id: str, untagged_grids_ok: bool) -> None:
        """Refuse a folder that holds another run's files: its checkpoints, grids and record would be pruned,
        overwritten or mixed with ours."""
        others = [p for p in (*self.dir.glob("gan_epoch_*.pth"), self.final_generator) if p.exists() and run_of(p) != run_id]
        if others:
            newest = newest_checkpoint(self.dir, resumable=True)
            how = f": continue it with `python cli.py resume {newest}`" if newest else f" ({others[0].name}): keep it"
            raise GANError(f"{self.dir} already holds another run{how}, or start this one in a "
                           f"folder of its own with --checkpoint-dir DIR --sample-dir DIR")
        for grid in sorted(self.samples.glob("epoch_*.png")):
            owner = grid_run(grid)
            if owner != run_id and not (owner is None and untagged_grids_ok):
                raise GANError(f"{self.samples} already holds another run's sample grids ({grid.name}): pass "
                               f"--sample-dir DIR for this run's grids, or move them away")

    def checkpoint(self, epoch: int) -> Path:
        return self.dir / f"gan_epoch_{epoch}.pth"

    def partial_checkpoint(self, epochs_done: int) -> Path:
        return self.dir / f"gan_epoch_{epochs_done}_interrupted.pth"

    def sample_grid(self, epoch: int) -> Path:
        return self.samples / f"epoch_{epoch:04d}.png"

    def prune_checkpoints(self, keep: int, newest: int) -> None:
        """Delete all but the `keep` newest epoch checkpoints (after the newest is safely on disk), and the
        interrupted ones that the complete epoch supersedes."""
        for path in self.dir.glob("gan_epoch_*_interrupted.pth"):
            path.unlink(missing_ok=True)
        if keep <= 0:
            return
        for epoch, path in epoch_checkpoints(self.dir)[:-keep]:
            if epoch < newest:
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
