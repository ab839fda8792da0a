"""What the registry refuses to serve: swapped artefacts (which must never run code), edited prediction fields,
aliases and thresholds, with and without a signing key; and ``logreg sign`` for a store written before the key.

"An attacker" here can write the store but does not have the key: without a key they recompute the plain
checksums as easily as the registry wrote them (:func:`rewrite`), and that must still never run code.
"""

from __future__ import annotations

import builtins
import hashlib
import io
import json
import os
import pickle
import shutil
import subprocess
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
from joblib.numpy_pickle import NumpyArrayWrapper

from service import cli
from service.engine.logistic import LogisticRegression
from service.errors import IntegrityError, InvalidInputError
from service.store import artefact
from service.store.manifest import checksum, state_manifest, version_manifest
from service.store.registry import ModelRegistry

KEY_A = "a" * 16 + "-signing-key-for-tests-A"
KEY_B = "b" * 16 + "-signing-key-for-tests-B"
FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "store_v1"
EXPECTED: dict[str, Any] = json.loads((FIXTURE / "expected.json").read_text())

X = np.array([[0.0, 1.0], [1.0, 0.0], [2.0, 2.5], [3.0, 0.5], [0.5, 3.0], [2.5, 1.5]])
Y = np.array([0, 0, 1, 1, 0, 1])
#: The record of a version as training writes it, with every field the manifest covers.
META = {
    "classes": [0, 1], "feature_names": ["a", "b"], "params": {"C": 1.0},
    "encoding": {"columns": [{"name": "a", "kind": "numeric"}, {"name": "b", "kind": "numeric"}]},
    "calibration": {"method": "platt", "after": {"brier": 0.1}},
}


def model(C: float = 1.0) -> LogisticRegression:
    return LogisticRegression(C=C).fit(X, Y)


class Payload:
    """Unpickling this calls ``func(*args)``: what a swapped artefact would make joblib.load do."""

    def __init__(self, func: Any, *args: Any) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.func, self.args)


def joblib_bytes(obj: Any) -> bytes:
    buf = io.BytesIO()
    joblib.dump(obj, buf)
    return buf.getvalue()


def edit_record(root: Path, name: str, v: int, /, *, recompute: bool, **changes: Any) -> None:
    """Change fields of a version's metadata.json; with ``recompute``, update its (unkeyed) checksum too, as
    anyone who can write the store can."""
    path = root / name / str(v) / "metadata.json"
    record = json.loads(path.read_text())
    record.update(changes)
    if recompute:
        record["checksum"] = checksum(version_manifest(record))
    path.write_text(json.dumps(record))


def rewrite(root: Path, name: str, v: int, data: bytes) -> None:
    """Swap a version's artefact for ``data`` consistently: its sha256 and the record's checksum updated."""
    (root / name / str(v) / "model.joblib").write_bytes(data)
    edit_record(root, name, v, recompute=True, sha256=hashlib.sha256(data).hexdigest())


def edit_state(root: Path, name: str, *, recompute: bool, **changes: Any) -> None:
    path = root / name / "model.json"
    state = json.loads(path.read_text())
    state.update(changes)
    if recompute:
        state["checksum"] = checksum(state_manifest(name, state))
    path.write_text(json.dumps(state))


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "store"


# --------------------------------------------------------------------------- swapped artefacts never run code


def _payloads(marker: Path) -> dict[str, Any]:
    return {
        "os.system": Payload(os.system, f"touch {marker}"),
        "builtins.eval": Payload(builtins.eval, f"open({str(marker)!r}, 'w').close()"),
        "subprocess.Popen": Payload(subprocess.Popen, ["touch", str(marker)]),
        "pathlib.Path.touch": Payload(Path.touch, marker),
    }


@pytest.mark.parametrize("key", [None, KEY_A], ids=["no-key", "key"])
@pytest.mark.parametrize("how", ["os.system", "builtins.eval", "subprocess.Popen", "pathlib.Path.touch",
                                 "inside-a-model", "object-array"])
