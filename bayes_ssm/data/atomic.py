"""Every file bayes_ssm writes goes through here: a temporary file in the target's folder, flushed
to disk, then renamed over the target (``os.replace``, atomic on POSIX). A kill, a crash or a full
disk leaves either the previous file or the new one, never a half-written one.

Temporary files are named ``.<target>.<pid>.<random>.tmp``. They are removed when the write
fails or is interrupted (SIGINT, and SIGTERM while a write is under way in the main thread); the
one case no process can clean up after itself, SIGKILL, leaves a temporary file that the next
write to the same target removes (its writer's pid is no longer alive).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_path", "check_writable"]


def check_writable(path, *, what: str = "output") -> Path:
    """Check, before any work is done, that ``path`` can be written; create its folder.

    Parameters
    ----------
    path : str or os.PathLike
    what : str
        Names the path in the error message (e.g. ``"--out"``).

    Returns
    -------
    pathlib.Path

    Raises
    ------
    ValueError
        ``path`` is a folder, its folder cannot be created, or it or its folder is not writable.
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{what} {path} is a folder; give a file name")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(f"{what} {path}: cannot create its folder ({err.strerror})") from None
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise ValueError(f"{what} {path}: folder {path.parent} is not writable")
    if path.exists() and not os.access(path, os.W_OK):
        raise ValueError(f"{what} {path} exists and is not writable")
    return path


def _stale_temporaries(path: Path) -> list[Path]:
    pattern = re.compile(rf"^\.{re.escape(path.name)}\.(\d+)\.[0-9a-f]{{32}}\.tmp$")
    stale = []
    with contextlib.suppress(OSError):
        for entry in os.scandir(path.parent):
            m = pattern.match(entry.name)
            if m is None or int(m.group(1)) == os.getpid():
                continue
            try:
                os.kill(int(m.group(1)), 0)
            except ProcessLookupError:
                stale.append(Path(entry.path))
            except (PermissionError, OverflowError):
                pass  # a live process of another user (or a nonsense pid): leave it
    return stale


class _Terminated(BaseException):
    """SIGTERM arrived while a file was being written (raised so ``finally`` cleans up)."""


@contextlib.contextmanager
def _sigterm_raises() -> Iterator[None]:
    """Within the block, SIGTERM raises (only where the default handler is installed, in the
    main thread); the handler is restored afterwards and the signal re-delivered."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    try:
        previous = signal.getsignal(signal.SIGTERM)
    except (ValueError, AttributeError):
        yield
        return
    if previous is not signal.SIG_DFL:
        yield
        return

    def handler(signum, frame):
        raise _Terminated

    signal.signal(signal.SIGTERM, handler)
    terminated = False
    try:
        yield
    except _Terminated:
        terminated = True
    finally:
        signal.signal(signal.SIGTERM, previous)
    if terminated:
        os.kill(os.getpid(), signal.SIGTERM)


@contextlib.contextmanager
def atomic_path(path) -> Iterator[str]:
    """Yield a temporary path to write; on leaving the block it replaces ``path`` atomically.

    Parameters
    ----------
    path : str or os.PathLike
        The target; its folder must exist.

    Yields
    ------
    str
        A temporary file name in the target's folder. Write the whole content there (any
        writer: ``to_csv``, ``savefig``, ``to_netcdf``, ``open``).

    Notes
    -----
    If the block raises (or SIGINT/SIGTERM arrives), the temporary file is removed and the
    target is left as it was. Stale temporaries of the same target left by killed writers are
    removed first.
    """
    path = Path(path)
    for stale in _stale_temporaries(path):
        with contextlib.suppress(OSError):
            stale.unlink()
    tmp = str(path.parent / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    with _sigterm_raises():
        try:
            yield tmp
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
