"""The core promise: train, resume and generate from the command line and from Python, on real (tiny) IDX data."""

import copy
import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import digits
import gan
import record
import checkpoint
from conftest import ROOT, grid_size, one_clear_line


def quiet():
    from rich.console import Console
    return Console(file=io.StringIO(), width=200)


def test_load_mnist_scales_the_real_idx_files(mnist_dir):
    images, labels = gan.load_mnist(mnist_dir)
    assert images.shape == (256, 1, 28, 28) and images.dtype == torch.float32
    assert images.min() == -1.0 and images.max() == 1.0  # 0 -> -1, 255 -> 1, as a tanh generator draws
    assert labels.shape == (256,) and 0 <= labels.min() and labels.max() <= 9


def test_missing_data_says_where_to_put_the_files(tmp_path, run_cli, train_args, monkeypatch):
    from torchvision.datasets import MNIST
    monkeypatch.setattr(MNIST, "mirrors", ["http://127.0.0.1:9/"])  # a download that fails at once, as offline
    empty = tmp_path / "nodata"
    args = train_args("--epochs", "1")
    args[args.index("--data-dir") + 1] = empty
    result = run_cli("train", *args)
    assert result.exit_code == 1
    assert "MNIST is not in" in result.output and str(empty / "MNIST" / "raw") in result.output
    assert "--data-dir" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("arch", ["mlp", "mlp-bn", "dcgan", "dcgan-tf"])
def test_each_arch_trains_and_its_generator_draws_digits_shaped_images(arch, mnist_dir, tmp_path, run_cli, train_args):
    extra = ["--width", "8"] if arch == "dcgan" else []
    result = run_cli("train", *train_args("--epochs", "1", *extra, arch=arch))
    assert result.exit_code == 0, result
    G, cfg = gan.load_generator(tmp_path / "ckpt" / "gan_epoch_1.pth")
    assert cfg.arch == arch
    images = gan.generate(G, 5, seed=0)
    assert images.shape == (5, 1, 28, 28)
    assert images.flatten(1).std(dim=1).min() > 1e-4 and not torch.equal(images[0], images[1])  # not blank; z matters
    assert torch.equal(images, gan.generate(G, 5, seed=0))  # and repeatable for a seed


def test_no_conditional_learns_without_labels(tmp_path, run_cli, train_args):
    assert run_cli("train", *train_args("--epochs", "1", "--no-conditional")).exit_code == 0
    state = torch.load(tmp_path / "ckpt" / "gan_epoch_1.pth", weights_only=True)
    assert state["config"]["conditional"] is False and state["fixed_z"].shape == (64, 100)
    assert not any(key.startswith("embed") for key in state["D"])  # no projection: D never sees a label
    assert Image.open(tmp_path / "samples" / "epoch_0001.png").size == grid_size(64, 8)
    G, _ = gan.load_generator(tmp_path / "ckpt" / "generator_final.pth")
    assert G.n_classes == 0


