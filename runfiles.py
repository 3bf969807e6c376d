"""What a training run reads from and writes to disk, safely.

The data files (IDX, read through torchvision with a one-line diagnosis of damaged ones), the checkpoint
format (what a file holds, its format number, the atomic write that never leaves half a file, the
weights_only load that never runs code and names what is wrong with a bad file in one line), the run's folder
(which run owns it, epoch checkpoints and their pruning) and the run record (metrics CSV/JSON, the loss plot, the
model summary, the report, TensorBoard, sample grids). Also what surrounds a run without being the GAN: the device
it computes on, and the stop request that Ctrl-C or SIGTERM makes.

It builds on torch, torchvision (datasets, image grids), matplotlib and the standard library: gan.py calls it, it
never calls back. It knows nothing of the networks' shapes: gan.py rebuilds them from the config a file holds.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import json
import os
import pickle
import signal
import uuid
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn


class GANError(Exception):
    """A problem the user can fix (bad input, missing file, full disk); the CLI prints it as one line."""


# ---- files written whole or not at all ----

def atomic_write(path: str | Path, write) -> Path:
    """Write through a temporary file in the same folder, then rename it over `path`.

    A crash at any moment leaves either the old file or the new one under `path`, never half of one.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise GANError(f"could not write {path}: {e.strerror or e}; anything already saved there is unchanged") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def save_state(path: str | Path, state: dict) -> Path:
    """torch.save through atomic_write, serialised in memory first: torch's file writer turns a full disk or a
    Ctrl-C in mid-write into an opaque RuntimeError, where a plain write raises OSError or KeyboardInterrupt."""
    buf = io.BytesIO()
    torch.save(state, buf)
    return atomic_write(path, lambda f: f.write(buf.getbuffer()))


