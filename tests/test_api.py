"""The HTTP API with the Flask test client: every endpoint, as the widget and the console use it."""

import json
import sqlite3
import subprocess
import sys
import time

import pytest

from qa_engine.config import Settings
from qa_engine.errors import InvalidInput
from qa_engine.webapp import create_app

ORIGIN = "https://etax.example.gov.cn"


def test_ask_returns_the_cli_json_contract_and_records_it(client, answered_service):
    response = client.post("/v1/ask", json={"question": "偶然所得的税率是多少", "as_of": "2026-11-27", "top_k": 2})
    assert response.status_code == 200
    assert response.content_type == "application/json"
    data = response.get_json()
    expected = answered_service.ask("偶然所得的税率是多少", "2026-11-27", 2, record=False)
    assert {k: v for k, v in data.items() if k not in ("query_id", "ticket")} == expected  # recording adds these
    assert list(data)[:5] == ["question", "as_of", "route", "confidence", "answers"]
    assert len(data["answers"]) == 2
    assert isinstance(data["query_id"], int)
    assert answered_service.store.counts()["queries_logged"] == 1


def test_ask_says_how_it_understood_a_question_whose_tax_term_was_misheard(client):
    heard = client.post("/v1/ask", json={"question": "藕然所得的税率是多少"}).get_json()
    assert heard["question"] == "藕然所得的税率是多少" and heard["understood_as"] == "偶然所得的税率是多少"
    said = client.post("/v1/ask", json={"question": "偶然所得的税率是多少"}).get_json()
    assert "understood_as" not in said
    assert [a["citations"] for a in heard["answers"][:1]] == [a["citations"] for a in said["answers"][:1]]


def test_ask_defaults_to_today_and_the_configured_top_k(client, answered_service):
    data = client.post("/v1/ask", json={"question": "发票"}).get_json()
    assert data["as_of"] == answered_service.today()
    assert len(data["answers"]) <= answered_service.settings.top_k


def test_ask_accepts_null_for_the_optional_fields(client):
    response = client.post("/v1/ask", json={"question": "发票", "as_of": None, "top_k": None})
    assert response.status_code == 200


def test_answers_valid_then_are_served_for_a_past_date(client):
    data = client.post("/v1/ask", json={"question": "虚开发票", "as_of": "2020-05-01"}).get_json()
    docs = {c["doc"] for a in data["answers"] for c in a["citations"]}
    assert "示例发票暂行条例(2011-01-08)" in docs and "示例发票法(2024-12-25)" not in docs


def test_expert_route_opens_a_ticket_and_complaint_route_a_case(client, answered_service):
    expert = client.post("/v1/ask", json={"question": "今天天气怎么样"}).get_json()
    assert expert["route"] == "expert" and isinstance(expert["ticket"], int)
    complaint = client.post("/v1/ask", json={"question": "我要投诉办税服务厅态度差"}).get_json()
    assert complaint["route"] == "complaint" and isinstance(complaint["case"], int)
    assert [c["id"] for c in answered_service.store.complaints()] == [complaint["case"]]


def test_search_answers_like_ask_but_records_nothing(client, answered_service):
    data = client.post("/v1/search", json={"question": "今天天气怎么样", "top_k": 3}).get_json()
    assert data["route"] == "expert" and "ticket" not in data and "query_id" not in data
    assert answered_service.store.counts()["queries_logged"] == 0
    assert answered_service.store.queue_items() == []


def test_article_with_its_validity(client):
    response = client.get("/v1/articles/示例发票暂行条例(2011-01-08)/第二条?as_of=2026-11-27")
    assert response.status_code == 200
    data = response.get_json()
    assert data["title"] == "中华人民共和国示例发票暂行条例"
    assert data["status"] == "superseded"
    assert data["effective_to"] == "2026-01-01"
    assert "虚开发票" in data["text"]


def test_article_by_short_title_is_the_version_in_force(client):
    data = client.get("/v1/articles/示例发票法/第一条").get_json()
    assert data["doc"] == "示例发票法(2024-12-25)"


