"""Every example of the OpenAPI page, sent verbatim to a real server started as ``make run`` starts it
(``logreg serve --demo``, ``LOGREG_DATA_ROOTS=examples/``, in the repository's directory), must work: each request
gets the operation's documented success status, and a JSON answer matches the documented schema.

The schema is walked, not a list kept here: each request body example (a media type's ``examples`` or
``example``, and a body schema's own ``examples``) of each operation, with the examples of its path and query
parameters; an operation without a body is sent once with its parameters' examples (once per example of a
parameter that has several). Query parameters documented as going with a ``text/csv`` body only are sent with that
body only. An operation whose required parameter has no example cannot be sent; only the jobs' routes may be
so (a job id is made by the server).

The order is the one a person following the page would need: ``POST /train`` first (so the version its example
adds exists), then the other writes (``PUT``), then the reads and the scoring, the ``DELETE`` examples last (the
alias before the version).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest

from service.api.routes.prediction import CSV_ONLY

from .conftest import Server, start_server, stop_server

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

#: Operations that cannot be sent from examples alone: their job id comes from a server's 202 answer.
NO_EXAMPLE = {("GET", "/jobs/{job_id}"), ("DELETE", "/jobs/{job_id}")}


@dataclass
class Call:
    method: str
    path: str  # the template, as documented
    url: str  # with the path examples filled in
    query: dict[str, Any] = field(default_factory=dict)
    media_type: str | None = None
    body: Any = None
    example: str = ""  # which body example

    def label(self) -> str:
        return f"{self.method} {self.path} {self.media_type or ''} {self.example}".strip()


def examples_of(node: dict[str, Any]) -> list[tuple[str, Any]]:
    """The examples a parameter, media type or schema documents, named."""
    found: list[tuple[str, Any]] = []
    if "example" in node:
        found.append(("example", node["example"]))
    examples = node.get("examples")
    if isinstance(examples, dict):  # OpenAPI named examples
        found += [(name, ex["value"]) for name, ex in examples.items() if "value" in ex]
    elif isinstance(examples, list):  # JSON Schema examples
        found += [(f"example {i}", value) for i, value in enumerate(examples)]
    return found


def resolve(openapi: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        node: Any = openapi
        for part in schema["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def parameter_examples(openapi: dict[str, Any], param: dict[str, Any]) -> list[Any]:
    return [value for _, value in examples_of(param) + examples_of(resolve(openapi, param.get("schema", {})))]


def success_status(op: dict[str, Any]) -> int:
    return min(int(s) for s in op["responses"] if s.startswith("2"))


def calls_of(openapi: dict[str, Any], method: str, path: str, op: dict[str, Any]) -> list[Call] | None:
    """The requests an operation's examples make; None when a required parameter has no example."""
    fixed: dict[str, dict[str, Any]] = {"path": {}, "query": {}}
    csv_only: set[str] = set()
    variants: list[tuple[str, str, Any]] = []  # (in, name, value) beyond the first example of each parameter
    for param in op.get("parameters", []):
        if param["in"] not in fixed:
            continue
        values = parameter_examples(openapi, param)
        if not values:
            if param.get("required"):
                return None
            continue
        fixed[param["in"]][param["name"]] = values[0]
        variants += [(param["in"], param["name"], v) for v in values[1:]]
        if param.get("description", "").startswith(CSV_ONLY):
            csv_only.add(param["name"])

    def url(path_values: dict[str, Any]) -> str:
        return re.sub(r"\{(\w+)\}", lambda m: str(path_values[m.group(1)]), path)

    bodies: list[tuple[str | None, str, Any]] = []
    content = op.get("requestBody", {}).get("content", {})
    for media_type, media in content.items():
        found = examples_of(media) + examples_of(resolve(openapi, media.get("schema", {})))
        if media_type == "multipart/form-data":
            assert not found, "a multipart example would need a file: not one of the walked media types"
            continue
        bodies += [(media_type, name, value) for name, value in found]
    if content and not bodies:
        return None
    calls = []
    for media_type, name, value in bodies or [(None, "", None)]:
        query = dict(fixed["query"])
        if media_type != "text/csv":
            query = {k: v for k, v in query.items() if k not in csv_only}
        calls.append(Call(method, path, url(fixed["path"]), query, media_type, value, name))
    if not bodies:  # each further example of a parameter: one more request
        for where, name, value in variants:
            values = {**fixed["path"], name: value} if where == "path" else fixed["path"]
            query = {**fixed["query"], name: value} if where == "query" else fixed["query"]
            calls.append(Call(method, path, url(values), query, None, None, f"{name}={value}"))
    return calls


def order(call: Call) -> tuple[int, int]:
    """Train first, then the other writes, then everything else, the deletes last (aliases before versions)."""
    if call.path == "/train":
        return (0, 0)
    if call.method == "PUT":
        return (1, 0)
    if call.method == "DELETE":
        return (3, 0 if "/aliases/" in call.path else 1)
    return (2, 0)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("openapi-examples")
    # As `make run`: the demo model, the examples directory readable, the server running in the repository.
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(ROOT)
        srv = start_server(root / "model_store", root / "server.log", "--demo",
                           env={"LOGREG_DATA_ROOTS": str(ROOT / "examples")})
    try:
        yield srv
    finally:
        stop_server(srv)


def test_every_example_works_when_pasted(server: Server) -> None:
    with httpx.Client(base_url=server.url, timeout=120) as client:
        openapi = client.get("/openapi.json").raise_for_status().json()
        calls: list[Call] = []
        unsendable = set()
        for path, ops in openapi["paths"].items():
            for method, op in ops.items():
                found = calls_of(openapi, method.upper(), path, op)
                if found is None:
                    unsendable.add((method.upper(), path))
                else:
                    calls += found
        assert unsendable == NO_EXAMPLE, "operations whose examples cannot be sent"
        assert len(calls) >= 40, [c.label() for c in calls]
        bodies = {(c.method, c.path) for c in calls if c.media_type}
        assert {("POST", "/train"), ("POST", "/predict"), ("POST", "/invocations"),
                ("POST", "/v2/models/{name}/infer")} <= bodies

        failures = []
        for call in sorted(calls, key=order):  # stable: the schema's order within a group
            op = openapi["paths"][call.path][call.method.lower()]
            if call.media_type == "text/csv":
                content = {"content": call.body.encode(), "headers": {"Content-Type": "text/csv"}}
            elif call.media_type is not None:
                content = {"content": json.dumps(call.body).encode(), "headers": {"Content-Type": call.media_type}}
            else:
                content = {}
            resp = client.request(call.method, call.url, params=call.query, **content)
            want = success_status(op)
            if resp.status_code != want:
                failures.append(f"{call.label()} {call.query}: {resp.status_code}, not {want}: {resp.text[:300]}")
                continue
            schema = (op["responses"][str(want)].get("content") or {}).get("application/json", {}).get("schema")
            if schema is not None:
                try:
                    jsonschema.validate(resp.json(), {**schema, "components": openapi["components"]},
                                        cls=jsonschema.Draft202012Validator)
                except jsonschema.ValidationError as exc:
                    failures.append(f"{call.label()}: the answer does not match its schema: {exc.message}")
        assert failures == []

        # What the examples did, as the page says: the /train example added a version with a validation split,
        # the delete example removed it, the alias example's alias is gone again.
        versions = client.get("/models/breast-cancer").raise_for_status().json()["versions"]
        assert [v["version"] for v in versions] == [1, 3]
        assert client.get("/models/breast-cancer/versions/3").json()["n_validation"] > 0
        assert client.get("/models").json()["models"][0]["aliases"] == {}
