"""search.py, the lever screen of docs/results.md: each kind of lever still trains through gan.py's loop and is
scored, and gan.py is left as it was."""

import contextlib
import copy
import dataclasses
import math
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from unittest import mock

import pytest
import torch

import config
import gan
import search
from checkpoint import resume_command
from files import TrainingInterrupted


def test_each_kind_of_lever_trains_and_is_scored_and_gan_is_restored(mnist_dir, capsys):
    before = (gan.build_discriminator, gan.build_generator, gan.train_step, gan.update_ema)
    levers = ("baseline", "beta1=0", "spectral norm D", "diffaugment",  # a config change, a D, an augmented step,
              "rp, R1+R2 0.3, no-bn D, beta1=0",                          # another loss with both penalties,
              "default, minibatch std D", "default, rate down in the second half",  # a layer, a schedule,
              "width 20, class BatchNorm G")                                         # a G
    for lever in levers:
        rows = search.run(lever, seed=0, epochs=2, at=[1, 2], data_dir=str(mnist_dir), n=100)
        ema = 0.99 if lever.startswith(("default", "width")) else 0.999
        assert [(r["epoch"], r["ema"]) for r in rows] == [(1, ema)] + [(2, d) for d in search.DECAYS], lever
        assert (gan.build_discriminator, gan.build_generator, gan.train_step, gan.update_ema) == before, lever
        assert all(math.isfinite(r["fid"]) and 0 <= r["recall"] <= 1 for r in rows), lever  # none is NaN
    assert capsys.readouterr().out.count('"lever": "baseline"') == 5  # a JSON line per score


def test_the_levers_do_what_their_names_say():
    cfg = gan.Config(width=4)
    assert not search.no_batchnorm(cfg).batchnorm and gan.build_discriminator(cfg).batchnorm
    assert sum(hasattr(m, "parametrizations") for m in search.spectral(cfg).modules()) == 4  # 3 convs and the head
    x = gan.torch.ones(64, 1, 28, 28)  # all white: the cutout turns 7x7 (in a corner) to 13x13 pixels black
    black = (search.translate_cutout(x) == -1).flatten(1).sum(1)
    assert ((black >= 7 * 7) & (black <= 13 * 13)).all() and black.float().mean() > 100
    assert search.LEVERS["beta1=0"][0] == {"beta1": 0.0} and search.BEFORE == {"beta1": 0.5, "ema": 0.999, "width": 16}


def test_the_second_round_levers_do_what_their_names_say():
    same, varied = gan.torch.ones(8, 3, 4, 4), gan.torch.randn(8, 3, 4, 4)
    assert search.MinibatchStd()(same).shape == (8, 4, 4, 4) and (search.MinibatchStd()(same)[:, 3] == 0).all()
    assert (search.MinibatchStd()(varied)[:, 3] > 0.5).all()  # the spread of N(0, 1) samples, in groups of 4
    D = search.minibatch_std(gan.Config(width=4))
    assert D.head.in_features == (16 + 1) * 16 and D(varied.new_zeros(8, 1, 28, 28), gan.torch.arange(8)).shape == (8,)
    assert [search.second_half_decay(e, 30) for e in (0, 14, 15, 29)] == [1, 1, 1, 1 / 15]
    assert search.LEVERS["default"][0] == search.NOW == {"beta1": 0.0, "ema": 0.99, "width": 16}
    assert search.NOW == {**{k: config.LABELS[k] for k in search.NOW}, "width": 16}  # the default of its time
    assert search.LEVERS["default, width 20"][0] == {k: config.LABELS[k] for k in search.NOW}  # the default now


def test_a_rate_factor_sets_both_learning_rates_per_epoch(mnist_dir):
    seen = []
    cfg = gan.Config(data_dir=str(mnist_dir), width=4, batch_size=64, device="cpu", ema=0.99)
    s = gan.new_training_state(cfg, gan.torch.device("cpu"))
    images, labels = gan.load_pixels(cfg)
    run_epoch = gan.run_epoch
    def spy(s, *args, **kwargs):
        seen.append((s.opt_g.param_groups[0]["lr"], s.opt_d.param_groups[0]["lr"]))
        return run_epoch(s, *args, **kwargs)
    gan.run_epoch = spy
    try:
        search.train_and_score(s, cfg, images, labels, {0.99: s.G_ema}, 4, [4], 100, "x", search.second_half_decay)
    finally:
        gan.run_epoch = run_epoch
    assert seen == [(cfg.lr_g * f, cfg.lr_d * f) for f in (1, 1, 1, 0.5)]


def test_the_third_round_levers_widen_what_their_names_say():
    cfg = gan.Config(width=4)
    with mock.patch.object(gan, "build_discriminator", search.wider_d(4)):  # as search.run patches it
        s = gan.new_training_state(cfg, gan.torch.device("cpu"))
    wide, convs = s.D, lambda net: [m.out_channels for m in net.modules() if isinstance(m, gan.torch.nn.Conv2d)]
    assert convs(wide) == [16, 32, 64] and convs(gan.build_discriminator(cfg)) == [4, 8, 16]  # D four times as wide
    channels = [p.shape for p in s.G.parameters()]
    assert channels == [p.shape for p in gan.build_generator(cfg).parameters()]  # G as the default's
    assert wide.head.in_features == 64 * 16 and wide(gan.torch.zeros(2, 1, 28, 28), gan.torch.arange(2)).shape == (2,)
    assert search.LEVERS["default, width 24"][0] == {**search.NOW, "width": 24}
    assert search.LEVERS["default, width 20"][0] == {**search.NOW, "width": 20}
    assert search.LEVERS["default, D at twice the rate"][0] == {**search.NOW, "lr_d": 2 * config.LABELS["lr_d"]}


def test_class_batchnorm_puts_the_label_into_every_stage_of_g():
    cfg = gan.Config(width=4)
    G = search.class_norm_generator(cfg)
    norms = [m for m in G.body if isinstance(m, search.ClassBatchNorm)]
    assert len(norms) == 3 and not any(isinstance(m, gan.nn.BatchNorm2d) and m.affine for m in G.body.modules())
    assert sum(p.numel() for p in G.parameters()) - sum(p.numel() for p in gan.build_generator(cfg).parameters()) \
        == sum((10 - 1) * 2 * m.num_features for m in norms)  # a scale and a shift per class, not one pair for all
    with gan.torch.no_grad():
        norms[-1].shift.weight[3] += 5.0  # class 3's last stage shifted: the 3s change, the others hardly
    z = gan.torch.randn(8, cfg.latent_dim)
    threes, fours, fives = (G.eval()(z, gan.torch.full((8,), k)) for k in (3, 4, 5))
    assert (threes - fours).abs().mean() > 0.1 > 0.01 > (fives - fours).abs().mean()  # the one-hot input: N(0, 0.02)
    assert search.LEVERS["width 20, class BatchNorm G"][0] == {**search.NOW, "width": 20}


