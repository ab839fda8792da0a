"""Training slots and background training jobs, kept on disk next to the registry.

* :class:`SlotPool` caps concurrent trainings across every process sharing the registry: a slot is an
  ``flock`` on one of N files, so a crashed process frees its slot at once.
* :class:`JobStore` keeps each job as ``<root>/.jobs/<id>.json`` (replaced atomically). The process
  running a job holds an ``flock`` on ``<id>.lock``; any process that finds a queued or running job
  whose lock is free knows its runner died and reports the job as failed instead of forgetting it.
  Cancelling writes ``<id>.cancel``, which the runner checks between iterations.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .errors import (
    BusyError,
    CancelledError,
    ConflictError,
    IntegrityError,
    LogregError,
    NotFoundError,
    RegistryUnavailableError,
    TimeLimitError,
)

JOBS_DIR = ".jobs"
SLOTS_DIR = ".slots"
FINISHED = ("succeeded", "failed", "cancelled")
_PROGRESS_EVERY = 0.5  # seconds between progress writes
_CANCEL_CHECK_EVERY = 0.2  # seconds between looks for a cancel flag
_START_GRACE_SECONDS = 30.0  # a queued job this young is not reported as interrupted


@contextlib.contextmanager
def _disk(what: str) -> Iterator[None]:
    """Turn an OS error on the registry's disk into the domain error readiness reports."""
    try:
        yield
    except (FileNotFoundError, NotFoundError):
        raise
    except OSError as exc:
        raise RegistryUnavailableError(f"cannot {what}: {exc.strerror or exc}", {"path": exc.filename}) from None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with open(tmp, "w") as fh:
        json.dump(data, fh, default=str)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


