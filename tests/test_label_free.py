"""Label-free training's own defaults (a higher learning rate and the R1 penalty): what they are, that the penalty
does what it says, that a run records it and a resume keeps it, and that older files are read as they trained."""

import copy
import re
from dataclasses import replace

import pytest
import torch

import gan
from conftest import assert_identical_runs, assert_refused, config, quiet


def test_the_defaults_depend_on_labels_and_what_is_given_wins():
    labelled, label_free = gan.Config(), gan.Config(conditional=False)
    assert (labelled.batch_size, labelled.lr_g, labelled.lr_d, labelled.r1, labelled.epochs) == (256, 8e-4, 8e-4, 0.0, 30)
    assert (label_free.batch_size, label_free.lr_g, label_free.lr_d, label_free.r1, label_free.epochs) == (
        64, 8e-4, 8e-4, 1.0, 16)
    assert gan.Config(batch_size=32).batch_size == 32 and gan.Config(lr=1e-3).batch_size == 256  # --lr sets rates only
    assert gan.Config(epochs=3).epochs == 3 and gan.Config(conditional=False, epochs=40).epochs == 40
    assert label_free.lr_g * labelled.batch_size / label_free.batch_size > labelled.lr_g  # higher per image
    typed = gan.Config(conditional=False, lr_g=2e-4, lr_d=1e-4, r1=0.0)  # the reference setups type theirs
    assert (typed.lr_g, typed.lr_d, typed.r1) == (2e-4, 1e-4, 0.0)


def test_adam_momentum_and_the_moving_average_depend_on_labels_and_reach_the_optimizers():
    """Issue 28's search: with labels, beta1 0 and a moving average of decay 0.99; without, the DCGAN paper's 0.5
    and 0.999, which were not searched again. What is given wins, 0 included (no moving average)."""
    labelled, label_free = gan.Config(), gan.Config(conditional=False)
    assert (labelled.beta1, labelled.ema, label_free.beta1, label_free.ema) == (0.0, 0.99, 0.5, 0.999)
    assert (gan.Config(beta1=0.5).beta1, gan.Config(ema=0).ema, gan.Config(conditional=False, beta1=0).beta1) == (
        0.5, 0.0, 0.0)
    for cfg in (labelled, label_free, gan.Config(beta1=0.3)):
        opt_g, opt_d = gan.make_optimizers(*gan.build_networks(cfg), cfg)
        assert opt_g.param_groups[0]["betas"] == opt_d.param_groups[0]["betas"] == (cfg.beta1, 0.999)
    assert gan.new_training_state(gan.Config(ema=0), torch.device("cpu")).G_ema is None


def test_a_checkpoint_without_beta1_is_read_as_the_old_default_and_one_with_it_keeps_it():
    """Every file stores its beta1; one that did not would have trained with the DCGAN paper's 0.5, not today's 0."""
    from checkpoint import upgrade_config
    for file_format in (1, 2, 3, 4, 5):
        assert upgrade_config({"conditional": True}, file_format)["beta1"] == 0.5
        assert upgrade_config({"conditional": True, "beta1": 0.0}, file_format)["beta1"] == 0.0



def test_train_help_states_the_defaults_the_code_uses(run_cli):
    text = " ".join(re.sub("[│╭╮╰╯─]", " ", run_cli("train", "--help").output).split())  # Rich's box, unwrapped
    for name in ("batch_size", "epochs", "beta1", "ema", "width"):
        assert f"default: ({gan.LABELS[name]:g} with labels, {gan.LABEL_FREE[name]:g} with --no-conditional)" in text
    assert f"default: ({gan.LABELS['lr_g']:g} with or without labels)" in text and gan.LABELS["lr_g"] == gan.LABEL_FREE["lr_g"]


def grad_norm_at(D: torch.nn.Module, real: torch.Tensor, labels=None) -> float:
    """The mean norm of D's gradient at each real image, D as the penalty sees it (in training mode)."""
    real = real.clone().requires_grad_(True)
    grad, = torch.autograd.grad(copy.deepcopy(D).train()(real, labels).sum(), real)
    return grad.flatten(1).norm(dim=1).mean().item()


