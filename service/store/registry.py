"""The on-disk model registry: named models with immutable, numbered versions, aliases and thresholds.

Layout under ``root``::

    <root>/<name>/<version>/model.joblib     the pickled model (joblib)
    <root>/<name>/<version>/metadata.json    a VersionMetadata record (service.domain), sha256 of the artefact
    <root>/<name>/model.json                 a RegistryState record: next_version, aliases, thresholds
    <root>/<name>/.lock                      flock serialising the writers of that model

Why it is crash- and concurrency-safe:

* A version is built in a private ``.tmp-<uuid>`` directory and published with one ``rename`` while
  the model's flock is held, so readers (which take no lock) see a whole version or none.
* ``model.json`` is only replaced atomically (:func:`service.store.atomic.replace_file`).
* Version numbers come from ``max(next_version, highest existing version + 1)`` under the lock, so
  they are never reused, even after deletes or a lost state file (unless the highest one is deleted
  *and* the state file is lost).
* Temporary entries are flocked while in use, so :meth:`ModelRegistry.cleanup_temp` (called at start-up by
  every worker and replica) removes only abandoned ones.
* Artefacts are unpickled only after their sha256 matches ``metadata.json``, the metadata is a valid
  :class:`~service.domain.VersionMetadata` and its name and version match the path: joblib runs pickle,
  so only files this service wrote are loaded.

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
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import joblib
from pydantic import ValidationError

from ..domain import (
    PRODUCTION_ALIAS,
    STATE_FIELDS,
    SYSTEM_FIELDS,
    TMP_PREFIX,
    RegistryState,
    VersionMetadata,
    is_model_name,
    utc_now,
    validate_alias,
    validate_model_name,
)
from ..errors import (
    ConflictError,
    IntegrityError,
    InvalidInputError,
    LogregError,
    NotFoundError,
    RegistryUnavailableError,
)
from .atomic import (
    file_lock,
    fsync_dir,
    json_bytes,
    make_locked_temp,
    reap_temp,
    replace_file,
    write_new_file,
)
from .cache import CacheEntry, LoadedModel, StatKeyed, VersionCache

__all__ = ["ARTEFACT_FILE", "METADATA_FILE", "STATE_FILE", "LoadedModel", "ModelRegistry"]

ARTEFACT_FILE = "model.joblib"
METADATA_FILE = "metadata.json"
STATE_FILE = "model.json"
LOCK_FILE = ".lock"
#: Abandoned temp entries older than this are reaped opportunistically on every save.
TEMP_MAX_AGE_SECONDS = 3600.0

_VERSION_DIR_RE = re.compile(r"[1-9][0-9]*")
_DIGITS_RE = re.compile(r"[0-9]+")
_LOAD_LOCK_STRIPES = 16

_StatSig = tuple[int, int, int, int]


def _stat_sig(st: os.stat_result) -> _StatSig:
    return (st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size)


class ModelRegistry:
    """Versioned, aliased model store on a (possibly shared) directory.

    Writers serialise per model on ``<root>/<name>/.lock`` (fcntl.flock, which also excludes other
    threads because each call opens its own file description). Readers take no lock; they rely on
    atomic renames, and re-read ``model.json`` only when its stat signature changed, so versions,
    aliases and thresholds changed by another process are seen immediately.
    """

    def __init__(self, root: Path | str, cache_size: int = 16, recheck_seconds: float = 0.0) -> None:
        """Open (and create if possible) the registry at ``root``.

        ``cache_size`` bounds the in-memory LRU of loaded versions (0 disables it). ``recheck_seconds``:
        how long a resolved ``load`` may be served without looking at the disk again (0: always look), so
        the prediction hot path makes no system call; changes by other processes show within that time, and
        this instance's own writes for every load that starts after the write returned.
        """
        if isinstance(cache_size, bool) or not isinstance(cache_size, int) or cache_size < 0:
            raise InvalidInputError(f"cache_size must be an int >= 0, got {cache_size!r}")
        self.root = Path(root)
        with contextlib.suppress(OSError):
            self.root.mkdir(parents=True, exist_ok=True)
        self.cache = VersionCache(cache_size, float(recheck_seconds))
        self._load_locks = [threading.Lock() for _ in range(_LOAD_LOCK_STRIPES)]
        self._states: StatKeyed[RegistryState] = StatKeyed()  # model.json of each model
        self._listings: StatKeyed[tuple[int, ...]] = StatKeyed()  # the version directories of each model

    @property
    def cache_size(self) -> int:
        return self.cache.size

    # ------------------------------------------------------------------ writes

    def save(self, name: str, model: Any, metadata: Mapping[str, Any],
             check: Callable[[], None] | None = None) -> VersionMetadata:
        """Store ``model`` as the next version of ``name`` and return its stored metadata.

        The system fields name/version/created_at/sha256/artefact override same-named keys of ``metadata``;
        ``aliases`` and ``threshold`` belong to the model's state and are not stored with the version.
        Everything is written before the model's lock is taken, under the version number the next one is
        likely to get; the lock covers only choosing the number (the record is written again in the rare
        case another process took it meanwhile) and the rename that publishes the version. ``check`` is
        called once the files are written, before the lock: raising there (a time limit) stores nothing.
        """
        name = validate_model_name(name)
        if not isinstance(metadata, Mapping):
            raise InvalidInputError("metadata must be a mapping", details={"type": type(metadata).__name__})
        try:
            user_meta = json_bytes({str(k): v for k, v in metadata.items()
                                    if k not in SYSTEM_FIELDS and k not in STATE_FIELDS})
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(f"metadata is not JSON-serialisable: {exc}") from exc
        model_dir = self.root / name
        try:
            model_dir.mkdir(parents=True, exist_ok=True)
            reap_temp(model_dir, TEMP_MAX_AGE_SECONDS)
            tmp, tmp_fd = make_locked_temp(model_dir, "", directory=True)
            committed = False
            try:
                artefact = tmp / ARTEFACT_FILE
                with open(artefact, "wb") as fh:
                    joblib.dump(model, fh)
                    fh.flush()
                    os.fsync(fh.fileno())
                digest = hashlib.sha256(artefact.read_bytes()).hexdigest()
                fields = json.loads(user_meta)
                guess = self._next_version(name)
                stored = self._write_record(tmp, fields, name, guess, digest)
                os.fsync(tmp_fd)
                if check is not None:
                    check()
                with self._model_lock(name):
                    version = self._next_version(name)
                    if version != guess:  # another process stored a version meanwhile
                        stored = self._write_record(tmp, fields, name, version, digest)
                        os.fsync(tmp_fd)
                    self._before_publish()
                    os.rename(tmp, model_dir / str(version))
                    committed = True
                    fsync_dir(model_dir)
                    state = self._read_state_file(name)
                    state.next_version = version + 1
                    self._write_state(name, state)
            finally:
                os.close(tmp_fd)
                if not committed:
                    shutil.rmtree(tmp, ignore_errors=True)
        except OSError as exc:
            raise RegistryUnavailableError(f"cannot write model {name!r} to the registry: {exc}") from exc
        return stored

    def _next_version(self, name: str) -> int:
        """The number the next version of ``name`` gets (final only under the model's lock)."""
        state = self._read_state_file(name)
        existing = self._scan_versions(name)
        return max(state.next_version, existing[-1] + 1 if existing else 1)

    def _write_record(self, directory: Path, fields: dict[str, Any], name: str, version: int,
                      digest: str) -> VersionMetadata:
        stored = self._record(fields, name, version, digest)
        path = directory / METADATA_FILE
        path.unlink(missing_ok=True)
        write_new_file(path, json_bytes(stored.model_dump(mode="json", exclude_unset=True)))
        return stored

    @staticmethod
    def _record(user_fields: dict[str, Any], name: str, version: int, digest: str) -> VersionMetadata:
        """The version's record: the caller's fields (as JSON reads them back) plus the system fields."""
        fields = {**user_fields, "name": name, "version": version, "created_at": utc_now(),
                  "sha256": digest, "artefact": ARTEFACT_FILE}
        try:
            return VersionMetadata.model_validate(fields)
        except ValidationError as exc:
            raise InvalidInputError(f"metadata does not fit a version's record: {_problems(exc)}") from None

    def _before_publish(self) -> None:
        """The moment a version is complete on disk but not yet visible (a subclass may wait here)."""

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
                pointing = sorted(a for a, av in state.aliases.items() if av == v)
                if pointing:
                    raise ConflictError(
                        f"version {v} of model {name!r} is referenced by alias(es) "
                        f"{', '.join(repr(a) for a in pointing)}; move or delete them first",
                        details={"name": name, "version": v, "aliases": pointing},
                    )
                if state.next_version <= v:  # a crash left it stale: persist it before v disappears
                    state.next_version = v + 1
                    self._write_state(name, state)
                vdir = model_dir / str(v)
                dfd = os.open(vdir, os.O_RDONLY | os.O_DIRECTORY)
                try:
                    fcntl.flock(dfd, fcntl.LOCK_EX)  # mark it in use so cleanup_temp leaves it to us
                    doomed = model_dir / f"{TMP_PREFIX}deleted-{v}-{uuid.uuid4().hex}"
                    os.rename(vdir, doomed)
                    fsync_dir(model_dir)
                    state.thresholds.pop(str(v), None)
                    state.next_version = max(state.next_version, v + 1)
                    self._write_state(name, state)
                    shutil.rmtree(doomed, ignore_errors=True)
                finally:
                    os.close(dfd)
        except OSError as exc:
            raise RegistryUnavailableError(f"cannot delete {name!r} version {version!r}: {exc}") from exc
        self.cache.drop((name, v))

    def set_alias(self, name: str, alias: str, version: int | str) -> dict[str, Any]:
        """Point ``alias`` at ``version`` (an int, digit string or another alias); returns the change."""
        name = validate_model_name(name)
        alias = validate_alias(alias)
        if version is None:
            raise InvalidInputError("set_alias needs an explicit version or alias")
        self._require_model_dir(name)
        with self._locked_state(name) as state:
            v = self._resolve_in(name, version, state, fresh=True)
            previous = state.aliases.get(alias)
            state.aliases[alias] = v
        return {"name": name, "alias": alias, "version": v, "previous_version": previous}

    def delete_alias(self, name: str, alias: str) -> None:
        """Remove ``alias`` from model ``name`` (NotFoundError if it is not set)."""
        name = validate_model_name(name)
        alias = validate_alias(alias)
        self._require_model_dir(name)
        with self._locked_state(name) as state:
            if alias not in state.aliases:
                raise NotFoundError(
                    f"alias {alias!r} not found for model {name!r}", details={"name": name, "alias": alias}
                )
            del state.aliases[alias]

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
                state.thresholds.pop(str(v), None)
            else:
                state.thresholds[str(v)] = threshold
        return {"name": name, "version": v, "threshold": threshold}

    # ------------------------------------------------------------------ reads

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
        loaded = self.cache.resolved(ref)
        if loaded is not None:
            return loaded
        loaded = self._load_checked(name, version)
        self.cache.remember_resolved(ref, loaded)
        return loaded

    def loaded_in_memory(self, name: str, version: int | str | None = None) -> LoadedModel | None:
        """``load(name, version)`` when the version it resolves to is already in memory: no system call within
        ``recheck_seconds`` of the last resolution, else a few stat calls (``model.json`` re-read only when it
        changed); None when an artefact must be read (or anything is amiss), which ``load`` then does."""
        ref = (name, version)
        loaded = self.cache.resolved(ref)
        if loaded is not None:
            return loaded
        try:
            loaded = self._load_once(validate_model_name(name), version, read=False)
        except LogregError:
            return None  # load says what is wrong, in full
        if loaded is not None:
            self.cache.remember_resolved(ref, loaded)
        return loaded

    def _load_checked(self, name: str, version: int | str | None) -> LoadedModel:
        """``load`` without the short-lived map: resolve against the disk's current state."""
        name = validate_model_name(name)
        indirect = version is None or (isinstance(version, str) and not _DIGITS_RE.fullmatch(version))
        for attempt in range(3):
            try:
                loaded = self._load_once(name, version)
                assert loaded is not None  # read=True: never None
                return loaded
            except NotFoundError as exc:
                vanished = isinstance(exc.details, dict) and "version" in exc.details
                if not (indirect and vanished) or attempt == 2:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _load_once(self, name: str, version: int | str | None, *, read: bool = True) -> LoadedModel | None:
        """One resolve + cache lookup, and on a miss the verified unpickle (deduplicated across threads); with
        ``read=False`` a miss is None instead (and is not counted: the ``load`` that follows counts it)."""
        state = self._state(name)
        v = self._resolve_in(name, version, state, fresh=False)
        key = (name, v)
        entry = self.cache.get(key, self._alive, count=read)
        if entry is None:
            if not read:
                return None
            with self._load_locks[hash(key) % _LOAD_LOCK_STRIPES]:
                entry = self.cache.get(key, self._alive, count=False)  # another thread may have loaded it
                if entry is None:
                    entry = self._read_verified(name, v)
                    self.cache.put(key, entry)
        elif not read:
            self.cache.count("hits")
        metadata = entry.metadata.model_copy(update=self._state_fields(v, state))
        return LoadedModel(name=name, version=v, model=entry.model, metadata=metadata,
                           threshold=state.thresholds.get(str(v)))

    def _alive(self, entry: CacheEntry) -> bool:
        """Whether a cached version's directory is still the one it was read from."""
        try:
            st = os.stat(self.root / entry.metadata.name / str(entry.metadata.version))
        except OSError:
            return False
        return (st.st_ino, st.st_mtime_ns) == entry.dir_sig

    def metadata(self, name: str, version: int | str | None = None) -> VersionMetadata:
        """One version's metadata plus its aliases and threshold (no sha256 check)."""
        name = validate_model_name(name)
        state = self._state(name)
        v = self._resolve_in(name, version, state, fresh=False)
        return self._read_metadata(name, v).model_copy(update=self._state_fields(v, state))

    def list_versions(self, name: str) -> list[dict[str, Any]]:
        """Every version's card (sorted by version) plus its aliases and threshold.

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
                out.append(self._read_metadata(name, v).model_copy(update=self._state_fields(v, state)).card())
            except NotFoundError:
                continue  # deleted concurrently
            except IntegrityError as exc:
                out.append({"name": name, "version": v, "integrity_error": exc.message, **self._state_fields(v, state)})
        return out

    def list_models(self) -> list[dict[str, Any]]:
        """All models with at least one version, sorted by name."""
        try:
            entries = sorted(e.name for e in os.scandir(self.root) if e.is_dir(follow_symlinks=False))
        except OSError as exc:
            raise RegistryUnavailableError(f"cannot list registry {self.root}: {exc}") from exc
        out = []
        for name in entries:
            if not is_model_name(name):
                continue
            versions = self._versions(name, fresh=True)
            if not versions:
                continue
            entry: dict[str, Any] = {"name": name, "latest_version": versions[-1], "versions": list(versions)}
            try:
                entry["aliases"] = dict(self._state(name).aliases)
            except IntegrityError as exc:  # one corrupt model must not hide the others
                entry["aliases"] = {}
                entry["integrity_error"] = exc.message
            out.append(entry)
        return out

    # ------------------------------------------------------------------ operations

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
            write_new_file(probe, b"ok")
        except OSError as exc:
            raise RegistryUnavailableError(f"registry directory {self.root} is not writable: {exc}") from exc
        finally:
            with contextlib.suppress(OSError):
                probe.unlink()

    def cleanup_temp(self, min_age: float = 0.0) -> int:
        """Remove abandoned ``.tmp-*`` entries (root and model dirs); returns how many were removed.

        Entries flocked by a live writer in any process are kept, so every worker may call this at
        start-up. ``min_age`` (seconds) additionally keeps entries modified more recently.
        """
        removed = reap_temp(self.root, min_age)
        try:
            names = [e.name for e in os.scandir(self.root) if e.is_dir(follow_symlinks=False)]
        except OSError:
            return removed
        for name in names:
            if is_model_name(name):
                removed += reap_temp(self.root / name, min_age)
        return removed

    def stats(self) -> dict[str, int]:
        """Cache counters for monitoring: hits, misses, loads (artefacts unpickled), evictions, ..."""
        return self.cache.stats()

    # ------------------------------------------------------------------ internals: locking & state

    @contextlib.contextmanager
    def _model_lock(self, name: str) -> Iterator[None]:
        """Exclusive per-model flock; serialises writers across threads and processes."""
        with file_lock(self.root / name / LOCK_FILE):
            yield

    @contextlib.contextmanager
    def _locked_state(self, name: str) -> Iterator[RegistryState]:
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

    def _read_state_file(self, name: str) -> RegistryState:
        """Parse and validate model.json; a missing file is an empty state."""
        path = self.root / name / STATE_FILE
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return RegistryState()
        try:
            return RegistryState.model_validate_json(raw)
        except ValidationError:
            raise IntegrityError(f"state file {path} of model {name!r} is corrupt", details={"name": name}) from None

    def _write_state(self, name: str, state: RegistryState) -> None:
        """Atomically replace model.json (caller holds the model lock) and refresh our cache of it."""
        path = self.root / name / STATE_FILE
        replace_file(path, json_bytes(state.model_dump(mode="json")))
        self._states.put(name, _stat_sig(os.stat(path)), state.model_copy(deep=True))
        self.cache.forget_resolved()  # this instance's own writes show at once

    def _state(self, name: str) -> RegistryState:
        """State of ``name``, re-read only when model.json's stat signature changed. Do not mutate."""
        path = self.root / name / STATE_FILE
        try:
            sig = _stat_sig(os.stat(path))
        except FileNotFoundError:
            return RegistryState()
        except OSError as exc:
            raise RegistryUnavailableError(f"cannot read {path}: {exc}") from exc
        # stat before read: if the file changes in between we cache newer content under an older
        # signature, which only costs one extra read next time.
        return self._states.get(name, sig, lambda: self._read_state_file(name))

    @staticmethod
    def _state_fields(v: int, state: RegistryState) -> dict[str, Any]:
        """The fields of a version's record that come from the model's state."""
        return {"aliases": sorted(a for a, av in state.aliases.items() if av == v),
                "threshold": state.thresholds.get(str(v))}

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
            key: tuple[Any, ...] = (_stat_sig(os.stat(model_dir)), self._state_sig(name))
        except FileNotFoundError:
            return ()
        if fresh:
            versions = self._scan_versions(name)
            self._listings.put(name, key, versions)
            return versions
        return self._listings.get(name, key, lambda: self._scan_versions(name))

    def _state_sig(self, name: str) -> _StatSig | None:
        try:
            return _stat_sig(os.stat(self.root / name / STATE_FILE))
        except FileNotFoundError:
            return None

    def _version_exists(self, name: str, v: int) -> bool:
        return os.path.isdir(self.root / name / str(v))

    def _resolve_in(self, name: str, version: int | str | None, state: RegistryState, *, fresh: bool) -> int:
        """Resolve ``version`` against ``state`` (see :meth:`resolve`)."""
        if version is None:
            v = state.aliases.get(PRODUCTION_ALIAS)
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
            if version not in state.aliases:
                self._require_model_dir(name)
                raise NotFoundError(
                    f"alias {version!r} not found for model {name!r}",
                    details={"name": name, "alias": version},
                )
            v = state.aliases[version]
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

    # ------------------------------------------------------------------ internals: artefacts

    def _read_metadata(self, name: str, v: int) -> VersionMetadata:
        """Read and check metadata.json of a version (IntegrityError if it does not fit its record or path)."""
        path = self.root / name / str(v) / METADATA_FILE
        try:
            raw = path.read_bytes()
        except FileNotFoundError as exc:
            if not self._version_exists(name, v):
                raise NotFoundError(f"model {name!r} has no version {v}",
                                    details={"name": name, "version": v}) from exc
            raise IntegrityError(f"{path} is missing", details={"name": name, "version": v}) from exc
        problems: list[str] = []
        meta = None
        try:
            meta = VersionMetadata.model_validate_json(raw)
        except ValidationError as exc:
            problems = _problems(exc)
        if meta is not None:
            if meta.name != name:
                problems.append(f"name is {meta.name!r}, expected {name!r}")
            if meta.version != v:
                problems.append(f"version is {meta.version!r}, expected {v}")
            if meta.artefact != ARTEFACT_FILE:
                problems.append(f"artefact is {meta.artefact!r}, expected {ARTEFACT_FILE!r}")
        if problems or meta is None:
            raise IntegrityError(
                f"metadata of model {name!r} version {v} does not match its location: {'; '.join(problems)}",
                details={"name": name, "version": v, "problems": problems},
            )
        return meta

    def _read_verified(self, name: str, v: int) -> CacheEntry:
        """Check metadata and sha256, and only then unpickle the exact bytes that were hashed."""
        vdir = self.root / name / str(v)
        try:
            dst = os.stat(vdir)
            meta = self._read_metadata(name, v)
            data = (vdir / ARTEFACT_FILE).read_bytes()
        except IntegrityError:
            self.cache.count("integrity_failures")
            raise
        except FileNotFoundError as exc:
            if not self._version_exists(name, v):
                raise NotFoundError(f"model {name!r} has no version {v}",
                                    details={"name": name, "version": v}) from exc
            self.cache.count("integrity_failures")
            raise IntegrityError(f"artefact of model {name!r} version {v} is missing",
                                 details={"name": name, "version": v}) from exc
        except (IsADirectoryError, NotADirectoryError) as exc:
            self.cache.count("integrity_failures")
            raise IntegrityError(f"artefact of model {name!r} version {v} is not a file",
                                 details={"name": name, "version": v}) from exc
        except OSError as exc:
            raise RegistryUnavailableError(f"cannot read model {name!r} version {v}: {exc}") from exc
        actual = hashlib.sha256(data).hexdigest()
        if actual != meta.sha256:
            self.cache.count("integrity_failures")
            raise IntegrityError(
                f"artefact of model {name!r} version {v} fails its checksum (sha256 {actual} != recorded "
                f"{meta.sha256}); refusing to load it",
                details={"name": name, "version": v, "expected_sha256": meta.sha256, "actual_sha256": actual},
            )
        model = joblib.load(io.BytesIO(data))
        self.cache.count("loads")
        return CacheEntry(model=model, metadata=meta, dir_sig=(dst.st_ino, dst.st_mtime_ns))


def _problems(exc: ValidationError) -> list[str]:
    """pydantic's errors as short sentences: ``field.path: message``."""
    return [f"{'.'.join(map(str, e['loc'])) or 'record'}: {e['msg']}" for e in exc.errors(include_url=False)]