class SlotPool:
    """At most ``size`` holders at once across processes; ``acquire`` fails fast with :class:`BusyError`."""

    def __init__(self, root: Path, size: int) -> None:
        self.dir = Path(root) / SLOTS_DIR
        self.size = size

    @contextlib.contextmanager
    def acquire(self) -> Iterator[int]:
        fd = self.try_acquire()
        if fd is None:
            raise BusyError(
                f"{self.size} training(s) are already running (LOGREG_MAX_CONCURRENT_TRAININGS); retry later",
                retry_after=5,
                details={"limit": self.size},
            )
        try:
            yield fd
        finally:
            os.close(fd)

    def try_acquire(self) -> int | None:
        """An open, locked slot file descriptor (close it to release), or None when all are taken."""
        with _disk("prepare the training slots"):
            self.dir.mkdir(parents=True, exist_ok=True)
        for i in range(self.size):
            with _disk("open a training slot"):
                fd = os.open(self.dir / f"slot-{i}", os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return fd
            except BlockingIOError:
                os.close(fd)
        return None


class JobControl:
    """Handed to the training code: reports progress and stops the run on cancel or time-out."""

    def __init__(self, store: JobStore | None, job_id: str | None, deadline: float) -> None:
        self.store = store
        self.job_id = job_id
        self.deadline = deadline
        self._last_write = 0.0
        self._last_cancel_check = 0.0

    def __call__(self, iteration: int, loss: float) -> None:
        now = time.monotonic()
        if now > self.deadline:
            raise TimeLimitError(
                f"training stopped after {iteration} iterations: it went over the time limit "
                "(LOGREG_TRAIN_TIMEOUT_SECONDS); nothing was stored"
            )
        if self.store is None or self.job_id is None:
            return
        if now - self._last_cancel_check >= _CANCEL_CHECK_EVERY:
            self._last_cancel_check = now
            if self.store.cancel_requested(self.job_id):
                raise CancelledError("the job was cancelled; nothing was stored")
        if now - self._last_write >= _PROGRESS_EVERY:
            self._last_write = now
            self.store.update(self.job_id, progress={"iteration": iteration, "loss": float(loss)})


class JobStore:
    """Background training jobs on disk, readable by any process sharing ``root``."""

    def __init__(self, root: Path) -> None:
        self.dir = Path(root) / JOBS_DIR
        self._lock = threading.Lock()

    def _path(self, job_id: str, suffix: str = ".json") -> Path:
        if not job_id.isalnum() or len(job_id) > 64:
            raise NotFoundError(f"job {job_id!r} not found", {"job": job_id})
        return self.dir / f"{job_id}{suffix}"

    # -- creating and running -------------------------------------------------------------------------
    def create(self, model: str, idempotency_key: str | None = None) -> tuple[dict[str, Any], bool]:
        """A new queued job, or the job first created with ``idempotency_key`` (then ``created`` is False).

        The record is written before the key's marker, so whoever finds the marker finds the job.
        """
        with _disk("create the job directory"):
            self.dir.mkdir(parents=True, exist_ok=True)
        job_id = uuid.uuid4().hex
        job = {
            "id": job_id, "model": model, "state": "queued", "created_at": _now(), "started_at": None,
            "finished_at": None, "progress": None, "result": None, "error": None, "pid": os.getpid(),
        }
        with _disk("write the job record"):
            _write_json(self._path(job_id), job)
        if idempotency_key is None:
            return job, True
        digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:40]
        marker = self.dir / f"idem-{digest}"
        tmp = self.dir / f".idem-{job_id}.tmp"
        with _disk("record the Idempotency-Key"):
            tmp.write_text(job_id)
            try:
                os.link(tmp, marker)  # atomic: the marker appears with its content, or not at all
                return job, True
            except FileExistsError:
                self._path(job_id).unlink(missing_ok=True)
                return self.get(marker.read_text().strip()), False
            finally:
                tmp.unlink(missing_ok=True)

    def run(self, job_id: str, work: Callable[[JobControl], dict[str, Any]], slots: SlotPool,
            timeout: float) -> None:
        """Run ``work`` for the job in this thread: wait for a slot, then record the outcome."""
        lock_fd = os.open(self._path(job_id, ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX)
            slot = None
            while slot is None:
                if self.cancel_requested(job_id):
                    self.update(job_id, state="cancelled", finished_at=_now(),
                                error={"type": "cancelled", "message": "cancelled before it started"})
                    return
                slot = slots.try_acquire()
                if slot is None:
                    time.sleep(0.25)
            try:
                self.update(job_id, state="running", started_at=_now())
                control = JobControl(self, job_id, time.monotonic() + timeout)
                try:
                    result = work(control)
                except CancelledError as exc:
                    self.update(job_id, state="cancelled", finished_at=_now(),
                                error={"type": exc.kind, "message": exc.message})
                except LogregError as exc:
                    self.update(job_id, state="failed", finished_at=_now(),
                                error={"type": exc.kind, "message": exc.message, "details": exc.details})
                except Exception as exc:  # a job must end in a state, whatever went wrong
                    self.update(job_id, state="failed", finished_at=_now(),
                                error={"type": "internal_error", "message": f"{type(exc).__name__}: {exc}"})
                else:
                    self.update(job_id, state="succeeded", finished_at=_now(), result=result)
            finally:
                os.close(slot)
        finally:
            os.close(lock_fd)

    # -- reading and cancelling -----------------------------------------------------------------------
    def update(self, job_id: str, **fields: Any) -> dict[str, Any]:
        with self._lock:
            job = self._read(job_id)
            job.update(fields)
            _write_json(self._path(job_id), job)
            return job

    def _read(self, job_id: str) -> dict[str, Any]:
        path = self._path(job_id)
        try:
            with _disk("read the job record"):
                job = json.loads(path.read_text())
        except FileNotFoundError:
            raise NotFoundError(f"job {job_id!r} not found", {"job": job_id}) from None
        except ValueError:
            job = None
        if not isinstance(job, dict) or job.get("state") not in (*FINISHED, "queued", "running"):
            raise IntegrityError(f"the record of job {job_id} is corrupt", {"job": job_id})
        return job

    def get(self, job_id: str) -> dict[str, Any]:
        """The job's record; a queued or running job whose runner died is reported (and saved) as failed."""
        job = self._read(job_id)
        if job["state"] in FINISHED or not self._runner_gone(job_id):
            return job
        job = self._read(job_id)  # it may have finished between the two reads
        if job["state"] in FINISHED:
            return job
        return self.update(
            job_id, state="failed", finished_at=_now(),
            error={"type": "interrupted", "message": "the server stopped before the job finished; submit it again"},
        )

    def _runner_gone(self, job_id: str) -> bool:
        job = self._read(job_id)
        if job["state"] == "queued" and _age_seconds(job.get("created_at") or "") < _START_GRACE_SECONDS:
            return False  # just created: its runner may not hold the lock yet
        path = self._path(job_id, ".lock")
        if not path.exists():
            return True
        fd = os.open(path, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)
            return True
        finally:
            os.close(fd)

    def cancel_requested(self, job_id: str) -> bool:
        return self._path(job_id, ".cancel").exists()

    def cancel(self, job_id: str) -> dict[str, Any]:
        """Ask the job to stop; a finished job cannot be cancelled (409)."""
        job = self.get(job_id)
        if job["state"] in FINISHED:
            raise ConflictError(f"job {job_id} already {job['state']}", {"state": job["state"]})
        self._path(job_id, ".cancel").touch()
        return {**job, "cancel_requested": True}

    def recover(self) -> int:
        """Mark every job whose runner is gone as failed (called at start-up); returns how many."""
        if not self.dir.is_dir():
            return 0
        fixed = 0
        for path in self.dir.glob("*.json"):
            if path.name.startswith("."):
                continue
            try:
                before = self._read(path.stem)["state"]
                if before not in FINISHED and self.get(path.stem)["state"] == "failed":
                    fixed += 1
            except (LogregError, ValueError, OSError):
                continue
        return fixed


def _age_seconds(iso: str) -> float:
    try:
        then = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return float("inf")
    return (datetime.now(UTC) - then).total_seconds()
