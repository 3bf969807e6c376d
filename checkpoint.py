"""The checkpoint format: what a file holds, how it is written whole, and how it is read without trusting it.

    state, cfg = read_checkpoint_file("checkpoints/gan_epoch_5.pth"), ...   # read safely, checked field by field
    s.save("checkpoints/gan_epoch_6.pth", asdict(cfg))                 # a TrainingState, written atomically

A file is loaded with torch's weights_only unpickler (it never runs code from the file), then checked field by
field: a damaged, foreign or lying file is one line naming what is wrong, before any network is built or any
epoch is trained. It knows the networks only as state dicts; gan.py rebuilds them from the config a file holds.
"""

from __future__ import annotations

import io
import json
import math
import os
import pickle
import re
import shlex
import uuid
import warnings
import zipfile
import zlib
from dataclasses import dataclass, field, fields
from pathlib import Path

import torch
from torch import nn

from config import STAT_NAMES, BadValue, Config, GANError
from files import atomic_write

# 2: the learning rates are stored as lr_g and lr_d (format 1 had lr plus optional overrides), and each file
# names the run that wrote it. 3: the config holds r1. 4: a checkpoint names the data it trained on (its size and
# checksum), so a mid-epoch resume on other data restarts the epoch instead of indexing the wrong images. 5: the
# config holds the image size and colour, and each file its lineage. 6: the config may give D a width of its own
# (d_width), which a reader of format 5 would not build. Older files are still read (upgrade_config).
FORMAT = 6
CHECKPOINT_KIND = "mnist-gan-checkpoint"
GENERATOR_KIND = "mnist-gan-generator"
# fields that format 1 files written before these options existed lack, with the value they had then
FORMAT1_MISSING = {"conditional": False, "ema": 0.0, "dataset": "mnist"}
DIVERGED_ADVICE = "Try a lower --lr or --label-smoothing 0.9"  # said when a loss or a weight becomes NaN


def shell_path(path: str | Path) -> str:
    """`path` as a shell word that a command line reads as that path: quoted (spaces, quotes, backticks), and not
    taken for an option where it starts with a dash; a path with a line break, an escape or another character that
    does not print is written in bash's $'...' quoting, each byte that is not printable ASCII as \\xNN (its bytes as
    the file system has them, so that any locale reads it back), so that the command stays one line that a terminal
    shows as it is and bash or zsh reads back as the path (`path_of` reads it back here)."""
    path = str(path)
    path = f"./{path}" if path.startswith("-") else path
    if path.isprintable():
        return shlex.quote(path)
    return "$'" + "".join(ansi_c(b) for b in os.fsencode(path)) + "'"


def ansi_c(byte: int) -> str:
    """One byte as $'...' quoting writes it: printable ASCII as itself (a quote or backslash escaped), else \\xNN."""
    c = chr(byte)
    if " " <= c <= "~":
        return "\\" + c if c in "\\'" else c
    return f"\\x{byte:02x}"


def path_of(word: str) -> str:
    """The path a word of shell_path's stands for."""
    if word.startswith("$'") and word.endswith("'"):
        parts = re.findall(r"\\x([0-9a-f]{2})|\\(.)|(.)", word[2:-1], flags=re.DOTALL)
        return os.fsdecode(bytes(int(h, 16) if h else ord(e or c) for h, e, c in parts))
    return shlex.split(word)[0]


def resume_command(path: str | Path) -> str:
    """The command that continues a checkpoint, pasteable into a shell."""
    return f"python cli.py resume {shell_path(path)}"


# resume_command read back from a message (search.py rewrites it into its own): after a backtick or "with: ", as the
# messages give it (a folder named like the command is not taken for it); group 1 the path as shell_path writes it
RESUME_COMMAND = re.compile(
    r"""(?:(?<=`)|(?<=with: ))python cli\.py resume ((?:[\w@%+=:,./-]+|'[^']*'|"[^"]*")+|\$'(?:[^'\\]|\\.)*')""")