@pytest.mark.parametrize("arch, conditional", [("mlp", False), ("dcgan", False), ("dcgan", True)])
def test_r1_flattens_d_at_the_real_images(arch, conditional):  # mlp's D sees real and fake in one batch, dcgan's apart
    """Ten steps from the same start on the same batch: with the penalty, D's gradient at the real images ends up
    several times smaller than without it. (Drop the penalty, or flip its sign, and it does not.)"""
    cfg = gan.Config(arch=arch, width=8 if arch == "dcgan" else None, conditional=conditional, lr_g=1e-3, lr_d=1e-3)
    torch.manual_seed(0)
    G, D = gan.build_networks(cfg)
    real = torch.rand(32, 1, 28, 28) * 2 - 1
    labels = torch.arange(32) % 10 if conditional else None  # (the labelled GAN can use it too: see the README)
    norms = {}
    for r1 in (0.0, 50.0):
        g, d = copy.deepcopy(G), copy.deepcopy(D)
        opt_g, opt_d = gan.make_optimizers(g, d, cfg)
        torch.manual_seed(1)
        for _ in range(10):
            stats = gan.train_step(g, d, opt_g, opt_d, real, labels, real_target=1.0, r1=r1)
        assert torch.isfinite(stats).all()
        norms[r1] = grad_norm_at(d, real, labels)
    assert norms[50.0] < 0.5 * norms[0.0], norms


def train_label_free(tmp, data, epochs, **extra) -> gan.Config:
    return config(tmp, data, epochs=epochs, conditional=False, **extra)


def test_the_width_depends_on_labels_and_an_mlp_file_of_an_older_width_resumes(run_cli, train_args, tmp_path):
    """Width 20 with labels (issue 28's fourth look), 16 without; what is given wins. The other archs have no width,
    but files of theirs from before store the default of their day (16): a resume must not read it as a --width
    given to them."""
    assert (gan.Config().width, gan.Config(conditional=False).width) == (20, 16) == (gan.LABELS["width"],
                                                                                     gan.LABEL_FREE["width"])
    assert gan.Config(width=32).width == 32 and gan.Config(conditional=False, width=24).width == 24
    assert gan.Config(arch="mlp").width is None and gan.Config(arch="dcgan-tf", conditional=False).width is None
    assert replace(gan.Config(arch="mlp"), conditional=False).width is None  # no default of the other labels kept
    assert replace(gan.Config(arch="mlp"), arch="dcgan").width == 20
    assert run_cli("train", *train_args("--epochs", "1", arch="mlp")).exit_code == 0
    path = tmp_path / "ckpt" / "gan_epoch_1.pth"
    state = torch.load(path, weights_only=True)
    torch.save({**state, "config": {**state["config"], "width": 16}}, path)  # as a version before width 20 wrote it
    result = run_cli("resume", path, "--epochs", "2")
    assert result.exit_code == 0, result.output
    assert torch.load(tmp_path / "ckpt" / "gan_epoch_2.pth", weights_only=True)["epoch"] == 2
    for width in ("16", "20"):  # either default, given to an arch without a width, is refused, not ignored
        assert_refused(run_cli("train", *train_args("--epochs", "1", "--width", width, arch="mlp")),
                       r"--width sets the channels of --arch dcgan; mlp has fixed layer sizes: leave it out")
    # and to a resume of its file: not "would change the networks", as if another width were an option
    assert_refused(run_cli("train", "--resume", path, "--epochs", "3", "--width", "20"),
                   r"--width sets the channels of --arch dcgan, and .*gan_epoch_1\.pth holds --arch mlp, which has "
                   r"fixed layer sizes: leave them out when resuming")
    assert_refused(run_cli("train", "--resume", path, "--epochs", "3", "--width", "20", "--latent-dim", "64"),
                   r"which has fixed layer sizes and --latent-dim would change the networks")  # all named at once
    assert_refused(run_cli("train", "--resume", path, "--epochs", "3", "--width", "20", "--d-width", "8"),
                   r"--width, --d-width set the channels of --arch dcgan, and .*holds --arch mlp")


