"""Writing without losing anything: files that appear whole or not at all, folders one process holds at a time,
and stop signals turned into a request the work can honour at a safe moment.

    with FolderLock("checkpoints", "--checkpoint-dir"):   # a second run into checkpoints/ is refused
        atomic_write("checkpoints/x.pth", lambda f: f.write(data))

Standard library only; every other module that writes builds on it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import signal
import time
from pathlib import Path

from config import BadValue, GANError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None


def atomic_write(path: str | Path, write, replace: bool = True) -> Path:
    """Write through a temporary file in the same folder, then rename it over `path`.

    A crash at any moment leaves either the old file or the new one under `path`, never half of one. With
    `replace=False` an existing `path` is never replaced (FileExistsError), even one made a moment ago.
    """
    honour_stop_asked()
    path = Path(path)
    tmp = temporary(path, TMP)
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
        discard(tmp)
        raise
    except OSError as e:
        discard(tmp)
        raise GANError(f"could not write {path}: {e.strerror or e}; anything already saved there is "
                       f"unchanged") from None
    except BaseException:
        discard(tmp)
        raise
    return path


def discard(path: Path) -> None:
    """Remove a temporary file if it is there; on a read-only or vanished folder there is nothing to remove."""
    with contextlib.suppress(OSError):
        path.unlink()


def write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda f: f.write(text.encode()))


# ---- what a command may replace ----

RUN_TAG = "mnist-gan-run"  # the PNG text field that names the run that drew an epoch grid
LINEAGE_TAG = "mnist-gan-lineage"  # ... its lineage at that epoch (checkpoint.lineage)
DRAWING_TAG = "mnist-gan-drawing"  # ... and the one that marks a grid that generate or interpolate drew
EXPORT_MANIFEST = "export.json"  # marks a folder as an export


def png_text(path: Path) -> dict:
    """The text fields of a PNG file ({} for anything else: not a regular file, damaged, another format)."""
    if not Path(path).is_file():  # a FIFO would never end a read
        return {}
    from PIL import Image
    try:
        with Image.open(path) as image:
            return dict(getattr(image, "text", {}))
    except Exception:  # noqa: BLE001  damaged or foreign
        return {}


def grid_run(path: Path) -> str | None:
    """The run that drew a grid (None: a grid from before grids were tagged, or not a PNG of this tool)."""
    return png_text(path).get(RUN_TAG)


def is_drawing(path: Path) -> bool:
    """Whether `path` is a drawing this tool made on request: a PNG grid tagged as one. A run's grids and plots, an
    export's files and files of the user's own are not, nor is any .npy array (an array cannot say who wrote it)."""
    tags = png_text(path) if path.suffix.lower() == ".png" else {}
    return DRAWING_TAG in tags and RUN_TAG not in tags


def holder_of(folder: Path) -> str | None:
    """Who holds `folder` with a FolderLock now ("process PID"), or None when nobody does."""
    if fcntl is None or not (folder / ".lock").is_file():
        return None
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    except OSError:
        with contextlib.suppress(OSError):
            return (folder / ".lock").read_text().strip() or "another process"
        return "another process"
    finally:
        os.close(fd)


def check_replaceable(out: Path, force: bool) -> None:
    """The one rule for a file a drawing command writes (generate, interpolate, and the Python API's out=): a new
    name is written; an existing file is replaced only with `force`, and only when it is a drawing of this tool,
    never a run's grid, plot, checkpoint or record, an export's file, nor a file of the user's own."""
    if not os.path.lexists(out):
        return
    if out.is_dir():
        raise BadValue(f"{{out}} {out} is a folder: name a file in it, such as {out / 'digits.png'}")
    if not force:
        raise BadValue(f"{out} already exists: choose another {{out}}, or pass {{force}} to replace it")
    if not is_drawing(out):
        raise BadValue(f"{out} is not a drawing that generate or interpolate made (a run's or an export's file, an "
                       f"array, or one of yours): {{force}} replaces only those PNGs; choose another {{out}}")


def make_folder(path: str | Path, flag: str) -> Path:
    """Create `path` (and its parents) and prove it is writable, or say in one line which option to change."""
    path = Path(path)
    try:
        if path.exists() and not path.is_dir():
            raise GANError(f"{flag} {path} is a file, not a folder: pass a folder")
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


# What a process leaves while it writes, named so that nothing of the user's is ever taken for it:
# .NAME.PID.mnist-gan-tmp (a file being written), .NAME.mnist-gan-partial-PID (an export being written),
# .NAME.mnist-gan-old-PID (an export being replaced), .NAME.mnist-gan-lock (the lock beside a folder or file).
TMP, PARTIAL, OLD, BESIDE_LOCK = "mnist-gan-tmp", "mnist-gan-partial", "mnist-gan-old", "mnist-gan-lock"


def temporary(path: Path, kind: str) -> Path:
    """The name under which this process writes `path` before it appears whole (kind: PARTIAL or OLD; files: TMP)."""
    suffix = f"{os.getpid()}.{TMP}" if kind == TMP else f"{kind}-{os.getpid()}"
    return path.with_name(f".{path.name}.{suffix}")


def remove_orphans(folder: Path) -> None:
    """Tidy what a process killed in mid-write left in `folder` (see TMP...): its temporary files and partial
    exports are deleted; an export being replaced is put back under its name when that name is empty, else deleted;
    a lock beside a folder that nobody holds is removed. Never anything of a live process, nor any other name."""
    if os.name != "posix" or not folder.is_dir():  # os.kill(pid, 0) kills on Windows
        return
    for stale in folder.glob(".*.*"):
        name, _, suffix = stale.name[1:].rpartition(".")
        pid = name.rpartition(".")[2] if suffix == TMP else suffix.rpartition("-")[2]
        kind = TMP if suffix == TMP else suffix.rpartition("-")[0]
        if kind not in (TMP, PARTIAL, OLD) or not pid.isdigit() or process_alive(int(pid)):
            continue
        original = folder / name
        if kind == OLD and not original.exists():
            with contextlib.suppress(OSError):
                stale.rename(original)  # killed between the two renames of a replace: the old export comes back
                continue
        shutil.rmtree(stale, ignore_errors=True) if stale.is_dir() and not stale.is_symlink() else discard(stale)
    for lock in folder.glob(f".*.{BESIDE_LOCK}"):
        with contextlib.suppress(OSError), open(lock, "a+") as f:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)  # nobody holds it: its holder is gone
            lock.unlink()


