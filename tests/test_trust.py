"""The promises of the README's Safety section under races, wrong deletes and lying files: each test here names a
defect that the code before these checks had (two runs into one folder, export --force deleting a run, a resume on
other data, a checkpoint that lies...), and runs the real commands, in real processes where two start together."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import checkpoint
import gan
import rundir
from conftest import ROOT, assert_refused, cli_process, config, make_mnist, one_clear_line, quiet, write_idx
from files import FolderLock

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "NO_COLOR": "1", "COLUMNS": "200"}
SMALL = ("--arch", "dcgan", "--width", "4", "--batch-size", "32", "--device", "cpu")  # 1 MB checkpoints


def run_files(folder: Path) -> dict[str, str]:
    """The run id inside every checkpoint of a folder."""
    return {p.name: torch.load(p, weights_only=True)["run"] for p in sorted(folder.glob("*.pth"))}


def sha(path: Path) -> bytes:
    return path.read_bytes()


# ---- (1) two runs into one folder ----

def test_two_trains_started_together_into_one_folder_one_is_refused(tmp_path, small_data):
    argv = ["train", *SMALL, "--epochs", "2", "--data-dir", small_data, "--checkpoint-dir", tmp_path / "ck",
            "--sample-dir", tmp_path / "samples"]
    first, second = cli_process(*argv), cli_process(*argv)  # started at the same moment
    results = [(p.wait(180), p.communicate()) for p in (first, second)]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 1], results
    _, (_, err) = next(r for r in results if r[0] == 1)
    one_clear_line(err, r"in use by process \d+|already holds another run")
    owners = set(run_files(tmp_path / "ck").values())
    assert len(owners) == 1  # every checkpoint and the final generator are the one run's
    assert len(list((tmp_path / "ck").glob("gan_epoch_*.pth"))) == 2


def long_run_holding(ck, small_data, samples, *extra):
    """A real `train` process of 1000 epochs, returned once it has locked `ck` (kill it when done)."""
    first = cli_process("train", *SMALL, "--epochs", "1000", "--data-dir", small_data, "--checkpoint-dir", ck,
                        "--sample-dir", samples, *extra)
    deadline = time.monotonic() + 60
    while not (ck / ".lock").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return first


def test_a_run_holds_its_folder_until_it_ends_even_before_its_first_checkpoint(tmp_path, small_data, run_cli):
    ck = tmp_path / "ck"
    first = long_run_holding(ck, small_data, tmp_path / "samples", "--keep-last", "0")  # epoch 1 stays
    try:
        # the folder is locked before any checkpoint exists: a second run is told who holds it
        second = run_cli("train", *SMALL, "--epochs", "1", "--data-dir", small_data, "--checkpoint-dir", ck,
                         "--sample-dir", tmp_path / "other")
        assert_refused(second, rf"{ck} is in use by process {first.pid}")
        deadline = time.monotonic() + 60
        while not (ck / "gan_epoch_1.pth").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert_refused(run_cli("resume", ck / "gan_epoch_1.pth", "--epochs", "2000"), r"in use by process")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    assert not list((tmp_path / "other").glob("*.png"))
    # a SIGKILLed run leaves no lock behind: the folder can be held again at once
    with FolderLock(ck, "--checkpoint-dir"):
        pass


def test_a_lock_taken_a_moment_ago_is_refused_naming_its_holder(tmp_path):
    """The holder writes its pid just after taking the lock: a second comer in between used to say 'another
    process' (CI caught it with two trains started together); it waits a moment for the name."""
    import fcntl
    import threading
    (tmp_path / "ck").mkdir()
    with open(tmp_path / "ck" / ".lock", "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        threading.Timer(0.1, lambda: (held.write("process 4242"), held.flush())).start()
        with pytest.raises(gan.GANError, match=r"ck is in use by process 4242: wait for it to finish"):
            FolderLock(tmp_path / "ck", "--checkpoint-dir").__enter__()


def test_a_folder_locked_before_its_lock_file_exists_is_refused_naming_its_holder(tmp_path):
    """The holder locks the folder, then creates `.lock`: a second comer in between said 'another process' (two
    trains forked at the same moment); it waits a moment for the file and the name in it."""
    import fcntl
    import threading
    folder = tmp_path / "ck"
    folder.mkdir()
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        threading.Timer(0.1, lambda: (folder / ".lock").write_text("process 4343")).start()
        with pytest.raises(gan.GANError, match=r"ck is in use by process 4343: wait for it to finish"):
            FolderLock(folder, "--checkpoint-dir").__enter__()
    finally:
        os.close(fd)


# ---- (2, 3) export --force and two exports at once ----

@pytest.fixture(scope="module")
def generator_file(tmp_path_factory, small_data) -> Path:
    tmp = tmp_path_factory.mktemp("gen")
    gan.train(config(tmp, small_data, epochs=1), console=quiet())
    return tmp / "ck" / "generator_final.pth"


def test_export_force_never_deletes_a_folder_that_is_not_an_export(tmp_path, run_cli, generator_file):
    run_folder = generator_file.parent
    before = {p.name: sha(p) for p in run_folder.iterdir() if p.is_file()}
    result = run_cli("export", "--checkpoint", generator_file, "--n", "10", "--out", run_folder)
    assert_refused(result, r"already exists: choose another --out \(it is not an export of this tool, so --force")
    assert "pass --force" not in result.output  # not offered where it would be refused next
    result = run_cli("export", "--checkpoint", generator_file, "--n", "10", "--out", run_folder, "--force")
    assert_refused(result, r"--force replaces only an earlier export")
    assert {p.name: sha(p) for p in run_folder.iterdir() if p.is_file()} == before  # every checkpoint intact
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("a user's file")
    (mine / "export.json").write_text("{}")  # even dressed as an export, a stranger's file is not replaced
    assert_refused(run_cli("export", "--checkpoint", generator_file, "--n", "10", "--out", mine, "--force"),
                   r"holds notes.txt, which no export writes")
    assert (mine / "notes.txt").read_text() == "a user's file"
    for out in (".", "/"):
        assert_refused(run_cli("export", "--checkpoint", generator_file, "--n", "10", "--out", out, "--force"),
                       r"--out|--force replaces only an earlier export")


def test_export_force_replaces_an_earlier_export(tmp_path, run_cli, generator_file):
    out = tmp_path / "synth"
    for seed in ("1", "2"):
        result = run_cli("export", "--checkpoint", generator_file, "--n", "12", "--out", out, "--format", "npy",
                         "--seed", seed, *(["--force"] if seed == "2" else []))
        assert result.exit_code == 0, result
    assert json.loads((out / "export.json").read_text())["seed"] == 2
    assert np.load(out / "images.npy").shape == (12, 1, 28, 28)
    result = run_cli("export", "--checkpoint", generator_file, "--n", "12", "--out", out, "--format", "npy")
    assert_refused(result, r"already exists: choose another --out, or pass --force to replace this earlier export")
    assert json.loads((out / "export.json").read_text())["seed"] == 2  # without --force, kept as it was


def test_two_exports_started_together_to_one_folder_one_is_refused(tmp_path, generator_file):
    out = tmp_path / "synth"
    argv = ["export", "--checkpoint", generator_file, "--n", "3000", "--out", out, "--format", "npy", "--device", "cpu"]
    runs = [cli_process(*argv, "--seed", str(seed)) for seed in (1, 2)]
    results = [(p.wait(180), p.communicate()[1]) for p in runs]
    assert sorted(code for code, _ in results) == [0, 1], results
    winner = [seed for seed, (code, _) in zip((1, 2), results) if code == 0][0]
    one_clear_line(next(err for code, err in results if code == 1), r"in use by process|already exists")
    assert json.loads((out / "export.json").read_text())["seed"] == winner  # the folder is the winner's, whole
    assert np.load(out / "images.npy").shape == (3000, 1, 28, 28)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no partial folder, no lock left


def test_export_stopped_by_sigterm_leaves_nothing_and_stale_partials_are_cleaned(tmp_path, generator_file):
    out = tmp_path / "big"
    stale = tmp_path / ".big.mnist-gan-partial-999999"  # left by a process that no longer exists
    stale.mkdir()
    (stale / "images.npy").write_bytes(b"x" * 1000)
    export = cli_process("export", "--checkpoint", generator_file, "--n", "2000000", "--out", out, "--format", "png")
    deadline = time.monotonic() + 60
    while not [p for p in tmp_path.glob(".big.mnist-gan-partial-*") if p != stale] and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    export.send_signal(signal.SIGTERM)
    code, (_, err) = export.wait(60), export.communicate()
    assert code == 130
    one_clear_line(err, r"interrupted")
    assert list(tmp_path.iterdir()) == []  # no export, no partial folder (its own or the stale one), no lock


# ---- (4) grids belong to a run ----

def test_resume_refuses_another_runs_grids_and_accepts_its_own_in_a_new_folder(tmp_path, run_cli, small_data):
    def train(name):
        return gan.train(config(tmp_path / name, small_data, epochs=1), console=quiet())
    mine = train("mine")
    train("theirs")
    their_grid = tmp_path / "theirs" / "samples" / "epoch_0001.png"
    before = sha(their_grid)
    result = run_cli("resume", mine, "--epochs", "2", "--sample-dir", their_grid.parent)
    assert_refused(result, r"already holds another run's sample grids")
    assert sha(their_grid) == before
    # the reverse: a run resumed into a fresh checkpoint folder with its own grids is not a stranger to them
    result = run_cli("resume", mine, "--epochs", "2", "--checkpoint-dir", tmp_path / "moved",
                     "--sample-dir", tmp_path / "mine" / "samples")
    assert result.exit_code == 0, result
    assert (tmp_path / "mine" / "samples" / "epoch_0002.png").exists()


def test_resume_writes_where_the_checkpoint_now_is(tmp_path, run_cli, small_data):
    gan.train(config(tmp_path / "old", small_data, epochs=1), console=quiet())
    (tmp_path / "old").rename(tmp_path / "new")  # the whole run folder, moved
    result = run_cli("resume", tmp_path / "new" / "ck" / "gan_epoch_1.pth", "--epochs", "2",
                     "--sample-dir", tmp_path / "new" / "samples")
    assert result.exit_code == 0, result
    assert (tmp_path / "new" / "ck" / "gan_epoch_2.pth").exists() and not (tmp_path / "old").exists()


# ---- (5) a mid-epoch resume on other data or batches ----

@pytest.fixture
def interrupted(tmp_path, small_data) -> Path:
    """A checkpoint written after 2 of an epoch's 4 steps."""
    cfg = config(tmp_path, small_data, epochs=2)
    s = gan.new_training_state(cfg, torch.device("cpu"))
    images, labels = gan.load_pixels(gan.Config(data_dir=str(small_data)))
    s.data = checkpoint.data_fingerprint(images, labels)
    assert not gan.run_epoch(s, cfg, images, labels, should_stop=lambda: s.pos >= 64)
    (tmp_path / "ck").mkdir()
    return s.save(tmp_path / "ck" / "gan_epoch_0_interrupted.pth", dataclasses.asdict(cfg))


@pytest.mark.parametrize("change", ["batch", "data"])
def test_mid_epoch_resume_on_other_data_or_batches_restarts_the_epoch(change, interrupted, tmp_path, run_cli):
    extra = ["--batch-size", "48"] if change == "batch" else ["--data-dir", make_mnist(tmp_path / "more", n_train=320)]
    result = run_cli("resume", interrupted, *extra)
    assert result.exit_code == 0, result
    assert "epoch 1 was interrupted on other data or another --batch-size; it starts again" in result.output
    history = json.loads((tmp_path / "ck" / "metrics.json").read_text())
    assert [row["epoch"] for row in history] == [1, 2]
    assert all(0 <= row["d_real"] <= 1 and 0 <= row["d_fake"] <= 1 for row in history)  # means of sigmoids


def test_mid_epoch_resume_on_the_same_data_continues_without_a_note(interrupted, run_cli):
    result = run_cli("resume", interrupted)
    assert result.exit_code == 0, result
    assert "starts again" not in result.output


# ---- (6) generate's file names ----

def test_generate_reads_the_suffix_whatever_its_case_and_refuses_others(tmp_path, run_cli, generator_file):
    result = run_cli("generate", "--checkpoint", generator_file, "--n", "5", "--out", tmp_path / "digits.NPY")
    assert result.exit_code == 0, result
    assert np.load(tmp_path / "digits.NPY").shape == (5, 1, 28, 28)  # an array, not a PNG named .NPY
    assert_refused(run_cli("generate", "--checkpoint", generator_file, "--out", tmp_path / "x.txt"), r"\.png .*\.npy")
    with pytest.raises(ValueError, match="out .*x.txt: use a .png"):
        gan.generate_and_plot_samples(generator_file, out=tmp_path / "x.txt")
    assert not (tmp_path / "x.txt").exists()


# ---- (7) checkpoints that load but lie ----

def lie(state: dict, what: str) -> dict:
    if what == "negative epoch":
        state["epoch"] = -3
    elif what == "history of the wrong type":
        state["history"] = "not a list"
    elif what == "RNG state of the wrong type":
        state["rng"] = {"cpu": torch.zeros(7)}
    elif what == "optimizer groups that do not match":
        state["opt_d"] = state["opt_g"]
    elif what == "fixed noise of the wrong shape":
        state["fixed_z"] = torch.zeros(3, 5)
    elif what == "a position without its order":
        state["pos"], state["perm"] = 64, None
    elif what == "huge networks in a small file":
        state["config"] = {**state["config"], "arch": "dcgan", "width": 512, "latent_dim": 10_000}
    return state


LIES = ["negative epoch", "history of the wrong type", "RNG state of the wrong type",
        "optimizer groups that do not match", "fixed noise of the wrong shape", "a position without its order",
        "huge networks in a small file"]


@pytest.mark.parametrize("what", LIES)
def test_a_checkpoint_that_lies_is_refused_before_any_training(what, tmp_path, run_cli, generator_file):
    state = torch.load(generator_file.parent / "gan_epoch_1.pth", weights_only=True)
    path = tmp_path / "lying.pth"
    torch.save(lie(state, what), path)
    started = time.perf_counter()
    result = run_cli("resume", path, "--epochs", "3", "--checkpoint-dir", tmp_path / "out")
    assert_refused(result, r"lying.pth")
    assert time.perf_counter() - started < 20  # refused at once: no epoch trained, no gigabytes allocated
    assert not list((tmp_path / "out").glob("*.pth")) if (tmp_path / "out").exists() else True


# ---- the other classes of bad input: one line each, never a traceback ----

BIG_SEED = str(2**64 + 5)


@pytest.mark.parametrize("args, pattern", [
    (["train", "--seed", BIG_SEED], r"--seed must be between 0 and"),
    (["generate", "--seed", BIG_SEED], r"--seed must be between 0 and"),
    (["export", "--seed", BIG_SEED, "--n", "5"], r"--seed must be between 0 and"),
    (["interpolate", "--seed", BIG_SEED], r"--seed must be between 0 and"),
    (["evaluate", "--seed", BIG_SEED, "--n", "100"], r"--seed must be between 0 and"),
    (["export", "--n", "5000000000"], r"--n must be between 1 and 10,000,000"),
    (["interpolate", "--rows", "5000"], r"--rows must be between 1 and 1,000"),
    (["interpolate", "--rows", "500", "--steps", "500"], r"more than one picture holds"),
    (["train", "--epochs", "abc"], r"Invalid value for '--epochs'"),
    (["export", "--format", "bogus"], r"Invalid value for '--format'"),
])
def test_bad_values_of_every_class_get_one_line(args, pattern, tmp_path, run_cli, monkeypatch, generator_file,
                                                small_data):
    monkeypatch.chdir(tmp_path)
    where = {"evaluate": [generator_file], "train": [*SMALL, "--data-dir", small_data]}.get(
        args[0], ["--checkpoint", generator_file])
    assert_refused(run_cli(*args, *where), pattern)
    assert not (tmp_path / "samples").exists() and not (tmp_path / "checkpoints").exists()


def test_labels_outside_the_ten_classes_and_a_data_dir_that_is_a_file(tmp_path, run_cli):
    data = make_mnist(tmp_path / "data")
    labels = np.full(256, 3, dtype=np.uint8)
    labels[100] = 12
    write_idx(data / "MNIST" / "raw" / "train-labels-idx1-ubyte", labels)
    args = ["--checkpoint-dir", tmp_path / "ck", "--sample-dir", tmp_path / "s", *SMALL]
    assert_refused(run_cli("train", "--data-dir", data, *args), r"labels in .* run from 3 to 12")
    (tmp_path / "afile").write_text("x")
    assert_refused(run_cli("train", "--data-dir", tmp_path / "afile", *args), r"--data-dir .*afile is a file")


def test_usage_errors_are_one_line_and_checks_come_before_the_work(tmp_path, run_cli, small_data, monkeypatch):
    assert_refused(run_cli("resume", "x.pth", "--arch", "mlp"), r"No such option: --arch")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    started = time.perf_counter()
    result = run_cli("train-classifier", "--data-dir", small_data, "--out", locked / "sub" / "c.pt")
    locked.chmod(0o700)
    if os.geteuid() != 0:  # root writes anywhere
        assert_refused(result, r"cannot write")
        assert time.perf_counter() - started < 10
    import builtins
    real_import = builtins.__import__

    def no_tensorboard(name, *a, **k):
        if name.startswith("torch.utils.tensorboard"):
            raise ImportError(name)
        return real_import(name, *a, **k)
    monkeypatch.setattr(builtins, "__import__", no_tensorboard)
    result = run_cli("train", *SMALL, "--tensorboard", "--data-dir", tmp_path / "nowhere", "--checkpoint-dir",
                     tmp_path / "ck", "--sample-dir", tmp_path / "s")
    assert_refused(result, r"pip install tensorboard")  # said before the data (which is missing) is looked for


def test_final_generator_missing_after_a_stop_can_be_finished_by_resume(tmp_path, run_cli, small_data):
    last = gan.train(config(tmp_path, small_data, epochs=2), console=quiet())
    (tmp_path / "ck" / "generator_final.pth").unlink()  # as a second Ctrl-C in the middle of its write leaves it
    result = run_cli("resume", last)
    assert result.exit_code == 0, result
    G, _ = gan.load_generator(tmp_path / "ck" / "generator_final.pth")
    assert torch.load(tmp_path / "ck" / "generator_final.pth", weights_only=True)["epoch"] == 2
    assert_refused(run_cli("resume", last), r"already trained 2 epochs")  # once written, the run is done


def test_training_goes_on_to_its_checkpoints_when_stdout_is_closed(tmp_path, small_data):
    train = subprocess.Popen(f"{sys.executable} cli.py train {' '.join(SMALL)} --epochs 2 --data-dir {small_data} "
                             f"--checkpoint-dir {tmp_path / 'ck'} --sample-dir {tmp_path / 's'} | head -c 1",
                             shell=True, cwd=ROOT, env=ENV, stderr=subprocess.PIPE, text=True)
    _, err = train.communicate(timeout=180)
    assert "Traceback" not in err, err
    assert (tmp_path / "ck" / "gan_epoch_2.pth").exists() and (tmp_path / "ck" / "generator_final.pth").exists()


@pytest.mark.parametrize("kwargs, error, pattern", [
    ({"n": "16"}, TypeError, r"^n must be a whole number, got '16'"),
    ({"n": 1.5}, TypeError, r"^n must be a whole number, got 1.5"),
    ({"n": 0}, ValueError, r"^n must be at least 1, got 0"),
    ({"digit": 3.0}, TypeError, r"^digit must be a whole number"),
    ({"digit": True}, TypeError, r"^digit must be a whole number, got True"),
    ({"nrow": -3}, ValueError, r"^nrow must be at least 1, got -3"),
    ({"out": ""}, ValueError, r"^out must be a file name"),
    ({"seed": -1}, ValueError, r"^seed must be between 0 and"),
])
def test_python_callers_are_told_the_argument_in_pythons_words(kwargs, error, pattern, generator_file, tmp_path):
    with pytest.raises(error, match=pattern):
        gan.generate_and_plot_samples(generator_file, **{"out": tmp_path / "x.png", **kwargs})
    with pytest.raises(TypeError, match="generator must be a Generator"):
        gan.generate_and_plot_samples(42, out=tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_two_generates_at_once_never_write_over_each_other(tmp_path, generator_file):
    runs = [cli_process("generate", "--checkpoint", generator_file, "--seed", seed, cwd=tmp_path) for seed in (1, 2)]
    assert [p.wait(120) for p in runs] == [0, 0]
    grids = sorted((tmp_path / "samples").glob("generated_*.png"))
    assert len(grids) == 2 and grids[0].read_bytes() != grids[1].read_bytes(), grids
    assert all(Image.open(g).size == (4 * 30 + 2, 4 * 30 + 2) for g in grids)


# ---- found by a hostile try of the commands ----

def test_drawings_never_replace_a_file_without_force_nor_a_runs_file_with_it(tmp_path, run_cli, generator_file):
    grid = generator_file.parent.parent / "samples" / "epoch_0001.png"
    before = sha(grid)
    for command in (["generate"], ["interpolate"]):
        assert_refused(run_cli(*command, "--checkpoint", generator_file, "--out", grid), r"already exists: .*--force")
        assert_refused(run_cli(*command, "--checkpoint", generator_file, "--out", grid, "--force"),
                       r"is not a drawing that generate or interpolate made")
    assert sha(grid) == before
    mine = tmp_path / "mine.png"
    assert run_cli("generate", "--checkpoint", generator_file, "--out", mine, "--seed", "1").exit_code == 0
    first = sha(mine)
    assert_refused(run_cli("generate", "--checkpoint", generator_file, "--out", mine), r"already exists")
    assert run_cli("generate", "--checkpoint", generator_file, "--out", mine, "--seed", "2", "--force").exit_code == 0
    assert sha(mine) != first  # --force replaces a drawing of your own


def test_train_classifier_never_replaces_a_file_that_is_not_a_classifier(tmp_path, run_cli, generator_file,
                                                                          small_data):
    target = tmp_path / "gan_epoch_1.pth"
    target.write_bytes((generator_file.parent / "gan_epoch_1.pth").read_bytes())
    before = sha(target)
    result = run_cli("train-classifier", "--data-dir", small_data, "--out", target, "--epochs", "1", "--device", "cpu")
    assert_refused(result, r"is not a classifier of this tool, so it is not replaced")
    assert sha(target) == before
    assert "epoch 1/1" not in result.output  # refused before any training


def test_an_epochs_checkpoint_is_written_before_its_grid(tmp_path, small_data, monkeypatch):
    """A kill between the two must never leave a grid of a run that has no checkpoint (a new run would be refused)."""
    seen = []
    save_grid = rundir.save_grid

    def watching(images, path, **kwargs):
        seen.append((tmp_path / "ck" / "gan_epoch_1.pth").exists())
        return save_grid(images, path, **kwargs)
    monkeypatch.setattr(rundir, "save_grid", watching)
    gan.train(config(tmp_path, small_data, epochs=1), console=quiet())
    assert seen == [True]


def test_export_into_a_closed_pipe_finishes_and_exits_0(tmp_path, generator_file):
    out = tmp_path / "ex"
    done = subprocess.run(f"set -o pipefail; {sys.executable} cli.py export --checkpoint {generator_file} --n 300 "
                          f"--out {out} --format npy | head -c 1 > /dev/null", shell=True, cwd=ROOT, env=ENV,
                          capture_output=True, text=True, timeout=120, executable="/bin/bash")
    assert done.returncode == 0 and done.stderr.strip() == "", done.stderr  # the export's own status, no message
    assert np.load(out / "images.npy").shape == (300, 1, 28, 28)


def test_a_command_whose_stdout_reader_is_gone_still_succeeds(tmp_path, generator_file, small_data):
    """`export ... | head -c 1` failed now and then with "cannot use a file (Broken pipe)", exit 1, its export
    written: the reader had gone before the closing "wrote" line. Here it has gone before the command starts.
    evaluate exited 1 with no word (its table), and train-classifier exited 1 without saving what it trained."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    clf = tmp_path / "clf" / "classifier.pt"
    try:
        for command in (["generate", "--n", "4", "--out", tmp_path / "x.png", "--checkpoint", generator_file],
                        ["export", "--n", "20", "--out", tmp_path / "ex", "--format", "npy",
                         "--checkpoint", generator_file],
                        ["evaluate", generator_file, "--n", "64", "--data-dir", small_data,
                         "--device", "cpu", "--check", "0"],  # a tiny model fails the check: a note on stderr
                        ["train-classifier", "--data-dir", small_data, "--out", clf, "--epochs", "1",
                         "--device", "cpu"]):
            done = subprocess.run([sys.executable, "cli.py", *map(str, command)],
                                  cwd=ROOT, env=ENV, stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=120)
            assert done.returncode == 0 and done.stderr == "", (command, done.stderr)
    finally:
        os.close(write_end)
    assert Image.open(tmp_path / "x.png").size[0] > 0
    assert np.load(tmp_path / "ex" / "images.npy").shape == (20, 1, 28, 28)
    assert torch.load(clf, weights_only=True)["epochs"] == 1


def test_train_and_export_into_a_file_write_their_lines_and_no_bar(tmp_path, small_data, generator_file):
    """`train > log` ended with the epochs bar drawn once more, and a blank line, after the run's last line (also in
    a dumb terminal); a terminal keeps its bars."""
    env = {k: v for k, v in ENV.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE")}  # a file, as Rich sees it
    args = [sys.executable, "cli.py", "train", *SMALL, "--epochs", "2", "--data-dir", str(small_data)]
    in_a_terminal = subprocess.run([*args, "--checkpoint-dir", str(tmp_path / "t"), "--sample-dir", str(tmp_path / "ts")],
                                   cwd=ROOT, env={**env, "FORCE_COLOR": "1", "TERM": "xterm"}, capture_output=True,
                                   text=True, timeout=120)
    assert in_a_terminal.returncode == 0 and "epochs ━" in in_a_terminal.stdout, in_a_terminal
    dumb = subprocess.run([*args, "--checkpoint-dir", str(tmp_path / "d"), "--sample-dir", str(tmp_path / "ds")],
                          cwd=ROOT, env={**env, "FORCE_COLOR": "1", "TERM": "dumb"}, capture_output=True, text=True,
                          timeout=120)
    assert dumb.returncode == 0 and "━" not in dumb.stdout and dumb.stdout.endswith("report.md\n"), dumb
    train = subprocess.run([*args, "--checkpoint-dir", str(tmp_path / "ck"), "--sample-dir", str(tmp_path / "s")],
                           cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert train.returncode == 0 and train.stderr == "", train
    lines = train.stdout.splitlines()
    assert [line.split()[:2] for line in lines[1:3]] == [["epoch", "1/2"], ["epoch", "2/2"]], train.stdout
    assert len(lines) == 4 and lines[-1].startswith("done: 2 epochs") and train.stdout.endswith("report.md\n")
    export = subprocess.run([sys.executable, "cli.py", "export", "--n", "20", "--out", str(tmp_path / "ex"), "--format",
                             "npy", "--checkpoint", str(generator_file)], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=120)
    said = export.stdout.splitlines()  # the line of what was written, and (a tiny model's) the --check note: no bar
    assert export.returncode == 0 and said[0].startswith("wrote 20 images") and export.stdout.endswith("\n")
    assert len(said) <= 2 and all(line.startswith("note: ") for line in said[1:]), export.stdout


def test_damaged_data_and_odd_paths_say_what_is_wrong(tmp_path, run_cli, generator_file):
    args = [*SMALL, "--checkpoint-dir", tmp_path / "ck", "--sample-dir", tmp_path / "s"]
    gz = make_mnist(tmp_path / "gz")
    (gz / "MNIST" / "raw" / "train-images-idx3-ubyte").unlink()
    (gz / "MNIST" / "raw" / "train-images-idx3-ubyte.gz").write_bytes(b"notgzip")
    assert_refused(run_cli("train", "--data-dir", gz, *args), r"could not unpack .*gz.*not a complete gzip file")
    cut = make_mnist(tmp_path / "cut")
    path = cut / "MNIST" / "raw" / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:5000])
    assert_refused(run_cli("train", "--data-dir", cut, *args),
                   r"train-images-idx3-ubyte is 5,000 bytes where its header promises 200,720: it is truncated")
    assert_refused(run_cli("train", "--data-dir", "/proc/self", *args), r"cannot use /proc/self/MNIST/raw")
    assert_refused(run_cli("train", "--checkpoint-dir", "", "--data-dir", cut, *SMALL), r"--checkpoint-dir is empty")
    assert_refused(run_cli("generate", "--checkpoint", generator_file.parent), r"is a folder: .*--checkpoint-dir")
    state = torch.load(generator_file.parent / "gan_epoch_1.pth", weights_only=True)
    next(iter(state["G"].values())).fill_(float("nan"))
    torch.save(state, tmp_path / "nan.pth")
    assert_refused(run_cli("resume", tmp_path / "nan.pth", "--epochs", "2"), r"NaN or infinite values: the file is damaged")
