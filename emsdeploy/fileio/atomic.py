"""The one writer: files and folders appear under their final name only when complete.

Every artifact is written to a temporary beside its target (``.<name>.<random>.tmp``) and
renamed into place at the end, so a reader never sees a half-written file and a failure leaves
the previous output intact. While a temporary exists, SIGINT and SIGTERM remove it before the
process ends (SIGTERM then exits with status 143 and one line; SIGINT raises KeyboardInterrupt) (SIGKILL cannot be caught: it may leave a temporary, never a partial file under the
final name). A folder replaces an existing one with one atomic exchange (Linux ``renameat2``),
so even SIGKILL leaves either the old folder or the new one.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import secrets
import shutil
import signal
import tempfile
import threading
from collections.abc import Callable, Collection, Iterator
from pathlib import Path

from ..errors import ExportError

__all__ = [
    "atomic_folder",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_text",
    "temporaries",
]

_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_lock = threading.RLock()
_temps: dict[Path, bool] = {}  # path -> is a folder
_previous: dict[int, object] = {}
_completed: list[Path] = []  # outputs already renamed into place by this process (complete, new)
_moving: dict[Path, int] = {}  # output -> inode of the temporary being renamed onto it right now


def temporaries() -> list[Path]:
    """The temporaries this process has open now (for tests)."""
    with _lock:
        return list(_temps)


def _remove(path: Path, is_dir: bool) -> None:
    with contextlib.suppress(OSError):
        if is_dir:
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def _in_place(path: Path, inode: int) -> bool:
    try:
        return os.stat(path, follow_symlinks=False).st_ino == inode
    except OSError:
        return False


def _on_signal(signum: int, frame: object) -> None:
    with _lock:
        # first what is complete: a rename the signal interrupted may already have happened
        done = list(dict.fromkeys([*_completed, *(p for p, ino in _moving.items() if _in_place(p, ino))]))
        for path, is_dir in list(_temps.items()):
            _remove(path, is_dir)
        previous = _previous.get(signum)
    if callable(previous):  # e.g. Python's SIGINT handler raises KeyboardInterrupt
        previous(signum, frame)
        return
    if previous == signal.SIG_IGN:
        return
    # SIG_DFL: end the process as the default action would, now that the temporaries are gone.
    # (An exception raised here could surface inside a C extension, e.g. h5py, and be mangled.)
    name = signal.Signals(signum).name
    if done:  # the signal came after an output was renamed into place: that output is complete and new
        msg = f"error: interrupted by {name} after {', '.join(map(str, done))} was complete; temporary files were removed"
    else:
        msg = f"error: interrupted by {name}; temporary files were removed, earlier outputs are untouched"
    os.write(2, (msg + "\n").encode())
    os._exit(128 + signum)


def _create_temp(parent: Path, stem: str, suffix: str, is_dir: bool) -> Path:
    """Install the handlers, register a fresh name, then create it (O_EXCL): a signal at any
    moment finds every temporary that exists already registered."""
    with _lock:
        if not _previous and threading.current_thread() is threading.main_thread():
            for sig in _SIGNALS:
                with contextlib.suppress(ValueError, OSError):
                    _previous[sig] = signal.signal(sig, _on_signal)
    for _ in range(100):
        tmp = parent / f".{stem}.{secrets.token_hex(4)}{suffix}"
        with _lock:
            _temps[tmp] = is_dir
        try:
            if is_dir:
                os.mkdir(tmp, 0o700)
            else:
                os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
            return tmp
        except FileExistsError:
            with _lock:
                _temps.pop(tmp, None)
        except BaseException:
            _unregister(tmp)
            raise
    raise FileExistsError(f"{parent}: cannot create a temporary for {stem}")


def _unregister(path: Path) -> None:
    with _lock:
        _temps.pop(path, None)
        if not _temps and _previous and threading.current_thread() is threading.main_thread():
            for sig, handler in _previous.items():
                with contextlib.suppress(ValueError, OSError, TypeError):
                    signal.signal(sig, handler)  # type: ignore[arg-type]
            _previous.clear()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def _moving_into_place(tmp: Path, path: Path) -> Iterator[None]:
    """The block renames ``tmp`` onto ``path``. A signal handled at any moment of it, even right
    after the rename and before the bookkeeping, tells a complete new output (``path`` is now
    ``tmp``'s inode) from an untouched one."""
    inode = os.stat(tmp, follow_symlinks=False).st_ino
    with _lock:
        _moving[path] = inode
    try:
        yield
        _completed.append(path)
    finally:
        with _lock:
            _moving.pop(path, None)


@contextlib.contextmanager
def _temporary(path: Path, suffix: str, is_dir: bool) -> Iterator[Path]:
    """A fresh registered temporary beside ``path`` for the block: removed if the block fails (or
    a signal ends it), unregistered however it ends. The block moves it onto ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _create_temp(path.parent, path.name, suffix, is_dir)
    try:
        yield tmp
    except BaseException:
        _remove(tmp, is_dir)
        raise
    finally:
        _unregister(tmp)


def atomic_write(path: str | Path, write: Callable[[Path], object], suffix: str = ".tmp") -> Path:
    """Call ``write(tmp_path)`` then rename ``tmp_path`` onto ``path``; the file gets the usual
    permissions (0666 less the umask), not a temporary's 0600."""
    path = Path(path)
    with _temporary(path, suffix, False) as tmp:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        with _moving_into_place(tmp, path):
            os.replace(tmp, path)
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


_RENAME_EXCHANGE = 2  # linux/fs.h


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux renameat2); False where the system cannot."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd = -100
    rc = fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


@contextlib.contextmanager
def atomic_folder(path: str | Path, owned: Collection[str] | None = None) -> Iterator[Path]:
    """Yield a new empty temporary folder beside ``path``; when the block ends without error it
    replaces ``path``. On an error or signal the temporary is removed and ``path`` is untouched.

    ``owned``: the names an earlier run of the same writer leaves in the folder. An existing
    folder holding anything else is refused rather than replaced (``-o ~`` must not wipe a home).
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ExportError(f"{path}: exists and is not a folder; name a new or empty folder")
    if path.is_dir() and owned is not None:
        foreign = sorted(p.name for p in path.iterdir() if p.name not in owned)
        if foreign:
            raise ExportError(
                f"{path}: holds files this export does not write ({', '.join(foreign[:3])}); "
                "name a new or empty folder, or remove them"
            )
    with _temporary(path, ".tmp", True) as tmp:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())
        with _moving_into_place(tmp, path):
            if path.is_dir():
                if not _exchange(tmp, path):
                    _swap_by_renames(tmp, path)
                # tmp now holds the previous output; it is still registered, so a signal removes it
            else:
                os.rename(tmp, path)
        _remove(tmp, True)  # the previous output (nothing there after a plain rename)


def _swap_by_renames(tmp: Path, path: Path) -> None:
    """Fallback without renameat2: two renames with SIGINT/SIGTERM held back between them."""
    old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
    os.rmdir(old)
    blocked = hasattr(signal, "pthread_sigmask")
    if blocked:
        signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
    try:
        os.rename(path, old)
        os.rename(tmp, path)
        os.rename(old, tmp)
    finally:
        if blocked:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)
