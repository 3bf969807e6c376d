"""How fast this GAN trains here, against this machine's own limits and against a typical single-file example.

    python bench.py --data-dir ../shared/data            # the full table (about 25 minutes on 2 cores)
    python bench.py --data-dir ../shared/data --quick    # a smoke run of a few seconds

It prints markdown tables (the README carries them):
1. the machine's matrix-multiply rate (fp32, bf16), measured now, in this process;
2. per arch: training images/s in steady state, seconds per epoch, FLOPs of one training iteration per image
   (counted by torch.utils.flop_counter), the achieved FLOP/s and its share of the matmul rate;
3. the same networks trained the way typical single-file examples do it (DataLoader with ToTensor + Normalize
   per image, Sigmoid + BCELoss, .item() every step), side by side, as a speed-up ratio;
4. quality against time for the default settings: the built-in evaluation after 2.5, 5 and 10 minutes of
   training, next to the real-data floor.
Timings on a shared machine are noisy: compare ratios measured in one run, not numbers across runs.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

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
    with FlopCounterMode(display=False) as counter:
        gan.train_step(G, D, opt_g, opt_d, real, None, 1.0)
    return counter.get_total_flops() / cfg.batch_size


def our_speed(cfg: gan.Config, images: torch.Tensor, seconds: float) -> float:
    """Images/s of gan.train_step as the training loop runs it: batches sliced from the in-memory tensor,
    statistics summed on the device and read once per LOG_EVERY steps."""
    torch.manual_seed(0)
    G, D = gan.build_networks(cfg)
    opt_g, opt_d = gan.make_optimizers(G, D, cfg)
    batch = cfg.batch_size
    perm = torch.randperm(len(images))

    def run(steps: int) -> float:
        sums = torch.zeros(4)
        t = time.perf_counter()
        for step in range(steps):
            real = images[perm[(step * batch) % (len(images) - batch):][:batch]]
            sums += gan.train_step(G, D, opt_g, opt_d, real, None, 1.0)
            if (step + 1) % gan.LOG_EVERY == 0:
                sums.tolist()
        return steps * batch / (time.perf_counter() - t)

    return timed(run, seconds, cfg.batch_size)


def timed(run, seconds: float, batch: int, repeats: int = 3) -> float:
    """Warm up (allocator, oneDNN kernel choice), then the best images/s of `repeats` runs of about
    `seconds / repeats` each: on a shared machine the best run is the one least disturbed by others."""
    rate = run(5)
    steps = max(5, int(seconds / repeats * rate / batch))
    return max(run(steps) for _ in range(repeats))


def baseline_speed(cfg: gan.Config, data_dir: str, seconds: float) -> float:
    """Images/s of the same networks trained the way typical single-file GAN examples do it."""
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    torch.manual_seed(0)
    dataset = datasets.MNIST(data_dir, train=True, download=True,
                             transform=transforms.Compose([transforms.ToTensor(), transforms.Normalize([0.5], [0.5])]))
    loader = DataLoader(dataset, batch_size=cfg.batch_size, shuffle=True, drop_last=True)
    G = gan.build_generator(cfg)
    D = nn.Sequential(gan.build_discriminator(cfg), nn.Sigmoid())
    opt_g = torch.optim.Adam(G.parameters(), lr=cfg.lr, betas=(cfg.beta1, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=cfg.lr, betas=(cfg.beta1, 0.999))
    bce = nn.BCELoss()
    losses = []

    def run(steps: int) -> float:
        t, done = time.perf_counter(), 0
        while done < steps:
            for real, _ in loader:
                valid, fake_label = torch.ones(real.size(0)), torch.zeros(real.size(0))
                z = torch.randn(real.size(0), cfg.latent_dim)
                fake = G(z)
                opt_d.zero_grad()
                d_loss = bce(D(real), valid) + bce(D(fake.detach()), fake_label)
                d_loss.backward()
                opt_d.step()
                opt_g.zero_grad()
                g_loss = bce(D(fake), valid)
                g_loss.backward()
                opt_g.step()
                losses.append((d_loss.item(), g_loss.item()))  # the per-step host sync these examples do
                done += 1
                if done == steps:
                    break
        return steps * cfg.batch_size / (time.perf_counter() - t)

    return timed(run, seconds, cfg.batch_size)


def speed_table(archs: dict[str, gan.Config], images, data_dir: str, seconds: float, rates: dict) -> list[str]:
    lines = ["| arch | batch | images/s | s/epoch | GFLOP per image (train iter) | achieved GFLOP/s | share of fp32 matmul | typical example images/s | speed-up |",
             "|---|---|---|---|---|---|---|---|---|"]
    results = {}
    for name, cfg in archs.items():
        flops = count_flops(cfg)
        ours = our_speed(cfg, images, seconds)
        base = baseline_speed(cfg, data_dir, seconds)
        achieved = ours * flops
        results[name] = dict(images_per_s=ours, baseline_images_per_s=base, flops_per_image=flops,
                             achieved_flops=achieved, share=achieved / rates["fp32"])
        lines.append(f"| {name} | {cfg.batch_size} | {ours:,.0f} | {60000 / ours:.1f} | {flops / 1e9:.3f} | "
                     f"{achieved / 1e9:.1f} | {achieved / rates['fp32']:.0%} | {base:,.0f} | {ours / base:.1f}x |")
    return lines, results


def quality_over_time(cfg: gan.Config, data_dir: str, marks: tuple[float, ...], n: int, sample_dir: Path) -> list[str]:
    """Train the default model for marks[-1] minutes, stopping at each mark to evaluate what it draws (the
    resume is exact, so the stops change nothing), next to the real-data floor at the same n."""
    import tempfile

    import evaluate
    from rich.console import Console

    floor = evaluate.real_floor(data_dir, n)
    lines = [f"| minutes | epochs | FID | FID / floor | Inception Score | class coverage | precision | recall | "
             f"fewest of one digit |", "|---|---|---|---|---|---|---|---|---|",
             f"| real data (floor) | | {floor['fid']:.2f} | 1 | {floor['inception_score']:.2f} | "
             f"{floor['coverage_entropy']:.3f} | {floor['precision']:.3f} | {floor['recall']:.3f} | "
             f"{min(floor[f'share_{d}'] for d in range(10)):.1%} |"]
    with tempfile.TemporaryDirectory() as tmp:
        cfg = replace(cfg, epochs=10_000, data_dir=data_dir, checkpoint_dir=f"{tmp}/ckpt", sample_dir=f"{tmp}/samples",
                      keep_last=1)
        checkpoint, done = None, 0.0
        for mark in marks:
            quiet = Console(file=io.StringIO())
            checkpoint = gan.train(cfg, resume=checkpoint, console=quiet, minutes=mark - done)
            done = mark
            state = gan.load_checkpoint(checkpoint)
            G, _ = gan.load_generator(f"{tmp}/ckpt/generator_final.pth")
            scores = evaluate.evaluate_generator(G, n, data_dir, seed=0)
            epochs = state["epoch"] + state["pos"] / 60_000
            lines.append(f"| {mark:g} | {epochs:.1f} | {scores['fid']:.2f} | {scores['fid'] / floor['fid']:.1f} | "
                         f"{scores['inception_score']:.2f} | {scores['coverage_entropy']:.3f} | "
                         f"{scores['precision']:.3f} | {scores['recall']:.3f} | "
                         f"{min(scores[f'share_{d}'] for d in range(10)):.1%} |")
            print(lines[-1], file=sys.stderr, flush=True)  # progress; the table comes at the end
            sample_dir.mkdir(parents=True, exist_ok=True)
            gan.save_grid(gan.generate(G, 64, seed=0), sample_dir / f"default_{mark:g}min.png")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few seconds")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    parser.add_argument("--n", type=int, default=10_000, help="samples per quality evaluation")
    parser.add_argument("--speed-only", action="store_true", help="skip the quality-against-time runs")
    parser.add_argument("--sample-dir", type=Path, default=Path("samples/bench"),
                        help="where the quality runs' sample grids go")
    args = parser.parse_args()
    seconds = 1.0 if args.quick else 20.0

    rates = {"fp32": matmul_rate(torch.float32, seconds=0.5 if args.quick else 3),
             "bf16": matmul_rate(torch.bfloat16, size=256 if args.quick else 512, seconds=0.5 if args.quick else 3)}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU capability "
          f"{torch.backends.cpu.get_cpu_capability()}\n")
    print("| matmul | GFLOP/s |\n|---|---|")
    for k, v in rates.items():
        print(f"| {k} | {v / 1e9:.1f} |")
    print()

    images, _ = gan.load_mnist(args.data_dir)
    default = gan.Config()
    archs = {"mlp": replace(default, arch="mlp"), f"dcgan (width {default.width}, default)": default}
    if not args.quick:
        archs.update({"mlp-bn": replace(default, arch="mlp-bn"),
                      "dcgan-tf": replace(default, arch="dcgan-tf", batch_size=256)})
    lines, results = speed_table(archs, images, args.data_dir, seconds, rates)
    print("\n".join(lines), flush=True)
    if args.json:
        args.json.write_text(json.dumps({"rates": rates, "archs": results}, indent=1))
    if args.speed_only:
        return
    n = 500 if args.quick else args.n
    print(f"\nQuality of the default settings (`python cli.py train`) against training time, n = {n}:\n")
    marks = (0.1, 0.2) if args.quick else (2.5, 5, 10)
    quality = quality_over_time(default, args.data_dir, marks, n=n, sample_dir=args.sample_dir)
    print("\n".join(quality))


if __name__ == "__main__":
    main()
