"""What a run records and draws: metrics CSV/JSON, the loss plot, the model summary, the report, TensorBoard, and
sample grids (each tagged with the run that drew it).

    write_record(run, history)               # metrics.csv, metrics.json and training_loss.png, rewritten whole
    save_grid(images, "samples/x.png", nrow=4)

`run` is a rundir.RunFolder (only its paths are used). Builds on files.py (atomic writes), torchvision (grids) and
matplotlib (plots); nothing here trains or knows the networks beyond the names gan.py gives their parts.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import time
from pathlib import Path

import torch
from torch import nn

from config import MAX_GRID, N_CLASSES, STAT_NAMES, BadValue, GANError, check_int
from files import (DRAWING_TAG, LINEAGE_TAG, RUN_TAG, FolderLock, atomic_write, check_replaceable,  # noqa: F401
                   grid_run, holder_of, make_folder, new_folders, remove_orphans, write_text)



# ---- the record ----

def write_record(run, history: list[dict], writer=None) -> None:
    """metrics.csv and metrics.json, rewritten whole from the history (which lives in every checkpoint), so a
    resumed run continues one record with no duplicated or missing epochs; the loss plot; TensorBoard."""
    columns = list(dict.fromkeys(["epoch", *STAT_NAMES, "epoch_time_s", "images_per_s", "lr_g", "lr_d",
                                  *(key for row in history for key in row)]))  # FID etc. on --eval-every epochs
    buf = io.StringIO()
    out = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    out.writeheader()
    out.writerows(history)
    write_text(run.metrics_csv, buf.getvalue())
    write_text(run.metrics_json, json.dumps(history, indent=1) + "\n")
    if history:
        save_loss_plot(history, run.loss_plot)
    for key, value in history[-1].items() if writer and history else ():
        if key != "epoch" and isinstance(value, (int, float)):
            writer.add_scalar(key, value, history[-1]["epoch"])

def check_tensorboard(enabled: bool) -> None:
    """--tensorboard needs its package: said before any data is read."""
    if enabled:
        tensorboard(None, True)


def tensorboard(run, enabled: bool):
    """A SummaryWriter in checkpoint_dir/tensorboard as a context manager (closed however training stops),
    or a no-op one when TensorBoard is off."""
    if not enabled:
        return contextlib.nullcontext()
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise GANError("--tensorboard needs the tensorboard package: pip install tensorboard") from None
    return contextlib.closing(SummaryWriter(log_dir=str(run.dir / "tensorboard"))) if run else None

def write_report(run, config: dict, history: list[dict], generator: Path, checkpoint: Path | None) -> Path:
    last = history[-1]
    best_g, best_d = min(history, key=lambda r: r["g_loss"]), min(history, key=lambda r: r["d_loss"])
    total = sum(float(r.get("epoch_time_s", 0)) for r in history)  # rows of older files may lack it
    lines = ["# Training report", "",
             f"{len(history)} epochs of `{config['arch']}` in {total / 60:.1f} min of training "
             f"({total / len(history):.1f} s per epoch, {float(last.get('images_per_s', 0)):,.0f} images/s in the "
             f"last, precision "
             f"{last.get('precision', 'fp32')}).", "",
             "| | epoch | D loss | G loss | D(x) | D(G(z)) |", "|---|---|---|---|---|---|",
             *(f"| {name} | {r['epoch']} | {r['d_loss']:.3f} | {r['g_loss']:.3f} | {r['d_real']:.3f} | "
               f"{r['d_fake']:.3f} |" for name, r in (("final", last), ("lowest G loss", best_g),
                                                     ("lowest D loss", best_d))), "",
             "## Files", "",
             f"- checkpoint to resume from: `{checkpoint}`",
             f"- generator alone, for `generate`: `{generator}`",
             f"- sample grids (fixed noise, one per epoch): `{run.samples}/epoch_NNNN.png`",
             f"- metrics: `{run.metrics_csv}`, `{run.metrics_json}`",
             f"- loss curves: `{run.loss_plot}`", f"- model summary: `{run.summary}`", "",
             "## Config", "", "```json", json.dumps(config, indent=1), "```", ""]
    return write_text(run.report, "\n".join(lines))



# ---- summary, pictures ----

def format_stats(means, images_per_s: float) -> str:
    """A training step's mean losses and D's view, and the speed, as the progress line shows them."""
    d_loss, g_loss, d_real, d_fake = (float(v) for v in means)
    return f"D {d_loss:.3f}  G {g_loss:.3f}  D(x) {d_real:.2f}  D(G(z)) {d_fake:.2f}  {images_per_s:,.0f} img/s"


def describe(cfg) -> str:
    """A config's networks in a line, for the head of the model summary."""
    return (f"arch {cfg.arch}, latent_dim {cfg.latent_dim}" + (f", width {cfg.width}" if cfg.arch == "dcgan" else "")
            + (f" (D {cfg.d_width})" if cfg.d_width not in (None, cfg.width) else "")
            + (", conditional" if cfg.conditional else "")
            + (f", {cfg.size}x{cfg.size} {'colour' if cfg.channels == '3' else 'grey'}" if cfg.images else ""))


