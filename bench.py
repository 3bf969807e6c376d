"""How fast this GAN trains here, against this machine's own limits and against typical single-file examples.

    python bench.py --data-dir ../shared/data --speed-only     # the speed tables (about 10 minutes on 2 cores)
    python bench.py --data-dir ../shared/data --quality-only   # quality against time (about 30 minutes)
    python bench.py --data-dir ../shared/data --quick          # a smoke run of both, under a minute

It prints markdown tables (docs/speed.md carries them):
1. the machine's matrix-multiply rate in each precision (fp32, bf16), measured now, in this process;
2. the default as `python cli.py train` runs it here (in the precision `--precision auto` picks), against the
   previous default (fp32, batch 64) and against typical examples in fp32 as their users run them: the default's
   networks in a typical example's loop, and PyTorch-GAN's dcgan.py with its own networks at 32x32, batch 64;
3. per setup and precision: training images/s in steady state, seconds per epoch, FLOPs of one training iteration
   per image (counted by torch.utils.flop_counter) and the achieved share of the fastest matmul rate, beside the
   same networks in a typical example's loop (DataLoader with ToTensor + Normalize per image, Sigmoid + BCELoss,
   .item() every step, fp32);
4. what was tried and not kept (torch.compile, thread counts), against the loop as shipped;
5. quality against wall-clock time, side by side: the labelled default before the quality search (docs/results.md),
   the default after its first round (width 16) and the default now (width 20), scored after 2.5, 5 and 10 minutes
   of training (or at their end), next to the real-data floor.
Timings on a shared machine are noisy: compare ratios measured in one run, not numbers across runs.
"""

from __future__ import annotations

import argparse
import io
import json
import re
import time
from dataclasses import replace
from pathlib import Path

from config import torch_failed

try:
    import torch
except (ImportError, OSError) as e:
    raise SystemExit(f"Error: {torch_failed(e)}") from None
from torch import nn

import evaluate
import gan


def matmul_rate(dtype: torch.dtype, size: int = 1024, seconds: float = 2.0) -> float:
    """Best sustained FLOP/s of a square matrix multiply in `dtype` on the CPU."""
    a, b = torch.randn(size, size).to(dtype), torch.randn(size, size).to(dtype)
    a @ b
    best, deadline = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        t = time.perf_counter()
        a @ b
        best = max(best, 2 * size**3 / (time.perf_counter() - t))
    return best


def count_flops(cfg: gan.Config) -> float:
    """FLOPs of one training iteration (D step + G step, forward and backward), per image."""
    from torch.utils.flop_counter import FlopCounterMode

    G, D = gan.build_networks(cfg)
    opt_g, opt_d = gan.make_optimizers(G, D, cfg)
    real = torch.rand(cfg.batch_size, 1, 28, 28) * 2 - 1
    labels = torch.randint(0, 10, (cfg.batch_size,)) if cfg.conditional else None
    with FlopCounterMode(display=False) as counter:
        gan.train_step(G, D, opt_g, opt_d, real, labels, 1.0)
    return counter.get_total_flops() / cfg.batch_size


def our_speed(cfg: gan.Config, data: tuple, seconds: float, compiled: bool = False, precision: str = "fp32") -> float:
    """Images/s of the training loop as shipped: gan.run_epoch, the loop `python cli.py train` runs (the moving
    average of G included), on batches sliced from the in-memory tensor, with a progress hook like the CLI's, in
    `precision` (fp32, or bf16 autocast). `compiled` measures torch.compile of both networks, which did not pay."""
    images, labels = data
    torch.manual_seed(0)
    state = gan.new_training_state(cfg, images.device)
    if compiled:
        state.G, state.D = compiled_like(state.G), compiled_like(state.D)

    def run(steps: int) -> float:
        left = [steps]

        def stop() -> bool:  # run_epoch asks after every step
            left[0] -= 1
            return left[0] <= 0

        t = time.perf_counter()
        while left[0] > 0:
            gan.run_epoch(state, cfg, images, labels, stop, on_step=lambda *progress: None, precision=precision)
        return steps * cfg.batch_size / (time.perf_counter() - t)

    return timed(run, seconds, cfg.batch_size)


