"""Tests of the on-disk model registry: real temp dirs, real threads, real processes."""

from __future__ import annotations

import copy
import fcntl
import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from service.engine.logistic import LogisticRegression
from service.errors import (
    ConflictError,
    IntegrityError,
    InvalidInputError,
    NotFoundError,
    RegistryUnavailableError,
)
from service.store import registry as registry_module
from service.store.registry import LoadedModel, ModelRegistry

REPO_ROOT = Path(__file__).resolve().parents[3]
#: The least metadata a version's record needs: what serving reads besides the artefact.
META = {"classes": [0, 1], "feature_names": ["x0"]}


_FITTED = LogisticRegression().fit(np.array([[0.0], [1.0], [2.0], [3.0]]), np.array([0, 1, 0, 1]))


def Toy(weights: list[float], tag: str = "") -> LogisticRegression:
    """A stand-in model: a real fitted one (the registry reads back only models, through its restricted
    unpickler), carrying ``weights`` and ``tag`` to tell versions apart; it fits ``META``."""
    model = copy.deepcopy(_FITTED)
    model.weights, model.tag = list(weights), tag
    return model


def same(a: object, b: object) -> bool:
    """Whether two stand-in models are the same one (models have no ``==``)."""
    return (a.weights, a.tag) == (b.weights, b.tag)  # type: ignore[attr-defined]


@pytest.fixture
def reg(tmp_path: Path) -> ModelRegistry:
    return ModelRegistry(tmp_path / "store")


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")])
    return env


# --------------------------------------------------------------------------- save / load


def test_save_load_roundtrip(reg: ModelRegistry) -> None:
    model = Toy([0.5, -1.25], tag="first")
    meta = reg.save("iris", model, {**META, "accuracy": np.float64(0.9), "features": ["a", "b"]})

    assert meta.name == "iris"
    assert meta.version == 1
    assert meta.artefact == "model.joblib"
    assert meta.accuracy == 0.9 and meta.features == ["a", "b"]
    assert datetime.fromisoformat(meta.created_at).utcoffset().total_seconds() == 0
    artefact = reg.root / "iris" / "1" / "model.joblib"
    assert meta.sha256 == hashlib.sha256(artefact.read_bytes()).hexdigest()
    assert json.loads((reg.root / "iris" / "1" / "metadata.json").read_text()) == meta.model_dump(exclude_unset=True)

    loaded = reg.load("iris")
    assert isinstance(loaded, LoadedModel)
    assert (loaded.name, loaded.version, loaded.threshold) == ("iris", 1, None)
    assert same(loaded.model, model)
    assert loaded.metadata == meta
    with pytest.raises(AttributeError):
        loaded.version = 2  # type: ignore[misc]


def test_versions_are_sequential_and_listed(reg: ModelRegistry) -> None:
    for i in range(3):
        assert reg.save("m", Toy([float(i)]), {**META, "i": i}).version == i + 1
    reg.save("another", Toy([3.0]), META)

    assert [reg.load("m", v).model.weights for v in (1, 2, 3)] == [[0.0], [1.0], [2.0]]
    assert reg.resolve("m") == 3
    assert reg.resolve("m", "2") == 2
    assert reg.list_models() == [
        {"name": "another", "latest_version": 1, "versions": [1], "aliases": {}},
        {"name": "m", "latest_version": 3, "versions": [1, 2, 3], "aliases": {}},
    ]
    listed = reg.list_versions("m")
    assert [(x["version"], x["i"], x["aliases"], x["threshold"]) for x in listed] == [
        (1, 0, [], None),
        (2, 1, [], None),
        (3, 2, [], None),
    ]
    assert reg.metadata("m", 2).i == 1
    state = json.loads((reg.root / "m" / "model.json").read_text())
    assert state == {"next_version": 4, "aliases": {}, "thresholds": {}, "checksum": state["checksum"]}


def test_metadata_must_be_json(reg: ModelRegistry) -> None:
    with pytest.raises(InvalidInputError):
        reg.save("m", Toy([1.0]), {**META, "bad": object()})
    with pytest.raises(InvalidInputError):
        reg.save("m", Toy([1.0]), {**META, "nan": float("nan")})
    assert reg.list_models() == []
    assert not (reg.root / "m").exists()  # rejected before anything touched the disk


