"""Data-lost defects from hostile testing: each test here names a way a user's files were replaced or a folder's
lock was lost, and checks it is refused (or kept) now."""

import signal
import time

from conftest import assert_refused
from test_trust import SMALL, cli_process


def test_deleting_a_runs_lock_file_does_not_let_a_second_run_in(tmp_path, small_data, run_cli):
    """The lock was only on .lock: `rm .lock` while a run trained let a second run into its folder. The folder
    itself is locked now."""
    ck = tmp_path / "ck"
    first = cli_process("train", *SMALL, "--epochs", "1000", "--data-dir", small_data, "--checkpoint-dir", ck,
                        "--sample-dir", tmp_path / "samples")
    try:
        deadline = time.monotonic() + 60
        while not (ck / ".lock").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)
        (ck / ".lock").unlink()
        second = run_cli("train", *SMALL, "--epochs", "1", "--data-dir", small_data, "--checkpoint-dir", ck,
                         "--sample-dir", tmp_path / "other")
        assert_refused(second, rf"{ck} is in use by")
        assert first.poll() is None
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    assert not list((tmp_path / "other").glob("*.png"))
