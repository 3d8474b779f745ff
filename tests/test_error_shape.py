"""Every error a client can cause has one JSON shape, and nothing a client sends gives a 500."""

import json
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qa_engine.webapp import create_app


def assert_error(response, status: int, code: str, message: str | None = None) -> None:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.content_type == "application/json"
    body = response.get_json()
    assert list(body) == ["error"] and sorted(body["error"]) == ["code", "message"]
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    if message is not None:
        assert body["error"]["message"] == message


@pytest.mark.parametrize("body, message", [
    ({"question": ""}, "question is empty"),
    ({"question": None}, "question is required"),
    ({"question": "   \t\n"}, "question is empty"),
    ({"question": "税" * 2001}, "question is longer than 2000 characters"),
    ({"question": 42}, "question must be text"),
    ({"question": ["发票"]}, "question must be text"),
    ({"question": "发票", "top_k": "3"}, "top_k must be a whole number from 1 to 50"),
    ({"question": "发票", "top_k": True}, "top_k must be a whole number from 1 to 50"),
    ({"question": "发票", "top_k": 0}, "top_k must be a whole number from 1 to 50"),
    ({"question": "发票", "top_k": 51}, "top_k must be a whole number from 1 to 50"),
    ({"question": "发票", "top_k": 2.5}, "top_k must be a whole number from 1 to 50"),
    ({"question": "发票", "as_of": "2026-13-01"}, "as_of must be a date YYYY-MM-DD, got '2026-13-01'"),
    ({"question": "发票", "as_of": "明天"}, "as_of must be a date YYYY-MM-DD, got '明天'"),
    ({"question": "发票", "as_of": 20260101}, "as_of must be a date YYYY-MM-DD"),
    ({"question": "发票", "top-k": 3}, "unknown field 'top-k'; this endpoint takes as_of, question, top_k"),
    ({"question": "\ud800发票"}, "text must be valid Unicode (no lone surrogate escapes)"),
])
@pytest.mark.parametrize("path", ["/v1/ask", "/v1/search"])
def test_bad_questions_are_400_with_a_message_to_act_on(client, path, body, message):
    response = client.post(path, data=json.dumps(body), content_type="application/json")
    assert_error(response, 400, "invalid_input", message)


@pytest.mark.parametrize("raw", [b"", b"{", b"not json", b"\xff\xfe\x00", b"[]", b'"question"', b"null", b"[" * 5000])
@pytest.mark.parametrize("path", ["/v1/ask", "/v1/feedback", "/v1/escalations", "/v1/complaints", "/v1/flags", "/v1/search"])
def test_bodies_that_are_not_a_json_object_are_400(client, path, raw):
    response = client.post(path, data=raw, content_type="application/json")
    assert_error(response, 400, "invalid_input")


def test_oversize_body_is_413(client):
    response = client.post("/v1/ask", data=json.dumps({"question": "税" * 100_000}), content_type="application/json")
    assert_error(response, 413, "too_large", "the request body is too large")


def test_unknown_path_is_404(client):
    assert_error(client.get("/v1/nothing-here"), 404, "not_found", "no such endpoint: see /openapi.json")


def test_wrong_method_is_405_and_says_what_is_allowed(client):
    response = client.get("/v1/ask")
    assert_error(response, 405, "method_not_allowed")
    assert "POST" in response.headers["Allow"]
    assert_error(client.delete("/v1/articles/示例发票法/第一条"), 405, "method_not_allowed")


def test_unknown_article_is_404(client):
    assert_error(client.get("/v1/articles/没有这部法/第一条"), 404, "not_found")


def test_rate_limited_is_429(answered_service):
    client = create_app({"QA_RATE_LIMIT": "1 per minute"}, service=answered_service).test_client()
    client.post("/v1/feedback", json={"answer_id": "A1", "helpful": True})
    assert_error(client.post("/v1/feedback", json={"answer_id": "A1", "helpful": True}), 429, "rate_limited")


def test_index_not_built_is_503(make_service, small_laws):
    svc = make_service()
    svc.ingest([small_laws])
    response = create_app(service=svc).test_client().post("/v1/ask", json={"question": "发票"})
    assert_error(response, 503, "index_not_built")


def test_an_unexpected_failure_is_a_json_500_without_internals(answered_service, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("database file /secret/path is locked")

    monkeypatch.setattr(answered_service, "ask", broken)
    response = create_app(service=answered_service).test_client().post("/v1/ask", json={"question": "发票"})
    assert_error(response, 500, "internal_error")
    assert "/secret/path" not in response.get_data(as_text=True)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=8,
)
FIELDS = ["question", "as_of", "top_k", "answer_id", "helpful", "query_id", "comment", "name", "phone", "contact", "note"]
bodies = st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=4) | json_values


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(["/v1/ask", "/v1/search", "/v1/feedback", "/v1/escalations", "/v1/complaints", "/v1/flags"]),
       body=bodies)
def test_no_body_a_client_sends_gives_a_500(client, path, body):
    response = client.post(path, data=json.dumps(body), content_type="application/json")
    assert response.status_code in {200, 201, 400}, (path, body, response.get_data(as_text=True))
    if response.status_code == 400:
        assert sorted(response.get_json()["error"]) == ["code", "message"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=st.text(min_size=1, max_size=20), article=st.text(min_size=1, max_size=10),
       as_of=st.none() | st.text(max_size=12))
def test_no_article_lookup_gives_a_500(client, doc, article, as_of):
    path = f"/v1/articles/{quote(doc, safe='')}/{quote(article, safe='')}"
    response = client.get(path, query_string={"as_of": as_of} if as_of is not None else None)
    assert response.status_code in {200, 400, 404}, response.get_data(as_text=True)


def test_an_article_number_with_a_slash_is_not_found_not_redirected(client):
    response = client.get("/v1/articles/0/%2F0")
    assert response.status_code == 404 and sorted(response.get_json()["error"]) == ["code", "message"]