def test_unknown_article_is_404_and_a_bad_date_400(client):
    missing = client.get("/v1/articles/示例发票法/第九十九条")
    assert missing.status_code == 404
    assert missing.get_json()["error"] == {"code": "not_found", "message": "no article 示例发票法 第九十九条 in the knowledge base"}
    assert client.get("/v1/articles/示例发票法/第一条?as_of=2026-02-30").status_code == 400


def test_feedback_is_recorded_against_the_answer_and_query(client, answered_service):
    asked = client.post("/v1/ask", json={"question": "偶然所得怎么交税"}).get_json()
    answer_id = asked["answers"][0]["id"]
    response = client.post("/v1/feedback", json={"answer_id": answer_id, "helpful": False,
                                                  "query_id": asked["query_id"], "comment": "没说清楚，电话13800138000"})
    assert response.status_code == 201
    row = answered_service.store.db.execute("SELECT answer_id, helpful, query_id, comment FROM feedback").fetchone()
    assert row == (answer_id, 0, asked["query_id"], "没说清楚，电话[手机号]")


@pytest.mark.parametrize("body, message", [
    ({"helpful": True}, "answer_id is required"),
    ({"answer_id": "A1"}, "helpful is required"),
    ({"answer_id": "A1", "helpful": "yes"}, "helpful must be true or false"),
    ({"answer_id": 5, "helpful": True}, "answer_id must be non-empty text"),
    ({"answer_id": "A1", "helpful": True, "query_id": True}, "query_id must be the positive whole number returned by /v1/ask"),
    ({"answer_id": "A1", "helpful": True, "query_id": -3}, "query_id must be the positive whole number returned by /v1/ask"),
    ({"answer_id": "A1", "helpful": True, "query_id": 2**63}, "query_id must be the positive whole number returned by /v1/ask"),
    ({"answer_id": "A1", "helpful": True, "comment": "长" * 1001}, "comment must be text of at most 1000 characters"),
])
def test_bad_feedback_is_refused(client, body, message):
    response = client.post("/v1/feedback", json=body)
    assert response.status_code == 400
    assert response.get_json()["error"]["message"] == message


def test_callback_request_returns_a_case_number(client, answered_service):
    response = client.post("/v1/escalations", json={"question": "境外所得怎么申报", "name": "张三", "phone": "13800000000"})
    assert response.status_code == 201
    case = response.get_json()["case"]
    item = next(i for i in answered_service.store.queue_items() if i["id"] == case)
    assert item["kind"] == "callback" and json.loads(item["contact"]) == {"name": "张三", "phone": "13800000000"}


@pytest.mark.parametrize("body, message", [
    ({"question": "境外所得", "name": "张三", "phone": "打我电话"}, "phone must be a telephone number"),
    ({"question": "境外所得", "name": " ", "phone": "13800000000"}, "name must be non-empty text"),
    ({"question": "境外所得", "name": "张" * 101, "phone": "13800000000"}, "name must be at most 100 characters"),
    ({"question": "境外所得", "phone": "13800000000"}, "name is required"),
    ({"question": "   ", "name": "张三", "phone": "13800000000"}, "question is empty"),
])
def test_bad_callback_requests_are_refused(client, body, message):
    response = client.post("/v1/escalations", json=body)
    assert response.status_code == 400
    assert response.get_json()["error"]["message"] == message


def test_complaint_returns_a_case_number_with_its_category(client, answered_service):
    response = client.post("/v1/complaints", json={"question": "有人卖发票，我要举报", "contact": {"name": "李四", "phone": ""}})
    assert response.status_code == 201
    case = response.get_json()["case"]
    stored = next(c for c in answered_service.store.complaints() if c["id"] == case)
    assert stored["category"] == "虚开发票" and json.loads(stored["contact"]) == {"name": "李四"}