def compiled_like(net: torch.nn.Module) -> torch.nn.Module:
    """torch.compile(net), keeping the attributes train_step reads (latent_dim, n_classes, batchnorm)."""
    wrapper = torch.compile(net)
    for name in ("latent_dim", "n_classes", "batchnorm"):
        if hasattr(net, name):
            setattr(wrapper, name, getattr(net, name))
    return wrapper


def with_threads(n: int, measure):
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        return measure()
    finally:
        torch.set_num_threads(before)


def tried_table(default: gan.Config, data, seconds: float) -> tuple[list[str], list[dict]]:
    """What the issue suggested and this machine did not reward, each measured right after the loop as shipped
    (measured again, not taken from the speed table, so that both see the machine in the same state)."""
    mlp, threads = replace(default, arch="mlp", width=None), torch.get_num_threads()
    trials = [
        ("mlp", mlp, "torch.compile of G and D", lambda: our_speed(mlp, data, seconds, compiled=True)),
        ("dcgan (default)", default, "torch.compile of G and D",
         lambda: our_speed(default, data, seconds, compiled=True)),
        ("dcgan (default)", default, f"1 thread instead of torch's {threads}",
         lambda: with_threads(1, lambda: our_speed(default, data, seconds))),
        ("dcgan (default)", default, f"{2 * threads} threads instead of torch's {threads}",
         lambda: with_threads(2 * threads, lambda: our_speed(default, data, seconds))),
    ]
    rows = []
    for arch, cfg, change, measure in trials:
        rows.append(dict(arch=arch, change=change, shipped=our_speed(cfg, data, seconds), changed=measure()))
    lines = ["| arch | change | images/s as shipped | images/s with the change | ratio |", "|---|---|---|---|---|"]
    lines += [f"| {r['arch']} | {r['change']} | {r['shipped']:,.0f} | {r['changed']:,.0f} | "
              f"{r['changed'] / r['shipped']:.2f}x |"
              for r in rows]
    return lines, rows


def timed(run, seconds: float, batch: int) -> float:
    """Warm up (allocator, oneDNN kernel choice), then the best images/s of 3 runs of about `seconds / 3` each:
    on a shared machine the best run is the one least disturbed by others (--quick, a smoke test: one run)."""
    repeats = 3 if seconds >= 1 else 1
    rate = run(2)
    steps = max(2, int(seconds / repeats * rate / batch))
    return max(run(steps) for _ in range(repeats))


def baseline_speed(cfg: gan.Config, data_dir: str, seconds: float) -> float:
    """Images/s of the same networks trained the way typical single-file GAN examples do it."""
    G, D = gan.build_generator(cfg), gan.build_discriminator(cfg)
    return typical_loop_speed(G, D, cfg.latent_dim, cfg.conditional, cfg.batch_size, 28, data_dir, seconds)


