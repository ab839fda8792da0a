"""On-disk model registry backed by joblib, safe under many threads and many processes.

Layout under ``root``::

    <root>/<name>/<version>/model.joblib     the pickled model (joblib)
    <root>/<name>/<version>/metadata.json    metadata + name, version, created_at, sha256, artefact
    <root>/<name>/model.json                 {"next_version", "aliases", "thresholds"}
    <root>/<name>/.lock                      fcntl.flock lock serialising writers of that model

Why it is crash- and concurrency-safe:

* A version is built in a private ``.tmp-<uuid>`` directory and published with one ``rename`` while
  the model's flock is held, so readers (which take no lock) see a whole version or none.
* ``model.json`` is only replaced atomically (temp file + fsync + ``os.replace`` + directory fsync).
* Version numbers come from ``max(next_version, highest existing version + 1)`` under the lock, so
  they are never reused, even after deletes or a lost state file (unless the highest one is deleted
  *and* the state file is lost).
* Every ``.tmp-*`` entry is flocked by the process writing it for as long as it is in use, so
  :meth:`ModelRegistry.cleanup_temp` (called at start-up by every worker/replica) removes only
  abandoned ones and never another live process's work in progress.
* Artefacts are unpickled only after their sha256 matches ``metadata.json`` and the metadata's
  name/version match the path: joblib runs pickle, so only files this service wrote are loaded.

No web framework is imported here; errors are the domain errors of :mod:`service.errors`.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import math
import numbers
import os
import re
import shutil
import stat
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import joblib

from service.errors import (
    ConflictError,
    IntegrityError,
    InvalidInputError,
    NotFoundError,
    RegistryUnavailableError,
)

__all__ = [
    "ARTEFACT_FILE",
    "METADATA_FILE",
    "PRODUCTION_ALIAS",
    "STATE_FILE",
    "LoadedModel",
    "ModelRegistry",
    "validate_alias",
    "validate_model_name",
]

ARTEFACT_FILE = "model.joblib"
METADATA_FILE = "metadata.json"
STATE_FILE = "model.json"
LOCK_FILE = ".lock"
TMP_PREFIX = ".tmp-"
PRODUCTION_ALIAS = "production"
#: Abandoned temp entries older than this are reaped opportunistically on every save.
TEMP_MAX_AGE_SECONDS = 3600.0

_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_ALIAS_RE = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,63}")
_VERSION_DIR_RE = re.compile(r"[1-9][0-9]*")
_DIGITS_RE = re.compile(r"[0-9]+")
_SHA256_RE = re.compile(r"[0-9a-f]{64}")
_SYSTEM_KEYS = ("name", "version", "created_at", "sha256", "artefact")
_LOAD_LOCK_STRIPES = 16

_StatSig = tuple[int, int, int, int]


@dataclass(frozen=True, slots=True)
class LoadedModel:
    """A model ready to predict with: the unpickled object plus what is known about it.

    ``model`` is shared by every caller that loads the same version: treat it as read-only.
    """

    name: str
    version: int
    model: Any
    metadata: dict[str, Any]
    threshold: float | None


@dataclass(slots=True)
class _CacheEntry:
    model: Any
    metadata: dict[str, Any]
    dir_sig: tuple[int, int]  # (st_ino, st_mtime_ns) of the version dir, to notice deletes/replacement


def validate_model_name(name: object) -> str:
    """Return ``name`` if it is a safe model name (one path component, no dot-only names)."""
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name) or set(name) <= {"."}:
        raise InvalidInputError(
            f"invalid model name {name!r}: use 1-64 characters from A-Z a-z 0-9 _ . -, "
            "starting with a letter or digit",
            details={"field": "name", "value": repr(name)},
        )
    return name


def validate_alias(alias: object) -> str:
    """Return ``alias`` if valid; aliases start with a letter so they never look like versions."""
    if not isinstance(alias, str) or not _ALIAS_RE.fullmatch(alias):
        raise InvalidInputError(
            f"invalid alias {alias!r}: use 1-64 characters from A-Z a-z 0-9 _ . -, starting with a letter",
            details={"field": "alias", "value": repr(alias)},
        )
    return alias


def _json_default(obj: Any) -> Any:
    """Let numpy scalars/arrays (anything with ``tolist``) through json.dumps."""
    if hasattr(obj, "tolist"):
        return obj.tolist()
    raise TypeError(f"object of type {type(obj).__name__} is not JSON serialisable")


def _dumps(data: Any) -> bytes:
    return json.dumps(data, indent=2, sort_keys=True, allow_nan=False, default=_json_default).encode()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_fd(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _write_file_synced(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        _write_fd(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def _make_locked_temp(parent: Path, kind: str, *, directory: bool) -> tuple[Path, int]:
    """Create ``parent/.tmp-<kind><uuid>`` (dir or file) and return it with an fd holding its flock.

    The flock tells :meth:`ModelRegistry.cleanup_temp` in any process that the entry is in use.
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