def write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda f: f.write(text.encode()))


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def read_idx_dataset(folder: str, data_dir: str | Path, train: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """A torchvision 28x28 dataset (`folder`: MNIST, FashionMNIST or KMNIST) as uint8 images (N, 28, 28) and labels
    (N,), read from DATA_DIR/<folder>/raw or downloaded there; a missing or damaged file is one clear line."""
    import torchvision.datasets

    raw = Path(data_dir) / folder / "raw"
    unpack_gz(raw, MNIST_FILES)
    try:
        dataset = getattr(torchvision.datasets, folder)(root=str(data_dir), train=train, download=True)
    except RuntimeError as e:
        if "download" not in str(e).lower():
            raise GANError(f"could not read {folder} from {raw}: {e}. Delete the damaged files and try again") from None
        raise GANError(f"{folder} is not in {raw} and could not be downloaded (no network?): put "
                       f"{', '.join(MNIST_FILES)} (or their .gz) in {raw}/, or pass --data-dir to a folder that has "
                       f"{folder}/raw/ with them") from None
    except (OSError, ValueError, IndexError, EOFError, KeyError, TypeError, AssertionError) as e:
        # torchvision checks an IDX header with bare asserts and an unknown type code with a dict lookup
        detail = f"{type(e).__name__}: {e}" if str(e) else "bad IDX header"
        raise GANError(f"could not read {folder} from {raw} ({detail}): the IDX files look damaged; "
                       f"delete them and download again") from None
    images, labels = dataset.data, dataset.targets
    if images.dtype != torch.uint8 or images.dim() != 3 or tuple(images.shape[1:]) != (28, 28) or len(images) != len(labels):
        raise GANError(f"the files in {raw} do not hold 28x28 images with one label each: they look damaged")
    return images, labels


def unpack_gz(raw: Path, names) -> None:
    """Unpack FILE.gz to FILE where only the .gz is there. torchvision would first check the .gz against the
    official checksum and try to download on a mismatch, which fails offline for re-compressed copies (Debian's
    Fashion-MNIST package ships such copies); the unpacked IDX files are then read and checked as usual."""
    import gzip
    import shutil

    for name in names:
        packed, unpacked = raw / f"{name}.gz", raw / name
        if packed.is_file() and not unpacked.exists():
            try:
                with gzip.open(packed, "rb") as src:
                    atomic_write(unpacked, lambda f: shutil.copyfileobj(src, f))
            except (OSError, EOFError) as e:
                raise GANError(f"could not unpack {packed} ({e}): the file looks damaged; delete it and try again") from None


# ---- the checkpoint format ----

# 2: the learning rates are stored as lr_g and lr_d (format 1 had lr plus optional overrides), and each file
# names the run that wrote it. 3: the config holds r1, the weight of a penalty in D's loss (code that did not
# know it would resume without it). Older files are still read (see upgrade_config).
FORMAT = 3
CHECKPOINT_KIND = "mnist-gan-checkpoint"
GENERATOR_KIND = "mnist-gan-generator"
# fields that format 1 files written before these options existed lack, with the value they had then
FORMAT1_MISSING = {"conditional": False, "ema": 0.0, "dataset": "mnist"}


def upgrade_config(saved: dict, file_format: int) -> dict:
    """A stored config as today's Config fields: format 1's lr/lr_g/lr_d become two rates, and fields older
    files lack take the value that reproduces what those runs did (no R1; format 1: unconditional, without EMA)."""
    if file_format >= 3:
        return dict(saved)
    if file_format == 2:
        return {"r1": 0.0, **saved}
    config = {**FORMAT1_MISSING, "r1": 0.0, **saved}
    lr = config.pop("lr", 2e-4)
    config["lr_g"] = config.get("lr_g") if config.get("lr_g") is not None else lr
    config["lr_d"] = config.get("lr_d") if config.get("lr_d") is not None else lr
    return config


def get_rng_state(device: torch.device) -> dict:
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    if device.type == "mps":
        state["mps"] = torch.mps.get_rng_state()
    return state


def set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["cpu"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)
    if device.type == "mps" and "mps" in state:
        torch.mps.set_rng_state(state["mps"])


def save_checkpoint(path: Path, config: dict, run_id: str, nets: dict, epoch: int, fixed_z, history, device,
                    perm=None, pos: int = 0, sums=None, seconds: float = 0.0) -> Path:
    """Everything needed to continue exactly: networks and optimizers (`nets`: G, D, opt_g, opt_d and G_ema if
    used), epoch, config, fixed noise, history and RNG state.

    A checkpoint written mid-epoch (on Ctrl-C) also holds the epoch's shuffle order, how far it got and the
    running sums, so that resuming finishes that epoch as if nothing had happened.
    """
    # the losses are checked before the last update of an epoch, so the weights themselves are checked here
    broken = [name for name in ("G", "D", "G_ema") if name in nets and not all(
        torch.isfinite(t).all() for t in nets[name].state_dict().values() if t.is_floating_point())]
    if broken:
        raise GANError(f"training diverged (the weights of {', '.join(broken)} became NaN or infinite): {path.name} "
                       f"was not written and the checkpoints already in {path.parent} are kept. Try a lower --lr or "
                       f"--label-smoothing 0.9")
    state = {"format": FORMAT, "kind": CHECKPOINT_KIND, "run": run_id, "config": config, "epoch": epoch,
             **{name: net.state_dict() for name, net in nets.items()},
             "fixed_z": fixed_z.cpu(), "history": history, "rng": get_rng_state(device),
             "pos": pos, "perm": perm.cpu() if perm is not None else None,
             "sums": sums.cpu() if sums is not None else None, "seconds": seconds}
    return save_state(path, state)


def export_generator(path: Path, config: dict, run_id: str, G: nn.Module, fixed_z, epoch: int, pos: int = 0) -> Path:
    """The generator alone (no D, no optimizer state): a small file to share; `generate` accepts it."""
    state = {"format": FORMAT, "kind": GENERATOR_KIND, "run": run_id, "config": config, "G": G.state_dict(),
             "fixed_z": fixed_z.cpu(), "epoch": epoch, "pos": pos}
    return save_state(path, state)


@dataclass
class TrainingState:
    """What a checkpoint restores: the networks, their optimizers, the record, and how far training got. A
    partly done epoch (stopped by Ctrl-C or --minutes) keeps its shuffle order, position and running sums."""
    G: nn.Module
    D: nn.Module
    G_ema: nn.Module | None
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    fixed_z: torch.Tensor
    run_id: str | None = None  # names the run, so that no other run writes into its folder
    history: list = field(default_factory=list)
    epoch: int = 0  # epochs completed
    pos: int = 0  # images of the next epoch already trained on
    perm: torch.Tensor | None = None
    sums: torch.Tensor | None = None
    seconds: float = 0.0  # time spent on the epoch in progress
    last_checkpoint: Path | None = None

    def __post_init__(self):
        self.run_id = self.run_id or uuid.uuid4().hex[:12]

    @property
    def G_sample(self) -> nn.Module:
        return self.G_ema or self.G  # what grids, exports and evaluations draw from

    def save(self, path: Path, config: dict) -> Path:
        """A checkpoint of the state as it is (mid-epoch ones carry the epoch's order, position and sums)."""
        nets = {"G": self.G, "D": self.D, "opt_g": self.opt_g, "opt_d": self.opt_d,
                **({"G_ema": self.G_ema} if self.G_ema is not None else {})}
        partial = dict(perm=self.perm, pos=self.pos, sums=self.sums, seconds=self.seconds) if self.pos else {}
        return save_checkpoint(path, config, self.run_id, nets, self.epoch, self.fixed_z, self.history,
                               next(self.G.parameters()).device, **partial)

    def export(self, path: Path, config: dict) -> Path:
        return export_generator(path, config, self.run_id, self.G_sample, self.fixed_z, self.epoch, self.pos)

    def restore(self, saved: dict, device: torch.device, lr_g: float, lr_d: float) -> None:
        """Load a checkpoint into this fresh state; the learning rates given now win over the saved ones."""
        self.G.load_state_dict(saved["G"])
        self.D.load_state_dict(saved["D"])
        if self.G_ema is not None:
            self.G_ema.load_state_dict(saved.get("G_ema") or saved["G"])
        for opt, key, lr in ((self.opt_g, "opt_g", lr_g), (self.opt_d, "opt_d", lr_d)):
            opt.load_state_dict(saved[key])
            for group in opt.param_groups:
                group["lr"] = lr
        self.fixed_z, self.history, self.run_id = saved["fixed_z"], list(saved["history"]), saved.get("run")
        self.epoch, self.pos, self.seconds = saved["epoch"], saved["pos"], saved.get("seconds", 0.0)
        if self.pos:
            self.perm, self.sums = saved["perm"].to(device), saved["sums"].to(device)
        set_rng_state(saved["rng"], device)


def read_torch_file(path: str | Path, kinds: tuple[str, ...], what: str) -> dict:
    """torch.load with weights_only=True (never runs code from the file), every failure as one clear line; the
    file must be a dict whose "kind" is one of `kinds`. `what` says what the file should be, for the messages."""
    path = Path(path)
    if not path.is_file():
        raise GANError(f"no checkpoint at {path}: check the path (checkpoints are written to --checkpoint-dir)"
                       if CHECKPOINT_KIND in kinds else f"no {what.split(':')[0]} at {path}: {what.split(': ')[-1]}")
    if path.stat().st_size == 0:
        raise GANError(f"{path} is empty: it is not a checkpoint (use another one from the same folder)")
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols it did not write: noise, not news
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        text = str(e)
        if "GLOBAL" in text or "global" in text or "reduce" in text.lower():
            raise GANError(f"refused to load {path}: it asks to import or call Python code, which a file of "
                           f"this tool never does (a malicious or foreign file?); nothing in it was run") from None
        raise GANError(f"{path} is damaged or not a PyTorch checkpoint (it does not unpickle as tensors and "
                       f"plain values): use another checkpoint") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError, AttributeError, TypeError,
            IndexError, KeyError) as e:
        first = (str(e).splitlines() or [type(e).__name__])[0][:120]
        raise GANError(f"{path} is damaged or not a PyTorch checkpoint ({first}): use another checkpoint") from None
    if not isinstance(state, dict) or state.get("kind") not in kinds:
        raise GANError(f"{path} is not a {what}")
    return state


