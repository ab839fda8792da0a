"""Training slots and background-job records, kept on disk next to the registry.

* :class:`SlotPool` caps concurrent trainings across every process sharing the registry: a slot is an
  ``flock`` on one of N files, so a crashed process frees its slot at once.
* :class:`JobStore` keeps each job as a :class:`~service.domain.Job` record in ``<root>/.jobs/<id>.json``
  (replaced atomically). The process running a job holds an ``flock`` on ``<id>.lock``; any process that
  finds a queued or running job whose lock is free knows its runner died and reports the job as failed
  instead of forgetting it. Cancelling writes ``<id>.cancel``, which the runner checks between iterations.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..domain import Job, JobState, age_seconds, is_job_id, utc_now
from ..errors import BusyError, ConflictError, IntegrityError, LogregError, NotFoundError, RegistryUnavailableError
from .atomic import file_lock, is_locked, make_locked_temp, reap_temp, replace_file, write_fd

JOBS_DIR = ".jobs"
SLOTS_DIR = ".slots"
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


class JobStore:
    """Background training jobs on disk, readable by any process sharing ``root``."""

    def __init__(self, root: Path) -> None:
        self.dir = Path(root) / JOBS_DIR
        self._lock = threading.Lock()

    def _path(self, job_id: str, suffix: str = ".json") -> Path:
        if not is_job_id(job_id):
            raise NotFoundError(f"job {job_id!r} not found", {"job": job_id})
        return self.dir / f"{job_id}{suffix}"

    # -- creating ---------------------------------------------------------------------------------------
    def create(self, model: str, idempotency_key: str | None = None) -> tuple[Job, bool]:
        """A new queued job, or the job first created with ``idempotency_key`` (then ``created`` is False).

        The record is written before the key's marker, so whoever finds the marker finds the job.
        """
        with _disk("create the job directory"):
            self.dir.mkdir(parents=True, exist_ok=True)
        job = Job(id=uuid.uuid4().hex, model=model, state=JobState.QUEUED, created_at=utc_now(), pid=os.getpid())
        with _disk("write the job record"):
            self._write(job)
        if idempotency_key is None:
            return job, True
        digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:40]
        marker = self.dir / f"idem-{digest}"
        with _disk("record the Idempotency-Key"):
            tmp, fd = make_locked_temp(self.dir, "idem-", directory=False)
            try:
                write_fd(fd, job.id.encode())
                os.link(tmp, marker)  # atomic: the marker appears with its content, or not at all
                return job, True
            except FileExistsError:
                self._path(job.id).unlink(missing_ok=True)
                return self.get(marker.read_text().strip()), False
            finally:
                tmp.unlink(missing_ok=True)
                os.close(fd)

    @contextlib.contextmanager
    def runner(self, job_id: str) -> Iterator[None]:
        """Hold the job's runner lock for the block: while it is held, nobody reports the job as interrupted."""
        with file_lock(self._path(job_id, ".lock")):
            yield

    # -- reading and writing ----------------------------------------------------------------------------
    def update(self, job_id: str, **fields: Any) -> Job:
        with self._lock:
            job = Job.model_validate({**self._read(job_id).model_dump(), **fields})
            with _disk("write the job record"):
                self._write(job)
            return job

    def finish(self, job_id: str, state: JobState, *, result: dict[str, Any] | None = None,
               error: LogregError | None = None, error_fields: dict[str, Any] | None = None) -> Job:
        """Record the outcome of a job: its final state, and its result or its error."""
        if error is not None:
            error_fields = {"type": error.kind, "message": error.message}
            if state is JobState.FAILED:
                error_fields["details"] = error.details
        return self.update(job_id, state=state, finished_at=utc_now(), result=result, error=error_fields)

    def _write(self, job: Job) -> None:
        replace_file(self._path(job.id), job.model_dump_json().encode())

    def _read(self, job_id: str) -> Job:
        path = self._path(job_id)
        try:
            with _disk("read the job record"):
                raw = path.read_bytes()
        except FileNotFoundError:
            raise NotFoundError(f"job {job_id!r} not found", {"job": job_id}) from None
        try:
            return Job.model_validate_json(raw)
        except ValidationError:
            raise IntegrityError(f"the record of job {job_id} is corrupt", {"job": job_id}) from None

    def get(self, job_id: str) -> Job:
        """The job's record; a queued or running job whose runner died is reported (and saved) as failed."""
        job = self._read(job_id)
        if job.state.finished or not self._runner_gone(job):
            return job
        job = self._read(job_id)  # it may have finished between the two reads
        if job.state.finished:
            return job
        return self.finish(job_id, JobState.FAILED, error_fields={
            "type": "interrupted", "message": "the server stopped before the job finished; submit it again"})

    def _runner_gone(self, job: Job) -> bool:
        if job.state is JobState.QUEUED and age_seconds(job.created_at) < _START_GRACE_SECONDS:
            return False  # just created: its runner may not hold the lock yet
        return not is_locked(self._path(job.id, ".lock"))

    def cancel_requested(self, job_id: str) -> bool:
        return self._path(job_id, ".cancel").exists()

    def cancel(self, job_id: str) -> dict[str, Any]:
        """Ask the job to stop; a finished job cannot be cancelled (409)."""
        job = self.get(job_id)
        if job.state.finished:
            raise ConflictError(f"job {job_id} already {job.state}", {"state": job.state})
        self._path(job_id, ".cancel").touch()
        return {**job.model_dump(mode="json"), "cancel_requested": True}

    def recover(self) -> int:
        """At start-up: remove abandoned temp files and mark every job whose runner is gone as failed;
        returns how many jobs were marked."""
        if not self.dir.is_dir():
            return 0
        reap_temp(self.dir, 0.0)
        fixed = 0
        for path in self.dir.glob("*.json"):
            if not is_job_id(path.stem):
                continue
            try:
                before = self._read(path.stem).state
                if not before.finished and self.get(path.stem).state is JobState.FAILED:
                    fixed += 1
            except (LogregError, ValueError, OSError):
                continue
        return fixed
