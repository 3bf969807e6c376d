"""Nothing lost, nothing let in: interruption, crash safety, exact resume, hostile files, bad input, divergence.

Everything here runs for real: training is the real command line in a real process (`python cli.py ...`, or for
the many kill points a process forked from a server that has already imported torch, so that each start costs
milliseconds rather than seconds), signals are real signals, and every bad file is written to disk and handed to
the real commands. Only the sizes are small: an MLP GAN on a few hundred synthetic digits.
"""

import dataclasses
import hashlib
import io
import json
import os
import pickle
import random
import re
import resource
import shlex
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from checkpoint import RESUME_COMMAND, path_of, resume_command, shell_path
from conftest import (ROOT, assert_identical_runs, assert_refused, cli, cli_process, config, forkserver, make_mnist,
                      one_clear_line, quiet, write_idx)

import gan
import checkpoint

SMALL = ("--batch-size", "32", "--device", "cpu")  # options train and resume both take
TINY = ("--arch", "dcgan", "--width", "4")  # a DCGAN of 1 MB checkpoints: the architecture does not matter here
TEMP_NAME = re.compile(r"^\..+\.\d+\.mnist-gan-tmp$")  # atomic_write's temporary files: .NAME.PID.mnist-gan-tmp
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "NO_COLOR": "1", "COLUMNS": "200"}


def folders(tmp: Path, data: Path) -> list[str]:
    return ["--data-dir", str(data), "--checkpoint-dir", str(tmp / "ck"), "--sample-dir", str(tmp / "samples")]


def epoch_checkpoints(folder: Path) -> list[tuple[int, Path]]:
    """gan_epoch_N.pth files, oldest first."""
    names = (re.fullmatch(r"gan_epoch_(\d+)\.pth", p.name) for p in folder.glob("gan_epoch_*.pth"))
    return sorted((int(m.group(1)), folder / m.group(0)) for m in names if m)


def check_folder(folder: Path) -> list[str]:
    """Every file under a checkpoint's (or record's) name is complete and loads. Returns the names of temporary
    files that killed writes left behind: hidden names (.NAME.PID.tmp), never a checkpoint's."""
    left = []
    for path in sorted(folder.iterdir()):
        if path.name.endswith(".mnist-gan-tmp"):
            assert TEMP_NAME.match(path.name), f"unexpected temporary file {path.name}"
            left.append(path.name)
        elif path.suffix == ".pth":
            state = checkpoint.read_checkpoint_file(path)  # raises on a truncated or damaged file
            assert state["kind"] in (checkpoint.CHECKPOINT_KIND, checkpoint.GENERATOR_KIND)
        elif path.name == "metrics.json":
            json.loads(path.read_text())
    newest = epoch_checkpoints(folder)
    if newest:
        gan.load_checkpoint(newest[-1][1])  # the newest complete checkpoint loads, networks and all
    return left


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def wait_for(condition, timeout: float, alive=lambda: True, poll: float = 0.002) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        if not alive():
            return condition()
        time.sleep(poll)
    return False


def _forked_cli(argv: list[str], out: str, err: str, max_file_size: int | None, slow_saves: tuple) -> None:
    """The body of a forked process: exactly what `python cli.py ARGV` runs, with stdout/stderr to files."""
    for fd, name in ((1, out), (2, err)):
        f = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(f, fd)
        os.close(f)
    torch.set_num_threads(1)
    if max_file_size is not None:  # a disk that fills up: writes past this size fail with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_file_size, max_file_size))
    if slow_saves:
        slow_down_checkpoint_writes(*slow_saves)
    os.chdir(ROOT)
    sys.argv = ["cli.py", *argv]
    cli.app(args=argv, prog_name="cli.py")


def slow_down_checkpoint_writes(seconds: float, ending: str = ".pth") -> None:
    """Each write of a file whose name ends so pauses with its temporary file open, as a large checkpoint on a slow
    disk does: a signal aimed at the moment that file appears then lands inside the write, every time."""
    original = checkpoint.atomic_write

    def atomic_write(path, write, **options):
        def slowly(f):
            time.sleep(seconds)
            write(f)
        return original(path, slowly if str(path).endswith(ending) else write, **options)

    checkpoint.atomic_write = atomic_write


class Forked:
    """One run of the command line in a process of its own; signals and exit codes are the real ones."""

    count, started = 0, []

    def __init__(self, ctx, argv: list[str], logs: Path, max_file_size: int | None = None, slow_saves: tuple = ()):
        Forked.count += 1
        logs.mkdir(parents=True, exist_ok=True)
        self.out, self.err = logs / f"{Forked.count}.out", logs / f"{Forked.count}.err"
        self.process = ctx.Process(target=_forked_cli, args=([str(a) for a in argv], str(self.out), str(self.err),
                                                             max_file_size, slow_saves))
        self.process.start()
        Forked.started.append(self.process)

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.is_alive()

    def signal(self, sig: int) -> None:
        os.kill(self.process.pid, sig)

    def wait(self, timeout: float = 120) -> int:
        self.process.join(timeout)
        assert self.process.exitcode is not None, f"still running after {timeout}s:\n{self.log()}"
        return self.process.exitcode

    def stderr(self) -> str:
        return self.err.read_text() if self.err.exists() else ""

    def log(self) -> str:
        return "".join(p.read_text() for p in (self.out, self.err) if p.exists())[-3000:]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread per process, as in the forked and spawned runs: the cores are shared with other jobs, and
    threads of one process waiting for each other on a busy core slow training down many times over."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def fork():
    """The forkserver of conftest: each Process it starts is a fresh fork of one that has imported torch."""
    yield forkserver()
    for process in Forked.started:  # a failed test leaves no training running behind it
        if process.is_alive():
            process.kill()
            process.join()


