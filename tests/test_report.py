import json
from datetime import datetime, timezone

import pytest

from qa_engine.errors import InvalidInput
from qa_engine.report import cluster_questions, parse_since

from conftest import FakeEmbedder


def test_since_accepts_durations_and_dates():
    now = datetime(2026, 11, 27, 12, tzinfo=timezone.utc)
    assert parse_since("7d", now) == datetime(2026, 11, 20, 12, tzinfo=timezone.utc)
    assert parse_since("24h", now) == datetime(2026, 11, 26, 12, tzinfo=timezone.utc)
    assert parse_since("2w", now) == datetime(2026, 11, 13, 12, tzinfo=timezone.utc)
    assert parse_since("2026-11-01", now) == datetime(2026, 11, 1, tzinfo=timezone.utc)
    with pytest.raises(InvalidInput, match="--since must look like 7d"):
        parse_since("last week", now)


def test_questions_are_clustered_by_meaning():
    questions = ["偶然所得的税率是多少", "虚开发票怎么处罚", "偶然所得税率是多少", "偶然所得的税率是多少"]
    groups = cluster_questions(questions, FakeEmbedder())
    assert groups == [[0, 2, 3], [1]]
    assert cluster_questions(questions, None) == [[0, 3], [1], [2]]  # no embedder: same wording only


def test_report_summarises_routes_feedback_and_answers(service, run_cli, tmp_path):
    for question in ["偶然所得的税率是多少", "偶然所得税率是多少", "股票期权怎么交税", "股票期权怎么交税",
                     "我要举报虚开发票，电话13812345678"]:
        service.ask(question)
    answered = service.ask("偶然所得的税率是多少")
    top = answered["answers"][0]["id"]
    service.record_feedback(top, False, answered["query_id"], "没说清楚")
    service.record_feedback(top, True, answered["query_id"])
    out = tmp_path / "r.html"
    result = run_cli("report", "--since", "7d", "--out", out, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["questions"] == 6
    assert report["route_mix"] == {"answer": 3, "expert": 2, "complaint": 1}
    assert sum(report["confidence_histogram"]) == 6
    assert [(c["question"], c["count"]) for c in report["clusters"]] == [
        ("偶然所得的税率是多少", 3), ("股票期权怎么交税", 2), ("我要举报虚开发票，电话[手机号]", 1)]
    assert [c["question"] for c in report["unanswered_clusters"]] == ["股票期权怎么交税"]
    assert report["feedback"] == {"count": 2, "helpful": 1, "rate": round(1 / 3, 3), "satisfaction": 0.5}
    assert report["most_negative"][0]["answer_id"] == top
    html = out.read_text("utf-8")
    assert html.count("data:image/png;base64,") == 3 and "股票期权怎么交税" in html
    assert "13812345678" not in html and "13812345678" not in result.output

    text = run_cli("report", "--since", "7d", "--out", out)
    assert text.exit_code == 0
    assert text.output.startswith("6 questions from ")
    assert "   2  股票期权怎么交税" in text.output and f"HTML report: {out}" in text.output


def test_empty_period_and_bad_since(run_cli, tmp_path):
    out = tmp_path / "empty.html"
    result = run_cli("report", "--since", "1h", "--out", out)
    assert result.exit_code == 0 and result.output.startswith("0 questions from ")
    assert "(none)" in out.read_text("utf-8")
    bad = run_cli("report", "--since", "yesterday")
    assert (bad.exit_code, bad.output) == (1, "Error: --since must look like 7d, 24h, 2w or 2026-11-01, got 'yesterday'\n")


def test_log_prune_forgets_what_is_older_than_the_retention_period_and_keeps_cases(service, run_cli):
    for question in ["偶然所得的税率是多少", "股票期权怎么交税", "我要举报虚开发票"]:
        answered = service.ask(question)
    service.record_feedback(answered["answers"][0]["id"], True, answered["query_id"])
    db = service.store.db
    with service.store.transaction():  # the first two questions and the feedback were asked a year ago
        db.execute("UPDATE query_log SET at = '2025-11-01T08:00:00Z' WHERE id IN (SELECT id FROM query_log ORDER BY id LIMIT 2)")
        db.execute("UPDATE feedback SET at = '2025-11-01T08:00:00Z'")
    before = service.store.counts()
    result = run_cli("log", "prune", "--older-than", "180d", "--json")
    assert result.exit_code == 0, result.output
    assert {k: v for k, v in json.loads(result.output).items() if k != "before"} == {"questions": 2, "feedback": 1}
    after = service.store.counts()
    assert after["queries_logged"] == before["queries_logged"] - 2
    assert (after["queue_open"], after["complaints_open"]) == (before["queue_open"], before["complaints_open"])
    assert [row[0] for row in db.execute("SELECT question FROM query_log")] == ["我要举报虚开发票"]
    bad = run_cli("log", "prune", "--older-than", "last year")
    assert (bad.exit_code, bad.output) == (1, "Error: --older-than must look like 7d, 24h, 2w or 2026-11-01, got 'last year'\n")
    assert service.store.counts() == after
    for _ in range(2):
        service.ask("偶然所得的税率是多少")
    with service.store.transaction():
        db.execute("UPDATE query_log SET at = '2025-11-01T08:00:00Z'")
    assert service.store.delete_logged_before("2025-12-01T00:00:00Z", batch=2) == {"questions": 3, "feedback": 0}
    assert service.store.counts()["queries_logged"] == 0