def _sig(st: os.stat_result) -> _StatSig:
    return (st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size)


class ModelRegistry:
    """Versioned, aliased model store on a (possibly shared) directory.

    Writers serialise per model on ``<root>/<name>/.lock`` (fcntl.flock, which also excludes other
    threads because each call opens its own file description). Readers take no lock; they rely on
    atomic renames, and re-read ``model.json`` only when its stat signature changed, so versions,
    aliases and thresholds changed by another process are seen immediately.
    """

    def __init__(
        self, root: Path | str, cache_size: int = 16, write_delay: float = 0.0, recheck_seconds: float = 0.0
    ) -> None:
        """Open (and create if possible) the registry at ``root``.

        ``cache_size`` bounds the in-memory LRU of loaded versions (0 disables it). ``write_delay`` is a
        test-only knob: seconds slept, under the model lock, after the temp version is complete and
        before it is renamed into place (the window a kill -9 crash test aims at). ``recheck_seconds``:
        how long a resolved ``load`` may be served without looking at the disk again (0: always look), so
        the prediction hot path makes no system call; changes by other processes show within that time, and this
        instance's own writes for every load that starts after the write returned.
        """
        if isinstance(cache_size, bool) or not isinstance(cache_size, int) or cache_size < 0:
            raise InvalidInputError(f"cache_size must be an int >= 0, got {cache_size!r}")
        self.root = Path(root)
        self.cache_size = cache_size
        self.write_delay = float(write_delay)
        with contextlib.suppress(OSError):
            self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()  # guards the caches and counters below
        self._cache: OrderedDict[tuple[str, int], _CacheEntry] = OrderedDict()
        self._load_locks = [threading.Lock() for _ in range(_LOAD_LOCK_STRIPES)]
        self._states: dict[str, tuple[_StatSig, dict[str, Any]]] = {}
        self._listings: dict[str, tuple[tuple[Any, ...], tuple[int, ...]]] = {}
        self._counters = {"hits": 0, "misses": 0, "loads": 0, "evictions": 0, "integrity_failures": 0}
        self.recheck_seconds = float(recheck_seconds)
        #: Returns the problems of a metadata dict beyond the registry's own keys (the caller's schema).
        self.metadata_validator: Callable[[dict[str, Any]], list[str]] | None = None
        #: Called as ``observer(counter, increment, models_cached)`` on each cache event; set by monitoring.
        self.observer: Callable[[str, int, int], None] | None = None
        self._fresh: dict[tuple[str, int | str | None], tuple[float, LoadedModel]] = {}

    # ------------------------------------------------------------------ public API: writes

    def save(self, name: str, model: Any, metadata: Mapping[str, Any]) -> dict[str, Any]:
        """Store ``model`` as the next version of ``name`` and return its stored metadata.

        The system keys name/version/created_at/sha256/artefact override same-named user keys.
        """
        name = validate_model_name(name)
        if not isinstance(metadata, Mapping):
            raise InvalidInputError("metadata must be a mapping", details={"type": type(metadata).__name__})
        user_meta = {str(k): v for k, v in metadata.items()}
        try:
            user_meta = json.loads(_dumps(user_meta))  # validate early + normalise numpy types
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(f"metadata is not JSON-serialisable: {exc}") from exc

        model_dir = self.root / name
        try:
            model_dir.mkdir(parents=True, exist_ok=True)
            self._reap(model_dir, TEMP_MAX_AGE_SECONDS)
            tmp, tmp_fd = _make_locked_temp(model_dir, "", directory=True)
            committed = False
            try:
                artefact = tmp / ARTEFACT_FILE
                with open(artefact, "wb") as fh:
                    joblib.dump(model, fh)
                    fh.flush()
                    os.fsync(fh.fileno())
                digest = hashlib.sha256(artefact.read_bytes()).hexdigest()
                with self._model_lock(name):
                    state = self._read_state_file(name)
                    existing = self._scan_versions(name)
                    version = max(state["next_version"], existing[-1] + 1 if existing else 1)
                    stored = {
                        **user_meta,
                        "name": name,
                        "version": version,
                        "created_at": datetime.now(UTC).isoformat(timespec="milliseconds").replace(
                            "+00:00", "Z"
                        ),
                        "sha256": digest,
                        "artefact": ARTEFACT_FILE,
                    }
                    _write_file_synced(tmp / METADATA_FILE, _dumps(stored))
                    os.fsync(tmp_fd)
                    if self.write_delay > 0:
                        time.sleep(self.write_delay)
                    os.rename(tmp, model_dir / str(version))
                    committed = True
                    _fsync_dir(model_dir)
                    state["next_version"] = version + 1
                    self._write_state(name, state)
            finally:
                os.close(tmp_fd)
                if not committed:
                    shutil.rmtree(tmp, ignore_errors=True)
        except OSError as exc:
            raise RegistryUnavailableError(f"cannot write model {name!r} to the registry: {exc}") from exc
        return stored

    def delete_version(self, name: str, version: int | str) -> None:
        """Delete one version; refused (ConflictError) while an alias points at it.

        The directory is first renamed to ``.tmp-deleted-*`` so a crash never leaves half a version
        listed; its threshold is dropped and ``model.json`` is rewritten (which also tells other
        processes). The state file stays even when no version is left, so numbers are never reused.
        """
        name = validate_model_name(name)
        if version is None:
            raise InvalidInputError("delete_version needs an explicit version")
        self._require_model_dir(name)
        model_dir = self.root / name
        try:
            with self._model_lock(name):
                state = self._read_state_file(name)
                v = self._resolve_in(name, version, state, fresh=True)
                pointing = sorted(a for a, av in state["aliases"].items() if av == v)
                if pointing:
                    raise ConflictError(
                        f"version {v} of model {name!r} is referenced by alias(es) "
                        f"{', '.join(repr(a) for a in pointing)}; move or delete them first",
                        details={"name": name, "version": v, "aliases": pointing},
                    )
                if state["next_version"] <= v:  # a crash left it stale: persist it before v disappears
                    state["next_version"] = v + 1
                    self._write_state(name, state)
                vdir = model_dir / str(v)
                dfd = os.open(vdir, os.O_RDONLY | os.O_DIRECTORY)
                try:
                    fcntl.flock(dfd, fcntl.LOCK_EX)  # mark it in use so cleanup_temp leaves it to us
                    doomed = model_dir / f"{TMP_PREFIX}deleted-{v}-{uuid.uuid4().hex}"
                    os.rename(vdir, doomed)
                    _fsync_dir(model_dir)
                    state["thresholds"].pop(str(v), None)
                    state["next_version"] = max(state["next_version"], v + 1)
                    self._write_state(name, state)
                    shutil.rmtree(doomed, ignore_errors=True)
                finally:
                    os.close(dfd)
        except OSError as exc:
            raise RegistryUnavailableError(f"cannot delete {name!r} version {version!r}: {exc}") from exc
        with self._lock:
            self._cache.pop((name, v), None)

    def set_alias(self, name: str, alias: str, version: int | str) -> dict[str, Any]:
        """Point ``alias`` at ``version`` (an int, digit string or another alias); returns the change."""
        name = validate_model_name(name)
        alias = validate_alias(alias)
        if version is None:
            raise InvalidInputError("set_alias needs an explicit version or alias")
        self._require_model_dir(name)
        with self._locked_state(name) as state:
            v = self._resolve_in(name, version, state, fresh=True)
            previous = state["aliases"].get(alias)
            state["aliases"][alias] = v
        return {"name": name, "alias": alias, "version": v, "previous_version": previous}

    def delete_alias(self, name: str, alias: str) -> None:
        """Remove ``alias`` from model ``name`` (NotFoundError if it is not set)."""
        name = validate_model_name(name)
        alias = validate_alias(alias)
        self._require_model_dir(name)
        with self._locked_state(name) as state:
            if alias not in state["aliases"]:
                raise NotFoundError(
                    f"alias {alias!r} not found for model {name!r}", details={"name": name, "alias": alias}
                )
            del state["aliases"][alias]

    def set_threshold(self, name: str, version: int | str, threshold: float | None) -> dict[str, Any]:
        """Set the decision threshold (0..1) of a version; ``None`` clears it."""
        name = validate_model_name(name)
        if threshold is not None:
            if (
                isinstance(threshold, bool)
                or not isinstance(threshold, numbers.Real)
                or not math.isfinite(float(threshold))
                or not 0.0 <= float(threshold) <= 1.0
            ):
                raise InvalidInputError(
                    f"threshold must be a number between 0 and 1, got {threshold!r}",
                    details={"field": "threshold", "value": repr(threshold)},
                )
            threshold = float(threshold)
        if version is None:
            raise InvalidInputError("set_threshold needs an explicit version or alias")
        self._require_model_dir(name)
        with self._locked_state(name) as state:
            v = self._resolve_in(name, version, state, fresh=True)
            if threshold is None:
                state["thresholds"].pop(str(v), None)
            else:
                state["thresholds"][str(v)] = threshold
        return {"name": name, "version": v, "threshold": threshold}

    # ------------------------------------------------------------------ public API: reads

    def resolve(self, name: str, version: int | str | None = None) -> int:
        """Turn a version spec into a version number.

        int or digit string: that version; other string: an alias; None: alias "production" if set,
        else the latest version. Anything missing raises NotFoundError.
        """
        name = validate_model_name(name)
        return self._resolve_in(name, version, self._state(name), fresh=False)

    def load(self, name: str, version: int | str | None = None) -> LoadedModel:
        """Return a verified, cached model; a cache hit costs a few stat calls and no file read.

        If ``version`` is None or an alias and the version it pointed at is deleted by another
        process between resolving and loading (alias moved, then old version deleted), it is
        resolved again rather than failing the request.
        """
        ref = (name, version)
        fresh = self._fresh.get(ref) if self.cache_size else None
        if fresh is not None and fresh[0] > time.monotonic():
            with self._lock:
                self._bump("hits")
            return fresh[1]
        loaded = self._load_checked(name, version)
        if self.cache_size and self.recheck_seconds > 0:
            if len(self._fresh) >= self.cache_size:  # never keep more models alive than the LRU holds
                self._fresh.clear()
            self._fresh[ref] = (time.monotonic() + self.recheck_seconds, loaded)
        return loaded

    def _load_checked(self, name: str, version: int | str | None) -> LoadedModel:
        """``load`` without the short-lived cache: resolve against the disk's current state."""
        name = validate_model_name(name)
        indirect = version is None or (isinstance(version, str) and not _DIGITS_RE.fullmatch(version))
        for attempt in range(3):
            try:
                return self._load_once(name, version)
            except NotFoundError as exc:
                vanished = isinstance(exc.details, dict) and "version" in exc.details
                if not (indirect and vanished) or attempt == 2:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _load_once(self, name: str, version: int | str | None) -> LoadedModel:
        """One resolve + cache lookup (+ verified unpickle on a miss, deduplicated across threads)."""
        state = self._state(name)
        v = self._resolve_in(name, version, state, fresh=False)
        threshold = state["thresholds"].get(str(v))
        key = (name, v)
        entry = self._cached(key, count=True)
        if entry is None:
            with self._load_locks[hash(key) % _LOAD_LOCK_STRIPES]:
                entry = self._cached(key, count=False)  # another thread may have loaded it meanwhile
                if entry is None:
                    entry = self._read_verified(name, v)
                    self._remember(key, entry)
        return LoadedModel(name=name, version=v, model=entry.model, metadata=dict(entry.metadata),
                           threshold=threshold)

    def metadata(self, name: str, version: int | str | None = None) -> dict[str, Any]:
        """Return one version's metadata.json plus its aliases and threshold (no sha256 check)."""
        name = validate_model_name(name)
        state = self._state(name)
        v = self._resolve_in(name, version, state, fresh=False)
        meta = self._read_metadata(name, v)
        return self._decorate(meta, v, state)

    def list_versions(self, name: str) -> list[dict[str, Any]]:
        """Every version's metadata (sorted by version) plus its aliases and threshold.

        A version whose metadata.json is unreadable is listed as ``{name, version, integrity_error}``
        rather than hiding the others.
        """
        name = validate_model_name(name)
        state = self._state(name)
        versions = self._versions(name, fresh=True)
        if not versions:
            raise NotFoundError(f"model {name!r} not found", details={"name": name})
        out = []
        for v in versions:
            try:
                meta = self._read_metadata(name, v)
            except NotFoundError:
                continue  # deleted concurrently
            except IntegrityError as exc:
                meta = {"name": name, "version": v, "integrity_error": exc.message}
            out.append(self._decorate(meta, v, state))
        return out

    def list_models(self) -> list[dict[str, Any]]:
        """All models with at least one version, sorted by name."""
        try:
            entries = sorted(e.name for e in os.scandir(self.root) if e.is_dir(follow_symlinks=False))
        except OSError as exc:
            raise RegistryUnavailableError(f"cannot list registry {self.root}: {exc}") from exc
        out = []
        for name in entries:
            if not _NAME_RE.fullmatch(name) or set(name) <= {"."}:
                continue
            versions = self._versions(name, fresh=True)
            if not versions:
                continue
            entry: dict[str, Any] = {"name": name, "latest_version": versions[-1], "versions": list(versions)}
            try:
                entry["aliases"] = dict(self._state(name)["aliases"])
            except IntegrityError as exc:  # one corrupt model must not hide the others
                entry["aliases"] = {}
                entry["integrity_error"] = exc.message
            out.append(entry)
        return out

    # ------------------------------------------------------------------ public API: operations

    def check(self) -> None:
        """Readiness probe: root exists (created if possible), is a directory and is writable."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except FileExistsError as exc:
            raise RegistryUnavailableError(f"registry path {self.root} is not a directory") from exc
        except OSError as exc:
            raise RegistryUnavailableError(f"cannot create registry directory {self.root}: {exc}") from exc
        if not self.root.is_dir():
            raise RegistryUnavailableError(f"registry path {self.root} is not a directory")
        probe = self.root / f"{TMP_PREFIX}probe-{uuid.uuid4().hex}"
        try:
            _write_file_synced(probe, b"ok")
            probe.unlink()
        except OSError as exc:
            raise RegistryUnavailableError(f"registry directory {self.root} is not writable: {exc}") from exc

    def cleanup_temp(self, min_age: float = 0.0) -> int:
        """Remove abandoned ``.tmp-*`` entries (root and model dirs); returns how many were removed.

        Entries flocked by a live writer in any process are kept, so every worker may call this at
        start-up. ``min_age`` (seconds) additionally keeps entries modified more recently.
        """
        removed = self._reap(self.root, min_age)
        try:
            names = [e.name for e in os.scandir(self.root) if e.is_dir(follow_symlinks=False)]
        except OSError:
            return removed
        for name in names:
            if _NAME_RE.fullmatch(name):
                removed += self._reap(self.root / name, min_age)
        return removed

    def stats(self) -> dict[str, int]:
        """Cache counters for monitoring: hits, misses, loads (artefacts unpickled), evictions, ..."""
        with self._lock:
            return {**self._counters, "cached": len(self._cache), "cache_size": self.cache_size}

    def clear_cache(self) -> None:
        """Drop every cached model (counters are kept)."""
        with self._lock:
            self._cache.clear()
            self._fresh.clear()

    # ------------------------------------------------------------------ internals: locking & state

    @contextlib.contextmanager
    def _model_lock(self, name: str) -> Iterator[None]:
        """Exclusive per-model flock; serialises writers across threads and processes."""
        fd = os.open(self.root / name / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the flock

    @contextlib.contextmanager
    def _locked_state(self, name: str) -> Iterator[dict[str, Any]]:
        """Yield a fresh copy of the state under the model lock; write it back if the block succeeds."""
        try:
            with self._model_lock(name):
                state = self._read_state_file(name)
                yield state
                self._write_state(name, state)
        except OSError as exc:
            raise RegistryUnavailableError(f"cannot update model {name!r}: {exc}") from exc

    def _require_model_dir(self, name: str) -> None:
        if not (self.root / name).is_dir():
            raise NotFoundError(f"model {name!r} not found", details={"name": name})

    def _read_state_file(self, name: str) -> dict[str, Any]:
        """Parse and validate model.json; a missing file is an empty state."""
        path = self.root / name / STATE_FILE
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return {"next_version": 1, "aliases": {}, "thresholds": {}}
        try:
            data = json.loads(raw)
            state = {
                "next_version": data["next_version"],
                "aliases": dict(data.get("aliases", {})),
                "thresholds": {str(k): float(t) for k, t in data.get("thresholds", {}).items()},
            }
            ok = (
                type(state["next_version"]) is int
                and state["next_version"] >= 1
                and all(_ALIAS_RE.fullmatch(a) and type(v) is int for a, v in state["aliases"].items())
            )
        except (ValueError, TypeError, KeyError, AttributeError):
            ok = False
        if not ok:
            raise IntegrityError(f"state file {path} of model {name!r} is corrupt", details={"name": name})
        return state

    def _write_state(self, name: str, state: dict[str, Any]) -> None:
        """Atomically replace model.json (caller holds the model lock) and refresh our cache of it."""
        model_dir = self.root / name
        tmp, fd = _make_locked_temp(model_dir, "state-", directory=False)
        try:
            _write_fd(fd, _dumps(state))
            os.fsync(fd)
            os.replace(tmp, model_dir / STATE_FILE)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        finally:
            os.close(fd)
        _fsync_dir(model_dir)
        sig = _sig(os.stat(model_dir / STATE_FILE))
        with self._lock:
            self._states[name] = (sig, state)
            self._fresh.clear()  # this instance's own writes show at once

    def _state(self, name: str) -> dict[str, Any]:
        """State of ``name``, re-read only when model.json's stat signature changed. Do not mutate."""
        path = self.root / name / STATE_FILE
        try:
            sig = _sig(os.stat(path))
        except FileNotFoundError:
            return {"next_version": 1, "aliases": {}, "thresholds": {}}
        except OSError as exc:
            raise RegistryUnavailableError(f"cannot read {path}: {exc}") from exc
        with self._lock:
            cached = self._states.get(name)
        if cached is not None and cached[0] == sig:
            return cached[1]
        # stat before read: if the file changes in between we cache newer content under an older
        # signature, which only costs one extra read next time.
        state = self._read_state_file(name)
        with self._lock:
            self._states[name] = (sig, state)
        return state

    # ------------------------------------------------------------------ internals: versions

    def _scan_versions(self, name: str) -> tuple[int, ...]:
        try:
            with os.scandir(self.root / name) as it:
                found = [
                    int(e.name)
                    for e in it
                    if _VERSION_DIR_RE.fullmatch(e.name) and e.is_dir(follow_symlinks=False)
                ]
        except (FileNotFoundError, NotADirectoryError):
            return ()
        return tuple(sorted(found))

    def _versions(self, name: str, *, fresh: bool) -> tuple[int, ...]:
        """Sorted existing versions; cached on (model.json, model dir) stat signatures.

        Every save/delete rewrites model.json after renaming, so a new/removed version always
        changes the key even if the directory mtime granularity hides it.
        """
        model_dir = self.root / name
        try:
            key: tuple[Any, ...] = (_sig(os.stat(model_dir)), self._state_sig(name))
        except FileNotFoundError:
            return ()
        if not fresh:
            with self._lock:
                cached = self._listings.get(name)
            if cached is not None and cached[0] == key:
                return cached[1]
        versions = self._scan_versions(name)
        with self._lock:
            self._listings[name] = (key, versions)
        return versions

    def _state_sig(self, name: str) -> _StatSig | None:
        try:
            return _sig(os.stat(self.root / name / STATE_FILE))
        except FileNotFoundError:
            return None

    def _version_exists(self, name: str, v: int) -> bool:
        return os.path.isdir(self.root / name / str(v))

    def _resolve_in(self, name: str, version: int | str | None, state: dict[str, Any], *, fresh: bool) -> int:
        """Resolve ``version`` against ``state`` (see :meth:`resolve`)."""
        if version is None:
            v = state["aliases"].get(PRODUCTION_ALIAS)
            if v is None:
                versions = self._versions(name, fresh=fresh)
                if not versions:
                    raise NotFoundError(f"model {name!r} not found", details={"name": name})
                return versions[-1]
        elif isinstance(version, bool):
            raise InvalidInputError(f"invalid version {version!r}", details={"value": repr(version)})
        elif isinstance(version, int):
            v = version
        elif isinstance(version, str) and _DIGITS_RE.fullmatch(version):
            if len(version) > 18:  # beyond any version this registry can have (and int() refuses 4300+ digits)
                self._require_model_dir(name)
                raise NotFoundError(f"model {name!r} has no version {version[:30]}...",
                                    details={"name": name, "version": version[:30]})
            v = int(version)
        elif isinstance(version, str):
            if version not in state["aliases"]:
                self._require_model_dir(name)
                raise NotFoundError(
                    f"alias {version!r} not found for model {name!r}",
                    details={"name": name, "alias": version},
                )
            v = state["aliases"][version]
        else:
            raise InvalidInputError(
                f"invalid version {version!r}: expected a version number, an alias or None",
                details={"value": repr(version)},
            )
        if v < 1 or not self._version_exists(name, v):
            self._require_model_dir(name)
            raise NotFoundError(
                f"model {name!r} has no version {v}", details={"name": name, "version": v}
            )
        return v

    # ------------------------------------------------------------------ internals: artefacts & cache

    def _read_metadata(self, name: str, v: int) -> dict[str, Any]:
        """Read and sanity-check metadata.json of a version (IntegrityError if it does not fit)."""
        path = self.root / name / str(v) / METADATA_FILE
        try:
            raw = path.read_bytes()
        except FileNotFoundError as exc:
            if not self._version_exists(name, v):
                raise NotFoundError(f"model {name!r} has no version {v}",
                                    details={"name": name, "version": v}) from exc
            raise IntegrityError(f"{path} is missing", details={"name": name, "version": v}) from exc
        try:
            meta = json.loads(raw)
        except ValueError as exc:
            raise IntegrityError(f"{path} is not valid JSON", details={"name": name, "version": v}) from exc
        problems = []
        if not isinstance(meta, dict):
            problems.append("not a JSON object")
        else:
            if meta.get("name") != name:
                problems.append(f"name is {meta.get('name')!r}, expected {name!r}")
            if meta.get("version") != v or isinstance(meta.get("version"), bool):
                problems.append(f"version is {meta.get('version')!r}, expected {v}")
            if meta.get("artefact") != ARTEFACT_FILE:
                problems.append(f"artefact is {meta.get('artefact')!r}, expected {ARTEFACT_FILE!r}")
            if not isinstance(meta.get("sha256"), str) or not _SHA256_RE.fullmatch(meta["sha256"]):
                problems.append("sha256 is missing or malformed")
            if self.metadata_validator is not None:
                problems.extend(self.metadata_validator(meta))
        if problems:
            raise IntegrityError(
                f"metadata of model {name!r} version {v} does not match its location: {'; '.join(problems)}",
                details={"name": name, "version": v, "problems": problems},
            )
        return meta

    def _read_verified(self, name: str, v: int) -> _CacheEntry:
        """Check metadata and sha256, and only then unpickle the exact bytes that were hashed."""
        vdir = self.root / name / str(v)
        try:
            dst = os.stat(vdir)
            meta = self._read_metadata(name, v)
            data = (vdir / ARTEFACT_FILE).read_bytes()
        except IntegrityError:
            self._count("integrity_failures")
            raise
        except FileNotFoundError as exc:
            if not self._version_exists(name, v):
                raise NotFoundError(f"model {name!r} has no version {v}",
                                    details={"name": name, "version": v}) from exc
            self._count("integrity_failures")
            raise IntegrityError(f"artefact of model {name!r} version {v} is missing",
                                 details={"name": name, "version": v}) from exc
        except (IsADirectoryError, NotADirectoryError) as exc:
            self._count("integrity_failures")
            raise IntegrityError(f"artefact of model {name!r} version {v} is not a file",
                                 details={"name": name, "version": v}) from exc
        except OSError as exc:
            raise RegistryUnavailableError(f"cannot read model {name!r} version {v}: {exc}") from exc
        actual = hashlib.sha256(data).hexdigest()
        if actual != meta["sha256"]:
            self._count("integrity_failures")
            raise IntegrityError(
                f"artefact of model {name!r} version {v} fails its checksum (sha256 {actual} != recorded "
                f"{meta['sha256']}); refusing to load it",
                details={"name": name, "version": v, "expected_sha256": meta["sha256"],
                         "actual_sha256": actual},
            )
        model = joblib.load(io.BytesIO(data))
        self._count("loads")
        return _CacheEntry(model=model, metadata=meta, dir_sig=(dst.st_ino, dst.st_mtime_ns))

    def _cached(self, key: tuple[str, int], *, count: bool) -> _CacheEntry | None:
        """Cache lookup that drops the entry if the version dir vanished or was replaced."""
        with self._lock:
            entry = self._cache.get(key)
        if entry is None:
            if count:
                self._count("misses")
            return None
        try:
            st = os.stat(self.root / key[0] / str(key[1]))
            alive = (st.st_ino, st.st_mtime_ns) == entry.dir_sig
        except OSError:
            alive = False
        with self._lock:
            if not alive:
                if self._cache.get(key) is entry:
                    del self._cache[key]
            else:
                if key in self._cache:
                    self._cache.move_to_end(key)
                if count:
                    self._bump("hits")
        if not alive:
            if count:
                self._count("misses")
            return None
        return entry

    def _remember(self, key: tuple[str, int], entry: _CacheEntry) -> None:
        if self.cache_size == 0:
            return
        with self._lock:
            self._cache[key] = entry
            self._cache.move_to_end(key)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
                self._bump("evictions")
            self._bump("cached", 0)

    def _count(self, counter: str) -> None:
        with self._lock:
            self._bump(counter)

    def _bump(self, counter: str, n: int = 1) -> None:
        """Count an event (caller holds the lock) and tell the observer, if any (e.g. Prometheus)."""
        if n:
            self._counters[counter] += n
        if self.observer is not None:
            self.observer(counter, n, len(self._cache))

    @staticmethod
    def _decorate(meta: dict[str, Any], v: int, state: dict[str, Any]) -> dict[str, Any]:
        return {
            **meta,
            "aliases": sorted(a for a, av in state["aliases"].items() if av == v),
            "threshold": state["thresholds"].get(str(v)),
        }

    # ------------------------------------------------------------------ internals: temp cleanup

    def _reap(self, parent: Path, min_age: float) -> int:
        """Remove ``.tmp-*`` entries directly under ``parent`` that no live process holds locked."""
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