def example_networks(latent_dim: int = 100) -> tuple[nn.Module, nn.Module]:
    """The networks of the most used single-file MNIST DCGAN (PyTorch-GAN's dcgan.py), as its users run it: 32x32
    images, G a dense layer to 128 x 8 x 8 then two upsample + 3x3 convolution steps, D four strided 3x3
    convolutions with dropout (BatchNorm's second argument is eps there, 0.8, as in that file)."""
    def block(cin, cout, bn=True):
        return [nn.Conv2d(cin, cout, 3, 2, 1), nn.LeakyReLU(0.2, inplace=True), nn.Dropout2d(0.25)] + (
            [nn.BatchNorm2d(cout, 0.8)] if bn else [])

    class G(nn.Module):
        def __init__(self):
            super().__init__()
            self.l1 = nn.Linear(latent_dim, 128 * 8 * 8)
            self.conv = nn.Sequential(nn.BatchNorm2d(128), nn.Upsample(scale_factor=2),
                                      nn.Conv2d(128, 128, 3, 1, 1), nn.BatchNorm2d(128, 0.8), nn.LeakyReLU(0.2, True),
                                      nn.Upsample(scale_factor=2),
                                      nn.Conv2d(128, 64, 3, 1, 1), nn.BatchNorm2d(64, 0.8), nn.LeakyReLU(0.2, True),
                                      nn.Conv2d(64, 1, 3, 1, 1), nn.Tanh())

        def forward(self, z, labels=None):
            return self.conv(self.l1(z).view(z.size(0), 128, 8, 8))

    class D(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(*block(1, 16, bn=False), *block(16, 32), *block(32, 64), *block(64, 128),
                                      nn.Flatten(), nn.Linear(128 * 2 * 2, 1))

        def forward(self, images, labels=None):
            return self.body(images).squeeze(1)

    return G(), D()


def typical_loop_speed(G: nn.Module, D: nn.Module, latent_dim: int, conditional: bool, batch_size: int, size: int,
                       data_dir: str, seconds: float) -> float:
    """Images/s of G and D trained as typical single-file examples do: a DataLoader with per-image ToTensor +
    Normalize (and Resize to `size`), Sigmoid + BCELoss, fp32, .item() every step."""
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    torch.manual_seed(0)
    steps = [transforms.Resize(size)] if size != 28 else []
    dataset = datasets.MNIST(data_dir, train=True, download=True, transform=transforms.Compose(
        steps + [transforms.ToTensor(), transforms.Normalize([0.5], [0.5])]))
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, drop_last=True)
    D_prob = lambda images, labels: torch.sigmoid(D(images, labels))  # a Sigmoid at the end of D, then BCELoss
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    bce = nn.BCELoss()
    losses = []

    def run(steps: int) -> float:
        t, done = time.perf_counter(), 0
        while done < steps:
            for real, labels in loader:
                labels = labels if conditional else None  # conditional examples feed the label to both nets
                valid, fake_label = torch.ones(real.size(0)), torch.zeros(real.size(0))
                z = torch.randn(real.size(0), latent_dim)
                fake_labels = torch.randint(0, 10, (real.size(0),)) if conditional else None
                fake = G(z, fake_labels)
                opt_d.zero_grad()
                d_loss = bce(D_prob(real, labels), valid) + bce(D_prob(fake.detach(), fake_labels), fake_label)
                d_loss.backward()
                opt_d.step()
                opt_g.zero_grad()
                g_loss = bce(D_prob(fake, fake_labels), valid)
                g_loss.backward()
                opt_g.step()
                losses.append((d_loss.item(), g_loss.item()))  # the per-step host sync these examples do
                done += 1
                if done == steps:
                    break
        return steps * batch_size / (time.perf_counter() - t)

    return timed(run, seconds, batch_size)


def speed_table(setups: dict[str, gan.Config], data, data_dir: str, seconds: float, rates: dict,
                precisions: tuple[str, ...]) -> tuple[list[str], dict]:
    """Each setup in each precision, beside the typical example in fp32; the share is of the fastest matmul."""
    fastest = max(rates.values())
    lines = ["| setup | batch | precision | images/s | s/epoch | GFLOP per image (train iter) | share of the fastest "
             "matmul | typical example (fp32) images/s | speed-up |", "|---|---|---|---|---|---|---|---|---|"]
    results = {}
    for name, cfg in setups.items():
        flops, base = count_flops(cfg), baseline_speed(cfg, data_dir, seconds)
        for precision in precisions:
            ours = our_speed(cfg, data, seconds, precision=precision)
            results[f"{name} {precision}"] = dict(images_per_s=ours, baseline_images_per_s=base, flops_per_image=flops,
                                                  share=ours * flops / fastest)
            lines.append(f"| {name} | {cfg.batch_size} | {precision} | {ours:,.0f} | {60000 / ours:.1f} | "
                         f"{flops / 1e9:.3f} | {ours * flops / fastest:.0%} | {base:,.0f} | {ours / base:.1f}x |")
    return lines, results


def previous_default(default: gan.Config) -> gan.Config:
    """The labelled default before the precision work: width 16, batches of 64 at the DCGAN paper's Adam 2e-4."""
    return replace(default, width=16, batch_size=64, lr_g=2e-4, lr_d=2e-4)