# --------------------------------------------------------------------------- concurrency


def test_threads_saving_concurrently_get_distinct_versions(reg: ModelRegistry) -> None:
    n = 16
    barrier = threading.Barrier(n)
    results: dict[int, int] = {}
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            barrier.wait()
            results[i] = reg.save("shared", Toy([float(i)], tag=f"t{i}"), {**META, "worker": i}).version
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert errors == []
    assert sorted(results.values()) == list(range(1, n + 1))
    for i, v in results.items():
        loaded = reg.load("shared", v)
        assert loaded.model.tag == f"t{i}" and loaded.metadata.worker == i
    assert reg.list_models()[0]["versions"] == list(range(1, n + 1))


def test_concurrent_loads_unpickle_once(reg: ModelRegistry) -> None:
    reg.save("m", Toy([1.0]), META)
    barrier = threading.Barrier(8)
    seen: list[int] = []

    def worker() -> None:
        barrier.wait()
        seen.append(id(reg.load("m").model))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(seen)) == 1
    assert reg.stats()["loads"] == 1


_CHILD_SAVER = textwrap.dedent(
    """
    import json, os, sys, time
    import numpy as np
    from service.engine.logistic import LogisticRegression
    from service.store.registry import ModelRegistry

    def model(w):
        fitted = LogisticRegression().fit(np.array([[0.0], [1.0], [2.0], [3.0]]), np.array([0, 1, 0, 1]))
        fitted.w = np.full(4, w)
        return fitted

    root, worker, count, go = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    META = {"classes": [0, 1], "feature_names": ["x0"]}
    reg = ModelRegistry(root)
    open(go + f".ready{worker}", "w").close()
    deadline = time.monotonic() + 30
    while not os.path.exists(go) and time.monotonic() < deadline:
        time.sleep(0.002)
    versions = [
        reg.save("shared", model(worker * 100 + i), {**META, "worker": worker, "i": i}).version
        for i in range(count)
    ]
    print(json.dumps(versions))
    """
)


def test_processes_saving_concurrently_get_distinct_versions(tmp_path: Path) -> None:
    root, go = tmp_path / "store", tmp_path / "go"
    n_procs, per_proc = 4, 5
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _CHILD_SAVER, str(root), str(w), str(per_proc), str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_child_env(),
        )
        for w in range(n_procs)
    ]
    deadline = time.monotonic() + 30
    while not all(Path(f"{go}.ready{w}").exists() for w in range(n_procs)):
        assert time.monotonic() < deadline, "children did not start"
        assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
        time.sleep(0.01)
    go.touch()  # release them all at once
    outputs = []
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        outputs.append(json.loads(out))

    total = n_procs * per_proc
    all_versions = [v for vs in outputs for v in vs]
    assert sorted(all_versions) == list(range(1, total + 1))
    reg = ModelRegistry(root)
    for worker, versions in enumerate(outputs):
        for i, v in enumerate(versions):
            loaded = reg.load("shared", v)
            assert (loaded.metadata.worker, loaded.metadata.i) == (worker, i)
            assert loaded.model.w.tolist() == [worker * 100 + i] * 4
    assert json.loads((root / "shared" / "model.json").read_text())["next_version"] == total + 1


_CHILD_CRASHER = textwrap.dedent(
    """
    import sys
    import numpy as np
    from service.engine.logistic import LogisticRegression
    from service.store.registry import ModelRegistry

    import time

    class SlowRegistry(ModelRegistry):
        def _before_publish(self):
            time.sleep(60)

    meta = {"classes": [0, 1], "feature_names": ["x0"], "doomed": True}
    model = LogisticRegression().fit(np.array([[0.0], [1.0], [2.0], [3.0]]), np.array([0, 1, 0, 1]))
    SlowRegistry(sys.argv[1]).save("crashy", model, meta)
    """
)


