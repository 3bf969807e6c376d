"""Data-lost defects from hostile testing: each test here names a way a user's files were replaced or a folder's
lock was lost, and checks it is refused (or kept) now."""

import signal
import time

from conftest import assert_refused
from test_trust import SMALL, long_run_holding


def test_deleting_a_runs_lock_file_does_not_let_a_second_run_in(tmp_path, small_data, run_cli):
    """The lock was only on .lock: `rm .lock` while a run trained let a second run into its folder. The folder
    itself is locked now."""
    ck = tmp_path / "ck"
    first = long_run_holding(ck, small_data, tmp_path / "samples")
    try:
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