def test_train_writes_checkpoints_samples_and_records(tmp_path, run_cli, train_args):
    result = run_cli("train", *train_args("--epochs", "2", "--label-smoothing", "0.9", "--lr-d", "1e-4"))
    assert result.exit_code == 0, result
    ckpt, samples = tmp_path / "ckpt", tmp_path / "samples"
    assert "epoch 1/2" in result.output and "epoch 2/2" in result.output and "img/s" in result.output
    for name in ("gan_epoch_1.pth", "gan_epoch_2.pth", "generator_final.pth", "metrics.csv", "metrics.json",
                 "training_loss.png", "summary.txt", "report.md"):
        assert (ckpt / name).stat().st_size > 0, name
    # the default model is conditional: each grid is 10 x 10, one row per digit
    assert Image.open(samples / "epoch_0001.png").size == grid_size(100, 10)
    assert Image.open(samples / "epoch_0002.png").size == grid_size(100, 10)
    assert not list(ckpt.glob(".*")) and not list(samples.glob(".*"))  # no temporary file, and no lock once done

    state = torch.load(ckpt / "gan_epoch_2.pth", weights_only=True)
    assert state["epoch"] == 2 and state["format"] == checkpoint.FORMAT
    assert state["config"]["label_smoothing"] == 0.9 and state["config"]["lr_d"] == 1e-4
    assert state["config"]["conditional"] is True and state["fixed_z"].shape == (100, 100)
    assert len(state["history"]) == 2
    assert {"G", "D", "opt_g", "opt_d", "rng"} <= state.keys()
    assert state["opt_d"]["param_groups"][0]["lr"] == 1e-4 and state["opt_g"]["param_groups"][0]["lr"] == gan.LABELS["lr_g"]

    with open(ckpt / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert {"d_loss", "g_loss", "d_real", "d_fake", "epoch_time_s", "images_per_s", "lr_g", "lr_d"} <= rows[0].keys()
    assert all(0 <= float(r["d_real"]) <= 1 and float(r["images_per_s"]) > 0 for r in rows)
    assert json.loads((ckpt / "metrics.json").read_text())[1]["epoch"] == 2

    summary = (ckpt / "summary.txt").read_text()
    assert "Generator" in summary and "Discriminator" in summary and "(1, 28, 28)" in summary
    G = gan.build_generator(gan.Config(arch="dcgan", width=4))
    assert f"{sum(p.numel() for p in G.parameters()):,}" in summary
    report = (ckpt / "report.md").read_text()
    assert "2 epochs" in report and "generator_final.pth" in report and '"arch": "dcgan"' in report
    import record
    fig = record.loss_figure(history := json.loads((ckpt / "metrics.json").read_text()))
    assert [ax.get_title() for ax in fig.axes] == ["Losses", "Discriminator's view"]  # no FID panel without evaluations
    d_loss, g_loss = fig.axes[0].lines[:2]
    assert list(d_loss.get_ydata()) == [r["d_loss"] for r in history] and list(g_loss.get_ydata()) == [r["g_loss"] for r in history]


def test_exported_generator_is_small_and_generates(tmp_path, run_cli, train_args):
    assert run_cli("train", *train_args("--epochs", "1")).exit_code == 0
    full, small = tmp_path / "ckpt" / "gan_epoch_1.pth", tmp_path / "ckpt" / "generator_final.pth"
    assert small.stat().st_size < full.stat().st_size / 3  # no D, no optimizer state, one copy of G
    out = tmp_path / "g.npy"
    result = run_cli("generate", "--checkpoint", small, "--n", "3", "--out", out)
    assert result.exit_code == 0, result
    assert np.load(out).shape == (3, 1, 28, 28)
    result = run_cli("resume", small)
    assert result.exit_code == 1 and "only a generator" in result.output


def test_keep_last_prunes_old_epoch_checkpoints(tmp_path, run_cli, train_args):
    assert run_cli("train", *train_args("--epochs", "4", "--keep-last", "2", "--sample-every", "3")).exit_code == 0
    assert sorted(p.name for p in (tmp_path / "ckpt").glob("gan_epoch_*.pth")) == ["gan_epoch_3.pth", "gan_epoch_4.pth"]
    # grids every 3 epochs and at the end
    assert sorted(p.name for p in (tmp_path / "samples").glob("*.png")) == ["epoch_0003.png", "epoch_0004.png"]


@pytest.mark.parametrize("how", ["resume", "train --resume"])
def test_resume_continues_from_the_next_epoch_with_one_record(how, tmp_path, run_cli, train_args):
    assert run_cli("train", *train_args("--epochs", "1", "--seed", "7")).exit_code == 0
    first = tmp_path / "ckpt" / "gan_epoch_1.pth"
    if how == "resume":
        result = run_cli("resume", first, "--epochs", "3", "--data-dir", train_args()[train_args().index("--data-dir") + 1],
                         "--checkpoint-dir", tmp_path / "ckpt", "--sample-dir", tmp_path / "samples", "--device", "cpu")
    else:
        result = run_cli("train", *train_args("--resume", first, "--epochs", "3"))
    assert result.exit_code == 0, result
    assert "epoch 1/3" not in result.output and "epoch 2/3" in result.output and "epoch 3/3" in result.output
    state = torch.load(tmp_path / "ckpt" / "gan_epoch_3.pth", weights_only=True)
    assert state["epoch"] == 3 and state["config"]["seed"] == 7  # the saved config carried over
    assert [r["epoch"] for r in state["history"]] == [1, 2, 3]
    with open(tmp_path / "ckpt" / "metrics.csv") as f:
        assert [int(r["epoch"]) for r in csv.DictReader(f)] == [1, 2, 3]


def test_resume_refuses_model_changes_and_finished_runs(tmp_path, run_cli, train_args):
    assert run_cli("train", *train_args("--epochs", "1")).exit_code == 0
    first = tmp_path / "ckpt" / "gan_epoch_1.pth"
    result = run_cli("train", *train_args("--resume", first, "--epochs", "2", "--latent-dim", "64", arch="mlp"))
    assert result.exit_code == 1
    assert "--arch" in result.output and "--latent-dim" in result.output and "Traceback" not in result.output
    result = run_cli("resume", first)  # the saved config says 1 epoch, and 1 is done
    assert result.exit_code == 1 and "already trained 1 epochs" in result.output
    assert not (tmp_path / "ckpt" / "gan_epoch_2.pth").exists()


def test_generate_png_and_npy_from_the_newest_checkpoint(tmp_path, run_cli, train_args):
    assert run_cli("train", *train_args("--epochs", "2", "--keep-last", "0")).exit_code == 0
    ckpt_dir = tmp_path / "ckpt"
    png = tmp_path / "out" / "digits.png"
    result = run_cli("generate", "--n", "16", "--checkpoint-dir", ckpt_dir, "--out", png, "--device", "cpu")
    assert result.exit_code == 0, result
    assert Image.open(png).size == grid_size(16, 4)  # near-square: 4 x 4, the digits in order row by row
    assert "generator_final.pth" in result.output  # the newest file in the folder

    a, b, c = (tmp_path / f"{name}.npy" for name in "abc")
    for path, seed in ((a, 1), (b, 1), (c, 2)):
        assert run_cli("generate", "--n", "10", "--checkpoint-dir", ckpt_dir, "--out", path, "--seed", seed).exit_code == 0
    images = np.load(a)
    assert images.shape == (10, 1, 28, 28) and images.dtype == np.float32
    assert images.min() >= 0 and images.max() <= 1 and images.std() > 0
    assert np.array_equal(images, np.load(b)) and not np.array_equal(images, np.load(c))


def test_generate_and_plot_samples_from_python(tmp_path, run_cli, train_args):
    assert run_cli("train", *train_args("--epochs", "1")).exit_code == 0
    path = tmp_path / "ckpt" / "generator_final.pth"
    out = tmp_path / "py.png"
    images = gan.generate_and_plot_samples(path, n=6, nrow=3, seed=0, out=out)
    assert images.shape == (6, 1, 28, 28) and Image.open(out).size == grid_size(6, 3)
    G, _ = gan.load_generator(path)
    again = gan.generate_and_plot_samples(G, n=6, seed=0, out=tmp_path / "py2.png")  # a module works too
    assert torch.equal(images, again)


class ScaleBy(torch.nn.Module):
    def __init__(self, factor: float):
        super().__init__()
        self.factor = factor

    def forward(self, x):
        return x * self.factor


def test_interpolation_walks_between_two_points(tmp_path, run_cli, train_args):
    assert run_cli("train", *train_args("--epochs", "1")).exit_code == 0
    for method in ("linear", "slerp"):
        out = tmp_path / f"{method}.png"
        result = run_cli("interpolate", "--checkpoint-dir", tmp_path / "ckpt", "--rows", "3", "--steps", "7",
                         "--method", method, "--out", out, "--seed", "0")
        assert result.exit_code == 0, result
        assert Image.open(out).size == grid_size(21, 7)
    # interpolate's own output: a stand-in generator whose images show z itself (pixel = (tanh(0.01 z) + 1) / 2)
    G = gan.Generator(torch.nn.Sequential(ScaleBy(0.01), torch.nn.Tanh(), torch.nn.Unflatten(1, (1, 28, 28))), latent_dim=784)
    walks = {m: digits.interpolate(G, rows=4, steps=5, method=m, seed=0).view(4, 5, 784) * 2 - 1 for m in ("linear", "slerp")}
    z = {m: torch.atanh(w) / 0.01 for m, w in walks.items()}  # each image back to the latent point that drew it
    assert torch.allclose(z["linear"][:, 0], z["slerp"][:, 0], atol=1e-2)  # both walks start and end at the same
    assert torch.allclose(z["linear"][:, -1], z["slerp"][:, -1], atol=1e-2)  # two random points of each row
    t = torch.linspace(0, 1, 5).view(1, 5, 1)
    straight = (1 - t) * z["linear"][:, :1] + t * z["linear"][:, -1:]
    assert torch.allclose(z["linear"], straight, atol=0.05)  # linear: evenly spaced on the straight line
    ends = z["slerp"][:, [0, -1]].norm(dim=-1).mean(dim=1)  # (4,)
    assert (z["slerp"][:, 2].norm(dim=-1) > 0.9 * ends).all()  # slerp keeps the norm of its ends
    assert (z["linear"][:, 2].norm(dim=-1) < 0.8 * ends).all()  # where the straight line's midpoint is shorter
    result = run_cli("interpolate", "--checkpoint-dir", tmp_path / "ckpt", "--method", "cubic")
    assert result.exit_code == 2 and "Invalid value for '--method'" in result.output


@pytest.mark.parametrize("args, message", [
    (["train", "--epochs", "0"], "--epochs must be a positive number"),
    (["train", "--lr", "-1"], "--lr must be a positive number"),
    (["train", "--arch", "resnet"], "Invalid value for '--arch': Value error, 'resnet' is not one of 'mlp'"),
    (["train", "--label-smoothing", "0.2"], "--label-smoothing"),
    (["generate", "--n", "0", "--checkpoint", "x.pth"], "--n must be at least 1"),
    (["train", "--epochs", "abc"], "Invalid value for '--epochs': Input should be a valid integer"),
    (["resume", "x.pth", "--arch", "mlp"], "No such option: --arch"),
    (["generate", "--checkpoint", "missing.pth"], "no checkpoint at missing.pth"),
    (["generate", "--checkpoint-dir", "no-such-dir"], "no checkpoint in no-such-dir"),
    (["interpolate", "--checkpoint", "missing.pth"], "no checkpoint at missing.pth"),
])
def test_bad_input_is_one_clear_line(args, message, run_cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run_cli(*args)
    assert result.exit_code == (2 if "Invalid value" in message or "No such option" in message else 1), result
    assert message in result.output and "Traceback" not in result.output
    assert len([line for line in result.output.splitlines() if line.strip()]) == 1


def test_corrupt_checkpoint_and_unwritable_output(tmp_path, run_cli, train_args):
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint at all" * 10)
    result = run_cli("generate", "--checkpoint", bad)
    assert result.exit_code == 1 and "damaged or not a PyTorch checkpoint" in result.output
    blocker = tmp_path / "file"
    blocker.write_text("a file where a folder should be")
    args = train_args("--epochs", "1")
    args[args.index("--checkpoint-dir") + 1] = blocker / "ckpt"
    result = run_cli("train", *args)
    assert result.exit_code == 1 and "cannot write to" in result.output and "--checkpoint-dir" in result.output


def test_importing_gan_does_nothing_but_define(tmp_path):
    code = "import gan, cli; print(gan.Config().arch)"
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env={"PYTHONPATH": str(ROOT), "PATH": ""},
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "dcgan" and list(tmp_path.iterdir()) == []  # no folders, downloads or files
    modules = subprocess.run([sys.executable, "-c", "import cli, sys; print(sorted(sys.modules))"], cwd=ROOT,
                             capture_output=True, text=True, timeout=120)
    assert modules.returncode == 0, modules.stderr  # `import cli` itself works...
    loaded = modules.stdout.split("'")
    assert "typer" in loaded and "torch" not in loaded  # ...and leaves torch for the commands that need it


def test_device_selection():
    assert gan.resolve_device("cpu").type == "cpu"
    expected = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    assert gan.resolve_device("auto").type == expected  # CUDA first, then MPS, then the CPU
    if not torch.cuda.is_available():
        with pytest.raises(gan.GANError, match="no CUDA GPU"):
            gan.resolve_device("cuda")
    with pytest.raises(gan.GANError, match="unknown device 'tpu9'"):  # a Python caller is told the argument's name
        gan.resolve_device("tpu9")


def test_tensorboard_logs_or_says_how_to_install(tmp_path, run_cli, train_args):
    import importlib.util
    result = run_cli("train", *train_args("--epochs", "1", "--tensorboard"))
    if importlib.util.find_spec("tensorboard") is None:
        assert result.exit_code == 1 and "pip install tensorboard" in result.output and "Traceback" not in result.output
    else:
        assert result.exit_code == 0, result
        assert list((tmp_path / "ckpt" / "tensorboard").glob("events.out.tfevents.*"))


def test_resume_offers_only_what_may_change_and_shows_no_defaults(run_cli):
    """resume's options mean "the value saved in the checkpoint": its --help states no default that would not apply,
    and offers no option that defines the networks."""
    help_text = run_cli("resume", "--help").output
    assert "--epochs" in help_text and "--lr-g" in help_text and "Default: the saved value." in help_text
    assert "[default:" not in help_text and "--arch" not in help_text and "--width" not in help_text


def test_bench_quick_speed_table_runs_on_the_real_loading_code(mnist_dir, tmp_path, run_bench):
    """The benchmark's smoke mode: every arch row filled with positive numbers, and the JSON beside it."""
    out = tmp_path / "bench.json"
    code, stdout, stderr = run_bench("--data-dir", mnist_dir, "--quick", "--speed-only", "--json", out, cwd=tmp_path)
    assert code == 0, stderr
    batch = gan.Config().batch_size
    assert "| fp32 |" in stdout and f"| mlp | {batch} | fp32 |" in stdout and f"| mlp | {batch} | bf16 |" in stdout
    assert "speed-up" in stdout and "--precision auto" in stdout
    for run in ("the default (`python cli.py train`)", "the previous default", "the default's networks in a typical",
                "PyTorch-GAN's dcgan.py as its users run it"):
        assert f"| {run}" in stdout
    numbers = json.loads(out.read_text())
    assert numbers["rates"]["fp32"] > 0 and numbers["rates"]["bf16"] > 0
    assert len(numbers["headline"]["images_per_s"]) == 4 and min(numbers["headline"]["images_per_s"].values()) > 0
    assert set(numbers["archs"]) == {f"{arch} {p}" for arch in ("mlp", f"dcgan (width {gan.Config().width}, default)") for p in ("fp32", "bf16")}
    for arch in numbers["archs"].values():
        assert arch["images_per_s"] > 0 and arch["baseline_images_per_s"] > 0 and arch["flops_per_image"] > 1e6


def test_bench_refuses_bad_arguments_in_one_line_before_any_work(tmp_path, run_bench):
    """They used to surface as tracebacks after the runs: --n 0 in the evaluation, a --json folder after the whole
    speed run (its numbers lost), missing data as a GANError traceback."""
    for args, said in ((["--n", "0"], "--n 0 is too few samples"), (["--json", str(tmp_path)], "already exists"),
                       (["--json", str(tmp_path / "no" / "b.json")], "does not exist"),
                       (["--data-dir", str(tmp_path / "none")], "MNIST is not in"),
                       (["--json", "/proc/bench.json"], "cannot be written")):
        code, stdout, stderr = run_bench("--quick", *args, cwd=tmp_path)
        assert code == 1 and stdout == "", (code, stdout, stderr)
        one_clear_line(stderr, said)


# ---- the GAN objective itself ----

def test_one_step_moves_each_network_the_way_its_objective_says():
    """D's step raises its logit on real images and lowers it on the fakes it saw; G's step then raises the logit
    D gives G's new fakes for the same noise. (Swap the real and fake targets and every inequality flips.)"""
    cfg = gan.Config(arch="mlp", conditional=False, lr_g=1e-3, lr_d=1e-3)
    torch.manual_seed(0)
    G, D = gan.build_networks(cfg)
    opt_g, opt_d = gan.make_optimizers(G, D, cfg)
    real = 0.8 + 0.1 * torch.rand(32, 1, 28, 28)  # bright images, unlike what an untrained G draws
    torch.manual_seed(1)
    z = torch.randn(32, cfg.latent_dim)  # the noise train_step draws next, after the same seed
    G_before, D_before = copy.deepcopy(G), copy.deepcopy(D)
    torch.manual_seed(1)
    gan.train_step(G, D, opt_g, opt_d, real, None, real_target=1.0)
    with torch.no_grad():
        fake_before, fake_after = G_before(z), G(z)
        assert D(real).mean() > D_before(real).mean()  # (1) D: real looks more real...
        assert D(fake_before).mean() < D_before(fake_before).mean()  # ...and the fakes it was shown less so
        assert D(fake_after).mean() > D(fake_before).mean()  # (2) G: its new fakes fool the updated D more


def test_samples_exports_and_evaluations_draw_from_the_moving_average(tmp_path, run_cli, train_args):
    seen = []
    cfg = gan.Config(arch="mlp", epochs=2, batch_size=64, device="cpu", ema=0.9, eval_every=1,
                     data_dir=str(train_args()[train_args().index("--data-dir") + 1]),
                     checkpoint_dir=str(tmp_path / "ckpt"), sample_dir=str(tmp_path / "samples"))
    gan.train(cfg, console=quiet(), evaluate=lambda G, cfg, device: seen.append(copy.deepcopy(G.state_dict())) or {})
    state = torch.load(tmp_path / "ckpt" / "gan_epoch_2.pth", weights_only=True)
    ema, raw = state["G_ema"], state["G"]
    assert any(not torch.equal(ema[k], raw[k]) for k in raw)  # the average is not the trained G
    same = lambda a, b: all(torch.equal(a[k], b[k]) for k in b)  # noqa: E731
    assert same(seen[-1], ema)  # --eval-every measured the average
    exported = torch.load(tmp_path / "ckpt" / "generator_final.pth", weights_only=True)["G"]
    assert same(exported, ema)  # the shared generator file holds it
    G, _ = gan.load_generator(tmp_path / "ckpt" / "gan_epoch_2.pth")
    assert same(G.state_dict(), ema)  # generate, export and evaluate load it from a full checkpoint too
    # the epoch's grid is what the average draws from the fixed noise
    grid = np.asarray(Image.open(tmp_path / "samples" / "epoch_0002.png").convert("L"), dtype=np.float32) / 255
    G_raw = gan.build_generator(cfg)
    G_raw.load_state_dict(raw)
    labels = torch.arange(10).repeat_interleave(10)
    for net, should_match in ((G, True), (G_raw, False)):
        drawn = gan.draw(net, state["fixed_z"], labels)[0, 0].numpy()  # the grid's first cell
        assert (np.abs(grid[2:30, 2:30] - drawn).max() < 2 / 255) == should_match


def test_available_memory_without_the_linux_count(monkeypatch):
    """macOS has no SC_AVPHYS_PAGES: generate must not crash there, and a count it can get still guards --n."""
    real_open = open

    def no_proc(path, *args, **kwargs):
        if str(path) == "/proc/meminfo":
            raise FileNotFoundError(path)
        return real_open(path, *args, **kwargs)

    def macos_sysconf(name):  # macOS knows the physical pages, not the available ones
        if name not in ("SC_PHYS_PAGES", "SC_PAGE_SIZE"):
            raise ValueError(f"unrecognized configuration name {name}")
        return {"SC_PHYS_PAGES": 4 * 2**20, "SC_PAGE_SIZE": 4096}[name]

    monkeypatch.setattr("builtins.open", no_proc)
    monkeypatch.setattr(record.os, "sysconf", macos_sysconf)
    record.check_sample_count(1000, as_grid=False)
    with pytest.raises(gan.GANError, match="needs about .* GiB"):
        record.check_sample_count(10**10, as_grid=False)
    assert record.available_memory() == 16 * 2**30  # the physical memory, as macOS reports it

    def no_sysconf(name):
        raise ValueError(f"unrecognized configuration name {name}")

    monkeypatch.setattr(record.os, "sysconf", no_sysconf)
    assert record.available_memory() is None
    record.check_sample_count(10**6, as_grid=False)  # no count at all: no guess, no crash


def test_available_memory_on_linux_counts_what_can_be_reclaimed():
    if not Path("/proc/meminfo").exists():
        pytest.skip("not Linux")
    fields = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
    assert record.available_memory() == int(fields["MemAvailable"].split()[0]) * 1024
    assert record.available_memory() >= int(fields["MemFree"].split()[0]) * 1024  # free memory and reclaimable cache