def test_kill_9_mid_save_leaves_no_version_and_no_stuck_lock(tmp_path: Path) -> None:
    root = tmp_path / "store"
    reg = ModelRegistry(root)
    reg.save("crashy", Toy([0.0]), META)
    proc = subprocess.Popen([sys.executable, "-c", _CHILD_CRASHER, str(root)], env=_child_env())
    try:
        deadline = time.monotonic() + 30
        # metadata.json is written under the lock, right before the pause before publishing
        while not list((root / "crashy").glob(".tmp-*/metadata.json")):
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.01)
        assert reg.cleanup_temp() == 0  # the live writer's temp dir is flocked: left alone
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    assert reg.list_models()[0]["versions"] == [1]
    assert len(list((root / "crashy").glob(".tmp-*"))) == 1
    assert reg.save("crashy", Toy([2.0]), META).version == 2  # the dead process's flock is gone
    assert reg.cleanup_temp() == 1
    assert list((root / "crashy").glob(".tmp-*")) == []
    assert reg.load("crashy").model.weights == [2.0]


# --------------------------------------------------------------------------- integrity


def test_tampered_artefact_is_refused_and_never_unpickled(
    reg: ModelRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    reg.save("m", Toy([1.0, 2.0]), META)
    artefact = reg.root / "m" / "1" / "model.joblib"
    data = bytearray(artefact.read_bytes())
    data[len(data) // 2] ^= 0x01
    artefact.write_bytes(bytes(data))

    calls: list[object] = []
    monkeypatch.setattr(registry_module.artefact, "load", lambda *a, **k: calls.append(a))
    with pytest.raises(IntegrityError, match="checksum"):
        reg.load("m", 1)
    assert calls == []
    assert reg.stats()["integrity_failures"] == 1
    assert reg.stats()["cached"] == 0


@pytest.mark.parametrize(
    ("field", "value"),
    [("name", "other"), ("version", 7), ("sha256", "0" * 64), ("artefact", "../../etc/passwd")],
)
def test_tampered_metadata_is_refused(reg: ModelRegistry, field: str, value: object) -> None:
    reg.save("m", Toy([1.0]), META)
    path = reg.root / "m" / "1" / "metadata.json"
    meta = json.loads(path.read_text())
    meta[field] = value
    path.write_text(json.dumps(meta))
    with pytest.raises(IntegrityError):
        reg.load("m", 1)
    assert "integrity_error" in reg.list_versions("m")[0]  # the record's checksum covers the sha256 too


def test_copied_version_dir_is_refused(reg: ModelRegistry) -> None:
    reg.save("m", Toy([1.0]), META)
    os.rename(reg.root / "m" / "1", reg.root / "m" / "5")  # metadata still says version 1
    with pytest.raises(IntegrityError, match="version"):
        reg.load("m", 5)


def test_corrupt_metadata_json(reg: ModelRegistry) -> None:
    reg.save("m", Toy([1.0]), META)
    (reg.root / "m" / "1" / "metadata.json").write_text("{not json")
    with pytest.raises(IntegrityError):
        reg.load("m")
    with pytest.raises(IntegrityError):
        reg.metadata("m", 1)


# --------------------------------------------------------------------------- temp dirs


def test_leftover_temp_entries_are_ignored_and_cleaned(reg: ModelRegistry) -> None:
    reg.save("m", Toy([1.0]), META)
    leftover = reg.root / "m" / ".tmp-deadbeef"
    leftover.mkdir()
    (leftover / "model.joblib").write_bytes(b"garbage")
    (reg.root / "m" / ".tmp-state-x").write_text("{}")
    (reg.root / ".tmp-probe-x").write_text("ok")
    (reg.root / ".tmp-orphan").mkdir()

    assert [m["versions"] for m in reg.list_models()] == [[1]]
    assert [v["version"] for v in reg.list_versions("m")] == [1]
    assert reg.cleanup_temp(min_age=3600) == 0  # all fresh
    assert reg.cleanup_temp() == 4
    assert sorted(p.name for p in (reg.root / "m").iterdir()) == [".lock", "1", "model.json"]
    assert sorted(p.name for p in reg.root.iterdir()) == ["m"]


def test_locked_temp_dir_survives_cleanup_and_old_ones_are_reaped_on_save(reg: ModelRegistry) -> None:
    reg.save("m", Toy([1.0]), META)
    live = reg.root / "m" / ".tmp-live"
    live.mkdir()
    fd = os.open(live, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)  # what a writer in another process holds
    try:
        assert reg.cleanup_temp() == 0
        assert live.exists()
    finally:
        os.close(fd)

    old = reg.root / "m" / ".tmp-old"
    old.mkdir()
    two_hours_ago = time.time() - 7200
    os.utime(old, (two_hours_ago, two_hours_ago))
    reg.save("m", Toy([2.0]), META)
    assert not old.exists()
    assert live.exists()  # unlocked now, but younger than the save-time max age


# --------------------------------------------------------------------------- aliases & thresholds


def test_aliases_and_default_resolution(reg: ModelRegistry) -> None:
    for i in range(3):
        reg.save("m", Toy([float(i)]), META)
    assert reg.resolve("m") == 3  # no production alias: latest

    assert reg.set_alias("m", "production", 1) == {
        "name": "m",
        "alias": "production",
        "version": 1,
        "previous_version": None,
    }
    assert reg.resolve("m") == 1
    assert reg.load("m").version == 1
    assert reg.resolve("m", "production") == 1

    reg.set_alias("m", "staging", "2")
    assert reg.set_alias("m", "production", "staging")["previous_version"] == 1
    assert reg.resolve("m") == 2
    assert reg.list_models()[0]["aliases"] == {"production": 2, "staging": 2}
    assert reg.metadata("m", 2).aliases == ["production", "staging"]

    reg.delete_alias("m", "production")
    assert reg.resolve("m") == 3
    with pytest.raises(NotFoundError, match="production"):
        reg.resolve("m", "production")
    with pytest.raises(NotFoundError):
        reg.delete_alias("m", "production")


@pytest.mark.parametrize("alias", ["123", "", "-x", "a/b", "_x", "x" * 65, "é"])
def test_invalid_alias(reg: ModelRegistry, alias: str) -> None:
    reg.save("m", Toy([1.0]), META)
    with pytest.raises(InvalidInputError) as err:
        reg.set_alias("m", alias, 1)
    assert repr(alias) in err.value.message


def test_thresholds(reg: ModelRegistry) -> None:
    reg.save("m", Toy([1.0]), META)
    reg.save("m", Toy([2.0]), META)
    assert reg.set_threshold("m", 1, 0.7) == {"name": "m", "version": 1, "threshold": 0.7}
    assert reg.load("m", 1).threshold == 0.7
    assert reg.load("m", 2).threshold is None
    reg.set_threshold("m", 1, 0.25)
    assert reg.load("m", 1).threshold == 0.25  # cached model, fresh threshold
    assert reg.list_versions("m")[0]["threshold"] == 0.25
    for bad in (-0.1, 1.5, float("nan"), True, "0.5"):
        with pytest.raises(InvalidInputError):
            reg.set_threshold("m", 1, bad)  # type: ignore[arg-type]
    reg.set_threshold("m", 1, None)
    assert reg.load("m", 1).threshold is None
    with pytest.raises(NotFoundError):
        reg.set_threshold("m", 9, 0.5)


# --------------------------------------------------------------------------- not found / delete


def test_unknown_model_version_alias(reg: ModelRegistry) -> None:
    with pytest.raises(NotFoundError, match="'ghost'"):
        reg.load("ghost")
    with pytest.raises(NotFoundError):
        reg.resolve("ghost", 1)
    with pytest.raises(NotFoundError):
        reg.list_versions("ghost")
    with pytest.raises(NotFoundError):
        reg.set_alias("ghost", "production", 1)
    reg.save("m", Toy([1.0]), META)
    for missing in (2, "2", 0, -1):
        with pytest.raises(NotFoundError, match="no version"):
            reg.load("m", missing)
    with pytest.raises(NotFoundError) as err:
        reg.load("m", "canary")
    assert "'canary'" in err.value.message and "'m'" in err.value.message
    with pytest.raises(NotFoundError):
        reg.metadata("m", 3)
    with pytest.raises(InvalidInputError):
        reg.load("m", True)  # type: ignore[arg-type]


def test_delete_refused_while_aliased(reg: ModelRegistry) -> None:
    reg.save("m", Toy([1.0]), META)
    reg.set_alias("m", "production", 1)
    reg.set_alias("m", "canary", 1)
    with pytest.raises(ConflictError) as err:
        reg.delete_version("m", 1)
    assert "'canary'" in err.value.message and "'production'" in err.value.message
    assert reg.load("m", 1).version == 1


def test_delete_never_reuses_numbers(reg: ModelRegistry) -> None:
    for i in range(3):
        reg.save("m", Toy([float(i)]), META)
    reg.set_threshold("m", 3, 0.4)
    reg.load("m", 3)
    reg.delete_version("m", 3)
    assert reg.stats()["cached"] == 0
    assert "3" not in json.loads((reg.root / "m" / "model.json").read_text())["thresholds"]
    with pytest.raises(NotFoundError):
        reg.load("m", 3)
    assert reg.save("m", Toy([9.0]), META).version == 4

    for v in (1, 2, 4):
        reg.delete_version("m", v)
    assert reg.list_models() == []
    with pytest.raises(NotFoundError):
        reg.load("m")
    assert (reg.root / "m" / "model.json").exists()
    assert reg.save("m", Toy([5.0]), META).version == 5
    assert [p.name for p in (reg.root / "m").iterdir() if p.name.startswith(".tmp-")] == []


def test_lost_state_file_does_not_reuse_existing_numbers(reg: ModelRegistry) -> None:
    reg.save("m", Toy([1.0]), META)
    reg.save("m", Toy([2.0]), META)
    (reg.root / "m" / "model.json").unlink()
    assert reg.save("m", Toy([3.0]), META).version == 3


# --------------------------------------------------------------------------- cache & other processes


def test_second_load_comes_from_cache(reg: ModelRegistry, monkeypatch: pytest.MonkeyPatch) -> None:
    reg.save("m", Toy([1.0]), META)
    first = reg.load("m")
    assert reg.stats()["loads"] == 1

    def boom(*args: object, **kwargs: object) -> None:
        raise AssertionError("artefact re-read")

    monkeypatch.setattr(registry_module.artefact, "load", boom)
    second = reg.load("m", 1)
    assert second.model is first.model
    stats = reg.stats()
    assert (stats["loads"], stats["hits"], stats["misses"], stats["cached"]) == (1, 1, 1, 1)


def test_cache_is_bounded_lru(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path, cache_size=2)
    for i in range(3):
        reg.save("m", Toy([float(i)]), META)
    reg.load("m", 1)
    reg.load("m", 2)
    reg.load("m", 1)  # 1 is now most recent
    reg.load("m", 3)  # evicts 2
    stats = reg.stats()
    assert (stats["cached"], stats["evictions"], stats["loads"]) == (2, 1, 3)
    reg.load("m", 1)
    assert reg.stats()["loads"] == 3
    reg.load("m", 2)
    assert reg.stats()["loads"] == 4


def test_other_instance_sees_changes_immediately(tmp_path: Path) -> None:
    writer, reader = ModelRegistry(tmp_path), ModelRegistry(tmp_path)
    writer.save("m", Toy([1.0]), META)
    assert reader.load("m").version == 1

    writer.save("m", Toy([2.0]), META)
    assert reader.load("m").version == 2

    writer.set_alias("m", "production", 1)
    assert reader.load("m").version == 1
    writer.set_alias("m", "production", 2)
    assert reader.resolve("m") == 2
    writer.set_threshold("m", 2, 0.9)
    assert reader.load("m").threshold == 0.9

    reader.load("m", 1)
    writer.delete_version("m", 1)
    with pytest.raises(NotFoundError):
        reader.load("m", 1)  # not served from the reader's cache
    assert reader.list_models()[0]["versions"] == [2]


def test_alias_moved_and_old_version_deleted_mid_load_is_re_resolved(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer, reader = ModelRegistry(tmp_path), ModelRegistry(tmp_path)
    writer.save("m", Toy([1.0]), META)
    writer.save("m", Toy([2.0]), META)
    writer.set_alias("m", "production", 1)
    assert reader.load("m").version == 1
    stale = reader._state("m")  # what the reader saw just before another process acted
    writer.set_alias("m", "production", 2)
    writer.delete_version("m", 1)

    real_state = reader._state
    replies = iter([stale])
    monkeypatch.setattr(reader, "_state", lambda name: next(replies, None) or real_state(name))
    assert reader.load("m").version == 2


# --------------------------------------------------------------------------- validation & readiness


@pytest.mark.parametrize("name", ["..", ".", ".hidden", "a/b", "a\x00b", "x" * 65, "", "a b", "a\n", 5, None])
def test_invalid_model_names(reg: ModelRegistry, name: object) -> None:
    for call in (
        lambda: reg.save(name, Toy([1.0]), META),  # type: ignore[arg-type]
        lambda: reg.load(name),  # type: ignore[arg-type]
        lambda: reg.list_versions(name),  # type: ignore[arg-type]
    ):
        with pytest.raises(InvalidInputError) as err:
            call()
        assert repr(name) in err.value.message
    assert list(reg.root.iterdir()) == []


def test_valid_edge_names(reg: ModelRegistry) -> None:
    for name in ("a", "9", "a.b-c_d", "x" * 64):
        assert reg.save(name, Toy([1.0]), META).version == 1


def test_check_creates_missing_dir(tmp_path: Path) -> None:
    root = tmp_path / "a" / "b"
    reg = ModelRegistry(root)
    root.rmdir()
    reg.check()
    assert root.is_dir()
    assert list(root.iterdir()) == []  # probe removed


def test_check_on_a_file_is_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "not-a-dir"
    path.write_text("x")
    reg = ModelRegistry(path)  # constructing does not fail
    with pytest.raises(RegistryUnavailableError, match="not a directory"):
        reg.check()
    with pytest.raises(RegistryUnavailableError):
        reg.save("m", Toy([1.0]), META)


def test_loaded_in_memory_never_reads_an_artefact(reg: ModelRegistry, monkeypatch: pytest.MonkeyPatch) -> None:
    reg.save("m", Toy([1.0]), META)
    reg.save("m", Toy([2.0]), META)
    assert reg.loaded_in_memory("m") is None  # nothing read yet: the caller must load
    assert reg.loaded_in_memory("nope") is None and reg.loaded_in_memory("../x") is None
    assert reg.load("m", 1).model.weights == [1.0]
    reads: list[object] = []
    monkeypatch.setattr(registry_module.artefact, "load", lambda *a, **k: reads.append(a))
    hits = reg.stats()["hits"]
    found = reg.loaded_in_memory("m", 1)
    assert found is not None and found.model.weights == [1.0] and reads == []
    assert reg.stats()["hits"] == hits + 1
    assert reg.loaded_in_memory("m") is None  # the latest, version 2, is not in memory
    reg.set_alias("m", "production", 1)
    assert reg.loaded_in_memory("m").version == 1  # resolved through the alias, from memory
    reg.delete_alias("m", "production")
    reg.delete_version("m", 1)
    assert reg.loaded_in_memory("m", 1) is None


def test_the_files_are_written_before_the_lock_and_a_late_check_stores_nothing(reg: ModelRegistry) -> None:
    """The model's lock covers only choosing the number and the rename; a time limit that strikes once the
    files are written leaves no version and no temp entry behind."""
    from service.errors import TimeLimitError
    from service.store.atomic import is_locked

    seen = []

    def check() -> None:
        seen.append(is_locked(reg.root / "m" / ".lock"))

    assert reg.save("m", Toy([1.0]), META, check=check).version == 1
    assert seen == [False]

    def late() -> None:
        raise TimeLimitError("over the limit")

    with pytest.raises(TimeLimitError):
        reg.save("m", Toy([2.0]), META, check=late)
    assert [v["version"] for v in reg.list_versions("m")] == [1]
    assert not [p for p in (reg.root / "m").iterdir() if p.name.startswith(".tmp-")]
    assert reg.save("m", Toy([3.0]), META).version == 2


def test_a_version_taken_meanwhile_is_recorded_under_the_next_number(reg: ModelRegistry) -> None:
    reg.save("m", Toy([1.0]), META)

    def race() -> None:  # another writer publishes version 2 after this save guessed it
        other = ModelRegistry(reg.root)
        assert other.save("m", Toy([9.0]), {**META, "who": "other"}).version == 2

    stored = reg.save("m", Toy([2.0]), {**META, "who": "me"}, check=race)
    assert stored.version == 3
    assert reg.metadata("m", 3).model_extra["who"] == "me" and reg.metadata("m", 2).model_extra["who"] == "other"
    assert reg.load("m", 3).model.weights == [2.0]
