"""The peers' own clients driven against a running server: the bytes each sends (captured as sent) and the
probabilities it makes of the answer.

``test_peer_clients.py`` runs these live when the client is installed. KServe 0.21 pins pandas<3 and protobuf<7,
and MLServer 1.7 fastapi<0.116, so neither goes in the dev extras; run this module with an interpreter that has
one of them to record what it sends, and the tests replay those bytes::

    PYTHONPATH=. /path/to/kserve-venv/bin/python -m tests.e2e.peers record http://127.0.0.1:8000

against a server holding the demo model ``breast-cancer`` and ``churn`` (trained as ``test_peer_clients.py``
trains it). It writes ``tests/fixtures/peers/<client>-<version>.json``. Only numpy and the standard library are
imported here at the top, so any of those interpreters can run it.
"""

from __future__ import annotations

import asyncio
import base64
import csv
import json
import math
import sys
import urllib.request
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "peers"
BREAST_CANCER_CSV = ROOT / "examples" / "breast_cancer.csv"
CHURN_CSV = ROOT / "examples" / "churn.csv"
#: How ``test_peer_clients.py`` trains ``churn`` from ``examples/churn.csv``.
CHURN_TRAINING = {"model": "churn", "target": "churned", "encoding": '{"min_frequency": 20}'}
#: Rows the clients send: enough that answers pass the compression threshold.
BC_ROWS = 40
CHURN_ROWS = 80
CHURN_TYPES = {"plan": str, "state": str, "tenure_months": float, "monthly_fee": float, "autopay": bool,
               "support_calls": float}
#: Headers that belong to the connection, not to what the client asks.
TRANSPORT_HEADERS = {"host", "content-length", "connection", "user-agent", "accept", "accept-encoding"}


def breast_cancer() -> tuple[list[str], np.ndarray]:
    """The feature names and the first ``BC_ROWS`` rows of ``examples/breast_cancer.csv``."""
    with BREAST_CANCER_CSV.open(newline="") as fh:
        rows = list(csv.reader(fh))
    t = rows[0].index("diagnosis")
    names = [h for i, h in enumerate(rows[0]) if i != t]
    X = np.array([[float(v) for i, v in enumerate(r) if i != t] for r in rows[1 : BC_ROWS + 1]])
    return names, X


def churn(autopay_known: bool = False) -> dict[str, list[Any]]:
    """The first ``CHURN_ROWS`` rows of ``examples/churn.csv`` as typed columns (None: an empty cell), the label
    column left out; ``autopay_known``: only the rows whose ``autopay`` is there (a BOOL tensor has no missing)."""
    with CHURN_CSV.open(newline="") as fh:
        rows = list(csv.DictReader(fh))[:CHURN_ROWS]
    if autopay_known:
        rows = [r for r in rows if r["autopay"]]
    convert = {str: str, float: float, bool: lambda v: v == "true"}
    return {name: [convert[kind](r[name]) if r[name] != "" else None for r in rows]  # type: ignore[operator]
            for name, kind in CHURN_TYPES.items()}


def churn_tensors(typed: bool) -> tuple[list[tuple[str, str, np.ndarray]], str]:
    """One (name, datatype, array) per column of churn, and the rows' name (see :func:`rows_of`): ``typed``, BYTES
    for text ("" when missing), BOOL for autopay and FP64 with NaN for missing numbers, on the rows whose autopay
    is known (a BOOL tensor has no missing value); else every column as BYTES text, every row."""
    table = churn(autopay_known=typed)
    tensors = []
    for column, values in table.items():
        kind = CHURN_TYPES[column]
        if not typed:
            text = ["" if v is None else str(v).lower() if kind is bool else str(v) for v in values]
            tensors.append((column, "BYTES", np.array(text, dtype=object)))
        elif kind is str:
            tensors.append((column, "BYTES", np.array(["" if v is None else v for v in values], dtype=object)))
        elif kind is bool:
            tensors.append((column, "BOOL", np.array(values, dtype=bool)))
        else:
            tensors.append((column, "FP64", np.array([math.nan if v is None else v for v in values])))
    return tensors, "churn_autopay_known" if typed else "churn"


