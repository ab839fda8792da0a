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
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..domain import Job, JobState, age_seconds, is_job_id, utc_now
from ..errors import (
    BusyError,
    ConflictError,
    IntegrityError,
    InvalidInputError,
    LogregError,
    NotFoundError,
    RegistryUnavailableError,
)
from .atomic import file_lock, is_locked, make_locked_temp, reap_temp, replace_file, write_fd

JOBS_DIR = ".jobs"
SLOTS_DIR = ".slots"
_START_GRACE_SECONDS = 30.0  # a queued job this young is not reported as interrupted
_EXPIRE_EVERY_SECONDS = 3600.0  # how often creating a job also removes expired ones


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

    def __init__(self, root: Path, retention_seconds: float = 7 * 86400, max_finished: int = 1000) -> None:
        self.dir = Path(root) / JOBS_DIR
        self.retention_seconds = retention_seconds
        self.max_finished = max_finished
        self._lock = threading.Lock()
        self._expired_at = float("-inf")

    def _path(self, job_id: str, suffix: str = ".json") -> Path:
        if not is_job_id(job_id):
            raise NotFoundError(f"job {job_id!r} not found", {"job": job_id})
        return self.dir / f"{job_id}{suffix}"

    # -- creating ---------------------------------------------------------------------------------------
    def create(self, model: str, idempotency_key: str | None = None, request_digest: str | None = None,
               state: JobState = JobState.QUEUED) -> tuple[Job, bool]:
        """A new job, or the job first created with ``idempotency_key`` (then ``created`` is False).

        A key used before with another request (``request_digest``) is a 422; a key whose first job failed or
        was cancelled is free again (nothing was stored), so the retry runs anew. The record is written before
        the key's marker, so whoever finds the marker finds the job.
        """
        with _disk("create the job directory"):
            self.dir.mkdir(parents=True, exist_ok=True)
        if time.monotonic() - self._expired_at > _EXPIRE_EVERY_SECONDS:
            self._expired_at = time.monotonic()
            self.expire()
        job = Job(id=uuid.uuid4().hex, model=model, state=state, created_at=utc_now(), pid=os.getpid(),
                  request_digest=request_digest if idempotency_key is not None else None)
        with _disk("write the job record"):
            self._write(job)
        if idempotency_key is None:
            return job, True
        marker = self._marker(idempotency_key)
        for _ in range(3):
            with _disk("record the Idempotency-Key"):
                tmp, fd = make_locked_temp(self.dir, "idem-", directory=False)
                try:
                    write_fd(fd, job.id.encode())
                    os.link(tmp, marker)  # atomic: the marker appears with its content, or not at all
                    return job, True
                except FileExistsError:
                    first = self._first_job(marker)
                finally:
                    tmp.unlink(missing_ok=True)
                    os.close(fd)
            if first is not None and request_digest is not None and first.request_digest not in (None, request_digest):
                self._path(job.id).unlink(missing_ok=True)
                raise InvalidInputError(
                    "this Idempotency-Key was first used with another request (a different body or model); send "
                    "a new key with a new request", {"job": first.id})
            if first is not None and first.state not in (JobState.FAILED, JobState.CANCELLED):
                self._path(job.id).unlink(missing_ok=True)
                return first, False
            marker.unlink(missing_ok=True)  # the first try failed or its record expired: the key is free again
        self._path(job.id).unlink(missing_ok=True)
        raise BusyError("this Idempotency-Key is being claimed by another request; retry in a moment",
                        retry_after=1)

    def _marker(self, idempotency_key: str) -> Path:
        return self.dir / f"idem-{hashlib.sha256(idempotency_key.encode()).hexdigest()[:40]}"

    def _first_job(self, marker: Path) -> Job | None:
        """The job a key's marker names, or None when the marker or its job is gone."""
        try:
            return self.get(marker.read_text().strip())
        except (FileNotFoundError, NotFoundError):
            return None

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

    def expire(self) -> int:
        """Remove finished jobs older than :attr:`retention_seconds` and, beyond :attr:`max_finished` finished
        ones, the oldest; with their lock, cancel flag and Idempotency-Key markers. Returns how many were
        removed. Runs at start-up and, at most hourly, when a job is created."""
        if not self.dir.is_dir():
            return 0
        max_age_seconds, max_count = self.retention_seconds, self.max_finished
        finished: list[tuple[float, str]] = []
        for path in self.dir.glob("*.json"):
            if not is_job_id(path.stem):
                continue
            try:
                job = self._read(path.stem)
            except (LogregError, OSError):
                continue
            if job.state.finished:
                finished.append((age_seconds(job.finished_at or job.created_at), job.id))
        finished.sort(reverse=True)  # oldest first
        doomed = {job_id for age, job_id in finished if age > max_age_seconds}
        keep = [job_id for _, job_id in finished if job_id not in doomed]
        doomed.update(keep[: max(0, len(keep) - max_count)])
        if not doomed:
            return 0
        for marker in self.dir.glob("idem-*"):
            with contextlib.suppress(OSError):
                if marker.read_text().strip() in doomed:
                    marker.unlink()
        for job_id in doomed:
            for suffix in (".json", ".lock", ".cancel"):
                with contextlib.suppress(OSError):
                    self._path(job_id, suffix).unlink()
        return len(doomed)

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