def upgrade_config(saved: dict, file_format: int) -> dict:
    """A stored config as today's Config fields: format 1's lr/lr_g/lr_d become two rates, and fields older
    files lack take the value that reproduces what those runs did (no R1; fp32, which trained every run before
    --precision existed, so that `auto` does not switch one to bf16 on resume; format 1: unconditional, without
    EMA)."""
    before_5 = {"size": 28, "channels": "1"} if file_format < 5 else {}  # every run before colour was 28x28 grey
    before_5["beta1"] = 0.5  # files store their beta1; one without it trained at the default of then, 0.5
    if file_format >= 3:
        return {"precision": "fp32", **before_5, **saved}
    if file_format == 2:
        return {"r1": 0.0, "precision": "fp32", **before_5, **saved}
    config = {**FORMAT1_MISSING, "r1": 0.0, "precision": "fp32", **before_5, **saved}
    lr = config.pop("lr", 2e-4)
    config["lr_g"] = config.get("lr_g") if config.get("lr_g") is not None else lr
    config["lr_d"] = config.get("lr_d") if config.get("lr_d") is not None else lr
    return config


def save_state(path: str | Path, state: dict, replace: bool = True) -> Path:
    """torch.save through atomic_write, serialised in memory first: torch's file writer turns a full disk or a
    Ctrl-C in mid-write into an opaque RuntimeError, where a plain write raises OSError or KeyboardInterrupt."""
    buf = io.BytesIO()
    torch.save(state, buf)
    return atomic_write(path, lambda f: f.write(buf.getbuffer()), replace=replace)


def get_rng_state(device: torch.device) -> dict:
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    if device.type == "mps":
        state["mps"] = torch.mps.get_rng_state()
    return state


def set_rng_state(state: dict, device: torch.device, path) -> None:
    """Restore the random-number state a checkpoint saved; an entry that this torch cannot take is one line."""
    try:
        torch.set_rng_state(state["cpu"])
        if device.type == "cuda" and "cuda" in state:
            torch.cuda.set_rng_state(state["cuda"], device)
        if device.type == "mps" and "mps" in state:
            torch.mps.set_rng_state(state["mps"])
    except RuntimeError:
        raise GANError(f"{path} is damaged or inconsistent (its random-number state is not one this torch takes): "
                       f"use another checkpoint") from None


def data_fingerprint(images: torch.Tensor, labels: torch.Tensor) -> dict:
    """What a checkpoint remembers of its training data: the size, and a checksum of every image (uint8, summed as
    the [-1, 1] floats that format 4 summed, a chunk at a time) and label."""
    crc = 0
    for chunk in images.cpu().split(4096):
        crc = zlib.crc32(chunk.float().div_(127.5).sub_(1.0).numpy().tobytes(), crc)
    return {"n": len(images), "crc": zlib.crc32(labels.cpu().numpy().tobytes(), crc)}


def lineage(history: list[dict]) -> str:
    """A fingerprint of a run's past: the losses of every epoch it trained. Two files of one run whose fingerprints
    differ at the same epoch come from two branches of it (one resumed from an older checkpoint of the other)."""
    rows = [[row.get("epoch"), *(row.get(k) for k in STAT_NAMES)] for row in history]
    return f"{zlib.crc32(json.dumps(rows).encode()):08x}"


