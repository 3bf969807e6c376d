"""search.py, the lever screen of docs/results.md: each kind of lever still trains through gan.py's loop and is
scored, and gan.py is left as it was."""

import math

import gan
import search


def test_each_kind_of_lever_trains_and_is_scored_and_gan_is_restored(mnist_dir, capsys):
    before = (gan.build_discriminator, gan.train_step, gan.update_ema)
    levers = ("baseline", "beta1=0", "spectral norm D", "diffaugment",  # a config change, a D, an augmented step,
              "rp, R1+R2 0.3, no-bn D, beta1=0")                          # another loss with both penalties
    for lever in levers:
        rows = search.run(lever, seed=0, epochs=2, at=[1, 2], data_dir=str(mnist_dir), n=100)
        assert [(r["epoch"], r["ema"]) for r in rows] == [(1, 0.999)] + [(2, d) for d in search.DECAYS], lever
        assert (gan.build_discriminator, gan.train_step, gan.update_ema) == before, lever
        assert all(math.isfinite(r["fid"]) and 0 <= r["recall"] <= 1 for r in rows), lever  # none is NaN
    assert capsys.readouterr().out.count('"lever": "baseline"') == 5  # a JSON line per score


def test_the_levers_do_what_their_names_say():
    cfg = gan.Config(width=4)
    assert not search.no_batchnorm(cfg).batchnorm and gan.build_discriminator(cfg).batchnorm
    assert sum(hasattr(m, "parametrizations") for m in search.spectral(cfg).modules()) == 4  # 3 convs and the head
    x = gan.torch.ones(64, 1, 28, 28)  # all white: the cutout turns 7x7 (in a corner) to 13x13 pixels black
    black = (search.translate_cutout(x) == -1).flatten(1).sum(1)
    assert ((black >= 7 * 7) & (black <= 13 * 13)).all() and black.float().mean() > 100
    assert search.LEVERS["beta1=0"][0] == {"beta1": 0.0} and search.BEFORE == {"beta1": 0.5, "ema": 0.999}