def headline(default: gan.Config, data, data_dir: str, seconds: float, rounds: int = 2) -> tuple[list[str], dict]:
    """The default as `python cli.py train` runs it here, against the previous default (fp32, batch 64) and against
    typical single-file examples in fp32 as their users run them; interleaved rounds, the best of each kept,
    so that a drift of the machine's speed touches every row alike."""
    from device import resolve_precision
    precision = resolve_precision("auto", torch.device("cpu"), default.arch, default.batch_size)
    previous, typical = previous_default(default), replace(default, batch_size=64)
    example_g, example_d = example_networks()
    rows = {"the default (`python cli.py train`)": (default.batch_size, precision,
                                                    lambda: our_speed(default, data, seconds, precision=precision)),
            "the previous default (before the precision work)":
                (64, "fp32", lambda: our_speed(previous, data, seconds)),
            "the default's networks in a typical example's loop": (64, "fp32",
                                                                   lambda: baseline_speed(typical, data_dir, seconds)),
            "PyTorch-GAN's dcgan.py as its users run it (32x32)": (
                64, "fp32", lambda: typical_loop_speed(example_g, example_d, 100, False, 64, 32, data_dir, seconds))}
    speeds = dict.fromkeys(rows, 0.0)
    for _ in range(rounds):
        for name, (_, _, measure) in rows.items():
            speeds[name] = max(speeds[name], measure())
    ours = speeds[next(iter(rows))]
    lines = ["| run | batch | precision | images/s | the default is |", "|---|---|---|---|---|"]
    lines += [f"| {name} | {batch} | {p} | {speeds[name]:,.0f} | "
              f"{'' if i == 0 else f'{ours / speeds[name]:.1f}x as fast'} |"
              for i, (name, (batch, p, _)) in enumerate(rows.items())]
    return lines, {"precision": precision, "images_per_s": speeds}


QUALITY_HEADER = ["| run | minutes | epochs | FID | FID / floor | Inception Score | class coverage | precision "
                  "| recall | fewest of one digit |", "|---|---|---|---|---|---|---|---|---|---|"]


def quality_row(run: str, minutes: str, epochs: str, scores: dict, floor: dict) -> str:
    return (f"| {run} | {minutes} | {epochs} | {scores['fid']:.2f} | {scores['fid'] / floor['fid']:.1f} | "
            f"{scores['inception_score']:.2f} | {scores['coverage_entropy']:.3f} | {scores['precision']:.3f} | "
            f"{scores['recall']:.3f} | {min(scores[f'share_{d}'] for d in range(10)):.1%} |")


def quality_over_time(name: str, cfg: gan.Config, data_dir: str, marks: tuple[float, ...], n: int, floor: dict,
                      sample_dir: Path) -> list[str]:
    """Train `cfg` as `python cli.py train` does, stopping at each mark (minutes of wall time) to evaluate what it
    draws, until the run ends or the last mark; the resume is exact, so the stops change nothing."""
    import tempfile

    from rich.console import Console

    lines, slug = [], re.sub("[^a-z0-9]+", "_", name.lower()).strip("_")
    with tempfile.TemporaryDirectory() as tmp:
        cfg = replace(cfg, data_dir=data_dir, checkpoint_dir=f"{tmp}/ckpt", sample_dir=f"{tmp}/samples", keep_last=1,
                      device="cpu")  # a CPU bench: its precision labels and speeds are the CPU's
        checkpoint, minutes = None, 0.0
        for mark in marks:
            quiet, start = Console(file=io.StringIO()), time.perf_counter()
            checkpoint = gan.train(cfg, resume=checkpoint, console=quiet, minutes=mark - minutes)
            minutes += (time.perf_counter() - start) / 60
            state, _ = gan.load_checkpoint(checkpoint)
            finished = state["epoch"] == cfg.epochs and not state["pos"]
            G, _ = gan.load_generator(f"{tmp}/ckpt/generator_final.pth")
            scores = evaluate.evaluate_generator(G, n, data_dir, seed=0)
            epochs = state["epoch"] + state["pos"] / 60_000
            lines.append(quality_row(name, f"{minutes:.1f}" + (" (done)" if finished else ""), f"{epochs:.1f}",
                                     scores, floor))
            print(lines[-1], flush=True)  # the table grows under its header as the runs go
            gan.generate_and_plot_samples(G, n=100 if G.n_classes else 64, seed=0, show=False,  # a row per digit
                                          out=sample_dir / f"{slug}_{mark:g}min.png")
            if finished:
                break
    return lines