def read_checkpoint_file(path: str | Path) -> dict:
    """A checkpoint or generator file of this tool, read safely (read_torch_file), its format checked and its
    config upgraded to today's fields."""
    state = read_torch_file(path, (CHECKPOINT_KIND, GENERATOR_KIND), "checkpoint of this tool (a plain state_dict "
                            "or another project's file?): use one written by `python cli.py train`")
    if not isinstance(state.get("format"), int) or isinstance(state["format"], bool) or state["format"] < 1:
        raise GANError(f"{path} has no valid checkpoint format number ({state.get('format')!r}): it is damaged")
    if state["format"] > FORMAT:
        raise GANError(f"{path} has checkpoint format {state['format']}, newer than this version "
                       f"understands ({FORMAT}): update this tool")
    if not isinstance(state.get("config"), dict):
        raise GANError(f"{path} has no config: it is not a complete checkpoint of this tool")
    state["config"] = upgrade_config(state["config"], state["format"])
    return state


def read_training_checkpoint(path: str | Path) -> dict:
    """A full training checkpoint (not a generator alone) with everything a resume needs; its networks are checked
    against its config by gan.load_checkpoint."""
    state = read_checkpoint_file(path)
    if state["kind"] != CHECKPOINT_KIND:
        raise GANError(f"{path} holds only a generator (no discriminator or optimizer state), so training cannot "
                       f"resume from it: use a gan_epoch_N.pth checkpoint")
    missing = [k for k in ("opt_g", "opt_d", "epoch", "fixed_z", "history", "rng") if k not in state]
    if missing:
        raise GANError(f"{path} is incomplete (missing {', '.join(missing)}): use another checkpoint")
    state.setdefault("pos", 0)
    return state


