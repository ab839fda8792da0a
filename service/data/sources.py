"""Where a table lives: a local path (a file, a directory or a glob of part files) or an ``s3://`` URI, opened
through fsspec, with the format inferred from the suffix when it is not given.

Over HTTP, local paths are read only under the directories of ``LOGREG_DATA_ROOTS``, checked after every
symlink is resolved, so no caller reads a file outside them; the CLI passes ``roots=None`` and reads any
path its user can.
"""

from __future__ import annotations

import functools
import glob
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import fsspec

from ..domain import preview
from ..errors import DataAccessError, InvalidInputError, SourceUnavailableError

Format = Literal["csv", "parquet"]
#: Suffixes that name a format (a compressed CSV is read through pyarrow's codecs).
SUFFIXES: dict[str, Format] = {".csv": "csv", ".csv.gz": "csv", ".parquet": "parquet", ".pq": "parquet"}
_GLOB_CHARS = frozenset("*?[")


@dataclass(frozen=True, slots=True)
class Files:
    """The files of one table: their file system, paths, format and total size in bytes."""

    fs: Any  # an fsspec file system
    paths: tuple[str, ...]
    format: Format
    total_bytes: int
    uri: str


def format_of(uri: str, given: str | None) -> Format:
    """The format named, else the one the URI's suffix says (a directory or glob needs it named or a suffix)."""
    if given is not None:
        if given not in ("csv", "parquet"):
            raise InvalidInputError(f"format must be 'csv' or 'parquet', got {given!r}", {"field": "format"})
        return given  # type: ignore[return-value]
    name = uri.rstrip("/").lower()
    for suffix, fmt in sorted(SUFFIXES.items(), key=lambda kv: -len(kv[0])):
        if name.endswith(suffix):
            return fmt
    raise InvalidInputError(
        f"cannot tell the format of {uri!r} from its name: give `format` ('csv' or 'parquet')", {"field": "format"}
    )


#: Bounds on talking to S3 (botocore's): with s3fs retrying nothing on top, an endpoint that does
#: not answer fails each call after two attempts of 5 s each (plus a short backoff), not after minutes.
S3_CONFIG = {"connect_timeout": 5, "read_timeout": 5, "retries": {"max_attempts": 2, "mode": "standard"}}


@functools.cache
def _bounded_s3() -> Any:
    """s3fs's file system with its own retries off (five by default, on top of botocore's), so botocore's
    bounds are the only ones. Made on first use: s3fs and its AWS stack cost a quarter of a second to import.
    One class for the process, so fsspec's cache of file systems (per class and options) applies."""
    import s3fs

    class BoundedS3(s3fs.S3FileSystem):  # type: ignore[misc]
        retries = 1

    return BoundedS3


def _s3_filesystem(endpoint_url: str | None) -> Any:
    return _bounded_s3()(**s3_options(endpoint_url))


def s3_options(endpoint_url: str | None) -> dict[str, Any]:
    """fsspec options for ``s3://``: credentials and region come from the standard AWS variables and files."""
    options: dict[str, Any] = {"config_kwargs": S3_CONFIG}
    if endpoint_url:
        options["client_kwargs"] = {"endpoint_url": endpoint_url}
    return options


def open_files(uri: str, fmt: str | None = None, *, roots: Sequence[Path] | None,
               s3_endpoint_url: str | None = None) -> Files:
    """The files of the table at ``uri``; ``roots``: the directories local paths must lie under (None: any)."""
    if not isinstance(uri, str) or not uri.strip():
        raise InvalidInputError("`uri` must be a path or an s3:// URI", {"field": "uri"})
    form = format_of(uri, fmt)
    if uri.startswith("s3://"):
        return _s3_files(uri, form, s3_endpoint_url)
    if "://" in uri and not uri.startswith("file://"):
        scheme = uri.split("://", 1)[0]
        raise InvalidInputError(f"unsupported scheme {scheme!r}: use a local path or s3://", {"field": "uri"})
    return _local_files(uri.removeprefix("file://"), form, roots)