@pytest.mark.parametrize("contact", ["李四", {"email": "a@b.c"}, {"name": 5}, ["李四"]])
def test_complaint_contact_must_be_name_and_phone(client, contact):
    response = client.post("/v1/complaints", json={"question": "我要投诉", "contact": contact})
    assert response.status_code == 400


def test_agent_flag_goes_to_the_expert_queue(client, answered_service):
    response = client.post("/v1/flags", json={"question": "来电人问身份证110101199003071234的退税", "note": "来电人很着急"})
    assert response.status_code == 201
    ticket = response.get_json()["ticket"]
    item = next(i for i in answered_service.store.queue_items() if i["id"] == ticket)
    assert item["kind"] == "agent" and item["question"] == "来电人问身份证[身份证号]的退税"
    assert json.loads(item["contact"]) == {"note": "来电人很着急", "by": "desk-01"}, "the flag names the key (the desk) that sent it"
    assert client.post("/v1/flags", json={"question": ""}).status_code == 400


def test_healthz_names_the_index_that_answers(client, answered_service):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "index": answered_service.stats()["index"]}


def test_healthz_is_503_before_the_first_build(make_service, small_laws):
    svc = make_service()
    svc.ingest([small_laws])
    response = create_app(service=svc).test_client().get("/healthz")
    assert response.status_code == 503
    assert response.get_json()["error"] == {"code": "index_not_built", "message": 'no index has been built yet: run "qa build" first'}


def test_a_rebuilt_index_is_picked_up_without_a_restart(client, answered_service, tmp_path):
    before = client.get("/healthz").get_json()["index"]
    extra = tmp_path / "more"
    extra.mkdir()
    (extra / "示例车船税法(2011-02-25).md").write_text(
        "# 中华人民共和国示例车船税法\n\n2011年2月25日 通过\n\n<!-- INFO END -->\n\n"
        "第一条 在中华人民共和国境内的车辆、船舶的所有人或者管理人，为车船税的纳税人。\n\n第二条 本法自2012年1月1日起施行。\n",
        "utf-8")
    answered_service.ingest([extra])
    time.sleep(1.1)  # build ids have one-second resolution (index.py); two builds in one second collide
    answered_service.build()
    after = client.get("/healthz").get_json()["index"]
    assert after != before
    data = client.post("/v1/search", json={"question": "车船税的纳税人是谁"}).get_json()
    assert data["answers"][0]["citations"][0]["doc"] == "示例车船税法(2011-02-25)"


def test_openapi_describes_every_route(client, app):
    doc = client.get("/openapi.json").get_json()
    assert doc["openapi"].startswith("3.")
    routes = {rule.rule.replace("<", "{").replace(">", "}") for rule in app.url_map.iter_rules()
              if rule.rule.startswith("/v1/") or rule.rule in ("/healthz", "/openapi.json")}
    assert set(doc["paths"]) == routes
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            assert method in {"get", "post"} and operation["responses"], (path, method)
            if method == "post":  # every post writes or reads the knowledge base: a full disk or damaged index is a 503
                assert "503" in operation["responses"], path
    assert doc["paths"]["/v1/ask"]["post"]["requestBody"]["content"]["application/json"]["schema"]["required"] == ["question"]


def test_rate_limit_per_client_answers_429(answered_service):
    client = create_app({"QA_RATE_LIMIT": "2 per minute"}, service=answered_service).test_client()
    for _ in range(2):
        assert client.post("/v1/ask", json={"question": "发票"}).status_code == 200
    limited = client.post("/v1/ask", json={"question": "发票"})
    assert limited.status_code == 429
    assert limited.get_json()["error"]["code"] == "rate_limited"
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    other = client.post("/v1/ask", json={"question": "发票"}, environ_base={"REMOTE_ADDR": "10.0.0.9"})
    assert other.status_code == 200, "the limit is per client"
    assert client.get("/healthz").status_code == 200, "health checks are not limited"