def checked_config(state: dict, path, config_class, validate):
    """The config a checkpoint was trained with, as a `config_class` that passes `validate`: values of the wrong
    type or out of range mean a damaged or foreign file."""
    defaults = {f.name: f.default for f in dataclasses.fields(config_class)}
    saved = state["config"]
    wrong = [k for k, v in saved.items() if k in defaults and not _same_kind(defaults[k], v)]
    if wrong:
        raise GANError(f"{path} holds an invalid config ({', '.join(wrong)} of the wrong type): the file is damaged "
                       f"or not from this tool")
    cfg = config_class(**{k: v for k, v in saved.items() if k in defaults})
    try:
        validate(cfg)
    except GANError as e:
        raise GANError(f"{path} holds an invalid config ({e})") from None
    return cfg


def _same_kind(default, value) -> bool:
    """Whether a saved config value has the type of the field's default (a float field also takes an int)."""
    if isinstance(default, (bool, str, int)):
        return type(value) is type(default)
    return type(value) in (int, float) or (default is None and value is None)


def check_weights(net: nn.Module, weights, path, what: str) -> None:
    """Load `weights` into `net`, or say in one line that the file does not fit the networks its config describes."""
    if not isinstance(weights, dict):
        raise GANError(f"{path} has no {what} weights: use another checkpoint")
    try:
        net.load_state_dict(weights)
    except RuntimeError:
        raise GANError(f"the {what} weights in {path} do not fit the architecture its config describes "
                       f"(different arch, width or latent size?): the file is inconsistent") from None


# ---- stopping without losing anything ----

class TrainingInterrupted(GANError):
    """Training stopped on Ctrl-C or SIGTERM after saving a checkpoint."""