def own_lineage(state: dict) -> bool:
    """Whether a checkpoint's lineage is the fingerprint of the history it holds."""
    try:
        return isinstance(state["history"], list) and state["lineage"] == lineage(state["history"])
    except (AttributeError, TypeError, ValueError):
        return False


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
    run_id: str | None = None  # names the run, so that no other run writes into its folders
    history: list = field(default_factory=list)
    epoch: int = 0  # epochs completed
    pos: int = 0  # images of the next epoch already trained on
    perm: torch.Tensor | None = None
    sums: torch.Tensor | None = None
    seconds: float = 0.0  # time spent on the epoch in progress
    data: dict | None = None  # data_fingerprint of what the epoch in progress trains on
    last_checkpoint: Path | None = None

    def __post_init__(self):
        self.run_id = self.run_id or uuid.uuid4().hex[:12]

    @property
    def G_sample(self) -> nn.Module:
        return self.G_ema or self.G  # what grids, exports and evaluations draw from

    def save(self, path: Path, config: dict) -> Path:
        """Everything needed to continue exactly: networks, optimizers, epoch, config, fixed noise, history, RNG
        state, and for a checkpoint written mid-epoch the epoch's order, position and running sums."""
        nets = {"G": self.G, "D": self.D, "opt_g": self.opt_g, "opt_d": self.opt_d,
                **({"G_ema": self.G_ema} if self.G_ema is not None else {})}
        # the losses are checked before the last update of an epoch, so the weights themselves are checked here
        broken = [name for name in ("G", "D", "G_ema") if name in nets and not all(
            torch.isfinite(t).all() for t in nets[name].state_dict().values() if t.is_floating_point())]
        if broken:
            raise GANError(f"training diverged (the weights of {', '.join(broken)} became NaN or infinite): "
                           f"{path.name} was not written and the checkpoints already in {path.parent} are kept. "
                           f"{DIVERGED_ADVICE}")
        partial = self.pos > 0
        state = {"format": FORMAT, "kind": CHECKPOINT_KIND, "run": self.run_id, "lineage": lineage(self.history),
                 "config": config, "epoch": self.epoch, **{name: net.state_dict() for name, net in nets.items()},
                 "fixed_z": self.fixed_z.cpu(), "history": self.history,
                 "rng": get_rng_state(next(self.G.parameters()).device), "data": self.data, "pos": self.pos,
                 "perm": self.perm.cpu() if partial else None, "sums": self.sums.cpu() if partial else None,
                 "seconds": self.seconds if partial else 0.0}
        return save_state(path, state)

    def export(self, path: Path, config: dict) -> Path:
        """The generator alone (no D, no optimizer state): a small file to share; `generate` accepts it."""
        state = {"format": FORMAT, "kind": GENERATOR_KIND, "run": self.run_id, "lineage": lineage(self.history),
                 "config": config, "G": self.G_sample.state_dict(), "fixed_z": self.fixed_z.cpu(), "epoch": self.epoch,
                 "pos": self.pos}
        return save_state(path, state)

    def continues_on(self, data: dict, batch_size: int) -> bool:
        """Whether the epoch in progress can go on exactly on `data` (a data_fingerprint) in batches of batch_size;
        if not, it is set to start again from its first batch. Either way the state now trains on `data`."""
        same = self.data in (None, data) and self.perm is not None and len(self.perm) == data["n"]
        ok = not self.pos or (same and self.pos % batch_size == 0 and self.pos <= data["n"] // batch_size * batch_size)
        self.pos, self.data = self.pos if ok else 0, data
        return ok

    def restore(self, saved: dict, device: torch.device, lr_g: float, lr_d: float, path) -> None:
        """Load a checked checkpoint into this fresh state; the learning rates given now win over the saved ones."""
        self.G.load_state_dict(saved["G"])
        self.D.load_state_dict(saved["D"])
        if self.G_ema is not None:
            self.G_ema.load_state_dict(saved.get("G_ema") or saved["G"])
        for opt, net, key, lr in ((self.opt_g, self.G, "opt_g", lr_g), (self.opt_d, self.D, "opt_d", lr_d)):
            load_optimizer(opt, net, saved[key], path, key)
            for group in opt.param_groups:
                group["lr"] = lr
        self.fixed_z, self.history, self.run_id = saved["fixed_z"], list(saved["history"]), saved.get("run")
        self.epoch, self.pos, self.seconds, self.data = saved["epoch"], saved["pos"], saved["seconds"], saved["data"]
        if self.pos:
            self.perm, self.sums = saved["perm"].to(device), saved["sums"].to(device)
        set_rng_state(saved["rng"], device, path)


def load_optimizer(opt: torch.optim.Optimizer, net: nn.Module, state, path, key: str) -> None:
    """Adam's saved moments, refused unless each has the shape of its weight and a value Adam can have (finite, the
    step and second moment not negative). The settings (betas, eps, weight decay, amsgrad...) are the config's, not
    the file's: a file cannot turn the optimizer into another one."""
    bad = f"{path} holds an optimizer state ({key}) that does not fit its networks: the file is inconsistent"
    settings = [{k: v for k, v in group.items() if k != "params"} for group in opt.param_groups]
    if not isinstance(state, dict) or not isinstance(state.get("param_groups"), list) or not all(
            isinstance(g, dict) for g in state["param_groups"]):
        raise GANError(bad)
    try:
        opt.load_state_dict(state)
    except (ValueError, KeyError, TypeError, RuntimeError, AttributeError, IndexError):
        raise GANError(bad) from None
    for group, own in zip(opt.param_groups, settings):
        params = group["params"]
        group.clear()
        group.update(own, params=params)
    for p in net.parameters():
        moments = opt.state.get(p, {})
        if any(torch.is_tensor(v) and v.dim() and v.shape != p.shape for v in moments.values()):
            raise GANError(bad)
        if not all(torch.is_tensor(v) and v.is_floating_point() and torch.isfinite(v).all()
                   and (k == "exp_avg" or (v >= 0).all()) for k, v in moments.items()):
            raise GANError(f"{path} holds an optimizer state ({key}) with NaN, infinite, negative or whole-number "
                           f"moments: the file is damaged; use another checkpoint")


# ---- reading a file without trusting it ----

def read_torch_file(path: str | Path, kinds: tuple[str, ...], what: str) -> dict:
    """torch.load with weights_only=True (never runs code from the file), every failure as one clear line; the
    file must be a dict whose "kind" is one of `kinds`. `what` says what the file should be, for the messages."""
    path = Path(path)
    if path.is_dir():
        raise GANError(f"{path} is a folder: pass a checkpoint file in it, or --checkpoint-dir {path} for its newest")
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
            IndexError, KeyError, MemoryError, OverflowError) as e:
        what = "truncated or damaged" if isinstance(e, (RuntimeError, EOFError, zipfile.BadZipFile)) else "damaged"
        raise GANError(f"{path} is {what}, or not a PyTorch checkpoint ({type(e).__name__}): use another "
                       f"checkpoint") from None
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
    for key, what in (("run", "names its run"), ("lineage", "gives its lineage")):
        if not isinstance(state.get(key), (str, type(None))):
            raise GANError(f"{path} {what} with {type(state[key]).__name__} {state[key]!r}, not a text: the file is "
                           f"damaged")
    if state.get("lineage") is not None and not re.fullmatch(r"[0-9a-f]{8}", state["lineage"]):
        raise GANError(f"{path} gives a lineage that is not the fingerprint of its own history: the file is damaged")
    state["config"] = upgrade_config(state["config"], state["format"])
    return state


