"""API keys: made, listed and revoked from the CLI, stored only as a hash, and required by every
endpoint that is not public (401 without a valid key, 403 with a role that may not)."""

import hashlib

import pytest
from flask import Blueprint, jsonify

from qa_engine.errors import Forbidden, InvalidInput, NotFound, Unauthorized
from qa_engine.webapp import create_app, require_key

# Every endpoint behind a key: (path, a body it accepts, the status of success).
PROTECTED = [("/v1/search", {"question": "发票"}, 200), ("/v1/flags", {"question": "发票怎么开", "note": "急"}, 201)]
# Everything else is public: the widget's endpoints, health, the spec, the pages.
PUBLIC = {"/v1/ask", "/v1/articles/<doc>/<article>", "/v1/feedback", "/v1/escalations", "/v1/complaints"}


def bearer(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def assert_refused(response, status: int, code: str, words: str) -> None:
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert list(body) == ["error"] and sorted(body["error"]) == ["code", "message"]
    assert body["error"]["code"] == code
    assert words in body["error"]["message"]
    if status == 401:
        assert response.headers["WWW-Authenticate"] == 'Bearer realm="qa_engine"'


# ---- the service --------------------------------------------------------------------


def test_a_new_key_is_random_and_shown_only_when_made(make_service):
    svc = make_service()
    made = svc.add_key("desk-07", "agent", "王芳")
    other = svc.add_key("desk-08", "agent", "王芳")
    assert made["key"].startswith("qa_") and len(made["key"]) >= 40 and made["key"] != other["key"]
    assert {k: made[k] for k in ("name", "role", "created_by")} == {"name": "desk-07", "role": "agent", "created_by": "王芳"}
    listed = svc.list_keys()
    assert [k["name"] for k in listed] == ["desk-08", "desk-07"]
    for row in listed:
        assert set(row) == {"name", "role", "created_at", "created_by", "last_used_at", "revoked_at", "revoked_by", "status"}
        assert made["key"] not in str(row) and other["key"] not in str(row)


def test_keys_are_stored_only_as_a_sha256(make_service):
    svc = make_service()
    key = svc.add_key("desk-07", "curator", "王芳")["key"]
    svc.authenticate(key, ("curator",))
    stored = svc.store.db.execute("SELECT key_hash FROM api_keys").fetchone()[0]
    assert stored == hashlib.sha256(key.encode()).hexdigest()
    files = [p for p in svc.home.iterdir() if p.name.startswith("knowledge.db")]  # the database, its WAL and index
    assert files and not any(key.encode() in p.read_bytes() for p in files)
    svc.store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert key.encode() not in (svc.home / "knowledge.db").read_bytes()


def test_authenticate_accepts_an_active_key_with_an_allowed_role(make_service):
    svc = make_service()
    agent = svc.add_key("desk-07", "agent", "王芳")["key"]
    curator = svc.add_key("王芳", "curator", "王芳")["key"]
    assert svc.authenticate(agent, ("agent", "curator")) == {"name": "desk-07", "role": "agent"}
    assert svc.authenticate(curator, ("agent", "curator")) == {"name": "王芳", "role": "curator"}
    with pytest.raises(Forbidden, match="needs a key with role curator; key desk-07 has role agent"):
        svc.authenticate(agent, ("curator",))


@pytest.mark.parametrize("key, message", [
    (None, "this endpoint needs an API key"),
    ("", "this endpoint needs an API key"),
    ("qa_wrong", "this API key is not valid"),
])
def test_missing_and_unknown_keys_are_unauthorized(make_service, key, message):
    svc = make_service()
    svc.add_key("desk-07", "agent", "王芳")
    with pytest.raises(Unauthorized, match=message):
        svc.authenticate(key, ("agent",))


def test_a_revoked_key_is_unauthorized_at_once_and_its_name_can_be_reused(make_service):
    svc = make_service()
    old = svc.add_key("desk-07", "agent", "王芳")["key"]
    revoked = svc.revoke_key("desk-07", "李明")
    assert revoked["revoked_by"] == "李明"
    with pytest.raises(Unauthorized, match=r"this API key \(desk-07\) was revoked at"):
        svc.authenticate(old, ("agent",))
    new = svc.add_key("desk-07", "agent", "王芳")["key"]
    assert svc.authenticate(new, ("agent",))["name"] == "desk-07"
    assert [(k["name"], k["status"]) for k in svc.list_keys()] == [("desk-07", "active"), ("desk-07", "revoked")]
    with pytest.raises(Unauthorized):
        svc.authenticate(old, ("agent",))


def test_last_use_is_recorded_at_most_once_a_minute(make_service):
    svc = make_service()
    key = svc.add_key("desk-07", "agent", "王芳")["key"]
    assert svc.list_keys()[0]["last_used_at"] is None
    svc.authenticate(key, ("agent",))
    first = svc.list_keys()[0]["last_used_at"]
    assert first is not None
    svc.store.db.execute("UPDATE api_keys SET last_used_at = '2020-01-01T00:00:00Z'")
    svc.authenticate(key, ("agent",))
    assert svc.list_keys()[0]["last_used_at"] > "2020-01-01T00:00:00Z"
    changes = svc.store.db.conn.total_changes
    svc.authenticate(key, ("agent",))
    assert svc.store.db.conn.total_changes == changes, "a second use within the minute writes nothing"


@pytest.mark.parametrize("call, error, message", [
    (lambda s: s.add_key("desk 07", "agent", "王芳"), InvalidInput, "a key name is 1 to 64 letters"),
    (lambda s: s.add_key("", "agent", "王芳"), InvalidInput, "a key name is 1 to 64 letters"),
    (lambda s: s.add_key("desk-07", "admin", "王芳"), InvalidInput, "role must be one of agent, curator, got 'admin'"),
    (lambda s: s.add_key("desk-07", "agent", " "), InvalidInput, "say who is making this change"),
    (lambda s: s.revoke_key("desk-99", "王芳"), NotFound, 'no active key named desk-99: see "qa keys list"'),
    (lambda s: s.revoke_key("desk-07", ""), InvalidInput, "say who is making this change"),
])
def test_bad_key_requests_are_refused_with_a_message(make_service, call, error, message):
    svc = make_service()
    svc.add_key("desk-07", "agent", "王芳")
    with pytest.raises(error, match=message):
        call(svc)
    assert [k["name"] for k in svc.list_keys()] == ["desk-07"]


def test_two_active_keys_cannot_share_a_name(make_service):
    svc = make_service()
    svc.add_key("desk-07", "agent", "王芳")
    with pytest.raises(InvalidInput, match='a key named desk-07 already exists: revoke it first'):
        svc.add_key("desk-07", "curator", "王芳")


# ---- the CLI --------------------------------------------------------------------------


def test_cli_add_prints_the_key_once_list_never_shows_it_revoke(run_cli, service):
    made = run_cli("keys", "add", "desk-07", "--role", "agent", "--by", "王芳")
    assert made.exit_code == 0
    key = made.stdout.strip()
    assert key.startswith("qa_") and "\n" not in key, "stdout is the key alone, for scripts"
    assert "cannot be shown again" in made.stderr
    assert service.authenticate(key, ("agent",))["name"] == "desk-07"

    listed = run_cli("keys", "list")
    assert listed.exit_code == 0 and key not in listed.output
    assert listed.output.startswith("desk-07\tagent\tactive\tcreated ") and "by 王芳" in listed.output
    assert "last used 20" in listed.output

    revoked = run_cli("keys", "revoke", "desk-07", env={"QA_USER": "李明"})
    assert revoked.exit_code == 0 and revoked.output.startswith("key desk-07 (role agent) revoked at ")
    assert "revoked" in run_cli("keys", "list").output and "by 李明" in run_cli("keys", "list").output
    assert key not in run_cli("keys", "list", "--json").output


def test_cli_list_without_keys_says_how_to_make_one(run_cli):
    result = run_cli("keys", "list")
    assert result.output == 'no API keys: make one with "qa keys add NAME --role agent --by WHO"\n'


@pytest.mark.parametrize("args, line", [
    (["keys", "add", "desk-07", "--role", "agent"], "Error: say who is making this change: pass --by NAME or set QA_USER"),
    (["keys", "add", "desk 07", "--role", "agent", "--by", "王芳"],
     "Error: a key name is 1 to 64 letters, digits, '.', '_', '-' or '@' (no spaces), got 'desk 07'"),
    (["keys", "revoke", "desk-99", "--by", "王芳"], 'Error: no active key named desk-99: see "qa keys list"'),
    (["keys", "add", "desk-01", "--role", "agent", "--by", "王芳"],
     'Error: a key named desk-01 already exists: revoke it first ("qa keys revoke desk-01") or pick another name'),
])
def test_cli_errors_are_one_line(run_cli, service, args, line):
    service.add_key("desk-01", "agent", "王芳")
    result = run_cli(*args)
    assert result.exit_code == 1
    assert result.stderr == line + "\n" and result.stdout == ""


def test_cli_refuses_an_unknown_role(run_cli):
    result = run_cli("keys", "add", "desk-07", "--role", "admin", "--by", "王芳")
    assert result.exit_code == 2 and "Error: Invalid value for '--role': 'admin' is not one of 'agent', 'curator'." in result.stderr


# ---- the HTTP API: every protected endpoint ---------------------------------------------


@pytest.mark.parametrize("path, body, ok", PROTECTED)
def test_protected_endpoint_refuses_without_a_key(public_client, path, body, ok):
    assert_refused(public_client.post(path, json=body), 401, "unauthorized", "this endpoint needs an API key")
    assert_refused(public_client.post(path, json=body, headers={"X-API-Key": "  "}), 401, "unauthorized", "needs an API key")


@pytest.mark.parametrize("path, body, ok", PROTECTED)
@pytest.mark.parametrize("headers, words", [
    ({"Authorization": "Bearer qa_not-a-key"}, "this API key is not valid"),
    ({"X-API-Key": "qa_not-a-key"}, "this API key is not valid"),
    ({"Authorization": "Basic ZGVzazpwYXNz"}, 'send the API key as "Authorization: Bearer <key>"'),
    ({"Authorization": "Bearer"}, 'send the API key as "Authorization: Bearer <key>"'),
])
def test_protected_endpoint_refuses_a_wrong_key(public_client, path, body, ok, headers, words):
    assert_refused(public_client.post(path, json=body, headers=headers), 401, "unauthorized", words)


@pytest.mark.parametrize("path, body, ok", PROTECTED)
def test_protected_endpoint_refuses_a_revoked_key(public_client, answered_service, path, body, ok):
    key = answered_service.add_key("desk-09", "agent", "王芳")["key"]
    assert public_client.post(path, json=body, headers=bearer(key)).status_code == ok
    answered_service.revoke_key("desk-09", "王芳")
    assert_refused(public_client.post(path, json=body, headers=bearer(key)), 401, "unauthorized", "was revoked at")


@pytest.mark.parametrize("path, body, ok", PROTECTED)
def test_protected_endpoint_refuses_a_role_it_does_not_allow(public_client, answered_service, path, body, ok):
    # Only agent and curator exist today, and both may use the console; a role added later
    # (here written straight into the table) must not get in until an endpoint names it.
    key = answered_service.add_key("probe", "agent", "王芳")["key"]
    answered_service.store.db.execute("UPDATE api_keys SET role = 'auditor' WHERE name = 'probe'")
    assert_refused(public_client.post(path, json=body, headers=bearer(key)), 403, "forbidden",
                   "this endpoint needs a key with role agent or curator; key probe has role auditor")


@pytest.mark.parametrize("path, body, ok", PROTECTED)
@pytest.mark.parametrize("role", ["agent", "curator"])
@pytest.mark.parametrize("header", ["Authorization", "X-API-Key"])
def test_protected_endpoint_accepts_a_valid_key(public_client, answered_service, path, body, ok, role, header):
    key = answered_service.add_key(f"{role}-1", role, "王芳")["key"]
    value = f"Bearer {key}" if header == "Authorization" else key
    response = public_client.post(path, json=body, headers={header: value})
    assert response.status_code == ok, response.get_data(as_text=True)


def test_the_key_is_checked_before_the_body(public_client):
    response = public_client.post("/v1/search", data=b"not json", content_type="application/json")
    assert_refused(response, 401, "unauthorized", "needs an API key")


def test_every_endpoint_not_on_the_public_list_needs_a_key(app, public_client):
    """A new /v1 endpoint is protected unless someone puts it on the public list on purpose."""
    protected = {path for path, _, _ in PROTECTED}
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/v1/") or rule.rule in PUBLIC:
            continue
        assert rule.rule in protected, f"{rule.rule} is neither public nor tested as protected"
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            response = public_client.open(rule.rule, method=method, json={"question": "发票"})
            assert response.status_code == 401, (rule.rule, method)


def test_a_curator_only_endpoint_refuses_an_agent_key(answered_service):
    """``require_key`` is how a curator endpoint would be protected: an agent's key gets 403."""
    app = create_app(service=answered_service)
    curators = Blueprint("curators_probe", __name__, url_prefix="/v1/curator-probe")
    curators.before_request(require_key("curator"))
    curators.get("")(lambda: jsonify({"ok": True}))
    app.register_blueprint(curators)
    client = app.test_client()
    agent = answered_service.add_key("desk-07", "agent", "王芳")["key"]
    curator = answered_service.add_key("王芳", "curator", "王芳")["key"]
    assert_refused(client.get("/v1/curator-probe"), 401, "unauthorized", "needs an API key")
    assert_refused(client.get("/v1/curator-probe", headers=bearer(agent)), 403, "forbidden",
                   "needs a key with role curator; key desk-07 has role agent")
    assert client.get("/v1/curator-probe", headers=bearer(curator)).get_json() == {"ok": True}


def test_openapi_documents_the_key_on_protected_endpoints_only(public_client):
    doc = public_client.get("/openapi.json").get_json()
    schemes = doc["components"]["securitySchemes"]
    assert schemes["bearerKey"] == {"type": "http", "scheme": "bearer", "description": schemes["bearerKey"]["description"]}
    assert schemes["headerKey"]["in"] == "header" and schemes["headerKey"]["name"] == "X-API-Key"
    for path, operations in doc["paths"].items():
        for operation in operations.values():
            if path in {p for p, _, _ in PROTECTED}:
                assert operation["security"] == [{"bearerKey": []}, {"headerKey": []}]
                assert {"401", "403"} <= set(operation["responses"])
            else:
                assert "security" not in operation and "401" not in operation["responses"], path
