"""Crash safety: ``kill -9`` the real server at random moments while several clients train.

Each cycle starts the server (``--workers 1``, so its process group is the whole server) with
``LOGREG_TEST_WRITE_DELAY`` set (through ``slow_publish_env``), which pauses every save under the model lock
just before the version is published; four clients train in a loop on two models while a fifth moves the production
alias and deletes old versions; the test then ``kill -9``s the process group at a random moment.

Servers run the real ``logreg serve`` entry point; the next one is spawned ahead and parked after its
imports (``spawn_server(parked=True)``), so a restart costs only uvicorn's start-up and the registry's
start-up cleanup, and 30 kills fit in well under a minute.

After every kill it checks, on disk and through the restarted server (whose start is the next cycle):

* every listed version loads, passes its sha256 check and predicts (on disk and over HTTP);
* no ``.tmp-*`` leftover is listed, and none survives the restarted server's start-up cleanup;
* version numbers are never reused: every version a client was told about (201) or saw listed keeps
  the unique ``uid`` tag and sha256 it was first seen with, across all cycles;
* every acknowledged version is still there unless its delete was acknowledged (or in flight),
  acknowledged deletes stay deleted, and the alias points where it was last (or was being) moved.
"""

from __future__ import annotations

import random
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import pytest

from service.client import LogregAPIError, LogregClient
from service.engine.logistic import LogisticRegression
from service.store.registry import ModelRegistry

from .conftest import (
    Server,
    kill_server,
    release_server,
    slow_publish_env,
    spawn_server,
    stop_server,
    temp_entries,
    wait_until_healthy,
)

pytestmark = pytest.mark.e2e

KILLS = 30
SEED = 20240611
WRITE_DELAY = 0.1  # seconds each save pauses, under the model lock, just before publishing the version
MODELS = ("crash-a", "crash-b")
TRAINERS = 4
MAX_TRAININGS_PER_CYCLE = 40  # per trainer; a cycle is killed long before
KEEP_VERSIONS = 6  # the alias mover deletes old versions beyond this many, to keep checks cheap
TRUE_W = np.array([1.5, -2.0, 0.5])
PROBE = np.array([[0.5, -1.0, 2.0], [-1.5, 0.25, 0.0], [0.0, 0.0, 0.0]])
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")

Key = tuple[str, int]