def model_summary(G: nn.Module, D: nn.Module, header: str) -> str:
    """Each network's layers with output shapes and parameter counts, as a text table (G: z -> body; D: features
    -> head, as gan.py builds them)."""
    device = next(G.parameters()).device
    labels = torch.zeros(2, dtype=torch.long, device=device) if G.n_classes else None
    z = torch.zeros(2, G.latent_dim, device=device)
    training = G.training
    with torch.no_grad():
        image_shape = G.eval()(z, labels).shape[1:]
    G.train(training)
    nets = {"Generator": (G, list(G.body.named_children()), (z, labels)),
            "Discriminator": (D, [*D.features.named_children(), ("head", D.head)],
                              (torch.zeros(2, *image_shape, device=device), labels))}
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


def check_sample_count(n, as_grid: bool, pixels: int = 28 * 28) -> int:
    """n, the number of images asked for, if it can be drawn: a whole number, few enough for one picture or for
    the memory there is (`pixels`: values per image)."""
    check_int("n", n, 1, counted=True)
    if as_grid and n > MAX_GRID:
        raise BadValue(f"{{n}} {n} is too many for one picture (at most {MAX_GRID:,}): write an .npy array instead")
    need, available = n * pixels * 4 * 2, available_memory()  # the images, plus a copy while saving
    if available and need > available * 0.8:
        raise BadValue(f"{{n}} {n} needs about {need / 2**30:.1f} GiB of memory but only "
                       f"{available / 2**30:.1f} GiB is available: ask for fewer images at a time")
    return n


def available_memory() -> int | None:
    """Bytes a new allocation can get: the least of the system's available memory (Linux's MemAvailable, elsewhere
    the physical memory), what this process's address-space limit (`ulimit -v`) leaves, and what its cgroup's
    memory limit leaves (a container's); None where none of them is known."""
    known = []
    with contextlib.suppress(OSError, StopIteration, ValueError, IndexError):
        known.append(proc_value("/proc/meminfo", "MemAvailable:"))
    if not known:
        with contextlib.suppress(AttributeError, ValueError, OSError):
            known.append(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    with contextlib.suppress(ImportError, OSError, ValueError, StopIteration, IndexError):
        import resource
        limit = resource.getrlimit(resource.RLIMIT_AS)[0]
        if limit != resource.RLIM_INFINITY:
            known.append(limit - proc_value("/proc/self/status", "VmSize:"))
    with contextlib.suppress(OSError, ValueError):
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit.isdigit():
            known.append(int(limit) - int(Path("/sys/fs/cgroup/memory.current").read_text()))
    return max(0, min(known)) if known else None


def proc_value(path: str, key: str) -> int:
    """A value in kB from a /proc file such as /proc/meminfo, in bytes."""
    with open(path) as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key))



def rows_by_class(images: torch.Tensor, labels: torch.Tensor, n_classes: int = N_CLASSES) -> tuple[torch.Tensor, int]:
    """The cells of a grid with one row per class (row d holds the d's, then white cells where a class has fewer
    images than the row is long), and the row length."""
    per_row = int(torch.bincount(labels, minlength=n_classes).max())
    cells = torch.ones(n_classes * per_row, *images.shape[1:])
    for d in range(n_classes):
        mine = images[labels == d]
        cells[d * per_row:d * per_row + len(mine)] = mine
    return cells, per_row


def grid_layout(images: torch.Tensor, labels: torch.Tensor | None, n_classes: int) -> tuple[torch.Tensor, int]:
    """The cells and row length of the grid `generate` draws: a row per class when every class has as many images
    (a multiple of n_classes), else a near-square grid, read row by row in the order of the labels."""
    n = len(images)
    if labels is not None and n_classes and n % n_classes == 0:
        return rows_by_class(images, labels, n_classes)
    if labels is not None:
        images = images[torch.argsort(labels, stable=True)]
    return images, math.ceil(math.sqrt(n))


def make_grid(images: torch.Tensor, nrow: int = 8) -> torch.Tensor:
    from torchvision.utils import make_grid as tv_make_grid
    return tv_make_grid(images, nrow=nrow, padding=2, pad_value=1.0)


def png_bytes(images: torch.Tensor, nrow: int, tags: dict) -> bytes:
    """A PNG grid of images in [0, 1] with the text fields `tags` that say who drew it (empty values left out)."""
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo
    pixels = make_grid(images, nrow=nrow).mul(255).add_(0.5).clamp_(0, 255).permute(1, 2, 0).to(torch.uint8).numpy()
    info, buf = PngInfo(), io.BytesIO()
    for name, value in tags.items():
        if value:  # a run from before runs were named has no name to write
            info.add_text(name, value)
    Image.fromarray(pixels).save(buf, format="png", pnginfo=info)
    return buf.getvalue()


