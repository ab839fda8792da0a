"""A training matrix on disk: the float64 rows of a table larger than the memory budget, in a file under the
scratch directory, mapped into memory (the page cache holds what is in use, not the process's own memory).

The file is named like every temporary entry (``.tmp-scratch-*``) and ``flock``-ed while it is open, so a
start-up cleanup removes the files a crash left and never one a live process uses.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from pathlib import Path

import numpy as np

from ..domain import TMP_PREFIX


class ScratchMatrix:
    """A ``(rows, columns)`` float64 matrix in a scratch file, growing or shrinking in place."""

    def __init__(self, directory: Path, columns: int) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f"{TMP_PREFIX}scratch-", dir=directory)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self.fd = fd
        self.path = Path(name)
        self.columns = columns
        self.array: np.memmap | None = None

    def resize(self, rows: int) -> np.memmap:
        """The matrix with ``rows`` rows: the first ones as they were, new ones zero."""
        if self.array is not None:
            self.array.flush()
            self.array = None
        os.ftruncate(self.fd, max(1, rows) * self.columns * 8)
        self.array = np.memmap(self.path, dtype=np.float64, mode="r+", shape=(max(1, rows), self.columns))
        return self.array[:rows]

    def close(self) -> None:
        """Remove the file (the mapping goes when its last view does)."""
        self.array = None
        with contextlib.suppress(OSError):
            self.path.unlink()
        with contextlib.suppress(OSError):
            os.close(self.fd)

    def __enter__(self) -> ScratchMatrix:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