def test_d_width_narrows_d_alone_as_the_shipped_recipe_did_and_a_resume_keeps_it(run_cli, train_args, tmp_path):
    """--d-width gives D a width of its own (the shipped model v4: G 40, D 32). It builds, from the same seed, the
    very networks of the recipe that trained v4 (gan.build_discriminator patched to a narrower width), so that the
    command in docs/results.md reproduces it; G is the one --width builds. A resume keeps D's width; other archs
    refuse it."""
    from unittest import mock
    torch.manual_seed(0)
    G, D = gan.build_networks(gan.Config(width=8, d_width=4))
    build = gan.build_discriminator
    with mock.patch.object(gan, "build_discriminator", lambda c: build(replace(c, width=4))):
        torch.manual_seed(0)
        G_recipe, D_recipe = gan.build_networks(gan.Config(width=8))
    for net, recipe in ((G, G_recipe), (D, D_recipe)):
        assert net.state_dict().keys() == recipe.state_dict().keys()
        assert all(torch.equal(v, recipe.state_dict()[k]) for k, v in net.state_dict().items())
    assert D.features[0].out_channels == 4 and G.body[1].out_channels == 8 * 8  # D at 4, G at --width 8
    assert run_cli("train", *train_args("--epochs", "1", "--width", "8", "--d-width", "4")).exit_code == 0
    path = tmp_path / "ckpt" / "gan_epoch_1.pth"
    state = torch.load(path, weights_only=True)
    assert (state["config"]["width"], state["config"]["d_width"]) == (8, 4)
    assert state["D"]["features.0.weight"].shape[0] == 4 and "width 8 (D 4)" in (tmp_path / "ckpt" / "summary.txt").read_text()
    assert_refused(run_cli("train", "--resume", path, "--epochs", "2", "--d-width", "8"),
                   r"--d-width would change the networks saved in .*gan_epoch_1\.pth")
    result = run_cli("train", "--resume", path, "--epochs", "2", "--d-width", "4")  # the width it has: accepted
    assert result.exit_code == 0, result.output
    assert torch.load(tmp_path / "ckpt" / "gan_epoch_2.pth", weights_only=True)["D"]["features.0.weight"].shape[0] == 4
    # a file from before --d-width (or without it) has D at --width: saying so again is no change
    plain = tmp_path / "plain"
    assert run_cli("train", *train_args("--epochs", "1", "--width", "8", "--checkpoint-dir", plain,
                                        "--sample-dir", plain / "samples")).exit_code == 0
    result = run_cli("train", "--resume", plain / "gan_epoch_1.pth", "--epochs", "2", "--d-width", "8")
    assert result.exit_code == 0, result.output
    assert_refused(run_cli("train", *train_args("--epochs", "1", "--d-width", "8", arch="mlp")),
                   r"--d-width sets the channels of --arch dcgan's D; mlp has fixed layer sizes: leave it out")
    for bad, why in (("0", r"--d-width must be a positive number, got 0"), ("513", r"--d-width 513 is too large \(at most 512\)")):
        assert_refused(run_cli("train", *train_args("--epochs", "1", "--d-width", bad)), why)


def test_d_dropout_drops_in_dcgans_d_as_the_search_lever_did_and_a_resume_keeps_it(run_cli, train_args, tmp_path):
    """--d-dropout P puts dropout after each of dcgan's LeakyReLUs in D: from the same seed, the very networks of
    the seventh round's shipped-scale runs (docs/results.md: the default D patched so), so their checkpoints name the
    same layers. It is recorded,
    a resume keeps it, and dcgan-tf (which has its own) refuses it."""
    torch.manual_seed(0)
    D = gan.build_discriminator(gan.Config(width=8, d_dropout=0.3))
    torch.manual_seed(0)
    plain = gan.build_discriminator(gan.Config(width=8))  # the lever as the shipped-scale runs had it: dropout
    plain.features = torch.nn.Sequential(*(m for layer in plain.features for m in (  # inserted after each LeakyReLU
        (layer, torch.nn.Dropout(0.3)) if isinstance(layer, torch.nn.LeakyReLU) else (layer,))))
    assert [type(m).__name__ for m in D.features] == [type(m).__name__ for m in plain.features]
    assert D.state_dict().keys() == plain.state_dict().keys()
    assert all(torch.equal(v, plain.state_dict()[k]) for k, v in D.state_dict().items())
    assert [m.p for m in D.modules() if isinstance(m, torch.nn.Dropout)] == [0.3] * 3
    assert run_cli("train", *train_args("--epochs", "1", "--width", "8", "--d-dropout", "0.3")).exit_code == 0
    path = tmp_path / "ckpt" / "gan_epoch_1.pth"
    state = torch.load(path, weights_only=True)
    assert state["config"]["d_dropout"] == 0.3 and state["D"]["features.3.weight"].dim() == 4  # layer 2 is a dropout
    assert_refused(run_cli("train", "--resume", path, "--epochs", "2", "--d-dropout", "0"),
                   r"--d-dropout would change the networks saved in .*gan_epoch_1\.pth")
    result = run_cli("train", "--resume", path, "--epochs", "2")
    assert result.exit_code == 0, result.output
    assert torch.load(tmp_path / "ckpt" / "gan_epoch_2.pth", weights_only=True)["config"]["d_dropout"] == 0.3
    assert_refused(run_cli("train", *train_args("--epochs", "1", "--d-dropout", "0.3", arch="dcgan-tf")),
                   r"--d-dropout applies to --arch mlp, mlp-bn and dcgan \(dcgan-tf has its own\): leave it out")