@pytest.fixture(scope="module")
def trained(tmp_path_factory, small_data) -> Path:
    """A real one-epoch checkpoint (and generator_final.pth beside it) to copy, damage and resume from."""
    tmp = tmp_path_factory.mktemp("trained")
    return gan.train(config(tmp, small_data, epochs=1), console=quiet())


# ---- interrupt safely ----

def test_ctrl_c_saves_the_last_step_says_how_to_resume_and_exits_130(tmp_path, small_data, run_cli):
    """In a folder whose name a shell would split or run (a space, a quote, a backtick): the printed command, pasted
    into a shell, names the saved file."""
    tmp_path = tmp_path / "my runs, Bob's `date`"
    ck = tmp_path / "ck"
    proc = cli_process("train", *TINY, "--epochs", "100", *SMALL, *folders(tmp_path, small_data))
    try:
        assert wait_for(lambda: (ck / "gan_epoch_1.pth").exists(), 120, lambda: proc.poll() is None), proc.communicate()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, out + err
    assert "Traceback" not in out
    line = one_clear_line(err, r"stopped by SIGINT", r"python cli\.py resume ")
    command = shlex.split(line.partition("Continue with: ")[2])
    assert command[:3] == ["python", "cli.py", "resume"] and len(command) == 4, line
    saved = Path(command[3])
    assert saved.parent == ck, line
    assert re.fullmatch(r"gan_epoch_\d+_interrupted\.pth", saved.name), saved
    state, _ = gan.load_checkpoint(saved)
    assert 0 < state["pos"] <= 128 and state["epoch"] >= 1  # stopped inside an epoch, after a completed step
    assert check_folder(ck) == []

    # the printed command continues from it
    done = state["epoch"] + 1
    result = run_cli("resume", saved, "--epochs", done, *SMALL, *folders(tmp_path, small_data))
    assert result.exit_code == 0, result
    assert gan.load_checkpoint(ck / f"gan_epoch_{done}.pth")[0]["epoch"] == done
    assert not (ck / saved.name).exists()  # the partial checkpoint is superseded by the complete epoch


def test_a_printed_path_is_one_word_a_shell_reads_back_and_never_an_option(tmp_path):
    """Also a path with a line break, a carriage return or a terminal escape (it was printed inside '...' with the
    line break written as \\n, which a shell read back as a backslash and an n, and the escape sent to the terminal):
    one printable line, in bash's $'...' quoting, that bash reads back as the path, and so does search.py."""
    for path in ("-d/ck/gan_epoch_2.pth", "--epochs=3/a.pth", "a b/`touch run1`/$(touch run2);touch run3'q'\"x.pth",
                 "plain/gan_epoch_1.pth", "ü 数据/x.pth", "two\nlines/x.pth", "-\x1b[31mred\r'q'\\n\t\u2028.pth"):
        word = shell_path(path)
        shell = subprocess.run(["bash", "-c", f"printf %s {word}"], cwd=tmp_path, capture_output=True, check=True)
        back = os.fsdecode(shell.stdout)
        assert Path(back) == Path(path) and not back.startswith("-"), (path, back)
        assert word.isprintable() and path_of(word) == back
        command = RESUME_COMMAND.search(f"saved it. Continue with: {resume_command(path)}")
        assert command[0] == resume_command(path) and path_of(command[1]) == back
    assert shell_path("two\nlines") == "$'two\\x0alines'"
    for raw in (b"by\xffte\n", "ü\n数据".encode()):  # a name that is not UTF-8, and one read back in any locale
        path = os.fsdecode(raw)
        shell = subprocess.run(["bash", "-c", f"printf %s {shell_path(path)}"], cwd=tmp_path, capture_output=True,
                               check=True, env={**os.environ, "LC_ALL": "C"})
        assert shell.stdout == raw and shell_path(path).isascii() and path_of(shell_path(path)) == path
    assert list(tmp_path.iterdir()) == []  # nothing in the names ran


def test_sigterm_saves_and_exits_130(fork, tmp_path, small_data):
    ck = tmp_path / "ck"
    run = Forked(fork, ["train", *TINY, "--epochs", "100", *SMALL, *folders(tmp_path, small_data)],
                 tmp_path / "logs")
    assert wait_for(lambda: (ck / "gan_epoch_1.pth").exists(), 120, run.alive), run.log()
    run.signal(signal.SIGTERM)
    assert run.wait() == 130, run.log()
    line = one_clear_line(run.stderr(), r"stopped by SIGTERM", r"python cli\.py resume .*_interrupted\.pth")
    assert gan.load_checkpoint(line.rsplit(" ", 1)[-1])[0]["pos"] > 0
    assert check_folder(ck) == []


