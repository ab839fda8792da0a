"""Crash-safe file operations shared by the registry and the job store: synced writes, atomic
replacement, per-file locks, and temporary entries that other processes can tell are in use.

Every temporary entry is named ``.tmp-*`` and flocked by the process writing it for as long as it is in
use, so :func:`reap_temp` (called at start-up by every worker and replica) removes only abandoned ones
and never another live process's work in progress.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import stat
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..domain import TMP_PREFIX
from ..errors import RegistryUnavailableError


def json_bytes(data: Any) -> bytes:
    """Stable, strict JSON for records on disk (sorted keys, no NaN; numpy values through ``tolist``)."""

    def default(obj: Any) -> Any:
        if hasattr(obj, "tolist"):
            return obj.tolist()
        raise TypeError(f"object of type {type(obj).__name__} is not JSON serialisable")

    return json.dumps(data, indent=2, sort_keys=True, allow_nan=False, default=default).encode()


def fsync_dir(path: Path) -> None:
    """Make a rename or a new entry in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_fd(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def write_new_file(path: Path, data: bytes) -> None:
    """Create ``path`` (it must not exist) with ``data``, synced to disk."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        write_fd(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def make_locked_temp(parent: Path, kind: str, *, directory: bool) -> tuple[Path, int]:
    """Create ``parent/.tmp-<kind><uuid>`` (dir or file) and return it with an fd holding its flock.

    If a cleanup grabbed the brand-new entry before we locked it, we start over with a new name.
    """
    for _ in range(100):
        path = parent / f"{TMP_PREFIX}{kind}{uuid.uuid4().hex}"
        try:
            if directory:
                os.mkdir(path, 0o755)
                fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
            else:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        except FileNotFoundError:
            if not parent.is_dir():
                raise
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            st, fst = os.stat(path), os.fstat(fd)
            if (st.st_dev, st.st_ino) == (fst.st_dev, fst.st_ino):
                return path, fd
        except (BlockingIOError, FileNotFoundError):
            pass
        os.close(fd)
    raise RegistryUnavailableError(f"could not create a temporary entry in {parent}")


def replace_file(path: Path, data: bytes) -> None:
    """Replace ``path`` atomically: a locked temp file, fsync, rename over it, fsync the directory.

    Readers see the old content or the new one, never a mix, and a crash leaves only a ``.tmp-*`` entry.
    """
    parent = path.parent
    tmp, fd = make_locked_temp(parent, f"{path.stem}-", directory=False)
    try:
        write_fd(fd, data)
        os.fsync(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    finally:
        os.close(fd)
    fsync_dir(parent)


@contextlib.contextmanager
def file_lock(path: Path, *, blocking: bool = True) -> Iterator[bool]:
    """Hold an exclusive flock on ``path`` (created if needed) for the block; yields False when
    ``blocking=False`` and another holder has it. Serialises threads too: each call opens its own file
    description."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)  # closing releases the flock


def is_locked(path: Path) -> bool:
    """Whether a live process holds ``path``'s flock (False when the file does not exist)."""
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def reap_temp(parent: Path, min_age: float) -> int:
    """Remove ``.tmp-*`` entries directly under ``parent`` that no live process holds locked and that
    are at least ``min_age`` seconds old; returns how many were removed."""
    try:
        with os.scandir(parent) as it:
            candidates = [e.path for e in it if e.name.startswith(TMP_PREFIX)]
    except OSError:
        return 0
    removed = 0
    now = time.time()
    for path in candidates:
        try:
            st = os.lstat(path)
            if now - st.st_mtime < min_age:
                continue
            if not (stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode)):
                os.unlink(path)
                removed += 1
                continue
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fst, now_st = os.fstat(fd), os.lstat(path)
            if (fst.st_dev, fst.st_ino) != (now_st.st_dev, now_st.st_ino):
                continue  # renamed/replaced meanwhile
            if stat.S_ISDIR(fst.st_mode):
                shutil.rmtree(path, ignore_errors=True)
            else:
                os.unlink(path)
            removed += 1
        except OSError:  # BlockingIOError: a live writer holds it
            continue
        finally:
            os.close(fd)
    return removed