def test_limited_answers_tell_the_client_where_it_stands_in_its_tightest_window(answered_service):
    client = create_app({"QA_RATE_LIMIT": "3 per minute; 2 per second"}, service=answered_service).test_client()
    first, second = (client.post("/v1/ask", json={"question": "发票"}) for _ in range(2))
    assert (first.headers["X-RateLimit-Limit"], first.headers["X-RateLimit-Remaining"]) == ("2", "1")
    assert (second.headers["X-RateLimit-Limit"], second.headers["X-RateLimit-Remaining"]) == ("2", "0")
    assert int(second.headers["X-RateLimit-Reset"]) >= time.time()
    assert client.post("/v1/ask", json={"question": "发票"}).status_code == 429
    assert client.post("/v1/feedback", json={"answer_id": "A1", "helpful": True}).status_code == 201, "each endpoint counts its own"
    assert "X-RateLimit-Limit" not in client.get("/healthz").headers
    with pytest.raises(InvalidInput, match="QA_RATE_LIMIT must be a rate such as '60 per minute'"):
        create_app({"QA_RATE_LIMIT": "sixty"}, service=answered_service)


def test_behind_a_trusted_proxy_the_limit_is_per_caller_and_without_one_the_header_is_ignored(answered_service):
    def statuses(client, callers):
        return [client.post("/v1/ask", json={"question": "发票"}, headers={"X-Forwarded-For": caller},
                            environ_base={"REMOTE_ADDR": "10.0.0.1"}).status_code for caller in callers]

    callers = ["203.0.113.7", "203.0.113.7", "198.51.100.2", "203.0.113.7"]
    behind_proxy = create_app({"QA_RATE_LIMIT": "2 per minute", "QA_TRUSTED_PROXIES": 1}, service=answered_service).test_client()
    assert statuses(behind_proxy, callers) == [200, 200, 200, 429], "each caller has a limit of its own"
    spoofing = create_app({"QA_RATE_LIMIT": "2 per minute"}, service=answered_service).test_client()
    assert statuses(spoofing, ["1.1.1.1", "2.2.2.2", "3.3.3.3"]) == [200, 200, 429], "a made-up header evades nothing"
    with pytest.raises(InvalidInput, match="QA_TRUSTED_PROXIES cannot be negative, got -1"):
        Settings.from_env(environ={"QA_TRUSTED_PROXIES": "-1"})


def test_apps_over_one_home_share_its_limits_as_the_workers_of_a_server_do(answered_service):
    first, second = (create_app({"QA_RATE_LIMIT": "3 per minute"}, service=answered_service).test_client() for _ in range(2))
    statuses = [client.post("/v1/ask", json={"question": "发票"}).status_code for client in (first, second, first, second)]
    assert statuses == [200, 200, 200, 429]
    assert (answered_service.home / "rate_limits.db").exists()


def test_counts_from_several_processes_add_up_exactly(tmp_path):
    from qa_engine.rate_limits import RateLimits, parse_limits

    path, hits = tmp_path / "rate_limits.db", 150
    script = (f"from pathlib import Path; from qa_engine.rate_limits import RateLimits, parse_limits\n"
              f"limits = RateLimits({{'api': parse_limits('x', '1000 per hour')}}, Path({str(path)!r}))\n"
              f"for _ in range({hits}): print(limits.hit('api', 'api.ask', '10.0.0.1')[1]['X-RateLimit-Remaining'])")
    other = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    limits = RateLimits({"api": parse_limits("x", "1000 per hour")}, path)
    here = [limits.hit("api", "api.ask", "10.0.0.1")[1]["X-RateLimit-Remaining"] for _ in range(hits)]
    there = other.communicate(timeout=120)[0].split()
    assert sorted(int(n) for n in here + there) == list(range(1000 - 2 * hits, 1000)), "each request counted once"