def read_training_checkpoint(path: str | Path, build_generator, build_discriminator, fixed_rows) -> tuple[dict, Config]:
    """A full training checkpoint (not a generator alone) and its config, each thing a resume needs checked for type,
    shape and range: the progress (check_progress), the weights against the networks `build_*(cfg)` make (on the
    meta device: a file that asks for huge networks is refused before any memory is allocated), the fixed noise
    against the `fixed_rows(cfg)` rows a grid draws."""
    state = read_checkpoint_file(path)
    if state["kind"] != CHECKPOINT_KIND:
        raise GANError(f"{path} holds only a generator (no discriminator or optimizer state), so training cannot "
                       f"resume from it: use a gan_epoch_N.pth checkpoint")
    missing = [k for k in ("opt_g", "opt_d", "epoch", "fixed_z", "history", "rng") if k not in state]
    if missing:
        raise GANError(f"{path} is incomplete (missing {', '.join(missing)}): use another checkpoint")
    state.setdefault("pos", 0)
    state.setdefault("seconds", 0.0)
    state.setdefault("data", None)
    problem = check_progress(state)
    if problem:
        raise GANError(f"{path} is damaged or inconsistent ({problem}): use another checkpoint")
    cfg = checked_config(state, path)
    with torch.device("meta"):
        check_weights(build_generator(cfg), state.get("G"), path, "generator")
        check_weights(build_discriminator(cfg), state.get("D"), path, "discriminator")
        if state.get("G_ema") is not None:
            check_weights(build_generator(cfg), state["G_ema"], path, "generator average")
    rows = fixed_rows(cfg)
    if not fixed_noise_ok(state["fixed_z"], rows, cfg.latent_dim):
        raise GANError(f"{path} is damaged or inconsistent (its fixed noise is not {rows} x {cfg.latent_dim} "
                       f"floats of normal noise): use another checkpoint")
    if state.get("lineage") is not None and not own_lineage(state):
        raise GANError(f"{path} gives a lineage that is not the fingerprint of its own history: the file is damaged")
    return state, cfg


def read_generator(path: str | Path, build_generator) -> tuple[dict, Config]:
    """The weights a checkpoint or generator file draws with (the moving average's where the run kept one: they draw
    best), checked against the network `build_generator(cfg)` makes, and the file's config."""
    state = read_checkpoint_file(path)
    cfg = checked_config(state, path)
    weights = state.get("G_ema") or state.get("G")
    with torch.device("meta"):
        check_weights(build_generator(cfg), weights, path, "generator")
    return weights, cfg


