"""What the registry's checksums and signatures cover: a canonical JSON manifest of a version's record or of a
model's state file, its sha256, and an HMAC-SHA256 of it under the signing key.

A version's manifest holds its name and number, the artefact's sha256, and every field of its record that
affects a prediction or how a request is read (:data:`VERSION_FIELDS`); a state file's manifest holds the
model's name and the whole file (next version, aliases, thresholds). Each says what it is (``kind``), so a
signature over one can never pass for the other.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

__all__ = ["INTEGRITY_FIELDS", "VERSION_FIELDS", "checksum", "sign", "signature_matches", "state_manifest",
           "version_manifest"]

#: A version record's fields that the manifest covers: where it lives, its artefact, and what a prediction
#: depends on besides the artefact (the feature names order a request's columns; the encoding and the
#: calibration describe what the artefact does; the parameters it was trained with).
VERSION_FIELDS = ("name", "version", "sha256", "artefact", "feature_names", "classes", "encoding", "calibration",
                  "params")
#: The fields that hold the checksum and the signature, in a version's record and in a state file.
INTEGRITY_FIELDS = ("checksum", "signature")
FORMAT = 1


def _canonical(data: Mapping[str, Any]) -> bytes:
    """One byte string per value: sorted keys, no whitespace, ASCII, no NaN."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode()


def version_manifest(record: Mapping[str, Any]) -> bytes:
    """The manifest of a version's record (as read from, or written to, its ``metadata.json``)."""
    return _canonical({"kind": "version", "format": FORMAT, **{f: record.get(f) for f in VERSION_FIELDS}})


def state_manifest(name: str, state: Mapping[str, Any]) -> bytes:
    """The manifest of model ``name``'s state file, given its fields without the checksum and signature."""
    return _canonical({"kind": "state", "format": FORMAT, "name": name,
                       "state": {k: v for k, v in state.items() if k not in INTEGRITY_FIELDS}})


def checksum(manifest: bytes) -> str:
    return hashlib.sha256(manifest).hexdigest()


def sign(key: bytes, manifest: bytes) -> str:
    return hmac.new(key, manifest, hashlib.sha256).hexdigest()


def signature_matches(key: bytes, manifest: bytes, signature: object) -> bool:
    """Whether ``signature`` is the manifest's under ``key`` (compared in constant time)."""
    return (isinstance(signature, str) and signature.isascii()
            and hmac.compare_digest(sign(key, manifest), signature))
