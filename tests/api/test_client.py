"""The Python client in process (through the TestClient, no socket): its typed answers match the server's
response models and what the server sends, its errors form one tree, it retries what may be retried and
honours Retry-After, and ``train`` returns a report however the server runs the training. The async client
runs the same calls."""

from __future__ import annotations

import asyncio
import time
import typing
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from service import client as api
from service.api import schemas
from service.client import (
    AsyncLogregClient,
    Conflict,
    ConnectionFailed,
    InvalidInput,
    JobTimeout,
    LogregAPIError,
    LogregClient,
    NotFound,
    RateLimited,
    Retry,
    ServiceUnavailable,
    TooLarge,
    Unauthorized,
)
from service.domain import Job, VersionMetadata

from ..support import TOY_FEATURES, TOY_LABELS, TOY_NAMES, AsyncInProcess, InProcess

BREAST_CANCER = Path(__file__).resolve().parents[2] / "examples" / "breast_cancer.csv"
KEY = "s3cret-s3cret-s3cret"


def conforms(answer: Any, shape: Any) -> None:
    """``answer`` has every required key of the TypedDict ``shape`` and no key it does not declare (nested
    TypedDicts and lists of them too)."""
    if typing.is_typeddict(shape):
        assert isinstance(answer, dict), answer
        hints = typing.get_type_hints(shape)
        assert shape.__required_keys__ <= set(answer), (shape.__name__, shape.__required_keys__ - set(answer))
        assert set(answer) <= set(hints), (shape.__name__, set(answer) - set(hints))
        for key, value in answer.items():
            conforms(value, hints[key])
        return
    origin, args = typing.get_origin(shape), typing.get_args(shape)
    if origin is list and answer is not None and typing.is_typeddict(args[0]):
        for item in answer:
            conforms(item, args[0])
    elif origin in (typing.Union, type(int | None)) and answer is not None:
        for arg in args:
            if typing.is_typeddict(arg):
                conforms(answer, arg)


@pytest.mark.parametrize(("shape", "model", "skip"), [
    (api.TrainReport, schemas.TrainResponse, set()),
    (api.Predictions, schemas.PredictResponse, set()),
    (api.Probabilities, schemas.PredictProbaResponse, set()),
    (api.Job, Job, set()),
    (api.ModelCard, VersionMetadata, {"validation_sample"}),  # the card leaves it out
])
def test_typed_answers_mirror_the_servers_models(shape: Any, model: Any, skip: set[str]) -> None:
    fields = {k for k in model.model_fields if k not in skip}
    assert set(typing.get_type_hints(shape)) == fields
    if shape.__total__ or shape.__required_keys__:
        required = {k for k, f in model.model_fields.items() if f.is_required()}
        assert shape.__required_keys__ >= required
        assert shape.__required_keys__ <= fields


@pytest.fixture
def app_client(make_client: Callable[..., TestClient]) -> Iterator[LogregClient]:
    with LogregClient("http://localhost", transport=InProcess(make_client())) as client:
        yield client


def _train_toy(client: LogregClient, model: str = "toy", **options: Any) -> api.TrainReport:
    return client.train(model, features=TOY_FEATURES, labels=TOY_LABELS, feature_names=TOY_NAMES, **options)


def test_every_answer_has_its_typed_shape(app_client: LogregClient) -> None:
    client = app_client
    report = client.train_csv("bc", BREAST_CANCER, "diagnosis")
    conforms(report, api.TrainReport)
    conforms(_train_toy(client, validation_fraction=0.25), api.TrainReport)
    rows = [[1.0, 2.0], [0.0, 0.0]]
    conforms(client.predict("toy", features=rows), api.Predictions)
    conforms(client.predict("toy", features=rows, explain=True), api.Predictions)
    conforms(client.predict_proba("toy", records=[{"a": 1.0, "b": 2.0}]), api.Probabilities)
    conforms(client.metrics("toy", features=TOY_FEATURES, labels=TOY_LABELS), api.EvaluationReport)
    conforms(client.stored_metrics("bc"), api.StoredMetrics)
    [conforms(m, api.ModelSummary) for m in client.models()]
    [conforms(v, api.VersionSummary) for v in client.versions("bc")]
    conforms(client.model_card("bc", 1), api.ModelCard)
    conforms(client.set_alias("bc", "production", 1), api.AliasChange)
    conforms(client.set_threshold("bc", 1, 0.4), api.ThresholdChange)
    conforms(client.optimize_threshold("bc", 1, "f1"), api.ThresholdChoice)
    conforms(client.drift("bc", 1), api.Drift)
    conforms(client.health(), api.Health)
    conforms(client.ready(), api.Ready)
    job = client.train_background("toy", features=TOY_FEATURES, labels=TOY_LABELS)
    conforms(job, api.Job)
    conforms(client.wait_for_job(job["id"], timeout=60), api.Job)
    assert client.delete_alias("bc", "production") is None
    assert client.delete_version("toy", 1) is None


