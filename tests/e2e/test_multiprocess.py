"""Several processes on one registry directory, as replicas sharing a volume would run.

One server with ``--workers 2`` and a second, separate server process (``--workers 1``) share one
``--store``. Sixteen clients train versions of one model and move its production alias concurrently,
spread over both servers on fresh connections (so over all three worker processes). Afterwards the
registry must be consistent, identical from every process, and the alias moves must form one chain
(no lost update). Then the production alias is moved through one process at a time and every process
must serve the new version within one second.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pytest

from service.client import LogregClient
from service.store.registry import ModelRegistry

from .conftest import Server, slow_publish_env, start_server, stop_server, temp_entries

pytestmark = pytest.mark.e2e

MODEL = "shared"
CLIENTS = 16
OPS_PER_CLIENT = 6
MOVE_ROUNDS = 6
PROPAGATION_LIMIT = 1.0  # seconds after an alias move from which every process must serve the new version
SEED = 1234
TRUE_W = np.array([1.0, -1.0, 0.5])
PROBE = np.array([[0.5, -1.0, 2.0], [-1.5, 0.25, 0.0]])


def _training_set(rng: random.Random) -> tuple[list[list[float]], list[int]]:
    X = np.random.default_rng(rng.randrange(2**32)).normal(size=(40, 3))
    y = (X @ TRUE_W > 0).astype(int)
    y[:4] = [0, 1, 0, 1]
    return X.tolist(), y.tolist()


def _pid_of(url: str) -> tuple[LogregClient, int]:
    """A fresh connection (a new client) and the pid of the worker process that accepted it."""
    client = LogregClient(url, timeout=120)
    return client, client.health()["pid"]


def _discover(url: str, count: int, timeout: float = 60.0) -> set[int]:
    """The pids of a server's ``count`` worker processes, found by opening fresh connections."""
    pids: set[int] = set()
    deadline = time.monotonic() + timeout
    while len(pids) < count and time.monotonic() < deadline:
        client, pid = _pid_of(url)
        client.close()
        pids.add(pid)
        time.sleep(0.005)
    assert len(pids) == count, f"{url}: only worker(s) {pids} answered within {timeout} s"
    return pids