def test_a_swapped_artefact_with_its_digests_updated_never_runs_code(root: Path, tmp_path: Path, key: str | None,
                                                                     how: str) -> None:
    reg = ModelRegistry(root, signing_key=key)
    reg.save("m", model(), META)
    marker = tmp_path / "pwned"
    if how == "inside-a-model":
        evil: Any = model()
        evil.extra = _payloads(marker)["os.system"]
    elif how == "object-array":  # joblib reads an object array with a nested pickle
        evil = model()
        evil.coef_ = np.array([[_payloads(marker)["pathlib.Path.touch"], 1.0]], dtype=object)
    else:
        evil = _payloads(marker)[how]
    rewrite(root, "m", 1, joblib_bytes(evil))

    with pytest.raises(IntegrityError) as err:
        ModelRegistry(root, signing_key=key).load("m", 1)
    assert not marker.exists(), "the swapped artefact ran code"
    if key is None:  # the restricted unpickler refused it
        assert "artefact of model 'm' version 1 is refused" in err.value.message
        assert ("object" in err.value.message) if how == "object-array" else ("names" in err.value.message)
    else:  # refused before the artefact was read
        assert "tampered" in err.value.message


def test_the_object_array_payload_is_real(tmp_path: Path) -> None:
    """What the test above refuses does create the file when plain joblib loads it."""
    marker = tmp_path / "pwned"
    evil = model()
    evil.coef_ = np.array([[Payload(Path.touch, marker), 1.0]], dtype=object)
    joblib.load(io.BytesIO(joblib_bytes(evil)))
    assert marker.exists()


@pytest.mark.parametrize("crafted", [
    pytest.param(lambda: pickle.dumps(Payload(np.ndarray, (1,), "f8", b"\0" * 8), protocol=4), id="ndarray-call"),
    pytest.param(lambda: pickle.dumps(Payload(np.dtype, "O"), protocol=4), id="object-dtype"),
    pytest.param(lambda: pickle.dumps(np.array([1.5], dtype=object), protocol=4), id="plain-object-array"),
    pytest.param(lambda: pickle.dumps(NumpyArrayWrapper(np.ndarray, (10**12,), "C", np.dtype("f8")), protocol=4),
                 id="array-larger-than-the-file"),
    pytest.param(lambda: pickle.dumps({"a": 1}, protocol=4), id="not-a-model"),
    pytest.param(lambda: b"", id="empty"),
    pytest.param(lambda: b"\x80\x04garbage", id="garbage"),
])
def test_crafted_files_are_refused_by_the_unpickler(root: Path, crafted: Any) -> None:
    reg = ModelRegistry(root)
    reg.save("m", model(), META)
    rewrite(root, "m", 1, crafted())
    with pytest.raises(IntegrityError, match="artefact of model 'm' version 1 is refused"):
        ModelRegistry(root).load("m", 1)


def test_a_model_that_does_not_fit_its_record_is_refused(root: Path) -> None:
    reg = ModelRegistry(root)
    reg.save("m", model(), META)
    three = LogisticRegression().fit(np.vstack([X, X]), np.array([0, 1, 2] * 4))
    rewrite(root, "m", 1, joblib_bytes(three))
    with pytest.raises(IntegrityError, match="classes"):
        ModelRegistry(root).load("m", 1)
    broken = model()
    broken.coef_ = "not an array"
    rewrite(root, "m", 1, joblib_bytes(broken))
    with pytest.raises(IntegrityError, match="cannot predict"):
        ModelRegistry(root).load("m", 1)


def test_only_models_are_stored(root: Path) -> None:
    reg = ModelRegistry(root)
    for thing in ({"w": np.arange(3)}, [1, 2], Payload(print, "x")):
        with pytest.raises(InvalidInputError, match="cannot be stored"):
            reg.save("m", thing, META)
    with pytest.raises(InvalidInputError, match="features"):
        reg.save("m", model(), {**META, "feature_names": ["a"]})  # the model takes 2
    assert not [p for p in (root / "m").iterdir() if p.name not in (".lock",)]