def test_train_returns_the_report_of_a_background_job(app_client: LogregClient) -> None:
    seen: list[str] = []
    report = _train_toy(app_client, background=True, progress=lambda job: seen.append(job["state"]))
    assert report["model"] == "toy" and report["version"] == 1
    assert seen[-1] == "succeeded"
    from_csv = app_client.train_csv("bc", BREAST_CANCER, "diagnosis", background=True)
    assert from_csv["version"] == 1 and from_csv["feature_names"][0] == "mean_radius"
    job = app_client.train_csv_background("bc", BREAST_CANCER, "diagnosis")
    assert job["state"] in ("queued", "running", "succeeded")
    assert app_client.job_report(job["id"], timeout=60)["version"] == 2


def test_a_large_upload_goes_to_the_background_and_train_csv_still_returns_a_report(make_client) -> None:
    app = make_client(background_train_cells=100)
    with LogregClient("http://localhost", transport=InProcess(app)) as client:
        report = client.train_csv("bc", BREAST_CANCER, "diagnosis")
    assert report["version"] == 1 and report["n_samples"] == 569


def test_train_from_a_uri_the_server_reads(make_client) -> None:
    app = make_client(data_roots=str(BREAST_CANCER.parent))
    with LogregClient("http://localhost", transport=InProcess(app)) as client:
        report = client.train_uri("bc", str(BREAST_CANCER), "diagnosis", columns=["mean_radius", "mean_texture"])
        assert report["feature_names"] == ["mean_radius", "mean_texture"]
        job = client.train_uri_background("bc", str(BREAST_CANCER), "diagnosis")
        assert client.job_report(job["id"])["version"] == 2
        with pytest.raises(Unauthorized) as err:  # outside LOGREG_DATA_ROOTS: 403
            client.train_uri("bc", "/etc/passwd", "x", format="csv")
        assert err.value.status_code == 403 and err.value.type == "data_access_denied"


def test_a_failed_background_training_raises_its_error_with_the_job(app_client: LogregClient) -> None:
    with pytest.raises(InvalidInput) as err:
        app_client.train("one", features=[[0.0], [1.0]], labels=[1, 1], background=True, validation_fraction=0)
    assert err.value.job is not None and err.value.job["state"] == "failed"
    assert "single class" in err.value.message and err.value.status_code == 422


def test_an_idempotency_key_replays_the_first_training(app_client: LogregClient) -> None:
    first = _train_toy(app_client, idempotency_key="toy-1")
    again = _train_toy(app_client, idempotency_key="toy-1")
    assert again == first
    assert [v["version"] for v in app_client.versions("toy")] == [1]


def test_errors_form_one_tree(make_client) -> None:
    app = make_client(max_predict_rows=2, api_keys=KEY)
    with LogregClient("http://localhost", transport=InProcess(app)) as anonymous, \
            pytest.raises(Unauthorized) as unauthorized:
        anonymous.train("toy", features=TOY_FEATURES, labels=TOY_LABELS)
    assert unauthorized.value.status_code == 401
    with LogregClient("http://localhost", transport=InProcess(app), api_key=KEY) as client:
        _train_toy(client)
        with pytest.raises(NotFound) as not_found:
            client.model_card("nope", 1)
        with pytest.raises(InvalidInput) as invalid:
            client.predict("toy", features=[[1.0]])
        with pytest.raises(TooLarge):
            client.predict("toy", features=[[1.0, 2.0]] * 3)
        client.set_alias("toy", "production", 1)
        with pytest.raises(Conflict):
            client.delete_version("toy", 1)
        job = client.train_background("toy", features=TOY_FEATURES, labels=TOY_LABELS)
        client.wait_for_job(job["id"])
        with pytest.raises(Conflict) as ended:
            client.cancel_job(job["id"])
    assert not_found.value.type == "not_found" and not_found.value.details == {"name": "nope"}
    assert "expects 2 features" in invalid.value.message
    assert "already succeeded" in ended.value.message
    for err in (unauthorized, not_found, invalid, ended):
        assert isinstance(err.value, LogregAPIError)