def _local_files(path: str, fmt: Format, roots: Sequence[Path] | None) -> Files:
    if roots is not None and not roots:
        raise DataAccessError(
            "reading local paths is turned off: set LOGREG_DATA_ROOTS to the directories the service may read",
            {"setting": "LOGREG_DATA_ROOTS"},
        )
    if "\x00" in path:
        raise InvalidInputError("`uri` holds a NUL character", {"field": "uri"})
    try:
        return _local_files_checked(path, fmt, roots)
    except OSError as exc:  # a name too long, a loop of symlinks, a directory that cannot be listed
        raise InvalidInputError(f"cannot read {path!r}: {exc.strerror or exc}", {"field": "uri"}) from None


def _local_files_checked(path: str, fmt: Format, roots: Sequence[Path] | None) -> Files:
    if any(c in path for c in _GLOB_CHARS):
        _check_pattern_under_roots(path, roots)  # before the file system is walked, not after
        candidates = sorted(glob.glob(path, recursive=True))
        if not candidates:
            raise InvalidInputError(f"no file matches {path!r}", {"field": "uri"})
    else:
        candidates = [path]
    files: list[str] = []
    for candidate in candidates:
        real = Path(candidate).resolve()
        _check_under_roots(path, real, roots)
        if real.is_dir():
            inside = sorted(p.resolve() for p in real.rglob("*") if p.is_file() and _has_format(p.name, fmt))
            for p in inside:
                _check_under_roots(path, p, roots)
            files += [str(p) for p in inside]
        elif real.is_file():
            files.append(str(real))
        elif not real.exists():
            raise InvalidInputError(f"no file or directory at {path!r}", {"field": "uri"})
    if not files:
        raise InvalidInputError(f"{path!r} holds no {fmt} file", {"field": "uri"})
    total = sum(os.path.getsize(f) for f in files)
    return Files(fsspec.filesystem("file"), tuple(files), fmt, total, path)


def _has_format(name: str, fmt: Format) -> bool:
    return any(name.lower().endswith(s) for s, f in SUFFIXES.items() if f == fmt)


def _check_under_roots(given: str, real: Path, roots: Sequence[Path] | None) -> None:
    """Refuse ``real`` (a resolved path) unless it lies under one of ``roots`` (resolved too)."""
    if roots is None:
        return
    if not any(real == root or real.is_relative_to(root) for root in (r.resolve() for r in roots)):
        raise DataAccessError(
            f"{given!r} is outside the directories this service may read (LOGREG_DATA_ROOTS: "
            f"{preview([str(r) for r in roots])})", {"setting": "LOGREG_DATA_ROOTS"},
        )


def _check_pattern_under_roots(pattern: str, roots: Sequence[Path] | None) -> None:
    """Refuse a glob that could reach outside ``roots``: its fixed leading directory (resolved) must lie under
    one, and no ``..`` may follow a wildcard."""
    parts = Path(pattern).parts
    first = next((i for i, part in enumerate(parts) if any(c in part for c in _GLOB_CHARS)), len(parts))
    fixed = Path(*parts[:first]).resolve()
    # after a wildcard, ".." may climb out of any directory: judge the pattern from the file system's root then
    _check_under_roots(pattern, Path(fixed.anchor) if ".." in parts[first:] else fixed, roots)


def _s3_files(uri: str, fmt: Format, endpoint_url: str | None) -> Files:
    try:
        fs = _s3_filesystem(endpoint_url)
        if any(c in uri for c in _GLOB_CHARS):
            paths = sorted(fs.glob(uri))
        elif fs.isdir(uri):
            paths = sorted(p for p in fs.find(uri) if _has_format(p, fmt))
        else:
            paths = [uri]
        sizes = [fs.size(p) for p in paths]
    except FileNotFoundError:
        raise InvalidInputError(f"no object or bucket at {uri}", {"field": "uri"}) from None
    except PermissionError as exc:
        raise DataAccessError(
            f"S3 refused access to {uri}: {exc}; the service reads S3 with the credentials of the standard AWS "
            "variables and files (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_PROFILE)", {"uri": uri},
        ) from None
    except OSError as exc:
        raise SourceUnavailableError(f"cannot reach {uri}: {exc}", {"uri": uri}) from None
    except Exception as exc:  # botocore's own errors (e.g. an unreachable endpoint) are not OSErrors
        raise SourceUnavailableError(f"cannot reach {uri}: {type(exc).__name__}: {exc}", {"uri": uri}) from None
    if not paths:
        raise InvalidInputError(f"no {fmt} object at {uri}", {"field": "uri"})
    return Files(fs, tuple(p if p.startswith("s3://") else f"s3://{p}" for p in paths), fmt, sum(sizes), uri)