def test_resume_with_r1_is_bit_identical(tmp_path, small_data, monkeypatch):  # noqa: F811
    """4 steps an epoch, a penalty every 16 steps: steps 0 and 16, the second after the resume at step 16."""
    cfg = train_label_free(tmp_path / "straight", small_data, epochs=5)
    assert cfg.r1 == 1.0 and gan.R1_EVERY == 16
    straight = gan.train(cfg, console=quiet())
    weights, train_step = [], gan.train_step
    monkeypatch.setattr(gan, "train_step", lambda *args: weights.append(args[7]) or train_step(*args))  # r1
    first = gan.train(train_label_free(tmp_path / "split", small_data, epochs=4), console=quiet())
    resumed = gan.train(train_label_free(tmp_path / "split", small_data, epochs=5), resume=first, console=quiet())
    assert_identical_runs(straight, resumed)
    assert len(weights) == 20 and [step for step, w in enumerate(weights) if w] == [0, 16]  # counted across resume
    assert weights[0] == weights[16] == 16 * cfg.r1  # the lazy form: 16 times the weight, 16 times as rarely


def test_a_label_free_run_records_its_defaults_and_resume_keeps_them(run_cli, train_args, tmp_path):
    assert run_cli("train", *train_args("--epochs", "1", "--no-conditional")).exit_code == 0
    saved = torch.load(tmp_path / "ckpt" / "gan_epoch_1.pth", weights_only=True)
    assert saved["config"]["r1"] == 1.0 and saved["config"]["lr_g"] == gan.LABEL_FREE["lr_g"]
    assert saved["opt_g"]["param_groups"][0]["lr"] == gan.LABEL_FREE["lr_g"]

    result = run_cli("resume", tmp_path / "ckpt" / "gan_epoch_1.pth", "--epochs", "2")
    assert result.exit_code == 0, result
    assert torch.load(tmp_path / "ckpt" / "gan_epoch_2.pth", weights_only=True)["config"]["r1"] == 1.0  # kept
    result = run_cli("resume", tmp_path / "ckpt" / "gan_epoch_2.pth", "--epochs", "3", "--r1", "0")
    assert result.exit_code == 0, result
    assert torch.load(tmp_path / "ckpt" / "gan_epoch_3.pth", weights_only=True)["config"]["r1"] == 0.0  # asked for


def test_a_reference_setup_keeps_what_it_types(run_cli, train_args, tmp_path):
    result = run_cli("train", *train_args("--epochs", "1", "--no-conditional", "--lr", "2e-4", "--r1", "0"))
    assert result.exit_code == 0, result
    config = torch.load(tmp_path / "ckpt" / "gan_epoch_1.pth", weights_only=True)["config"]
    assert (config["lr_g"], config["lr_d"], config["r1"]) == (2e-4, 2e-4, 0.0)
    result = run_cli("train", *train_args("--epochs", "1", "--lr", "5e-4", "--lr-d", "1e-4", "--checkpoint-dir",
                                          tmp_path / "labelled", "--sample-dir", tmp_path / "labelled"))
    assert result.exit_code == 0, result
    config = torch.load(tmp_path / "labelled" / "gan_epoch_1.pth", weights_only=True)["config"]
    assert (config["lr_g"], config["lr_d"], config["r1"]) == (5e-4, 1e-4, 0.0)  # --lr, except where one is typed


def test_a_bad_r1_is_one_clear_line(run_cli, train_args):
    for value in ("-1", "nan", "1e9"):
        result = run_cli("train", *train_args("--r1", value))
        assert result.exit_code == 1 and "--r1 must be 0 (off) or a weight" in result.output, result
        assert len([line for line in result.output.splitlines() if line.strip()]) == 1


def test_files_from_before_r1_resume_without_it(trained_label_free):
    """A format-2 file has no r1: its run trained without the penalty, so a resume goes on without it, even for a
    label-free run whose default today is 1."""
    old = torch.load(trained_label_free, weights_only=True)
    del old["config"]["r1"]
    old["format"] = 2
    path = trained_label_free.with_name("old.pth")
    torch.save(old, path)
    _, cfg = gan.load_checkpoint(path)
    assert cfg.conditional is False and cfg.r1 == 0.0


@pytest.fixture
def trained_label_free(tmp_path, small_data):  # noqa: F811
    return gan.train(train_label_free(tmp_path, small_data, epochs=1), console=quiet())