def records(columns: dict[str, list[Any]]) -> list[dict[str, Any]]:
    return [dict(zip(columns, row, strict=True)) for row in zip(*columns.values(), strict=True)]


#: The rows each exchange sends, by name: (model, rows as /predict_proba takes them).
def rows_of(name: str) -> tuple[str, dict[str, Any]]:
    if name == "breast_cancer":
        return "breast-cancer", {"features": breast_cancer()[1].tolist()}
    if name == "breast_cancer_fp32":
        return "breast-cancer", {"features": breast_cancer()[1].astype(np.float32).astype(float).tolist()}
    if name in ("churn", "churn_autopay_known"):
        return "churn", {"records": records(churn(autopay_known=name == "churn_autopay_known"))}
    raise KeyError(name)


@dataclass
class Exchange:
    """One request a client sent, and what it made of the answer."""

    client: str
    case: str
    rows: str
    path: str
    headers: dict[str, str]
    body: bytes
    #: The probabilities the client read from the answer (live runs only).
    proba: list[list[float]] | None = None

    def fixture(self) -> dict[str, Any]:
        out = asdict(self)
        out["body"] = base64.b64encode(self.body).decode()
        del out["proba"]
        return out

    @classmethod
    def from_fixture(cls, item: dict[str, Any]) -> Exchange:
        return cls(**{**item, "body": base64.b64decode(item["body"])})


def recorded(client: str) -> list[Exchange]:
    """The exchanges recorded for ``client`` (``kserve``, ``mlserver``), every version recorded."""
    return [Exchange.from_fixture(item) for path in sorted(FIXTURES.glob(f"{client}-*.json"))
            for item in json.loads(path.read_text())]


def _kept(headers: Any) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items() if k.lower() not in TRANSPORT_HEADERS}


# -- KServe ------------------------------------------------------------------------------------------------
def kserve_exchanges(url: str) -> list[Exchange]:
    """KServe's ``InferenceRESTClient`` (protocol v2, its defaults otherwise) sending ``InferRequest`` objects and
    the dict ``InferRequest.to_rest()`` makes; each answer read by the client's ``InferResponse``."""
    return asyncio.run(_kserve(url))


async def _kserve(url: str) -> list[Exchange]:
    import httpx
    from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig
    from kserve.protocol.infer_type import RequestedOutput

    sent: list[tuple[str, dict[str, str], bytes]] = []

    class Recording(httpx.AsyncBaseTransport):
        def __init__(self) -> None:
            self.inner = httpx.AsyncHTTPTransport()

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            sent.append((request.url.raw_path.decode(), _kept(request.headers), await request.aread()))
            return await self.inner.handle_async_request(request)

        async def aclose(self) -> None:
            await self.inner.aclose()

    client = InferenceRESTClient(RESTConfig(protocol="v2", transport=Recording()))
    name = f"kserve {metadata.version('kserve')}"
    out: list[Exchange] = []
    try:
        assert await client.is_server_live(url) and await client.is_server_ready(url)
        assert await client.is_model_ready(url, "breast-cancer") and await client.is_model_ready(url, "churn")
        assert not await client.is_model_ready(url, "no-such-model")
        sent.clear()

        async def exchange(case: str, rows: str, model: str, request: Any) -> None:
            answer = await client.infer(url, request, model_name=model)
            proba = next(o for o in answer.outputs if o.name == "predict_proba").as_numpy()
            path, headers, body = sent.pop()
            out.append(Exchange(name, case, rows, path, headers, body, np.asarray(proba).tolist()))

        _, X = breast_cancer()
        binary = InferInput("input-0", list(X.shape), "FP64")
        binary.set_data_from_numpy(X)  # binary_data=True: its default
        await exchange("InferRequest, FP64 input as binary data (the default)", "breast_cancer", "breast-cancer",
                       InferRequest(model_name="breast-cancer", infer_inputs=[binary]))
        single = InferInput("input-0", list(X.shape), "FP32")
        single.set_data_from_numpy(X.astype(np.float32))
        await exchange("InferRequest, FP32 input as binary data", "breast_cancer_fp32", "breast-cancer",
                       InferRequest(model_name="breast-cancer", infer_inputs=[single]))
        as_json = InferInput("input-0", list(X.shape), "FP64")
        as_json.set_data_from_numpy(X, binary_data=False)
        request = InferRequest(model_name="breast-cancer", infer_inputs=[as_json],
                               request_outputs=[RequestedOutput("predict_proba", parameters={"binary_data": True})])
        await exchange("InferRequest, JSON input, predict_proba asked as binary data", "breast_cancer",
                       "breast-cancer", request)
        body, _ = InferRequest(model_name="breast-cancer", infer_inputs=[as_json]).to_rest()
        assert isinstance(body, dict)
        await exchange("a dict body (InferRequest.to_rest())", "breast_cancer", "breast-cancer", body)

        tensors, rows = churn_tensors(typed=True)
        inputs = []
        for column, datatype, array in tensors:
            tensor = InferInput(column, list(array.shape), datatype)
            tensor.set_data_from_numpy(array)
            inputs.append(tensor)
        await exchange("InferRequest, one binary input per column of a mixed-type table (BYTES, BOOL, FP64 with "
                       "NaN for missing)", rows, "churn",
                       InferRequest(model_name="churn", infer_inputs=inputs))
    finally:
        await client.close()
    return out