def is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def is_tensor(value, dtype, dims: int) -> bool:
    return torch.is_tensor(value) and value.dtype == dtype and value.dim() == dims


def check_progress(state: dict) -> str | None:
    """What is wrong with a checkpoint's record of its progress, or None: the epoch, the history, the RNG state and,
    mid-epoch, the shuffle order, position and running sums."""
    epoch, pos, history = state["epoch"], state["pos"], state["history"]
    if not is_count(epoch) or not is_count(pos):
        return f"epoch {epoch!r} and position {pos!r} must be whole numbers of at least 0"
    if not isinstance(history, list) or len(history) != epoch or not all(
            isinstance(row, dict) and row.get("epoch") == i + 1 and all(
                isinstance(v, (int, float, str)) and not isinstance(v, bool) and
                (not isinstance(v, float) or math.isfinite(v)) and (isinstance(v, str) or abs(v) < 1e12)
                for v in row.values()) and all(k in row for k in STAT_NAMES)
            for i, row in enumerate(history)):
        return f"its history is not one record of finite numbers per each of its {epoch} epochs, in order"
    rng = state["rng"]
    if not isinstance(rng, dict) or not is_tensor(rng.get("cpu"), torch.uint8, 1) or \
            rng["cpu"].numel() != torch.get_rng_state().numel() or not all(
                is_tensor(rng[k], torch.uint8, 1) and 0 < rng[k].numel() <= 64 for k in ("cuda", "mps") if k in rng):
        return "its random-number state is not the one torch saves"
    if not isinstance(state["seconds"], (int, float)) or not math.isfinite(state["seconds"]) or state["seconds"] < 0:
        return f"its time {state['seconds']!r} is not a number of seconds"
    data = state["data"]
    if data is not None and not (isinstance(data, dict) and is_count(data.get("n")) and is_count(data.get("crc"))):
        return "its record of the training data is not a size and a checksum"
    if pos:
        perm, sums = state.get("perm"), state.get("sums")
        if not is_tensor(perm, torch.int64, 1) or pos > len(perm) or not torch.equal(perm.sort().values,
                                                                                    torch.arange(len(perm))):
            return f"position {pos} in an epoch needs that epoch's shuffle order, which is missing or not a permutation"
        if not torch.is_tensor(sums) or not sums.is_floating_point() or tuple(sums.shape) != (len(STAT_NAMES),) or \
                not torch.isfinite(sums).all() or sums.abs().max() > 1e9:
            return f"position {pos} in an epoch needs its {len(STAT_NAMES)} running sums, finite and of losses' size"
    return None


def checked_config(state: dict, path) -> Config:
    """The config a checkpoint was trained with, as a Config that passes validate: values of the wrong type or out
    of range mean a damaged or foreign file."""
    kinds = {f.name: f.type for f in fields(Config)}
    saved = state["config"]
    wrong = [k for k, v in saved.items() if k in kinds and not same_kind(kinds[k], v)]
    if wrong:
        raise GANError(f"{path} holds an invalid config ({', '.join(wrong)} of the wrong type): the file is damaged "
                       f"or not from this tool")
    ignored = {"width"} if saved.get("arch", "dcgan") != "dcgan" else set()  # older files gave MLPs the default's
    try:
        cfg = Config(**{k: v for k, v in saved.items() if k in kinds and k not in ignored})
    except GANError as e:
        raise GANError(f"{path} holds an invalid config ({e.for_cli() if isinstance(e, BadValue) else e})") from None
    return cfg


def same_kind(annotation: str, value) -> bool:
    """Whether a saved config value has its field's type (`annotation`, as written in Config; a float also takes
    an int)."""
    if value is None:
        return annotation.endswith("| None")
    kind = annotation.split(" |")[0]
    if kind == "list[str]":
        return type(value) is list and all(type(v) is str for v in value)
    if kind == "float":
        return type(value) in (int, float)
    return type(value).__name__ == kind


def has_batchnorm(weights: dict) -> bool:
    """Whether a network's weights (a state dict, or its names) hold BatchNorm layers."""
    return any(k.endswith("running_mean") for k in weights)