def test_mode_seeking_pairs_the_digits_and_rewards_drawing_them_apart():
    torch = gan.torch
    G = gan.build_generator(gan.Config(width=4))
    z, labels = search.noise_and_labels(G, 9, "cpu", paired=True)
    assert z.shape == (9, 100) and (labels[:4] == labels[4:8]).all()  # image i and i + 4 ask for one digit
    _, unpaired = search.noise_and_labels(G, 4000, "cpu")
    assert (unpaired[:2000] == unpaired[2000:]).float().mean() < 0.2  # without pairing, as gan.train_step draws
    black, white = -torch.ones(4, 1, 28, 28), torch.ones(4, 1, 28, 28)  # the halves' drawings 2 apart per pixel,
    noise = torch.cat([torch.zeros(4, 100), torch.full((4, 100), 0.5)])  # their noises 0.5 apart per coordinate
    assert search.nearness(torch.cat([black, white]), noise).item() == pytest.approx(0.25, rel=1e-4)  # 1 / (2 / 0.5)
    assert search.nearness(torch.cat([black, black]), noise).item() > 1e4  # drawn alike: a large term pushes apart
    assert search.nearness(white[:1], noise[:1]).item() == 0  # a batch of one has no pair
    step, seen, returned, nearness = search.LEVERS["width 20, mode seeking 1"][2], {}, [], search.nearness
    cfg = gan.Config(width=4, batch_size=8)
    s = gan.new_training_state(cfg, torch.device("cpu"))
    s.G.register_forward_pre_hook(lambda _, args: seen.update(labels=args[1].clone()))  # returns None: args kept
    def recorded(fake, z):  # the real term, its value kept for the check below
        returned.append(nearness(fake, z))
        return returned[-1]
    with mock.patch.object(search, "nearness", side_effect=recorded) as term:
        real, real_labels = torch.rand(8, 1, 28, 28) * 2 - 1, torch.arange(8)
        out = step(s.G, s.D, s.opt_g, s.opt_d, real, real_labels, 1.0, 0.0, contextlib.nullcontext)
    fake, noise = term.call_args.args
    assert term.call_count == 1 and fake.shape == (8, 1, 28, 28) and noise.shape == (8, 100) and out.isfinite().all()
    assert fake.requires_grad and (seen["labels"][:4] == seen["labels"][4:]).all()  # G's own drawing, paired digits
    assert out[1] > returned[0] > 1  # G's loss holds the term (and the adversarial part, which is positive)
    assert search.LEVERS["width 20, mode seeking 1"][0] == {**search.NOW, "width": 20}


def test_d_dropout_drops_after_each_leaky_relu_and_only_in_training():
    torch, nn, cfg = gan.torch, gan.nn, gan.Config(width=4)
    torch.manual_seed(0)
    plain = gan.build_discriminator(cfg)
    torch.manual_seed(0)
    D = gan.build_discriminator(dataclasses.replace(cfg, d_dropout=0.3))
    names = [type(m).__name__ for m in plain.features]
    assert [type(m).__name__ for m in D.features] == [k for n in names for k in ([n, "Dropout"] if n == "LeakyReLU"
                                                                               else [n])]
    assert [m.p for m in D.modules() if isinstance(m, nn.Dropout)] == [0.3] * 3
    assert D.batchnorm and D.n_classes == plain.n_classes == 10
    assert all(torch.equal(a, b) for a, b in zip(plain.state_dict().values(), D.state_dict().values()))  # init kept
    x, labels = torch.rand(16, 1, 28, 28) * 2 - 1, torch.arange(16) % 10
    with torch.no_grad():
        plain.eval(), D.eval()
        assert torch.equal(D(x, labels), plain(x, labels))  # scoring: dropout is the identity; head and projection kept
        plain.train(), D.train()
        assert not torch.equal(D(x, labels), plain(x, labels))  # training: it drops
        assert abs((D.features[:3](x) == 0).float().mean() - 0.3) < 0.03  # conv, LeakyReLU, dropout: 30% zeroed
    for p in (0.3, 0.1):
        changes, build_d, step = search.LEVERS[f"width 20, D dropout {p}"]
        assert changes == {**search.NOW, "width": 20, "d_dropout": p} and build_d is None and step is None
        built = gan.build_discriminator(dataclasses.replace(cfg, **changes))  # as search.run builds it
        assert [m.p for m in built.modules() if isinstance(m, nn.Dropout)] == [p] * 3
    s = gan.new_training_state(gan.Config(width=4, batch_size=8, d_dropout=0.3), torch.device("cpu"))
    out = gan.train_step(s.G, s.D, s.opt_g, s.opt_d, torch.rand(8, 1, 28, 28) * 2 - 1, torch.arange(8), 1.0, 1.0,
                         contextlib.nullcontext)  # with R1 too: a double backward through the dropout
    assert sum(isinstance(m, nn.Dropout) for m in s.D.modules()) == 3 and torch.isfinite(out).all()


def test_consistency_shifts_each_image_on_its_own_and_only_d_is_asked_to_ignore_it():
    torch = gan.torch
    torch.manual_seed(0)
    x = torch.rand(256, 1, 28, 28) * 2 - 1
    y = search.shift_each(x, 2)
    padded, moves = torch.nn.functional.pad(x, (2, 2, 2, 2), value=-1.0), []
    for i in range(256):  # every image is its own, moved by some shift of -2 to 2 each way, the edge background
        found = [(dy, dx) for dy in range(5) for dx in range(5) if torch.equal(y[i], padded[i, :, dy:dy + 28, dx:dx + 28])]
        assert len(found) == 1, i
        moves += found
    assert set(moves) == {(dy, dx) for dy in range(5) for dx in range(5)}  # a shift per image, all 25, unmoved too
    step, terms, consistency = search.LEVERS["width 20, bCR 10"][2], [], search.consistency
    cfg = gan.Config(width=4, batch_size=8)
    torch.manual_seed(5)
    s = gan.new_training_state(cfg, torch.device("cpu"))
    shifted = []
    def recorded(D, real, fake, *rest):  # the real term, its value and inputs kept for the checks below
        shifted.extend([real, fake])
        terms.append(consistency(D, real, fake, *rest))
        return terms[-1]
    real, real_labels = torch.rand(8, 1, 28, 28) * 2 - 1, torch.arange(8)
    torch.manual_seed(1)
    with mock.patch.object(search, "consistency", side_effect=recorded) as term:
        out = step(s.G, s.D, s.opt_g, s.opt_d, real, real_labels, 1.0, 0.0, contextlib.nullcontext)
    assert term.call_count == 1 and term.call_args.args[-1] == (10.0, 10.0) and terms[0] > 0
    assert torch.equal(shifted[0], real) and not shifted[1].requires_grad  # G's drawing reaches it detached
    torch.manual_seed(5)
    t = gan.new_training_state(cfg, torch.device("cpu"))  # the same networks again
    torch.manual_seed(1)  # the same step without the term: D's loss is the term less
    plain = search.make_step()(t.G, t.D, t.opt_g, t.opt_d, real, real_labels, 1.0, 0.0, contextlib.nullcontext)
    assert out[0].item() == pytest.approx(plain[0].item() + terms[0].item(), rel=1e-5)
    D, labels = s.D, torch.arange(8)
    D.train()
    fake, fake_labels = torch.rand(8, 1, 28, 28) * 2 - 1, torch.arange(8).flip(0)
    with torch.no_grad():  # the term: D's logits on shifted images against its logits on the images, each weighed
        d_real, d_fake = D(real, labels), D(fake, fake_labels)
        torch.manual_seed(2)
        value = search.consistency(D, real, fake, labels, fake_labels, d_real, d_fake, (3.0, 2.0))
        torch.manual_seed(2)
        on_real = 3 * (D(search.shift_each(real), labels) - d_real).pow(2).mean()
        on_fake = 2 * (D(search.shift_each(fake), fake_labels) - d_fake).pow(2).mean()
    assert on_real > 0 and on_fake > 0 and value.item() == pytest.approx((on_real + on_fake).item(), rel=1e-5)
    with mock.patch.object(search, "consistency", return_value=torch.zeros(())) as term:
        search.LEVERS["width 20, CR 10 on real"][2](s.G, s.D, s.opt_g, s.opt_d, real, real_labels, 1.0, 0.0,
                                                   contextlib.nullcontext)
    assert term.call_args.args[-1] == (10.0, 0.0)  # on real images only
    assert search.LEVERS["width 20, bCR 10"][0] == search.LEVERS["width 20, CR 10 on real"][0] == {
        **search.NOW, "width": 20}