class StopRequest:
    """Turns the first Ctrl-C or SIGTERM into a flag the loop checks between steps; a second one stops at once."""

    def __init__(self):
        self.signal_name: str | None = None
        self._previous = {}

    def _handle(self, signum, frame):
        if self.signal_name is not None:  # second signal: give up now; checkpoint writes are atomic anyway
            raise KeyboardInterrupt
        self.signal_name = signal.Signals(signum).name

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: signals cannot be caught here
                pass
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


# ---- where a run computes ----

def resolve_device(name: str = "auto") -> torch.device:
    """auto picks CUDA, then Apple's MPS, then the CPU; a named device that is missing is an error."""
    has_mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise GANError(f"unknown --device {name!r}: use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise GANError(f"--device {name} was asked for but this PyTorch sees no CUDA GPU: use --device auto or cpu")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise GANError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) here")
    if device.type == "mps" and not has_mps:
        raise GANError(f"--device {name} was asked for but Apple's MPS is not available: use --device auto or cpu")
    if device.type not in ("cpu", "cuda", "mps"):
        raise GANError(f"unsupported --device {name!r}: use auto, cpu, cuda, cuda:N or mps")
    return device


def device_of(module: nn.Module) -> torch.device:
    """Where a module's weights live (the CPU for one without any)."""
    for tensor in (*module.parameters(), *module.buffers()):
        return tensor.device
    return torch.device("cpu")


# ---- a run's folder ----

SHIPPED_GENERATOR = Path(__file__).resolve().parent / "assets" / "mnist_gan_generator.pth"


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
    if SHIPPED_GENERATOR.is_file():
        return SHIPPED_GENERATOR, (f"no checkpoint in {folder}/: drawing from the shipped model {SHIPPED_GENERATOR.name} "
                                   f"(train your own with: python cli.py train)")
    raise GANError(f"no checkpoint in {folder}/: train first (python cli.py train) or pass --checkpoint PATH")


def epoch_checkpoints(folder: Path) -> list[tuple[int, Path]]:
    """gan_epoch_N.pth files (not the interrupted ones), oldest first."""
    found = []
    for p in Path(folder).glob("gan_epoch_*.pth"):
        number = p.stem.removeprefix("gan_epoch_")
        if number.isdigit():
            found.append((int(number), p))
    return sorted(found)


def newest_checkpoint(folder: str | Path, resumable: bool = False) -> Path | None:
    """The file in `folder` that has trained furthest (each file holds its epoch and position): the one rule that
    `generate`, the divergence message and the folder check share. At a tie the generator file wins, being the
    smaller; with `resumable`, only full checkpoints count."""
    candidates = [*Path(folder).glob("gan_epoch_*.pth"), *([] if resumable else [Path(folder) / "generator_final.pth"])]
    progress = []
    for path in candidates:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            progress.append(((int(state.get("epoch", 0)), int(state.get("pos") or 0),
                              state.get("kind") == GENERATOR_KIND), path))
        except Exception:  # noqa: BLE001  missing, damaged or foreign: not a candidate
            continue
    return max(progress, key=lambda p: p[0])[1] if progress else None


def run_of(path: Path) -> str | None:
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True).get("run")
    except Exception:  # noqa: BLE001
        return None