def test_ended_windows_are_swept(answered_service, monkeypatch):
    from qa_engine import rate_limits

    monkeypatch.setattr(rate_limits, "SWEEP_EVERY_S", 0.0)
    client = create_app({"QA_RATE_LIMIT": "100 per second"}, service=answered_service).test_client()
    assert client.post("/v1/ask", json={"question": "发票"}).status_code == 200
    counters = sqlite3.connect(answered_service.home / "rate_limits.db")
    with counters:
        counters.execute("INSERT INTO hits VALUES ('long gone', 1.0, 7)")
    time.sleep(1.1)  # the first request's one-second window ends
    client.get("/healthz")  # not limited: counts nothing, sweeps nothing
    assert counters.execute("SELECT count(*) FROM hits").fetchone()[0] == 2
    client.post("/v1/ask", json={"question": "发票"}, environ_base={"REMOTE_ADDR": "10.0.0.9"})
    assert counters.execute("SELECT count FROM hits").fetchall() == [(1,)], "the ended windows swept, the new client's counted"


def test_counters_that_cannot_be_written_let_callers_through_and_say_so_once(answered_service, monkeypatch, caplog):
    from qa_engine import rate_limits

    def open_on_a_full_disk(path):
        connection = real_open(path)
        connection.execute(f"PRAGMA max_page_count = {connection.execute('PRAGMA page_count').fetchone()[0]}")
        return connection

    real_open = rate_limits._open
    monkeypatch.setattr(rate_limits, "_open", open_on_a_full_disk)
    client = create_app({"QA_RATE_LIMIT": "2 per minute"}, service=answered_service).test_client()
    callers = [f"10.0.1.{n}" for n in range(300)]  # enough new counts to need another page
    responses = [client.post("/v1/ask", json={"question": "发票"}, environ_base={"REMOTE_ADDR": c}) for c in callers]
    assert {r.status_code for r in responses} == {200}
    assert "X-RateLimit-Limit" not in responses[-1].headers, "no count was kept"
    warnings = [r.getMessage() for r in caplog.records if "rate limits not counted" in r.getMessage()]
    assert len(warnings) == 1 and "full" in warnings[0]


def test_damaged_counters_are_started_afresh(tmp_path):
    from qa_engine.rate_limits import RateLimits, parse_limits, prepare

    path = tmp_path / "rate_limits.db"
    path.write_bytes(b"not a database at all" * 100)
    assert prepare(path) is True
    assert prepare(path) is False
    limits = RateLimits({"api": parse_limits("x", "1 per minute")}, path)
    assert [limits.hit("api", "api.ask", "10.0.0.1")[0] for _ in range(2)] == [True, False]


def test_console_search_has_its_own_limit(answered_service, agent_key):
    client = create_app({"QA_RATE_LIMIT": "1 per minute", "QA_CONSOLE_RATE_LIMIT": "3 per minute"},
                        service=answered_service).test_client()
    key = {"Authorization": f"Bearer {agent_key}"}
    assert [client.post("/v1/search", json={"question": "发票"}, headers=key).status_code for _ in range(4)] == [200, 200, 200, 429]


def test_guessing_keys_is_rate_limited_too(answered_service, agent_key):
    client = create_app({"QA_CONSOLE_RATE_LIMIT": "3 per minute"}, service=answered_service).test_client()
    guesses = [client.post("/v1/search", json={"question": "发票"}, headers={"Authorization": f"Bearer qa_guess{n}"}).status_code
               for n in range(4)]
    assert guesses == [401, 401, 401, 429]
    right = client.post("/v1/search", json={"question": "发票"}, headers={"Authorization": f"Bearer {agent_key}"})
    assert right.status_code == 429, "the limit is per client, whatever key it sends"


def test_cors_allows_configured_origins_only(client):
    allowed = client.options("/v1/ask", headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST",
                                                 "Access-Control-Request-Headers": "Content-Type"})
    assert allowed.headers.get("Access-Control-Allow-Origin") == ORIGIN
    asked = client.post("/v1/ask", json={"question": "发票"}, headers={"Origin": ORIGIN})
    assert asked.headers.get("Access-Control-Allow-Origin") == ORIGIN
    other = client.post("/v1/ask", json={"question": "发票"}, headers={"Origin": "https://evil.example.com"})
    assert "Access-Control-Allow-Origin" not in other.headers