def test_a_refused_connection_is_connection_failed_and_an_httpx_transport_error() -> None:
    with LogregClient("http://127.0.0.1:9", retries=Retry(attempts=2, backoff=0.01)) as client:
        started = time.monotonic()
        with pytest.raises(ConnectionFailed) as err:
            client.health()
    assert isinstance(err.value, LogregAPIError) and isinstance(err.value, httpx.TransportError)
    assert err.value.status_code == 0 and "127.0.0.1:9" in err.value.message
    assert time.monotonic() - started < 5


# -- retries, on a scripted server ---------------------------------------------------------------------------
class Script:
    """A transport that answers from a list of (status, headers, body) and records each request."""

    def __init__(self, *answers: tuple[int, dict[str, str], Any]) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        status, headers, body = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(body, Exception):
            raise body
        return httpx.Response(status, headers=headers, json=body)


BUSY = (429, {"Retry-After": "2"}, {"error": {"type": "too_many_trainings", "message": "busy", "details": None}})
DOWN = (503, {}, {"error": {"type": "registry_unavailable", "message": "disk", "details": None}})
HEALTHY = (200, {}, {"status": "ok", "pid": 1})
REPORT = {"model": "m", "version": 3}


@pytest.fixture
def slept(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The client's pauses, recorded instead of slept."""
    pauses: list[float] = []
    monkeypatch.setattr(api.time, "sleep", pauses.append)
    return pauses


def scripted(script: Script, **options: Any) -> LogregClient:
    return LogregClient("http://scripted", transport=httpx.MockTransport(script), **options)


def test_an_idempotent_call_is_retried_after_retry_after(slept: list[float]) -> None:
    script = Script(BUSY, BUSY, HEALTHY)
    assert scripted(script).health()["pid"] == 1
    assert len(script.requests) == 3 and slept == [2.0, 2.0]


def test_retry_after_as_an_http_date(slept: list[float]) -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    script = Script((503, {"Retry-After": when}, DOWN[2]), HEALTHY)
    scripted(script).health()
    assert 25 < slept[0] <= 30


def test_retries_are_bounded_with_exponential_backoff(slept: list[float]) -> None:
    script = Script(DOWN)
    with pytest.raises(ServiceUnavailable) as err:
        scripted(script, retries=Retry(attempts=4, backoff=1.0, max_backoff=3.0)).models()
    assert len(script.requests) == 5 and err.value.status_code == 503
    for pause, step in zip(slept, [1.0, 2.0, 3.0, 3.0], strict=True):  # jitter: half to all of each step
        assert step / 2 <= pause <= step


def test_a_retry_after_beyond_the_limit_is_raised_at_once(slept: list[float]) -> None:
    script = Script((429, {"Retry-After": "3600"}, BUSY[2]))
    with pytest.raises(RateLimited) as err:
        scripted(script).health()
    assert err.value.retry_after == 3600 and len(script.requests) == 1 and slept == []


def test_a_post_is_retried_only_with_an_idempotency_key(slept: list[float]) -> None:
    script = Script(BUSY, (201, {}, REPORT))
    with pytest.raises(RateLimited) as err:
        scripted(script).train("m", features=[[0.0]], labels=[0])
    assert err.value.retry_after == 2 and len(script.requests) == 1
    script = Script(BUSY, (201, {}, REPORT))
    assert scripted(script).train("m", features=[[0.0]], labels=[0], idempotency_key="k")["version"] == 3
    assert [r.headers["Idempotency-Key"] for r in script.requests] == ["k", "k"]


def test_scoring_posts_are_retried(slept: list[float]) -> None:
    script = Script(DOWN, (200, {}, {"model": "m", "version": 1, "predictions": [1], "threshold": 0.5}))
    assert scripted(script).predict("m", features=[[1.0]])["predictions"] == [1]
    assert len(script.requests) == 2


def test_a_broken_connection_is_retried_only_when_the_call_may_be_repeated(slept: list[float]) -> None:
    broken = (0, {}, httpx.ReadError("connection reset"))
    script = Script(broken, HEALTHY)
    assert scripted(script).health()["status"] == "ok"
    script = Script(broken, (201, {}, REPORT))
    with pytest.raises(ConnectionFailed):
        scripted(script).train("m", features=[[0.0]], labels=[0])
    refused = (0, {}, httpx.ConnectError("refused"))  # nothing was sent: safe to send again, even a POST
    script = Script(refused, (201, {}, REPORT))
    assert scripted(script).train("m", features=[[0.0]], labels=[0])["version"] == 3


def test_an_upload_is_sent_whole_again_on_a_retry(slept: list[float]) -> None:
    script = Script(BUSY, (201, {}, REPORT))
    scripted(script).train_csv("m", BREAST_CANCER, "diagnosis", idempotency_key="k")
    first, second = (r.read() for r in script.requests)
    assert BREAST_CANCER.read_bytes() in second and len(first) == len(second)


def test_a_retried_keyed_training_still_running_waits_for_the_first(slept: list[float]) -> None:
    running = {"error": {"type": "conflict", "message": "still running", "details": {"job": "ab" * 16}}}
    job = {"id": "ab" * 16, "model": "m", "state": "succeeded", "result": REPORT}
    script = Script((409, {}, running), (200, {}, job))
    assert scripted(script).train("m", features=[[0.0]], labels=[0], idempotency_key="k") == REPORT
    assert script.requests[1].url.path == f"/jobs/{'ab' * 16}"


def test_waiting_for_a_job_is_bounded() -> None:
    job = {"id": "cd" * 16, "model": "m", "state": "running", "result": None, "error": None}
    with pytest.raises(JobTimeout) as err:
        scripted(Script((200, {}, job))).wait_for_job(job["id"], timeout=0.3, poll=0.05)
    assert isinstance(err.value, TimeoutError) and err.value.job is not None


def test_a_cancelled_job_is_a_conflict() -> None:
    job = {"id": "ef" * 16, "model": "m", "state": "cancelled", "result": None,
           "error": {"type": "cancelled", "message": "the job was cancelled; nothing was stored"}}
    with pytest.raises(Conflict) as err:
        scripted(Script((200, {}, job))).job_report(job["id"])
    assert err.value.type == "cancelled" and err.value.job == job


def test_an_answer_not_in_the_services_shape(slept: list[float]) -> None:
    def proxy(request: httpx.Request) -> httpx.Response:
        return httpx.Response(502, text="<html><body>Bad   gateway</body></html>")

    with pytest.raises(ServiceUnavailable) as err, LogregClient("http://x", transport=httpx.MockTransport(proxy),
                                                                retries=0) as client:
        client.health()
    assert err.value.type == "http_error" and err.value.message == "<html><body>Bad gateway</body></html>"


# -- the async client -----------------------------------------------------------------------------------------
def test_the_async_client_has_the_same_methods() -> None:
    public = {n for n in dir(LogregClient) if not n.startswith("_")} - {"close"}
    assert public <= {n for n in dir(AsyncLogregClient) if not n.startswith("_")}
    for name in public - {"base_url", "retry"}:
        assert asyncio.iscoroutinefunction(getattr(AsyncLogregClient, name)), name


def test_the_async_client_in_process(make_client) -> None:
    app = make_client()

    async def main() -> None:
        async with AsyncLogregClient("http://localhost", transport=AsyncInProcess(app)) as client:
            report, csv_report = await asyncio.gather(
                client.train("toy", features=TOY_FEATURES, labels=TOY_LABELS, feature_names=TOY_NAMES,
                             background=True),
                client.train_csv("bc", BREAST_CANCER, "diagnosis"),
            )
            assert report["version"] == 1 and csv_report["version"] == 1
            answer = await client.predict_proba("toy", features=[[1.0, 2.0]])
            assert answer["classes"] == [0, 1]
            assert {m["name"] for m in await client.models()} == {"bc", "toy"}
            with pytest.raises(NotFound):
                await client.versions("nope")
            job = await client.train_background("toy", features=TOY_FEATURES, labels=TOY_LABELS)
            assert (await client.job_report(job["id"]))["version"] == 2

    asyncio.run(main())


def test_the_async_client_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    pauses: list[float] = []

    async def sleep(seconds: float) -> None:
        pauses.append(seconds)

    monkeypatch.setattr(api.anyio, "sleep", sleep)
    script = Script(BUSY, HEALTHY)

    async def main() -> None:
        async with AsyncLogregClient("http://scripted", transport=httpx.MockTransport(script)) as client:
            assert (await client.health())["pid"] == 1
        async with AsyncLogregClient("http://127.0.0.1:9", retries=1) as refused:
            with pytest.raises(ConnectionFailed):
                await refused.health()

    asyncio.run(main())
    assert pauses[0] == 2.0 and len(script.requests) == 2