def test_the_wider_g_lever_is_v7s_recipe_with_g_at_48():
    """The G 48 row of docs/results.md: v7's lever with G's width alone changed (D 32 without BatchNorm)."""
    v7, wide = search.LEVERS["G 40, D 32, rp, R1+R2 0.3, no-bn D"], search.LEVERS["G 48, D 32, rp, R1+R2 0.3, no-bn D"]
    assert wide[0] == {**v7[0], "width": 48} and wide[1] is v7[1] is search.no_batchnorm
    cfg = search.lever_config("G 48, D 32, rp, R1+R2 0.3, no-bn D", seed=1)
    assert (cfg.width, cfg.d_width, cfg.beta1, cfg.ema, cfg.seed) == (48, 32, 0.0, 0.99, 1)


def test_train_keeps_a_model_of_a_lever_through_gan_train_resumes_it_and_restores_gan(mnist_dir, tmp_path,
                                                                                       monkeypatch, capsys):
    """`search.py --train FOLDER`, how the shipped models (v5, and v6's and v7's first 50 epochs) were trained: the lever's D and
    step inside gan.train, its config (G 40, D 32) recorded, the run's files written, `--resume` continuing it with the
    lever's networks (and v6's and v7's last epochs: at a new rate), and gan.py as it was afterwards."""
    before = (gan.build_discriminator, gan.build_generator, gan.train_step)
    steps = []
    lever = "G 40, D 32, rp, R1+R2 0.3, no-bn D"
    step = search.LEVERS[lever][2]
    monkeypatch.setitem(search.LEVERS, lever, (*search.LEVERS[lever][:2], lambda *a, **k: steps.append(1) or step(
        *a, **k)))
    args = ["search.py", "--data-dir", str(mnist_dir), "--lever", lever, "--seed", "1", "--train", str(tmp_path / "run")]
    monkeypatch.setattr("sys.argv", [*args, "--epochs", "1"])
    search.main()  # 256 images in batches of 256: one step
    ck = tmp_path / "run" / "checkpoints"
    G, cfg = gan.load_generator(ck / "generator_final.pth")
    assert (cfg.width, cfg.d_width, cfg.beta1, cfg.ema, cfg.epochs, cfg.seed, cfg.save_every) == (40, 32, 0.0, 0.99,
                                                                                                    1, 1, 5)
    assert steps == [1]  # the lever's step trained, not gan's
    saved = torch.load(ck / "gan_epoch_1.pth", weights_only=True)
    assert saved["D"].keys() == search.no_batchnorm(cfg).state_dict().keys()  # the lever's D, without BatchNorm
    assert any("running_mean" in k for k in gan.build_discriminator(cfg).state_dict())  # (gan's own has it)
    assert (tmp_path / "run" / "samples" / "epoch_0001.png").is_file()
    assert (gan.build_discriminator, gan.build_generator, gan.train_step) == before

    monkeypatch.setattr("sys.argv", [*args, "--epochs", "2", "--resume", str(ck / "gan_epoch_1.pth"), "--lr", "2e-4"])
    search.main()  # the product's resume cannot build this D; the lever's can, at a rate of its own from there on
    assert steps == [1, 1] and torch.load(ck / "generator_final.pth", weights_only=True)["epoch"] == 2
    with pytest.raises(gan.GANError, match=r"without BatchNorm, as search\.py's levers build it .*`python search\.py "
                                           r"--data-dir DIR --lever LEVER --train FOLDER --epochs N --resume "
                                           r".*gan_epoch_2\.pth`, LEVER the one it was trained with"):
        gan.load_checkpoint(ck / "gan_epoch_2.pth")  # what cli.py resume says of it: not "the file is inconsistent"
    resumed = torch.load(ck / "gan_epoch_2.pth", weights_only=True)
    assert (resumed["config"]["lr_g"], resumed["config"]["lr_d"]) == (2e-4, 2e-4)
    assert [g["lr"] for g in resumed["opt_g"]["param_groups"] + resumed["opt_d"]["param_groups"]] == [2e-4, 2e-4]
    assert resumed["D"].keys() == saved["D"].keys()
    assert (gan.build_discriminator, gan.build_generator, gan.train_step) == before
    monkeypatch.setattr("sys.argv", [*args, "--epochs", "3", "--resume", str(ck / "gan_epoch_2.pth"), "--lr", "2"])
    with pytest.raises(SystemExit) as refused:  # a bad rate: named as this script's option, before a step
        search.main()
    assert refused.value.code == 1 and capsys.readouterr().err.startswith("Error: --lr must be at most 1") and \
        steps == [1, 1]

    other = ["search.py", "--data-dir", str(mnist_dir), "--lever", "width 20, rp, R1+R2 0.3, no-bn D", "--train",
             str(tmp_path / "run"), "--resume", str(ck / "gan_epoch_2.pth"), "--epochs", "3"]
    monkeypatch.setattr("sys.argv", other)  # another lever's config: refused before a step
    with pytest.raises(SystemExit) as refused:
        search.main()
    assert refused.value.code == 1 and "its width is 40" in capsys.readouterr().err and steps == [1, 1]
    monkeypatch.setattr("sys.argv", [*args, "--epochs", "3"])  # a new run into the folder of this one: refused,
    with pytest.raises(SystemExit) as refused:  # with this script's command to continue it, not cli.py's
        search.main()
    said = capsys.readouterr().err
    assert refused.value.code == 1 and "python cli.py resume" not in said
    assert f"--train {tmp_path / 'run'} --epochs 3 --resume {ck / 'gan_epoch_2.pth'}" in said, said
    monkeypatch.setattr("sys.argv", [*args, "--epochs", "3", "--resume", str(ck / "gan_epoch_2.pth")])
    search.main()  # resumed again, without --lr: the lever's config is the run's, its new rate kept
    assert steps == [1, 1, 1] and torch.load(ck / "gan_epoch_3.pth", weights_only=True)["config"]["lr_g"] == 2e-4

    # a copy of the run goes on in its own folders, its grids too (it was refused, with advice to pass --sample-dir,
    # which this script does not have), and the original is left as it was
    shutil.copytree(tmp_path / "run", tmp_path / "copy")
    grids = sorted(p.name for p in (tmp_path / "run" / "samples").iterdir())
    copied = tmp_path / "copy" / "checkpoints" / "gan_epoch_3.pth"
    monkeypatch.setattr("sys.argv", ["search.py", "--data-dir", str(mnist_dir), "--lever", lever, "--train",
                                     str(tmp_path / "copy"), "--epochs", "4", "--resume", str(copied)])
    search.main()
    assert steps == [1, 1, 1, 1] and (tmp_path / "copy" / "samples" / "epoch_0004.png").is_file()
    assert sorted(p.name for p in (tmp_path / "run" / "samples").iterdir()) == grids
    assert not (ck / "gan_epoch_4.pth").exists() and (tmp_path / "copy" / "checkpoints" / "gan_epoch_4.pth").is_file()

    # a branch: the run's epoch-2 checkpoint resumed into a new folder goes on there (the advice when its own folder
    # holds later epochs), and the original is left as it was
    before = sorted(p.name for p in ck.iterdir())
    monkeypatch.setattr("sys.argv", ["search.py", "--data-dir", str(mnist_dir), "--lever", lever, "--train",
                                     str(tmp_path / "branch"), "--epochs", "3", "--resume", str(ck / "gan_epoch_2.pth")])
    search.main()
    branched = torch.load(tmp_path / "branch" / "checkpoints" / "gan_epoch_3.pth", weights_only=True)
    assert branched["config"]["checkpoint_dir"] == f"{tmp_path / 'branch'}/checkpoints" and branched["epoch"] == 3
    assert (tmp_path / "branch" / "samples" / "epoch_0003.png").is_file() and sorted(p.name for p in ck.iterdir()) == before


