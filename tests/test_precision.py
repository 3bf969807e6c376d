"""--precision: bf16 autocast where the hardware multiplies it fast, fp32 elsewhere; what stays fp32; exact resume in
both precisions (bf16 autocast runs on any CPU, slowly, so these run everywhere)."""

import json

import pytest
import torch

import device
import gan
from conftest import assert_identical_runs, config, quiet


@pytest.mark.parametrize("amx, avx512_bf16, arch, expected", [
    (False, False, "dcgan", "fp32"),  # AVX2 only: bf16 is emulated, dozens of times slower
    (True, False, "dcgan", "bf16"),  # Intel AMX
    (False, True, "dcgan-tf", "bf16"),  # AVX512-BF16 (AMD Zen 4/5)
    (True, True, "mlp", "fp32"),  # the MLPs stay fp32 (docs/speed.md)
])
def test_auto_picks_bf16_only_on_fast_hardware_for_the_convolutional_gans(amx, avx512_bf16, arch, expected, monkeypatch):
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    cpu = torch.device("cpu")
    assert device.resolve_precision("auto", cpu, arch, batch_size=128) == expected
    assert device.resolve_precision("auto", cpu, arch, batch_size=64) == "fp32"  # small batches: bf16 was slower
    assert device.resolve_precision("fp32", cpu, arch) == "fp32" and device.resolve_precision("bf16", cpu, arch) == "bf16"


def test_a_bf16_step_multiplies_in_bf16_and_keeps_weights_optimizer_and_losses_in_fp32():
    cfg = gan.Config(arch="dcgan", width=8, r1=1.0)
    G, D = gan.build_networks(cfg)
    opt_g, opt_d = gan.make_optimizers(G, D, cfg)
    seen = []
    D.features[0].register_forward_hook(lambda m, i, out: seen.append(out.dtype))
    real, labels = torch.rand(16, 1, 28, 28) * 2 - 1, torch.randint(0, 10, (16,))
    stats = gan.train_step(G, D, opt_g, opt_d, real, labels, 1.0, r1=16.0,
                           amp=lambda: device.autocast("bf16", torch.device("cpu")))
    assert seen and set(seen) == {torch.bfloat16}  # the convolutions ran in bf16
    assert stats.dtype == torch.float32 and torch.isfinite(stats).all()  # losses (R1 included) in fp32
    assert all(p.dtype == torch.float32 for p in (*G.parameters(), *D.parameters()))
    moments = [v for opt in (opt_g, opt_d) for state in opt.state.values() for v in state.values() if v.dim()]
    assert moments and all(v.dtype == torch.float32 for v in moments)
    seen.clear()
    gan.train_step(G, D, opt_g, opt_d, real, labels, 1.0)  # the default: no autocast
    assert set(seen) == {torch.float32}


@pytest.mark.parametrize("precision", ["bf16"])  # fp32: test_safety.test_resume_gives_bit_identical_weights
def test_resume_is_bit_identical_in_each_precision(precision, tmp_path, small_data):
    straight = gan.train(config(tmp_path / "straight", small_data, epochs=3, precision=precision), console=quiet())
    first = gan.train(config(tmp_path / "split", small_data, epochs=2, precision=precision), console=quiet())
    resumed = gan.train(config(tmp_path / "split", small_data, epochs=3, precision=precision), resume=first,
                        console=quiet())
    assert_identical_runs(straight, resumed)


def test_the_precision_shows_in_the_first_line_the_summary_and_the_report_and_may_change_on_resume(
        tmp_path, run_cli, small_data, monkeypatch):
    args = ["--arch", "dcgan", "--batch-size", "32", "--device", "cpu", "--data-dir", small_data,
            "--checkpoint-dir", tmp_path / "ck", "--sample-dir", tmp_path / "s"]
    monkeypatch.setenv("COLUMNS", "60")  # narrower than the line: piped, it used to wrap (grep found no "bf16")
    result = run_cli("train", *args, "--epochs", "1", "--precision", "bf16")
    monkeypatch.setenv("COLUMNS", "200")
    assert result.exit_code == 0, result
    first = next(line for line in result.output.splitlines() if line.strip())
    assert "precision bf16" in first and "images (1x28x28) on cpu" in first  # one line, not wrapped at 80 columns
    assert "precision bf16" in (tmp_path / "ck" / "summary.txt").read_text()
    assert "precision bf16" in (tmp_path / "ck" / "report.md").read_text()
    result = run_cli("resume", tmp_path / "ck" / "gan_epoch_1.pth", "--epochs", "2", "--precision", "fp32")
    assert result.exit_code == 0, result
    history = json.loads((tmp_path / "ck" / "metrics.json").read_text())
    assert [row["precision"] for row in history] == ["bf16", "fp32"]
    saved = torch.load(tmp_path / "ck" / "gan_epoch_2.pth", weights_only=True)
    assert saved["config"]["precision"] == "fp32"
    assert run_cli("train", *args, "--precision", "fp16").exit_code == 2  # Typer checks the choice itself


def test_a_checkpoint_from_before_precision_existed_resumes_in_fp32(tmp_path, small_data):
    """Every run before --precision trained in fp32: its checkpoint lacks the field, and reading it as `auto` would
    switch a resume to bf16 on fast hardware, silently ending bit-exact resume."""
    path = gan.train(config(tmp_path, small_data, epochs=1, precision="bf16"), console=quiet())
    old = torch.load(path, weights_only=True)
    del old["config"]["precision"]
    torch.save(old, path)
    assert gan.load_checkpoint(path)[1].precision == "fp32"
