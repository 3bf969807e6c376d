"""Writing without losing anything: files that appear whole or not at all, folders one process holds at a time,
and stop signals turned into a request the work can honour at a safe moment.

    with FolderLock("checkpoints", "--checkpoint-dir"):   # a second run into checkpoints/ is refused
        atomic_write("checkpoints/x.pth", lambda f: f.write(data))

Standard library only; every other module that writes builds on it.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path

from config import GANError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None


def atomic_write(path: str | Path, write, replace: bool = True) -> Path:
    """Write through a temporary file in the same folder, then rename it over `path`.

    A crash at any moment leaves either the old file or the new one under `path`, never half of one. With
    `replace=False` an existing `path` is never replaced (FileExistsError), even one made a moment ago.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        if replace:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # fails if path exists, atomically
            tmp.unlink()
    except FileExistsError:
        tmp.unlink(missing_ok=True)
        raise
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise GANError(f"could not write {path}: {e.strerror or e}; anything already saved there is unchanged") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda f: f.write(text.encode()))


def make_folder(path: str | Path, flag: str) -> Path:
    """Create `path` (and its parents) and prove it is writable, or say in one line which option to change."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise GANError(f"{flag} {path} is a file, not a folder: pass a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise GANError(f"cannot write to {path} ({e.strerror or e}): pass a writable {flag}") from None
    return path


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def remove_orphans(folder: Path) -> None:
    """Delete what a process killed in mid-write left in `folder`: .NAME.PID.tmp files and .NAME.partial-PID
    folders whose process is gone (never those of a live process)."""
    if os.name != "posix" or not folder.is_dir():  # os.kill(pid, 0) kills on Windows
        return
    for stale in (*folder.glob(".*.tmp"), *folder.glob(".*.partial-*"), *folder.glob(".*.old-*")):
        pid = stale.name.split(".")[-2] if stale.suffix == ".tmp" else stale.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not process_alive(int(pid)):
            shutil.rmtree(stale, ignore_errors=True) if stale.is_dir() else stale.unlink(missing_ok=True)


class FolderLock:
    """Holds a folder for one process while it works there: an exclusive lock on a file `.lock` inside it (or
    beside it, for a folder that does not exist yet), and on the folder itself, so that deleting `.lock` does
    not let a second process in. The operating system drops the lock when the process ends,
    however it ends (SIGKILL included), so a crashed run never leaves a folder stuck. A second holder is refused
    with one line."""

    def __init__(self, folder: str | Path, flag: str, beside: bool = False):
        folder = Path(folder).absolute()
        self.folder, self.flag, self.beside = folder, flag, beside
        self.path = folder.with_name(f".{folder.name}.lock") if beside else folder / ".lock"
        self.file = self.dir_fd = None

    def _lock_folder(self) -> None:
        """Lock the folder's own inode: no file inside it can be deleted out from under this lock."""
        if fcntl is None or self.beside:
            return
        try:
            self.dir_fd = os.open(self.folder, os.O_RDONLY)
        except OSError as e:
            raise GANError(f"cannot open {self.folder} ({e.strerror or e}): pass a writable {self.flag}") from None
        try:
            fcntl.flock(self.dir_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self.dir_fd)
            self.dir_fd = None
            try:
                self.file = open(self.path)
                holder = self._holder()
                self.file.close()
            except OSError:
                holder = "another process"
            self.file = None
            raise GANError(f"{self.folder} is in use by {holder}: wait for it to finish, or pass another "
                           f"{self.flag}") from None

    def __enter__(self):
        self._lock_folder()
        try:
            return self._lock_file()
        except BaseException:
            self.__exit__()
            raise

    def _lock_file(self):
        for _ in range(3):  # a lock file beside a folder is removed by its last holder: then open it anew
            try:
                self.file = open(self.path, "a+")
            except OSError as e:
                raise GANError(f"cannot write to {self.path.parent} ({e.strerror or e}): pass a writable {self.flag}") from None
            if fcntl is None:
                break
            try:
                fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = self._holder()
                self.file.close()
                self.file = None  # not ours: __exit__ must not remove it
                raise GANError(f"{self.folder} is in use by {holder}: wait for it to finish, or pass another "
                               f"{self.flag}") from None
            if self.path.exists() and os.stat(self.path).st_ino == os.fstat(self.file.fileno()).st_ino:
                break
            self.file.close()
            self.file = None
        else:
            raise GANError(f"{self.folder} is in use by another process: wait for it to finish, or pass another {self.flag}")
        self.file.seek(0)
        self.file.truncate()
        self.file.write(f"process {os.getpid()}")
        self.file.flush()
        return self

    def _holder(self) -> str:
        """Who holds the lock, as its holder wrote it; a holder that has just taken it gets a moment to write."""
        for _ in range(25):
            self.file.seek(0)
            if holder := self.file.read().strip():
                return holder
            time.sleep(0.02)
        return "another process"

    def __exit__(self, *exc):
        if self.file is not None:
            if self.beside:  # removed while still held: whoever opened it meanwhile finds it gone and retries
                self.path.unlink(missing_ok=True)
            self.file.close()
            self.file = None
        if self.dir_fd is not None:
            os.close(self.dir_fd)
            self.dir_fd = None


class TrainingInterrupted(GANError):
    """Training stopped on Ctrl-C or SIGTERM after saving a checkpoint."""


class StopRequest:
    """Turns the first Ctrl-C or SIGTERM into a flag that the work checks at safe moments; a second one stops at
    once (every write is atomic anyway). `raise_at_once`: the first signal raises KeyboardInterrupt, for work that
    has no safe moment to stop at but cleans up on the way out."""

    def __init__(self, raise_at_once: bool = False):
        self.signal_name: str | None = None
        self.raise_at_once = raise_at_once
        self._previous = {}

    def _handle(self, signum, frame):
        if self.signal_name is not None or self.raise_at_once:
            self.signal_name = signal.Signals(signum).name
            raise KeyboardInterrupt
        self.signal_name = signal.Signals(signum).name

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: signals cannot be caught here
                pass
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