def test_the_allowed_globals_are_exactly_what_the_stored_models_use() -> None:
    """Every artefact of the old store (plain, multiclass, calibrated Platt and isotonic) reads back, and
    names nothing outside the allowlist: measured, not assumed."""
    names: set[tuple[str, str]] = set()

    class Recording(artefact.RestrictedUnpickler):
        dispatch = artefact.RestrictedUnpickler.dispatch

        def find_class(self, module: str, name: str) -> Any:
            names.add((module, name))
            return super().find_class(module, name)

    for path in FIXTURE.glob("*/*/model.joblib"):
        Recording(path.read_bytes()).load()
    assert names <= set(artefact.ALLOWED_GLOBALS)
    assert ("service.engine.calibration", "IsotonicCalibrator") in names


# --------------------------------------------------------------------------- edited prediction fields


TAMPERING: dict[str, dict[str, Any]] = {
    "feature_names-reordered": {"feature_names": ["b", "a"]},
    "classes-changed": {"classes": [1, 0]},
    "encoding-changed": {"encoding": {"columns": [{"name": "a", "kind": "categorical"}, {"name": "b",
                                                                                          "kind": "numeric"}]}},
    "calibration-changed": {"calibration": {"method": "isotonic"}},
    "params-changed": {"params": {"C": 100.0}},
    "sha256-of-another-version": {},  # filled in below
}


@pytest.mark.parametrize("case", list(TAMPERING))
def test_an_edited_prediction_field_is_refused_without_a_key(root: Path, case: str) -> None:
    reg = ModelRegistry(root)
    reg.save("m", model(), META)
    reg.save("m", model(C=0.01), META)
    changes = TAMPERING[case] or {"sha256": reg.metadata("m", 2).sha256}
    if case == "sha256-of-another-version":
        shutil.copyfile(root / "m" / "2" / "model.joblib", root / "m" / "1" / "model.joblib")
    edit_record(root, "m", 1, recompute=False, **changes)
    fresh = ModelRegistry(root)
    for read in (lambda: fresh.load("m", 1), lambda: fresh.metadata("m", 1)):
        with pytest.raises(IntegrityError, match="fails its checksum"):
            read()
    assert "integrity_error" in fresh.list_versions("m")[0]
    assert fresh.load("m", 2).version == 2  # the other version still serves


@pytest.mark.parametrize("case", list(TAMPERING))
def test_an_edited_prediction_field_is_refused_with_a_key_even_with_its_checksum_recomputed(
        root: Path, case: str) -> None:
    reg = ModelRegistry(root, signing_key=KEY_A)
    reg.save("m", model(), META)
    reg.save("m", model(C=0.01), META)
    changes = TAMPERING[case] or {"sha256": reg.metadata("m", 2).sha256}
    if case == "sha256-of-another-version":
        shutil.copyfile(root / "m" / "2" / "model.joblib", root / "m" / "1" / "model.joblib")
    edit_record(root, "m", 1, recompute=True, **changes)
    if case != "classes-changed":  # (the model's own classes give that one away)
        ModelRegistry(root).load("m", 1)  # without a key, a consistent edit is taken: the docstring says so
    fresh = ModelRegistry(root, signing_key=KEY_A)
    with pytest.raises(IntegrityError, match="version 1 is tampered"):
        fresh.load("m", 1)
    assert fresh.load("m", 2).version == 2


def test_a_version_copied_to_another_model_is_refused_with_a_key(root: Path) -> None:
    reg = ModelRegistry(root, signing_key=KEY_A)
    reg.save("good", model(), META)
    reg.save("other", model(C=0.01), META)
    shutil.rmtree(root / "other" / "1")
    shutil.copytree(root / "good" / "1", root / "other" / "1")
    edit_record(root, "other", 1, recompute=True, name="other")
    with pytest.raises(IntegrityError, match="tampered"):
        ModelRegistry(root, signing_key=KEY_A).load("other", 1)


def test_a_nan_in_a_covered_field_is_an_integrity_error(root: Path) -> None:
    ModelRegistry(root).save("m", model(), META)
    path = root / "m" / "1" / "metadata.json"
    path.write_text(path.read_text().replace('"C": 1.0', '"C": NaN'))
    with pytest.raises(IntegrityError, match="checksum"):
        ModelRegistry(root).load("m", 1)


# --------------------------------------------------------------------------- aliases and thresholds


@pytest.mark.parametrize("change", [{"thresholds": {"1": 0.99}}, {"aliases": {"production": 2}}],
                         ids=["threshold", "alias"])
