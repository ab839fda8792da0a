"""The on-disk model registry: named models with immutable, numbered versions, aliases and thresholds.

Layout under ``root``::

    <root>/<name>/<version>/model.joblib     the model, in joblib's format (service.store.artefact)
    <root>/<name>/<version>/metadata.json    a VersionMetadata record (service.domain): sha256 of the artefact,
                                             checksum (and signature) of the version's manifest
    <root>/<name>/model.json                 a RegistryState record: next_version, aliases, thresholds,
                                             with its own checksum (and signature)
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

What is checked before a version serves (each failure is an :class:`~service.errors.IntegrityError`, a 409):

1. ``model.json``, whenever it is read (to resolve an alias or the default version, for a threshold, and
   before any write): its schema, its checksum and, with a key, its signature.
2. ``metadata.json``: its schema, that its name and version are its path's, then with a key its signature
   and its checksum. The manifest they cover (:mod:`.manifest`) holds the name, version, the artefact's
   sha256 and every field of the record a prediction depends on besides the artefact: ``feature_names``
   (which order a request's columns), ``classes``, ``encoding``, ``calibration``, ``params``.
3. The artefact's bytes against the sha256; only then are those exact bytes unpickled, by the restricted
   unpickler of :mod:`.artefact` (the classes a model is made of, plain numpy arrays, nothing else), and
   the model must fit its record (type, feature count, classes, one finite prediction).

What that protects, without a signing key:

* Corruption and accidental edits of any covered field, artefact, alias or threshold are detected.
* A swapped artefact cannot run code, whatever digests come with it: the unpickler refuses every global
  but a model's classes (``os.system``, ``eval``, ``subprocess`` ... are refused before anything is
  called) and every array of Python objects.
* Not protected: the checksums are plain sha256, so someone who can write the store can still replace a
  whole version (artefact, sha256 and checksum together) or a state file consistently, and it serves.

With a signing key (``signing_key``, ``LOGREG_SIGNING_KEY``):

* Every record and state file written also holds ``signature``, an HMAC-SHA256 of its manifest under the
  key, verified (in constant time) before the artefact is read, and before an alias or a threshold is
  used. So any change to an artefact, its prediction fields, the aliases or the thresholds is
  refused unless made with the key; a version or state file without a signature is refused as unsigned
  (``logreg sign`` signs a store that predates the key, trusting what it finds), and one signed with
  another key as tampered. A record or state file cannot be moved to another model or version number:
  the manifest names them.
* Not protected, even with a key: deleting files (a deleted version is gone; without ``model.json`` a model
  has no aliases or thresholds and its latest version serves), putting back an older signed file of the
  same model (an earlier ``model.json`` restores earlier aliases and thresholds; a deleted version can be
  restored), the fields of a record outside the manifest (description, tags, metrics, the training
  statistics that drift monitoring compares with, the validation sample the threshold tools read), and
  anyone who has the key or can change the service's code, environment or Python packages.

Versions and state files written before checksums existed have neither checksum nor signature: without a
key they are checked as before (schema, path, sha256, and the restricted unpickler); with one they are
refused until signed. A signature present when no key is configured is not checked.

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
from . import artefact, details
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
from .manifest import INTEGRITY_FIELDS, checksum, sign, signature_matches, state_manifest, version_manifest

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

    def __init__(self, root: Path | str, cache_size: int = 16, recheck_seconds: float = 0.0,
                 signing_key: bytes | str | None = None) -> None:
        """Open (and create if possible) the registry at ``root``.

        ``cache_size`` bounds the in-memory LRU of loaded versions (0 disables it). ``recheck_seconds``:
        how long a resolved ``load`` may be served without looking at the disk again (0: always look), so
        the prediction hot path makes no system call; changes by other processes show within that time, and
        this instance's own writes for every load that starts after the write returned. ``signing_key``
        (``LOGREG_SIGNING_KEY``): sign what is written with it, and serve only what it signed (see the
        module docstring).
        """
        if isinstance(cache_size, bool) or not isinstance(cache_size, int) or cache_size < 0:
            raise InvalidInputError(f"cache_size must be an int >= 0, got {cache_size!r}")
        if isinstance(signing_key, str):
            signing_key = signing_key.encode()
        if signing_key is not None and not signing_key:
            raise InvalidInputError("signing_key must not be empty (None: no key)")
        self._key: bytes | None = signing_key
        self.root = Path(root)
        with contextlib.suppress(OSError):
            self.root.mkdir(parents=True, exist_ok=True)
        self.cache = VersionCache(cache_size, float(recheck_seconds))
        self._load_locks = [threading.Lock() for _ in range(_LOAD_LOCK_STRIPES)]
        self._states: StatKeyed[RegistryState] = StatKeyed()  # model.json of each model
        self._listings: StatKeyed[tuple[int, ...]] = StatKeyed()  # the version directories of each model
        self._records: StatKeyed[VersionMetadata] = StatKeyed()  # each version's checked metadata.json
        self._details: StatKeyed[dict[str, Any]] = StatKeyed()  # each version's side file (details.npz)

    @property
    def cache_size(self) -> int:
        return self.cache.size

    @property
    def signed(self) -> bool:
        """Whether this registry signs what it writes and serves only what its key signed."""
        return self._key is not None

    # ------------------------------------------------------------------ writes

    def save(self, name: str, model: Any, metadata: Mapping[str, Any],
             check: Callable[[], None] | None = None) -> VersionMetadata:
        """Store ``model`` as the next version of ``name`` and return its stored metadata.

        The system fields name/version/created_at/sha256/artefact/checksum/signature override same-named keys of
        ``metadata``; ``aliases`` and ``threshold`` belong to the model's state and are not stored with the
        version. ``model`` must be a model the registry can read back (:mod:`.artefact`: a LogisticRegression,
        a CalibratedModel or an EncodedModel that fits the record's classes and feature names), else an
        InvalidInputError and nothing is stored.
        Everything is written before the model's lock is taken, under the version number the next one is
        likely to get; the lock covers only choosing the number (the record is written again in the rare
        case another process took it meanwhile) and the rename that publishes the version. ``check`` is
        called once the files are written, before the lock: raising there (a time limit) stores nothing.
        """
        name = validate_model_name(name)
        if not isinstance(metadata, Mapping):
            raise InvalidInputError("metadata must be a mapping", details={"type": type(metadata).__name__})
        metadata, bulky = details.split(metadata)
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
                buffer = io.BytesIO()
                artefact.dump(model, buffer)
                data = buffer.getvalue()
                del buffer
                digest = hashlib.sha256(data).hexdigest()
                fields = json.loads(user_meta)
                guess = self._next_version(name)
                stored = self._write_record(tmp, fields, name, guess, digest)
                try:  # what would be served must read back through the restricted unpickler
                    artefact.check_model(artefact.load(data), stored.classes, stored.feature_names)
                except artefact.ArtefactError as exc:
                    raise InvalidInputError(f"model {name!r} cannot be stored: {exc}",
                                            details={"name": name, "type": type(model).__name__}) from None
                write_new_file(tmp / ARTEFACT_FILE, data)
                del data
                if bulky:
                    write_new_file(tmp / details.DETAILS_FILE, details.to_bytes(bulky))
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

    def _record(self, user_fields: dict[str, Any], name: str, version: int, digest: str) -> VersionMetadata:
        """The version's record: the caller's fields (as JSON reads them back) plus the system fields, with the
        checksum (and signature) of its manifest."""
        fields = {**user_fields, "name": name, "version": version, "created_at": utc_now(),
                  "sha256": digest, "artefact": ARTEFACT_FILE}
        try:
            record = VersionMetadata.model_validate(fields)
        except ValidationError as exc:
            raise InvalidInputError(f"metadata does not fit a version's record: {_problems(exc)}") from None
        return record.model_copy(update=self._integrity_fields(
            version_manifest(record.model_dump(mode="json", exclude_unset=True))))

    def _integrity_fields(self, manifest: bytes) -> dict[str, str]:
        """``checksum`` of a manifest, and its ``signature`` when there is a key."""
        fields = {"checksum": checksum(manifest)}
        if self._key is not None:
            fields["signature"] = sign(self._key, manifest)
        return fields

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

    def metadata(self, name: str, version: int | str | None = None, *, full: bool = False) -> VersionMetadata:
        """One version's metadata plus its aliases and threshold (its checksum and signature are checked; the
        artefact's sha256 is not: nothing is unpickled). ``full``: with the parts kept in the side file (the
        per-feature training statistics and the validation sample) back in place, read on demand."""
        name = validate_model_name(name)
        state = self._state(name)
        v = self._resolve_in(name, version, state, fresh=False)
        meta = self._read_metadata(name, v)
        if full:
            meta = self._with_details(name, v, meta)
        return meta.model_copy(update=self._state_fields(v, state))

    def _with_details(self, name: str, v: int, meta: VersionMetadata) -> VersionMetadata:
        """``meta`` with its side-file parts joined in (as it is when it has none)."""
        record = meta.model_dump(mode="json", exclude_unset=True)
        if not details.has_details(record):
            return meta
        path = self.root / name / str(v) / details.DETAILS_FILE

        def read() -> dict[str, Any]:
            try:
                return details.from_bytes(path.read_bytes())
            except FileNotFoundError:
                raise IntegrityError(f"{path} is missing", details={"name": name, "version": v}) from None
            except (OSError, ValueError) as exc:
                raise IntegrityError(f"{path} cannot be read: {exc}", details={"name": name, "version": v}) from None

        arrays = self._details.get(f"{name}/{v}", _signature(path), read)
        try:
            return VersionMetadata.model_validate(details.joined(record, meta.feature_names, arrays))
        except (ValidationError, ValueError, KeyError) as exc:
            raise IntegrityError(f"{path} does not fit its version's record: {exc}",
                                 details={"name": name, "version": v}) from None

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

    def sign_store(self) -> dict[str, list[dict[str, Any]]]:
        """Sign every version and state file with this registry's key (``logreg sign``), for a store written
        without a key or under another one; returns what was signed and what was refused, and why.

        It trusts what it finds: a version whose record and artefact are consistent is signed whoever made
        them. It refuses only what is visibly inconsistent: a record that does not fit its schema or path, or
        fails its checksum; an artefact that fails its sha256 or is not a model the restricted unpickler reads.
        Each model is signed under its lock, so writers wait rather than race it.
        """
        key = self._key
        if key is None:
            raise InvalidInputError("no signing key to sign with: set LOGREG_SIGNING_KEY")
        report: dict[str, list[dict[str, Any]]] = {"versions": [], "states": [], "refused": []}
        try:
            names = sorted(e.name for e in os.scandir(self.root) if e.is_dir(follow_symlinks=False))
        except OSError as exc:
            raise RegistryUnavailableError(f"cannot list registry {self.root}: {exc}") from exc
        for name in filter(is_model_name, names):
            try:
                with self._model_lock(name):
                    for v in self._scan_versions(name):
                        try:
                            self._sign_version(name, v, key)
                        except (IntegrityError, NotFoundError) as exc:
                            report["refused"].append({"name": name, "version": v, "reason": exc.message})
                        else:
                            report["versions"].append({"name": name, "version": v})
                    try:
                        state, data = self._parse_state_file(name)
                        if data is not None:
                            self._check_state_checksum(name, data)
                            self._write_state(name, state)
                            report["states"].append({"name": name})
                    except IntegrityError as exc:
                        report["refused"].append({"name": name, "reason": exc.message})
            except OSError as exc:
                raise RegistryUnavailableError(f"cannot sign model {name!r}: {exc}") from exc
        self.cache.forget_resolved()
        return report

    def _sign_version(self, name: str, v: int, key: bytes) -> None:
        """Check one version as far as it can be checked without a key, then write its record signed."""
        meta, record = self._parse_metadata(name, v)
        try:
            manifest = version_manifest(record)
        except ValueError:
            raise IntegrityError(f"metadata of model {name!r} version {v} holds NaN; not signing it") from None
        if meta.checksum is not None and checksum(manifest) != meta.checksum:
            raise IntegrityError(f"metadata of model {name!r} version {v} fails its checksum (changed after it "
                                 "was written); not signing it")
        vdir = self.root / name / str(v)
        try:
            data = (vdir / ARTEFACT_FILE).read_bytes()
        except OSError as exc:
            raise IntegrityError(f"artefact of model {name!r} version {v} cannot be read ({exc}); not signing it"
                                 ) from None
        if hashlib.sha256(data).hexdigest() != meta.sha256:
            raise IntegrityError(f"artefact of model {name!r} version {v} fails its sha256; not signing it")
        try:
            artefact.check_model(artefact.load(data), meta.classes, meta.feature_names)
        except artefact.ArtefactError as exc:
            raise IntegrityError(f"artefact of model {name!r} version {v} is refused: {exc}; not signing it") from None
        signed = {**record, "checksum": checksum(manifest), "signature": sign(key, manifest)}
        if signed != record:
            replace_file(vdir / METADATA_FILE, json_bytes(signed))

    def _check_state_checksum(self, name: str, data: dict[str, Any]) -> None:
        try:
            manifest = state_manifest(name, data)
        except ValueError:
            raise IntegrityError(f"state file of model {name!r} holds NaN; not signing it") from None
        if data.get("checksum") is not None and checksum(manifest) != data["checksum"]:
            raise IntegrityError(f"state file of model {name!r} fails its checksum (changed after it was written); "
                                 "not signing it")

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
        """Parse and check model.json: its checksum (and with a key its signature), then its schema; a missing
        file is an empty state."""
        state, data = self._parse_state_file(name)
        if data is not None:
            self._verify_state(name, data)
        return state

    def _parse_state_file(self, name: str) -> tuple[RegistryState, dict[str, Any] | None]:
        """model.json as a record and as the JSON it holds (None when there is no file)."""
        path = self.root / name / STATE_FILE
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return RegistryState(), None
        try:
            data = json.loads(raw)
            if not isinstance(data, dict):
                raise ValueError("not an object")
            return RegistryState.model_validate(
                {k: val for k, val in data.items() if k not in INTEGRITY_FIELDS}), data
        except (ValueError, ValidationError):  # ValidationError is a ValueError too
            raise IntegrityError(f"state file {path} of model {name!r} is corrupt", details={"name": name}) from None

    def _verify_state(self, name: str, data: dict[str, Any]) -> None:
        """model.json's signature (with a key) and checksum; a file written before checksums has neither."""
        path = self.root / name / STATE_FILE
        try:
            manifest: bytes | None = state_manifest(name, data)
        except ValueError:
            manifest = None
        if self._key is not None:
            if data.get("signature") is None:
                raise IntegrityError(
                    f"state file {path} of model {name!r} is unsigned: its aliases and thresholds were written "
                    "without the signing key (LOGREG_SIGNING_KEY), so they are not used while one is set; "
                    "`logreg sign` signs a store you trust", details={"name": name, "problem": "unsigned"})
            if manifest is None or not signature_matches(self._key, manifest, data["signature"]):
                raise IntegrityError(
                    f"state file {path} of model {name!r} is tampered: its signature does not match its aliases "
                    "and thresholds (changed without the signing key, or signed with another key)",
                    details={"name": name, "problem": "bad_signature"})
        if data.get("checksum") is not None and (manifest is None or checksum(manifest) != data["checksum"]):
            raise IntegrityError(
                f"state file {path} of model {name!r} fails its checksum: its aliases, thresholds or next version "
                "were changed after it was written", details={"name": name, "problem": "bad_checksum"})

    def _write_state(self, name: str, state: RegistryState) -> None:
        """Atomically replace model.json with its checksum (and signature) (caller holds the model lock), and
        refresh our cache of it."""
        path = self.root / name / STATE_FILE
        data = state.model_dump(mode="json")
        data.update(self._integrity_fields(state_manifest(name, data)))
        replace_file(path, json_bytes(data))
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
        """Read and check metadata.json of a version: it fits its record and its path, and its checksum (and
        with a key its signature) matches; else an IntegrityError. Kept per version while the file's stat
        signature stays the same (a version's record is written once; an edit changes its signature)."""
        path = self.root / name / str(v) / METADATA_FILE

        def read() -> VersionMetadata:
            meta, record = self._parse_metadata(name, v)
            self._verify_record(name, v, meta, record)
            return meta

        return self._records.get(f"{name}/{v}", _signature(path), read)

    def _parse_metadata(self, name: str, v: int) -> tuple[VersionMetadata, dict[str, Any]]:
        """metadata.json of a version as a record and as the JSON it holds, if it fits its schema and path."""
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
            record = json.loads(raw)
        except ValueError as exc:  # not JSON, or not UTF-8
            problems = [f"record: not JSON ({exc})"]
        else:
            try:
                meta = VersionMetadata.model_validate(record)
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
        return meta, record

    def _verify_record(self, name: str, v: int, meta: VersionMetadata, record: dict[str, Any]) -> None:
        """The record's signature (with a key) and checksum against its manifest; old records have neither."""
        details = {"name": name, "version": v}
        try:
            manifest: bytes | None = version_manifest(record)
        except ValueError:  # NaN or infinity in a covered field: nothing this registry wrote
            manifest = None
        if self._key is not None:
            if meta.signature is None:
                raise IntegrityError(
                    f"model {name!r} version {v} is unsigned: it was written without the signing key "
                    "(LOGREG_SIGNING_KEY), so it is not served while one is set; `logreg sign` signs a store you "
                    "trust", details={**details, "problem": "unsigned"})
            if manifest is None or not signature_matches(self._key, manifest, meta.signature):
                raise IntegrityError(
                    f"model {name!r} version {v} is tampered: its signature does not match its record and "
                    "artefact digest (changed without the signing key, or signed with another key); refusing "
                    "to load it", details={**details, "problem": "bad_signature"})
        if meta.checksum is not None and (manifest is None or checksum(manifest) != meta.checksum):
            raise IntegrityError(
                f"metadata of model {name!r} version {v} fails its checksum: a field a prediction depends on "
                "(feature names, classes, encoding, calibration, params) or the artefact's digest was changed "
                "after it was written; refusing to load it", details={**details, "problem": "bad_checksum"})

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
        try:
            model = artefact.load(data)
            artefact.check_model(model, meta.classes, meta.feature_names)
        except artefact.ArtefactError as exc:
            self.cache.count("integrity_failures")
            raise IntegrityError(
                f"artefact of model {name!r} version {v} is refused: {exc}",
                details={"name": name, "version": v, "problem": "unsafe_artefact"},
            ) from None
        self.cache.count("loads")
        return CacheEntry(model=model, metadata=meta, dir_sig=(dst.st_ino, dst.st_mtime_ns))


def _signature(path: Path) -> tuple[int, int, int] | None:
    """What identifies a file's content for the caches: inode, modification time and size (None if absent)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


def _problems(exc: ValidationError) -> list[str]:
    """pydantic's errors as short sentences: ``field.path: message``."""
    return [f"{'.'.join(map(str, e['loc'])) or 'record'}: {e['msg']}" for e in exc.errors(include_url=False)]