def test_a_folder_named_with_a_line_break_an_escape_and_brackets_is_shown_as_it_is_and_its_command_resumes(
        fork, tmp_path, small_data):
    """Found by a hostile pass: such a folder's name sent the escape to the terminal, ran the stop message over two
    lines, and Rich read [/b] as markup (a traceback in the first epoch's line); the command to continue named
    another path. Now every line is one printable line, and the printed command, pasted into bash, resumes."""
    ck = tmp_path / "ck [x] [/b]:smile:\n\x1b[31m"
    run = Forked(fork, ["train", *TINY, "--epochs", "100", *SMALL, "--data-dir", small_data, "--checkpoint-dir", ck,
                        "--sample-dir", tmp_path / "samples"], tmp_path / "logs")
    assert wait_for(lambda: (ck / "gan_epoch_1.pth").exists(), 120, run.alive), run.log()
    run.signal(signal.SIGTERM)
    assert run.wait() == 130, run.log()
    line = one_clear_line(run.stderr(), r"stopped by SIGTERM")
    assert line.isprintable() and "ck [x] [/b]:smile:\\n\\x1b[31m/gan_epoch_1_interrupted.pth" in line, line  # as Python writes it
    epoch = [x for x in run.out.read_text().splitlines() if x.startswith("epoch 1/")]
    assert len(epoch) == 1 and epoch[0].isprintable() and "ck [x] [/b]:smile:\\n\\x1b[31m/gan_epoch_1.pth" in epoch[0], run.log()
    command = line.partition("Continue with: ")[2]
    assert command.startswith("python cli.py resume $'") and command.endswith("_interrupted.pth'"), command
    done = subprocess.run(["bash", "-c", f"{sys.executable} {command.removeprefix('python ')} --epochs 2 {' '.join(SMALL)}"
                                         f" --data-dir {shlex.quote(str(small_data))}"], cwd=Path(cli.__file__).parent,
                          capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr
    assert gan.load_checkpoint(ck / "gan_epoch_2.pth")[0]["epoch"] == 2 and not list(ck.glob("*_interrupted.pth"))


def test_second_ctrl_c_exits_at_once_and_corrupts_nothing(fork, tmp_path, small_data):
    ck = tmp_path / "ck"
    run = Forked(fork, ["train", *TINY, "--epochs", "100", *SMALL, *folders(tmp_path, small_data)],
                 tmp_path / "logs", slow_saves=(3.0, "_interrupted.pth"))
    assert wait_for(lambda: (ck / "gan_epoch_1.pth").exists(), 120, run.alive), run.log()
    before = sha(ck / "gan_epoch_1.pth")
    run.signal(signal.SIGINT)
    # aim the second Ctrl-C at the save the first one started (which pauses 3 s with its temporary file open)
    assert wait_for(lambda: any(ck.glob(".gan_epoch_*_interrupted.pth.*.mnist-gan-tmp")), 30, run.alive, poll=0.0005), run.log()
    run.signal(signal.SIGINT)
    second = time.monotonic()
    assert run.wait(60) == 130, run.log()
    assert time.monotonic() - second < 2.5  # at once: it did not wait for the paused save to finish
    # caught inside the save, the second Ctrl-C abandons it
    one_clear_line(run.stderr(), r"^Error: interrupted$")
    assert not list(ck.glob("gan_epoch_*_interrupted.pth"))
    assert sha(ck / "gan_epoch_1.pth") == before
    assert check_folder(ck) == []  # the abandoned save removed its temporary file


# ---- crash safety ----

KILLS = 16  # half at random moments, half aimed inside a checkpoint write


def test_sigkill_at_random_moments_never_leaves_a_half_written_checkpoint(fork, tmp_path, small_data):
    ck, logs = tmp_path / "ck", tmp_path / "logs"
    common = [*SMALL, *folders(tmp_path, small_data), "--save-every", "1", "--keep-last", "2", "--epochs", "1000"]
    rng = random.Random(20240607)
    killed_in_save = 0
    for i in range(KILLS):
        newest = epoch_checkpoints(ck)
        argv = ["resume", newest[-1][1], *common] if newest else ["train", *TINY, *common]
        run = Forked(fork, argv, logs, slow_saves=(0.1,))
        if i == 0:  # let the first run write something to come back to, then kill it at once
            assert wait_for(lambda: (ck / "gan_epoch_1.pth").exists(), 120, run.alive), run.log()
        elif i % 2:  # inside a save: a temporary checkpoint file is being written
            assert wait_for(lambda: any(ck.glob(f".gan_epoch_*.pth.{run.pid}.mnist-gan-tmp")), 60, run.alive, poll=0.0005), run.log()
            time.sleep(rng.uniform(0, 0.02))
        else:
            time.sleep(rng.uniform(0.05, 1.0))  # a few epochs in: steps, grids, records and saves alike
        assert run.alive(), f"run {i} ended before it was killed:\n{run.log()}"
        run.signal(signal.SIGKILL)
        assert run.wait() == -signal.SIGKILL
        in_save = any(name.split(".")[-2] == str(run.pid) for name in check_folder(ck))
        if i % 2:  # aimed: the kill must have cut a checkpoint write short, or this tested nothing
            assert in_save, f"kill {i} was aimed inside a checkpoint write but landed outside one"
        killed_in_save += in_save
    print(f"{KILLS} kills, {killed_in_save} inside a checkpoint write, newest epoch {epoch_checkpoints(ck)[-1][0]}")

    # the newest checkpoint that survived all that resumes in a fresh `python cli.py` and trains on to the end,
    # clearing away the temporary files the killed runs left
    epoch, newest = epoch_checkpoints(ck)[-1]
    proc = subprocess.run([sys.executable, "cli.py", "resume", str(newest), *common[:-1], str(epoch + 1)],
                          cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert gan.load_checkpoint(ck / f"gan_epoch_{epoch + 1}.pth")[0]["epoch"] == epoch + 1
    assert check_folder(ck) == []
    gan.load_generator(ck / "generator_final.pth")


# ---- exact resume ----

class SignalOnText(io.StringIO):
    """A console file that sends this process a real SIGINT the first time `text` is printed."""

    def __init__(self, text: str):
        super().__init__()
        self.text, self.sent = text, False

    def write(self, s):
        if not self.sent and self.text in s:
            self.sent = True
            os.kill(os.getpid(), signal.SIGINT)
        return super().write(s)


def test_resume_gives_bit_identical_weights(tmp_path, small_data):
    from rich.console import Console

    N = 3
    straight = gan.train(config(tmp_path / "straight", small_data, epochs=N), console=quiet())

    # K = 1 epochs, stop, resume to N
    first = gan.train(config(tmp_path / "split", small_data, epochs=1), console=quiet())
    resumed = gan.train(config(tmp_path / "split", small_data, epochs=N), resume=first, console=quiet())
    assert_identical_runs(straight, resumed)

    # Ctrl-C in the middle of epoch 2 (a real SIGINT, sent once epoch 1 is reported), then resume to N
    console = Console(file=SignalOnText("epoch 1/"), width=200)
    with pytest.raises(gan.TrainingInterrupted) as stopped:
        gan.train(config(tmp_path / "ctrl-c", small_data, epochs=N), console=console)
    partial = tmp_path / "ctrl-c" / "ck" / "gan_epoch_1_interrupted.pth"
    assert str(partial) in str(stopped.value)
    state, _ = gan.load_checkpoint(partial)
    assert state["epoch"] == 1 and 0 < state["pos"] < 128, state["pos"]  # mid-epoch: perm, pos and sums saved
    resumed = gan.train(config(tmp_path / "ctrl-c", small_data, epochs=N), resume=partial, console=quiet())
    assert_identical_runs(straight, resumed)


# ---- hostile and broken files ----

class Payload:
    """Unpickling this calls `function(argument)`: what a malicious checkpoint does to plain torch.load."""

    def __init__(self, function, argument):
        self.function, self.argument = function, argument

    def __reduce__(self):
        return self.function, (self.argument,)


def payloads(marker: Path) -> dict:
    shell = Payload(os.system, f"touch {marker}")
    python = Payload(exec, f"open({str(marker)!r}, 'w').write('pwned')")
    return {
        "torch.save, os.system": lambda p: torch.save({"format": 1, "kind": checkpoint.CHECKPOINT_KIND, "G": shell}, p),
        "torch.save legacy format, exec": lambda p: torch.save(python, p, _use_new_zipfile_serialization=False),
        "raw pickle protocol 2, exec": lambda p: p.write_bytes(pickle.dumps(python, protocol=2)),
        "raw pickle protocol 5, os.system": lambda p: p.write_bytes(pickle.dumps(shell, protocol=5)),
    }


@pytest.mark.parametrize("kind", list(payloads(Path("x"))))
def test_malicious_pickle_is_refused_and_never_runs(kind, tmp_path, run_cli):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pth"
    payloads(marker)[kind](evil)

    # the payload is live: the unsafe load that this tool never does would run it
    try:
        torch.load(evil, weights_only=False)
    except Exception:  # a raw pickle runs its payload, then fails torch's format check
        pass
    assert marker.exists()
    marker.unlink()

    for args in (["resume", evil, *SMALL, "--checkpoint-dir", tmp_path / "ck"],
                 ["generate", "--checkpoint", evil, "--out", tmp_path / "x.png", "--device", "cpu"]):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = run_cli(*args)
        assert_refused(result, re.escape(str(evil)), r"refused|not a PyTorch checkpoint")
        assert not marker.exists(), f"{args[0]} ran the payload"
        # a real process would print these on stderr too, under the one line
        assert not [w for w in caught if issubclass(w.category, UserWarning)], [str(w.message) for w in caught]
    if kind.startswith("torch.save"):  # a real torch checkpoint asking to call code is named for what it is
        assert "refused" in run_cli("generate", "--checkpoint", evil).stderr
    assert not marker.exists()


def npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def broken_files(good: Path) -> dict:
    """name -> (how to write the file, regex its one-line error must match)."""
    data = good.read_bytes()
    state = torch.load(good, weights_only=True)

    def edited(**changes):
        def write(path):
            new = dict(state)
            for key, value in changes.items():
                if key == "config" and value is not None:
                    new["config"] = {**state["config"], **value}
                else:
                    new[key] = value
            torch.save(new, path)
        return write

    return {
        "truncated to half": (lambda p: p.write_bytes(data[:len(data) // 2]), r"damaged"),
        "last bytes missing": (lambda p: p.write_bytes(data[:-100]), r"damaged"),
        "first kilobyte only": (lambda p: p.write_bytes(data[:1024]), r"damaged"),
        "random bytes": (lambda p: p.write_bytes(random.Random(0).randbytes(100_000)), r"damaged|not a PyTorch"),
        "empty": (lambda p: p.write_bytes(b""), r"empty"),
        "text": (lambda p: p.write_text("model weights: see README\n"), r"damaged|not a PyTorch"),
        "numpy array": (lambda p: p.write_bytes(npy_bytes(np.zeros(10))), r"damaged|not a PyTorch"),
        "another architecture": (edited(config={"arch": "mlp", "width": 16}), r"do not fit"),
        "another latent size": (edited(config={"latent_dim": 64}), r"do not fit"),
        "future format version": (edited(format=99), r"format 99.*newer"),
        "unknown arch in config": (edited(config={"arch": "transformer"}), r"invalid config"),
        "config of the wrong types": (edited(config={"latent_dim": "lots"}), r"invalid config"),
        "no config": (edited(config=None), r"no config"),
        "plain state_dict of another project": (lambda p: torch.save(torch.nn.Linear(3, 4).state_dict(), p),
                                                r"not a checkpoint of this tool"),
        "plain state_dict of this generator": (lambda p: torch.save(state["G"], p), r"not a checkpoint of this tool"),
        "a list": (lambda p: torch.save([1, 2, 3], p), r"not a checkpoint of this tool"),
        "a folder": (lambda p: p.mkdir(), r"is a folder: pass a checkpoint file in it, or --checkpoint-dir"),
        "missing": (lambda p: None, r"no checkpoint at"),
    }


def test_broken_and_foreign_files_each_get_one_clear_line(tmp_path, run_cli, trained):
    cases = broken_files(trained)
    for name, (write, pattern) in cases.items():
        path = tmp_path / f"{name.replace(' ', '_')}.pth"
        write(path)
        for args in (["resume", path, *SMALL, "--checkpoint-dir", tmp_path / "ck"],
                     ["generate", "--checkpoint", path, "--out", tmp_path / "x.png", "--device", "cpu"]):
            result = run_cli(*args)
            try:
                assert_refused(result, re.escape(path.name), pattern)
            except AssertionError as e:
                raise AssertionError(f"{name}, {args[0]}: {e}") from None
    assert not (tmp_path / "x.png").exists() and not (tmp_path / "ck").exists()


def test_resume_refuses_files_and_flags_that_do_not_fit(tmp_path, run_cli, trained, small_data):
    generator = trained.parent / "generator_final.pth"
    assert_refused(run_cli("resume", generator, *SMALL), r"only a generator")
    drawn = run_cli("generate", "--checkpoint", generator, "--out", tmp_path / "ok.png", "--device", "cpu")
    assert drawn.exit_code == 0, drawn  # while generate takes it
    for flag in (["--arch", "mlp"], ["--latent-dim", "64"]):
        result = run_cli("train", "--resume", trained, *flag, *SMALL, *folders(tmp_path, small_data))
        assert_refused(result, re.escape(flag[0]), r"would change the networks")
    # what a run keeps for life: a new beta1 would be overwritten by the saved optimizer, --ema 0 would drop G's average
    for flag in (["--ema", "0"], ["--beta1", "0.9"], ["--seed", "12345"], ["--label-smoothing", "0.9"]):
        result = run_cli("train", "--resume", trained, *flag, "--epochs", "2", *SMALL, *folders(tmp_path, small_data))
        assert_refused(result, re.escape(flag[0]), r"stay as .* saved them")
    assert not (tmp_path / "ck").exists()
    result = run_cli("train", "--resume", trained, "--width", "8", "--ema", "0", *SMALL, *folders(tmp_path, small_data))
    assert_refused(result, r"--width would change the networks .* and --ema stay as")  # both kinds, in one line
    assert_refused(run_cli("resume", trained, "--epochs", "1", *SMALL, *folders(tmp_path, small_data)),
                   r"already trained 1 epochs")


def test_a_resume_keeps_the_saved_values_of_what_it_cannot_change(trained):
    """Found by a hostile pass: None (not given), 1.0 for a run saved without label smoothing, or a numpy float equal to
    the saved value were refused or stored as another number (0.9900000095), which a later resume then refused."""
    saved = gan.load_checkpoint(trained)[1]
    assert saved.label_smoothing is None and saved.ema == 0.99
    same = {"ema": np.float32(0.99), "label_smoothing": 1.0, "seed": np.int64(saved.seed), "beta1": None, "arch": None}
    resumed = gan.resumed(saved, {**same, "epochs": 2}, trained)
    assert (resumed.ema, resumed.label_smoothing, resumed.seed, resumed.epochs) == (0.99, None, saved.seed, 2)
    assert type(resumed.ema) is float and type(resumed.seed) is int


def test_train_with_resume_from_python_refuses_another_run_s_config(tmp_path, trained, small_data):
    """gan.train(cfg, resume=path) skipped the check: a config of other networks raised a state_dict traceback, and
    ema=0 dropped G's moving average."""
    before = {p: p.read_bytes() for p in trained.parent.rglob("*") if p.is_file()}
    for change, pattern in (({"width": 8}, r"width would change the networks"), ({"ema": 0.0}, r"ema stay as"),
                            ({"beta1": 0.5, "seed": 5}, r"beta1, seed stay as")):
        cfg = dataclasses.replace(config(tmp_path, small_data, epochs=2), **change)
        with pytest.raises(gan.BadValue, match=pattern + r".*gan\.resume\(path, overrides\)"):
            gan.train(cfg, resume=trained, console=quiet())
    assert {p: p.read_bytes() for p in trained.parent.rglob("*") if p.is_file()} == before
    assert not (tmp_path / "ck").exists()


# ---- bad arguments and environments ----

TRAIN_ERRORS = {
    "zero epochs": (["--epochs", "0"], r"--epochs must be a positive"),
    "negative epochs": (["--epochs", "-3"], r"--epochs must be a positive"),
    "zero batch": (["--batch-size", "0"], r"--batch-size must be a positive"),
    "negative batch": (["--batch-size", "-32"], r"--batch-size must be a positive"),
    "batch larger than the data": (["--batch-size", "100000"], r"--batch-size 100000 is larger than the 256"),
    "zero latent size": (["--latent-dim", "0"], r"--latent-dim must be a positive"),
    "latent size too large for memory": (["--latent-dim", "1000000000"], r"--latent-dim .*too large"),
    "width too large for memory": (["--arch", "dcgan", "--width", "100000"], r"--width .*too large"),
    "zero width": (["--width", "0"], r"--width must be a positive"),
    "zero rate": (["--lr", "0"], r"--lr must be"),
    "negative rate": (["--lr", "-0.1"], r"--lr must be"),
    "NaN rate": (["--lr", "nan"], r"--lr must be"),
    "infinite rate": (["--lr", "inf"], r"--lr must be"),
    "rate beyond float32": (["--lr", "1e39"], r"--lr must be"),
    "negative G rate": (["--lr-g", "-1"], r"--lr-g must be"),
    "beta1 of 1": (["--beta1", "1"], r"--beta1 must be in"),
    "dropout of 1": (["--d-dropout", "1"], r"--d-dropout must be in"),
    "label smoothing of 0": (["--label-smoothing", "0"], r"--label-smoothing"),
    "zero save interval": (["--save-every", "0"], r"--save-every must be a positive"),
    "negative keep-last": (["--keep-last", "-1"], r"--keep-last"),
    "unknown arch": (["--arch", "resnet"], r"Invalid value for '--arch': .*'resnet' is not one of 'mlp'"),
    "unknown device": (["--device", "tpu"], r"unknown --device 'tpu'"),
    "unsupported device": (["--device", "meta"], r"unsupported --device 'meta'"),
    "missing CUDA": (["--device", "cuda"], r"--device cuda .*no CUDA"),
    "missing CUDA index": (["--device", "cuda:3"], r"--device cuda:3"),
    "missing MPS": (["--device", "mps"], r"--device mps .*MPS is not available"),
}


@pytest.mark.parametrize("case", list(TRAIN_ERRORS))
def test_bad_training_options_get_one_clear_line(case, tmp_path, run_cli, mnist_dir):
    cuda = torch.cuda.device_count()
    if case == "missing CUDA" and cuda or case == "missing CUDA index" and cuda > 3:
        pytest.skip("this machine has that CUDA device")
    if case == "missing MPS" and torch.backends.mps.is_available():
        pytest.skip("this machine has MPS")
    args, pattern = TRAIN_ERRORS[case]
    args = ["train", *TINY, *SMALL, *folders(tmp_path, mnist_dir), *args]
    assert_refused(run_cli(*args), pattern)
    assert not list(tmp_path.glob("ck/*.pth"))


def test_bad_generate_options_get_one_clear_line(tmp_path, run_cli, trained):
    generate = ["generate", "--checkpoint", trained, "--device", "cpu"]
    cases = [(["--n", "0"], r"--n must be at least 1"),
             (["--n", "-5"], r"--n must be at least 1"),
             (["--n", "1000000000000", "--out", tmp_path / "x.npy"], r"--n 1000000000000 needs about .*GiB"),
             (["--n", "20000", "--out", tmp_path / "x.png"], r"--n 20000 is too many"),
             (["--nrow", "0", "--out", tmp_path / "x.png"], r"--nrow must be at least 1"),
             (["--out", tmp_path / "x.jpg"], r"use a \.png .* or \.npy"),
             (["--out", trained / "sub" / "x.png"], r"cannot write to .*gan_epoch_1.pth/sub"),
             (["--device", "tpu", "--out", tmp_path / "x.png"], r"unknown --device")]
    for args, pattern in cases:
        assert_refused(run_cli(*generate, *args), pattern)
    assert not list(tmp_path.iterdir())
    assert_refused(run_cli("generate", "--checkpoint-dir", tmp_path / "nothing"), r"no checkpoint in")


def damaged_data(root: Path, how: str) -> Path:
    data = make_mnist(root, n_train=64, n_test=16)
    raw = data / "MNIST" / "raw"
    images = raw / "train-images-idx3-ubyte"
    if how == "random bytes":
        images.write_bytes(random.Random(1).randbytes(5000))
    elif how == "zeros":
        images.write_bytes(bytes(5000))
    elif how == "truncated":
        images.write_bytes(images.read_bytes()[:3000])
    elif how == "header only":
        images.write_bytes(images.read_bytes()[:6])
    elif how == "empty":
        images.write_bytes(b"")
    elif how == "wrong type code":
        images.write_bytes(b"\x00\x00\x0a\x03" + images.read_bytes()[4:])
    elif how == "flat images":
        write_idx(images, np.zeros((64, 784), np.uint8))
    elif how == "fewer labels":
        write_idx(raw / "train-labels-idx1-ubyte", np.zeros(10, np.uint8))
    return data


# (missing files, which torchvision then tries to download, are test_core's)
DATA_DAMAGE = ("random bytes", "zeros", "truncated", "header only", "empty", "wrong type code", "flat images",
               "fewer labels")


def test_corrupt_idx_files_get_one_clear_line(tmp_path, run_cli):
    for how in DATA_DAMAGE:
        data = damaged_data(tmp_path / how.replace(" ", "_"), how)
        result = run_cli("train", *TINY, *SMALL, *folders(tmp_path / "out", data))
        try:
            assert_refused(result, r"MNIST", r"damaged|could not")
        except AssertionError as e:
            raise AssertionError(f"{how}: {e}") from None


def test_unwritable_output_folders_get_one_clear_line(tmp_path, run_cli, mnist_dir):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    common = ["train", *TINY, *SMALL, "--data-dir", mnist_dir]
    assert_refused(run_cli(*common, "--checkpoint-dir", blocker / "ck", "--sample-dir", tmp_path / "s"),
                   r"cannot write to .*a-file/ck.*--checkpoint-dir")
    assert_refused(run_cli(*common, "--checkpoint-dir", tmp_path / "ck", "--sample-dir", blocker / "s"),
                   r"cannot write to .*a-file/s.*--sample-dir")
    assert not list(tmp_path.glob("ck/*.pth"))


def test_disk_full_during_a_save_keeps_the_previous_checkpoint(fork, tmp_path, small_data, trained):
    ck = tmp_path / "ck"
    ck.mkdir()
    previous = ck / "gan_epoch_1.pth"
    previous.write_bytes(trained.read_bytes())
    before = sha(previous)
    # files may grow to 1 MB: records and sample grids fit, the next 35 MB checkpoint does not
    run = Forked(fork, ["resume", previous, "--epochs", "3", *SMALL, *folders(tmp_path, small_data)],
                 tmp_path / "logs", max_file_size=1 << 20)
    assert run.wait() == 1, run.log()
    one_clear_line(run.stderr(), r"could not write .*gan_epoch_2\.pth", r"File too large|No space", r"unchanged")
    assert sha(previous) == before
    assert [p.name for _, p in epoch_checkpoints(ck)] == ["gan_epoch_1.pth"]
    assert check_folder(ck) == []  # the failed write left no temporary file either


# ---- divergence ----

def all_finite(path: Path) -> bool:
    state = torch.load(path, weights_only=True)
    return all(torch.isfinite(t).all() for key in ("G", "D", "G_ema") for t in state.get(key, {}).values()
               if t.is_floating_point())


def good_checkpoint_in(ck: Path, trained: Path) -> tuple[Path, str]:
    """A copy of a healthy checkpoint as epoch 1 of the run in `ck`, and its hash, to prove it survives."""
    ck.mkdir()
    good = ck / "gan_epoch_1.pth"
    good.write_bytes(trained.read_bytes())
    return good, sha(good)


@pytest.fixture
def nan_in_adam(monkeypatch):
    """A NaN that arises in G's optimizer state as training resumes (one saved in a file is refused at load)."""
    restore = checkpoint.TrainingState.restore

    def restore_then_poison(self, *args, **kwargs):
        restore(self, *args, **kwargs)
        moment = next(iter(self.opt_g.state.values()))["exp_avg_sq"]
        moment[(0,) * moment.dim()] = float("nan")
    monkeypatch.setattr(checkpoint.TrainingState, "restore", restore_then_poison)


def test_nan_loss_stops_training_and_keeps_the_last_good_checkpoint(tmp_path, run_cli, trained, small_data,
                                                                     nan_in_adam):
    ck = tmp_path / "ck"
    good, before = good_checkpoint_in(ck, trained)
    nan = tmp_path / "nan.pth"
    nan.write_bytes(trained.read_bytes())

    result = run_cli("resume", nan, "--epochs", "3", *SMALL, *folders(tmp_path, small_data))
    assert_refused(result, r"diverged", r"NaN or infinite", rf"last good checkpoint, {re.escape(str(good))}, is kept",
                   work_began=True)
    assert sha(good) == before
    assert [p.name for p in ck.glob("*.pth")] == ["gan_epoch_1.pth"]  # no NaN checkpoint, partial or whole

    fresh = tmp_path / "fresh"
    result = run_cli("resume", nan, "--epochs", "3", *SMALL, *folders(fresh, small_data))
    assert_refused(result, r"diverged", r"no checkpoint had been written", work_began=True)
    assert not list((fresh / "ck").glob("*.pth"))


def test_nan_weights_are_never_saved_even_when_the_losses_look_finite(tmp_path, run_cli, trained, nan_in_adam):
    """A NaN in G's optimizer state turns G's weights to NaN in the very last step of an epoch, after that step's
    losses were computed: the losses are finite, the weights are not, and they must not become a checkpoint."""
    data = make_mnist(tmp_path / "data", n_train=32, n_test=16)  # one step per epoch
    ck = tmp_path / "ck"
    good, before = good_checkpoint_in(ck, trained)
    bad = tmp_path / "bad-optimizer.pth"
    bad.write_bytes(trained.read_bytes())
    result = run_cli("resume", bad, "--epochs", "3", *SMALL, *folders(tmp_path, data))
    assert_refused(result, r"diverged", r"weights of G(, G_ema)? became NaN", r"gan_epoch_2\.pth was not written",
                   r"kept", work_began=True)
    assert sha(good) == before
    assert all(all_finite(p) for p in ck.glob("*.pth"))
    assert [p.name for p in ck.glob("*.pth")] == ["gan_epoch_1.pth"]


# ---- runs that share a folder, and old files ----

def snapshot(*folders: Path) -> dict[str, str]:
    return {str(p): sha(p) for folder in folders for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def interrupted_original(tmp_path_factory, small_data) -> Path:
    """A run of 2 epochs in ck/ and samples/, then resumed and stopped early in epoch 3: its folder holds
    gan_epoch_2_interrupted.pth, that run's only way to finish epoch 3."""
    tmp = tmp_path_factory.mktemp("interrupted")
    gan.train(config(tmp, small_data, epochs=2), console=quiet())
    gan.train(config(tmp, small_data, epochs=5), resume=tmp / "ck" / "gan_epoch_2.pth", minutes=1e-6, console=quiet())
    assert (tmp / "ck" / "gan_epoch_2_interrupted.pth").exists()
    return tmp


@pytest.fixture
def interrupted_run(interrupted_original, tmp_path) -> Path:
    """A copy of that run's folders for one test (the paths in its checkpoints' configs still name the original)."""
    import shutil
    for name in ("ck", "samples"):
        shutil.copytree(interrupted_original / name, tmp_path / name)
    return tmp_path


def test_a_new_run_never_touches_another_runs_files(interrupted_run, small_data, run_cli):
    tmp = interrupted_run
    before = snapshot(tmp / "ck", tmp / "samples")
    # a fresh run into the same folders is refused before it writes anything, saying how to go on
    line = assert_refused(run_cli("train", *TINY, "--epochs", "3", *SMALL, *folders(tmp, small_data)),
                          r"already holds another run", r"python cli\.py resume .*gan_epoch_2_interrupted\.pth",
                          r"--checkpoint-dir")
    # so is one with a folder of its own for checkpoints but the other run's sample grids
    assert_refused(run_cli("train", *TINY, "--epochs", "3", *SMALL, "--data-dir", small_data,
                           "--checkpoint-dir", tmp / "ck2", "--sample-dir", tmp / "samples"),
                   r"samples already holds another run's sample grids", r"--sample-dir")
    # and a resume of another run's checkpoint into this folder
    other = tmp / "other"
    assert run_cli("train", *TINY, "--epochs", "1", *SMALL, *folders(other, small_data)).exit_code == 0
    assert_refused(run_cli("resume", other / "ck" / "gan_epoch_1.pth", "--epochs", "2", "--checkpoint-dir", tmp / "ck",
                           "--sample-dir", tmp / "samples2"), r"already holds another run")
    assert snapshot(tmp / "ck", tmp / "samples") == before, line  # every file of the first run as it was
    # the run itself goes on in its folder, from the interrupted checkpoint
    result = run_cli("resume", tmp / "ck" / "gan_epoch_2_interrupted.pth", "--epochs", "3", *folders(tmp, small_data))
    assert result.exit_code == 0, result
    assert gan.load_checkpoint(tmp / "ck" / "gan_epoch_3.pth")[0]["epoch"] == 3


def test_resume_that_would_drop_an_interrupted_epoch_says_so(interrupted_run, run_cli):
    tmp = interrupted_run
    before = snapshot(tmp / "ck", tmp / "samples")
    partial = tmp / "ck" / "gan_epoch_2_interrupted.pth"
    assert_refused(run_cli("resume", partial, "--epochs", "2"), r"middle of epoch 3", r"--epochs 3 or more")
    assert snapshot(tmp / "ck", tmp / "samples") == before  # no report, record or checkpoint rewritten


def as_format_1(state: dict) -> dict:
    """A checkpoint as this tool wrote it before format 2: one --lr with optional overrides, no run name, and
    (before the conditional option existed) no conditional, ema or dataset fields at all."""
    old = {k: v for k, v in state.items() if k not in ("run", "G_ema")}
    config = {k: v for k, v in state["config"].items()
              if k not in ("conditional", "ema", "dataset", "eval_every", "eval_n", "r1")}
    config.update(lr=config.pop("lr_g"), lr_g=None, lr_d=None)
    return {**old, "format": 1, "config": config}


def test_checkpoints_from_before_the_conditional_option_still_load(tmp_path, small_data, run_cli):
    assert run_cli("train", "--arch", "mlp", "--no-conditional", "--ema", "0", "--lr", "2e-4", "--epochs", "1", *SMALL,
                   *folders(tmp_path, small_data)).exit_code == 0  # (2e-4: the only default rate then)
    old = tmp_path / "old" / "gan_epoch_1.pth"
    old.parent.mkdir()
    torch.save(as_format_1(torch.load(tmp_path / "ck" / "gan_epoch_1.pth", weights_only=True)), old)
    G, cfg = gan.load_generator(old)
    assert cfg.conditional is False and G.n_classes == 0 and cfg.lr_g == cfg.lr_d == 2e-4 and cfg.ema == 0
    assert cfg.r1 == 0  # no penalty then, whatever label-free training defaults to now
    drawn = run_cli("generate", "--checkpoint", old, "--n", "4", "--out", tmp_path / "old.npy", "--device", "cpu")
    assert drawn.exit_code == 0, drawn
    resumed = run_cli("resume", old, "--epochs", "2", "--data-dir", small_data, "--checkpoint-dir", tmp_path / "old",
                      "--sample-dir", tmp_path / "old-samples", "--device", "cpu")
    assert resumed.exit_code == 0, resumed
    state = torch.load(tmp_path / "old" / "gan_epoch_2.pth", weights_only=True)
    assert state["format"] == checkpoint.FORMAT and state["config"]["conditional"] is False
    assert state["config"]["r1"] == 0 and state["config"]["lr_g"] == 2e-4  # it went on as it had trained


class FakeWriter:
    """Stands in for TensorBoard's SummaryWriter (not installed for the tests): records whether it was closed."""
    made = []

    def __init__(self, log_dir):
        self.closed = False
        FakeWriter.made.append(self)

    def add_scalar(self, *args):
        pass

    def add_image(self, *args):
        pass

    def close(self):
        self.closed = True


def test_tensorboard_writer_is_closed_however_training_stops(tmp_path, small_data, monkeypatch):
    import types
    from rich.console import Console
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", types.SimpleNamespace(SummaryWriter=FakeWriter))
    FakeWriter.made.clear()
    gan.train(config(tmp_path / "limit", small_data, epochs=5, tensorboard=True), minutes=1e-6, console=quiet())
    with pytest.raises(gan.TrainingInterrupted):
        gan.train(config(tmp_path / "ctrl-c", small_data, epochs=5, tensorboard=True),
                  console=Console(file=SignalOnText("epoch 1/"), width=200))
    gan.train(config(tmp_path / "done", small_data, epochs=1, tensorboard=True), console=quiet())
    assert [w.closed for w in FakeWriter.made] == [True, True, True]  # --minutes, Ctrl-C, and the normal end


def test_failed_export_leaves_no_file_open(tmp_path):
    import gc
    import digits

    class FailsOnSecondBatch(torch.nn.Module):
        calls = 0

        def forward(self, z):
            FailsOnSecondBatch.calls += 1
            if FailsOnSecondBatch.calls > 1:
                raise RuntimeError("the generator failed")
            return torch.zeros(len(z), 1, 28, 28)

    G = gan.Generator(FailsOnSecondBatch(), latent_dim=4)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        for fmt in ("npy", "idx"):
            FailsOnSecondBatch.calls = 0
            with pytest.raises(RuntimeError, match="the generator failed"):
                digits.export_samples(G, 20, tmp_path / fmt, fmt, seed=0, batch=10)
            gc.collect()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)], [str(w.message) for w in caught]
    assert not list(tmp_path.iterdir())  # nor a partial folder