def test_an_edited_state_file_is_refused(root: Path, change: dict[str, Any]) -> None:
    reg = ModelRegistry(root)
    reg.save("m", model(), META)
    reg.save("m", model(C=0.01), META)
    reg.set_alias("m", "production", 1)
    reg.set_threshold("m", 1, 0.3)

    edit_state(root, "m", recompute=False, **change)  # an accidental edit: the checksum says so
    with pytest.raises(IntegrityError, match="fails its checksum"):
        ModelRegistry(root).load("m")
    edit_state(root, "m", recompute=True, **change)  # without a key, a consistent edit is taken
    assert ModelRegistry(root).load("m").version in (1, 2)

    keyed = ModelRegistry(root, signing_key=KEY_A)  # with a key: unsigned, for every read and write
    for call in (lambda: keyed.load("m"), lambda: keyed.load("m", 1), lambda: keyed.resolve("m", "production"),
                 lambda: keyed.set_threshold("m", 1, 0.5), lambda: keyed.set_alias("m", "canary", 1)):
        with pytest.raises(IntegrityError, match="unsigned"):
            call()


@pytest.mark.parametrize("change", [{"thresholds": {"1": 0.99}}, {"aliases": {"production": 2}},
                                    {"next_version": 1}], ids=["threshold", "alias", "next_version"])
def test_a_signed_state_file_edited_without_the_key_is_refused(root: Path, change: dict[str, Any]) -> None:
    reg = ModelRegistry(root, signing_key=KEY_A)
    reg.save("m", model(), META)
    reg.save("m", model(C=0.01), META)
    reg.set_alias("m", "production", 1)
    reg.set_threshold("m", 1, 0.3)
    assert (reg.load("m").version, reg.load("m").threshold) == (1, 0.3)

    edit_state(root, "m", recompute=True, **change)
    fresh = ModelRegistry(root, signing_key=KEY_A)
    with pytest.raises(IntegrityError, match="tampered") as err:
        fresh.load("m", 1)  # the threshold comes from the state file too
    assert "model.json" in err.value.message
    with pytest.raises(IntegrityError, match="tampered"):
        fresh.set_alias("m", "production", 2)  # not re-signed by the next write either
    assert [e.get("integrity_error") is not None for e in fresh.list_models()] == [True]


def test_a_state_file_copied_from_another_model_is_refused(root: Path) -> None:
    reg = ModelRegistry(root, signing_key=KEY_A)
    for name in ("a", "b"):
        reg.save(name, model(), META)
        reg.save(name, model(C=0.01), META)
    reg.set_alias("a", "production", 1)
    shutil.copyfile(root / "a" / "model.json", root / "b" / "model.json")
    with pytest.raises(IntegrityError, match="tampered"):
        ModelRegistry(root, signing_key=KEY_A).load("b")


# --------------------------------------------------------------------------- keys


def test_a_store_signed_with_one_key_is_refused_under_another(root: Path) -> None:
    reg = ModelRegistry(root, signing_key=KEY_A)
    reg.save("m", model(), META)
    reg.set_threshold("m", 1, 0.4)
    assert ModelRegistry(root, signing_key=KEY_A).load("m").threshold == 0.4
    assert ModelRegistry(root).load("m").threshold == 0.4  # no key: the checksums still hold
    other = ModelRegistry(root, signing_key=KEY_B)
    with pytest.raises(IntegrityError, match="tampered"):
        other.load("m")
    with pytest.raises(IntegrityError, match="tampered"):  # the state file first; then the version itself
        ModelRegistry(root, signing_key=KEY_B).metadata("m", 1)


def test_what_a_keyed_registry_writes_is_signed_and_checked(root: Path) -> None:
    reg = ModelRegistry(root, signing_key=KEY_A)
    assert reg.signed and not ModelRegistry(root).signed
    stored = reg.save("m", model(), META)
    record = json.loads((root / "m" / "1" / "metadata.json").read_text())
    assert record["checksum"] == stored.checksum == checksum(version_manifest(record))
    assert record["signature"] == stored.signature and len(stored.signature) == 64
    state = json.loads((root / "m" / "model.json").read_text())
    assert {"checksum", "signature"} <= set(state)

    del record["signature"]
    (root / "m" / "1" / "metadata.json").write_text(json.dumps(record))
    with pytest.raises(IntegrityError, match="version 1 is unsigned"):
        ModelRegistry(root, signing_key=KEY_A).load("m", 1)
    with pytest.raises(InvalidInputError):
        ModelRegistry(root, signing_key=b"")