def speed(args) -> None:
    """The speed tables: the machine's matmul rate in each precision, each setup's training speed in each
    precision beside the typical example (fp32, what its users run), and what was tried."""
    from device import native_bf16
    seconds = 0.2 if args.quick else 20.0
    size = 256 if args.quick else 1024
    rates = {"fp32": matmul_rate(torch.float32, size, seconds=0.2 if args.quick else 3),
             "bf16": matmul_rate(torch.bfloat16, size, seconds=0.2 if args.quick else 3)}
    bf16 = native_bf16(torch.device("cpu"))
    print(f"AMX {torch.cpu._is_amx_tile_supported()}, AVX512-BF16 {torch.cpu._is_avx512_bf16_supported()}: "
          f"--precision auto {'picks bf16 for the DCGANs' if bf16 else 'keeps fp32'} here\n")
    print("| matmul | GFLOP/s |\n|---|---|")
    for k, v in rates.items():
        print(f"| {k} | {v / 1e9:.1f} |")
    print()

    data = gan.load_pixels(gan.Config(data_dir=args.data_dir))  # uint8 images and labels, as training holds them
    default = gan.Config()
    lines, top = headline(default, data, args.data_dir, seconds, rounds=1 if args.quick else 2)
    print("\n".join(lines) + "\n", flush=True)
    setups = {"mlp": replace(default, arch="mlp", width=None), f"dcgan (width {default.width}, default)": default}
    if not args.quick:
        setups.update({"mlp-bn": replace(default, arch="mlp-bn", width=None),
                       "dcgan-tf": replace(default, arch="dcgan-tf", width=None),
                       "dcgan, batch 64 (the previous default)": previous_default(default)})
    precisions = ("fp32", "bf16") if bf16 or args.quick else ("fp32",)
    lines, results = speed_table(setups, data, args.data_dir, seconds, rates, precisions)
    print("\n".join(lines), flush=True)
    tried = []
    if not args.quick:
        print("\nTried, and not kept because it did not pay here:\n")
        lines, tried = tried_table(default, data, seconds)
        print("\n".join(lines), flush=True)
    if args.json:
        from files import write_text
        write_text(args.json, json.dumps({"rates": rates, "headline": top, "archs": results, "tried": tried}, indent=1))


def quality(args) -> None:
    """Quality against training time, side by side in one run: the labelled default as it was before the quality
    search of issue 28 (Adam beta1 0.5, a moving average of decay 0.999, width 16), the default after its first round
    (beta1 0, decay 0.99, width 16), and the default now (width 20: sharper and a little more varied, at 1.3x the
    time per epoch), in the precision `auto` picks here."""
    n = 500 if args.quick else args.n
    default = gan.Config()
    print(f"\nQuality against training time of the default run (`python cli.py train`, {default.epochs} epochs) and of "
          f"the defaults before it, n = {n}:\n")
    marks = (0.1, 0.2) if args.quick else (2.5, 5, 10)
    floor = evaluate.real_floor(args.data_dir, n)
    print("\n".join(QUALITY_HEADER + [quality_row("real data (floor)", "", "", floor, floor)]), flush=True)
    runs = {"default before (beta1 0.5, EMA 0.999, width 16)": replace(default, beta1=0.5, ema=0.999, width=16),
            f"default before width {default.width} (beta1 {default.beta1:g}, EMA {default.ema:g}, width 16)":
                replace(default, width=16),
            f"default (beta1 {default.beta1:g}, EMA {default.ema:g}, width {default.width})": default}
    for name, cfg in runs.items():
        quality_over_time(name, cfg, args.data_dir, marks, n, floor, args.sample_dir)


def device_speed(args) -> None:
    """On a GPU (--device cuda[:N]): the default's images/s in each precision this device runs well (fp32, which is
    TF32 on Ampere and later, and bf16 where it is native), seconds per epoch of 60,000 digits, and the same default
    on this machine's CPU, side by side in one run."""
    from device import device_settings, native_bf16, resolve_device
    target = resolve_device(args.device)
    default, seconds = gan.Config(), 2.0 if args.quick else 10.0
    cpu_data = gan.load_pixels(gan.Config(data_dir=args.data_dir))
    data = tuple(t.to(target) for t in cpu_data)
    name = torch.cuda.get_device_name(target) if target.type == "cuda" else str(target)
    print("| device | precision | images/s | s per epoch |\n|---|---|---|---|")
    precisions = ["fp32", "bf16"] if native_bf16(target) else ["fp32"]
    for precision in precisions:
        with device_settings(target, precision):
            rate = our_speed(default, data, seconds, precision=precision)
        tf32 = " (TF32 products)" if precision == "fp32" and target.type == "cuda" and native_bf16(target) else ""
        print(f"| {name} | {precision}{tf32} | {rate:,.0f} | {60_000 / rate:.1f} |", flush=True)
    from device import resolve_precision
    cpu = torch.device("cpu")
    auto = resolve_precision("auto", cpu, default.arch, default.batch_size)
    rate = our_speed(default, cpu_data, seconds, precision=auto)
    print(f"| this machine's CPU ({torch.get_num_threads()} threads) | {auto} | {rate:,.0f} | {60_000 / rate:.1f} |")