class RunFiles:
    """Where a run's files go: checkpoints and records in checkpoint_dir, sample grids in sample_dir."""

    def __init__(self, checkpoint_dir: str | Path, sample_dir: str | Path):
        self.dir, self.samples = Path(checkpoint_dir), Path(sample_dir)
        self.summary, self.report = self.dir / "summary.txt", self.dir / "report.md"
        self.metrics_csv, self.metrics_json = self.dir / "metrics.csv", self.dir / "metrics.json"
        self.loss_plot, self.final_generator = self.dir / "training_loss.png", self.dir / "generator_final.pth"

    def prepare(self, run_id: str) -> None:
        """Create the output folders, prove they are writable and that no other run owns them, before any time
        is spent training."""
        for folder, flag in ((self.dir, "--checkpoint-dir"), (self.samples, "--sample-dir")):
            try:
                folder.mkdir(parents=True, exist_ok=True)
                probe = folder / f".write-test-{os.getpid()}"
                probe.write_bytes(b"")
                probe.unlink()
            except OSError as e:
                raise GANError(f"cannot write to {folder} ({e.strerror or e}): pass a writable {flag}") from None
            for stale in folder.glob(".*.tmp") if os.name == "posix" else ():  # os.kill(pid, 0) kills on Windows
                pid = stale.name.split(".")[-2]  # .NAME.PID.tmp, left by a run killed in mid-write
                if pid.isdigit() and not _process_alive(int(pid)):
                    stale.unlink(missing_ok=True)
        self.check_owner(run_id)

    def check_owner(self, run_id: str) -> None:
        """Refuse a folder that holds another run's files: its checkpoints, grids and record would be pruned,
        overwritten or mixed with ours."""
        others = [p for p in (*self.dir.glob("gan_epoch_*.pth"), self.final_generator) if p.exists() and run_of(p) != run_id]
        grids = [] if others or any(self.dir.glob("gan_epoch_*.pth")) else sorted(self.samples.glob("epoch_*.png"))
        if others:
            newest = newest_checkpoint(self.dir, resumable=True)
            how = f"continue it with `python cli.py resume {newest}`" if newest else "keep it"
            raise GANError(f"{self.dir} already holds another run ({others[0].name}): {how}, or start this one in a "
                           f"folder of its own with --checkpoint-dir DIR --sample-dir DIR")
        if grids:
            raise GANError(f"{self.samples} already holds another run's sample grids ({grids[0].name}): pass "
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

    def write_record(self, history: list[dict], stat_names, writer=None) -> None:
        """metrics.csv and metrics.json, rewritten whole from the history (which lives in every checkpoint), so a
        resumed run continues one record with no duplicated or missing epochs; the loss plot; TensorBoard."""
        columns = list(dict.fromkeys(["epoch", *stat_names, "epoch_time_s", "images_per_s", "lr_g", "lr_d",
                                      *(key for row in history for key in row)]))  # FID etc. on --eval-every epochs
        buf = io.StringIO()
        out = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
        out.writeheader()
        out.writerows(history)
        write_text(self.metrics_csv, buf.getvalue())
        write_text(self.metrics_json, json.dumps(history, indent=1) + "\n")
        if history:
            save_loss_plot(history, self.loss_plot)
        for key, value in history[-1].items() if writer and history else ():
            if key != "epoch" and isinstance(value, (int, float)):
                writer.add_scalar(key, value, history[-1]["epoch"])

    def tensorboard(self, enabled: bool):
        """A SummaryWriter in checkpoint_dir/tensorboard as a context manager (closed however training stops),
        or a no-op one when TensorBoard is off."""
        if not enabled:
            return contextlib.nullcontext()
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise GANError("--tensorboard needs the tensorboard package: pip install tensorboard") from None
        return contextlib.closing(SummaryWriter(log_dir=str(self.dir / "tensorboard")))

    def write_report(self, config: dict, history: list[dict], generator: Path, checkpoint: Path | None) -> Path:
        last = history[-1]
        best_g, best_d = min(history, key=lambda r: r["g_loss"]), min(history, key=lambda r: r["d_loss"])
        total = sum(r["epoch_time_s"] for r in history)
        lines = ["# Training report", "",
                 f"{len(history)} epochs of `{config['arch']}` in {total / 60:.1f} min of training "
                 f"({total / len(history):.1f} s per epoch, {last['images_per_s']:,.0f} images/s in the last).", "",
                 "| | epoch | D loss | G loss | D(x) | D(G(z)) |", "|---|---|---|---|---|---|",
                 *(f"| {name} | {r['epoch']} | {r['d_loss']:.3f} | {r['g_loss']:.3f} | {r['d_real']:.3f} | "
                   f"{r['d_fake']:.3f} |" for name, r in (("final", last), ("lowest G loss", best_g),
                                                         ("lowest D loss", best_d))), "",
                 "## Files", "",
                 f"- checkpoint to resume from: `{checkpoint}`",
                 f"- generator alone, for `generate`: `{generator}`",
                 f"- sample grids (fixed noise, one per epoch): `{self.samples}/epoch_NNNN.png`",
                 f"- metrics: `{self.metrics_csv}`, `{self.metrics_json}`",
                 f"- loss curves: `{self.loss_plot}`", f"- model summary: `{self.summary}`", "",
                 "## Config", "", "```json", json.dumps(config, indent=1), "```", ""]
        return write_text(self.report, "\n".join(lines))


# ---- the record: summary, pictures ----

def model_summary(G: nn.Module, D: nn.Module, header: str) -> str:
    """Each network's layers with output shapes and parameter counts, as a text table (G: z -> body; D: features
    -> head, as gan.py builds them)."""
    device = next(G.parameters()).device
    labels = torch.zeros(2, dtype=torch.long, device=device) if G.n_classes else None
    nets = {"Generator": (G, list(G.body.named_children()), (torch.zeros(2, G.latent_dim, device=device), labels)),
            "Discriminator": (D, [*D.features.named_children(), ("head", D.head)],
                              (torch.zeros(2, 1, 28, 28, device=device), labels))}
    lines = [header, ""]
    for title, (net, layers, inputs) in nets.items():
        rows, hooks = [], []
        for name, module in layers:
            hooks.append(module.register_forward_hook(
                lambda m, i, o, name=name: rows.append((name, type(m).__name__, tuple(o.shape[1:]),
                                                        sum(p.numel() for p in m.parameters())))))
        was_training = net.training
        net.eval()
        with torch.no_grad():
            net(*inputs)
        net.train(was_training)
        for h in hooks:
            h.remove()
        lines += [f"{title}  (input {tuple(inputs[0].shape[1:])}, batch dimension omitted)",
                  f"{'#':>6}  {'layer':<18} {'output shape':<18} {'params':>10}"]
        lines += [f"{n:>6}  {kind:<18} {str(shape):<18} {params:>10,}" for n, kind, shape, params in rows]
        if getattr(net, "n_classes", 0):
            lines.append(f"{'':>6}  conditioned on the label (one-hot into G, projection in D)")
        lines += [f"{'':>6}  {'total':<18} {'':<18} {sum(p.numel() for p in net.parameters()):>10,}", ""]
    return "\n".join(lines)


MAX_GRID = 10_000


def check_sample_count(n: int, as_grid: bool) -> None:
    if n <= 0:
        raise GANError(f"--n must be at least 1, got {n}")
    if as_grid and n > MAX_GRID:
        raise GANError(f"--n {n} is too many for one picture (at most {MAX_GRID:,}): write an .npy with --out x.npy")
    need, available = n * 28 * 28 * 4 * 2, available_memory()  # the images, plus a copy while saving
    if available and need > available * 0.8:
        raise GANError(f"--n {n} needs about {need / 2**30:.1f} GiB of memory but only {available / 2**30:.1f} GiB "
                       f"is available: ask for fewer images at a time")


def available_memory() -> int | None:
    """Bytes a new allocation can get: Linux's MemAvailable (free memory plus cache it can reclaim); elsewhere the
    physical memory, where the system tells it (macOS has no count of available pages); None: no guess is made."""
    try:
        with open("/proc/meminfo") as meminfo:
            return next(int(line.split()[1]) * 1024 for line in meminfo if line.startswith("MemAvailable:"))
    except (OSError, StopIteration, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def rows_by_digit(images: torch.Tensor, labels: torch.Tensor, n_classes: int = 10) -> tuple[torch.Tensor, int]:
    """The cells of a grid with one row per digit (row d holds the d's, then white cells where a digit has fewer
    images than the row is long), and the row length."""
    per_row = int(torch.bincount(labels, minlength=n_classes).max())
    cells = torch.ones(n_classes * per_row, *images.shape[1:])
    for d in range(n_classes):
        mine = images[labels == d]
        cells[d * per_row:d * per_row + len(mine)] = mine
    return cells, per_row


def make_grid(images: torch.Tensor, nrow: int = 8) -> torch.Tensor:
    from torchvision.utils import make_grid as tv_make_grid
    return tv_make_grid(images, nrow=nrow, padding=2, pad_value=1.0)


def save_grid(images: torch.Tensor, path: str | Path, nrow: int = 8) -> Path:
    """A PNG grid of images in [0, 1], written atomically (its folder made if need be)."""
    from torchvision.utils import save_image
    make_parent(path)
    return atomic_write(Path(path), lambda f: save_image(make_grid(images, nrow=nrow), f, format="png"))


def save_array(images: torch.Tensor, path: str | Path) -> Path:
    """Images as a float32 .npy array of shape (n, 1, 28, 28), values in [0, 1]."""
    import numpy as np
    make_parent(path)
    return atomic_write(Path(path), lambda f: np.save(f, images.numpy().astype(np.float32)))


def _has_display() -> bool:
    import matplotlib
    backend = matplotlib.get_backend().lower()
    return not any(name in backend for name in ("agg", "pdf", "svg", "ps", "cairo", "template"))


def default_output(kind: str, suffix: str) -> Path:
    """Where a drawing goes when no --out is given: samples/<kind>_<time><suffix>."""
    import time
    return Path("samples") / f"{kind}_{time.strftime('%Y%m%d-%H%M%S')}{suffix}"


def make_parent(path: str | Path) -> None:
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise GANError(f"cannot create {Path(path).parent} ({e.strerror}): choose another --out") from None


def show_or_save_grid(images: torch.Tensor, nrow: int, out: str | Path | None, show: bool | None) -> None:
    """Show a grid in a matplotlib figure where there is a display (a desktop or a notebook), and save it to `out`;
    headless and with no `out`, save it to samples/generated_<time>.png."""
    import math

    show = _has_display() if show is None else show
    if out is None and not show:
        out = default_output("generated", ".png")
    if out is not None:
        save_grid(images, out, nrow=nrow)
    if show:
        import matplotlib.pyplot as plt
        plt.figure(figsize=(nrow, math.ceil(len(images) / nrow)))
        plt.imshow(make_grid(images, nrow=nrow).permute(1, 2, 0).numpy(), cmap="gray")
        plt.axis("off")
        plt.show()


def save_loss_plot(history: list[dict], path: Path) -> Path:
    import matplotlib
    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure  # a Figure object, not pyplot: no global state, no display needed

    epochs = [r["epoch"] for r in history]
    evaluated = [r for r in history if "fid" in r]  # --eval-every adds a third panel
    fig = Figure(figsize=(13.5 if evaluated else 9, 3.6), layout="constrained")
    losses, probs, *quality = fig.subplots(1, 3 if evaluated else 2)
    losses.plot(epochs, [r["d_loss"] for r in history], marker="o", label="D loss")
    losses.plot(epochs, [r["g_loss"] for r in history], marker="o", label="G loss")
    losses.set(xlabel="epoch", ylabel="mean loss (BCE)", title="Losses")
    probs.plot(epochs, [r["d_real"] for r in history], marker="o", label="D(x), real")
    probs.plot(epochs, [r["d_fake"] for r in history], marker="o", label="D(G(z)), fake")
    probs.axhline(0.5, color="grey", lw=0.8, ls="--")
    probs.set(xlabel="epoch", ylabel="mean D output", ylim=(0, 1), title="Discriminator's view")
    if evaluated:
        quality[0].plot([r["epoch"] for r in evaluated], [r["fid"] for r in evaluated], marker="o", label="FID")
        quality[0].set(xlabel="epoch", ylabel="FID in the classifier's space (log)", yscale="log",
                       title="Quality (lower is better)")
    for ax in (losses, probs, *quality):
        ax.legend()
        ax.grid(alpha=0.3)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return atomic_write(path, lambda f: f.write(buf.getvalue()))
