"""The peers' own clients, with their default settings, against a real uvicorn: Triton's (sync and aio, binary and
JSON tensors, gzip and deflate both ways, metadata and readiness), KServe's and MLServer's (live when installed,
else the bytes they were recorded sending: see ``peers.py``) and MLflow's ``ScoringServerClient`` (two models,
``LOGREG_INVOCATIONS_MODEL``). Every probability equals ``/predict_proba``'s exactly."""

from __future__ import annotations

import asyncio
import gzip
import zlib
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import orjson
import pytest

from .conftest import Server, start_server, stop_server
from .peers import (
    CHURN_CSV,
    CHURN_TRAINING,
    Exchange,
    breast_cancer,
    churn_tensors,
    kserve_exchanges,
    mlserver_exchanges,
    recorded,
    rows_of,
)

pytestmark = pytest.mark.e2e
HEADER = "inference-header-content-length"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The demo model ``breast-cancer`` and the mixed-type ``churn``; a bare ``/invocations`` serves the former."""
    root = tmp_path_factory.mktemp("peers")
    server = start_server(root / "model_store", root / "server.log", "--demo",
                          env={"LOGREG_INVOCATIONS_MODEL": "breast-cancer"})
    try:
        resp = httpx.post(f"{server.url}/train", files={"file": ("churn.csv", CHURN_CSV.read_bytes(), "text/csv")},
                          data=CHURN_TRAINING, timeout=120)
        assert resp.status_code == 201, resp.text
        yield server
    finally:
        stop_server(server)


def reference(server: Server, rows: str) -> np.ndarray:
    """``/predict_proba`` of the rows an exchange sends."""
    model, body = rows_of(rows)
    resp = httpx.post(f"{server.url}/predict_proba", json={"model": model, **body}, timeout=60)
    assert resp.status_code == 200, resp.text
    return np.asarray(resp.json()["probabilities"])


def labels(server: Server, model: str, **body: Any) -> list[Any]:
    resp = httpx.post(f"{server.url}/predict", json={"model": model, **body}, timeout=60)
    assert resp.status_code == 200, resp.text
    return resp.json()["predictions"]


def host_port(server: Server) -> str:
    return server.url.removeprefix("http://")


# == Triton ===============================================================================================
def test_triton_metadata_readiness_and_errors(server: Server) -> None:
    import tritonclient.http as triton
    from tritonclient.utils import InferenceServerException

    client = triton.InferenceServerClient(host_port(server))
    try:
        assert client.is_server_live() and client.is_server_ready()
        assert client.is_model_ready("breast-cancer") and client.is_model_ready("breast-cancer", "1")
        assert client.is_model_ready("churn") and not client.is_model_ready("no-such-model")
        assert "binary_tensor_data" in client.get_server_metadata()["extensions"]
        meta = client.get_model_metadata("breast-cancer")
        assert meta["inputs"] == [{"name": "input-0", "datatype": "FP64", "shape": [-1, 30]}]
        assert [o["name"] for o in meta["outputs"]] == ["predict", "predict_proba"]
        assert [i["datatype"] for i in client.get_model_metadata("churn")["inputs"]] == [
            "BYTES", "BYTES", "FP64", "FP64", "BOOL", "FP64"]
        # errors reach the caller as the client's exception, with the server's message (issue 15: a TypeError)
        for call, status, message in [(lambda: client.get_model_metadata("no-such-model"), "404", "'no-such-model'"),
                                      (lambda: client.get_model_config("breast-cancer"), "404", "no route"),
                                      (lambda: client.get_model_repository_index(), "404", "no route")]:
            with pytest.raises(InferenceServerException) as info:
                call()
            assert info.value.status() == status and message in info.value.message()
    finally:
        client.close()


def _triton_inputs(module: Any, X: np.ndarray, binary: bool) -> list[Any]:
    tensor = module.InferInput("input-0", list(X.shape), "FP64")
    tensor.set_data_from_numpy(X, binary_data=binary)
    return [tensor]


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
@pytest.mark.parametrize("compression", [None, "gzip", "deflate"])
def test_triton_sync_client(server: Server, binary: bool, compression: str | None) -> None:
    import tritonclient.http as triton

    _, X = breast_cancer()
    want, predicted = reference(server, "breast_cancer"), labels(server, "breast-cancer", features=X.tolist())
    client = triton.InferenceServerClient(host_port(server))
    try:
        for answer in (None, "gzip", "deflate"):
            # no outputs named: the client asks for every output as binary data
            result = client.infer("breast-cancer", _triton_inputs(triton, X, binary),
                                  request_compression_algorithm=compression, response_compression_algorithm=answer)
            assert np.array_equal(result.as_numpy("predict_proba"), want)
            assert [v.decode() for v in result.as_numpy("predict")] == predicted
            outputs = [triton.InferRequestedOutput("predict_proba", binary_data=binary),
                       triton.InferRequestedOutput("predict", binary_data=not binary)]
            result = client.infer("breast-cancer", _triton_inputs(triton, X, binary), model_version="1",
                                  outputs=outputs, request_compression_algorithm=compression,
                                  response_compression_algorithm=answer, request_id="r-1")
            assert result.get_response()["id"] == "r-1"
            assert np.array_equal(result.as_numpy("predict_proba"), want)
            assert [v.decode() if isinstance(v, bytes) else v for v in result.as_numpy("predict")] == predicted
    finally:
        client.close()


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_triton_aio_client(server: Server, binary: bool) -> None:
    import tritonclient.http.aio as triton

    _, X = breast_cancer()
    want = reference(server, "breast_cancer")

    async def run() -> None:
        client = triton.InferenceServerClient(host_port(server))
        try:
            assert await client.is_server_live() and await client.is_server_ready()
            assert await client.is_model_ready("breast-cancer")
            assert (await client.get_model_metadata("churn"))["name"] == "churn"
            for compression in (None, "gzip", "deflate"):
                result = await client.infer("breast-cancer", _triton_inputs(triton, X, binary),
                                            request_compression_algorithm=compression,
                                            response_compression_algorithm=compression)
                assert np.array_equal(result.as_numpy("predict_proba"), want), compression
        finally:
            await client.close()

    asyncio.run(run())


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_triton_mixed_type_table(server: Server, binary: bool) -> None:
    import tritonclient.http as triton

    tensors, rows = churn_tensors(typed=binary)  # typed and binary, or all text as JSON
    inputs = []
    for column, datatype, array in tensors:
        inputs.append(triton.InferInput(column, list(array.shape), datatype))
        inputs[-1].set_data_from_numpy(array, binary_data=binary)
    client = triton.InferenceServerClient(host_port(server))
    try:
        result = client.infer("churn", inputs, request_compression_algorithm="gzip")
    finally:
        client.close()
    assert np.array_equal(result.as_numpy("predict_proba"), reference(server, rows))


def test_answers_are_compressed_when_asked(server: Server) -> None:
    _, X = breast_cancer()
    body = {"inputs": [{"name": "input-0", "shape": list(X.shape), "datatype": "FP64", "data": X.tolist()}],
            "parameters": {"binary_data_output": True}}
    want = reference(server, "breast_cancer")
    with httpx.Client(base_url=server.url, timeout=60) as client:
        for coding, decode in (("gzip", gzip.decompress), ("deflate", zlib.decompress)):
            with client.stream("POST", "/v2/models/breast-cancer/infer", json=body,
                               headers={"Accept-Encoding": coding}) as resp:
                raw = b"".join(resp.iter_raw())
            assert resp.headers["content-encoding"] == coding
            plain = decode(raw)
            assert len(raw) < len(plain)
            proba = answer_proba(httpx.Response(200, headers={HEADER: resp.headers[HEADER]}, content=plain))
            assert np.array_equal(proba, want)


# == KServe and MLServer ==================================================================================
def answer_proba(resp: httpx.Response) -> np.ndarray:
    """``predict_proba`` of a V2 answer, JSON or binary, as a client reads it."""
    assert resp.status_code == 200, resp.text
    n = int(resp.headers.get(HEADER, len(resp.content)))
    head, offset = orjson.loads(resp.content[:n]), n
    for output in head["outputs"]:
        size = (output.get("parameters") or {}).get("binary_data_size")
        if output["name"] == "predict_proba":
            values = (np.frombuffer(resp.content[offset : offset + size], "<f8") if size is not None
                      else np.asarray(output["data"]))
            return values.reshape(output["shape"])
        offset += size or 0
    raise AssertionError(f"no predict_proba in {head}")


def replay(server: Server, exchange: Exchange) -> np.ndarray:
    resp = httpx.post(server.url + exchange.path, content=exchange.body, headers=exchange.headers, timeout=60)
    return answer_proba(resp)


def check_exchanges(server: Server, exchanges: list[Exchange], live: bool) -> None:
    assert exchanges
    for exchange in exchanges:
        want = reference(server, exchange.rows)
        got = np.asarray(exchange.proba) if live else replay(server, exchange)
        assert np.array_equal(got, want), (exchange.client, exchange.case)


def test_kserve_rest_client_live(server: Server) -> None:
    pytest.importorskip("kserve", reason="kserve pins pandas<3 and protobuf<7; its recorded bytes are replayed")
    exchanges = kserve_exchanges(server.url)
    check_exchanges(server, exchanges, live=True)
    assert any(b'"model_name":"breast-cancer"' in e.body for e in exchanges)


def test_kserve_recorded_requests(server: Server) -> None:
    exchanges = recorded("kserve")
    check_exchanges(server, exchanges, live=False)
    assert {e.headers.get("content-type") for e in exchanges} == {"application/octet-stream", "application/json"}
    assert sum(HEADER in e.headers for e in exchanges) >= 3  # binary inputs, the client's default
    assert all(b'"model_name"' in e.body for e in exchanges)


def test_mlserver_codecs_live(server: Server) -> None:
    pytest.importorskip("mlserver", reason="mlserver pins fastapi<0.116; its recorded bytes are replayed")
    check_exchanges(server, mlserver_exchanges(server.url), live=True)


def test_mlserver_recorded_requests(server: Server) -> None:
    exchanges = recorded("mlserver")
    check_exchanges(server, exchanges, live=False)
    bodies = [orjson.loads(e.body) for e in exchanges]
    assert {b["parameters"]["content_type"] for b in bodies} == {"np", "pd"}
    assert any((i.get("parameters") or {}).get("content_type") == "pd_json" for b in bodies for i in b["inputs"])


# == MLflow ===============================================================================================
def test_mlflow_scoring_server_client(server: Server) -> None:
    import pandas as pd
    from mlflow.pyfunc.scoring_server.client import ScoringServerClient

    names, X = breast_cancer()
    host, port = host_port(server).split(":")
    client = ScoringServerClient(host, int(port))
    client.wait_server_ready(timeout=30)
    assert client.get_version() == httpx.get(f"{server.url}/v2").json()["version"]
    assert len(httpx.get(f"{server.url}/models").json()["models"]) == 2  # bare /invocations: the setting
    predicted = labels(server, "breast-cancer", features=X.tolist())
    frame = pd.DataFrame(X, columns=names)
    for data, params in [(frame, None), (frame[names[::-1]], None), (X, None), (frame, {"note": "ignored"})]:
        assert client.invoke(data, params=params)["predictions"] == predicted
    shuffled = client.invoke(frame.iloc[::-1])  # rows and columns travel as they are
    assert shuffled["predictions"] == predicted[::-1]