def test_train_says_how_to_continue_refuses_what_it_would_lose_and_restores_gan_after_an_error(
        mnist_dir, tmp_path, monkeypatch, capsys):
    before = (gan.build_discriminator, gan.build_generator, gan.train_step)
    lever = "G 40, D 32, rp, R1+R2 0.3, no-bn D"

    def stopped(cfg, **hooks):  # as rundir says it after Ctrl-C or SIGTERM, the lever's D in place
        assert gan.build_discriminator is search.no_batchnorm
        raise TrainingInterrupted("stopped by SIGTERM in epoch 3 after step 5; saved r/c/x.pth. Continue with: "
                                  "python cli.py resume r/c/x.pth")
    monkeypatch.setattr(gan, "train", stopped)
    monkeypatch.setattr("sys.argv", ["search.py", "--data-dir", "d", "--lever", lever, "--epochs", "50", "--train", "r"])
    with pytest.raises(SystemExit) as stop:
        search.main()
    assert stop.value.code == 130 and (gan.build_discriminator, gan.train_step) == before[::2]
    assert capsys.readouterr().err.strip().endswith(
        f"Continue with: python search.py --data-dir d --lever '{lever}' --train r --epochs 50 --resume r/c/x.pth")
    monkeypatch.setattr(gan, "resume", lambda path, overrides, **hooks: stopped(None))  # a resumed run stopped:
    monkeypatch.setattr("sys.argv", ["search.py", "--data-dir", "d", "--lever", lever, "--epochs", "70", "--train", "r",
                                     "--lr", "0.00012345678", "--resume", "r/checkpoints/gan_epoch_50.pth"])
    with pytest.raises(SystemExit) as stop:  # its command goes on at the rate it was given, to the last digit
        search.main()
    assert stop.value.code == 130 and capsys.readouterr().err.strip().endswith(
        "--train r --epochs 70 --lr 0.00012345678 --resume r/c/x.pth")
    def stopped_in(odd: str, data_dir: str = "d") -> str:
        """What search.py says when gan.train, run in folder `odd`, stops as rundir says it after a Ctrl-C."""
        monkeypatch.setattr(gan, "train", lambda cfg, **hooks: (_ for _ in ()).throw(TrainingInterrupted(
            f"stopped by SIGINT in epoch 3 after step 5; saved {odd}/c/x.pth. Continue with: "
            f"{resume_command(odd + '/c/x.pth')}")))
        monkeypatch.setattr("sys.argv", ["search.py", "--data-dir", data_dir, "--lever", lever, f"--train={odd}"])
        with pytest.raises(SystemExit) as stop:
            search.main()
        assert stop.value.code == 130
        return capsys.readouterr().err.strip()

    # a folder a shell would split, unquote and run, that starts like an option and holds the words of the command
    odd = "-Bob's runs `date` python cli.py resume x"
    said = stopped_in(odd, "my data")
    assert said.count("python search.py") == 1, said
    assert shlex.split(said.partition("Continue with: ")[2]) == [
        "python", "search.py", "--data-dir", "my data", "--lever", lever, "--train", f"./{odd}", "--resume",
        f"./{odd}/c/x.pth"]
    said = stopped_in("line\nbreak \x1b[2J")  # a line break and a terminal's clear-screen: one line, sent as text
    assert said.isprintable() and said.count("python search.py") == 1, said
    assert said.endswith("--train $'line\\x0abreak \\x1b[2J' --resume $'line\\x0abreak \\x1b[2J/c/x.pth'"), said
    odd = "w with: python cli.py resume x"  # the words of the command in the folder's name: the command is the last
    said = stopped_in(odd)
    assert said.startswith(f"stopped by SIGINT in epoch 3 after step 5; saved {odd}/c/x.pth. Continue with: python "
                           "search.py ") and said.endswith(f"--resume '{odd}/c/x.pth'"), said
    monkeypatch.undo()

    for other, why in (("default, rate down in the second half", "changes the rate per epoch"),
                       ("width 20, class BatchNorm G", "builds a G of its own")):
        monkeypatch.setattr("sys.argv", ["search.py", "--data-dir", str(mnist_dir), "--lever", other, "--epochs", "1",
                                         "--train", str(tmp_path / "x")])
        with pytest.raises(SystemExit) as refused:
            search.main()
        assert refused.value.code == 1 and why in capsys.readouterr().err and not (tmp_path / "x").exists()
    for bad, says in ((["--train", " "], "--train needs a folder"), (["--resume", "c.pth"], "--resume continues"),
                      (["--train", "r", "--resume", ""], "--resume needs a checkpoint"),
                      (["--train", "r", "--epochs", "0"], "--epochs 1 or more"),
                      (["--train", "r", "--threads", "100000"], "--threads 100000 is more than this machine can use"),
                      (["--train", "r", "--lr", "1e-4"], "--lr changes the rate of a --train run resumed")):
        monkeypatch.setattr("sys.argv", ["search.py", "--data-dir", "d", "--lever", lever, *bad])
        with pytest.raises(SystemExit, match=says):
            search.main()
    monkeypatch.setattr("sys.argv", ["search.py", "--data-dir", str(tmp_path / "none"), "--lever", lever, "--epochs",
                                     "1", "--train", str(tmp_path / "y")])
    with pytest.raises(SystemExit) as no_data:
        search.main()  # no data: gan.train raises inside the patches
    assert no_data.value.code == 1 and capsys.readouterr().err.startswith("Error: MNIST is not in")
    assert (gan.build_discriminator, gan.build_generator, gan.train_step) == before