def _pin(url: str, pid: int, timeout: float = 60.0) -> LogregClient:
    """An open keep-alive connection served by worker ``pid`` of the server at ``url``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        client, answered = _pid_of(url)
        if answered == pid:
            return client
        client.close()
        time.sleep(0.005)
    raise AssertionError(f"could not reach worker {pid} of {url} within {timeout} s")


def _ask(client: LogregClient, pid: int, request: str, *args: object, **kwargs: object) -> object:
    """Call ``client.<request>`` on a pinned connection and make sure worker ``pid`` is the one that answered."""
    answer = getattr(client, request)(*args, **kwargs)
    assert client.health()["pid"] == pid, "the pinned connection moved to another worker"
    return answer


def _is_one_chain(start: int, moves: Iterable[tuple[int | None, int]], end: int) -> bool:
    """True if the moves (previous -> new) can be ordered into one chain from ``start`` to ``end``.

    That is how serialised moves look when each one saw the result of the one before; a lost update
    (two moves from the same previous version) breaks it. It is an Eulerian-trail test: in/out degrees
    balance except at the two ends, and every move is reachable from ``start``.
    """
    out_deg: Counter[int | None] = Counter()
    in_deg: Counter[int | None] = Counter()
    after: defaultdict[int | None, set[int]] = defaultdict(set)
    for prev, new in moves:
        out_deg[prev] += 1
        in_deg[new] += 1
        after[prev].add(new)
    for node in set(out_deg) | set(in_deg) | {start, end}:
        expected = (node == start) - (node == end)
        if out_deg[node] - in_deg[node] != expected:
            return False
    reached, todo = {start}, [start]
    while todo:
        for nxt in after[todo.pop()]:
            if nxt not in reached:
                reached.add(nxt)
                todo.append(nxt)
    return all(node in reached for node in out_deg)


def test_is_one_chain_catches_lost_updates() -> None:
    assert _is_one_chain(1, [(1, 2), (2, 3), (3, 2)], 2)
    assert _is_one_chain(1, [(1, 1)], 1)
    assert _is_one_chain(1, [], 1)
    assert not _is_one_chain(1, [(1, 2), (1, 3)], 3)  # both moves started from 1: one was lost
    assert not _is_one_chain(1, [(1, 2), (3, 4), (4, 3)], 2)
    assert not _is_one_chain(1, [(1, 2)], 1)


def _check_process(client: LogregClient, pid: int, versions: dict[int, str], production: int,
                   sha: dict[int, str]) -> None:
    """From one process: the full listing, the alias, and that every version loads and predicts."""
    n = len(versions)
    listed = _ask(client, pid, "versions", MODEL)
    assert [e["version"] for e in listed] == list(range(1, n + 1)), f"pid {pid}: {[e['version'] for e in listed]}"
    for entry in listed:
        assert "integrity_error" not in entry, entry
        assert entry["tags"]["uid"] == versions[entry["version"]]
        assert entry["aliases"] == (["production"] if entry["version"] == production else [])
    (model,) = _ask(client, pid, "models")
    assert model["versions"] == list(range(1, n + 1)) and model["aliases"] == {"production": production}
    for v in range(1, n + 1):
        answer = client.predict_proba(MODEL, features=PROBE.tolist(), version=v)
        assert answer["version"] == v and np.allclose(np.sum(answer["probabilities"], axis=1), 1.0)
        assert client.model_card(MODEL, v)["sha256"] == sha[v]
    assert _ask(client, pid, "predict_proba", MODEL, features=PROBE.tolist())["version"] == production


@pytest.mark.slow
def test_two_servers_and_two_workers_share_one_registry(tmp_path: Path) -> None:
    store = tmp_path / "model_store"
    # A small write delay widens the window in which saves from different processes overlap; one training
    # slot per client (the limit is shared by every process on the registry), so no request gets a 429.
    env = {**slow_publish_env(0.01), "LOGREG_MAX_CONCURRENT_TRAININGS": str(CLIENTS)}
    a = start_server(store, tmp_path / "a.log", "--workers", "2", env=env)
    b: Server | None = None
    pinned: dict[int, LogregClient] = {}
    try:
        b = start_server(store, tmp_path / "b.log", "--workers", "1", env=env)
        url_of = dict.fromkeys(_discover(a.url, 2), a.url) | dict.fromkeys(_discover(b.url, 1), b.url)
        assert len(url_of) == 3, url_of

        # -- 16 clients: trainings, alias moves and unversioned predictions, fresh connections each time
        lock = threading.Lock()
        versions: dict[int, str] = {}  # version -> uid of the 201 that announced it
        moves: list[tuple[int | None, int]] = []
        served: list[int] = []
        answered_by: Counter[int] = Counter()
        errors: list[str] = []
        with LogregClient(a.url) as client:
            X, y = _training_set(random.Random(SEED))
            first = client.train(MODEL, features=X, labels=y, tags={"uid": "seed"})
            assert first["version"] == 1
            versions[1] = "seed"
            assert client.set_alias(MODEL, "production", 1)["previous_version"] is None
        barrier = threading.Barrier(CLIENTS)

        def run(tid: int) -> None:
            rng = random.Random(f"{SEED}-{tid}")
            try:
                barrier.wait(timeout=60)
                for n in range(OPS_PER_CLIENT):
                    url = (a.url, b.url)[(tid + n) % 2]
                    op = rng.choices(("train", "alias", "predict"), weights=(5, 3, 2))[0]
                    client, pid = _pid_of(url)
                    with client:
                        if op == "train":
                            X, y = _training_set(rng)
                            uid = f"t{tid}-n{n}"
                            version = client.train(MODEL, features=X, labels=y, tags={"uid": uid})["version"]
                            with lock:
                                assert version not in versions, f"version {version} announced twice"
                                versions[version] = uid
                        elif op == "alias":
                            with lock:
                                target = rng.choice(sorted(versions))
                            change = client.set_alias(MODEL, "production", target)
                            assert change["version"] == target
                            with lock:
                                moves.append((change["previous_version"], target))
                        else:
                            answer = client.predict_proba(MODEL, features=PROBE.tolist())
                            with lock:
                                served.append(answer["version"])
                        assert client.health()["pid"] == pid
                    with lock:
                        answered_by[pid] += 1
            except Exception as exc:
                with lock:
                    errors.append(f"client {tid}: {exc!r}")

        threads = [threading.Thread(target=run, args=(tid,)) for tid in range(CLIENTS)]
        began = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=300)
            assert not thread.is_alive(), "a client hung"
        phase_seconds = time.monotonic() - began
        assert not errors, errors

        # -- a consistent registry: versions 1..N, one per 201, each loads; the alias moves form one chain
        n = len(versions)
        assert sorted(versions) == list(range(1, n + 1)), sorted(versions)
        registry = ModelRegistry(store, cache_size=0)
        on_disk = registry.list_versions(MODEL)
        assert [m["version"] for m in on_disk] == list(range(1, n + 1))
        assert all(m["tags"]["uid"] == versions[m["version"]] for m in on_disk)
        sha = {}
        for v in range(1, n + 1):
            loaded = registry.load(MODEL, v)  # sha256 verified before unpickling
            assert np.allclose(loaded.model.predict_proba(PROBE).sum(axis=1), 1.0)
            sha[v] = loaded.metadata.sha256
        production = registry.resolve(MODEL, "production")
        assert _is_one_chain(1, moves, production), f"alias moves do not form one chain: {moves} -> {production}"
        assert set(served) <= set(versions)
        assert not temp_entries(store), temp_entries(store)

        for pid, url in url_of.items():
            pinned[pid] = _pin(url, pid)
            _check_process(pinned[pid], pid, versions, production, sha)

        # -- move production through one process; every process serves it within PROPAGATION_LIMIT
        rng = random.Random(SEED)
        latencies: list[float] = []
        stale_answers = 0
        order = sorted(url_of)
        for round_ in range(MOVE_ROUNDS):
            for client in pinned.values():
                client.close()
            pinned = {pid: _pin(url, pid) for pid, url in url_of.items()}  # fresh, well within keep-alive
            mover = order[round_ % len(order)]
            target = rng.choice([v for v in versions if v != production])
            moved_at = time.monotonic()
            change = _ask(pinned[mover], mover, "set_alias", MODEL, "production", target)
            assert change == {"name": MODEL, "alias": "production", "version": target, "previous_version": production}
            production = target
            # Poll every process without pause until each has answered the new version. A request *sent*
            # more than PROPAGATION_LIMIT after the move must never get the old one (judging by the send
            # time keeps a slow answer on a loaded machine from counting as a stale process).
            waiting = set(order)
            while waiting:
                for pid in sorted(waiting):
                    sent = time.monotonic() - moved_at
                    answer = pinned[pid].predict_proba(MODEL, features=PROBE.tolist())
                    assert pinned[pid].health()["pid"] == pid, "the pinned connection moved to another worker"
                    if answer["version"] == target:
                        waiting.discard(pid)
                        continue
                    stale_answers += 1
                    assert sent <= PROPAGATION_LIMIT, (
                        f"round {round_}: pid {pid} still served version {answer['version']} to a request sent "
                        f"{sent:.3f} s after production moved to {target} through pid {mover}"
                    )
            latencies.append(time.monotonic() - moved_at)
            for pid in order:  # and it stays there
                assert _ask(pinned[pid], pid, "predict_proba", MODEL, features=PROBE.tolist())["version"] == target
        print(
            f"\n{n} versions from {n - 1} concurrent trainings and {len(moves)} alias moves by {CLIENTS} clients in "
            f"{phase_seconds:.1f} s; requests per pid {dict(answered_by)}; after {MOVE_ROUNDS} moves every process "
            f"answered with the new version within {max(latencies) * 1000:.1f} ms ({stale_answers} stale answers)"
        )
    finally:
        for client in pinned.values():
            client.close()
        stop_server(a)
        if b is not None:
            stop_server(b)