# -- MLServer ----------------------------------------------------------------------------------------------
def mlserver_exchanges(url: str) -> list[Exchange]:
    """MLServer's request codecs (``NumpyRequestCodec``, ``PandasCodec``): the ``InferenceRequest`` each makes,
    posted as its JSON (MLServer has no REST client of its own); each answer read with ``InferenceResponse`` and
    ``NumpyCodec``."""
    import pandas as pd
    from mlserver.codecs import NumpyCodec, NumpyRequestCodec, PandasCodec
    from mlserver.types import InferenceResponse

    name = f"mlserver {metadata.version('mlserver')}"
    names, X = breast_cancer()
    # As pandas reads it: text, floats with NaN, autopay objects (True, False, NaN). The codec knows neither
    # pandas 3's `str` dtype (KeyError 'O') nor text with missing cells (np.isnan on text), so the text columns go
    # as objects with "" for missing, which the server reads as missing; autopay goes as JSON text per cell
    # (content type pd_json), NaN as null.
    frame = pd.read_csv(CHURN_CSV, nrows=CHURN_ROWS).drop(columns=CHURN_TRAINING["target"])
    frame[["plan", "state"]] = frame[["plan", "state"]].astype(object).fillna("")
    cases = [
        ("NumpyRequestCodec.encode_request(array)", "breast_cancer", "breast-cancer",
         NumpyRequestCodec.encode_request(X)),
        ("PandasCodec.encode_request(DataFrame of numbers)", "breast_cancer", "breast-cancer",
         PandasCodec.encode_request(pd.DataFrame(X, columns=names))),
        ("PandasCodec.encode_request(DataFrame of text, booleans and numbers with missing cells)", "churn", "churn",
         PandasCodec.encode_request(frame)),
    ]
    out = []
    for case, rows, model, request in cases:
        path = f"/v2/models/{model}/infer"
        body = request.model_dump_json().encode()
        headers = {"content-type": "application/json"}
        with urllib.request.urlopen(urllib.request.Request(url + path, data=body, headers=headers)) as resp:
            answer = InferenceResponse.model_validate_json(resp.read())
        output = next(o for o in answer.outputs if o.name == "predict_proba")
        proba = NumpyCodec.decode_output(output).reshape(output.shape)
        out.append(Exchange(name, case, rows, path, headers, body, proba.tolist()))
    return out


def record(url: str) -> None:
    """Write the exchanges of every peer client this interpreter has, one fixture file per client version."""
    FIXTURES.mkdir(parents=True, exist_ok=True)
    for module, run in (("kserve", kserve_exchanges), ("mlserver", mlserver_exchanges)):
        try:
            __import__(module)
        except ImportError:
            continue
        exchanges = run(url)
        version = exchanges[0].client.split()[1]
        target = FIXTURES / f"{module}-{version}.json"
        target.write_text(json.dumps([e.fixture() for e in exchanges], indent=1) + "\n")
        print(f"{target.relative_to(ROOT)}: {len(exchanges)} requests")


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "record":
        sys.exit("usage: python -m tests.e2e.peers record URL")
    record(sys.argv[2].rstrip("/"))