def test_a_checkpoint_of_another_lever_is_told_apart_by_its_rates_unless_a_new_rate_is_asked(monkeypatch):
    """Found by a hostile pass: skipping every option a resume may change let a `default` run resume as "D at half the
    rate". The rates are compared unless --lr is given now (then they are the new ones)."""
    saved = dataclasses.asdict(search.lever_config("default"))
    monkeypatch.setattr(search, "peek", lambda path: {"config": saved})
    with pytest.raises(gan.GANError, match=r"not trained with the lever 'default, D at half the rate' \(its lr_d is "
                                           r"0\.0008\).*the --lr it was resumed with.*python cli\.py resume x\.pth"):
        search.check_trained_with("default, D at half the rate", "x.pth")
    search.check_trained_with("default, D at half the rate", "x.pth", new_rate=True)  # --lr 4e-4, say: the run's now
    search.check_trained_with("default", "x.pth")
    with pytest.raises(gan.GANError, match="its width is 16"):
        search.check_trained_with("default, width 20", "x.pth", new_rate=True)


def test_a_resumed_train_run_is_the_uninterrupted_one_to_the_bit(mnist_dir, tmp_path, monkeypatch):
    """Found by a hostile pass: the lever's step counted its own calls, from 0 in each process, so after a resume its
    lazy R1 and R2 penalties fell on other steps than in one run, and the model differed. One step per epoch here (256
    images in batches of 256): one run penalises step 0 only, and so must a run resumed after step 0."""
    lever = "G 40, D 32, rp, R1+R2 0.3, no-bn D"
    penalised = []
    penalty = search.penalty
    monkeypatch.setattr(search, "penalty", lambda *a: penalised.append(1) or penalty(*a))
    for name, legs in (("one", [3]), ("two", [1, 3])):
        for epochs in legs:
            ck = tmp_path / name / "checkpoints"
            resume = ["--resume", str(ck / "gan_epoch_1.pth")] if epochs == 3 and legs == [1, 3] else []
            monkeypatch.setattr("sys.argv", ["search.py", "--data-dir", str(mnist_dir), "--lever", lever, "--seed", "1",
                                             "--train", str(tmp_path / name), "--epochs", str(epochs), *resume])
            search.main()
        assert len(penalised) == 1, name  # step 0 of 3, in both
        penalised.clear()
    one, two = (torch.load(tmp_path / name / "checkpoints" / "gan_epoch_3.pth", weights_only=True)
                for name in ("one", "two"))
    for part in ("G", "D", "G_ema"):
        assert one[part].keys() == two[part].keys()
        assert all(torch.equal(one[part][k], two[part][k]) for k in one[part]), part