@contextlib.contextmanager
def new_folders(path: Path, flag: str):
    """make_folder(path) for some work; the folders it made (path and any missing parents) are removed again when
    the work ends and they are still empty (it failed, or wrote elsewhere), so a failed command leaves none."""
    path = Path(path)
    made = [p for p in (path, *path.parents) if not os.path.lexists(p)][::-1]  # outermost first
    make_folder(path, flag)
    try:
        yield path
    finally:
        for p in reversed(made):
            with contextlib.suppress(OSError):
                p.rmdir()  # only if empty


@contextlib.contextmanager
def held_folder(folder: str | Path, flag: str):
    """A folder held for one process's work: made if need be (and removed again if the work leaves it empty),
    locked with a FolderLock, and tidied of what killed processes left in it."""
    with new_folders(Path(folder), flag) as folder, FolderLock(folder, flag) as lock:
        remove_orphans(folder)
        yield lock


class FolderLock:
    """Holds a folder for one process while it works there: an exclusive lock on a file `.lock` inside it (or
    beside it, for a folder that does not exist yet), and on the folder itself, so that deleting `.lock` does
    not let a second process in. The operating system drops the lock when the process ends,
    however it ends (SIGKILL included), so a crashed run never leaves a folder stuck. A second holder is refused
    with one line."""

    def __init__(self, folder: str | Path, flag: str, beside: bool = False):
        folder = Path(folder).absolute()
        self.folder, self.flag, self.beside = folder, flag, beside
        self.path = folder.with_name(f".{folder.name}.{BESIDE_LOCK}") if beside else folder / ".lock"
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
            holder = self._holder_of_folder()
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
        if self.beside:
            make_folder(self.folder.parent, self.flag)
        for _ in range(3):  # a lock file beside a folder is removed by its last holder: then open it anew
            try:
                self.file = open(self.path, "a+")
            except OSError as e:
                raise GANError(f"cannot write to {self.path.parent} ({e.strerror or e}): pass a writable "
                               f"{self.flag}") from None
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
            raise GANError(f"{self.folder} is in use by another process: wait for it to finish, or pass another "
                           f"{self.flag}")
        try:
            self.file.seek(0)
            self.file.truncate()
            self.file.write(f"process {os.getpid()}")
            self.file.flush()
        except OSError as e:  # a full disk: the lock is held all the same, only its holder's name is missing
            if e.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise GANError(f"cannot write to {self.path.parent} ({e.strerror or e}): pass a writable "
                               f"{self.flag}") from None
        return self

    def _holder_of_folder(self) -> str:
        """Who holds the folder: its holder creates `.lock` just after locking the folder, so give it a moment."""
        for _ in range(25):
            try:
                self.file = open(self.path)
            except OSError:
                time.sleep(0.02)
                continue
            try:
                return self._holder()
            finally:
                self.file.close()
                self.file = None
        return "another process"

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
            # removed while still held (the folder's own lock is the guard; the file only names the holder): whoever
            # opens it meanwhile finds it gone and retries, so nothing of the lock is left behind
            discard(self.path)
            self.file.close()
            self.file = None
        if self.dir_fd is not None:
            os.close(self.dir_fd)
            self.dir_fd = None


