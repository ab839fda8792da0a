"""What a browser can be made to send on a user's behalf is refused: foreign Host names (DNS rebinding),
state changes from other sites' pages, and bodies of the types a page may send anywhere without asking."""

from __future__ import annotations

import orjson
import pytest

from tests.support import TOY_TRAIN


def test_a_foreign_host_name_is_refused_when_bound_to_loopback(make_client, api_error):
    client = make_client()
    for path in ("/models", "/healthz"):
        err = api_error(client.get(path, headers={"host": "attacker.example:8000"}), 421)
        assert "LOGREG_ALLOWED_HOSTS" in err["message"]
    for host in ("localhost:8000", "127.0.0.1", "[::1]:8000"):
        assert client.get("/models", headers={"host": host}).status_code == 200, host
    v2 = client.get("/v2/models/toy", headers={"host": "attacker.example"})
    assert v2.status_code == 421 and set(v2.json()) == {"error"}


def test_allowed_hosts_widen_or_open_the_check(make_client):
    assert make_client(allowed_hosts="models.internal").get("/models", headers={"host": "models.internal"}
                                                            ).status_code == 200
    assert make_client(allowed_hosts="*").get("/models", headers={"host": "anything"}).status_code == 200
    bound_wide = make_client(host="0.0.0.0")
    assert bound_wide.get("/models", headers={"host": "logreg.svc.cluster.local"}).status_code == 200


@pytest.mark.parametrize("headers", [{"origin": "https://attacker.example"}, {"origin": "null"},
                                     {"sec-fetch-site": "cross-site"}], ids=["origin", "null-origin", "fetch-site"])
def test_state_changes_from_another_site_are_refused(make_client, api_error, headers):
    client = make_client()
    body = orjson.dumps(TOY_TRAIN)
    api_error(client.post("/train", content=body, headers={"content-type": "application/json", **headers}), 403)
    assert client.get("/models").json()["models"] == []
    assert client.post("/train", json=TOY_TRAIN).status_code == 201
    api_error(client.put("/models/toy/aliases/production", json={"version": 1}, headers=headers), 403)
    api_error(client.delete("/models/toy/versions/1", headers=headers), 403)
    assert [v["version"] for v in client.get("/models/toy").json()["versions"]] == [1]
    # reads from another site's page are not refused here (they need a key when keys are set)
    assert client.get("/models", headers=headers).status_code == 200


def test_the_same_origin_and_listed_origins_may_change_state(make_client):
    client = make_client(allowed_origins="https://ops.example.com")
    same = client.post("/train", json=TOY_TRAIN, headers={"origin": "http://localhost"})
    assert same.status_code == 201, same.text
    listed = client.post("/train", json=TOY_TRAIN, headers={"origin": "https://ops.example.com"})
    assert listed.status_code == 201, listed.text


@pytest.mark.parametrize(("path", "content_type"), [
    ("/train", "text/plain"), ("/train", "application/x-www-form-urlencoded"), ("/predict", "text/plain;charset=utf-8"),
    ("/predict", "multipart/form-data; boundary=x"),
])
def test_bodies_of_the_types_forms_send_are_refused(make_client, api_error, path, content_type):
    client = make_client()
    body = orjson.dumps(TOY_TRAIN if path == "/train" else {"model": "toy", "features": [[1.0, 2.0]]})
    err = api_error(client.post(path, content=body, headers={"content-type": content_type}), 415)
    assert "application/json" in err["message"]
    assert client.get("/models").json()["models"] == []


def test_a_body_without_a_content_type_is_read_as_json(make_client):
    """tritonclient and other non-browser clients send JSON without saying so."""
    client = make_client()
    resp = client.post("/train", content=orjson.dumps(TOY_TRAIN), headers={"content-type": ""})
    assert resp.status_code == 201, resp.text