def test_a_ctrl_c_while_torch_loads_ends_the_script_in_one_line(tmp_path):
    """Found by a hostile pass: a Ctrl-C in search.py's first seconds (torch loading) printed a traceback. Held back
    until main() as cli.py holds it, it ends the script with one line and 130."""
    script = Path(search.__file__)
    proc = subprocess.Popen([sys.executable, str(script), "--data-dir", str(tmp_path / "none"), "--lever",
                             "G 40, D 32, rp, R1+R2 0.3, no-bn D", "--train", str(tmp_path / "run"), "--epochs", "1"],
                            cwd=script.parent, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(0.2)  # torch takes a second or more to load
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert (proc.returncode, err.strip(), out) == (130, "Error: interrupted", ""), err
    assert not (tmp_path / "run").exists()


def test_keep_last_sets_how_many_checkpoints_a_train_run_keeps(mnist_dir, tmp_path, monkeypatch, capsys):
    """Found by a hostile pass: the README's resume from epoch 50 to 70 pruned epoch 50 (3 kept), the point to branch
    from again, and search.py had no way to keep it. --keep-last is cli.py train's, for --train runs."""
    lever = "G 40, D 32, rp, R1+R2 0.3, no-bn D"
    args = ["search.py", "--data-dir", str(mnist_dir), "--lever", lever, "--train", str(tmp_path / "run")]
    ck = tmp_path / "run" / "checkpoints"
    monkeypatch.setattr("sys.argv", [*args, "--epochs", "1", "--keep-last", "0"])
    search.main()
    assert torch.load(ck / "gan_epoch_1.pth", weights_only=True)["config"]["keep_last"] == 0
    monkeypatch.setattr("sys.argv", [*args, "--epochs", "6", "--keep-last", "1", "--resume", str(ck / "gan_epoch_1.pth")])
    search.main()  # saves epochs 5 and 6 (every 5, and the last), keeping the newest one
    assert sorted(p.name for p in ck.glob("gan_epoch_*.pth")) == ["gan_epoch_6.pth"]
    assert torch.load(ck / "gan_epoch_6.pth", weights_only=True)["config"]["keep_last"] == 1
    monkeypatch.setattr("sys.argv", [*args, "--keep-last", "-1", "--epochs", "7", "--resume", str(ck / "gan_epoch_6.pth")])
    with pytest.raises(SystemExit) as refused:  # the config's own check, named as this script's option
        search.main()
    assert refused.value.code == 1 and capsys.readouterr().err.startswith("Error: --keep-last must be at least 0, got -1")
    monkeypatch.setattr("sys.argv", [*args[:5], "--keep-last", "2"])  # a measurement: refused before anything runs
    with pytest.raises(SystemExit, match=r"^Error: --keep-last keeps the checkpoints of a --train run: pass --train"):
        search.main()
    monkeypatch.setattr("sys.argv", [*args, "--epochs", "3"])  # a new run into this one's folder: refused, and the
    with pytest.raises(SystemExit) as refused:  # advice to continue the run there leaves out an --epochs it has passed
        search.main()
    said = capsys.readouterr().err
    assert refused.value.code == 1 and f"--train {tmp_path / 'run'} --resume {ck / 'gan_epoch_6.pth'}" in said, said
    assert sorted(p.name for p in ck.glob("gan_epoch_*.pth")) == ["gan_epoch_6.pth"]


def test_a_product_run_is_sent_to_cli_py_and_a_checkpoints_folder_is_not_a_run_folder(mnist_dir, tmp_path, monkeypatch,
                                                                                       capsys):
    """Found by a hostile pass: the advice for a cli.py train checkpoint was rewritten into the very search.py command
    that had been refused; and --train FOLDER/checkpoints nested a branch inside the run's checkpoints."""
    product = gan.train(gan.Config(data_dir=str(mnist_dir), epochs=1, checkpoint_dir=str(tmp_path / "p" / "checkpoints"),
                                   sample_dir=str(tmp_path / "p" / "samples")))
    lever = "G 40, D 32, rp, R1+R2 0.3, no-bn D"
    monkeypatch.setattr("sys.argv", ["search.py", "--data-dir", str(mnist_dir), "--lever", lever, "--train",
                                     str(tmp_path / "p"), "--epochs", "2", "--resume", str(product)])
    with pytest.raises(SystemExit) as refused:
        search.main()
    said = capsys.readouterr().err
    assert refused.value.code == 1 and said.strip().endswith(f"(a run of cli.py train goes on with `python cli.py resume "
                                                             f"{product}`)") and "python search.py" not in said, said
    monkeypatch.setattr("sys.argv", ["search.py", "--data-dir", str(mnist_dir), "--lever", lever, "--train",
                                     str(product.parent), "--epochs", "2", "--resume", str(product)])
    with pytest.raises(SystemExit, match=r"is the run's checkpoints folder: pass the run's folder, the one above it"):
        search.main()
    assert not (product.parent / "checkpoints").exists() and not (product.parent / "samples").exists()


def test_a_naming_head_starts_from_another_levers_run_learns_real_digits_and_asks_g_for_the_asked_digit(
        mnist_dir, tmp_path, monkeypatch, capsys):
    """The AC-GAN lever as v7's second stage: resumed from a checkpoint of v7's lever (no naming head), D gets a new
    head (a copy of the checkpoint written to FOLDER/start, the original untouched); the head learns the real digits'
    labels, G's loss holds the cross-entropy of what it draws against what it was asked for, and the run goes on as
    a run of its own (resumed again from its own checkpoints)."""
    lever, naming = "G 40, D 32, rp, R1+R2 0.3, no-bn D", "G 40, D 32, rp, R1+R2 0.3, no-bn D, naming head 1"
    run = ["search.py", "--data-dir", str(mnist_dir), "--seed", "1"]
    monkeypatch.setattr("sys.argv", [*run, "--lever", lever, "--train", str(tmp_path / "v7"), "--epochs", "1"])
    search.main()
    first = tmp_path / "v7" / "checkpoints" / "gan_epoch_1.pth"
    before = first.read_bytes()

    terms = []  # (real labels' loss, asked-for labels' loss) of each step
    cross_entropy = search.F.cross_entropy
    monkeypatch.setattr(search.F, "cross_entropy", lambda *a, **k: terms.append(cross_entropy(*a, **k)) or terms[-1])
    monkeypatch.setattr("sys.argv", [*run, "--lever", naming, "--train", str(tmp_path / "ac"), "--epochs", "8",
                                     "--resume", str(first), "--lr", "4e-4"])
    search.main()
    assert first.read_bytes() == before  # the other lever's run as it was
    start = torch.load(tmp_path / "ac" / "start" / "gan_epoch_1.pth", weights_only=True)
    assert start["D"]["classify.weight"].shape == (10, 128 * 16) and start["D"]["classify.weight"].std() < 0.03
    last = torch.load(tmp_path / "ac" / "checkpoints" / "gan_epoch_8.pth", weights_only=True)
    assert last["D"].keys() == search.classifying(1.0)(gan.Config(width=40, d_width=32)).state_dict().keys()
    assert not torch.equal(last["D"]["classify.weight"], start["D"]["classify.weight"])
    assert len(terms) == 2 * 7 and all(t.requires_grad for t in terms)  # one step an epoch: D's term, then G's
    real = [t.item() for t in terms[0::2]]
    # the head learns to name the real digits (the same 256 each step), from ln 10 = 2.30 (its new weights near 0)
    assert abs(real[0] - math.log(10)) < 0.01 and all(b < a for a, b in zip(real, real[1:])) and real[-1] < 2.25, real

    D = search.classifying(1.0)(gan.Config(width=40, d_width=32))
    D.load_state_dict(last["D"])
    G, _ = gan.load_generator(tmp_path / "ac" / "checkpoints" / "gan_epoch_8.pth")
    asked = torch.arange(10).repeat(5)
    logits, named = D(G(torch.randn(50, G.latent_dim), asked), asked, classes=True)
    assert logits.shape == (50,) and named.shape == (50, 10)

    monkeypatch.setattr("sys.argv", [*run, "--lever", naming, "--train", str(tmp_path / "ac2"), "--epochs", "2",
                                     "--resume", str(first), "--lr", "4e-4"])
    search.main()  # the same start again, in another folder; then its own checkpoint goes on without a new head
    monkeypatch.setattr("sys.argv", [*run, "--lever", naming, "--train", str(tmp_path / "ac2"), "--epochs", "3",
                                     "--resume", str(tmp_path / "ac2" / "checkpoints" / "gan_epoch_2.pth")])
    search.main()
    assert sorted(p.name for p in (tmp_path / "ac2" / "start").iterdir()) == ["gan_epoch_1.pth"]

    def refused_with(*args):
        monkeypatch.setattr("sys.argv", [*run, *args])
        with pytest.raises(SystemExit) as refused:
            search.main()
        assert refused.value.code == 1
        return capsys.readouterr().err

    said = refused_with("--lever", naming, "--train", str(tmp_path / "ac2"), "--epochs", "3", "--resume", str(first))
    assert "holds gan_epoch_2.pth, from later in this run" in said  # its start again, over its later epochs: refused,
    assert f"naming head 1' --train {tmp_path / 'ac2'} --resume {tmp_path / 'ac2' / 'checkpoints'}/gan_epoch_3" in said
    said = refused_with("--lever", naming, "--train", str(tmp_path / "ac2"), "--epochs", "3", "--resume", str(first),
                        "--seed", "2")  # (the last --seed wins) another start, into a folder of another
    assert "ac2/checkpoints/gan_epoch_2.pth is another run's" in said

    said = refused_with("--lever", naming, "--train", str(tmp_path / "ac3"), "--epochs", "2", "--resume", str(first),
                        "--lr", "2")  # refused after its start was written; tried again, the start is used again
    assert said.startswith("Error: --lr must be at most 1") and not (tmp_path / "ac3" / "checkpoints").exists()
    said = refused_with("--lever", naming, "--train", str(tmp_path / "ac3"), "--epochs", "2", "--resume", str(first),
                        "--seed", "2")  # another start there: refused, the file not replaced
    assert "start/gan_epoch_1.pth is there already and is not the start of this run" in said
    monkeypatch.setattr("sys.argv", [*run, "--lever", naming, "--train", str(tmp_path / "ac3"), "--epochs", "2",
                                     "--resume", str(first), "--lr", "4e-4"])
    search.main()
    assert [p.name for p in (tmp_path / "ac3" / "start").iterdir()] == ["gan_epoch_1.pth"]
    two, three = (torch.load(tmp_path / f / "checkpoints" / "gan_epoch_2.pth", weights_only=True) for f in ("ac2", "ac3"))
    assert all(torch.equal(two[n][k], three[n][k]) for n in ("G", "D") for k in two[n])  # the same start, the same run
    kept = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    said = refused_with("--lever", naming, "--train", str(tmp_path / "v7"), "--epochs", "3", "--resume", str(first))
    assert "is another run's, and a run with a naming head is a run of its own" in said  # the run it starts from:
    # never written into, not even a start of the new run beside it
    said = refused_with("--lever", lever, "--train", str(tmp_path / "ac"), "--epochs", "9", "--resume",
                        str(tmp_path / "ac" / "checkpoints" / "gan_epoch_8.pth"))
    assert said.startswith("Error: ") and "a head that names the digit" in said and said.count("\n") == 1
    said = refused_with("--lever", naming.replace("head 1", "head 0.1"), "--train", str(tmp_path / "ac"), "--epochs", "9",
                        "--resume", str(tmp_path / "ac" / "checkpoints" / "gan_epoch_8.pth"))  # another weight: the
    assert "naming head was trained at weight 1, not weight 0.1" in said and said.count("\n") == 1  # run's own is kept
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == kept  # nothing changed, nothing added


def test_the_naming_heads_terms_name_real_digits_for_d_and_the_asked_for_digits_for_g(monkeypatch):
    """Found by a hostile pass (the test above could not tell): D's term is on the real digits and their labels, G's
    on what G drew just now (a path back to G's weights, not D's own pass on the detached images) and the labels it
    was asked for; without the terms the head never moves, with them G moves otherwise."""
    cfg = gan.Config(width=4, d_width=4)
    torch.manual_seed(0)
    G0, D0 = gan.build_generator(cfg), search.classifying(1.0)(cfg)
    real, labels = torch.rand(8, 1, 28, 28) * 2 - 1, torch.arange(8)
    calls, cross_entropy, now = [], search.F.cross_entropy, {}

    def recorded(x, y):  # the logits, the labels, and whether the logits lead back to G's weights
        reach = torch.autograd.grad(x.sum(), next(now["G"].parameters()), retain_graph=True, allow_unused=True)[0]
        calls.append((x.detach(), y, reach is not None and reach.abs().sum() > 0))
        return cross_entropy(x, y)

    monkeypatch.setattr(search.F, "cross_entropy", recorded)
    after = {}
    for classes in (0.0, 1.0):
        G, D = copy.deepcopy(G0), copy.deepcopy(D0)
        now["G"] = G
        opt_g, opt_d = torch.optim.Adam(G.parameters(), 1e-3), torch.optim.Adam(D.parameters(), 1e-3)
        torch.manual_seed(1)
        search.make_step("rp", classes=classes)(G, D, opt_g, opt_d, real, labels, 1.0, amp=contextlib.nullcontext)
        after[classes] = (G.state_dict(), D.classify.weight.detach().clone())
    assert len(calls) == 2
    (d_in, d_target, d_reach), (g_in, g_target, g_reach) = calls
    torch.manual_seed(1)
    asked = search.noise_and_labels(G0, 8, "cpu")[1]
    assert torch.equal(d_target, labels) and torch.equal(g_target, asked) and not torch.equal(asked, labels)
    assert d_in.shape == g_in.shape == (8, 10)
    assert g_reach and not d_reach  # G's term from what G drew just now; D's from the real digits
    assert torch.equal(after[0.0][1], D0.classify.weight) and not torch.equal(after[1.0][1], D0.classify.weight)
    assert any(not torch.equal(after[0.0][0][k], after[1.0][0][k]) for k in after[0.0][0])
    with pytest.raises(gan.GANError, match="without BatchNorm"):  # gan's own D has no head to name with
        search.make_step("rp", classes=1.0)(G, gan.build_discriminator(cfg), opt_g, opt_d, real, labels, 1.0,
                                            amp=contextlib.nullcontext)


def test_two_naming_starts_at_once_into_one_folder_end_in_one_run_and_one_line(mnist_dir, tmp_path):
    """Found by a hostile pass: two commands started together both found no start, and the second to write it died
    in a traceback (FileExistsError). Now the second uses the first's start (the same run), and the folder lock lets
    one of them train; the other, if it comes second, says why in one line."""
    lever = "G 40, D 32, rp, R1+R2 0.3, no-bn D"
    base = [sys.executable, "search.py", "--data-dir", str(mnist_dir), "--seed", "1", "--threads", "1"]
    subprocess.run([*base, "--lever", lever, "--train", str(tmp_path / "v7"), "--epochs", "1"], check=True,
                   cwd=search.Path(search.__file__).parent, capture_output=True)
    command = [*base, "--lever", lever + ", naming head 1", "--train", str(tmp_path / "ac"), "--epochs", "2",
               "--resume", str(tmp_path / "v7" / "checkpoints" / "gan_epoch_1.pth")]
    runs = [subprocess.Popen(command, cwd=search.Path(search.__file__).parent, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for _ in range(2)]
    ended = [(p.wait(timeout=300), p.stderr.read()) for p in runs]
    assert all("Traceback" not in err for _, err in ended), ended
    assert sorted(code for code, _ in ended)[0] == 0, ended  # one trained
    assert all(code == 0 or (code == 1 and err.startswith("Error: ") and err.count("\n") == 1) for code, err in ended)
    assert [p.name for p in (tmp_path / "ac" / "start").iterdir()] == ["gan_epoch_1.pth"]
    assert torch.load(tmp_path / "ac" / "checkpoints" / "gan_epoch_2.pth", weights_only=True)["epoch"] == 2


def test_the_misnamed_only_term_counts_the_digits_the_head_names_otherwise_and_no_others():
    logits = torch.tensor([[5.0, 0.0], [0.0, 5.0], [0.0, 1.0], [2.0, 0.0]])  # names 0, 1, 1, 0
    asked = torch.tensor([0, 1, 0, 1])  # the last two misnamed
    every = search.F.cross_entropy(logits, asked, reduction="none")
    assert torch.isclose(search.naming_term(logits, asked), every.mean())
    assert torch.isclose(search.naming_term(logits, asked, misnamed_only=True), every[2:].sum() / 4)
    assert search.naming_term(logits[:2], asked[:2], misnamed_only=True) == 0  # all named as asked: nothing asked
    assert search.naming_of("G 40, D 32, rp, R1+R2 0.3, no-bn D, naming head 1 on misnamed") == (1.0, True)
    assert search.naming_of("G 40, D 32, rp, R1+R2 0.3, no-bn D, naming head 0.1") == (0.1, False)
    assert search.naming_of("G 40, D 32, rp, R1+R2 0.3, no-bn D") is None


@pytest.mark.parametrize("loss, r", [("rp", 0.3), ("bce", 0.0)])
def test_a_probe_heads_term_trains_the_head_alone_and_g_still_learns_from_it(loss, r):
    """The probe levers: D's naming term reaches the head through D's features detached, so D's own weights take the
    step they take without the term, to the bit (also with the penalties of step 0), while the head learns and G's
    term (through D, not detached) moves G."""
    cfg = gan.Config(width=4, d_width=4)
    torch.manual_seed(0)
    G0, D0 = gan.build_generator(cfg), search.classifying(1.0, probe=True)(cfg)
    real, labels = torch.rand(8, 1, 28, 28) * 2 - 1, torch.arange(8)
    after = {}
    for classes, probe in ((0.0, False), (1.0, True), (1.0, False)):
        G, D = copy.deepcopy(G0), copy.deepcopy(D0)
        opt_g, opt_d = torch.optim.Adam(G.parameters(), 1e-3), torch.optim.Adam(D.parameters(), 1e-3)
        torch.manual_seed(1)
        search.make_step(loss, r1=r, r2=r, classes=classes, probe=probe)(G, D, opt_g, opt_d, real, labels, 1.0,
                                                                         amp=contextlib.nullcontext)
        after[classes, probe] = G.state_dict(), {k: v for k, v in D.state_dict().items() if "classify" not in k}, \
            D.classify.weight.detach().clone()
    (g0, d0, head0), (g_probe, d_probe, head_probe), (_, d_shaped, _) = after.values()
    assert all(torch.equal(d0[k], d_probe[k]) for k in d0)  # D's body and heads: as without the term
    assert any(not torch.equal(d0[k], d_shaped[k]) for k in d0)  # ...where the head that is not a probe reshapes them
    assert torch.equal(head0, D0.classify.weight) and not torch.equal(head_probe, D0.classify.weight)
    assert any(not torch.equal(g0[k], g_probe[k]) for k in g0)


def test_each_naming_lever_says_a_probe_where_its_step_detaches_and_a_checkpoint_says_which_it_was():
    for lever in search.LEVERS:
        if search.naming_of(lever) is not None:
            assert search.parts(lever)[2].probe == (len(search.naming_of(lever)) == 3) == ("probe" in lever), lever
    probe, head = ("G 40, D 32, rp, R1+R2 0.3, no-bn D, naming " + k for k in ("probe 1 on misnamed", "head 1 on misnamed"))
    assert search.naming_of(probe) == (1.0, True, True) and search.naming_of(head) == (1.0, True)
    assert search.said(search.naming_of(probe)) == "a probe, weight 1 on misnamed digits only"
    as_probe, as_head = ({"D": {"classify.weight": 0, "naming": torch.tensor(v)}} for v in ([1.0, 1.0, 1.0], [1.0, 1.0]))
    assert search.named_as(probe, as_probe) is None and search.named_as(head, as_head) is None
    light = {"D": {"classify.weight": 0, "naming": torch.tensor([0.1, 0.0])}}  # stored as 0.10000000149: the same
    assert search.named_as("G 40, D 32, rp, R1+R2 0.3, no-bn D, naming head 0.1", light) is None
    assert search.named_as(probe, as_head) == \
        "its D's naming head was trained at weight 1 on misnamed digits only, not a probe, weight 1 on misnamed digits only"
    assert search.named_as(head, as_probe) == \
        "its D's naming head was trained at a probe, weight 1 on misnamed digits only, not weight 1 on misnamed digits only"


def test_a_probe_run_starts_from_a_headless_checkpoint_goes_on_from_its_own_and_is_refused_to_a_head(
        mnist_dir, tmp_path, monkeypatch, capsys):
    """Found by a hostile pass: a probe's checkpoint (three settings in D's naming) was refused on resume by its own
    lever, as if it recorded none."""
    lever, probe = "G 40, D 32, rp, R1+R2 0.3, no-bn D", "G 40, D 32, rp, R1+R2 0.3, no-bn D, naming probe 0.1"
    run = ["search.py", "--data-dir", str(mnist_dir), "--seed", "1"]
    for args in (["--lever", lever, "--train", str(tmp_path / "v7"), "--epochs", "1"],
                 ["--lever", probe, "--train", str(tmp_path / "p"), "--epochs", "2", "--resume",
                  str(tmp_path / "v7" / "checkpoints" / "gan_epoch_1.pth")],
                 ["--lever", probe, "--train", str(tmp_path / "p"), "--epochs", "3", "--resume",
                  str(tmp_path / "p" / "checkpoints" / "gan_epoch_2.pth")]):
        monkeypatch.setattr("sys.argv", [*run, *args])
        search.main()
    third = torch.load(tmp_path / "p" / "checkpoints" / "gan_epoch_3.pth", weights_only=True)
    assert third["epoch"] == 3 and torch.equal(third["D"]["naming"], torch.tensor([0.1, 0.0, 1.0]))
    monkeypatch.setattr("sys.argv", [*run, "--lever", probe.replace("probe", "head"), "--train", str(tmp_path / "p"),
                                     "--epochs", "4", "--resume", str(tmp_path / "p" / "checkpoints" / "gan_epoch_3.pth")])
    with pytest.raises(SystemExit) as refused:
        search.main()
    said = capsys.readouterr().err
    assert refused.value.code == 1 and said.count("\n") == 1
    assert "naming head was trained at a probe, weight 0.1, not weight 0.1" in said


def test_a_runs_lines_show_a_folders_name_on_one_printable_line(mnist_dir, tmp_path, monkeypatch, capsys):
    """Found by a hostile pass: search.py's epoch and done lines (gan.train's own print) sent a folder's escape and
    line break to the terminal as they were."""
    odd = tmp_path / "sr\x1b]0;T\x07 a\nb"
    monkeypatch.setattr("sys.argv", ["search.py", "--data-dir", str(mnist_dir), "--lever", "G 40, D 32, rp, R1+R2 0.3, "
                                     "no-bn D", "--epochs", "1", "--train", str(odd)])
    search.main()
    lines = capsys.readouterr().out.splitlines()
    assert (odd / "checkpoints" / "gan_epoch_1.pth").is_file()
    assert [x for x in lines if x.startswith("epoch 1/1")] and all(x.isprintable() for x in lines), lines
    assert any("sr\\x1b]0;T\\x07 a\\nb/checkpoints/gan_epoch_1.pth" in x for x in lines), lines