class TrainingInterrupted(GANError):
    """Training stopped on Ctrl-C or SIGTERM after saving a checkpoint."""


STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


def hold_stop_signals(hold: bool) -> None:
    """Hold back (True) or let through (False) Ctrl-C, SIGTERM and SIGHUP. cli.py holds them while torch loads, which
    swallows a Ctrl-C mid-import and leaves numpy half loaded; one that came meanwhile arrives on release. Let through,
    each interrupts as Ctrl-C does, and is also noted, for the gates of honour_stop_asked. A signal the process was
    started to ignore (nohup's SIGHUP, a background job's Ctrl-C) stays ignored."""
    if not hold:
        for sig in STOP_SIGNALS:
            if signal.getsignal(sig) in (signal.SIG_DFL, signal.default_int_handler):
                signal.signal(sig, _interrupt)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_BLOCK if hold else signal.SIG_UNBLOCK, STOP_SIGNALS)


@contextlib.contextmanager
def stop_signals_held():
    """A clean-up that a second Ctrl-C, SIGTERM or SIGHUP must not cut short (leaving a half-removed folder): while it
    runs they do nothing, the work being on its way out already. (Handlers, not a signal mask: torch's worker threads
    would take a masked signal and Python would still run its handler.)"""
    previous = {}
    for sig in STOP_SIGNALS:
        with contextlib.suppress(ValueError, TypeError):  # not the main thread, or a handler Python did not set
            previous[sig] = signal.signal(sig, _ignored)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _ignored(signum, frame):
    pass


_stop_asked: list[str] = []  # the stop signals _interrupt turned into a KeyboardInterrupt, not yet honoured


def _interrupt(signum, frame):
    _stop_asked.append(signal.Signals(signum).name)
    raise KeyboardInterrupt


def stop_was_asked() -> bool:
    """Whether a stop signal came that nothing has honoured yet (a library swallowed it, or turned it into an error)."""
    return bool(_stop_asked)


def honour_stop_asked() -> None:
    """Raise the KeyboardInterrupt of a stop signal that a library swallowed: torch's probe for Triton, met when
    torchvision loads, turns one into an ImportError and carries on. Called before a StopRequest begins and before
    each file is written, so such a Ctrl-C still stops the command before it writes or trains."""
    if _stop_asked:
        _stop_asked.clear()
        raise KeyboardInterrupt


class StopRequest:
    """Turns the first Ctrl-C, SIGTERM or SIGHUP (a closed terminal) into a flag that the work checks at safe moments;
    a second one stops at
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
        honour_stop_asked()
        for sig in STOP_SIGNALS:
            try:
                if signal.getsignal(sig) != signal.SIG_IGN:  # under nohup, a closed terminal does not stop the work
                    self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: signals cannot be caught here
                pass
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