def save_grid(images: torch.Tensor, path: str | Path, nrow: int = 8, run_id: str | None = None,
              lineage: str | None = None) -> Path:
    """A run's sample grid, written atomically into its held sample folder, with the run's name and lineage inside
    the PNG so that a later run can tell its grids from another's, or from another branch's."""
    data = png_bytes(images, nrow, {RUN_TAG: run_id, LINEAGE_TAG: lineage})
    return atomic_write(path, lambda f: f.write(data))


def save_drawing(images: torch.Tensor, out: str | Path | None, kind: str, nrow: int = 8, force: bool = False) -> Path:
    """A drawing asked for by generate, interpolate or the Python API: an .npy float32 array (n, C, H, W) in [0, 1]
    when `out` ends in .npy, else a PNG grid marked as a drawing. `out` None: a new samples/<kind>_<time>.png that
    never replaces a file. A named `out` follows files.check_replaceable, held against a second writer meanwhile."""
    import numpy as np
    if out is not None and Path(out).suffix.lower() == ".npy":
        buf = io.BytesIO()
        np.save(buf, images.numpy().astype(np.float32))
        data = buf.getvalue()
    else:
        data = png_bytes(images, nrow, {DRAWING_TAG: kind})
    if out is None:
        return save_new(default_output(kind, ".png"), data)
    out = Path(out)
    holder = holder_of(out.parent)
    if holder:  # the run would write over it, or prune it: a drawing goes elsewhere
        raise GANError(f"--out {out} is in {out.parent}, which a training run ({holder}) holds: choose another --out")
    with new_folders(out.parent, "--out"), FolderLock(out, "--out", beside=True):
        check_replaceable(out, force)
        remove_orphans(out.parent)
        return atomic_write(out, lambda f: f.write(data))


def save_new(path: Path, data: bytes) -> Path:
    """`data` under `path`, or NAME-2, NAME-3... when a file is there, never written over one that exists, even by
    a process writing at the same moment."""
    make_folder(path.parent, "--out")
    for k in range(1, 1000):
        target = path if k == 1 else path.with_name(f"{path.stem}-{k}{path.suffix}")
        try:
            return atomic_write(target, lambda f: f.write(data), replace=False)
        except FileExistsError:
            continue
    raise GANError(f"{path.parent} holds too many files named like {path.name}: pass --out")


def default_output(kind: str, suffix: str) -> Path:
    """Where a drawing goes when no --out is given: samples/<kind>_<time><suffix> (see save_new)."""
    return Path("samples") / f"{kind}_{time.strftime('%Y%m%d-%H%M%S')}{suffix}"


def load_matplotlib():
    """matplotlib, or one line saying why it cannot start (MPLBACKEND naming a backend it does not have)."""
    try:
        import matplotlib
    except (ValueError, ImportError) as e:
        backend = os.environ.get("MPLBACKEND")
        cause = f"MPLBACKEND={backend} is not a backend it has: unset it or set MPLBACKEND=Agg" if backend else str(e)
        raise GANError(f"matplotlib cannot start ({cause})") from None
    return matplotlib


def has_display() -> bool:
    backend = load_matplotlib().get_backend().lower()
    return not any(name in backend for name in ("agg", "pdf", "svg", "ps", "cairo", "template"))


def plot_samples(images: torch.Tensor, labels: torch.Tensor | None, n_classes: int, out: str | Path | None,
                 nrow: int | None, show: bool | None, force: bool = False) -> Path | None:
    """What generate_and_plot_samples does with its images: an .npy `out` saves the array; else a grid, a row per
    class when `labels` are given and every class has as many images (else near-square, in label order), shown
    and/or saved by show_or_save_grid. Returns the file written, if any."""
    if out is not None and str(out).lower().endswith(".npy"):
        return save_drawing(images, out, "generated", force=force)
    if labels is not None or nrow is None:
        images, nrow = grid_layout(images, labels, n_classes)
    return show_or_save_grid(images, nrow, out, show, force)


def show_or_save_grid(images: torch.Tensor, nrow: int, out: str | Path | None, show: bool | None,
                      force: bool = False) -> Path | None:
    """Show a grid in a matplotlib figure where there is a display (a desktop or a notebook), and save it to `out`;
    headless and with no `out`, save it to a new samples/generated_<time>.png. Returns the file written."""
    show = has_display() if show is None else show
    written = None
    if out is not None or not show:
        written = save_drawing(images, out, "generated", nrow=nrow, force=force)
    if show:
        import matplotlib.pyplot as plt
        plt.figure(figsize=(nrow, math.ceil(len(images) / nrow)))
        plt.imshow(make_grid(images, nrow=nrow).permute(1, 2, 0).numpy(), cmap="gray")
        plt.axis("off")
        plt.show()
    return written


def save_loss_plot(history: list[dict], path: Path) -> Path:
    buf = io.BytesIO()
    loss_figure(history).savefig(buf, format="png", dpi=110)
    return atomic_write(path, lambda f: f.write(buf.getvalue()))


def loss_figure(history: list[dict]):
    """The losses, D's view (mean D(x), D(G(z))) and, with --eval-every, the FID, per epoch: a matplotlib Figure."""
    load_matplotlib()
    from matplotlib.figure import Figure  # a Figure object, not pyplot: no backend, no global state, no display

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
    return fig