# --------------------------------------------------------------------------- an old store, and logreg sign


@pytest.fixture
def old_store(tmp_path: Path) -> Path:
    return Path(shutil.copytree(FIXTURE, tmp_path / "store", ignore=shutil.ignore_patterns("expected.json")))


def test_an_old_store_loads_without_a_key_and_is_refused_with_one(old_store: Path) -> None:
    for name, entry in EXPECTED["models"].items():
        for v in entry["versions"]:
            assert ModelRegistry(old_store).load(name, int(v)).version == int(v)
    with pytest.raises(IntegrityError, match="unsigned"):
        ModelRegistry(old_store, signing_key=KEY_A).load("breast-cancer", 1)


def test_logreg_sign_makes_an_old_store_servable_under_the_key(
        old_store: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    before = {p: p.read_bytes() for p in old_store.rglob("model.joblib")}
    monkeypatch.setenv("LOGREG_SIGNING_KEY", KEY_A)
    assert cli.main(["sign", "--store", str(old_store)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert len(report["versions"]) == sum(len(m["versions"]) for m in EXPECTED["models"].values())
    assert report["refused"] == []
    assert {p: p.read_bytes() for p in old_store.rglob("model.joblib")} == before  # records signed, not models

    reg = ModelRegistry(old_store, signing_key=KEY_A)
    for name, entry in EXPECTED["models"].items():
        for ref, version in entry["resolve"].items():
            assert reg.resolve(name, None if ref == "null" else ref) == version
        for v, expected in entry["versions"].items():
            loaded = reg.load(name, int(v))
            X_in = np.asarray(expected["inputs"], dtype=np.float64)
            assert loaded.model.predict_proba(X_in).tolist() == expected["predict_proba"]
            assert loaded.threshold == expected["card"]["threshold"]
    with pytest.raises(IntegrityError, match="tampered"):
        ModelRegistry(old_store, signing_key=KEY_B).load("breast-cancer", 1)

    monkeypatch.setenv("LOGREG_SIGNING_KEY", KEY_B)  # signing again moves the store to another key
    assert cli.main(["sign", "--store", str(old_store)]) == 0
    assert ModelRegistry(old_store, signing_key=KEY_B).load("breast-cancer", 1).version == 1


def test_logreg_sign_refuses_what_is_visibly_inconsistent(root: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    reg = ModelRegistry(root)
    for C in (1.0, 0.5, 0.25):
        reg.save("m", model(C=C), META)
    edit_record(root, "m", 1, recompute=False, feature_names=["b", "a"])
    rewrite(root, "m", 2, joblib_bytes(Payload(os.system, "true")))

    monkeypatch.setenv("LOGREG_SIGNING_KEY", KEY_A)
    assert cli.main(["sign", "--store", str(root)]) == 1
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report["versions"] == [{"name": "m", "version": 3}]
    assert [r["version"] for r in report["refused"]] == [1, 2]
    assert "not signed: 'm' version 1" in captured.err
    keyed = ModelRegistry(root, signing_key=KEY_A)
    assert keyed.load("m", 3).version == 3
    for v in (1, 2):
        with pytest.raises(IntegrityError):
            keyed.load("m", v)


def test_logreg_sign_needs_a_long_key(root: Path, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    ModelRegistry(root).save("m", model(), META)
    monkeypatch.delenv("LOGREG_SIGNING_KEY", raising=False)
    assert cli.main(["sign", "--store", str(root)]) == 2
    assert "LOGREG_SIGNING_KEY" in capsys.readouterr().err
    monkeypatch.setenv("LOGREG_SIGNING_KEY", "short")
    assert cli.main(["sign", "--store", str(root)]) == 2
    assert "shorter than 32" in capsys.readouterr().err
    assert "sign" in cli.build_parser().format_help()