def without_batchnorm(expected: dict, weights: dict) -> bool:
    """Whether `weights` are the `expected` network's convolutions without its BatchNorm layers (a lever's D)."""
    def convolutions(shapes):
        return [shape for shape in shapes if len(shape) == 4]
    return (has_batchnorm(expected) and not has_batchnorm(weights)
            and convolutions(shape for shape, _ in expected.values()) == convolutions(
                tuple(v.shape) for v in weights.values()))


def check_weights(net: nn.Module, weights, path, what: str) -> None:
    """Say in one line when `weights` do not fit `net` (built on the meta device, so nothing is allocated yet)."""
    if not isinstance(weights, dict) or not all(torch.is_tensor(v) for v in weights.values()):
        raise GANError(f"{path} has no {what} weights: use another checkpoint")
    expected = {k: (tuple(v.shape), v.dtype) for k, v in net.state_dict().items()}
    if expected != {k: (tuple(v.shape), v.dtype) for k, v in weights.items()}:
        if what == "discriminator" and without_batchnorm(expected, weights):
            raise GANError(f"{path} holds a discriminator without BatchNorm, as search.py's levers build it (the "
                           f"shipped model's recipe): continue it with `python search.py --data-dir DIR --lever LEVER "
                           f"--train FOLDER --epochs N --resume {shell_path(path)}`, LEVER the one it was "
                           f"trained with and FOLDER the one above its checkpoints folder")
        raise GANError(f"the {what} weights in {path} do not fit the architecture its config describes "
                       f"(different arch, width, D's width, latent size or number type?): the file is inconsistent")
    if not all(torch.isfinite(v).all() for v in weights.values() if v.is_floating_point()):
        raise GANError(f"the {what} weights in {path} hold NaN or infinite values: the file is damaged; use another "
                       f"checkpoint")
    if any((v < 0).any() for k, v in weights.items() if k.endswith(("running_var", "num_batches_tracked"))):
        raise GANError(f"the {what} weights in {path} hold a negative BatchNorm variance or count: the file is "
                       f"damaged; use another checkpoint")


def fixed_noise_ok(fixed_z, rows: int, latent_dim: int) -> bool:
    return (torch.is_tensor(fixed_z) and fixed_z.dtype == torch.float32 and tuple(fixed_z.shape) == (rows, latent_dim)
            and bool(torch.isfinite(fixed_z).all()) and float(fixed_z.abs().max()) < 100)  # N(0, 1) noise


def peek(path: Path) -> dict | None:
    """A file of this tool (a checkpoint or a generator), opened without reading its tensors; None for anything else:
    missing, damaged, or another program's file."""
    if not Path(path).is_file():  # a FIFO or device named like a checkpoint would never end a read
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # noqa: BLE001  missing, damaged, foreign, or torch's legacy format (which mmap cannot read)
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception:  # noqa: BLE001
            return None
    return state if isinstance(state, dict) and state.get("kind") in (CHECKPOINT_KIND, GENERATOR_KIND) else None


def run_of(path: Path) -> str | None:
    """The run that wrote a checkpoint or generator file (None: not a file of this tool)."""
    state = peek(path)
    return state.get("run") if state and isinstance(state.get("run"), str) else None


def origin_of(path: Path) -> tuple[str | None, str | None]:
    """The run that wrote a file and its lineage at the file's epoch (None where the file does not say: one from
    before lineages were recorded, or not a file of this tool)."""
    state = peek(path) or {}
    run, mark = state.get("run"), state.get("lineage")
    if mark is None and isinstance(state.get("history"), list):
        try:
            mark = lineage(state["history"])
        except (AttributeError, TypeError, ValueError):
            mark = None
    return (run if isinstance(run, str) else None), (mark if isinstance(mark, str) else None)


def finished_generator(path: Path, epochs: int) -> bool:
    """Whether a run's generator_final.pth is there, from the end of its `epochs` epochs."""
    return path.is_file() and progress_of(path) == (epochs, 0)


def progress_of(path: Path) -> tuple[int, int] | None:
    """(epoch, position) a checkpoint or generator file says it reached, or None for a file that is not one."""
    state = peek(path)
    try:
        return (int(state.get("epoch", 0)), int(state.get("pos") or 0)) if state else None
    except (TypeError, ValueError):
        return None