def test_no_cross_origin_access_unless_configured(answered_service):
    client = create_app(service=answered_service).test_client()
    response = client.post("/v1/ask", json={"question": "发票"}, headers={"Origin": ORIGIN})
    assert "Access-Control-Allow-Origin" not in response.headers


def test_widget_script_demo_and_console_pages(client):
    script = client.get("/widget.js")
    assert script.status_code == 200 and script.content_type.startswith("text/javascript")
    assert "innerHTML" not in script.get_data(as_text=True)
    demo = client.get("/demo").get_data(as_text=True)
    assert '<script src="/widget.js" data-endpoint="http://localhost"></script>' in demo
    console = client.get("/console")
    assert console.status_code == 200 and "坐席知识库" in console.get_data(as_text=True)
    with client.get("/static/console.js") as console_script:
        assert "innerHTML" not in console_script.get_data(as_text=True)
    assert client.get("/").headers["Location"].endswith("/demo")


def test_article_page_shows_the_full_text_escaped(client):
    page = client.get("/articles/示例发票暂行条例(2011-01-08)/第二条?as_of=2026-11-27")
    assert page.status_code == 200 and page.content_type.startswith("text/html")
    html = page.get_data(as_text=True)
    assert "任何单位和个人不得虚开发票" in html and "已废止" in html


def test_public_endpoints_and_pages_need_no_key(public_client):
    asked = public_client.post("/v1/ask", json={"question": "偶然所得怎么交税"})
    assert asked.status_code == 200
    answer_id = asked.get_json()["answers"][0]["id"]
    assert public_client.get("/v1/articles/示例发票法/第一条").status_code == 200
    assert public_client.post("/v1/feedback", json={"answer_id": answer_id, "helpful": True}).status_code == 201
    assert public_client.post("/v1/escalations", json={"question": "境外所得", "name": "张三", "phone": "13800000000"}).status_code == 201
    assert public_client.post("/v1/complaints", json={"question": "我要投诉"}).status_code == 201
    for page in ("/healthz", "/openapi.json", "/widget.js", "/demo", "/console"):
        assert public_client.get(page).status_code == 200, page


def test_console_endpoints_need_a_key(public_client, agent_key):
    refused = public_client.post("/v1/search", json={"question": "发票"})
    assert refused.status_code == 401 and refused.get_json()["error"]["code"] == "unauthorized"
    assert public_client.post("/v1/flags", json={"question": "发票"}).status_code == 401
    assert public_client.post("/v1/search", json={"question": "发票"}, headers={"X-API-Key": agent_key}).status_code == 200


def test_cors_lets_the_console_endpoints_take_a_key(public_client):
    # A browser's preflight carries no key: it passes, and allows the Authorization header.
    preflight = public_client.options("/v1/search", headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST",
                                                             "Access-Control-Request-Headers": "Authorization, Content-Type"})
    assert preflight.status_code == 200
    assert "authorization" in preflight.headers.get("Access-Control-Allow-Headers", "").lower()


def test_responses_are_json_as_flask_writes_it():
    import dataclasses
    import datetime

    import numpy as np
    from flask import Flask

    from qa_engine.webapp import ResponseJSON

    @dataclasses.dataclass
    class Point:
        x: int

    app = Flask(__name__)
    app.json = ResponseJSON(app)
    value = {"税种": "增值税", "score": np.float32(0.5), "count": np.int64(3), 7: "a number key",
             "on": datetime.date(2026, 1, 1), "point": Point(1)}
    with app.app_context():
        body = app.json.response(value).get_data(as_text=True)
        assert body == ('{"税种":"增值税","score":0.5,"count":3,"7":"a number key",'
                        '"on":"Thu, 01 Jan 2026 00:00:00 GMT","point":{"x":1}}\n')
        app.debug = True
        assert app.json.response({"a": 1}).get_data(as_text=True) == '{\n  "a": 1\n}\n', "debug output stays readable"