class OneLineParser(argparse.ArgumentParser):
    """argparse, with its usage errors as one line like every other error of this project."""

    def error(self, message: str):
        self.exit(2, f"Error: {message} (see python bench.py --help)\n")


def check_args(args) -> None:
    """What can be wrong with the arguments, said now in one line, not after minutes of work; --json is reserved
    (created empty), so that it is known to be writable before the run."""
    if args.n < 100:
        raise gan.GANError(f"--n {args.n} is too few samples to score: pass 100 or more (default 10000)")
    if args.json and (args.json.exists() or args.json.is_symlink()):
        raise gan.GANError(f"--json {args.json} already exists: pass a new file name (nothing is replaced)")
    if args.json and not args.json.parent.is_dir():
        raise gan.GANError(f"--json {args.json} is in a folder that does not exist: pass a file in an existing folder")
    if args.json:
        try:
            open(args.json, "x").close()
            args.reserved = True
        except OSError as e:
            raise gan.GANError(f"--json {args.json} cannot be written ({e.strerror}): pass a writable path") from None
    try:
        images, _ = gan.load_mnist(args.data_dir)
        if len(images) < BIGGEST_BATCH:  # an epoch of no whole batch would never end
            raise gan.GANError(f"{args.data_dir} holds {len(images)} training images, fewer than one batch of "
                               f"{BIGGEST_BATCH}: point --data-dir at the full MNIST")
    except BaseException:
        if args.json:
            args.json.unlink()
            args.reserved = False
        raise


BIGGEST_BATCH = 256


def main() -> None:
    parser = OneLineParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few seconds")
    parser.add_argument("--json", type=Path, help="also write the speed numbers to this new file")
    parser.add_argument("--n", type=int, default=10_000, help="samples per quality evaluation (--quick: 500)")
    only = parser.add_mutually_exclusive_group()
    only.add_argument("--speed-only", action="store_true", help="skip the quality-against-time runs")
    only.add_argument("--quality-only", action="store_true", help="skip the speed tables")
    parser.add_argument("--device", help="time the default on this device (cuda, cuda:N, mps) against the CPU "
                        "instead of the CPU tables")
    parser.add_argument("--sample-dir", type=Path, default=Path("samples/bench"),
                        help="where the quality runs' sample grids go")
    args = parser.parse_args()
    args.reserved = False  # set once --json is created empty by this run: only then is it this run's to remove
    from files import StopRequest, new_folders
    try:
        with StopRequest(raise_at_once=True):  # SIGTERM and SIGHUP end it as Ctrl-C does
            check_args(args)
            with new_folders(args.sample_dir, "--sample-dir"):  # removed again if no grid was written
                run(args)
    except (KeyboardInterrupt, gan.TrainingInterrupted):  # a quality run's checkpoint lives in a temporary folder
        raise SystemExit("Error: interrupted; the tables above are what was measured") from None
    except gan.GANError as e:
        raise SystemExit(f"Error: {e}") from None
    finally:
        if args.reserved and args.json.is_file() and args.json.stat().st_size == 0:
            args.json.unlink()  # reserved at the start, never filled: nothing is left behind


def run(args) -> None:
    """The tables the arguments ask for."""
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU capability "
          f"{torch.backends.cpu.get_cpu_capability()}, AMX {torch.cpu._is_amx_tile_supported()}, AVX512-BF16 "
          f"{torch.cpu._is_avx512_bf16_supported()}\n")
    if args.device:
        device_speed(args)
    if not args.device and not args.quality_only:
        speed(args)
    if not args.device and not args.speed_only:
        quality(args)


if __name__ == "__main__":
    main()