@dataclass
class Ledger:
    """Everything the clients were told and everything seen on disk or listed, across all cycles."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    acked: dict[Key, str] = field(default_factory=dict)  # (model, version) -> uid, from 201 responses
    seen: dict[Key, str] = field(default_factory=dict)  # (model, version) -> uid, from any source
    sha: dict[Key, str] = field(default_factory=dict)  # (model, version) -> sha256 first seen on disk
    deleted: set[Key] = field(default_factory=set)  # deletes answered 204 (or in flight and now gone)
    delete_in_flight: Key | None = None
    alias: dict[str, int] = field(default_factory=dict)  # production alias as last acknowledged/observed
    alias_in_flight: dict[str, int] = field(default_factory=dict)
    cycle_acks: int = 0
    errors: list[str] = field(default_factory=list)
    reuses: list[str] = field(default_factory=list)

    def note(self, model: str, version: int, uid: str, source: str) -> None:
        with self.lock:
            first = self.seen.setdefault((model, version), uid)
            if first != uid:
                self.reuses.append(f"{model} v{version}: first {first!r}, now {uid!r} ({source})")

    def ack(self, model: str, version: int, uid: str) -> None:
        with self.lock:
            if (model, version) in self.acked:
                self.reuses.append(f"{model} v{version} acknowledged twice: {self.acked[model, version]!r}, {uid!r}")
            self.acked[model, version] = uid
            self.cycle_acks += 1
        self.note(model, version, uid, "201 response")

    def error(self, message: str) -> None:
        with self.lock:
            self.errors.append(message)


def _training_set(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    X = rng.normal(size=(40, 3))
    y = (X @ TRUE_W + 0.3 * rng.normal(size=40) > 0).astype(int)
    y[:4] = [0, 1, 0, 1]  # both classes in both splits, whatever the draw
    return X, y


def _trainer(url: str, cycle: int, tid: int, ledger: Ledger) -> None:
    rng = np.random.default_rng([SEED, cycle, tid])
    # No retries: a kill shows at once as the connection error it is (a retry would only wait for no server).
    with LogregClient(url, timeout=120, retries=0) as client:
        for n in range(MAX_TRAININGS_PER_CYCLE):
            model = MODELS[(tid + n) % len(MODELS)]
            X, y = _training_set(rng)
            uid = f"c{cycle}-t{tid}-n{n}"
            try:
                report = client.train(model, features=X, labels=y, tags={"uid": uid})
            except httpx.TransportError:
                return  # the server was killed
            except LogregAPIError as exc:
                ledger.error(f"train {model} ({uid}): {exc}")
                return
            ledger.ack(model, report["version"], uid)


def _alias_mover(url: str, cycle: int, ledger: Ledger, first_pass: threading.Event) -> None:
    """Moves production to a random listed version and deletes random versions beyond KEEP_VERSIONS.

    Its first pass runs before the trainers start (``first_pass``), so the flock queue they form
    does not starve it and the number of versions stays bounded. It deletes the newest version too,
    so a registry that numbered versions from the listing alone would reuse numbers; but only up to
    the newest version acknowledged with 201, whose save recorded next_version beyond it in
    model.json: a crash-published, never acknowledged newest version whose delete is cut short by a
    kill gets its number reused (a registry bug, see test_newest_version_number_survives_two_crashes).
    """
    rng = random.Random(f"{SEED}-{cycle}-mover")
    try:
        with LogregClient(url, timeout=120, retries=0) as client:
            for iteration in range(500):
                for model in MODELS:
                    if not _move_and_prune(client, model, rng, ledger):
                        return
                if iteration == 0:
                    first_pass.set()
                time.sleep(0.02)
    finally:
        first_pass.set()


def _move_and_prune(client: LogregClient, model: str, rng: random.Random, ledger: Ledger) -> bool:
    """One alias move and the deletes beyond KEEP_VERSIONS; False once the server is gone or misbehaves."""
    try:
        listed = client.versions(model)
        for entry in listed:
            ledger.note(model, entry["version"], entry["tags"]["uid"], "listing during the cycle")
        versions = [entry["version"] for entry in listed]
        target = rng.choice(versions)
        ledger.alias_in_flight[model] = target
        client.set_alias(model, "production", target)
        ledger.alias[model] = target
        del ledger.alias_in_flight[model]
        with ledger.lock:  # model.json records next_version > v for every v up to the newest 201
            safe = max((v for m, v in ledger.acked if m == model), default=0)
        candidates = [v for v in versions if v != target and v <= safe]
        for victim in rng.sample(candidates, min(len(candidates), max(0, len(versions) - KEEP_VERSIONS))):
            ledger.delete_in_flight = (model, victim)
            client.delete_version(model, victim)
            with ledger.lock:
                ledger.deleted.add((model, victim))
            ledger.delete_in_flight = None
    except httpx.TransportError:
        return False  # the server was killed
    except LogregAPIError as exc:
        if exc.status_code == 404 and exc.type == "not_found" and model not in ledger.alias:
            return True  # not trained yet
        ledger.error(f"alias/delete on {model}: {exc}")
        return False
    return True


def _allowed_aliases(ledger: Ledger, model: str) -> set[int | None]:
    return {ledger.alias.get(model), *([ledger.alias_in_flight[model]] if model in ledger.alias_in_flight else [])}


def _check_disk(store: Path, ledger: Ledger) -> dict[str, list[int]]:
    """With the server dead: every version loads with a verified sha256 and predicts; nothing is lost."""
    registry = ModelRegistry(store, cache_size=0)
    listing: dict[str, list[int]] = {}
    for entry in registry.list_models():
        name = entry["name"]
        listing[name] = entry["versions"]
        alias = entry["aliases"].get("production")
        assert alias in _allowed_aliases(ledger, name), (name, alias, ledger.alias, ledger.alias_in_flight)
        assert alias is None or alias in entry["versions"], (name, alias, entry["versions"])
        for meta in registry.list_versions(name):
            assert "integrity_error" not in meta, meta
            v = meta["version"]
            loaded = registry.load(name, v)  # raises IntegrityError unless the artefact matches its sha256
            proba = loaded.model.predict_proba(PROBE)
            assert proba.shape == (len(PROBE), 2) and np.allclose(proba.sum(axis=1), 1.0)
            ledger.note(name, v, loaded.metadata.tags["uid"], "disk after kill")
            first_sha = ledger.sha.setdefault((name, v), loaded.metadata.sha256)
            assert first_sha == loaded.metadata.sha256, f"{name} v{v} changed content: number reused?"

    on_disk = {(name, v) for name, versions in listing.items() for v in versions}
    if ledger.delete_in_flight is not None:  # the kill hit a delete: either outcome is fine, now settle it
        if ledger.delete_in_flight not in on_disk:
            ledger.deleted.add(ledger.delete_in_flight)
        ledger.delete_in_flight = None
    for key, uid in ledger.acked.items():
        if key in ledger.deleted:
            assert key not in on_disk, f"{key} was deleted (204) but is back"
        else:
            assert key in on_disk, f"{key} ({uid}) was acknowledged with 201 but is gone after the kill"
    for model in listing:
        ledger.alias.pop(model, None)
        ledger.alias_in_flight.pop(model, None)
    for entry in registry.list_models():
        if "production" in entry["aliases"]:
            ledger.alias[entry["name"]] = entry["aliases"]["production"]
    return listing


def _check_server(server: Server, ledger: Ledger, listing: dict[str, list[int]]) -> None:
    """Through the freshly (re)started server: the same versions are listed and each one loads and predicts."""
    leftovers = temp_entries(server.store)
    assert not leftovers, f"start-up cleanup left {leftovers}"
    with LogregClient(server.url, timeout=120, retries=0) as client:
        models = client.models()
        for entry in models:
            assert NAME_RE.fullmatch(entry["name"]) and not entry["name"].startswith("."), entry
            assert all(type(v) is int and v >= 1 for v in entry["versions"]), entry
        assert {m["name"]: m["versions"] for m in models} == listing
        for entry in models:
            name = entry["name"]
            assert entry["aliases"].get("production") == ledger.alias.get(name)
            listed = client.versions(name)
            assert [e["version"] for e in listed] == listing[name]
            for item in listed:
                assert "integrity_error" not in item, item
                v = item["version"]
                ledger.note(name, v, item["tags"]["uid"], "listing after restart")
                card = client.model_card(name, v)
                assert card["sha256"] == ledger.sha[name, v] and card["tags"]["uid"] == ledger.seen[name, v]
                answer = client.predict_proba(name, features=PROBE, version=v)  # cold cache: sha256 checked
                assert answer["version"] == v
                assert np.allclose(np.sum(answer["probabilities"], axis=1), 1.0)
            default = client.predict_proba(name, features=PROBE)["version"]
            assert default == ledger.alias.get(name, listing[name][-1])


@pytest.mark.slow
def test_kill_9_at_random_moments_loses_nothing_and_reuses_no_version(tmp_path: Path) -> None:
    store = tmp_path / "model_store"
    # One training slot per trainer: a 429 would mean a killed server leaked its slots.
    env = {**slow_publish_env(WRITE_DELAY), "LOGREG_MAX_CONCURRENT_TRAININGS": str(TRAINERS)}
    rng = random.Random(SEED)
    ledger = Ledger()
    kills_mid_write = kills_in_delay_window = 0
    startups: list[float] = []
    began = time.monotonic()

    def spawn(cycle: int) -> Server:  # the next server: imports now, serves once released
        return spawn_server(store, tmp_path / f"server-{cycle}.log", "--workers", "1", env=env, parked=True)

    def wait(server: Server, released_at: float) -> None:
        wait_until_healthy(server, timeout=120, poll=0.02)
        startups.append(time.monotonic() - released_at)

    server, spare = spawn(0), spawn(1)
    try:
        released_at = time.monotonic()
        release_server(server)
        listing = _check_disk(store, ledger)
        wait(server, released_at)
        for cycle in range(KILLS):
            _check_server(server, ledger, listing)
            ledger.cycle_acks = 0
            first_pass = threading.Event()
            threads = [threading.Thread(target=_alias_mover, args=(server.url, cycle, ledger, first_pass))]
            threads[0].start()
            assert first_pass.wait(timeout=60), f"cycle {cycle}: the alias mover's first pass took over 60 s"
            for tid in range(TRAINERS):
                threads.append(threading.Thread(target=_trainer, args=(server.url, cycle, tid, ledger)))
                threads[-1].start()
            deadline = time.monotonic() + 60
            while ledger.cycle_acks == 0 and not ledger.errors and time.monotonic() < deadline:
                time.sleep(0.005)
            assert ledger.cycle_acks > 0, (
                f"cycle {cycle}: no training finished within 60 s: {ledger.errors}\n{server.log.read_text()[-3000:]}"
            )
            time.sleep(rng.uniform(0.0, 0.2))
            kill_server(server)
            assert server.process.returncode == -signal.SIGKILL
            for thread in threads:
                thread.join(timeout=60)
                assert not thread.is_alive(), "a client thread hung after the kill"
            assert not ledger.errors, f"{ledger.errors}\n{server.log.read_text()[-3000:]}"

            leftovers = temp_entries(store)
            kills_mid_write += bool(leftovers)
            kills_in_delay_window += any((p / "metadata.json").is_file() for p in leftovers if p.is_dir())
            server, spare = spare, spawn(cycle + 2)
            released_at = time.monotonic()
            release_server(server)  # its start-up cleanup runs while the disk is checked: it only
            listing = _check_disk(store, ledger)  # touches the .tmp-* entries counted above
            assert not ledger.reuses, f"after kill {cycle + 1}: {ledger.reuses}"
            wait(server, released_at)
        _check_server(server, ledger, listing)
    finally:
        for process in (server, spare):
            if process.process.stdin is not None:
                process.process.stdin.close()
            stop_server(process)

    assert not ledger.reuses, ledger.reuses
    assert not ledger.errors, ledger.errors
    # The premise of the test: most kills land while a version is being written.
    assert kills_mid_write >= KILLS // 2, f"only {kills_mid_write} of {KILLS} kills left a write in progress"
    assert len(ledger.acked) >= KILLS
    print(
        f"\n{KILLS} kills in {time.monotonic() - began:.1f} s; {kills_mid_write} left temp entries, "
        f"{kills_in_delay_window} inside the write-delay window; {len(ledger.acked)} versions acknowledged, "
        f"{len(ledger.seen)} seen, {len(ledger.deleted)} deleted, final listing {listing}; "
        f"start-up {min(startups):.2f}-{max(startups):.2f} s (mean {sum(startups) / len(startups):.2f})"
    )


#: The least metadata a version's record needs.
META = {"classes": [0, 1], "feature_names": ["x0"]}


def tiny_model(n: int) -> LogisticRegression:
    """A tiny fitted model that fits META (the registry stores only models); ``n`` tells versions apart."""
    model = LogisticRegression().fit(np.array([[0.0], [1.0], [2.0], [3.0]]), np.array([0, 1, 0, 1]))
    model.n = n
    return model


# A kill -9 at an exact point, by a child process that SIGKILLs itself right after its first rename:
# the one that publishes a version (save) or takes it out of the listing (delete_version).
_CRASH_AFTER_RENAME = textwrap.dedent(
    """
    import os, signal, sys
    import numpy as np
    from service.engine.logistic import LogisticRegression
    from service.store.registry import ModelRegistry

    rename = os.rename

    def rename_then_die(*args, **kwargs):
        rename(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGKILL)

    os.rename = rename_then_die
    registry = ModelRegistry(sys.argv[1])
    if sys.argv[2] == "save":
        model = LogisticRegression().fit(np.array([[0.0], [1.0], [2.0], [3.0]]), np.array([0, 1, 0, 1]))
        model.n = 2
        registry.save("m", model, {"classes": [0, 1], "feature_names": ["x0"], "uid": "published-then-crashed"})
    else:
        registry.delete_version("m", int(sys.argv[3]))
    """
)


def _crash(store: Path, *args: str) -> None:
    result = subprocess.run([sys.executable, "-c", _CRASH_AFTER_RENAME, str(store), *args], timeout=120)
    assert result.returncode == -signal.SIGKILL


def test_newest_version_number_survives_two_crashes(tmp_path: Path) -> None:
    store = tmp_path / "model_store"
    ModelRegistry(store).save("m", tiny_model(1), {**META, "uid": "first"})
    _crash(store, "save")  # version 2 is published, but model.json still says next_version 2
    registry = ModelRegistry(store)
    registry.cleanup_temp()  # what a restarted server does
    assert [m["uid"] for m in registry.list_versions("m")] == ["first", "published-then-crashed"]
    assert registry.load("m", 2).model.n == 2  # listed, loadable, servable: clients may have used it
    _crash(store, "delete", "2")  # the delete is cut short right after renaming version 2 away
    registry = ModelRegistry(store)
    registry.cleanup_temp()
    assert [m["version"] for m in registry.list_versions("m")] == [1]
    stored = registry.save("m", tiny_model(3), {**META, "uid": "third"})
    assert stored.version == 3, f"version {stored.version} reused"
