from qa_engine.errors import IndexNotBuilt, InvalidInput

import pytest


def test_ask_returns_the_json_contract(service):
    response = service.ask("偶然所得的税率是多少", as_of="2026-11-27", record=False)
    assert set(response) >= {"question", "as_of", "route", "confidence", "answers"}
    assert response["route"] in {"answer", "expert", "complaint"}
    assert 0.0 <= response["confidence"] <= 1.0
    top = response["answers"][0]
    assert top["rank"] == 1 and top["kind"] == "article"
    assert top["citations"] == [
        {
            "doc": "示例个人所得税法(2018-08-31)",
            "title": "中华人民共和国示例个人所得税法",
            "article": "第三条",
            "status": "in_force",
            "effective_from": "2019-01-01",
            "effective_to": None,
        }
    ]


def test_superseded_articles_are_not_served_for_today(service):
    response = service.ask("虚开发票", as_of="2026-11-27", record=False)
    docs = {c["doc"] for a in response["answers"] for c in a["citations"]}
    assert "示例发票暂行条例(2011-01-08)" not in docs
    assert "示例发票法(2024-12-25)" in docs


def test_past_questions_get_the_instrument_valid_then(service):
    response = service.ask("虚开发票", as_of="2020-05-01", record=False)
    docs = {c["doc"] for a in response["answers"] for c in a["citations"]}
    assert docs >= {"示例发票暂行条例(2011-01-08)"}
    assert "示例发票法(2024-12-25)" not in docs


def test_bad_questions_are_refused_clearly(service):
    for bad in ["", "   ", None, 42, "税" * 5000]:
        with pytest.raises(InvalidInput):
            service.ask(bad, record=False)


def test_asking_before_building_says_what_to_do(make_service, small_laws):
    svc = make_service()
    svc.ingest([small_laws])
    with pytest.raises(IndexNotBuilt, match='run "qa build" first'):
        svc.ask("偶然所得", record=False)


def test_feedback_callbacks_and_complaints_are_stored(service):
    assert service.record_feedback("示例个人所得税法(2018-08-31)#第三条", True) > 0
    ticket = service.request_callback("境外所得怎么申报", "张三", "13800000000")
    assert any(item["id"] == ticket and item["kind"] == "callback" for item in service.store.queue_items())
    case = service.file_complaint("有人卖发票，我要举报")
    assert [c["category"] for c in service.store.complaints() if c["id"] == case] == ["虚开发票"]
    with pytest.raises(InvalidInput):
        service.request_callback("问题", "张三", "not a phone")
